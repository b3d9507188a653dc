import { createHmac, randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { link, open, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { TkmsError } from '../core/errors.ts';
import { errnoCode, fsyncDirectory, ioError, writeNewSyncedFile } from './durable-fs.ts';

/**
 * "Every grant of these owners issued at or before T is revoked": what a full revocation store
 * keeps of a revocation it has to make room for, instead of forgetting it (node revocations,
 * the gateway's revocations). Owners fall into a fixed number of buckets by a hash of their
 * address, so this never holds more than BUCKETS numbers however many accounts exist.
 *
 * The hash is keyed with a random secret of the store (`openBucketKey`): with a public hash an
 * attacker could make an address in a victim's bucket, become the largest revoker, fill the store,
 * and have every further revocation fold into that bucket, revoking all of the victim's grants for
 * as long as the flood goes on. With a secret key the attacker's owners land in buckets nobody
 * outside the store can predict. Buckets are therefore local to a store (never synced).
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
  readonly #key: Uint8Array;

  constructor(
    /** The store's bucket key (BUCKET_KEY_BYTES random bytes, see openBucketKey). */
    key: Uint8Array,
    /** After this, nothing a watermark at `upTo` cancels can still be valid. */
    private readonly expiresAt: (upTo: number) => number,
  ) {
    if (key.length !== BUCKET_KEY_BYTES) throw new RangeError(`bucket key must be ${BUCKET_KEY_BYTES} bytes`);
    this.#key = Uint8Array.from(key);
  }

  get size(): number {
    return this.#upTo.size;
  }

  /** Owners are hex addresses, with or without 0x, in any case. */
  bucketOf(owner: string): number {
    const normalized = owner.toLowerCase().replace(/^0x/, '');
    return createHmac('sha256', this.#key).update(normalized).digest().readUInt32BE(0) % WATERMARK_BUCKETS;
  }

  /**
   * The latest revokedAt that covers every grant of `owner`, if any (and, given `nowSeconds`, if
   * not expired; an expired one only names grants that have expired too).
   */
  upTo(owner: string, nowSeconds?: number): number | undefined {
    const upTo = this.#upTo.get(this.bucketOf(owner));
    return upTo !== undefined && nowSeconds !== undefined && this.expiresAt(upTo) < nowSeconds ? undefined : upTo;
  }

  /** Folds a revocation of `owner`, made at `revokedAt`, into its bucket. */
  raise(owner: string, revokedAt: number): void {
    this.raiseBucket(this.bucketOf(owner), revokedAt);
  }

  raiseBucket(bucket: number, upTo: number): void {
    if (!Number.isInteger(bucket) || bucket < 0 || bucket >= WATERMARK_BUCKETS || !Number.isSafeInteger(upTo)) {
      throw new RangeError(`watermark { bucket: ${bucket}, upTo: ${upTo} } is out of range`);
    }
    const held = this.#upTo.get(bucket);
    if (held === undefined || upTo > held) this.#upTo.set(bucket, upTo);
  }

  /**
   * Raises every bucket to `upTo`: for watermarks read from a log whose bucket key is gone (or that
   * was written with unkeyed buckets), which could name any owner. Fails closed, for one lifetime.
   */
  raiseAll(upTo: number): void {
    for (let bucket = 0; bucket < WATERMARK_BUCKETS; bucket++) this.raiseBucket(bucket, upTo);
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

export const BUCKET_KEY_BYTES = 32;

/**
 * The store's bucket key at `path` (next to its log), created on first open: BUCKET_KEY_BYTES
 * random bytes, mode 0600, written to a temp file, fsynced, then linked into place (link(2) fails
 * if another opener won, whose key is then used) and the directory fsynced, so a restart keeps the
 * mapping. `created` tells the caller that watermarks already in its log were bucketed under some
 * other key (lost, or none) and can no longer be placed. The key never appears in errors or logs.
 */
export async function openBucketKey(path: string, component: string): Promise<{ key: Uint8Array; created: boolean }> {
  const held = await readBucketKey(path, component);
  if (held !== undefined) return { key: held, created: false };
  const key = new Uint8Array(randomBytes(BUCKET_KEY_BYTES));
  const temp = `${path}.tmp-${randomBytes(16).toString('hex')}`;
  let linked = false;
  try {
    await writeNewSyncedFile(temp, key);
    try {
      await link(temp, path);
      linked = true;
    } catch (err) {
      if (errnoCode(err) !== 'EEXIST') throw err;
    }
  } catch (err) {
    throw ioError(component, 'bucket key write', err);
  } finally {
    await unlink(temp).catch(() => undefined);
  }
  if (!linked) {
    const winner = await readBucketKey(path, component);
    if (winner === undefined) throw new TkmsError('internal', `${component} bucket key vanished while it was created`);
    return { key: winner, created: false };
  }
  await fsyncDirectory(dirname(path), component);
  return { key, created: true };
}

async function readBucketKey(path: string, component: string): Promise<Uint8Array | undefined> {
  let handle;
  try {
    handle = await open(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw ioError(component, 'bucket key read', err);
  }
  try {
    const info = await handle.stat();
    // A damaged key would scatter the log's watermarks: refuse to start rather than guess.
    if (!info.isFile() || info.size !== BUCKET_KEY_BYTES) throw new TkmsError('internal', `${component} bucket key ${path} is not a ${BUCKET_KEY_BYTES}-byte file`);
    const key = new Uint8Array(BUCKET_KEY_BYTES);
    const { bytesRead } = await handle.read(key, 0, BUCKET_KEY_BYTES, 0);
    if (bytesRead !== BUCKET_KEY_BYTES) throw new TkmsError('internal', `${component} bucket key ${path} is not a ${BUCKET_KEY_BYTES}-byte file`);
    return key;
  } catch (err) {
    throw ioError(component, 'bucket key read', err);
  } finally {
    await handle.close().catch(() => undefined);
  }
}
