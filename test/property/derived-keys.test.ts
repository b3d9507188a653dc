import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  computeProvenPartial,
  CURVE_ORDER,
  isTkmsError,
  mod,
  newRequestId,
  Point,
  publicKeyFromSecret,
  splitSecret,
  verifyDleq,
} from '../../core/index.ts';
import {
  assertDerivationPath,
  assertDerivationVersion,
  combineDerivedPartials,
  DERIVATION_PATH_MAX_LENGTH,
  deriveKeyTweak,
  derivedPublicKey,
  MAX_DERIVATION_VERSION,
} from '../../core/keys/derive.ts';
import { backendsUnderTest, withCurveBackend } from '../support/curve-backends.ts';

const pub = (secret: bigint): Uint8Array => publicKeyFromSecret(secret).toBytes(true);
const scalar = fc.bigInt({ min: 1n, max: CURVE_ORDER - 1n });
const version = fc.integer({ min: 0, max: MAX_DERIVATION_VERSION });

/** The path rule restated code point by code point, independent of the module's pattern. */
function pathAllowed(path: string): boolean {
  const codePoints = [...path].map((c) => c.codePointAt(0)!);
  if (codePoints.length < 1 || codePoints.length > DERIVATION_PATH_MAX_LENGTH) return false;
  return codePoints.every((c) => !(c <= 0x1f || (c >= 0x7f && c <= 0x9f) || (c >= 0xd800 && c <= 0xdfff)));
}
/** Paths that satisfy the rule, ASCII and beyond (emoji are surrogate pairs, which are allowed). */
const goodPath = fc
  .string({ unit: fc.oneof(fc.constantFrom('a', '/', '.', '-', ' ', 'é', '😀', '\u00a0'), fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 })), minLength: 1, maxLength: 64 })
  .filter(pathAllowed);
/** Any string at all: lone surrogates, controls, empty, too long. */
const anyString = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ unit: fc.constantFrom('a', '\n', '\u0000', '\u007f', '\u0085', '\ud800', '\udc00', '😀'), maxLength: 20 }),
  fc.string({ unit: 'grapheme-ascii', minLength: DERIVATION_PATH_MAX_LENGTH - 2, maxLength: DERIVATION_PATH_MAX_LENGTH + 2 }),
);

function onlyTkmsErrors(fn: () => unknown): boolean {
  try {
    fn();
    return true;
  } catch (e) {
    if (!isTkmsError(e)) throw e;
    return false;
  }
}

describe('property: derived keys', function () {
  this.timeout(120_000);

  it('the tweak is deterministic and in 1..n−1', () => {
    fc.assert(
      fc.property(scalar, goodPath, version, (secret, path, v) => {
        const root = pub(secret);
        const tweak = deriveKeyTweak(root, path, v);
        assert.ok(tweak > 0n && tweak < CURVE_ORDER);
        assert.equal(deriveKeyTweak(Uint8Array.from(root), `${path}`, v), tweak);
      }),
      { numRuns: 200 },
    );
  });

  it('distinct (root, path, version) give distinct tweaks', () => {
    fc.assert(
      fc.property(scalar, scalar, goodPath, goodPath, version, version, (s1, s2, p1, p2, v1, v2) => {
        const r1 = pub(s1);
        const t1 = deriveKeyTweak(r1, p1, v1);
        if (p1 !== p2 || v1 !== v2) assert.notEqual(deriveKeyTweak(r1, p2, v2), t1, `${JSON.stringify(p1)}/${v1} vs ${JSON.stringify(p2)}/${v2}`);
        if (s1 !== s2) assert.notEqual(deriveKeyTweak(pub(s2), p1, v1), t1, 'same path under two roots');
      }),
      { numRuns: 200 },
    );
  });

  it('assertDerivationPath accepts exactly the strings the rule allows', () => {
    fc.assert(
      fc.property(fc.oneof(goodPath, anyString), (path) => {
        assert.equal(onlyTkmsErrors(() => assertDerivationPath(path)), pathAllowed(path), JSON.stringify(path));
      }),
      { numRuns: 1000 },
    );
  });

  it('bad roots, paths and versions are refused with TkmsError, never another exception', () => {
    const root = pub(3n);
    const badRoot = fc.oneof(
      fc.uint8Array({ maxLength: 70 }),
      fc.uint8Array({ minLength: 32, maxLength: 32 }).map((x) => Uint8Array.from([2, ...x])),
      fc.uint8Array({ minLength: 32, maxLength: 32 }).map((x) => Uint8Array.from([3, ...x])),
      scalar.map((s) => publicKeyFromSecret(s).toBytes(false)),
      fc.anything(),
    );
    fc.assert(
      fc.property(badRoot, goodPath, (candidate, path) => {
        const accepted = onlyTkmsErrors(() => deriveKeyTweak(candidate as Uint8Array, path, 1));
        // Only a genuine compressed point passes (random x is on the curve about half the time).
        if (accepted) assert.ok(candidate instanceof Uint8Array && candidate.length === 33 && Point.fromBytes(candidate).is0() === false);
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.oneof(anyString, fc.anything()), (path) => {
        const accepted = onlyTkmsErrors(() => deriveKeyTweak(root, path as string, 1));
        assert.equal(accepted, typeof path === 'string' && pathAllowed(path));
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.oneof(fc.double(), fc.integer(), fc.bigInt(), fc.anything()), (v) => {
        const accepted = onlyTkmsErrors(() => assertDerivationVersion(v));
        assert.equal(accepted, Number.isInteger(v) && (v as number) >= 0 && (v as number) <= MAX_DERIVATION_VERSION);
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.oneof(fc.bigInt(), fc.anything()), (tweak) => {
        const accepted = onlyTkmsErrors(() => derivedPublicKey(root, tweak as bigint));
        assert.equal(accepted, typeof tweak === 'bigint' && tweak > 0n && tweak < CURVE_ORDER && tweak !== CURVE_ORDER - 3n);
      }),
      { numRuns: 300 },
    );
  });

  for (const backend of backendsUnderTest()) describe(`with ${backend.name}`, () => {
    withCurveBackend(backend);

    it('derivedPublicKey(root·G, τ) = (root + τ)·G', () => {
      fc.assert(
        fc.property(scalar, goodPath, version, (secret, path, v) => {
          const root = pub(secret);
          const tweak = deriveKeyTweak(root, path, v);
          assert.deepEqual(derivedPublicKey(root, tweak), pub(mod(secret + tweak)));
        }),
        { numRuns: 100 },
      );
    });

    it('t root partials, each verified against the root Y_i, combined with τ give K·(root + τ)', () => {
      const committee = fc
        .integer({ min: 1, max: 8 })
        .chain((n) => fc.tuple(fc.constant(n), fc.integer({ min: 1, max: n })))
        .chain(([n, t]) => fc.record({ n: fc.constant(n), t: fc.constant(t), subset: fc.shuffledSubarray(Array.from({ length: n }, (_, i) => i + 1), { minLength: t, maxLength: t }) }));
      fc.assert(
        fc.property(committee, scalar, scalar, goodPath, version, ({ n, t, subset }, secret, k, path, v) => {
          const shares = splitSecret(secret, t, n);
          const root = pub(secret);
          const K = pub(k);
          const tweak = deriveKeyTweak(root, path, v);
          const requestId = newRequestId();
          const partials = subset.map((id) => {
            const share = shares[id - 1]!.value;
            const ctx = { keyId: 'derived', nodeId: id, requestId };
            const Y = pub(share);
            const proven = computeProvenPartial(ctx, share, Y, K);
            assert.ok(verifyDleq(ctx, Y, K, proven.partial, proven.proof));
            return { id, point: proven.partial };
          });
          const expected = Point.fromBytes(K).multiply(mod(secret + tweak)).toBytes(true);
          assert.deepEqual(combineDerivedPartials(partials, K, tweak), expected);
          // And it is what an encryptor to the derived key computed: k·(derived public key).
          assert.deepEqual(Point.fromBytes(derivedPublicKey(root, tweak)).multiply(k).toBytes(true), expected);
        }),
        { numRuns: 20 },
      );
    });
  });
});
