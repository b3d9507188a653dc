import { getJson } from '../../deploy/devnet.ts';
import type { ChainFixture } from './chain-evm.ts';
import { waitFor } from './processes.ts';

/**
 * The `acl` config a devnet's nodes and gateway get for the on-chain ACL tests, and waits on what
 * each process has seen of the chain (its head-block gauge), so that a test that expects a
 * refusal knows the process had the newer head and refused for the right reason.
 */
export interface ChainAclTiming {
  /** Gateway: B = head − confirmations. */
  confirmations: number;
  /** Node: the oldest B accepted, in blocks behind its head. */
  maxBlockLag: number;
  /** Node: how long it waits for its RPC to reach a B ahead of its head. */
  aheadWaitMs: number;
  pollIntervalMs: number;
  rpcTimeoutMs: number;
}

/** Anvil without a block time mines only on demand, so its head is as old as the last test step. */
const MAX_HEAD_AGE_SECONDS = 86_400;

function sharedChain(chain: ChainFixture, rpcUrls: string[], timing: ChainAclTiming) {
  return {
    chainId: chain.chainId,
    contract: chain.contract,
    rpcUrls,
    rpcTimeoutMs: timing.rpcTimeoutMs,
    pollIntervalMs: timing.pollIntervalMs,
    maxHeadAgeSeconds: MAX_HEAD_AGE_SECONDS,
  };
}

export function nodeAclConfig(mode: 'chain' | 'either', chain: ChainFixture, rpcUrl: string, timing: ChainAclTiming): Record<string, unknown> {
  return { mode, chain: { ...sharedChain(chain, [rpcUrl], timing), maxBlockLag: timing.maxBlockLag, aheadWaitMs: timing.aheadWaitMs } };
}

export function gatewayAclConfig(mode: 'chain' | 'either', chain: ChainFixture, rpcUrl: string, timing: ChainAclTiming): Record<string, unknown> {
  return { mode, chain: { ...sharedChain(chain, [rpcUrl], timing), confirmations: timing.confirmations, fromBlock: chain.deployBlock } };
}

/** The head block a process last read (its `*_head_block` gauge), or undefined before its first read. */
export async function headSeen(baseUrl: string, gauge: 'tkms_gateway_chain_head_block' | 'tkms_chain_head_block'): Promise<number | undefined> {
  const { status, json } = await getJson(`${baseUrl}/metrics`);
  if (status !== 200 || typeof json !== 'string') return undefined;
  const m = new RegExp(`^${gauge} (\\d+)`, 'm').exec(json);
  return m === null ? undefined : Number(m[1]);
}

/** Waits until the gateway and the listed nodes have all read a head at or past `block`. */
export async function waitHeadsAt(block: number, processes: { gatewayUrl?: string; nodeUrls?: string[] }, timeoutMs = 10_000): Promise<void> {
  const probes: Promise<unknown>[] = [];
  if (processes.gatewayUrl !== undefined) {
    const url = processes.gatewayUrl;
    probes.push(waitFor(`the gateway to see block ${block}`, async () => ((await headSeen(url, 'tkms_gateway_chain_head_block')) ?? -1) >= block || undefined, { timeoutMs, intervalMs: 50 }));
  }
  for (const url of processes.nodeUrls ?? []) {
    probes.push(waitFor(`${url} to see block ${block}`, async () => ((await headSeen(url, 'tkms_chain_head_block')) ?? -1) >= block || undefined, { timeoutMs, intervalMs: 50 }));
  }
  await Promise.all(probes);
}
