import { mulAddUnsafe } from '@noble/curves/abstract/curve.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { bytesToHex } from './bytes.ts';
import { decodePoint, encodePoint, G, mod, Point } from './curve.ts';
import type { CurveBackend } from './curve-backend.ts';
import { LruCache } from './lru.ts';

/** @noble/curves as a CurveBackend: pure JS, runs everywhere; the browser's and the fallback's. */
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

  decompress(compressed: Uint8Array): Uint8Array {
    return this.point(compressed).toBytes(false);
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
