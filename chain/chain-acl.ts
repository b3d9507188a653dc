/**
 * What the node and the gateway need of the on-chain ACL (implemented by chain/acl-reader.ts).
 * Every answer is for one block number B, so that all nodes decide on the same chain state.
 * Any doubt (RPC error, timeout, malformed answer, providers that disagree, wrong chain, a head
 * older than maxHeadAgeSeconds) is a TkmsError 'unavailable' (retryable), never a grant.
 */
export interface OnChainGrantQuery {
  handle: Uint8Array;
  /** From the handle's commitment, never from the request. */
  owner: Uint8Array;
  grantee: Uint8Array;
  /** The block named by the gateway. */
  block: number;
}

export interface OnChainGrant {
  grantee: Uint8Array;
  notAfter: number;
  /** isGranted at the block the listing was read at. */
  live: boolean;
}

export interface ChainAcl {
  /**
   * Checks that every RPC URL reports the configured chain id, that code exists at the contract
   * address and that its VERSION() is the one this build speaks; then starts following the head.
   * Throws (the process refuses to start) otherwise.
   */
  start(): Promise<void>;
  stop(): Promise<void>;
  /** The newest block at least `quorum` providers have reached, and the age of its timestamp. */
  head(): Promise<{ block: number; ageSeconds: number }>;
  /**
   * isGranted(handle, owner, grantee) at exactly `block`, after checking the block is at most
   * maxBlockLag behind this process's head (else 'acl_block_too_old') and not ahead of it (it waits
   * up to aheadWaitMs for the head to get there, else 'acl_block_ahead'). Cached per
   * (handle, owner, grantee, block); the cache is dropped when the head is seen to reorganise.
   */
  isGrantedAt(query: OnChainGrantQuery): Promise<boolean>;
  /** The on-chain grants of `owner` on `handle` (from Granted events since fromBlock), at most `limit`. */
  listGrants(handle: Uint8Array, owner: Uint8Array, limit: number): Promise<{ block: number; grants: OnChainGrant[] }>;
}

/** What the reader reports, for each process to turn into its own Prometheus series. */
export interface ChainMetricsSink {
  /** One JSON-RPC call: method (eth_call, eth_getBlockByNumber, …), outcome ('ok' or an error code). */
  call(method: string, outcome: string, seconds: number): void;
  head(block: number, ageSeconds: number): void;
  /** A cached answer (hit) or not (miss). */
  cache(hit: boolean): void;
}
