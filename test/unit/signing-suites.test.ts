import assert from 'node:assert/strict';
import { createPublicKey, verify as nodeVerify } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import { schnorr, secp256k1 } from '@noble/curves/secp256k1.js';
import { bytesToNumberLE, numberToBytesLE } from '@noble/curves/utils.js';
import { p2tr } from '@scure/btc-signer/payment.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { describeSigningKey, frostIdentifier, frostOf, frostPublic, frostSecret, memberOfIdentifier, signingPublicKey, SIGNING_ALGORITHMS, taprootInternalKey, verifySignature, type SigningSuite } from '../../core/signing/suites.ts';
import { dealSigningKey, type DealtSigningKey } from '../support/frost-dealer.ts';

/** One FROST signature by `signers` over `message`, every step through the suite's packages; each share checked on its own too. */
function frostSign(key: DealtSigningKey, signers: number[], message: Uint8Array): Uint8Array {
  const frost = frostOf(key.suite);
  const pub = frostPublic(key);
  const secrets = new Map(signers.map((id) => [id, frostSecret(key, id, key.shares.get(id)!)]));
  const rounds = signers.map((id) => ({ id, ...frost.commit(secrets.get(id)!) }));
  const list = rounds.map((r) => r.commitments);
  const shares: Record<string, Uint8Array<ArrayBuffer>> = {};
  for (const r of rounds) {
    const z = frost.signShare(secrets.get(r.id)!, pub, r.nonces, list, message);
    assert.ok(frost.verifyShare(pub, list, message, r.commitments.identifier, z), `member ${r.id}'s share verifies against its (tweaked) verification share`);
    shares[r.commitments.identifier] = new Uint8Array(z);
  }
  return frost.aggregate(pub, list, message, shares);
}

const SUBSETS = [
  [1, 2, 3],
  [2, 4, 5],
  [5, 3, 1],
  [1, 2, 3, 4],
  [1, 2, 3, 4, 5],
];

function ed25519Verifies(spki: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  return nodeVerify(null, message, createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' }), signature);
}

describe('signing suites (core/signing/suites.ts)', () => {
  it('ed25519: 3-of-5 FROST signatures from several subsets verify under node:crypto with the DER SPKI', () => {
    for (let round = 0; round < 3; round++) {
      const key = dealSigningKey('ed25519', 3, 5);
      const description = describeSigningKey('ed25519', key.groupPublicKey);
      assert.equal(description.algorithm, SIGNING_ALGORITHMS.ed25519);
      assert.deepEqual(description.publicKey, key.groupPublicKey, 'an Ed25519 key verifies under the group key itself');
      assert.deepEqual(signingPublicKey(key), key.groupPublicKey);
      assert.equal(description.taprootInternalKey, undefined);
      // node:crypto reads the raw key back out of the DER: the SPKI names this key.
      const jwk = createPublicKey({ key: Buffer.from(description.spki), format: 'der', type: 'spki' }).export({ format: 'jwk' });
      assert.equal(jwk.crv, 'Ed25519');
      assert.deepEqual(Buffer.from(jwk.x!, 'base64url'), Buffer.from(key.groupPublicKey));
      for (const signers of SUBSETS) {
        const message = randomBytes(1 + ((round * 37 + signers.length) % 200));
        const signature = frostSign(key, signers, message);
        assert.equal(signature.length, 64);
        assert.ok(ed25519Verifies(description.spki, message, signature), `signers ${signers.join(',')}`);
        assert.ok(verifySignature('ed25519', signature, message, description.publicKey));
        const other = message.slice();
        other[0]! ^= 1;
        assert.equal(ed25519Verifies(description.spki, other, signature), false, 'not a signature over another message');
        assert.equal(verifySignature('ed25519', signature, other, description.publicKey), false);
      }
    }
  });

  it('bip340: 3-of-5 FROST signatures verify under the Taproot output key, for odd-y and even-y group keys', () => {
    for (const parity of ['odd', 'even', 'odd', 'even'] as const) {
      const key = dealSigningKey('bip340', 3, 5, parity);
      assert.equal(key.groupPublicKey[0], parity === 'even' ? 0x02 : 0x03);
      const outputKey = signingPublicKey(key);
      const internal = taprootInternalKey(key.groupPublicKey);
      assert.deepEqual(internal, key.groupPublicKey.subarray(1), 'the internal key is x(P)');
      // @scure/btc-signer's BIP341 tweak, apart from ours: what a P2TR address of this key pays to.
      assert.deepEqual(outputKey, p2tr(internal).tweakedPubkey);
      const description = describeSigningKey('bip340', key.groupPublicKey);
      assert.equal(description.algorithm, SIGNING_ALGORITHMS.bip340);
      assert.deepEqual(description.publicKey, outputKey);
      assert.deepEqual(description.taprootInternalKey, internal);
      // The DER SPKI is the output key as an even-y secp256k1 point (OpenSSL parses it).
      const jwk = createPublicKey({ key: Buffer.from(description.spki), format: 'der', type: 'spki' }).export({ format: 'jwk' });
      assert.equal(jwk.crv, 'secp256k1');
      assert.deepEqual(Buffer.from(jwk.x!, 'base64url'), Buffer.from(outputKey));
      assert.equal(Buffer.from(jwk.y!, 'base64url').at(-1)! % 2, 0, 'even y');
      for (const signers of SUBSETS) {
        const message = randomBytes(32);
        const signature = frostSign(key, signers, message);
        assert.ok(schnorr.verify(signature, message, outputKey), `signers ${signers.join(',')} (${parity} y)`);
        assert.ok(verifySignature('bip340', signature, message, outputKey));
        // Signed by the tweaked key, not the internal one: a key-path spend, not a bare-key signature.
        assert.equal(schnorr.verify(signature, message, internal), false);
        assert.equal(schnorr.verify(signature, randomBytes(32), outputKey), false);
      }
    }
  });

  it('bip340: the tweaked shares recombine to the secret of the output key', () => {
    for (const parity of ['odd', 'even'] as const) {
      const key = dealSigningKey('bip340', 3, 5, parity);
      const Fn = secp256k1.Point.Fn;
      const ids = [1, 3, 4];
      let s = 0n;
      for (const i of ids) {
        let lambda = 1n;
        for (const j of ids) if (j !== i) lambda = Fn.mul(lambda, Fn.div(BigInt(j), Fn.sub(BigInt(j), BigInt(i))));
        s = Fn.add(s, Fn.mul(lambda, Fn.fromBytes(frostSecret(key, i, key.shares.get(i)!).signingShare)));
      }
      assert.deepEqual(schnorr.getPublicKey(Fn.toBytes(s)), signingPublicKey(key));
      // Each public verifying share is the public image of the tweaked secret share.
      const pub = frostPublic(key);
      for (const i of [1, 2, 3, 4, 5]) {
        const tweaked = Fn.fromBytes(frostSecret(key, i, key.shares.get(i)!).signingShare);
        assert.deepEqual(pub.verifyingShares[frostIdentifier('bip340', i)], secp256k1.Point.BASE.multiply(tweaked).toBytes(true));
      }
    }
  });

  it('FROST identifiers map back to member ids', () => {
    for (const suite of ['ed25519', 'bip340'] as const) {
      for (const id of [1, 2, 5, 64, 1000]) assert.equal(memberOfIdentifier(suite, frostIdentifier(suite, id), [3, id, 7]), id);
      assert.equal(memberOfIdentifier(suite, frostIdentifier(suite, 9), [1, 2, 3]), undefined);
    }
  });

  it('verifySignature refuses wrong lengths and garbage without throwing', () => {
    const cases: [SigningSuite, DealtSigningKey][] = [
      ['ed25519', dealSigningKey('ed25519', 2, 3)],
      ['bip340', dealSigningKey('bip340', 2, 3)],
    ];
    for (const [suite, key] of cases) {
      const message = randomBytes(48);
      const signature = frostSign(key, [1, 3], message);
      const publicKey = signingPublicKey(key);
      assert.equal(verifySignature(suite, signature, message, publicKey), true);
      const refused = (sig: Uint8Array, pk: Uint8Array, msg = message): void => {
        let ok: boolean | undefined;
        assert.doesNotThrow(() => (ok = verifySignature(suite, sig, msg, pk)));
        assert.equal(ok, false);
      };
      for (const length of [0, 1, 63, 65, 128]) refused(new Uint8Array(length).fill(7), publicKey);
      refused(signature.subarray(0, 63), publicKey);
      refused(Uint8Array.from([...signature, 0]), publicKey);
      for (const length of [0, 31, 33, 65]) refused(signature, new Uint8Array(length).fill(2));
      refused(signature, Uint8Array.from([0x02, ...publicKey]));
      refused(signature, new Uint8Array(32).fill(0xff));
      refused(new Uint8Array(64).fill(0xff), publicKey);
      refused(new Uint8Array(64), publicKey);
      refused(signature, new Uint8Array(32));
      for (let i = 0; i < 50; i++) refused(randomBytes(64), publicKey);
      for (let i = 0; i < 20; i++) refused(signature, randomBytes(32));
      refused(signature, publicKey, new Uint8Array(0));
    }
  });

  it('ed25519: a malleated signature (S + L) is refused, as by node:crypto', () => {
    const key = dealSigningKey('ed25519', 2, 3);
    const message = randomBytes(20);
    const signature = frostSign(key, [2, 3], message);
    const S = bytesToNumberLE(signature.subarray(32));
    const malleated = Uint8Array.from([...signature.subarray(0, 32), ...numberToBytesLE(S + ed25519.Point.Fn.ORDER, 32)]);
    assert.equal(verifySignature('ed25519', malleated, message, key.groupPublicKey), false);
    assert.equal(ed25519Verifies(describeSigningKey('ed25519', key.groupPublicKey).spki, message, malleated), false);
  });
});
