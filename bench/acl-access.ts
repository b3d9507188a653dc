import '../core/polyfills.ts';
import type { Devnet } from '../deploy/devnet.ts';
import { ChainFixture } from '../test/support/chain-evm.ts';
import { gatewayAclConfig, nodeAclConfig, waitHeadsAt, type ChainAclTiming } from '../test/support/chain-devnet.ts';
import { benchEndToEnd, printE2eRow, processCpuMs, type E2eOptions, type E2eResult, type ReaderAccess } from './e2e.ts';

/**
 * The two ways a grantee gets to decrypt, benchmarked side by side on the same 3-of-5 devnet
 * layout: an owner-signed grant the gateway attaches to each request, and a grant in the TkmsAcl
 * contract that the gateway and every node read over JSON-RPC at the gateway's block B.
 */
export function signedGrantAccess(): ReaderAccess {
  return {
    label: 'signed grant',
    nodeConfig: {},
    gatewayConfig: {},
    allow: async ({ ownerClient, handle, reader }) => {
      await ownerClient.grant(handle, reader.address);
    },
  };
}

/** The config defaults (config/chain-acl.ts), so the row shows what an operator gets out of the box. */
const DEFAULT_TIMING: ChainAclTiming = { confirmations: 2, maxBlockLag: 32, aheadWaitMs: 2_000, pollIntervalMs: 1_000, rpcTimeoutMs: 3_000 };

/** Sums a counter over every node's /metrics: `series` is the name with its labels, as exposed. */
async function nodesCounter(devnet: Devnet, series: string): Promise<number> {
  let total = 0;
  for (const node of devnet.nodes) {
    const text = await (await fetch(`${node.httpUrl}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${series} `));
    total += line === undefined ? 0 : Number(line.slice(series.length + 1));
  }
  return total;
}

/**
 * Runs `run` with an on-chain-grant access: anvil mining a block every `blockTimeSeconds` (a fast
 * chain: B moves on, and each node's cache per (handle, owner, grantee, B) with it), the contract
 * deployed, the owner's grant sent as its own transaction and waited for until B reaches it.
 */
export async function withChainGrantAccess<T>(run: (access: ReaderAccess) => Promise<T>, blockTimeSeconds = 1): Promise<T> {
  const chain = await ChainFixture.start({ blockTimeSeconds });
  try {
    const timing = DEFAULT_TIMING;
    let anvilCpuAtStart = 0;
    const access: ReaderAccess = {
      label: `on-chain grant (anvil, ${blockTimeSeconds} s blocks, ${timing.confirmations} confirmations)`,
      // Every node its own provider in production; on one machine they all read the one anvil.
      nodeConfig: { acl: nodeAclConfig('chain', chain, chain.url, timing) },
      gatewayConfig: { acl: gatewayAclConfig('chain', chain, chain.url, timing) },
      allow: async ({ devnet, owner, handle, reader }) => {
        if (anvilCpuAtStart === 0) anvilCpuAtStart = await processCpuMs(chain.anvil.pid);
        const tx = await chain.grant(owner, handle, reader.address);
        await waitHeadsAt(tx.block + timing.confirmations, { gatewayUrl: devnet.gatewayUrl, nodeUrls: devnet.nodes.map((n) => n.httpUrl) }, 30_000);
      },
      stats: async (devnet) => {
        const hits = await nodesCounter(devnet, 'tkms_chain_cache_lookups_total{result="hit"}');
        const misses = await nodesCounter(devnet, 'tkms_chain_cache_lookups_total{result="miss"}');
        const calls = await nodesCounter(devnet, 'tkms_chain_calls_total{method="eth_call",outcome="ok"}');
        return {
          nodeCacheHitRatio: Number((hits / Math.max(1, hits + misses)).toFixed(3)),
          nodeLookups: hits + misses,
          nodeEthCalls: calls,
          anvilCpuMs: Math.round((await processCpuMs(chain.anvil.pid)) - anvilCpuAtStart),
        };
      },
    };
    return await run(access);
  } finally {
    await chain.stop();
  }
}

export interface AclRows {
  signedGrant: E2eResult;
  chainGrant: E2eResult;
  /** On-chain over signed. */
  ratio: { delegationP50: number; decryptP50: number; throughput: number };
}

/** The 3-of-5 rows with a grantee decrypting: a signed grant, then an on-chain grant, in one run; printed as they come. */
export async function benchAclRows(opts: Pick<E2eOptions, 'decrypts' | 'concurrency' | 'seconds'>): Promise<AclRows> {
  console.log('\n3-of-5, decrypts by a grantee: an owner-signed grant beside an on-chain grant (TkmsAcl read by the gateway and every node at block B)');
  const signedGrant = await benchEndToEnd({ n: 5, t: 3, ...opts, access: signedGrantAccess() });
  printE2eRow(signedGrant);
  const chainGrant = await withChainGrantAccess((access) => benchEndToEnd({ n: 5, t: 3, ...opts, access }));
  printE2eRow(chainGrant);
  const ratio = {
    delegationP50: Number((chainGrant.delegateMs.p50 / signedGrant.delegateMs.p50).toFixed(2)),
    decryptP50: Number((chainGrant.decryptMs.p50 / signedGrant.decryptMs.p50).toFixed(2)),
    throughput: Number((chainGrant.throughput.decryptsPerSecond / signedGrant.throughput.decryptsPerSecond).toFixed(2)),
  };
  console.log(`  on-chain / signed grant: delegation p50 ${ratio.delegationP50}×, decrypt p50 ${ratio.decryptP50}×, throughput ${ratio.throughput}×`);
  return { signedGrant, chainGrant, ratio };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  // Just these two rows: tsx bench/acl-access.ts [decrypts] [seconds]
  await benchAclRows({ decrypts: Number(process.argv[2] ?? 200), concurrency: 16, seconds: Number(process.argv[3] ?? 10) });
}
