import { TkmsError } from '../core/errors.ts';
import { ExpiryHeap } from '../core/expiry-heap.ts';
import { OwnerCounts, type OwnerLimits } from '../config/owner-limits.ts';
import { RevocationWatermarks } from '../storage/revocation-watermarks.ts';

/**
 * The gateway store's live grants (or revocations) in memory: the latest per (handle, grantee),
 * each until it expires, within per-owner and total bounds (the node's revocation rules, see
 * node/revocations.ts and docs/operators.md "The gateway's store"):
 *   - an entry is dropped once `expiresAt` has passed, soonest first, from a heap (no scan on the
 *     request path);
 *   - an owner (the handle's owner) holds at most `perOwner` live entries; more are refused with
 *     `rate_limited` until some expire;
 *   - the table holds at most `max`. Grants: when full, an owner holding fewer than the owner
 *     holding the most still gets in, and that largest owner's oldest grant is dropped for it
 *     (a dropped grant fails closed); otherwise the grant is refused with `unavailable`.
 *     Revocations (`watermarks` given): a full table never refuses one; the largest owner's
 *     oldest revocation is folded into its owner's watermark bucket instead, which keeps it in
 *     force (storage/revocation-watermarks.ts), so a revocation is never forgotten.
 * What is dropped here is dropped from disk when the store compacts its log (which then writes
 * the watermarks).
 */
export interface AclEntry {
  handle: string;
  grantee: string;
}

interface Held<T> {
  readonly value: T;
  readonly owner: string;
  /** Bytes of its record in the log. */
  readonly bytes: number;
}

/** Stale heap entries (of superseded or dropped entries) tolerated beyond the live ones. */
const HEAP_SLACK = 1_000;

interface Expiry {
  at: number;
  handle: string;
  grantee: string;
  stamp: number;
}

export class AclTable<T extends AclEntry> {
  readonly #byHandle = new Map<string, Map<string, Held<T>>>();
  readonly #owners = new OwnerCounts();
  readonly #expiries = new ExpiryHeap<Expiry>();
  #size = 0;
  #liveBytes = 0;

  constructor(
    readonly kind: 'grant' | 'revocation',
    private readonly limits: OwnerLimits,
    /** Which of two entries for one pair is the later (issuedAt, revokedAt). */
    private readonly stampOf: (value: T) => number,
    /** Unix seconds after which the entry can no longer matter. */
    private readonly expiresAt: (value: T) => number,
    /** For revocations: where displaced entries go, so they stay in force. */
    readonly watermarks?: RevocationWatermarks,
  ) {}

  get size(): number {
    return this.#size;
  }

  /** Bytes of the log records of the live entries. */
  get liveBytes(): number {
    return this.#liveBytes;
  }

  /** Entries in the expiry heap, stale ones included. */
  get expiriesHeld(): number {
    return this.#expiries.size;
  }

  get(handle: string, grantee: string): T | undefined {
    return this.#byHandle.get(handle)?.get(grantee)?.value;
  }

  count(handle: string): number {
    return this.#byHandle.get(handle)?.size ?? 0;
  }

  list(handle: string): T[] {
    return [...(this.#byHandle.get(handle)?.values() ?? [])].map((h) => h.value);
  }

  *values(): Iterable<T> {
    for (const inner of this.#byHandle.values()) for (const h of inner.values()) yield h.value;
  }

  supersedes(next: T, existing: T): boolean {
    return this.stampOf(next) > this.stampOf(existing);
  }

  expired(value: T, nowSeconds: number): boolean {
    return this.expiresAt(value) < nowSeconds;
  }

  /**
   * Makes room for a new (handle, grantee) of `owner`, or throws: `rate_limited` at the
   * per-owner bound, `unavailable` when full and `owner` holds as many as anyone. The key is
   * counted from here on, so the rest of a batch sees it before it is stored.
   */
  admit(owner: string, handle: string, grantee: string): void {
    const count = this.#owners.count(owner);
    if (count >= this.limits.perOwner) {
      throw new TkmsError('rate_limited', `this owner already has ${count} live ${this.kind}s at the gateway, the most one account may hold; they expire (see maxGrantLifetimeSeconds)`);
    }
    // A revocation is never refused for room: it goes to the nodes only once stored here. Only
    // when the largest owner's entries are all still being written does nothing give way, and the
    // table runs over `max` by the writes in flight.
    if (this.#owners.total >= this.limits.max && this.watermarks !== undefined) {
      const largest = this.#owners.largest();
      if (largest !== undefined) this.#evictOldest(largest.owner);
    } else if (this.#owners.total >= this.limits.max) {
      const largest = this.#owners.largest();
      if (largest === undefined || largest.count <= count || !this.#evictOldest(largest.owner)) {
        throw new TkmsError('unavailable', `the gateway holds as many live ${this.kind}s as it may, and this owner holds as many as any other`);
      }
    }
    this.#owners.add(owner, pairKey(handle, grantee));
  }

  /**
   * Stores `value` if it is new or supersedes what is held. At load (`loading`) nothing is
   * refused: a new entry past a bound (lowered since it was written) displaces an older one.
   */
  put(value: T, owner: string, bytes: number, loading: boolean): void {
    const existing = this.#byHandle.get(value.handle)?.get(value.grantee);
    if (existing !== undefined) {
      if (!this.supersedes(value, existing.value)) return;
      this.#liveBytes -= existing.bytes;
    } else {
      if (loading) {
        // Revocations are folded into watermarks, not lost (#evictOldest).
        if (this.#owners.count(owner) >= this.limits.perOwner) this.#evictOldest(owner);
        else if (this.#owners.total >= this.limits.max) this.#evictOldest(this.#owners.largest()!.owner);
      }
      this.#size++;
    }
    // Looked up after any eviction, which may have removed this handle's map.
    let inner = this.#byHandle.get(value.handle);
    if (inner === undefined) this.#byHandle.set(value.handle, (inner = new Map()));
    inner.set(value.grantee, { value, owner, bytes });
    this.#owners.add(owner, pairKey(value.handle, value.grantee));
    this.#liveBytes += bytes;
    // At load the heap is built once at the end, not once per record read.
    if (loading) return;
    this.#expiries.push(this.#expiry(value));
    // Each re-send leaves its predecessor's entry behind until it is popped, which may be long
    // after compaction: rebuild once stale entries outnumber the live ones (amortized O(log n)).
    if (this.#expiries.size > 2 * this.#size + HEAP_SLACK) this.resetExpiries();
  }

  /** Drops every entry that expired before `nowSeconds`, soonest first; returns how many. */
  prune(nowSeconds: number): number {
    let dropped = 0;
    for (let top = this.#expiries.peek(); top !== undefined && top.at < nowSeconds; top = this.#expiries.peek()) {
      this.#expiries.pop();
      // Skipped when superseded (the later entry has its own heap entry).
      const held = this.#byHandle.get(top.handle)?.get(top.grantee);
      if (held !== undefined && this.stampOf(held.value) === top.stamp) {
        this.#drop(top.handle, top.grantee);
        dropped++;
      }
    }
    return dropped;
  }

  /** One heap entry per live entry: after load, and after compaction dropped the stale ones. */
  resetExpiries(): void {
    this.#expiries.reset([...this.values()].map((v) => this.#expiry(v)));
  }

  #expiry(value: T): Expiry {
    return { at: this.expiresAt(value), handle: value.handle, grantee: value.grantee, stamp: this.stampOf(value) };
  }

  /**
   * Drops the owner's oldest stored entry (one admitted but not yet stored cannot be taken back);
   * a revocation is folded into the owner's watermark first, so it stays in force.
   */
  #evictOldest(owner: string): boolean {
    for (const key of this.#owners.keys.get(owner) ?? []) {
      const [handle, grantee] = JSON.parse(key) as [string, string];
      const held = this.#byHandle.get(handle)?.get(grantee);
      if (held === undefined) continue;
      this.watermarks?.raise(owner, this.stampOf(held.value));
      this.#drop(handle, grantee);
      return true;
    }
    return false;
  }

  #drop(handle: string, grantee: string): void {
    const inner = this.#byHandle.get(handle);
    const held = inner?.get(grantee);
    if (inner === undefined || held === undefined) return;
    inner.delete(grantee);
    if (inner.size === 0) this.#byHandle.delete(handle);
    this.#size--;
    this.#liveBytes -= held.bytes;
    this.#owners.remove(held.owner, pairKey(handle, grantee));
  }
}

export function pairKey(handle: string, grantee: string): string {
  return JSON.stringify([handle, grantee]);
}
