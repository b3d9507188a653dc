import { TkmsError } from '../core/index.ts';

/**
 * Token buckets per requester: `burst` requests at once, refilled at `perMinute`.
 * Idle buckets are dropped so a stream of fresh accounts cannot grow memory unbounded.
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  private readonly ratePerMs: number;

  constructor(
    perMinute: number,
    private readonly burst: number,
    private readonly maxBuckets = 100_000,
  ) {
    this.ratePerMs = perMinute / 60_000;
  }

  take(who: string, now = Date.now()): void {
    let b = this.buckets.get(who);
    if (b === undefined) {
      if (this.buckets.size >= this.maxBuckets) this.sweep(now);
      b = { tokens: this.burst, at: now };
      this.buckets.set(who, b);
    } else {
      b.tokens = Math.min(this.burst, b.tokens + (now - b.at) * this.ratePerMs);
      b.at = now;
    }
    if (b.tokens < 1) {
      const waitMs = Math.ceil((1 - b.tokens) / this.ratePerMs);
      throw new TkmsError('rate_limited', `too many requests from ${who}; retry in ${Math.ceil(waitMs / 1000)} s`, { retryAfterSeconds: Math.ceil(waitMs / 1000) });
    }
    b.tokens -= 1;
  }

  private sweep(now: number): void {
    for (const [k, b] of this.buckets) if (b.tokens + (now - b.at) * this.ratePerMs >= this.burst) this.buckets.delete(k);
    if (this.buckets.size >= this.maxBuckets) throw new TkmsError('rate_limited', 'too many distinct requesters right now; retry later');
  }
}
