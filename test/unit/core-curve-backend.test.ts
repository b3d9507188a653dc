import assert from 'node:assert/strict';
import fc from 'fast-check';
import { keccak_256 } from '@noble/hashes/sha3.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { numberToBytesBE } from '@noble/curves/utils.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { curveBackendChoiceFromEnv, loadNativeCurveBackend, selectCurveBackend } from '../../core/curve-native.ts';
import {
  assertPointBytes,
  CURVE_ORDER,
  G,
  isTkmsError,
  nobleCurveBackend,
  Point,
  setCurveBackend,
  type CurveBackend,
} from '../../core/index.ts';

/**
 * libsecp256k1 must be a drop-in for noble: the same bytes out for every operation, the same
 * verdict on every input, checked against noble Point arithmetic as the reference.
 */
const loaded = loadNativeCurveBackend();
if ('error' in loaded) throw new Error(`the libsecp256k1 addon did not load: ${loaded.error}`);
const native: CurveBackend = loaded;
const backends = [nobleCurveBackend, native];

const secret = fc.bigInt({ min: 1n, max: CURVE_ORDER - 1n });
const publicScalar = fc.oneof(fc.constant(0n), fc.constant(1n), fc.constant(CURVE_ORDER - 1n), secret);
const point = secret.map((s) => G.multiply(s).toBytes(true));
const ref = (p: Uint8Array) => Point.fromBytes(p);

describe('core: curve backends (noble and libsecp256k1 agree)', function () {
  this.timeout(120_000);

  it('secret·P and secret·G match noble Point arithmetic', () => {
    fc.assert(
      fc.property(point, secret, (P, s) => {
        const expected = ref(P).multiply(s).toBytes(true);
        const expectedBase = G.multiply(s).toBytes(true);
        for (const b of backends) {
          assert.deepEqual(b.multiplySecret(P, s), expected, b.name);
          assert.deepEqual(b.multiplyBaseSecret(s), expectedBase, b.name);
        }
      }),
      { numRuns: 40 },
    );
  });

  it('decompress gives noble\'s uncompressed bytes for a point and throws for an x off the curve', () => {
    fc.assert(
      fc.property(point, (P) => {
        for (const b of backends) assert.deepEqual(b.decompress(P), ref(P).toBytes(false), b.name);
      }),
      { numRuns: 40 },
    );
    // x = 5: 5³ + 7 = 132 is not a square mod p (secp256k1 has no point with that x).
    const offCurve = new Uint8Array(33);
    offCurve[0] = 0x02;
    offCurve[32] = 5;
    for (const b of backends) assert.throws(() => b.decompress(offCurve), b.name);
  });

  it('secret multiplication refuses 0 and scalars ≥ n instead of reducing them', () => {
    const P = G.multiply(7n).toBytes(true);
    for (const b of backends) {
      for (const s of [0n, CURVE_ORDER, CURVE_ORDER + 1n, -1n]) {
        assert.throws(() => b.multiplySecret(P, s), `${b.name} multiplySecret(${s})`);
        assert.throws(() => b.multiplyBaseSecret(s), `${b.name} multiplyBaseSecret(${s})`);
      }
    }
  });

  it('linear combinations match, including zero scalars and a sum that is the identity (null)', () => {
    fc.assert(
      fc.property(publicScalar, fc.array(fc.tuple(point, publicScalar), { maxLength: 7 }), (a, terms) => {
        let expected = G.multiplyUnsafe(a % CURVE_ORDER);
        for (const [P, s] of terms) expected = expected.add(ref(P).multiplyUnsafe(s));
        const want = expected.is0() ? null : expected.toBytes(true);
        for (const b of backends) {
          assert.deepEqual(b.linearCombination(a, terms.map((t) => t[0]), terms.map((t) => t[1])), want, b.name);
        }
      }),
      { numRuns: 60 },
    );
    const P = G.multiply(5n).toBytes(true);
    for (const b of backends) {
      assert.equal(b.linearCombination(0n, [], []), null, `${b.name}: empty sum`);
      assert.equal(b.linearCombination(5n, [P], [CURVE_ORDER - 1n]), null, `${b.name}: 5G − 5G`);
      assert.equal(b.linearCombination(0n, [P, P], [1n, CURVE_ORDER - 1n]), null, `${b.name}: P − P`);
    }
  });

  it('point validation gives the same verdict on arbitrary 33-byte strings', () => {
    fc.assert(
      fc.property(fc.constantFrom(0x02, 0x03, 0x04, 0x00), fc.uint8Array({ minLength: 32, maxLength: 32 }), (prefix, x) => {
        const bytes = Uint8Array.of(prefix, ...x);
        let expected = prefix === 0x02 || prefix === 0x03;
        if (expected) {
          try {
            Point.fromBytes(bytes).assertValidity();
          } catch {
            expected = false;
          }
        }
        for (const b of backends) assert.equal(b.isValidPoint(bytes), expected, `${b.name} on ${Buffer.from(bytes).toString('hex')}`);
      }),
      { numRuns: 500 },
    );
    // x = p (field modulus) and x = 2^256 − 1 are out of range; 0x04 prefix is the uncompressed form.
    const p = secp256k1.Point.Fp.ORDER;
    for (const x of [p, p + 1n, (1n << 256n) - 1n]) {
      const bytes = Uint8Array.of(0x02, ...numberToBytesBE(x, 32));
      for (const b of backends) assert.equal(b.isValidPoint(bytes), false, `${b.name}: x = ${x}`);
    }
  });

  it('ECDSA: identical deterministic signatures, and recovery to the signer (or null) agrees', () => {
    fc.assert(
      fc.property(secret, fc.uint8Array({ minLength: 32, maxLength: 32 }), (sk, digest) => {
        const key = numberToBytesBE(sk, 32);
        const signatures = backends.map((b) => b.signRecoverable(digest, key));
        assert.deepEqual(signatures[1], signatures[0]);
        const { rs, recovery } = signatures[0]!;
        const expected = G.multiply(sk).toBytes(false);
        for (const b of backends) assert.deepEqual(b.recoverPublicKey(digest, rs, recovery as 0 | 1), expected, b.name);
      }),
      { numRuns: 40 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 64, maxLength: 64 }), fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.constantFrom(0 as const, 1 as const), (rs, digest, v) => {
        const results = backends.map((b) => b.recoverPublicKey(digest, rs, v));
        assert.deepEqual(results[1], results[0]);
      }),
      { numRuns: 200 },
    );
    // Recovered keys hash to the same Ethereum address either way.
    const digest = keccak_256(new Uint8Array([1, 2, 3]));
    const { rs, recovery } = native.signRecoverable(digest, numberToBytesBE(42n, 32));
    const addresses = backends.map((b) => keccak_256(b.recoverPublicKey(digest, rs, recovery as 0 | 1)!.subarray(1)).slice(12));
    assert.deepEqual(addresses[1], addresses[0]);
  });

  it('assertPointBytes gives typed errors for every malformed input under both backends', () => {
    const good = G.multiply(3n).toBytes(true);
    try {
      for (const b of backends) {
        setCurveBackend(b);
        assertPointBytes(good);
        const cases: Array<[unknown, 'bad_point' | 'bad_length']> = [
          ['02ab', 'bad_point'],
          [good.subarray(1), 'bad_length'],
          [G.multiply(3n).toBytes(false), 'bad_length'],
          [Uint8Array.of(0x05, ...good.subarray(1)), 'bad_point'],
          [Uint8Array.of(0x02, ...new Uint8Array(32).fill(0xff)), 'bad_point'],
        ];
        for (const [input, code] of cases) assert.throws(() => assertPointBytes(input), (e: unknown) => isTkmsError(e, code), `${b.name}: ${code}`);
      }
    } finally {
      setCurveBackend(nobleCurveBackend);
    }
  });

  it('selectCurveBackend honours the choice and TKMS_CURVE_BACKEND is validated', () => {
    assert.equal(selectCurveBackend('noble').backend.name, 'noble');
    assert.equal(selectCurveBackend('native').backend.name, 'libsecp256k1');
    assert.equal(selectCurveBackend('auto').backend.name, 'libsecp256k1');
    assert.equal(curveBackendChoiceFromEnv({}), 'auto');
    assert.equal(curveBackendChoiceFromEnv({ TKMS_CURVE_BACKEND: 'noble' }), 'noble');
    assert.throws(() => curveBackendChoiceFromEnv({ TKMS_CURVE_BACKEND: 'elliptic' }), (e: unknown) => isTkmsError(e, 'bad_request'));
  });

  it('importing core in Node (#platform, condition node) puts libsecp256k1 in place; TKMS_CURVE_BACKEND=noble forces noble', async () => {
    const probe = async (env: Record<string, string>): Promise<string> => {
      const script = "const c = await import('./core/index.ts'); console.log(`${c.platformName} ${c.curveBackend().name}`);";
      const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], {
        cwd: new URL('../../', import.meta.url),
        env: { ...process.env, ...env },
      });
      return stdout.trim();
    };
    assert.equal(await probe({ TKMS_CURVE_BACKEND: '' }), 'node libsecp256k1');
    assert.equal(await probe({ TKMS_CURVE_BACKEND: 'noble' }), 'node noble');
    // An import never throws over the variable; servers refuse a bad value at start (runtime/curve-setup.ts).
    assert.equal(await probe({ TKMS_CURVE_BACKEND: 'elliptic' }), 'node libsecp256k1');
  });
});
