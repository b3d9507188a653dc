import { hash } from 'node:crypto';

/**
 * "Every grant of these owners issued at or before T is revoked": what a full revocation store
 * keeps of a revocation it has to make room for, instead of forgetting it (node revocations,
 * the gateway's revocations). Owners fall into a fixed number of buckets by a hash of their
 * address, so this never holds more than BUCKETS numbers however many accounts exist.
 *
 * Failing closed costs availability, never safety: a watermark covers every owner of its bucket,
 * so grants (issued at or before T) of owners who revoked nothing are refused as `revoked` too,
 * until the owner re-grants (a new grant's issuedAt is later than T) or T + maxGrantLifetime +
 * skew passes, when nothing issued by T can still be valid. A revoked grant never works again.
 */
export const WATERMARK_BUCKETS = 65_536;

export interface Watermark {
  bucket: number;
  upTo: number;
}

export class RevocationWatermarks {
  readonly #upTo = new Map<number, number>();

  constructor(
    /** After this, nothing a watermark at `upTo` cancels can still be valid. */
    private readonly expiresAt: (upTo: number) => number,
  ) {}

  get size(): number {
    return this.#upTo.size;
  }

  /** Owners are hex addresses, with or without 0x, in any case. */
  static bucketOf(owner: string): number {
    const normalized = owner.toLowerCase().replace(/^0x/, '');
    return hash('sha256', normalized, 'buffer').readUInt32BE(0) % WATERMARK_BUCKETS;
  }

  /**
   * The latest revokedAt that covers every grant of `owner`, if any (and, given `nowSeconds`, if
   * not expired; an expired one only names grants that have expired too).
   */
  upTo(owner: string, nowSeconds?: number): number | undefined {
    const upTo = this.#upTo.get(RevocationWatermarks.bucketOf(owner));
    return upTo !== undefined && nowSeconds !== undefined && this.expiresAt(upTo) < nowSeconds ? undefined : upTo;
  }

  /** Folds a revocation of `owner`, made at `revokedAt`, into its bucket. */
  raise(owner: string, revokedAt: number): void {
    this.raiseBucket(RevocationWatermarks.bucketOf(owner), revokedAt);
  }

  raiseBucket(bucket: number, upTo: number): void {
    if (!Number.isInteger(bucket) || bucket < 0 || bucket >= WATERMARK_BUCKETS || !Number.isSafeInteger(upTo)) {
      throw new RangeError(`watermark { bucket: ${bucket}, upTo: ${upTo} } is out of range`);
    }
    const held = this.#upTo.get(bucket);
    if (held === undefined || upTo > held) this.#upTo.set(bucket, upTo);
  }

  /** The watermarks still in force at `nowSeconds` (what a compacted log must keep); drops the rest. */
  live(nowSeconds: number): Watermark[] {
    const out: Watermark[] = [];
    for (const [bucket, upTo] of this.#upTo) {
      if (this.expiresAt(upTo) < nowSeconds) this.#upTo.delete(bucket);
      else out.push({ bucket, upTo });
    }
    return out;
  }
}

/** A log line `{ "watermark": { bucket, upTo } }`, or undefined when `value` is not one. */
export function parseWatermarkLine(value: unknown): Watermark | undefined {
  if (typeof value !== 'object' || value === null || !('watermark' in value)) return undefined;
  const w = (value as { watermark: unknown }).watermark;
  if (typeof w !== 'object' || w === null) throw new RangeError('watermark line must hold { bucket, upTo }');
  const { bucket, upTo } = w as Record<string, unknown>;
  if (typeof bucket !== 'number' || typeof upTo !== 'number' || !Number.isInteger(bucket) || bucket < 0 || bucket >= WATERMARK_BUCKETS || !Number.isSafeInteger(upTo)) {
    throw new RangeError('watermark line must hold { bucket, upTo } in range');
  }
  return { bucket, upTo };
}
