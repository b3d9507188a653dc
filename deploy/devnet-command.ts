import { formatEther } from 'viem';
import { stopSignal, type CommandRun } from '../scripts/cli/command.ts';
import { Devnet } from './devnet.ts';
import type { DevnetCommandOptions, DevnetFundOptions } from './devnet-cli.ts';
import { fundDevnetAccount, readDevnetChain } from './devnet-chain.ts';

/** What `tkms devnet` (declared in deploy/devnet-cli.ts) does. */
export const devnet: CommandRun<DevnetCommandOptions> = async (opts) => {
  const net = await Devnet.start({
    dir: opts.dir,
    ...(opts.n !== undefined ? { n: opts.n } : {}),
    ...(opts.t !== undefined ? { t: opts.t } : {}),
    ...(opts.key !== undefined ? { keyId: opts.key } : {}),
    gatewayPort: opts.gatewayPort,
    fresh: opts.fresh === true,
    ...(opts.chain === true ? { chain: true } : {}),
    onProgress: (line) => process.stdout.write(`${line}\n`),
  });
  const lines = [
    `gateway  ${net.gatewayUrl}   (API: ${net.gatewayUrl}/openapi.json)`,
    ...net.nodes.map((node) => `node ${node.id}   health ${node.httpUrl}/health   admin ${node.adminUrl}   logs ${node.dir}/node.log`),
    `key      ${net.keyId} (${net.t} of ${net.n})`,
    `committee ${net.committeeFile} (epoch ${net.epoch})${net.epoch === 0 ? '' : `; clients and the gateway pin ${opts.dir}/committee.json (epoch 0) and follow the handovers`}`,
    ...(net.chain === undefined
      ? []
      : [
          `chain    ${net.chain.rpcUrl}   (chain id ${net.chain.chainId})`,
          `contract ${net.chain.contract}   (TkmsAcl, deployed in block ${net.chain.fromBlock}; acl.mode "either")`,
          `         fund an account:  tkms devnet --dir ${opts.dir} fund --address <address>`,
          `         grant on chain:   tkms grant --chain --devnet ${opts.dir} --account <file> --handle <handle> --to <address>`,
        ]),
    `tkms devnet ready`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  await stopSignal();
  process.stdout.write('stopping the devnet\n');
  await net.stop();
  return 0;
};

/** What `tkms devnet fund` does: anvil_setBalance on the chain of the devnet in --dir. */
export const devnetFund: CommandRun<DevnetFundOptions> = async (opts, command) => {
  const dir = (command.parent!.opts() as DevnetCommandOptions).dir;
  const chain = await readDevnetChain(dir);
  const balance = await fundDevnetAccount(chain.rpcUrl, opts.address, opts.eth);
  process.stdout.write(`${opts.address} now holds ${formatEther(balance)} ETH on chain ${chain.chainId} (${chain.rpcUrl})\n`);
  return 0;
};
