import { mkdir, readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { createPublicClient, createTestClient, getAddress, http, isAddress, parseEther, type Hex } from 'viem';
import { ANVIL_DEV_PRIVATE_KEY, startAnvil, type AnvilChain } from '../chain/anvil.ts';
import { deployAcl } from '../chain/deploy.ts';
import { TkmsError } from '../core/errors.ts';

/**
 * The devnet's chain: one Anvil whose state lives in <dir>/chain, with TkmsAcl deployed once and
 * found again on every restart, and the `acl` config groups that point nodes and gateway at it.
 */

/** What devnet.json remembers of the chain. */
export interface DevnetChainLayout {
  port: number;
  chainId: number;
  contract: Hex;
  /** The deployment's block: where the gateway's grant listings start. */
  fromBlock: number;
  blockTimeSeconds: number;
}

/** `DevnetOptions.chain` as an object: the block time, and hooks for tests of the on-chain ACL. */
export interface DevnetChainOptions {
  blockTimeSeconds?: number;
  /** acl.mode of every node and the gateway; default "either" (signed grants keep working). */
  mode?: 'chain' | 'either';
  /** The gateway's confirmations; default DEVNET_CONFIRMATIONS. */
  confirmations?: number;
  /** Every node's maxBlockLag; default DEVNET_MAX_BLOCK_LAG. */
  maxBlockLag?: number;
  /** Test hook: the RPC URLs a node (by id) or the gateway reads the chain through, e.g. a proxy that lies. */
  rpcUrls?: (who: number | 'gateway', anvilUrl: string) => string[];
}

/** Where a running devnet's chain is reached. */
export interface DevnetChainEndpoint {
  rpcUrl: string;
  chainId: number;
  contract: Hex;
  fromBlock: number;
  /** The devnet's gateway (readDevnetChain only): where the CLI looks a handle's owner up. */
  gatewayUrl?: string;
}

/** One block a second keeps the head young (maxHeadAgeSeconds) without a transaction to mine it. */
export const DEVNET_BLOCK_TIME_SECONDS = 1;

/**
 * Blocks a request's block may lag a node's head; at one block a second, how long a gateway that
 * names an old block can serve a revoked grant.
 */
export const DEVNET_MAX_BLOCK_LAG = 10;

/** The gateway's confirmations on the devnet: a grant counts once one block is mined on top of it. */
export const DEVNET_CONFIRMATIONS = 1;

/** The head is read this often, so a revocation is seen within a block's time. */
const DEVNET_POLL_INTERVAL_MS = 250;

export function rpcUrlOf(chain: DevnetChainLayout): string {
  return `http://127.0.0.1:${chain.port}`;
}

export function devnetChainEndpoint(chain: DevnetChainLayout): DevnetChainEndpoint {
  return { rpcUrl: rpcUrlOf(chain), chainId: chain.chainId, contract: chain.contract, fromBlock: chain.fromBlock };
}

async function hasCode(rpcUrl: string, contract: Hex): Promise<boolean> {
  const code = await createPublicClient({ transport: http(rpcUrl, { retryCount: 0, timeout: 5_000 }) }).getCode({ address: contract });
  return code !== undefined && code !== '0x';
}

/**
 * Starts Anvil on the remembered port (a free one when it is taken or new) with its state file, and
 * deploys TkmsAcl unless the remembered deployment is still there. Returns the chain and the
 * layout to remember.
 */
export async function startDevnetChain(
  dir: string,
  remembered: DevnetChainLayout | undefined,
  options: { freePort: () => Promise<number>; blockTimeSeconds?: number; progress: (line: string) => void },
): Promise<{ anvil: AnvilChain; chain: DevnetChainLayout }> {
  await mkdir(join(dir, 'chain'), { recursive: true, mode: 0o700 });
  const blockTimeSeconds = options.blockTimeSeconds ?? remembered?.blockTimeSeconds ?? DEVNET_BLOCK_TIME_SECONDS;
  const stateFile = join(dir, 'chain', 'anvil-state.json');
  let anvil: AnvilChain;
  try {
    anvil = await startAnvil({ port: remembered?.port ?? (await options.freePort()), blockTimeSeconds, stateFile });
  } catch (e) {
    if (remembered === undefined) throw e;
    // The remembered port is taken: the RPC URL changes, every config is rewritten anyway.
    options.progress(`anvil could not take port ${remembered.port} again (${e instanceof Error ? e.message.slice(0, 120) : 'error'}); using another`);
    anvil = await startAnvil({ port: await options.freePort(), blockTimeSeconds, stateFile });
  }
  try {
    const port = Number(new URL(anvil.url).port);
    if (remembered !== undefined && remembered.chainId === anvil.chainId && (await hasCode(anvil.url, remembered.contract))) {
      options.progress(`chain ${anvil.chainId} at ${anvil.url}: TkmsAcl ${remembered.contract} already deployed (block ${remembered.fromBlock})`);
      return { anvil, chain: { ...remembered, port, blockTimeSeconds } };
    }
    const deployed = await deployAcl(anvil.url, ANVIL_DEV_PRIVATE_KEY);
    options.progress(`chain ${deployed.chainId} at ${anvil.url}: TkmsAcl deployed at ${getAddress(deployed.address)} (block ${deployed.blockNumber})`);
    return { anvil, chain: { port, chainId: deployed.chainId, contract: getAddress(deployed.address), fromBlock: deployed.blockNumber, blockTimeSeconds } };
  } catch (e) {
    await anvil.stop();
    throw e;
  }
}

/**
 * The `acl` group (config/chain-acl.ts) of a node (by id) or the gateway. Mode "either" unless the
 * options say otherwise: signed grants keep working beside on-chain ones, so everything a devnet
 * did before still works.
 */
export function devnetAclConfig(chain: DevnetChainLayout, who: number | 'gateway', options: DevnetChainOptions = {}): Record<string, unknown> {
  const url = rpcUrlOf(chain);
  const shared = { chainId: chain.chainId, contract: chain.contract, rpcUrls: options.rpcUrls?.(who, url) ?? [url], pollIntervalMs: DEVNET_POLL_INTERVAL_MS };
  const mode = options.mode ?? 'either';
  return who === 'gateway'
    ? { mode, chain: { ...shared, confirmations: options.confirmations ?? DEVNET_CONFIRMATIONS, fromBlock: chain.fromBlock } }
    : { mode, chain: { ...shared, maxBlockLag: options.maxBlockLag ?? DEVNET_MAX_BLOCK_LAG } };
}

/** The chain of the devnet in `dir`, from its devnet.json; refused when it has none. */
export async function readDevnetChain(dir: string): Promise<DevnetChainEndpoint> {
  const path = join(resolve(dir), 'devnet.json');
  let layout: { chain?: DevnetChainLayout; gatewayPort?: unknown };
  try {
    layout = JSON.parse(await readFile(path, 'utf8')) as { chain?: DevnetChainLayout; gatewayPort?: unknown };
  } catch (e) {
    throw new TkmsError('not_found', `no devnet in ${dir} (${(e as NodeJS.ErrnoException).code ?? 'unreadable'} ${path}); start one with "tkms devnet --chain --dir ${dir}"`);
  }
  if (layout.chain === undefined) throw new TkmsError('not_found', `the devnet in ${dir} has no chain; restart it with "tkms devnet --chain --dir ${dir}"`);
  const { gatewayPort } = layout;
  const gateway = Number.isInteger(gatewayPort) && (gatewayPort as number) > 0 && (gatewayPort as number) < 65_536 ? { gatewayUrl: `http://127.0.0.1:${gatewayPort as number}` } : {};
  return { ...devnetChainEndpoint(layout.chain), ...gateway };
}

/** Sets `address`'s balance on a dev chain (anvil_setBalance): gas money for its transactions. */
export async function fundDevnetAccount(rpcUrl: string, address: string, eth: string): Promise<bigint> {
  if (!isAddress(address, { strict: false })) throw new TkmsError('bad_address', '--address must be a 0x-prefixed 20-byte hex address');
  if (!/^[0-9]+(\.[0-9]{1,18})?$/.test(eth)) throw new TkmsError('bad_request', '--eth must be a decimal number of ETH');
  const value = parseEther(eth);
  const transport = http(rpcUrl, { retryCount: 0, timeout: 5_000 });
  try {
    await createTestClient({ mode: 'anvil', transport }).setBalance({ address: getAddress(address), value });
    return await createPublicClient({ transport }).getBalance({ address: getAddress(address) });
  } catch (e) {
    throw new TkmsError('unavailable', `the devnet chain at ${rpcUrl} did not answer (is "tkms devnet --chain" running?): ${e instanceof Error ? e.message.split('\n')[0] : 'error'}`);
  }
}
