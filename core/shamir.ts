import { COMPRESSED_POINT_LENGTH, CURVE_ORDER, Point, randomScalar } from './curve.ts';
import { curveBackend } from './curve-backend.ts';
import { TkmsError } from './errors.ts';
import type { IField } from '@noble/curves/abstract/modular.js';

/** The scalar field of a key's group (core/group.ts): secp256k1's n unless a caller passes ed25519's ℓ. */
export type ScalarField = Pick<IField<bigint>, 'create' | 'invertBatch'>;

/** Node identifiers are the Shamir x-coordinates 1..n, fixed by the committee file. */
export const MAX_PARTICIPANT_ID = 65_535;

export function assertParticipantId(id: unknown, name = 'node id'): asserts id is number {
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 1 || id > MAX_PARTICIPANT_ID) {
    throw new TkmsError('bad_request', `${name} must be an integer in 1..${MAX_PARTICIPANT_ID}`);
  }
}

export function assertThreshold(t: unknown, n: unknown): asserts t is number {
  if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1 || n > MAX_PARTICIPANT_ID) {
    throw new TkmsError('bad_threshold', `n must be an integer in 1..${MAX_PARTICIPANT_ID}`);
  }
  if (typeof t !== 'number' || !Number.isSafeInteger(t) || t < 1 || t > n) {
    throw new TkmsError('bad_threshold', `threshold t must be an integer in 1..n (n = ${n})`);
  }
}

function assertDistinctIds(ids: readonly number[]): void {
  if (ids.length === 0) throw new TkmsError('bad_request', 'at least one participant id is required');
  const seen = new Set<number>();
  for (const id of ids) {
    assertParticipantId(id);
    if (seen.has(id)) throw new TkmsError('bad_request', `participant id ${id} appears twice`);
    seen.add(id);
  }
}

/**
 * Lagrange coefficients at x = 0 for the given ids: λ_i = Π_{j≠i} x_j / (x_j − x_i) mod n.
 * The result is aligned with `ids`. Coefficients are public; no secret is involved.
 */
export function lagrangeCoefficientsAtZero(ids: readonly number[], Fn: ScalarField = Point.Fn): bigint[] {
  assertDistinctIds(ids);
  const mod = (a: bigint): bigint => Fn.create(a);
  const xs = ids.map(BigInt);
  const numerators: bigint[] = [];
  const denominators: bigint[] = [];
  for (let i = 0; i < xs.length; i++) {
    let num = 1n;
    let den = 1n;
    for (let j = 0; j < xs.length; j++) {
      if (i === j) continue;
      num = mod(num * xs[j]!);
      den = mod(den * (xs[j]! - xs[i]!));
    }
    numerators.push(num);
    denominators.push(den);
  }
  const inverses = Fn.invertBatch(denominators);
  return numerators.map((num, i) => mod(num * inverses[i]!));
}

export interface PartialPoint {
  /** The node's Shamir x-coordinate. */
  id: number;
  /** P_i = K·share_i, compressed (33 bytes), already validated. */
  point: Uint8Array;
}

/**
 * Σ λ_i(0)·P_i over exactly the given partials, compressed. With t valid partials of K this
 * is K·sk. The scalars and points are public, so the backend may use variable time.
 */
export function combinePartials(partials: readonly PartialPoint[]): Uint8Array {
  const coefficients = lagrangeCoefficientsAtZero(partials.map((p) => p.id));
  for (const p of partials) {
    if (!(p.point instanceof Uint8Array) || p.point.length !== COMPRESSED_POINT_LENGTH) {
      throw new TkmsError('bad_point', `partial from node ${p.id} is not a compressed point`);
    }
  }
  const sum = curveBackend().linearCombination(0n, partials.map((p) => p.point), coefficients);
  // Only inconsistent partials can sum to the identity (K·sk never is): no x-coordinate to use.
  if (sum === null) throw new TkmsError('bad_point', 'the partials combine to the identity point');
  return sum;
}

/** Evaluates the polynomial with the given coefficients (constant term first) at x. */
export function evaluatePolynomial(coefficients: readonly bigint[], x: bigint, Fn: ScalarField = Point.Fn): bigint {
  let acc = 0n;
  for (let i = coefficients.length - 1; i >= 0; i--) acc = Fn.create(acc * x + coefficients[i]!);
  return acc;
}

export interface ScalarShare {
  id: number;
  value: bigint;
}

/**
 * Trusted-dealer Shamir split, for tests and benchmarks only: the network creates its
 * shares by DKG, and no process ever holds the whole secret.
 */
export function splitSecret(secret: bigint, t: number, n: number): ScalarShare[] {
  assertThreshold(t, n);
  if (secret <= 0n || secret >= CURVE_ORDER) throw new TkmsError('bad_scalar', 'secret must be in 1..n-1');
  const coefficients = [secret];
  for (let i = 1; i < t; i++) coefficients.push(randomScalar());
  const shares: ScalarShare[] = [];
  for (let id = 1; id <= n; id++) shares.push({ id, value: evaluatePolynomial(coefficients, BigInt(id)) });
  return shares;
}

/** Interpolates shares at 0. Used by tests to check a DKG; never by a running node. */
export function interpolateSecret(shares: readonly ScalarShare[], Fn: ScalarField = Point.Fn): bigint {
  const coefficients = lagrangeCoefficientsAtZero(shares.map((s) => s.id), Fn);
  return shares.reduce((acc, s, i) => Fn.create(acc + s.value * coefficients[i]!), 0n);
}
