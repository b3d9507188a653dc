import { bytesToHex } from '../core/bytes.ts';
import { TkmsError } from '../core/errors.ts';

/**
 * How many requests each requester made of each key today (UTC), for the policy rule
 * dailyLimitPerRequester (core/keys/policy.ts). Each node counts the requests it served itself,
 * without consensus: across n nodes of threshold t a requester gets between L and n·L/t a day
 * (docs/key-policy.md).
 *
 * Bounded: at most `maxRequestersPerKey` counters per key and `maxTotal` in all. Past a key's
 * bound its least recently charged counter is forgotten; past the total, the least recently
 * charged counter of the key with the most counters is. So a flood of requesters on one key
 * (anyone can make accounts and handles of their own) never pushes out the counters of a key
 * whose requesters are few (an allow-list holds at most 100), while a forgotten counter starts
 * again at 0: a key with more than `maxRequestersPerKey` requesters in a day counts exactly only
 * its most recent ones.
 *
 * Counts live in memory: a restart forgets them, so a node that crashes and restarts during a
 * day serves each requester up to its limit again that day (at most one extra day's count per
 * restart). Documented in docs/key-policy.md.
 */

export interface KeyUsageLimits {
  maxRequestersPerKey: number;
  maxTotal: number;
}

/** About 100 bytes a counter: 10 MB at the total bound. */
export const DEFAULT_KEY_USAGE_LIMITS: Readonly<KeyUsageLimits> = Object.freeze({ maxRequestersPerKey: 10_000, maxTotal: 100_000 });

const SECONDS_PER_DAY = 86_400;

export class KeyUsageCounters {
  private readonly limits: KeyUsageLimits;
  /** The UTC day (days since 1970-01-01) the counts are of. */
  private day = Number.NEGATIVE_INFINITY;
  /** Per key: requester (hex) → count, in order of last charge (Map keeps insertion order). */
  private readonly byKey = new Map<string, Map<string, number>>();
  /** Keys by how many counters they hold, to find the largest in O(1) when the total is full. */
  private readonly keysBySize = new Map<number, Set<string>>();
  private largest = 0;
  private total = 0;

  constructor(limits: Partial<KeyUsageLimits> = {}) {
    this.limits = { ...DEFAULT_KEY_USAGE_LIMITS, ...limits };
    const { maxRequestersPerKey, maxTotal } = this.limits;
    if (!Number.isSafeInteger(maxRequestersPerKey) || maxRequestersPerKey < 1 || !Number.isSafeInteger(maxTotal) || maxTotal < maxRequestersPerKey) {
      throw new TkmsError('bad_request', 'key usage limits: maxRequestersPerKey must be a positive integer and maxTotal an integer at least as large');
    }
  }

  /** Counters held, across keys. */
  get size(): number {
    return this.total;
  }

  /** Requests of `requester` to `keyId` charged today (the UTC day of nowSeconds). */
  usedToday(keyId: string, requester: Uint8Array, nowSeconds: number): number {
    this.roll(nowSeconds);
    return this.byKey.get(keyId)?.get(bytesToHex(requester)) ?? 0;
  }

  /**
   * Counts one request, returning today's count with it. Call it as soon as evaluateKeyPolicy let
   * the request through, before anything awaits: two requests in flight then cannot both take the
   * last one of the day.
   */
  charge(keyId: string, requester: Uint8Array, nowSeconds: number): number {
    this.roll(nowSeconds);
    const who = bytesToHex(requester);
    let counts = this.byKey.get(keyId);
    const before = counts?.get(who);
    if (counts !== undefined && before !== undefined) {
      // Delete and set again: the counter moves to the most recent end.
      counts.delete(who);
      counts.set(who, before + 1);
      return before + 1;
    }
    if (counts !== undefined && counts.size >= this.limits.maxRequestersPerKey) this.evictOldest(keyId);
    else if (this.total >= this.limits.maxTotal) this.evictOldest(this.largestKey());
    counts = this.byKey.get(keyId);
    if (counts === undefined) {
      counts = new Map();
      this.byKey.set(keyId, counts);
    }
    counts.set(who, 1);
    this.total++;
    this.resized(keyId, counts.size - 1, counts.size);
    return 1;
  }

  /**
   * Gives back one request charged today and then refused by a later check (the on-chain grant, the
   * spent request id, the requester's RSA key): only requests that were served count. A day rolled
   * over since the charge has nothing to give back.
   */
  refund(keyId: string, requester: Uint8Array, chargedAt: number): void {
    if (Math.floor(chargedAt / SECONDS_PER_DAY) !== this.day) return;
    const counts = this.byKey.get(keyId);
    const who = bytesToHex(requester);
    const count = counts?.get(who);
    // At 1 the counter stays (at 0 it would only be evicted again later): the next charge makes it 1.
    if (counts !== undefined && count !== undefined && count > 0) counts.set(who, count - 1);
  }

  private roll(nowSeconds: number): void {
    const day = Math.floor(nowSeconds / SECONDS_PER_DAY);
    // Only forward: a clock stepped back across midnight must not hand out a fresh day.
    if (day <= this.day) return;
    this.day = day;
    this.byKey.clear();
    this.keysBySize.clear();
    this.largest = 0;
    this.total = 0;
  }

  private largestKey(): string {
    const key = this.keysBySize.get(this.largest)?.values().next().value;
    if (key === undefined) throw new TkmsError('internal', 'key usage counters: the total is full but no key holds a counter');
    return key;
  }

  private evictOldest(keyId: string): void {
    const counts = this.byKey.get(keyId)!;
    const oldest = counts.keys().next().value!;
    counts.delete(oldest);
    this.total--;
    this.resized(keyId, counts.size + 1, counts.size);
    if (counts.size === 0) this.byKey.delete(keyId);
  }

  private resized(keyId: string, from: number, to: number): void {
    if (from > 0) {
      const set = this.keysBySize.get(from)!;
      set.delete(keyId);
      if (set.size === 0) this.keysBySize.delete(from);
    }
    if (to > 0) {
      let set = this.keysBySize.get(to);
      if (set === undefined) {
        set = new Set();
        this.keysBySize.set(to, set);
      }
      set.add(keyId);
    }
    // Sizes move by one, so when the largest size empties, the next one down holds the key that left it.
    if (to > this.largest) this.largest = to;
    else if (from === this.largest && !this.keysBySize.has(from)) this.largest = to;
  }
}
