import { bytesToHex, DEFAULT_CLOCK_SKEW_SECONDS, DEFAULT_MAX_GRANT_LIFETIME_SECONDS, RevocationEnvelopeBody, grantKey, TkmsError, verifyRevocation, type Deployment, type RevocationEnvelope } from '../core/index.ts';
import { ExpiryHeap } from '../core/expiry-heap.ts';
import { OwnerCounts } from '../config/owner-limits.ts';
import { dirname } from 'node:path';
import { ensurePrivateDirectory } from '../storage/durable-fs.ts';
import { openBucketKey, parseWatermarkLine, RevocationWatermarks } from '../storage/revocation-watermarks.ts';
import { AppendLog } from '../storage/append-log.ts';

/**
 * Revocations this node has seen, checked (owner signature, handle commitment, K proof) before
 * they are kept, and fsynced before they are acknowledged: a node that said "stored" never
 * forgets one while it can matter. Only the latest revocation per (handle, grantee) is kept.
 *
 * What bounds the store, whoever sends:
 *   - Lifetime: a revocation cancels grants issued at or before revokedAt, and a grant is valid
 *     for at most maxGrantLifetimeSeconds, so after revokedAt + that + skew it cancels nothing;
 *     it is dropped then (in expiry order, from a heap: no scan on the request path).
 *   - Per owner: at most `perOwner` live revocations per handle owner (the signer).
 *   - In total: at most `max`. When full, a new revocation still gets in: the oldest revocation
 *     of the owner holding the most is folded into its owner's watermark bucket
 *     (storage/revocation-watermarks.ts), which keeps it in force, and many more grants with it, until
 *     it expires. A live revocation is never forgotten, and a full store never refuses one: a
 *     flood costs grant holders availability, never re-enables a revoked grant (docs/operators.md).
 *     Watermarks are written to the log when it is compacted; until then the folded lines are
 *     still in it, and opening the log folds them again. Buckets are keyed with the store's own
 *     random key, kept in `<log>.bucket-key` (created at first open): an outsider cannot aim a
 *     flood at a chosen owner's bucket. If that file is lost, the log's watermarks can no longer
 *     be placed: each then covers every bucket (fails closed) until it expires.
 *   - The log is compacted when superseded or expired lines make it more than twice the live
 *     set, by lines or by bytes, and it is read as a stream when the node starts.
 * Paging for sync walks the kept revocations in order of arrival, by arrival number, so an
 * entry dropped between two pages does not make the reader skip another.
 */
export interface RevocationLimits {
  /** Longest a grant may be valid (config maxGrantLifetimeSeconds). */
  maxGrantLifetimeSeconds: number;
  clockSkewSeconds: number;
  perOwner: number;
  max: number;
}

export const DEFAULT_REVOCATION_LIMITS: RevocationLimits = {
  maxGrantLifetimeSeconds: DEFAULT_MAX_GRANT_LIFETIME_SECONDS,
  clockSkewSeconds: DEFAULT_CLOCK_SKEW_SECONDS,
  perOwner: 10_000,
  max: 200_000,
};

/** Log bytes beyond twice the live set tolerated before compacting: small logs are not rewritten often. */
const COMPACT_SLACK_BYTES = 256 * 1024;
const COMPACT_SLACK_LINES = 1_000;
/** At most the bytes of one watermark line (`{"watermark":{"bucket":65535,"upTo":…}}`). */
const WATERMARK_LINE_BYTES = 64;

interface Held {
  item: RevocationEnvelope;
  owner: string;
  /** Arrival number: the sync cursor. */
  seq: number;
  /** Bytes of its log line. */
  bytes: number;
}

/** A write not yet on disk; `owner` and the key are already counted against the limits. */
interface Pending {
  item: RevocationEnvelope;
  done: Promise<void>;
}

interface Expiry {
  at: number;
  key: string;
  revokedAt: number;
}

export class RevocationStore {
  /** grantKey → the latest revocation on disk; Map order = order of (last) arrival. */
  private readonly items = new Map<string, Held>();
  private readonly pending = new Map<string, Pending>();
  private readonly owners = new OwnerCounts();
  private readonly expiries = new ExpiryHeap<Expiry>();
  private readonly watermarks: RevocationWatermarks;
  /** items.values() as an array for paging; rebuilt only after a change. */
  private ordered: Held[] | undefined;
  private nextSeq = 0;
  private liveBytes = 0;
  private compacting: Promise<void> | undefined;
  /** Set once the log has been read (lines are loaded before it exists). */
  private log!: AppendLog;
  private loading = true;

  private constructor(
    private readonly limits: RevocationLimits,
    private readonly deployment: Deployment,
    bucketKey: Uint8Array,
  ) {
    this.watermarks = new RevocationWatermarks(bucketKey, (upTo) => this.expiresAt(upTo));
  }

  /**
   * Lines are not re-verified on open: a revocation stored under an older signature format
   * (version 1) stays in force, and the log opens whatever the format of its signatures.
   */
  static async open(
    path: string,
    deployment: Deployment,
    limits: Partial<RevocationLimits> = {},
    nowSeconds = Math.floor(Date.now() / 1000),
  ): Promise<{ store: RevocationStore; tornBytes: number; dropped: number }> {
    await ensurePrivateDirectory(dirname(path), 'state');
    const bucketKey = await openBucketKey(`${path}.bucket-key`, 'revocation log');
    const store = new RevocationStore({ ...DEFAULT_REVOCATION_LIMITS, ...limits }, deployment, bucketKey.key);
    // Watermarks bucketed under a key that is gone (or none): the latest is applied to every bucket.
    let unplaced: number | undefined;
    let lineNo = 0;
    let failure: TkmsError | undefined;
    // Each line is kept only while it is live: the rest of a large log never stays in memory.
    const { log, tornBytes } = await AppendLog.openStreaming(path, (value, bytes) => {
      lineNo++;
      if (failure !== undefined) return;
      try {
        const watermark = parseWatermarkLine(value);
        if (watermark !== undefined && bucketKey.created) unplaced = Math.max(unplaced ?? watermark.upTo, watermark.upTo);
        else if (watermark !== undefined) store.watermarks.raiseBucket(watermark.bucket, watermark.upTo);
        else store.load(RevocationEnvelopeBody.decode(value), bytes, nowSeconds);
      } catch (e) {
        // Skipping a revocation would silently re-enable a revoked grant: refuse to start instead.
        failure = new TkmsError('internal', `revocation log ${path} line ${lineNo} is not a valid revocation (${e instanceof TkmsError ? e.code : 'invalid'})`);
      }
    });
    if (failure !== undefined) {
      await log.close();
      throw failure;
    }
    store.log = log;
    // One heap entry per live revocation, not one per line read.
    store.loading = false;
    store.resetExpiries();
    const dropped = log.lines - store.items.size - store.watermarks.size;
    if (unplaced !== undefined) store.watermarks.raiseAll(unplaced);
    // A failed compaction (a full disk) leaves the log as it was, still valid: start anyway.
    if (store.bloated()) await store.compact(nowSeconds).catch(() => undefined);
    return { store, tornBytes, dropped };
  }

  get size(): number {
    return this.items.size;
  }

  /** Bytes of the log file (whole lines). */
  get logBytes(): number {
    return this.log.bytes;
  }

  /** Buckets of owners under a "revoked up to" watermark (a full store folded revocations into them). */
  get watermarkBuckets(): number {
    return this.watermarks.size;
  }

  /**
   * The latest revocation in force for (handle, grantee) of a handle owned by `owner`: its own,
   * or the owner's watermark, whichever is later. A watermark past its expiry can only name
   * grants that have expired too.
   */
  revokedAt(handle: Uint8Array, grantee: Uint8Array, owner: Uint8Array): number | undefined {
    const own = this.items.get(grantKey(handle, grantee))?.item.revocation.revokedAt;
    const watermark = this.watermarks.upTo(bytesToHex(owner));
    return own === undefined ? watermark : watermark === undefined ? own : Math.max(own, watermark);
  }

  /** After this, nothing the revocation cancels can still be valid. */
  private expiresAt(revokedAt: number): number {
    return revokedAt + this.limits.maxGrantLifetimeSeconds + this.limits.clockSkewSeconds;
  }

  /**
   * Verifies and stores; false when an equal or later revocation was already held, or when this
   * one has expired (nothing it cancels is valid any more). A revokedAt later than now + skew is
   * refused: it would block re-grants for longer than any grant may live.
   */
  async add(item: RevocationEnvelope, nowSeconds = Math.floor(Date.now() / 1000)): Promise<boolean> {
    this.prune(nowSeconds);
    const { revocation, descriptor } = item;
    const key = grantKey(revocation.handle, revocation.grantee);
    // Known ones are answered before any signature check: replays cost nothing.
    const held = this.items.get(key)?.item.revocation.revokedAt;
    if (held !== undefined && held >= revocation.revokedAt) return false;
    const inFlight = this.pending.get(key);
    if (inFlight !== undefined && inFlight.item.revocation.revokedAt >= revocation.revokedAt) {
      // Answered once it is on disk: "known" must not be said of a write that then fails.
      await inFlight.done;
      return false;
    }
    if (revocation.revokedAt > nowSeconds + this.limits.clockSkewSeconds) {
      throw new TkmsError('bad_request', `revokedAt ${revocation.revokedAt} is in the future`);
    }
    if (this.expiresAt(revocation.revokedAt) < nowSeconds) return false;
    // Already in force through the owner's watermark: storing it would change nothing.
    const owner = bytesToHex(descriptor.owner);
    if ((this.watermarks.upTo(owner) ?? -1) >= revocation.revokedAt) return false;
    verifyRevocation(revocation, descriptor, this.deployment);
    if (held === undefined && inFlight === undefined) this.makeRoom(owner);
    // Counted from here on, so concurrent adds see it; the write joins the log's next group commit.
    this.owners.add(owner, key);
    const line = RevocationEnvelopeBody.encode(item);
    const done = this.log.append(line, true);
    const mine: Pending = { item, done };
    this.pending.set(key, mine);
    try {
      await done;
    } catch (e) {
      if (this.pending.get(key) === mine) {
        this.pending.delete(key);
        if (!this.items.has(key)) this.owners.remove(owner, key);
      }
      throw e;
    }
    if (this.pending.get(key) === mine) this.pending.delete(key);
    // Held in memory only once it is on disk: a failed write must not look "known" to a retry.
    this.remember(item, owner, Buffer.byteLength(JSON.stringify(line)) + 1);
    if (this.log.mayRewrite && this.bloated()) void this.compact(nowSeconds).catch(() => undefined);
    return true;
  }

  /** Refuses (past the owner's quota), or frees a place for, a new live revocation of `owner`. */
  private makeRoom(owner: string): void {
    const count = this.owners.count(owner);
    if (count >= this.limits.perOwner) {
      throw new TkmsError('rate_limited', `this owner already has ${count} live revocations, the most one account may hold; they expire ${this.limits.maxGrantLifetimeSeconds} s after revokedAt`);
    }
    // Only when every entry of the largest owner is still being written does nothing give way;
    // the store then runs over `max` by the writes in flight rather than refuse a revocation.
    if (this.owners.total >= this.limits.max) this.foldOldest(this.owners.largest()?.owner);
  }

  /**
   * Folds the owner's oldest revocation that is on disk (one in flight cannot be taken back) into
   * the owner's watermark: it stays in force, and the place it held is free.
   */
  private foldOldest(owner: string | undefined): void {
    if (owner === undefined) return;
    for (const key of this.owners.keys.get(owner) ?? []) {
      const held = this.items.get(key);
      if (this.pending.has(key) || held === undefined) continue;
      this.watermarks.raise(owner, held.item.revocation.revokedAt);
      this.drop(key);
      return;
    }
  }

  private drop(key: string): void {
    const held = this.items.get(key);
    if (held === undefined) return;
    this.items.delete(key);
    this.liveBytes -= held.bytes;
    if (!this.pending.has(key)) this.owners.remove(held.owner, key);
    this.ordered = undefined;
  }

  /** Drops every revocation that expired before `nowSeconds`, soonest first. */
  private prune(nowSeconds: number): void {
    for (let top = this.expiries.peek(); top !== undefined && top.at < nowSeconds; top = this.expiries.peek()) {
      this.expiries.pop();
      // Skipped when superseded (a later revokedAt expires later, and has its own heap entry).
      if (this.items.get(top.key)?.item.revocation.revokedAt === top.revokedAt) this.drop(top.key);
    }
  }

  page(offset: number, size: number): { items: RevocationEnvelope[]; next: number | null } {
    this.ordered ??= [...this.items.values()];
    const all = this.ordered;
    // `offset` is an arrival number: the first held entry at or after it.
    let lo = 0;
    let hi = all.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (all[mid]!.seq < offset) lo = mid + 1;
      else hi = mid;
    }
    const slice = all.slice(lo, lo + size);
    const end = lo + slice.length;
    return { items: slice.map((h) => h.item), next: end < all.length ? all[end]!.seq : null };
  }

  /** A line read at start: kept by the same rules as an add, except that nothing is refused. */
  private load(item: RevocationEnvelope, bytes: number, nowSeconds: number): void {
    const key = grantKey(item.revocation.handle, item.revocation.grantee);
    const held = this.items.get(key)?.item.revocation.revokedAt;
    if (held !== undefined && held >= item.revocation.revokedAt) return;
    if (this.expiresAt(item.revocation.revokedAt) < nowSeconds) return;
    const owner = bytesToHex(item.descriptor.owner);
    if (held === undefined) {
      // Limits lowered since the lines were written, or lines folded before a compaction wrote
      // their watermark: fold the oldest, as adds would have.
      if (this.owners.count(owner) >= this.limits.perOwner) this.foldOldest(owner);
      else if (this.owners.total >= this.limits.max) this.foldOldest(this.owners.largest()?.owner);
    }
    this.owners.add(owner, key);
    this.remember(item, owner, bytes);
  }

  private remember(item: RevocationEnvelope, owner: string, bytes: number): void {
    const key = grantKey(item.revocation.handle, item.revocation.grantee);
    const known = this.items.get(key);
    if (known !== undefined) {
      if (known.item.revocation.revokedAt >= item.revocation.revokedAt) return;
      this.items.delete(key);
      this.liveBytes -= known.bytes;
    }
    // A key dropped while its write was in flight comes back with the write.
    this.owners.add(owner, key);
    this.items.set(key, { item, owner, seq: this.nextSeq++, bytes });
    this.liveBytes += bytes;
    if (!this.loading) this.expiries.push({ at: this.expiresAt(item.revocation.revokedAt), key, revokedAt: item.revocation.revokedAt });
    this.ordered = undefined;
  }

  private resetExpiries(): void {
    this.expiries.reset([...this.items].map(([key, h]) => ({ at: this.expiresAt(h.item.revocation.revokedAt), key, revokedAt: h.item.revocation.revokedAt })));
  }

  /** Superseded, expired and dropped lines make up more than half the log, by lines or by bytes. */
  private bloated(): boolean {
    return this.log.lines > 2 * (this.items.size + this.watermarks.size) + COMPACT_SLACK_LINES || this.log.bytes > 2 * (this.liveBytes + WATERMARK_LINE_BYTES * this.watermarks.size) + COMPACT_SLACK_BYTES;
  }

  private compact(nowSeconds: number): Promise<void> {
    this.compacting ??= this.log
      .rewrite(() => {
        // Folded lines leave the log here, so their watermarks go in first.
        const live: unknown[] = this.watermarks.live(nowSeconds).map((watermark) => ({ watermark }));
        for (const h of this.items.values()) live.push(RevocationEnvelopeBody.encode(h.item));
        // Lines of writes still in flight were appended before this rewrite: keep them too.
        for (const p of this.pending.values()) live.push(RevocationEnvelopeBody.encode(p.item));
        this.resetExpiries();
        return live;
      })
      .finally(() => {
        this.compacting = undefined;
      });
    return this.compacting;
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.pending.values()].map((p) => p.done));
    await this.compacting?.catch(() => undefined);
    await this.log.close();
  }
}
