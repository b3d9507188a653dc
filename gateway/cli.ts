import { parseArgs } from 'node:util';
import { envTypos } from '../net/env-config.ts';
import { GATEWAY_ENV_OVERRIDES, GATEWAY_ENV_VARS, loadGatewayConfig } from './config.ts';

export const GATEWAY_HELP = `Usage: tkms gateway start [--config <file>]
       tkms gateway init  [--config <file>] [--json]

init creates the gateway's libp2p identity (identityFile) if it has none and prints its peer
id: list it in every node's gatewayPeerIds, so nodes accept the revocations it pushes.

Runs the tkms HTTP gateway until SIGINT/SIGTERM: stores ciphertext handles and grants,
checks the ACL and fans delegation requests out to the committee's nodes.
--config defaults to the TKMS_GATEWAY_CONFIG environment variable; without either, the
environment alone configures the gateway (paths relative to the working directory).

Config (JSON; paths relative to the config file)    environment override
  listen             "host:port" of the HTTP API, e.g. "0.0.0.0:8080"   TKMS_GATEWAY_LISTEN
  storeDir           directory of the embedded store (created 0700)     TKMS_GATEWAY_STORE_DIR
  identityFile       the gateway's libp2p identity (created 0600 by      TKMS_GATEWAY_IDENTITY_FILE
                     init or at first start; without it, a new one
                     each run, whose revocations nodes refuse)
  committeeFile      the committee file the nodes use                   TKMS_COMMITTEE_FILE
  partialTimeoutMs   per-node deadline for a partial (default 3000)     TKMS_GATEWAY_PARTIAL_TIMEOUT_MS
  hedgeDelayMs       upper bound of the adaptive hedge delay             TKMS_GATEWAY_HEDGE_DELAY_MS
                     (default 300)
  partialFramesInFlight  batch frames of partial requests in flight     TKMS_GATEWAY_PARTIAL_FRAMES_IN_FLIGHT
                     to one node (default 1; raise for distant nodes)
  rateLimit          { "perMinute": 600, "burst": 100 } per account     TKMS_GATEWAY_RATE_PER_MINUTE,
                                                                        TKMS_GATEWAY_RATE_BURST
  maxPlaintextBytes  largest plaintext accepted (default and maximum    TKMS_GATEWAY_MAX_PLAINTEXT_BYTES
                     1048560: 1 MiB minus the tag)
  clockSkewSeconds   tolerance for signed validity windows (default 30) TKMS_GATEWAY_CLOCK_SKEW_SECONDS
  tlsCertFile,       PEM certificate chain and key: serve HTTPS         TKMS_GATEWAY_TLS_CERT_FILE,
  tlsKeyFile         (both or neither; without, plain HTTP: loopback    TKMS_GATEWAY_TLS_KEY_FILE
                     or behind a TLS-terminating proxy only)
  httpLimits         { "maxConnections": 1024,                          TKMS_GATEWAY_MAX_CONNECTIONS,
                       "maxConnectionsPerIp": 64,                       TKMS_GATEWAY_MAX_CONNECTIONS_PER_IP,
                       "maxBodyBytesInFlight": 67108864,                TKMS_GATEWAY_MAX_BODY_BYTES_IN_FLIGHT,
                       "maxBodyBytesInFlightPerIp": 8388608,            TKMS_GATEWAY_MAX_BODY_BYTES_IN_FLIGHT_PER_IP,
                       "headersTimeoutMs": 10000,                       TKMS_GATEWAY_HEADERS_TIMEOUT_MS,
                       "bodyIdleTimeoutMs": 10000,                      TKMS_GATEWAY_BODY_IDLE_TIMEOUT_MS,
                       "bodyTimeoutMs": 30000 }                         TKMS_GATEWAY_BODY_TIMEOUT_MS
                     what clients may hold, per address and in total
  logLevel           fatal|error|warn|info|debug|trace|silent           TKMS_LOG_LEVEL

Endpoints: the API (GET /openapi.json describes it), GET /health (200 when at least t nodes
are connected), GET /metrics (Prometheus). Operators' guide: docs/operators.md
`;

export async function runGatewayCommand(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(GATEWAY_HELP);
    return command === undefined ? 2 : 0;
  }
  if (command !== 'start' && command !== 'init') {
    process.stderr.write(`tkms gateway: unknown command "${command}"\n\n${GATEWAY_HELP}`);
    return 2;
  }
  let values: { config?: string; help?: boolean; json?: boolean };
  try {
    values = parseArgs({ args: rest, options: { config: { type: 'string' }, help: { type: 'boolean', short: 'h' }, json: { type: 'boolean' } }, strict: true }).values;
  } catch (e) {
    process.stderr.write(`tkms gateway ${command}: ${e instanceof Error ? e.message : 'bad arguments'}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(GATEWAY_HELP);
    return 0;
  }
  for (const line of envTypos(process.env, GATEWAY_ENV_VARS)) process.stderr.write(`tkms gateway: warning: ${line}\n`);
  const file = values.config ?? (process.env.TKMS_GATEWAY_CONFIG || undefined);
  if (file === undefined && !Object.keys(GATEWAY_ENV_OVERRIDES).some((name) => (process.env[name] ?? '') !== '')) {
    process.stderr.write('tkms gateway start: --config is required (or set TKMS_GATEWAY_CONFIG, or configure the gateway with TKMS_* environment variables)\n');
    return 2;
  }
  let config;
  try {
    config = await loadGatewayConfig(file);
  } catch (e) {
    process.stderr.write(`tkms gateway start: error: ${e instanceof Error ? e.message : 'invalid config'}\n`);
    return 1;
  }
  if (command === 'init') return gatewayInit(config.identityFile, values.json === true);
  // Loaded lazily: libp2p must not load before the polyfills the entry point installed.
  const { startGateway } = await import('./server.ts');
  const gateway = await startGateway(config);
  await new Promise<void>((resolve) => {
    const onSignal = (signal: string): void => {
      gateway.log.info({ signal }, 'signal received');
      gateway.stop().finally(resolve);
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  });
  return 0;
}

async function gatewayInit(identityFile: string | undefined, json: boolean): Promise<number> {
  if (identityFile === undefined) {
    process.stderr.write('tkms gateway init: the config has no identityFile (or set TKMS_GATEWAY_IDENTITY_FILE)\n');
    return 2;
  }
  const { loadOrCreateIdentityFile } = await import('../node/identity.ts');
  try {
    const { identity, created } = await loadOrCreateIdentityFile(identityFile);
    process.stdout.write(json ? `${JSON.stringify({ peerId: identity.peerId, identityFile, created })}\n` : `${created ? 'created' : 'kept'} ${identityFile}\npeer id: ${identity.peerId}\n`);
    return 0;
  } catch (e) {
    process.stderr.write(`tkms gateway init: error: ${e instanceof Error ? e.message : 'cannot create the identity'}\n`);
    return 1;
  }
}
