/**
 * What the node and the gateway need of the on-chain ACL (implemented by chain/acl-reader.ts).
 * A grant is read at one block number B named by the gateway, so that all nodes agree on grants,
 * and again at each process's own head, so that a revocation takes effect at each node as soon as
 * that node's head reaches it, whatever B a requester names. Any doubt (RPC error, timeout,
 * malformed answer, providers that disagree, heads too far apart, wrong chain, a head older than
 * maxHeadAgeSeconds) is a TkmsError 'unavailable' (retryable), never a grant.
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
  /** Unix seconds; 0 once revoked (the contract deletes a revoked grant). */
  notAfter: number;
  /** isGranted at the block the listing was read at: false once revoked, expired or cancelled by revokeAll. */
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
  /**
   * The head: the newest block at least `quorum` providers have reached, adopted only when it is
   * within a few blocks of the highest head any provider reports (chain/block-policy.ts
   * confirmedHead), with the age of its timestamp.
   */
  head(): Promise<{ block: number; ageSeconds: number }>;
  /**
   * True when isGranted(handle, owner, grantee) holds at exactly `block` AND at this process's
   * current head (when the head is past `block`). B makes every node agree on grants (each needs the
   * grant at B); the head makes a revocation bind this process as soon as its head reaches the
   * revoking block, whatever B a requester names (nodes take partial requests from any peer, so B
   * is not the gateway's to guarantee). First checks B is at most maxBlockLag behind the head (else
   * 'acl_block_too_old'), and not ahead: a B up to a few blocks ahead is waited for, up to
   * aheadWaitMs, further is refused at once ('acl_block_ahead'). Each answer is cached per
   * (handle, owner, grantee, block); the cache is dropped when the head is seen to reorganise.
   */
  isGrantedAt(query: OnChainGrantQuery): Promise<boolean>;
  /**
   * The on-chain grants of `owner` on `handle`, from Granted events read newest first back to
   * fromBlock, at most `limit` (and at most MAX_LISTED_GRANTS), each with its state at `block` (the
   * head): revoked, expired and revokeAll-cancelled grants are listed with live = false. `truncated`
   * is true when a cap (the limit, the number of block windows or of events read) stopped the
   * listing before fromBlock: older grants may be missing.
   */
  listGrants(handle: Uint8Array, owner: Uint8Array, limit: number): Promise<{ block: number; grants: OnChainGrant[]; truncated: boolean }>;
}

/** What the reader reports, for each process to turn into its own Prometheus series. */
export interface ChainMetricsSink {
  /** One JSON-RPC call: method (eth_call, eth_getBlockByNumber, …), outcome ('ok' or an error code). */
  call(method: string, outcome: string, seconds: number): void;
  head(block: number, ageSeconds: number): void;
  /** A cached answer (hit) or not (miss). */
  cache(hit: boolean): void;
}

// Listing bounds: part of what a listing promises (the gateway's API describes them), not of how one reader reads.
/** The most grants one listing returns, whatever limit is asked for. */
export const MAX_LISTED_GRANTS = 1_000;
/**
 * Listings read Granted events newest first, this many blocks per eth_getLogs: providers commonly
 * cap a getLogs range (often at a few thousand blocks), and a window keeps one answer small.
 */
export const LOG_WINDOW_BLOCKS = 2_000;
/** At most this many windows per listing (100 000 blocks, about two weeks at 12 s): then truncated. */
export const MAX_LOG_WINDOWS = 50;
/** Once this many Granted events were read, a listing reads no further window: then truncated. */
export const MAX_LISTED_LOGS = 10_000;

/** An http:// or https:// URL, the only JSON-RPC transports the reader and the writer speak. */
export function isJsonRpcUrl(text: string): boolean {
  try {
    const url = new URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:';
  } catch {
    return false;
  }
}
