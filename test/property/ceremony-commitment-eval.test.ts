import assert from 'node:assert/strict';
import fc from 'fast-check';
import { G, mod, Point } from '../../core/curve.ts';
import { commitmentAt } from '../../core/ceremony/dealing.ts';

/** The reference: Σ_k A_k·x^k with one full multiplication per coefficient (x^k reduced mod n). */
function reference(commitments: readonly Point[], x: number): Point {
  let sum = Point.ZERO;
  let power = 1n;
  for (const a of commitments) {
    sum = sum.add(a.multiplyUnsafe(power));
    power = mod(power * BigInt(x));
  }
  return sum;
}

describe('commitmentAt (the public image of a dealer polynomial at a member id)', () => {
  it('equals Σ_k A_k·x^k for every member id and degree', () => {
    const scalar = fc.bigInt({ min: 1n, max: Point.Fn.ORDER - 1n });
    fc.assert(
      fc.property(fc.array(scalar, { minLength: 1, maxLength: 6 }), fc.integer({ min: 1, max: 0xffff }), (coefficients, x) => {
        const commitments = coefficients.map((a) => G.multiply(a));
        const got = commitmentAt(commitments, x);
        const want = reference(commitments, x);
        if (want.is0()) assert.equal(got, undefined);
        else assert.ok(got !== undefined && got.equals(want));
      }),
      { numRuns: 60 },
    );
  });

  it('tells a sub-share that matches from one that does not (the opening check)', () => {
    fc.assert(
      fc.property(fc.array(fc.bigInt({ min: 1n, max: Point.Fn.ORDER - 1n }), { minLength: 2, maxLength: 5 }), fc.integer({ min: 1, max: 64 }), fc.bigInt({ min: 1n, max: 1000n }), (coefficients, x, offset) => {
        const value = coefficients.reduceRight((acc, a) => mod(acc * BigInt(x) + a), 0n);
        const expected = commitmentAt(coefficients.map((a) => G.multiply(a)), x)!;
        assert.ok(G.multiply(value).equals(expected));
        assert.ok(!G.multiply(mod(value + offset)).equals(expected));
      }),
      { numRuns: 40 },
    );
  });
});
