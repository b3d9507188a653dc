import { parseArgs } from 'node:util';
import { loadGatewayConfig } from './config.ts';

export const GATEWAY_HELP = `Usage: tkms gateway start --config <file>

Runs the tkms HTTP gateway until SIGINT/SIGTERM: stores ciphertext handles and grants,
checks the ACL and fans delegation requests out to the committee's nodes.

Config (JSON; paths relative to the config file):
  listen             "host:port" of the HTTP API, e.g. "127.0.0.1:8080"
  storeDir           directory of the embedded store (created 0700)
  committeeFile      the committee file the nodes use
  partialTimeoutMs   per-node deadline for a partial (default 3000)
  hedgeDelayMs       ask one more node after this long without t answers (default 300)
  rateLimit          { "perMinute": 600, "burst": 100 } per requester account
  maxPlaintextBytes  largest plaintext accepted (default and maximum 1048560: 1 MiB minus the tag)
  clockSkewSeconds   tolerance for signed validity windows (default 30)
  logLevel           fatal|error|warn|info|debug|trace|silent (default info)

Environment overrides: TKMS_GATEWAY_LISTEN, TKMS_GATEWAY_STORE_DIR, TKMS_COMMITTEE_FILE, TKMS_LOG_LEVEL
The API is described at GET /openapi.json.
`;

export async function runGatewayCommand(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(GATEWAY_HELP);
    return command === undefined ? 2 : 0;
  }
  if (command !== 'start') {
    process.stderr.write(`tkms gateway: unknown command "${command}"\n\n${GATEWAY_HELP}`);
    return 2;
  }
  let values: { config?: string; help?: boolean };
  try {
    values = parseArgs({ args: rest, options: { config: { type: 'string' }, help: { type: 'boolean', short: 'h' } }, strict: true }).values;
  } catch (e) {
    process.stderr.write(`tkms gateway start: ${e instanceof Error ? e.message : 'bad arguments'}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(GATEWAY_HELP);
    return 0;
  }
  if (values.config === undefined) {
    process.stderr.write('tkms gateway start: --config is required\n');
    return 2;
  }
  const config = await loadGatewayConfig(values.config);
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
