import { parseArgs } from 'node:util';
import { Devnet } from './devnet.ts';

export const DEVNET_HELP = `Usage: tkms devnet [--n <nodes>] [--t <threshold>] [--dir <dir>] [--key <keyId>] [--gateway-port <port>] [--fresh]

Starts n node daemons (default 5, t = 3) and a gateway on 127.0.0.1, each its own process
with its own identity, keystore and log file under <dir> (default .devnet), runs the DKG for
<keyId> (default "default") unless the directory already holds it, prints the endpoints and
"tkms devnet ready", and runs until Ctrl-C. Re-running with the same --dir restarts the same
network and keys; --fresh starts over. --gateway-port 0 picks a free port (default 8080).
`;

export async function runDevnetCommand(argv: string[]): Promise<number> {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: argv,
      options: {
        n: { type: 'string' },
        t: { type: 'string' },
        dir: { type: 'string' },
        key: { type: 'string' },
        'gateway-port': { type: 'string' },
        fresh: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }).values;
  } catch (e) {
    process.stderr.write(`tkms devnet: ${e instanceof Error ? e.message : 'bad arguments'} (see --help)\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(DEVNET_HELP);
    return 0;
  }
  const int = (v: unknown, name: string): number | undefined => {
    if (v === undefined) return undefined;
    const x = Number(v);
    if (!Number.isInteger(x) || x < 0) throw new Error(`--${name} must be a non-negative integer`);
    return x;
  };
  let devnet: Devnet;
  try {
    const n = int(values.n, 'n');
    const t = int(values.t, 't');
    devnet = await Devnet.start({
      dir: typeof values.dir === 'string' ? values.dir : '.devnet',
      ...(n !== undefined ? { n } : {}),
      ...(t !== undefined ? { t } : {}),
      ...(typeof values.key === 'string' ? { keyId: values.key } : {}),
      gatewayPort: int(values['gateway-port'], 'gateway-port') ?? 8080,
      fresh: values.fresh === true,
      onProgress: (line) => process.stdout.write(`${line}\n`),
    });
  } catch (e) {
    process.stderr.write(`tkms devnet: ${e instanceof Error ? e.message : 'failed to start'}\n`);
    return 1;
  }
  const lines = [
    `gateway  ${devnet.gatewayUrl}   (API: ${devnet.gatewayUrl}/openapi.json)`,
    ...devnet.nodes.map((node) => `node ${node.id}   health ${node.httpUrl}/health   admin ${node.adminUrl}   logs ${node.dir}/node.log`),
    `key      ${devnet.keyId} (${devnet.t} of ${devnet.n})`,
    `tkms devnet ready`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  process.stdout.write('stopping the devnet\n');
  await devnet.stop();
  return 0;
}
