import { stopSignal, type CommandRun } from '../scripts/cli/command.ts';
import { Devnet } from './devnet.ts';
import type { DevnetCommandOptions } from './devnet-cli.ts';

/** What `tkms devnet` (declared in deploy/devnet-cli.ts) does. */
export const devnet: CommandRun<DevnetCommandOptions> = async (opts) => {
  const net = await Devnet.start({
    dir: opts.dir,
    ...(opts.n !== undefined ? { n: opts.n } : {}),
    ...(opts.t !== undefined ? { t: opts.t } : {}),
    ...(opts.key !== undefined ? { keyId: opts.key } : {}),
    gatewayPort: opts.gatewayPort,
    fresh: opts.fresh === true,
    onProgress: (line) => process.stdout.write(`${line}\n`),
  });
  const lines = [
    `gateway  ${net.gatewayUrl}   (API: ${net.gatewayUrl}/openapi.json)`,
    ...net.nodes.map((node) => `node ${node.id}   health ${node.httpUrl}/health   admin ${node.adminUrl}   logs ${node.dir}/node.log`),
    `key      ${net.keyId} (${net.t} of ${net.n})`,
    `tkms devnet ready`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  await stopSignal();
  process.stdout.write('stopping the devnet\n');
  await net.stop();
  return 0;
};
