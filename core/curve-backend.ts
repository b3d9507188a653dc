import { COMPRESSED_POINT_LENGTH } from './curve.ts';
import { nobleCurveBackend } from './curve-noble.ts';
import { TkmsError } from './errors.ts';

export { nobleCurveBackend };

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
  /** The 65-byte uncompressed form of a valid compressed point (public; throws when it is not one). */
  decompress(compressed: Uint8Array): Uint8Array;
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
