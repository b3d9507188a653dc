import { mulAddUnsafe } from '@noble/curves/abstract/curve.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { bytesToHex } from './bytes.ts';
import { COMPRESSED_POINT_LENGTH, decodePoint, encodePoint, G, mod, Point } from './curve.ts';
import { TkmsError } from './errors.ts';
import { LruCache } from './lru.ts';

/**
 * The few secp256k1 operations the hot paths need, on encoded points (33-byte compressed),
 * behind one interface so a server can swap @noble/curves for libsecp256k1 (core/curve-native.ts)
 * without any protocol code changing. Working on bytes, not Point objects, matters for speed:
 * with noble, decompressing a point costs about as much as a fifth of a multiplication.
 *
 * Contract for every backend:
 * - `multiplySecret` and `multiplyBaseSecret` take a secret scalar and must run in time
 *   independent of it (a share, a nonce, an ephemeral key).
 * - `linearCombination` and `recoverPublicKey` see public values only; variable time is fine.
 * - Inputs are already range-checked by the callers (scalars in 1..n-1 for the secret ops,
 *   points validated with `isValidPoint`); a backend may still throw on bad input, never
 *   return a wrong answer.
 */
export interface CurveBackend {
  readonly name: 'noble' | 'libsecp256k1';
  /** A 33-byte compressed point on the curve (never the identity, which has no such encoding). */
  isValidPoint(compressed: Uint8Array): boolean;
  /** secret·P, constant time, compressed. */
  multiplySecret(point: Uint8Array, secret: bigint): Uint8Array;
  /** secret·G, constant time, compressed. */
  multiplyBaseSecret(secret: bigint): Uint8Array;
  /** baseScalar·G + Σ scalars_i·points_i for public inputs; null when the sum is the identity. */
  linearCombination(baseScalar: bigint, points: readonly Uint8Array[], scalars: readonly bigint[]): Uint8Array | null;
  /** ECDSA public-key recovery of a prehashed digest: 65-byte uncompressed key, or null. */
  recoverPublicKey(digest: Uint8Array, rs: Uint8Array, recovery: 0 | 1): Uint8Array | null;
  /** Deterministic (RFC 6979) low-s ECDSA over a prehashed digest: r ‖ s and the recovery id. */
  signRecoverable(digest: Uint8Array, secretKey: Uint8Array): { rs: Uint8Array; recovery: number };
}

/** Below this many terms, separate GLV multiplications beat one shared-doubling MSM in noble. */
const NOBLE_MSM_MIN_TERMS = 5;
/**
 * Decoded points by encoding: K and the verification shares recur across the t proofs of one
 * decrypt and across decrypts, and each noble decompression is a 256-bit modular square root.
 */
const NOBLE_POINT_CACHE_SIZE = 256;

class NobleBackend implements CurveBackend {
  readonly name = 'noble' as const;
  private readonly points = new LruCache<string, Point>(NOBLE_POINT_CACHE_SIZE);

  private point(compressed: Uint8Array): Point {
    const key = bytesToHex(compressed);
    const cached = this.points.get(key);
    if (cached !== undefined) return cached;
    const point = decodePoint(compressed);
    this.points.set(key, point);
    return point;
  }

  isValidPoint(compressed: Uint8Array): boolean {
    try {
      this.point(compressed);
      return true;
    } catch {
      return false;
    }
  }

  multiplySecret(point: Uint8Array, secret: bigint): Uint8Array {
    // noble's `multiply` runs a fixed sequence of point operations with scalar blinding.
    return encodePoint(this.point(point).multiply(secret));
  }

  multiplyBaseSecret(secret: bigint): Uint8Array {
    return encodePoint(G.multiply(secret));
  }

  linearCombination(baseScalar: bigint, points: readonly Uint8Array[], scalars: readonly bigint[]): Uint8Array | null {
    const decoded = points.map((p) => this.point(p));
    let sum: Point;
    if (decoded.length + 1 < NOBLE_MSM_MIN_TERMS) {
      sum = decoded.reduce((acc, p, i) => acc.add(p.multiplyUnsafe(mod(scalars[i]!))), G.multiplyUnsafe(mod(baseScalar)));
    } else {
      sum = mulAddUnsafe(Point, [G, ...decoded], [mod(baseScalar), ...scalars.map(mod)]);
    }
    return sum.is0() ? null : encodePoint(sum);
  }

  recoverPublicKey(digest: Uint8Array, rs: Uint8Array, recovery: 0 | 1): Uint8Array | null {
    const recovered = new Uint8Array(65);
    recovered[0] = recovery;
    recovered.set(rs, 1);
    try {
      return secp256k1.Signature.fromBytes(recovered, 'recovered').recoverPublicKey(digest).toBytes(false);
    } catch {
      return null;
    }
  }

  signRecoverable(digest: Uint8Array, secretKey: Uint8Array): { rs: Uint8Array; recovery: number } {
    // prehash: false because the digest is already the message hash; lowS is noble's default.
    const recovered = secp256k1.sign(digest, secretKey, { prehash: false, format: 'recovered' });
    return { rs: recovered.slice(1), recovery: recovered[0]! };
  }
}

export const nobleCurveBackend: CurveBackend = new NobleBackend();
let active: CurveBackend = nobleCurveBackend;

/** The backend in use: noble unless a server installed a faster one at start. */
export function curveBackend(): CurveBackend {
  return active;
}

export function setCurveBackend(backend: CurveBackend): void {
  active = backend;
}

/**
 * Validates an encoded point crossing a boundary: 33 bytes, compressed prefix, on the curve.
 * The bytes-level counterpart of decodePoint, for paths that never need a Point object.
 */
export function assertPointBytes(bytes: unknown, name = 'point'): asserts bytes is Uint8Array {
  if (!(bytes instanceof Uint8Array)) throw new TkmsError('bad_point', `${name} must be bytes`);
  if (bytes.length !== COMPRESSED_POINT_LENGTH) {
    throw new TkmsError('bad_length', `${name} must be a ${COMPRESSED_POINT_LENGTH}-byte compressed point, got ${bytes.length} bytes`);
  }
  if (bytes[0] !== 0x02 && bytes[0] !== 0x03) throw new TkmsError('bad_point', `${name} must start with 0x02 or 0x03 (compressed SEC1)`);
  if (!active.isValidPoint(bytes)) throw new TkmsError('bad_point', `${name} is not a point on secp256k1`);
}
