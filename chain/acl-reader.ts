import { bytesToHex, getAddress, type Block, type Hex } from 'viem';
import { TkmsError } from '../core/errors.ts';
import { LruCache } from '../core/lru.ts';
import type { Logger } from '../runtime/logger.ts';
import { TKMS_ACL_ABI } from './acl-artifact.ts';
import { type BlockRef, headAgeSeconds, isReorg, judgeBlock, needsAncestorCheck, quorumHeadNumber } from './block-policy.ts';
import type { ChainAcl, ChainMetricsSink, OnChainGrant, OnChainGrantQuery } from './chain-acl.ts';
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
  /** Lookups and listings allowed to be waiting on the RPC at once; more are refused (unavailable). Default 64. */
  maxInFlight?: number;
}

/** The contract interface version this build speaks (TkmsAcl.VERSION). */
export const ACL_CONTRACT_VERSION = 1n;
// Answers are only useful while their block is within maxBlockLag of the head, so a small cache
// covers the hot set; each entry is a ~160-character key.
const DEFAULT_CACHE_SIZE = 10_000;
const DEFAULT_MAX_IN_FLIGHT = 64;
const MAX_LISTED_GRANTS = 1_000;
const GRANT_OF_BATCH = 16;
/** How often the head is re-read while waiting for a block that is ahead of it. */
const AHEAD_POLL_MS = 50;

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
  private readonly inFlight = new Map<string, Promise<boolean>>();
  private readonly maxInFlight: number;
  /** Bumped on every reorg, so a lookup that started before one does not refill the cache after it. */
  private cacheGeneration = 0;
  private current: BlockRef | undefined;
  private refreshing: Promise<BlockRef> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private listingsInFlight = 0;
  /** Poll failures are logged when they start and when they end, not once per interval. */
  private pollFailing = false;

  constructor(private readonly options: ChainAclReaderOptions) {
    if (options.rpcUrls.length === 0) throw new TkmsError('bad_request', 'acl.chain.rpcUrls names no RPC URL');
    this.quorum = options.quorum ?? options.rpcUrls.length;
    if (!Number.isInteger(this.quorum) || this.quorum < 1 || this.quorum > options.rpcUrls.length) throw new TkmsError('bad_request', `acl.chain.quorum must be between 1 and ${options.rpcUrls.length} (the number of RPC URLs)`);
    if (!/^0x[0-9a-fA-F]{40}$/.test(options.contract)) throw new TkmsError('bad_request', 'acl.chain.contract must be a 0x-prefixed 20-byte hex address');
    // The config takes any letter case; an EIP-55 checksum is not required, so do not let viem demand one.
    this.address = getAddress(options.contract.toLowerCase());
    this.providers = createProviders(options.rpcUrls, options.rpcTimeoutMs);
    this.cache = new LruCache(options.cacheSize ?? DEFAULT_CACHE_SIZE);
    this.maxInFlight = options.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
  }

  async start(): Promise<void> {
    // Every provider is checked, not a quorum: a misconfigured URL is an operator error to fix now.
    await Promise.all(this.providers.map((p) => this.checkProvider(p)));
    await this.refreshHead();
    this.running = true;
    this.schedulePoll();
    this.options.log?.info({ chainId: this.options.chainId, contract: this.address, providers: this.providers.map((p) => p.name), quorum: this.quorum, head: this.current?.number }, 'on-chain ACL reader started');
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
    const head = await this.freshHeadReaching(query.block);
    const verdict = judgeBlock(query.block, head.number, this.options.maxBlockLag);
    if (verdict === 'too_old') throw new TkmsError('acl_block_too_old', `ACL block ${query.block} is more than ${this.options.maxBlockLag} blocks behind this node's head ${head.number}`, { block: query.block, head: head.number });
    if (verdict === 'ahead') throw new TkmsError('acl_block_ahead', `ACL block ${query.block} is ahead of this node's head ${head.number} after waiting ${this.options.aheadWaitMs ?? 0} ms`, { block: query.block, head: head.number });

    const key = `${bytesToHex(query.handle)}/${bytesToHex(query.owner)}/${bytesToHex(query.grantee)}/${query.block}`;
    const cached = this.cache.get(key);
    this.options.metrics?.cache(cached !== undefined);
    if (cached !== undefined) return cached;
    const pending = this.inFlight.get(key);
    if (pending !== undefined) return pending;
    this.admitOne();

    const generation = this.cacheGeneration;
    const lookup = this.readIsGranted(query).then((granted) => {
      if (generation === this.cacheGeneration) this.cache.set(key, granted);
      return granted;
    });
    this.inFlight.set(key, lookup);
    try {
      return await lookup;
    } finally {
      this.inFlight.delete(key);
    }
  }

  async listGrants(handle: Uint8Array, owner: Uint8Array, limit: number): Promise<{ block: number; grants: OnChainGrant[] }> {
    expectBytes(handle, 32, 'handle');
    expectBytes(owner, 20, 'owner');
    const max = Math.max(0, Math.min(Math.floor(limit), MAX_LISTED_GRANTS));
    const head = await this.freshHeadReaching(0);
    this.admitOne();
    this.listingsInFlight++;
    try {
      return await this.readGrants(handle, owner, max, head);
    } finally {
      this.listingsInFlight--;
    }
  }

  /** Refuses once maxInFlight lookups wait on the RPC, so a flood costs bounded memory and sockets. */
  private admitOne(): void {
    const busy = this.inFlight.size + this.listingsInFlight;
    if (busy >= this.maxInFlight) throw new TkmsError('unavailable', `${busy} on-chain ACL lookups already waiting on the RPC; retry`);
  }

  private async readGrants(handle: Uint8Array, owner: Uint8Array, max: number, head: BlockRef): Promise<{ block: number; grants: OnChainGrant[] }> {
    const handleHex = bytesToHex(handle);
    const ownerHex = getAddress(bytesToHex(owner));
    const fanout = await askAll(
      this.providers,
      'eth_getLogs',
      (client) => client.getContractEvents({ address: this.address, abi: TKMS_ACL_ABI, eventName: 'Granted', args: { handle: handleHex, owner: ownerHex }, fromBlock: BigInt(this.options.fromBlock ?? 0), toBlock: BigInt(head.number), strict: true }),
      (raw) => (Array.isArray(raw) ? distinctGrantees(raw, max) : undefined),
      this.options.metrics,
    );
    const grantees = agreedAnswer('the Granted events', fanout, this.quorum, (list) => list.join(','));
    const grants: OnChainGrant[] = [];
    // A few grantees at a time: a long listing must not open hundreds of calls per provider at once.
    for (let i = 0; i < grantees.length; i += GRANT_OF_BATCH) {
      const batch = await Promise.all(grantees.slice(i, i + GRANT_OF_BATCH).map((grantee) => this.readGrantOf(handleHex, ownerHex, grantee, head.number)));
      for (const g of batch) if (g !== undefined) grants.push(g);
    }
    return { block: head.number, grants };
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

  /** The head, fresh enough to trust, and at or past `block` if it gets there within aheadWaitMs. */
  private async freshHeadReaching(block: number): Promise<BlockRef> {
    if (!this.running || this.current === undefined) throw new TkmsError('unavailable', 'the on-chain ACL reader is not running');
    let head = this.current;
    if (head.number < block) {
      const deadline = Date.now() + (this.options.aheadWaitMs ?? 0);
      for (;;) {
        try {
          head = await this.refreshHead();
        } catch {
          head = this.current ?? head; // a failed refresh is judged below by the head's age
        }
        if (head.number >= block || Date.now() >= deadline) break;
        await new Promise((r) => setTimeout(r, Math.min(AHEAD_POLL_MS, Math.max(0, deadline - Date.now()))));
      }
    }
    const age = headAgeSeconds(Date.now(), head);
    if (age > this.options.maxHeadAgeSeconds) throw new TkmsError('unavailable', `the chain head ${head.number} is ${Math.round(age)} s old (more than ${this.options.maxHeadAgeSeconds} s): the RPC providers are stuck or unreachable`, { head: head.number });
    return head;
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
    const number = quorumHeadNumber(
      latest.answers.map((a) => a.value.number),
      this.quorum,
    );
    if (number === undefined) return agreedAnswer('the latest block', latest, this.quorum, blockKey);
    // Providers at different heights: ask them all for the block the quorum reached, and require one hash.
    const sameBlock = latest.answers.every((a) => a.value.number === number);
    const next = sameBlock ? agreedAnswer('the latest block', latest, this.quorum, blockKey) : await this.readBlock(number);
    const last = this.current;
    if (last !== undefined && last.hash !== next.hash) {
      const ancestor = needsAncestorCheck(last, next) ? (await this.readBlock(last.number)).hash : undefined;
      if (isReorg(last, next, ancestor)) {
        this.cacheGeneration++;
        this.cache = new LruCache(this.options.cacheSize ?? DEFAULT_CACHE_SIZE);
        this.options.log?.warn({ from: last.number, fromHash: last.hash, to: next.number, toHash: next.hash }, 'chain reorganisation seen: on-chain ACL cache dropped');
      }
    }
    this.current = next;
    this.options.metrics?.head(next.number, headAgeSeconds(Date.now(), next));
    return next;
  }

  private async readBlock(number: number): Promise<BlockRef & { parentHash: string }> {
    const fanout = await askAll(this.providers, 'eth_getBlockByNumber', (c) => c.getBlock({ blockNumber: BigInt(number) }), blockRef, this.options.metrics);
    return agreedAnswer(`block ${number}`, fanout, this.quorum, blockKey);
  }

  private async readIsGranted(query: OnChainGrantQuery): Promise<boolean> {
    const args = [bytesToHex(query.handle), getAddress(bytesToHex(query.owner)), getAddress(bytesToHex(query.grantee))] as const;
    const fanout = await askAll(this.providers, 'eth_call', (c) => c.readContract({ address: this.address, abi: TKMS_ACL_ABI, functionName: 'isGranted', args, blockNumber: BigInt(query.block) }), isBool, this.options.metrics);
    return agreedAnswer(`isGranted at block ${query.block}`, fanout, this.quorum, String);
  }

  private async readGrantOf(handle: Hex, owner: Hex, grantee: Hex, block: number): Promise<OnChainGrant | undefined> {
    const fanout = await askAll(
      this.providers,
      'eth_call',
      (c) => c.readContract({ address: this.address, abi: TKMS_ACL_ABI, functionName: 'grantOf', args: [handle, owner, grantee], blockNumber: BigInt(block) }),
      (raw) => (Array.isArray(raw) && raw.length === 3 && typeof raw[0] === 'bigint' && typeof raw[2] === 'boolean' ? { notAfter: Number(raw[0]), live: raw[2] } : undefined),
      this.options.metrics,
    );
    const g = agreedAnswer(`grantOf at block ${block}`, fanout, this.quorum, (v) => `${v.notAfter}/${v.live}`);
    // notAfter 0: revoked since the Granted event; nothing stored any more.
    return g.notAfter === 0 ? undefined : { grantee: hexToBytes20(grantee), notAfter: g.notAfter, live: g.live };
  }
}

/** The newest `max` distinct grantees, newest first (a listing shows current grants first). */
function distinctGrantees(logs: readonly unknown[], max: number): Hex[] | undefined {
  const seen = new Set<Hex>();
  for (let i = logs.length - 1; i >= 0 && seen.size < max; i--) {
    const grantee = (logs[i] as { args?: { grantee?: unknown } }).args?.grantee;
    if (typeof grantee !== 'string' || !/^0x[0-9a-fA-F]{40}$/.test(grantee)) return undefined;
    seen.add(getAddress(grantee));
  }
  return [...seen];
}

function hexToBytes20(address: Hex): Uint8Array {
  return Uint8Array.from(Buffer.from(address.slice(2), 'hex'));
}
