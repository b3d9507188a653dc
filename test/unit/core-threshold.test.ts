import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  combinePartials,
  computeProvenPartial,
  CURVE_ORDER,
  decodeDleqProof,
  decryptWithSharedSecretX,
  type DleqContext,
  type DleqProof,
  eciesEncrypt,
  encodeDleqProof,
  evaluatePolynomial,
  G,
  interpolateSecret,
  isTkmsError,
  lagrangeCoefficientsAtZero,
  multiplySecret,
  newRequestId,
  type PartialPoint,
  Point,
  publicKeyFromSecret,
  randomScalar,
  type ScalarShare,
  splitSecret,
  verifyDleq,
  xCoordinate,
} from '../../core/index.ts';
import { backendsUnderTest, withCurveBackend } from '../support/curve-backends.ts';

/**
 * The threshold property end to end: shares from a dealer, proven partials P_i = K·share_i,
 * any t of them recombine to K·sk, t−1 do not, and every proof is bound to its statement and
 * context. Curve operations cost ~1–4 ms, so run counts stay modest.
 */

/** (n, t, a random ordered t-subset of 1..n, the full shuffled id list). */
const committee = fc
  .integer({ min: 1, max: 20 })
  .chain((n) => fc.tuple(fc.constant(n), fc.integer({ min: 1, max: n })))
  .chain(([n, t]) => {
    const ids = Array.from({ length: n }, (_, i) => i + 1);
    return fc.record({
      n: fc.constant(n),
      t: fc.constant(t),
      subset: fc.shuffledSubarray(ids, { minLength: t, maxLength: t }),
    });
  });

const KEY_ID = 'test-key.v1';

// Reference arithmetic straight from noble Points, independent of the backend under test.
const pub = (secret: bigint): Uint8Array => publicKeyFromSecret(secret).toBytes(true);
const mul = (point: Uint8Array, secret: bigint): Uint8Array => multiplySecret(Point.fromBytes(point), secret).toBytes(true);
const plusG = (point: Uint8Array): Uint8Array => Point.fromBytes(point).add(G).toBytes(true);
const negated = (point: Uint8Array): Uint8Array => Point.fromBytes(point).negate().toBytes(true);

interface Dealt {
  sk: bigint;
  shares: ScalarShare[];
  /** Y_i = share_i·G, indexed by id. */
  verificationShares: Map<number, Uint8Array>;
}

function deal(t: number, n: number): Dealt {
  const sk = randomScalar();
  const shares = splitSecret(sk, t, n);
  const verificationShares = new Map(shares.map((s) => [s.id, pub(s.value)] as const));
  return { sk, shares, verificationShares };
}

function shareOf(dealt: Dealt, id: number): bigint {
  const share = dealt.shares.find((s) => s.id === id);
  assert.ok(share, `no share for id ${id}`);
  return share.value;
}

function yOf(dealt: Dealt, id: number): Uint8Array {
  const y = dealt.verificationShares.get(id);
  assert.ok(y, `no verification share for id ${id}`);
  return y;
}

/** Independent reference: λ_i = Π_{j≠i} x_j · (x_j − x_i)^{-1} mod n, inverse by Fermat (n prime). */
function modPow(base: bigint, exp: bigint, m: bigint): bigint {
  let result = 1n;
  let b = ((base % m) + m) % m;
  let e = exp;
  while (e > 0n) {
    if (e & 1n) result = (result * b) % m;
    b = (b * b) % m;
    e >>= 1n;
  }
  return result;
}

function referenceLagrange(ids: readonly number[]): bigint[] {
  const n = CURVE_ORDER;
  return ids.map((i) => {
    let num = 1n;
    let den = 1n;
    for (const j of ids) {
      if (j === i) continue;
      num = (num * BigInt(j)) % n;
      den = (((den * (BigInt(j) - BigInt(i))) % n) + n) % n;
    }
    return (num * modPow(den, n - 2n, n)) % n;
  });
}

for (const backend of backendsUnderTest()) describe(`core: threshold decryption (Shamir + Lagrange + DLEQ) with ${backend.name}`, function () {
  this.timeout(120_000);
  withCurveBackend(backend);

  it('any t proven partials verify and recombine to K·sk; t−1 do not; order does not matter', () => {
    fc.assert(
      fc.property(committee, ({ n, t, subset }) => {
        const dealt = deal(t, n);
        const k = randomScalar();
        const K = pub(k);
        const requestId = newRequestId();
        const partials: PartialPoint[] = subset.map((id) => {
          const ctx: DleqContext = { keyId: KEY_ID, nodeId: id, requestId };
          const proven = computeProvenPartial(ctx, shareOf(dealt, id), yOf(dealt, id), K);
          assert.ok(verifyDleq(ctx, yOf(dealt, id), K, proven.partial, proven.proof), `proof of node ${id} must verify`);
          return { id, point: proven.partial };
        });
        const expected = mul(K, dealt.sk);
        const combined = combinePartials(partials);
        assert.deepEqual(combined, expected, `t=${t} n=${n} subset=${subset}`);
        // K·sk = k·PK: what the encryptor computed.
        assert.deepEqual(combined, mul(pub(dealt.sk), k));
        assert.deepEqual(combinePartials([...partials].reverse()), expected, 'reversed order');
        if (t >= 2) {
          assert.notDeepEqual(combinePartials(partials.slice(0, t - 1)), expected, 't−1 partials must not recombine');
          assert.notDeepEqual(combinePartials(partials.slice(1)), expected, 't−1 partials (other subset) must not recombine');
        }
      }),
      { numRuns: 25 },
    );
  });

  it('interpolateSecret of any t shares is sk; of t−1 shares it is not', () => {
    fc.assert(
      fc.property(committee, ({ n, t, subset }) => {
        const dealt = deal(t, n);
        const chosen = subset.map((id) => ({ id, value: shareOf(dealt, id) }));
        assert.equal(interpolateSecret(chosen), dealt.sk);
        if (t >= 2) assert.notEqual(interpolateSecret(chosen.slice(1)), dealt.sk);
        // Every share lies on the dealer's polynomial of degree t−1: t+1 shares still interpolate to sk.
        if (t < n) assert.equal(interpolateSecret(dealt.shares.slice(0, t + 1)), dealt.sk);
      }),
      { numRuns: 100 },
    );
  });

  it('a tampered partial fails verifyDleq: P + G, another node’s partial, a proof moved to another node', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 10 }), fc.nat(), (n, pick) => {
        const dealt = deal(2, n);
        const i = (pick % n) + 1;
        const j = (i % n) + 1; // a different node
        const K = pub(randomScalar());
        const requestId = newRequestId();
        const ctxI: DleqContext = { keyId: KEY_ID, nodeId: i, requestId };
        const ctxJ: DleqContext = { keyId: KEY_ID, nodeId: j, requestId };
        const pi = computeProvenPartial(ctxI, shareOf(dealt, i), yOf(dealt, i), K);
        const pj = computeProvenPartial(ctxJ, shareOf(dealt, j), yOf(dealt, j), K);
        assert.ok(verifyDleq(ctxI, yOf(dealt, i), K, pi.partial, pi.proof));
        assert.ok(verifyDleq(ctxJ, yOf(dealt, j), K, pj.partial, pj.proof));
        assert.equal(verifyDleq(ctxI, yOf(dealt, i), K, plusG(pi.partial), pi.proof), false, 'P + G');
        assert.equal(verifyDleq(ctxI, yOf(dealt, i), K, negated(pi.partial), pi.proof), false, '−P');
        assert.equal(verifyDleq(ctxI, yOf(dealt, i), K, pj.partial, pi.proof), false, 'node j’s partial under node i’s proof');
        assert.equal(verifyDleq(ctxI, yOf(dealt, i), K, pj.partial, pj.proof), false, 'node j’s partial and proof claimed as node i');
        assert.equal(verifyDleq(ctxI, yOf(dealt, j), K, pj.partial, pj.proof), false, 'node j’s proof under node i’s context');
      }),
      { numRuns: 15 },
    );
  });

  it('a valid proof does not verify under a different keyId, nodeId, requestId, K or Y; nor with c or s changed', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 65_534 }), fc.integer({ min: 1, max: 2 ** 32 - 1 }), (nodeId, delta) => {
        const share = randomScalar();
        const Y = pub(share);
        const K = pub(randomScalar());
        const ctx: DleqContext = { keyId: KEY_ID, nodeId, requestId: newRequestId() };
        const { partial, proof } = computeProvenPartial(ctx, share, Y, K);
        assert.deepEqual(partial, mul(K, share));
        assert.ok(verifyDleq(ctx, Y, K, partial, proof));
        // Round trip through the 64-byte wire form keeps it valid.
        assert.ok(verifyDleq(ctx, Y, K, partial, decodeDleqProof(encodeDleqProof(proof))));

        const flippedRequest = Uint8Array.from(ctx.requestId);
        flippedRequest[delta % 16]! ^= 1 << (delta % 8);
        const variants: Array<[string, DleqContext, Uint8Array, Uint8Array]> = [
          ['keyId', { ...ctx, keyId: `${KEY_ID}x` }, Y, K],
          ['keyId (prefix)', { ...ctx, keyId: 'test-key' }, Y, K],
          ['nodeId', { ...ctx, nodeId: nodeId + 1 }, Y, K],
          ['requestId', { ...ctx, requestId: flippedRequest }, Y, K],
          ['Y', ctx, plusG(Y), K],
          ['K', ctx, Y, plusG(K)],
        ];
        for (const [what, c, y, k] of variants) {
          assert.equal(verifyDleq(c, y, k, partial, proof), false, `different ${what}`);
        }
        const d = BigInt(delta);
        const tampered: Array<[string, DleqProof]> = [
          ['c', { c: (proof.c + d) % CURVE_ORDER, s: proof.s }],
          ['s', { c: proof.c, s: (proof.s + d) % CURVE_ORDER }],
          ['swapped', { c: proof.s, s: proof.c }],
        ];
        for (const [what, p] of tampered) assert.equal(verifyDleq(ctx, Y, K, partial, p), false, `tampered ${what}`);
      }),
      { numRuns: 15 },
    );
  });

  it('proofs are hedged: two proofs of the same statement differ and both verify', () => {
    const share = randomScalar();
    const Y = pub(share);
    const K = pub(randomScalar());
    const ctx: DleqContext = { keyId: KEY_ID, nodeId: 3, requestId: newRequestId() };
    const a = computeProvenPartial(ctx, share, Y, K);
    const b = computeProvenPartial(ctx, share, Y, K);
    assert.deepEqual(a.partial, b.partial);
    assert.notEqual(a.proof.c, b.proof.c);
    assert.ok(verifyDleq(ctx, Y, K, a.partial, a.proof));
    assert.ok(verifyDleq(ctx, Y, K, b.partial, b.proof));
  });

  it('the all-zero proof (64 zero bytes decode, since c and s may be 0) verifies as false, not as a throw', () => {
    const share = randomScalar();
    const Y = pub(share);
    const K = pub(randomScalar());
    const ctx: DleqContext = { keyId: KEY_ID, nodeId: 2, requestId: newRequestId() };
    const { partial } = computeProvenPartial(ctx, share, Y, K);
    const zero = decodeDleqProof(new Uint8Array(64));
    assert.deepEqual(zero, { c: 0n, s: 0n });
    // c = s = 0 makes A1 = A2 = identity; the verifier must answer false rather than hash the identity.
    assert.equal(verifyDleq(ctx, Y, K, partial, zero), false);
    // c = 0 with s ≠ 0 gives A1 = s·G, A2 = s·K: a challenge of 0 is never the hash output here.
    assert.equal(verifyDleq(ctx, Y, K, partial, { c: 0n, s: 1n }), false);
  });

  it('verifyDleq returns false (never throws a non-typed error) for out-of-range proof scalars', () => {
    const share = randomScalar();
    const Y = pub(share);
    const K = pub(randomScalar());
    const ctx: DleqContext = { keyId: KEY_ID, nodeId: 1, requestId: newRequestId() };
    const { partial, proof } = computeProvenPartial(ctx, share, Y, K);
    // The same proof with non-canonical (≥ n or negative) scalars: a verifier must reject, not crash.
    const bad: DleqProof[] = [
      { c: proof.c + CURVE_ORDER, s: proof.s },
      { c: proof.c, s: proof.s + CURVE_ORDER },
      { c: proof.c, s: proof.s - CURVE_ORDER },
      { c: -1n, s: proof.s },
    ];
    for (const p of bad) {
      let result: boolean | undefined;
      try {
        result = verifyDleq(ctx, Y, K, partial, p);
      } catch (e) {
        assert.ok(isTkmsError(e), `verifyDleq threw ${String(e)} for c=${p.c}, s=${p.s}`);
        continue;
      }
      assert.equal(result, false, `c=${p.c}, s=${p.s}`);
    }
  });

  it('Σ λ_i(0) = 1 for any distinct id set, and λ matches an independent reference', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({ min: 1, max: 65_535 }), { minLength: 1, maxLength: 40 }), (ids) => {
        const lambdas = lagrangeCoefficientsAtZero(ids);
        assert.equal(lambdas.length, ids.length);
        assert.equal(lambdas.reduce((a, b) => (a + b) % CURVE_ORDER, 0n), 1n);
        assert.deepEqual(lambdas, referenceLagrange(ids));
        for (const l of lambdas) assert.ok(l >= 0n && l < CURVE_ORDER);
      }),
      { numRuns: 200 },
    );
  });

  it('Lagrange at 0 reconstructs f(0) for random polynomials of degree < |ids|', () => {
    const scalar = fc.bigInt({ min: 0n, max: CURVE_ORDER - 1n });
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 1, max: 65_535 }), { minLength: 1, maxLength: 20 }),
        fc.array(scalar, { minLength: 1, maxLength: 20 }),
        (ids, coefficients) => {
          const poly = coefficients.slice(0, ids.length);
          const lambdas = lagrangeCoefficientsAtZero(ids);
          const f0 = ids.reduce((acc, id, i) => (acc + lambdas[i]! * evaluatePolynomial(poly, BigInt(id))) % CURVE_ORDER, 0n);
          assert.equal(f0, poly[0]);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('end to end: ECIES to the group key, t partials → x(combined) → decryptWithSharedSecretX', async () => {
    await fc.assert(
      fc.asyncProperty(committee, fc.uint8Array({ minLength: 0, maxLength: 200 }), async ({ n, t, subset }, plaintext) => {
        const dealt = deal(t, n);
        const message = await eciesEncrypt(publicKeyFromSecret(dealt.sk), plaintext);
        const partials = subset.map((id) => ({ id, point: mul(message.K, shareOf(dealt, id)) }));
        const x = combinePartials(partials).slice(1);
        assert.deepEqual(x, xCoordinate(multiplySecret(Point.fromBytes(message.K), dealt.sk)));
        assert.deepEqual(await decryptWithSharedSecretX(x, message.nonce, message.ciphertext), plaintext);
        if (t >= 2) {
          const xShort = combinePartials(partials.slice(0, t - 1)).slice(1);
          await assert.rejects(() => decryptWithSharedSecretX(xShort, message.nonce, message.ciphertext), (e: unknown) => isTkmsError(e, 'decrypt_failed'));
        }
      }),
      { numRuns: 10 },
    );
  });

  it('combinePartials and lagrangeCoefficientsAtZero reject bad id sets and points with typed errors', () => {
    const P = pub(randomScalar());
    const typed = (...codes: string[]) => (e: unknown) => isTkmsError(e) && codes.includes(e.code);
    assert.throws(() => combinePartials([]), typed('bad_request'));
    assert.throws(() => combinePartials([{ id: 1, point: P }, { id: 1, point: P }]), typed('bad_request'));
    for (const id of [0, -1, 1.5, 65_536, Number.NaN]) {
      assert.throws(() => combinePartials([{ id, point: P }]), typed('bad_request'), `id ${id}`);
      assert.throws(() => lagrangeCoefficientsAtZero([id]), typed('bad_request'), `id ${id}`);
    }
    assert.throws(() => combinePartials([{ id: 1, point: P.subarray(1) }]), typed('bad_point'));
    assert.throws(() => combinePartials([{ id: 1, point: 'x' as unknown as Uint8Array }]), typed('bad_point'));
    // P and −P cancel: no x-coordinate to hand to HKDF.
    assert.throws(() => combinePartials([{ id: 1, point: P }, { id: 2, point: mul(P, 2n) }]), typed('bad_point'));
    assert.throws(() => splitSecret(0n, 1, 1), typed('bad_scalar'));
    assert.throws(() => splitSecret(CURVE_ORDER, 1, 1), typed('bad_scalar'));
    for (const [t, n] of [[0, 3], [4, 3], [1, 0], [1.5, 3]] as const) assert.throws(() => splitSecret(1n, t, n), typed('bad_threshold'), `t=${t} n=${n}`);
  });
});
