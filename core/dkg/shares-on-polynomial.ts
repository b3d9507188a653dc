import { curveBackend } from '../curve-backend.ts';
import { encodePoint, type Point as PointT } from '../curve.ts';
import { secp256k1Group, type Group, type GroupPoint } from '../group.ts';
import { TkmsError } from '../errors.ts';
import { lagrangeCoefficientsAtZero } from '../shamir.ts';

/**
 * Whether published verification shares Y_i and the group key Y_0 all lie on one polynomial of
 * degree < t: what makes any t partials combine to K·sk.
 *
 * Interpolating from t of them and comparing the other n − t costs (n − t + 1)·t scalar
 * multiplications: about 40 ms for 22-of-32 in JavaScript, paid by every member after every DKG
 * and reshare and by every client that follows a handover. Instead, the values (Y_0, Y_1 … Y_n)
 * at (0, 1 … n) are a codeword of the Reed–Solomon code of dimension t exactly when they are
 * orthogonal to its dual code, whose words are (v_i·f(x_i))_i for the weights
 * v_i = Π_{j≠i} 1/(x_i − x_j) and any polynomial f of degree ≤ n − t (n + 1 points). One uniformly
 * random f suffices: if the values are not a codeword, Σ v_i·f(x_i)·Y_i is the identity with
 * probability 1/q. That is one multi-scalar multiplication of n + 1 public points (the SCRAPE
 * check: Cascudo and David, "SCRAPE: Scalable Randomness Attested by Public Entities", ACNS 2017,
 * §4). The randomness is the verifier's own, so whoever made the shares cannot aim at it.
 *
 * A failing check is explained by the interpolation (rare, and only then), so the error names the
 * member whose share is off the polynomial as before.
 */
export function assertSharesOnPolynomial(t: number, verificationShares: Readonly<Record<string, string | Uint8Array>>, groupPublicKey: string | Uint8Array, group: Group = secp256k1Group): void {
  const ids = Object.keys(verificationShares).map(Number);
  const points = ids.map((id) => group.decodePoint(verificationShares[String(id)]!, `Y_${id}`));
  const groupKey = group.decodePoint(groupPublicKey, 'groupPublicKey');
  if (onOnePolynomial(t, [0, ...ids], [groupKey, ...points], group)) return;
  explainOffPolynomial(t, ids, points, groupKey, group);
}

/** The dual-code check above, for values at distinct xs (t ≤ xs.length). */
export function onOnePolynomial(t: number, xs: readonly number[], values: readonly GroupPoint[], group: Group = secp256k1Group): boolean {
  const mod = (a: bigint): bigint => group.mod(a);
  // Two equal xs would make a weight 1/0, which inverts to 0 and drops the values from the sum unchecked.
  if (new Set(xs).size !== xs.length || xs.some((x) => !Number.isSafeInteger(x) || x < 0)) throw new TkmsError('bad_request', 'verification shares need distinct member ids 1..65535');
  const m = xs.length - 1;
  if (t > m) return true; // t ≥ n + 1 points: every set of values is on a polynomial of degree < t.
  const big = xs.map(BigInt);
  const denominators = big.map((xi, i) => big.reduce((acc, xj, j) => (i === j ? acc : mod(acc * (xi - xj))), 1n));
  const weights = group.Fn.invertBatch(denominators);
  const f = Array.from({ length: m - t + 1 }, () => group.randomScalar());
  const scalars = big.map((x, i) => mod(weights[i]! * f.reduceRight((acc, c) => mod(acc * x + c), 0n)));
  // secp256k1 through the backend (libsecp256k1 where it loads), as before; other groups through noble.
  if (group.name === 'secp256k1') return curveBackend().linearCombination(0n, values.map((p) => encodePoint(p as PointT)), scalars) === null;
  return group.linearCombination(values, scalars) === undefined;
}

function explainOffPolynomial(t: number, ids: readonly number[], points: readonly GroupPoint[], groupKey: GroupPoint, group: Group): never {
  const baseIds = ids.slice(0, t);
  const basePoints = points.slice(0, t);
  if (!interpolateAt(baseIds, basePoints, 0, group).equals(groupKey)) {
    throw new TkmsError('dkg_failed', 'verification shares do not interpolate to the group public key');
  }
  for (let k = t; k < ids.length; k++) {
    if (!interpolateAt(baseIds, basePoints, ids[k]!, group).equals(points[k]!)) {
      throw new TkmsError('dkg_failed', `verification share of member ${ids[k]} is not on the degree-${t - 1} polynomial`);
    }
  }
  // Unreachable unless the random check failed on a codeword, which it cannot: Σ over a codeword is the identity for every f.
  throw new TkmsError('internal', 'the verification shares failed the polynomial check but interpolate consistently');
}

function interpolateAt(ids: readonly number[], points: readonly GroupPoint[], x: number, group: Group): GroupPoint {
  const coefficients = x === 0 ? lagrangeCoefficientsAtZero(ids, group.Fn) : lagrangeAt(ids, x, group);
  return points.reduce((acc, p, i) => (coefficients[i] === 0n ? acc : acc.add(p.multiplyUnsafe(coefficients[i]!))), group.zero);
}

/** λ_j(x) for interpolating at an arbitrary x over the given ids (public values). */
function lagrangeAt(ids: readonly number[], x: number, group: Group): bigint[] {
  const mod = (a: bigint): bigint => group.mod(a);
  const bx = BigInt(x);
  const out: bigint[] = [];
  for (const i of ids) {
    let num = 1n;
    let den = 1n;
    for (const j of ids) {
      if (j === i) continue;
      num = mod(num * (bx - BigInt(j)));
      den = mod(den * (BigInt(i) - BigInt(j)));
    }
    out.push(mod(num * group.Fn.inv(den)));
  }
  return out;
}
