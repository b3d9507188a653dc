import { secp256k1 } from '@noble/curves/secp256k1.js';
import { bytesToNumberBE, numberToBytesBE } from '@noble/curves/utils.js';
import { decodeHex } from './bytes.ts';
import { TkmsError } from './errors.ts';

/** secp256k1 points and scalars, with strict decoders for everything that crosses a boundary. */
export const Point = secp256k1.Point;
export type Point = InstanceType<typeof secp256k1.Point>;
export const G: Point = Point.BASE;
/** Order of the secp256k1 group. */
export const CURVE_ORDER: bigint = Point.Fn.ORDER;

export const COMPRESSED_POINT_LENGTH = 33;
export const SCALAR_LENGTH = 32;

/** Reduces into [0, n). */
export function mod(a: bigint): bigint {
  return Point.Fn.create(a);
}

/**
 * Decodes a 33-byte compressed SEC1 point. Rejects other lengths, the uncompressed
 * form, x not on the curve and the identity, so later arithmetic never sees them.
 */
export function decodePoint(input: Uint8Array | string, name = 'point'): Point {
  const bytes = typeof input === 'string' ? decodeHex(input, { name, length: COMPRESSED_POINT_LENGTH }) : input;
  if (!(bytes instanceof Uint8Array)) throw new TkmsError('bad_point', `${name} must be bytes or hex`);
  if (bytes.length !== COMPRESSED_POINT_LENGTH) {
    throw new TkmsError('bad_length', `${name} must be a ${COMPRESSED_POINT_LENGTH}-byte compressed point, got ${bytes.length} bytes`);
  }
  if (bytes[0] !== 0x02 && bytes[0] !== 0x03) {
    throw new TkmsError('bad_point', `${name} must start with 0x02 or 0x03 (compressed SEC1)`);
  }
  let point: Point;
  try {
    point = Point.fromBytes(bytes);
    point.assertValidity();
  } catch {
    throw new TkmsError('bad_point', `${name} is not a point on secp256k1`);
  }
  if (point.is0()) throw new TkmsError('bad_point', `${name} is the identity point`);
  return point;
}

export function encodePoint(point: Point): Uint8Array {
  if (point.is0()) throw new TkmsError('bad_point', 'the identity point has no compressed encoding');
  return point.toBytes(true);
}

/** The 32-byte big-endian affine x-coordinate: the ECIES IKM. */
export function xCoordinate(point: Point): Uint8Array {
  if (point.is0()) throw new TkmsError('bad_point', 'the identity point has no x-coordinate');
  return numberToBytesBE(point.x, 32);
}

export interface ScalarOptions {
  name?: string;
  /** Accept zero (default false: keys, shares and nonces are never zero). */
  allowZero?: boolean;
}

/** Decodes a canonical 32-byte big-endian scalar: rejects values ≥ n (no silent reduction). */
export function decodeScalar(input: Uint8Array | string, opts: ScalarOptions = {}): bigint {
  const name = opts.name ?? 'scalar';
  const bytes = typeof input === 'string' ? decodeHex(input, { name, length: SCALAR_LENGTH }) : input;
  if (!(bytes instanceof Uint8Array)) throw new TkmsError('bad_scalar', `${name} must be bytes or hex`);
  if (bytes.length !== SCALAR_LENGTH) throw new TkmsError('bad_length', `${name} must be ${SCALAR_LENGTH} bytes, got ${bytes.length}`);
  const value = bytesToNumberBE(bytes);
  if (value >= CURVE_ORDER) throw new TkmsError('bad_scalar', `${name} is not canonical (≥ the group order)`);
  if (value === 0n && !opts.allowZero) throw new TkmsError('bad_scalar', `${name} must not be zero`);
  return value;
}

export function encodeScalar(value: bigint): Uint8Array {
  if (value < 0n || value >= CURVE_ORDER) throw new TkmsError('bad_scalar', 'scalar out of range');
  return numberToBytesBE(value, SCALAR_LENGTH);
}

/** A uniformly random non-zero scalar (noble's rejection-free reduction of 48 random bytes). */
export function randomScalar(): bigint {
  return bytesToNumberBE(secp256k1.utils.randomSecretKey());
}

/**
 * Secret-scalar multiplication. noble's `multiply` runs a fixed sequence of point
 * operations with scalar blinding, so the time does not depend on the scalar.
 */
export function multiplySecret(point: Point, secret: bigint): Point {
  return point.multiply(secret);
}

export function publicKeyFromSecret(secret: bigint): Point {
  return G.multiply(secret);
}
