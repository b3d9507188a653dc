import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ed25519 } from '@noble/curves/ed25519.js';
import { numberToBytesLE } from '@noble/curves/utils.js';
import { loadSodiumSubgroupCheck, subgroupCheckFault } from '../../core/sodium-ed25519.ts';
import { Ed25519FrostPoint, isValidEd25519Element, precomputeEd25519GroupKey, setEd25519SubgroupFastCheck, type Ed25519SubgroupFastCheck } from '../../core/signing/validated-points.ts';

/**
 * libsodium's subgroup check is only trusted to say yes (core/signing/validated-points.ts): with it
 * installed, and without it, an encoding is a valid FROST element exactly when noble's own full
 * check says so, for prime-order points, the same points plus each torsion component, small-order
 * points, non-canonical encodings and random bytes. A point that fails still reaches FROST's parser
 * as noble decoded it, and FROST's own checks refuse it.
 */
const Point = ed25519.Point;
const P = Point.Fp.ORDER;

/** RFC 9591 DeserializeElement with `decode` (what createFROST does with bytes): decode, then check the point. */
function deserializes(decode: (bytes: Uint8Array) => InstanceType<typeof Point>, bytes: Uint8Array): boolean {
  try {
    const point = decode(bytes);
    point.assertValidity();
    return !point.is0() && point.isTorsionFree();
  } catch {
    return false;
  }
}
/** By noble alone. */
const nobleValid = (bytes: Uint8Array): boolean => deserializes((b) => Point.fromBytes(b), bytes);
/** Through the Point given to FROST. */
const frostParses = (bytes: Uint8Array): boolean => deserializes((b) => Ed25519FrostPoint.fromBytes(b), bytes);

/** The eight points of order dividing 8, the identity first. */
function torsionPoints(): InstanceType<typeof Point>[] {
  for (let y = 2n; ; y++) {
    let q;
    try {
      q = Point.fromBytes(numberToBytesLE(y, 32));
    } catch {
      continue;
    }
    const t = q.multiplyUnsafe(Point.Fn.ORDER - 1n).add(q); // ℓ·q: its torsion part times ℓ
    if (!t.double().double().is0()) return Array.from({ length: 8 }, (_, i) => (i === 0 ? Point.ZERO : t.multiplyUnsafe(BigInt(i))));
  }
}
const TORSION = torsionPoints();

const loaded = loadSodiumSubgroupCheck();
/** What the process had installed (core/platform/node.ts), put back after each block. */
const installed = process.env.TKMS_CURVE_BACKEND === 'noble' || !('check' in loaded) ? undefined : loaded.check;

for (const [name, check] of [
  ['libsodium', 'check' in loaded ? loaded.check : undefined],
  ['noble only', undefined],
] as const satisfies readonly (readonly [string, Ed25519SubgroupFastCheck | undefined])[]) {
  describe(`ed25519 FROST elements with ${name}: the same answers as noble's full check`, function () {
    this.timeout(120_000);
    before(() => setEd25519SubgroupFastCheck(check));
    after(() => setEd25519SubgroupFastCheck(installed));

    it('prime-order points are valid; plus any torsion component, not; FROST refuses those too', () => {
      fc.assert(
        fc.property(fc.bigInt({ min: 1n, max: Point.Fn.ORDER - 1n }), fc.integer({ min: 1, max: 7 }), (k, i) => {
          const good = Point.BASE.multiply(k).toBytes();
          const tainted = Point.BASE.multiply(k).add(TORSION[i]!).toBytes();
          assert.equal(isValidEd25519Element(good), true);
          assert.equal(frostParses(good), true);
          assert.equal(isValidEd25519Element(tainted), false);
          assert.equal(frostParses(tainted), false);
          // Asked again (now from what was remembered, or not): the same answers.
          assert.equal(isValidEd25519Element(good), true);
          assert.equal(isValidEd25519Element(tainted), false);
          assert.equal(frostParses(tainted), false);
        }),
        { numRuns: 100 },
      );
    });

    it('the identity and small-order points are refused', () => {
      for (const t of TORSION) {
        assert.equal(isValidEd25519Element(t.toBytes()), false);
        assert.equal(frostParses(t.toBytes()), false);
      }
    });

    it('random and non-canonical encodings: the same answer as noble, and FROST parses exactly the valid ones', () => {
      fc.assert(
        fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (bytes) => {
          const expected = nobleValid(bytes);
          assert.equal(isValidEd25519Element(bytes), expected);
          assert.equal(frostParses(bytes), expected);
        }),
        { numRuns: 2000 },
      );
      // y + p for small y: not canonical (y ≥ p), with either sign bit. (From y = 19 on, y + p is also
      // y − 19 with the sign bit set, so some of these are canonical points outside the subgroup.)
      for (let y = 0n; y < 40n; y++) {
        for (const sign of [0, 0x80]) {
          const bytes = numberToBytesLE(y + P, 32);
          bytes[31] = bytes[31]! | sign;
          assert.equal(isValidEd25519Element(bytes), false);
          assert.equal(frostParses(bytes), false);
        }
      }
      // y = 1 with the sign bit set: x = 0 cannot be negative.
      const negativeZero = new Uint8Array(32);
      negativeZero[0] = 1;
      negativeZero[31] = 0x80;
      assert.equal(isValidEd25519Element(negativeZero), false);
      assert.equal(frostParses(negativeZero), false);
    });

    it('lengths other than 32 bytes are not elements', () => {
      fc.assert(fc.property(fc.uint8Array({ maxLength: 40 }).filter((b) => b.length !== 32), (bytes) => assert.equal(isValidEd25519Element(bytes), false)), { numRuns: 300 });
    });
  });
}

describe('ed25519 group keys with a table of multiples', () => {
  it('decode to the same point and multiply to the same results as without the table; an invalid key gets none', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 1n, max: Point.Fn.ORDER - 1n }), fc.bigInt({ min: 0n, max: Point.Fn.ORDER - 1n }), (k, c) => {
        const bytes = Point.BASE.multiply(k).toBytes();
        precomputeEd25519GroupKey(bytes);
        const withTable = Ed25519FrostPoint.fromBytes(bytes);
        assert.ok(withTable.equals(Point.BASE.multiply(k)));
        assert.ok(withTable.multiplyUnsafe(c).equals(Point.BASE.multiply(k).multiplyUnsafe(c)));
      }),
      { numRuns: 50 },
    );
    const tainted = Point.BASE.multiply(7n).add(TORSION[1]!).toBytes();
    precomputeEd25519GroupKey(tainted);
    assert.equal(frostParses(tainted), false);
  });
});

describe('the libsodium addon (sodium-native) in Node', () => {
  it('loads: the package is a dependency, so Node processes sign with the fast check', () => {
    assert.ok('check' in loaded, 'error' in loaded ? loaded.error : '');
  });

  it('is tried when it loads: a check that passes a point plus the point of order 2 (libsodium before December 2025) is not used', () => {
    if (!('check' in loaded)) throw new Error('no addon');
    assert.equal(subgroupCheckFault(loaded.check), undefined);
    // The old libsodium: small-order points refused by a list, then only the x of ℓ·P compared with 0.
    const xOnly = (bytes: Uint8Array): boolean => {
      let point;
      try {
        point = Point.fromBytes(bytes);
      } catch {
        return false;
      }
      if (point.multiplyUnsafe(8n).is0()) return false;
      return point.multiplyUnsafe(Point.Fn.ORDER - 1n).add(point).toAffine().x === 0n;
    };
    assert.match(subgroupCheckFault(xOnly) ?? '', /accepts the base point plus a point of small order/);
    assert.equal(subgroupCheckFault(() => false), 'refuses the base point');
    assert.match(subgroupCheckFault(() => true) ?? '', /accepts a point of small order/);
  });

  it('says yes only where noble does', () => {
    if (!('check' in loaded)) throw new Error('no addon');
    fc.assert(
      fc.property(fc.bigInt({ min: 1n, max: Point.Fn.ORDER - 1n }), fc.integer({ min: 0, max: 7 }), (k, i) => {
        const bytes = Point.BASE.multiply(k).add(TORSION[i]!).toBytes();
        assert.equal(loaded.check(bytes), i === 0);
        assert.equal(nobleValid(bytes), i === 0);
      }),
      { numRuns: 200 },
    );
    fc.assert(fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (bytes) => assert.ok(!loaded.check(bytes) || nobleValid(bytes))), { numRuns: 2000 });
  });
});
