import { TkmsError } from '../core/errors.ts';
import type { Logger } from '../runtime/logger.ts';
import type { ChainAcl, ChainMetricsSink, OnChainGrant, OnChainGrantQuery } from './chain-acl.ts';

/** Options of the reader: the `acl.chain` config of a node or a gateway (config/chain-acl.ts). */
export interface ChainAclReaderOptions {
  chainId: number;
  contract: string;
  rpcUrls: string[];
  /** Default: every URL. */
  quorum?: number;
  rpcTimeoutMs: number;
  pollIntervalMs: number;
  maxHeadAgeSeconds: number;
  /** Node only; the gateway names its own block and passes none. */
  maxBlockLag?: number;
  /** Node only. */
  aheadWaitMs?: number;
  /** Gateway listings: where Granted events are read from. */
  fromBlock?: number;
  metrics?: ChainMetricsSink;
  log?: Logger;
}

/** PLACEHOLDER until the reader lands (issue 15, helper "reader"): every call refuses. */
export function createChainAclReader(_options: ChainAclReaderOptions): ChainAcl {
  const refuse = (): never => {
    throw new TkmsError('not_implemented', 'the on-chain ACL reader is not built yet');
  };
  return {
    start: async () => refuse(),
    stop: async () => {},
    head: async () => refuse(),
    isGrantedAt: async (_q: OnChainGrantQuery) => refuse(),
    listGrants: async (): Promise<{ block: number; grants: OnChainGrant[] }> => refuse(),
  };
}
