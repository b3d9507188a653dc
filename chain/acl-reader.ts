import { bytesToHex, getAddress, isAddress, type Block, type Hex } from 'viem';
import { TkmsError } from '../core/errors.ts';
import { MAX_TIMESTAMP } from '../core/schema.ts';
import { LruCache } from '../core/lru.ts';
import type { Logger } from '../runtime/logger.ts';
import { TKMS_ACL_ABI } from './acl-artifact.ts';
import { type BlockRef, confirmedHead, headAgeSeconds, headFallsBehind, isReorg, isTrailingReport, judgeBlock, MAX_HEAD_SPREAD_BLOCKS, needsAncestorCheck } from './block-policy.ts';
import { LOG_WINDOW_BLOCKS, MAX_LISTED_GRANTS, MAX_LISTED_LOGS, MAX_LOG_WINDOWS, type ChainAcl, type ChainMetricsSink, type OnChainGrant, type OnChainGrantQuery } from './chain-acl.ts';
import { agreedAnswer, askAll, classifyRpcError, createProviders, type RpcProvider } from './rpc-quorum.ts';

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
  /** Answers kept per (handle, owner, grantee, block). Default 10 000 (a few MB). */
  cacheSize?: number;
  /** Lookups (and requests waiting for a block slightly ahead) allowed at once; more are refused (unavailable). Default 64. */
  maxInFlight?: number;
  /** Grant listings allowed at once, apart from lookups so that listings never starve them. Default 2. */
  maxListingsInFlight?: number;
  /** Blocks per eth_getLogs of a listing (LOG_WINDOW_BLOCKS); lower it for providers that cap ranges lower. */
  logWindowBlocks?: number;
  /** Windows per listing before it is truncated (MAX_LOG_WINDOWS). */
  maxLogWindows?: number;
}

/** The contract interface version this build speaks (TkmsAcl.VERSION). */
export const ACL_CONTRACT_VERSION = 1n;
// Answers are only useful while their block is within maxBlockLag of the head, so a small cache
// covers the hot set; each entry is a ~160-character key.
const DEFAULT_CACHE_SIZE = 10_000;
const DEFAULT_MAX_IN_FLIGHT = 64;
const DEFAULT_MAX_LISTINGS_IN_FLIGHT = 2;
/**
 * Listings kept per (handle, owner, head block): a listing costs up to ~1 000 calls per provider.
 * Only listings at the current head are of use, so few are kept (each up to ~150 KB).
 */
const LISTING_CACHE_SIZE = 32;
const GRANT_OF_BATCH = 16;
/**
 * A block at most this many blocks past this process's head is waited for (up to aheadWaitMs): that
 * is this process's RPC trailing the gateway's. A block further ahead is refused at once.
 */
export const MAX_AHEAD_BLOCKS = 3;
/** How often the head is re-read while waiting for a block that is ahead of it. */
const AHEAD_POLL_MS = 50;
/** Block hashes remembered, to tell a provider trailing behind our head from a reorganisation. */
const KNOWN_HASHES = 256;

type Listing = { block: number; grants: OnChainGrant[]; truncated: boolean };

const isBool = (raw: unknown): boolean | undefined => (typeof raw === 'boolean' ? raw : undefined);

function blockRef(raw: unknown): (BlockRef & { parentHash: string }) | undefined {
  const b = raw as Partial<Block> | null;
  if (b === null || typeof b !== 'object' || typeof b.number !== 'bigint' || typeof b.hash !== 'string' || typeof b.timestamp !== 'bigint' || typeof b.parentHash !== 'string') return undefined;
  return { number: Number(b.number), hash: b.hash, timestamp: Number(b.timestamp), parentHash: b.parentHash };
}

const blockKey = (b: BlockRef): string => `${b.number}/${b.hash}`;

function expectBytes(value: Uint8Array, length: number, name: string): void {
  if (!(value instanceof Uint8Array) || value.length !== length) throw new TkmsError('bad_request', `${name} must be ${length} bytes`);
}

export function createChainAclReader(options: ChainAclReaderOptions): ChainAcl {
  return new ChainAclReader(options);
}

class ChainAclReader implements ChainAcl {
  private readonly providers: RpcProvider[];
  private readonly quorum: number;
  private readonly address: Hex;
  private cache: LruCache<string, boolean>;
  /** Keyed with the cache generation: a lookup started before a reorg must not answer one asked after it. */
  private readonly inFlight = new Map<string, Promise<boolean>>();
  private readonly maxInFlight: number;
  /** Requests waiting for a block slightly ahead of the head; admitted like lookups. */
  private waiting = 0;
  private listings = new LruCache<string, Listing>(LISTING_CACHE_SIZE);
  private readonly listingsInFlight = new Map<string, Promise<Listing>>();
  private readonly maxListingsInFlight: number;
  /** The highest head any provider reported at the last poll that got an answer. */
  private highestReported: number | undefined;
  private readonly knownHashes = new Map<number, string>();
  /** Bumped on every reorg, so a lookup that started before one does not refill the cache after it. */
  private cacheGeneration = 0;
  private current: BlockRef | undefined;
  private refreshing: Promise<BlockRef> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  /** Poll failures are logged when they start and when they end, not once per interval. */
  private pollFailing = false;

  constructor(private readonly options: ChainAclReaderOptions) {
    if (options.rpcUrls.length === 0) throw new TkmsError('bad_request', 'acl.chain.rpcUrls names no RPC URL');
    this.quorum = options.quorum ?? options.rpcUrls.length;
    if (!Number.isInteger(this.quorum) || this.quorum < 1 || this.quorum > options.rpcUrls.length) throw new TkmsError('bad_request', `acl.chain.quorum must be between 1 and ${options.rpcUrls.length} (the number of RPC URLs)`);
    if (!isAddress(options.contract, { strict: false })) throw new TkmsError('bad_request', 'acl.chain.contract must be a 0x-prefixed 20-byte hex address');
    // The config takes any letter case; an EIP-55 checksum is not required, so do not let viem demand one.
    this.address = getAddress(options.contract.toLowerCase());
    this.providers = createProviders(options.rpcUrls, options.rpcTimeoutMs);
    this.cache = new LruCache(options.cacheSize ?? DEFAULT_CACHE_SIZE);
    this.maxInFlight = options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
    this.maxListingsInFlight = options.maxListingsInFlight ?? DEFAULT_MAX_LISTINGS_IN_FLIGHT;
  }

  async start(): Promise<void> {
    // Every provider is checked, not a quorum: a misconfigured URL is an operator error to fix now.
    await Promise.all(this.providers.map((p) => this.checkProvider(p)));
    await this.refreshHead();
    this.running = true;
    this.schedulePoll();
    this.options.log?.info({ chainId: this.options.chainId, contract: this.address, providers: this.providers.map((p) => `${p.name} ${p.host}`), quorum: this.quorum, head: this.current?.number }, 'on-chain ACL reader started');
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  async head(): Promise<{ block: number; ageSeconds: number }> {
    const head = this.current ?? (await this.refreshHead());
    return { block: head.number, ageSeconds: headAgeSeconds(Date.now(), head) };
  }

  async isGrantedAt(query: OnChainGrantQuery): Promise<boolean> {
    expectBytes(query.handle, 32, 'handle');
    expectBytes(query.owner, 20, 'owner');
    expectBytes(query.grantee, 20, 'grantee');
    if (!Number.isSafeInteger(query.block) || query.block < 0) throw new TkmsError('bad_request', 'the ACL block must be a non-negative integer');
    const head = await this.headFor(query.block);
    // The grant must hold at B (so all nodes agree on grants) and still at our own head: B is named
    // by the requester, so a revocation binds each process as soon as its head reaches it.
    const answers = await Promise.allSettled(head.number > query.block ? [this.lookup(query, query.block), this.lookup(query, head.number)] : [this.lookup(query, query.block)]);
    if (answers.some((a) => a.status === 'fulfilled' && !a.value)) return false;
    const failed = answers.find((a): a is PromiseRejectedResult => a.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
    return true;
  }

  async listGrants(handle: Uint8Array, owner: Uint8Array, limit: number): Promise<Listing> {
    expectBytes(handle, 32, 'handle');
    expectBytes(owner, 20, 'owner');
    const max = Math.max(0, Math.min(Math.floor(limit), MAX_LISTED_GRANTS));
    const head = this.usableHead();
    const key = `${bytesToHex(handle)}/${bytesToHex(owner)}/${head.number}/${head.hash}/${max}`;
    const cached = this.listings.get(key);
    if (cached !== undefined) return cached;
    const pending = this.listingsInFlight.get(key);
    if (pending !== undefined) return pending;
    if (this.listingsInFlight.size >= this.maxListingsInFlight) throw new TkmsError('unavailable', `${this.listingsInFlight.size} on-chain grant listings already running; retry`);
    const generation = this.cacheGeneration;
    const listing = this.readGrants(handle, owner, max, head)
      .then((result) => {
        if (generation === this.cacheGeneration) this.listings.set(key, result);
        return result;
      })
      .finally(() => this.listingsInFlight.delete(key));
    this.listingsInFlight.set(key, listing);
    return listing;
  }

  /** isGranted at `block`, from the cache, from a lookup already under way, or from the providers. */
  private async lookup(query: OnChainGrantQuery, block: number): Promise<boolean> {
    const key = `${bytesToHex(query.handle)}/${bytesToHex(query.owner)}/${bytesToHex(query.grantee)}/${block}`;
    const cached = this.cache.get(key);
    this.options.metrics?.cache(cached !== undefined);
    if (cached !== undefined) return cached;
    const generation = this.cacheGeneration;
    const flightKey = `${generation}#${key}`;
    const pending = this.inFlight.get(flightKey);
    if (pending !== undefined) return pending;
    this.admitOne();
    const lookup = this.readIsGranted(query, block)
      .then((granted) => {
        if (generation === this.cacheGeneration) this.cache.set(key, granted);
        return granted;
      })
      .finally(() => this.inFlight.delete(flightKey));
    this.inFlight.set(flightKey, lookup);
    return lookup;
  }

  /** Refuses once maxInFlight lookups and waiters are under way, so a flood costs bounded memory and sockets. */
  private admitOne(): void {
    const busy = this.inFlight.size + this.waiting;
    if (busy >= this.maxInFlight) throw new TkmsError('unavailable', `${busy} on-chain ACL lookups already waiting on the RPC; retry`);
  }

  /**
   * Waiting for a block ahead is cheap to ask for (any requester key, B = head + a few), so waiters
   * get a share of their own: past it a block ahead is refused at once, and lookups always keep
   * most of maxInFlight.
   */
  private admitWaiter(block: number, head: number): void {
    const share = Math.max(1, Math.floor(this.maxInFlight / 4));
    if (this.waiting >= share) throw new TkmsError('acl_block_ahead', `ACL block ${block} is ahead of this process's head ${head}, and ${this.waiting} requests already wait for blocks ahead; retry`, { block, head });
    this.admitOne();
  }

  /**
   * The head to judge `block` against: fresh, and at or past `block` when it is only a little ahead
   * (waited for, up to aheadWaitMs, as one of the admitted lookups). Throws the verdict's code otherwise.
   */
  private async headFor(block: number): Promise<BlockRef> {
    let head = this.usableHead();
    let verdict = judgeBlock(block, head.number, this.options.maxBlockLag, MAX_AHEAD_BLOCKS);
    if (verdict === 'ahead') {
      // Far ahead: one re-read of the head (the poll may trail the chain), shared with every caller
      // and taking no waiter's place, then refused unless the block came within reach.
      let refreshFailed: unknown;
      try {
        await this.refreshHead();
      } catch (e) {
        refreshFailed = e ?? new Error('refresh failed');
      }
      head = this.usableHead();
      verdict = judgeBlock(block, head.number, this.options.maxBlockLag, MAX_AHEAD_BLOCKS);
      if (verdict === 'ahead' && refreshFailed !== undefined) {
        throw new TkmsError('unavailable', `cannot read the chain head to judge ACL block ${block} (head ${head.number}): ${refreshFailed instanceof TkmsError ? refreshFailed.message : 'the RPC providers did not answer'}`, { block, head: head.number });
      }
    }
    if (verdict === 'wait') {
      this.admitWaiter(block, head.number);
      this.waiting++;
      let refreshFailed: unknown;
      try {
        ({ head, refreshFailed } = await this.waitForBlock(block));
      } finally {
        this.waiting--;
      }
      verdict = judgeBlock(block, head.number, this.options.maxBlockLag, MAX_AHEAD_BLOCKS);
      // Still short of the block because the providers do not answer: that is doubt about the chain
      // (unavailable), not a gateway ahead of it; the caller's shortfall must say which.
      if ((verdict === 'wait' || verdict === 'ahead') && refreshFailed !== undefined) {
        throw new TkmsError('unavailable', `cannot read the chain head to reach ACL block ${block} (head ${head.number}): ${refreshFailed instanceof TkmsError ? refreshFailed.message : 'the RPC providers did not answer'}`, { block, head: head.number });
      }
    }
    if (verdict === 'too_old') throw new TkmsError('acl_block_too_old', `ACL block ${block} is more than ${this.options.maxBlockLag} blocks behind this node's head ${head.number}`, { block, head: head.number });
    if (verdict === 'ahead') throw new TkmsError('acl_block_ahead', `ACL block ${block} is more than ${MAX_AHEAD_BLOCKS} blocks ahead of this process's head ${head.number}`, { block, head: head.number });
    if (verdict === 'wait') throw new TkmsError('acl_block_ahead', `ACL block ${block} is ahead of this process's head ${head.number} after waiting ${this.options.aheadWaitMs ?? 0} ms`, { block, head: head.number });
    return head;
  }

  /**
   * Re-reads the head until it reaches `block` or aheadWaitMs passed. A block still more than
   * MAX_AHEAD_BLOCKS ahead after a re-read (the poll may trail the chain a little) ends the wait at once.
   */
  private async waitForBlock(block: number): Promise<{ head: BlockRef; refreshFailed: unknown }> {
    const deadline = Date.now() + (this.options.aheadWaitMs ?? 0);
    for (;;) {
      let refreshFailed: unknown;
      try {
        await this.refreshHead();
      } catch (e) {
        // a failed refresh leaves the head as it was; usableHead judges its age, the caller the failure
        refreshFailed = e ?? new Error('refresh failed');
      }
      const head = this.usableHead();
      if (judgeBlock(block, head.number, undefined, MAX_AHEAD_BLOCKS) === 'ahead' || head.number >= block || Date.now() >= deadline) return { head, refreshFailed };
      await new Promise((r) => setTimeout(r, Math.min(AHEAD_POLL_MS, Math.max(0, deadline - Date.now()))));
    }
  }

  /** The head, if this process may answer from it: running, recent, and not held back behind what a provider reports. */
  private usableHead(): BlockRef {
    const head = this.current;
    if (!this.running || head === undefined) throw new TkmsError('unavailable', 'the on-chain ACL reader is not running');
    const age = headAgeSeconds(Date.now(), head);
    if (age > this.options.maxHeadAgeSeconds) throw new TkmsError('unavailable', `the chain head ${head.number} is ${Math.round(age)} s old (more than ${this.options.maxHeadAgeSeconds} s): the RPC providers are stuck or unreachable`, { head: head.number });
    if (headFallsBehind(head.number, this.highestReported)) {
      throw new TkmsError('unavailable', `an RPC provider reports head ${this.highestReported}, but only block ${head.number} is confirmed by ${this.quorum} (more than ${MAX_HEAD_SPREAD_BLOCKS} blocks apart): refusing rather than answering from an old head`, { head: head.number });
    }
    return head;
  }

  /**
   * Granted events newest first, one window of logWindowBlocks at a time from the head back to
   * fromBlock, then each distinct grantee's state at the head. Stops, marking the listing truncated,
   * when `max` grantees, maxLogWindows windows or MAX_LISTED_LOGS events are reached first.
   */
  private async readGrants(handle: Uint8Array, owner: Uint8Array, max: number, head: BlockRef): Promise<Listing> {
    const handleHex = bytesToHex(handle);
    const ownerHex = getAddress(bytesToHex(owner));
    const from = Math.min(this.options.fromBlock ?? 0, head.number);
    const grantees: Hex[] = [];
    const seen = new Set<Hex>();
    let truncated = false;
    let logs = 0;
    for (let to = head.number, windows = 0; to >= from; windows++) {
      if (grantees.length >= max || windows >= (this.options.maxLogWindows ?? MAX_LOG_WINDOWS) || logs >= MAX_LISTED_LOGS) {
        truncated = true;
        break;
      }
      const lo = Math.max(from, to - (this.options.logWindowBlocks ?? LOG_WINDOW_BLOCKS) + 1);
      const window = await this.readGrantedIn(handleHex, ownerHex, lo, to);
      logs += window.logs;
      for (const grantee of window.grantees) {
        if (seen.has(grantee)) continue;
        if (grantees.length >= max) {
          truncated = true;
          break;
        }
        seen.add(grantee);
        grantees.push(grantee);
      }
      to = lo - 1;
    }
    const grants: OnChainGrant[] = [];
    // A few grantees at a time: a long listing must not open hundreds of calls per provider at once.
    for (let i = 0; i < grantees.length; i += GRANT_OF_BATCH) {
      grants.push(...(await Promise.all(grantees.slice(i, i + GRANT_OF_BATCH).map((grantee) => this.readGrantOf(handleHex, ownerHex, grantee, head.number)))));
    }
    return { block: head.number, grants, truncated };
  }

  /** The distinct grantees of the Granted events in [fromBlock, toBlock], newest first, as every provider reports them. */
  private async readGrantedIn(handle: Hex, owner: Hex, fromBlock: number, toBlock: number): Promise<{ grantees: Hex[]; logs: number }> {
    const fanout = await askAll(
      this.providers,
      'eth_getLogs',
      (client) => client.getContractEvents({ address: this.address, abi: TKMS_ACL_ABI, eventName: 'Granted', args: { handle, owner }, fromBlock: BigInt(fromBlock), toBlock: BigInt(toBlock), strict: true }),
      (raw) => {
        if (!Array.isArray(raw)) return undefined;
        const grantees = distinctGrantees(raw);
        return grantees === undefined ? undefined : { grantees, logs: raw.length };
      },
      this.options.metrics,
    );
    return agreedAnswer(`the Granted events of blocks ${fromBlock}-${toBlock}`, fanout, this.quorum, (w) => `${w.logs}:${w.grantees.join(',')}`);
  }

  private async checkProvider(p: RpcProvider): Promise<void> {
    const fail = (code: 'unavailable' | 'chain_mismatch', message: string): never => {
      throw new TkmsError(code, `${p.name}: ${message}`, { provider: p.name });
    };
    const step = async <T>(method: string, run: () => Promise<T>): Promise<T> => {
      const started = performance.now();
      try {
        const value = await run();
        this.options.metrics?.call(method, 'ok', (performance.now() - started) / 1000);
        return value;
      } catch (error) {
        if (error instanceof TkmsError) throw error;
        const c = classifyRpcError(error);
        this.options.metrics?.call(method, c.outcome, (performance.now() - started) / 1000);
        if (c.notOurContract) fail('chain_mismatch', `the contract at ${this.address} does not answer VERSION() (not a TkmsAcl)`);
        return fail('unavailable', `${method} failed (${c.outcome === 'timeout' ? 'timeout' : 'no answer'})`);
      }
    };
    const chainId = await step('eth_chainId', () => p.client.getChainId());
    if (chainId !== this.options.chainId) fail('chain_mismatch', `reports chain id ${chainId}, configured ${this.options.chainId}`);
    const code = await step('eth_getCode', () => p.client.getCode({ address: this.address }));
    if (code === undefined || code === '0x') fail('chain_mismatch', `no contract code at ${this.address}`);
    const version = await step('eth_call', () => p.client.readContract({ address: this.address, abi: TKMS_ACL_ABI, functionName: 'VERSION' }));
    if (version !== ACL_CONTRACT_VERSION) fail('chain_mismatch', `the contract at ${this.address} is TkmsAcl version ${version}, this build speaks ${ACL_CONTRACT_VERSION}`);
  }

  private schedulePoll(): void {
    if (!this.running) return;
    this.timer = setTimeout(() => {
      this.refreshHead()
        .then(() => {
          if (this.pollFailing) this.options.log?.info('on-chain ACL head poll works again');
          this.pollFailing = false;
        })
        .catch((error: unknown) => {
          // The head held is now older: report its age, so that an alert on head age fires while polls fail.
          if (this.current !== undefined) this.options.metrics?.head(this.current.number, headAgeSeconds(Date.now(), this.current));
          if (!this.pollFailing) this.options.log?.warn({ err: error instanceof TkmsError ? error.message : 'error' }, 'on-chain ACL head poll failed; lookups refuse once the head is too old');
          this.pollFailing = true;
        })
        .finally(() => this.schedulePoll());
    }, this.options.pollIntervalMs);
    // The reader must not keep a process alive on its own; the servers that use it do.
    this.timer.unref();
  }

  /** One head read at a time: concurrent callers share it. */
  private refreshHead(): Promise<BlockRef> {
    this.refreshing ??= this.readHead().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  private async readHead(): Promise<BlockRef> {
    const latest = await askAll(this.providers, 'eth_getBlockByNumber', (c) => c.getBlock({ blockTag: 'latest' }), blockRef, this.options.metrics);
    const heads = latest.answers.map((a) => a.value.number);
    if (heads.length > 0) this.highestReported = Math.max(...heads);
    const verdict = confirmedHead(heads, this.quorum);
    // Fewer answers than the quorum: agreedAnswer throws, naming the providers that failed.
    if (!verdict.ok && verdict.reason === 'too_few') return agreedAnswer('the latest block', latest, this.quorum, blockKey);
    if (!verdict.ok) {
      const said = latest.answers.map((a) => `${a.provider} at ${a.value.number}`).join(', ');
      throw new TkmsError('unavailable', `RPC providers' heads are more than ${MAX_HEAD_SPREAD_BLOCKS} blocks apart (${said}); refusing rather than following any one of them`);
    }
    // Providers at different heights: ask them all for the block the quorum reached, and require one hash.
    const sameBlock = heads.every((n) => n === verdict.number);
    const next = sameBlock ? agreedAnswer('the latest block', latest, this.quorum, blockKey) : await this.readBlock(verdict.number);
    const last = this.current;
    if (last !== undefined && isTrailingReport(last, next, this.knownHashes.get(next.number))) return last;
    if (last !== undefined && next.number < last.number) return this.lowerHeadReported(last, next);
    if (last !== undefined && last.hash !== next.hash) {
      const ancestor = needsAncestorCheck(last, next) ? (await this.readBlock(last.number)).hash : undefined;
      if (isReorg(last, next, ancestor)) this.dropCache(last, next, 'chain reorganisation seen');
    }
    return this.adopt(next);
  }

  /**
   * The quorum reports a head below the one held, at a block never adopted: a provider trailing (or
   * lying), or the chain reorganising to a shorter branch. The head never moves back on that word
   * alone, or a revocation already in force could be undone for a poll: the block at the held
   * number decides. The same hash: a trailing report, keep the head. Another hash: a reorganisation,
   * whose block at that number becomes the head. Unreadable: this poll fails and the held head
   * ages; when a quorum says that block no longer exists (a shorter branch), or a block below it
   * that we adopted now has another hash, the cached answers are dropped first. A plain failure
   * (a provider trailing or timing out) drops nothing: that is no evidence of a reorganisation.
   */
  private async lowerHeadReported(last: BlockRef, next: BlockRef): Promise<BlockRef> {
    const fanout = await askAll(this.providers, 'eth_getBlockByNumber', (c) => c.getBlock({ blockNumber: BigInt(last.number) }), blockRef, this.options.metrics);
    // Evidence, not a mere failure: a quorum saying the held block does not exist (a shorter
    // branch), or a block below the head that we adopted with another hash.
    const gone = fanout.answers.length === 0 && fanout.failures.filter((f) => f.outcome === 'not_found').length >= this.quorum;
    const known = this.knownHashes.get(next.number);
    const rewritten = known !== undefined && known !== next.hash;
    if (gone || rewritten) this.dropCache(last, next, gone ? `block ${last.number} is gone (a shorter branch)` : `block ${next.number} changed (a reorganisation below the head)`);
    let atLast: BlockRef & { parentHash: string };
    try {
      atLast = agreedAnswer(`block ${last.number}`, fanout, this.quorum, blockKey);
    } catch (e) {
      throw new TkmsError('unavailable', `RPC providers report head ${next.number}, below the head ${last.number} held, and block ${last.number} cannot be read: keeping the held head (${e instanceof TkmsError ? e.message : 'no answer'})`);
    }
    if (atLast.hash === last.hash) return last;
    if (!gone && !rewritten) this.dropCache(last, atLast, 'chain reorganisation seen');
    return this.adopt(atLast);
  }

  private dropCache(from: BlockRef, to: BlockRef, why: string): void {
    this.cacheGeneration++;
    this.cache = new LruCache(this.options.cacheSize ?? DEFAULT_CACHE_SIZE);
    this.listings = new LruCache<string, Listing>(LISTING_CACHE_SIZE);
    this.knownHashes.clear();
    this.options.log?.warn({ from: from.number, fromHash: from.hash, to: to.number, toHash: to.hash }, `${why}: on-chain ACL cache dropped`);
  }

  private adopt(next: BlockRef): BlockRef {
    this.current = next;
    this.knownHashes.set(next.number, next.hash);
    // Oldest first: a Map iterates in insertion order.
    for (const number of this.knownHashes.keys()) {
      if (this.knownHashes.size <= KNOWN_HASHES) break;
      this.knownHashes.delete(number);
    }
    this.options.metrics?.head(next.number, headAgeSeconds(Date.now(), next));
    return next;
  }

  private async readBlock(number: number): Promise<BlockRef & { parentHash: string }> {
    const fanout = await askAll(this.providers, 'eth_getBlockByNumber', (c) => c.getBlock({ blockNumber: BigInt(number) }), blockRef, this.options.metrics);
    return agreedAnswer(`block ${number}`, fanout, this.quorum, blockKey);
  }

  private async readIsGranted(query: OnChainGrantQuery, block: number): Promise<boolean> {
    const args = [bytesToHex(query.handle), getAddress(bytesToHex(query.owner)), getAddress(bytesToHex(query.grantee))] as const;
    const fanout = await askAll(this.providers, 'eth_call', (c) => c.readContract({ address: this.address, abi: TKMS_ACL_ABI, functionName: 'isGranted', args, blockNumber: BigInt(block) }), isBool, this.options.metrics);
    return agreedAnswer(`isGranted at block ${block}`, fanout, this.quorum, String);
  }

  private async readGrantOf(handle: Hex, owner: Hex, grantee: Hex, block: number): Promise<OnChainGrant> {
    const fanout = await askAll(
      this.providers,
      'eth_call',
      (c) => c.readContract({ address: this.address, abi: TKMS_ACL_ABI, functionName: 'grantOf', args: [handle, owner, grantee], blockNumber: BigInt(block) }),
      (raw) => (Array.isArray(raw) && raw.length === 3 && typeof raw[0] === 'bigint' && typeof raw[2] === 'boolean' ? { notAfter: raw[0] > BigInt(MAX_TIMESTAMP) ? MAX_TIMESTAMP : Number(raw[0]), live: raw[2] } : undefined),
      this.options.metrics,
    );
    const g = agreedAnswer(`grantOf at block ${block}`, fanout, this.quorum, (v) => `${v.notAfter}/${v.live}`);
    // notAfter 0: revoked since the Granted event (nothing stored any more); listed, not live.
    return { grantee: hexToBytes20(grantee), notAfter: g.notAfter, live: g.live };
  }
}

/** The distinct grantees of some logs, newest first (a listing shows recent grants first). */
function distinctGrantees(logs: readonly unknown[]): Hex[] | undefined {
  const seen = new Set<Hex>();
  for (let i = logs.length - 1; i >= 0; i--) {
    const grantee = (logs[i] as { args?: { grantee?: unknown } }).args?.grantee;
    if (typeof grantee !== 'string' || !isAddress(grantee, { strict: false })) return undefined;
    seen.add(getAddress(grantee));
  }
  return [...seen];
}

function hexToBytes20(address: Hex): Uint8Array {
  return Uint8Array.from(Buffer.from(address.slice(2), 'hex'));
}
