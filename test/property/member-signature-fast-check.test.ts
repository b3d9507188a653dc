import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ed25519 } from '@noble/curves/ed25519.js';
import { sha512 } from '@noble/hashes/sha2.js';
import { bytesToNumberLE, concatBytes, numberToBytesLE } from '@noble/curves/utils.js';
import { dkgSignedBytes, verifyMemberSignature } from '../../core/dkg/member-signatures.ts';
import { installNodeMemberSignatureCheck, uninstallNodeMemberSignatureCheck } from '../../core/node-ed25519.ts';

/**
 * node:crypto's Ed25519 check is only trusted to say yes (core/dkg/member-signatures.ts): with it
 * installed, verifyMemberSignature must answer exactly what noble's strict rule answers alone, for
 * honest signatures, tampered ones, unreduced s, and signatures whose R or key carries a torsion
 * component (where cofactored and cofactorless verification disagree).
 */
const Point = ed25519.Point;
const L = Point.Fn.ORDER;
/** A point of order 8: torsion the cofactored equation ignores and the cofactorless one does not. */
const TORSION = Point.fromBytes(Uint8Array.from(Buffer.from('c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a', 'hex')));

function strict(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  uninstallNodeMemberSignatureCheck();
  try {
    return verifyMemberSignature(publicKey, message, signature);
  } finally {
    installNodeMemberSignatureCheck();
  }
}

/** Signs with a nonce point R + torsion·j and a key A + torsion·i: valid cofactored, invalid cofactorless unless i = j = 0. */
function torsionSignature(seed: Uint8Array, message: Uint8Array, keyTorsion: number, nonceTorsion: number): { publicKey: Uint8Array; signature: Uint8Array } {
  const { scalar, point } = ed25519.utils.getExtendedPublicKey(seed);
  const A = keyTorsion === 0 ? point : point.add(TORSION.multiplyUnsafe(BigInt(keyTorsion)));
  const publicKey = A.toBytes();
  const r = bytesToNumberLE(sha512(concatBytes(seed, message))) % L;
  const R0 = Point.BASE.multiply(r === 0n ? 1n : r);
  const R = nonceTorsion === 0 ? R0 : R0.add(TORSION.multiplyUnsafe(BigInt(nonceTorsion)));
  const Rb = R.toBytes();
  const k = bytesToNumberLE(sha512(concatBytes(Rb, publicKey, dkgSignedBytes(message)))) % L;
  const s = ((r === 0n ? 1n : r) + k * scalar) % L;
  return { publicKey, signature: concatBytes(Rb, numberToBytesLE(s, 32)) };
}

describe('member signatures: the node:crypto fast check never changes an answer', function () {
  this.timeout(60_000);
  before(() => installNodeMemberSignatureCheck());
  after(() => uninstallNodeMemberSignatureCheck());

  it('honest, tampered and unreduced signatures: same answer with and without the fast check', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 64 }), fc.nat(63), fc.nat(255), fc.boolean(), (seed, message, at, flip, unreduce) => {
        const publicKey = ed25519.getPublicKey(seed);
        const good = ed25519.sign(dkgSignedBytes(message), seed);
        assert.equal(verifyMemberSignature(publicKey, message, good), true);
        const bad = good.slice();
        if (unreduce) bad.set(numberToBytesLE((bytesToNumberLE(good.subarray(32)) + L) % 2n ** 256n, 32), 32);
        else bad[at] = bad[at]! ^ (flip | 1);
        assert.equal(verifyMemberSignature(publicKey, message, bad), strict(publicKey, message, bad));
      }),
      { numRuns: 300 },
    );
  });

  it('torsion in the key or in R: the strict rule decides (cofactored), whatever node:crypto says', () => {
    let acceptedByStrictOnly = 0;
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), fc.uint8Array({ maxLength: 32 }), fc.nat(7), fc.nat(7), (seed, message, i, j) => {
        const { publicKey, signature } = torsionSignature(seed, message, i, j);
        const expected = strict(publicKey, message, signature);
        assert.equal(verifyMemberSignature(publicKey, message, signature), expected);
        if (expected && (i !== 0 || j !== 0)) acceptedByStrictOnly++;
      }),
      { numRuns: 200 },
    );
    assert.ok(acceptedByStrictOnly > 0, 'the schedules must include signatures only the cofactored equation accepts');
  });
});
