import type { CurvePoint } from '@noble/curves/abstract/curve.js';
import type { IField } from '@noble/curves/abstract/modular.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { bytesToNumberBE, bytesToNumberLE, numberToBytesBE, numberToBytesLE } from '@noble/curves/utils.js';
import { decodeHex, equalBytes } from './bytes.ts';
import { COMPRESSED_POINT_LENGTH, decodePoint, encodePoint, Point as SecpPoint, randomScalar as secpRandomScalar } from './curve.ts';
import { TkmsError } from './errors.ts';

/**
 * The prime-order group a key's shares live in. The ceremonies (core/ceremony) deal, combine and
 * check Feldman commitments through this interface, so one DKG, reshare and refresh serves
 * secp256k1 keys (decryption; BIP340 signing) and Ed25519 keys (FROST signing).
 *
 * secp256k1 is core/curve.ts unchanged (33-byte compressed SEC1 points, order n). ed25519 is the
 * prime-order subgroup of edwards25519 (32-byte RFC 8032 encodings, order ℓ): decodePoint refuses
 * non-canonical encodings, the identity and every point with a torsion component, so a dealer cannot
 * slip a small-order component into a commitment that a cofactorless check would miss.
 *
 * Scalars on our own wire and at rest are 32 bytes big-endian in both groups, canonical (< order).
 * FROST (RFC 9591, noble's ed25519_FROST) serialises ed25519 scalars little-endian: the only
 * conversions are `toFrostScalar` / `fromFrostScalar` below.
 */
export type GroupName = 'secp256k1' | 'ed25519';
export const GROUP_NAMES: readonly GroupName[] = ['secp256k1', 'ed25519'];

/** A point of either group; a group's methods only ever see and return its own points. */
export type GroupPoint = CurvePoint<any, any>;

export interface Group {
  readonly name: GroupName;
  /** Bytes of an encoded point (33 or 32). */
  readonly pointLength: number;
  readonly base: GroupPoint;
  readonly zero: GroupPoint;
  /** The group order (n or ℓ). */
  readonly order: bigint;
  /** Scalar field modulo the order (inverses, batch inversion). */
  readonly Fn: IField<bigint>;
  mod(a: bigint): bigint;
  /** Strict: the exact length, canonical encoding, on the curve, in the prime-order subgroup, not the identity. */
  decodePoint(input: Uint8Array | string, name?: string): GroupPoint;
  encodePoint(point: GroupPoint): Uint8Array;
  /** A uniformly random non-zero scalar. */
  randomScalar(): bigint;
  /** secret·P in time independent of the secret (noble's multiply). */
  multiplySecret(point: GroupPoint, secret: bigint): GroupPoint;
  /** secret·B, constant time, encoded. */
  multiplyBaseSecret(secret: bigint): Uint8Array;
  /** Σ scalars_i·points_i over public values (variable time); undefined for the identity. */
  linearCombination(points: readonly GroupPoint[], scalars: readonly bigint[]): GroupPoint | undefined;
}

function linearCombination(zero: GroupPoint, points: readonly GroupPoint[], scalars: readonly bigint[], mod: (a: bigint) => bigint): GroupPoint | undefined {
  let sum = zero;
  points.forEach((p, i) => {
    const s = mod(scalars[i]!);
    if (s !== 0n) sum = sum.add(p.multiplyUnsafe(s));
  });
  return sum.is0() ? undefined : sum;
}

/** core/curve.ts behind the Group interface: every byte it produces is what core/curve.ts produces. */
export const secp256k1Group: Group = {
  name: 'secp256k1',
  pointLength: COMPRESSED_POINT_LENGTH,
  base: SecpPoint.BASE,
  zero: SecpPoint.ZERO,
  order: SecpPoint.Fn.ORDER,
  Fn: SecpPoint.Fn,
  mod: (a) => SecpPoint.Fn.create(a),
  decodePoint: (input, name) => decodePoint(input, name),
  encodePoint: (point) => encodePoint(point as InstanceType<typeof SecpPoint>),
  randomScalar: secpRandomScalar,
  multiplySecret: (point, secret) => point.multiply(secret),
  multiplyBaseSecret: (secret) => encodePoint(SecpPoint.BASE.multiply(secret)),
  linearCombination: (points, scalars) => linearCombination(SecpPoint.ZERO, points, scalars, (a) => SecpPoint.Fn.create(a)),
};

const EdPoint = ed25519.Point;
type EdPoint = InstanceType<typeof EdPoint>;
export const ED25519_POINT_LENGTH = 32;

function decodeEd25519Point(input: Uint8Array | string, name = 'point'): EdPoint {
  const bytes = typeof input === 'string' ? decodeHex(input, { name, length: ED25519_POINT_LENGTH }) : input;
  if (!(bytes instanceof Uint8Array)) throw new TkmsError('bad_point', `${name} must be bytes or hex`);
  if (bytes.length !== ED25519_POINT_LENGTH) throw new TkmsError('bad_length', `${name} must be a ${ED25519_POINT_LENGTH}-byte Ed25519 point, got ${bytes.length} bytes`);
  let point: EdPoint;
  try {
    // zip215 false: y ≥ p and "−0" are refused; the round trip below refuses any other second spelling.
    point = EdPoint.fromBytes(bytes, false);
    point.assertValidity();
  } catch {
    throw new TkmsError('bad_point', `${name} is not a point on edwards25519`);
  }
  if (!equalBytes(point.toBytes(), bytes)) throw new TkmsError('bad_point', `${name} is not canonically encoded`);
  if (point.is0()) throw new TkmsError('bad_point', `${name} is the identity point`);
  // A torsion component would make two Y that agree in the prime-order subgroup differ in bytes,
  // and a small-order point has a logarithm modulo 8 only: neither belongs in a commitment.
  if (!point.isTorsionFree()) throw new TkmsError('bad_point', `${name} is not in the prime-order subgroup`);
  return point;
}

function encodeEd25519Point(point: GroupPoint): Uint8Array {
  if (point.is0()) throw new TkmsError('bad_point', 'the identity point is not a key or a share');
  return (point as EdPoint).toBytes();
}

const edMod = (a: bigint): bigint => EdPoint.Fn.create(a);

export const ed25519Group: Group = {
  name: 'ed25519',
  pointLength: ED25519_POINT_LENGTH,
  base: EdPoint.BASE,
  zero: EdPoint.ZERO,
  order: EdPoint.Fn.ORDER,
  Fn: EdPoint.Fn,
  mod: edMod,
  decodePoint: decodeEd25519Point,
  encodePoint: encodeEd25519Point,
  randomScalar: () => {
    // 48 random bytes reduced mod ℓ (bias below 2^-128), never zero.
    for (;;) {
      const value = edMod(bytesToNumberBE(randomBytes(48)));
      if (value !== 0n) return value;
    }
  },
  multiplySecret: (point, secret) => point.multiply(secret),
  multiplyBaseSecret: (secret) => encodeEd25519Point(EdPoint.BASE.multiply(secret)),
  linearCombination: (points, scalars) => linearCombination(EdPoint.ZERO, points, scalars, edMod),
};

/** The group of a curve name as results and key specs spell it (absent = secp256k1, the only group before Ed25519 keys). */
export function groupOf(name: GroupName | undefined): Group {
  if (name === undefined || name === 'secp256k1') return secp256k1Group;
  if (name === 'ed25519') return ed25519Group;
  throw new TkmsError('bad_request', `unknown curve ${String(name).slice(0, 40)}`);
}

/** Our 32-byte big-endian scalar as FROST's Ed25519 serialisation (32 bytes little-endian). */
export function toFrostScalar(group: Group, value: bigint): Uint8Array {
  if (value < 0n || value >= group.order) throw new TkmsError('bad_scalar', 'scalar out of range');
  return group.name === 'ed25519' ? numberToBytesLE(value, 32) : numberToBytesBE(value, 32);
}

/** FROST's serialisation of a scalar back to a value (refuses non-canonical). */
export function fromFrostScalar(group: Group, bytes: Uint8Array): bigint {
  if (bytes.length !== 32) throw new TkmsError('bad_length', 'a FROST scalar is 32 bytes');
  const value = group.name === 'ed25519' ? bytesToNumberLE(bytes) : bytesToNumberBE(bytes);
  if (value >= group.order) throw new TkmsError('bad_scalar', 'FROST scalar is not canonical');
  return value;
}

/** A canonical 32-byte big-endian scalar of the group (our wire and storage form for both groups). */
export function decodeGroupScalar(group: Group, bytes: Uint8Array, opts: { name?: string; allowZero?: boolean } = {}): bigint {
  const name = opts.name ?? 'scalar';
  if (!(bytes instanceof Uint8Array) || bytes.length !== 32) throw new TkmsError('bad_length', `${name} must be 32 bytes`);
  const value = bytesToNumberBE(bytes);
  if (value >= group.order) throw new TkmsError('bad_scalar', `${name} is not canonical (≥ the group order)`);
  if (value === 0n && opts.allowZero !== true) throw new TkmsError('bad_scalar', `${name} must not be zero`);
  return value;
}
