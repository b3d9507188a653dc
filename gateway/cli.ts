import { Option } from 'commander';
import { jsonOption, type TkmsCommand } from '../scripts/cli/command.ts';

/**
 * `tkms gateway start|init`: the declarations; gateway/cli-commands.ts, loaded when one runs,
 * implements them.
 */

/**
 * The config fields and their environment variables, shown by `tkms gateway start --help`. Kept
 * apart from the command declarations: it is to be generated from the config schema.
 */
export const GATEWAY_CONFIG_FIELDS_HELP = `
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
`;

export interface GatewayConfigOption {
  config?: string;
}

function configOption(): Option {
  return new Option(
    '--config <file>',
    "the gateway's config file (JSON); without it, TKMS_GATEWAY_* environment variables alone configure the gateway (paths relative to the working directory)",
  ).env('TKMS_GATEWAY_CONFIG');
}

const load = () => import('./cli-commands.ts');

export function registerGatewayCommands(program: TkmsCommand): void {
  const gateway = program
    .command('gateway')
    .description('start the HTTP gateway (handles, ACL, delegation fan-out)')
    .addHelpText('after', "\nThe config fields and their environment variables: tkms gateway start --help. Operators' guide: docs/operators.md")
    .examples('tkms gateway init --config gateway.json', 'tkms gateway start --config gateway.json');

  gateway
    .command('start')
    .description(
      "run the tkms HTTP gateway until SIGINT/SIGTERM: stores ciphertext handles and grants, checks the ACL and fans delegation requests out to the committee's nodes",
    )
    .addOption(configOption())
    .addHelpText(
      'after',
      `${GATEWAY_CONFIG_FIELDS_HELP}
Endpoints: the API (GET /openapi.json describes it), GET /health (200 when at least t nodes
are connected), GET /metrics (Prometheus). Operators' guide: docs/operators.md`,
    )
    .examples('tkms gateway start --config gateway.json', 'TKMS_GATEWAY_LISTEN=127.0.0.1:8080 TKMS_COMMITTEE_FILE=committee.json tkms gateway start')
    .lazyAction(async () => (await load()).gatewayStart);

  gateway
    .command('init')
    .description("create the gateway's libp2p identity (identityFile) if it has none and print its peer id: list it in every node's gatewayPeerIds, so nodes accept the revocations it pushes")
    .addOption(configOption())
    .addOption(jsonOption())
    .examples('tkms gateway init --config gateway.json')
    .lazyAction(async () => (await load()).gatewayInit);
}
