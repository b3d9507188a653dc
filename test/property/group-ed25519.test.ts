import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ed25519 } from '@noble/curves/ed25519.js';
import { bytesToNumberLE, numberToBytesLE } from '@noble/curves/utils.js';
import { encodeHex } from '../../core/bytes.ts';
import { isTkmsError } from '../../core/errors.ts';
import { decodeGroupScalar, ed25519Group, fromFrostScalar, secp256k1Group, toFrostScalar } from '../../core/group.ts';
import { decodePoint } from '../../core/curve.ts';

/**
 * The ed25519 group's point decoder takes outside bytes (commitments in dealings, group keys and
 * Y_i in results): anything is a valid prime-order point or a TkmsError bad_point / bad_length.
 */
const EdPoint = ed25519.Point;
const P = 2n ** 255n - 19n;

function decodeOrCode(input: Uint8Array | string): string {
  try {
    const point = ed25519Group.decodePoint(input);
    assert.ok(point.isTorsionFree() && !point.is0());
    assert.equal(encodeHex(ed25519Group.encodePoint(point)), encodeHex(typeof input === 'string' ? ed25519Group.encodePoint(point) : input));
    return 'ok';
  } catch (e) {
    assert.ok(isTkmsError(e), `not a TkmsError: ${String(e)}`);
    assert.ok(e.httpStatus >= 400 && e.httpStatus < 500, `${e.code} is 4xx`);
    assert.ok(['bad_point', 'bad_length', 'bad_hex'].includes(e.code), e.code);
    return e.code;
  }
}

/** An order-8 point: Q·ℓ for a point Q of the full group has order dividing 8; the first y whose Q·ℓ has order exactly 8. */
function smallGenerator(): InstanceType<typeof EdPoint> {
  for (let y = 2n; y < 1000n; y++) {
    let q: InstanceType<typeof EdPoint>;
    try {
      q = EdPoint.fromBytes(numberToBytesLE(y, 32));
    } catch {
      continue; // y gives no point on the curve
    }
    const candidate = q.multiplyUnsafe(EdPoint.Fn.ORDER - 1n).add(q);
    if (!candidate.double().double().is0()) return candidate;
  }
  throw new Error('no order-8 point found');
}
/** The eight points of order dividing 8 (the identity first). */
const generator8 = smallGenerator();
const torsion = Array.from({ length: 8 }, (_, i) => (i === 0 ? EdPoint.ZERO : generator8.multiplyUnsafe(BigInt(i))));

describe('ed25519 group (core/group.ts): strict point decoder, scalars', () => {
  it('random bytes of any length: a valid point or bad_point / bad_length, never another error', () => {
    fc.assert(fc.property(fc.uint8Array({ minLength: 0, maxLength: 40 }), (bytes) => void decodeOrCode(bytes)), { numRuns: 2000 });
    fc.assert(fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (bytes) => void decodeOrCode(bytes)), { numRuns: 3000 });
    fc.assert(fc.property(fc.string({ maxLength: 80 }), (text) => void decodeOrCode(text)), { numRuns: 500 });
  });

  it('prime-order points round-trip; the same point plus any torsion component, the identity and small-order points are refused', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 1n, max: EdPoint.Fn.ORDER - 1n }), fc.integer({ min: 1, max: 7 }), (k, i) => {
        const point = EdPoint.BASE.multiply(k);
        assert.ok(ed25519Group.decodePoint(point.toBytes()).equals(point));
        const tainted = point.add(torsion[i]!);
        assert.equal(decodeOrCode(tainted.toBytes()), 'bad_point', 'a torsion component');
      }),
      { numRuns: 100 },
    );
    for (const t of torsion) assert.equal(decodeOrCode(t.toBytes()), 'bad_point', 'small order or identity');
  });

  it('non-canonical encodings (y ≥ p, x = 0 with the sign bit) are refused', () => {
    // y = p + 1 spells the point y = 1 (the identity) a second way; y = p + 2.. second spellings of y < 19.
    for (let extra = 0n; extra < 19n; extra++) assert.equal(decodeOrCode(numberToBytesLE(P + extra, 32)), 'bad_point');
    const signed = numberToBytesLE(1n, 32);
    signed[31]! |= 0x80;
    assert.equal(decodeOrCode(signed), 'bad_point', '−0');
    const b = EdPoint.BASE.toBytes();
    const flipped = Uint8Array.from(b);
    flipped[31]! ^= 0x80;
    assert.equal(decodeOrCode(flipped), 'ok', '−B is a prime-order point');
    assert.equal(bytesToNumberLE(b) < P, true);
  });

  it('secp256k1Group is core/curve.ts: same decoder, same bytes', () => {
    const k = 12345678901234567890n;
    const bytes = secp256k1Group.multiplyBaseSecret(k);
    assert.equal(encodeHex(bytes), encodeHex(decodePoint(bytes).toBytes(true)));
    assert.equal(secp256k1Group.pointLength, 33);
  });

  it('scalars: our big-endian form is canonical (< ℓ), FROST’s is little-endian, and both convert one to the other', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: 0n, max: EdPoint.Fn.ORDER - 1n }), (v) => {
        assert.equal(fromFrostScalar(ed25519Group, toFrostScalar(ed25519Group, v)), v);
        assert.deepEqual(toFrostScalar(ed25519Group, v), numberToBytesLE(v, 32));
      }),
    );
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 40 }), (bytes) => {
        try {
          const v = decodeGroupScalar(ed25519Group, bytes);
          assert.ok(v > 0n && v < ed25519Group.order);
        } catch (e) {
          assert.ok(isTkmsError(e) && ['bad_length', 'bad_scalar'].includes(e.code));
        }
      }),
    );
  });
});
