import assert from 'node:assert/strict';
import { randomBytes as nodeRandomBytes } from 'node:crypto';
import { sha256 } from '@noble/hashes/sha2.js';
import fc from 'fast-check';
import { generateAccount, type Account } from '../../client/account.ts';
import {
  authorizeDelegation,
  checkHandleCommitment,
  CURVE_ORDER,
  deriveHandle,
  deriveHandleFromDigest,
  eciesDecrypt,
  encodePoint,
  encodeScalar,
  EPHEMERAL_PROOF_LENGTH,
  G,
  type HandleDescriptor,
  type HandleDigestInput,
  isTkmsError,
  Point,
  proveEphemeralKey,
  publicKeyFromSecret,
  randomBytes,
  randomScalar,
  sealToHandle,
  type SealedHandle,
  signDelegation,
  signGrant,
  signRegisterHandle,
  utf8ToBytes,
  verifyEphemeralKeyProof,
  verifyRegisterHandle,
} from '../../core/index.ts';

/**
 * core/sealed-handle.ts: the Schnorr proof that binds K = k·G to its handle. Without it anyone
 * could copy a victim's K, nonce and ciphertext hash into a handle they own and have the nodes
 * compute K·sk for them (the "K-copy attack"); with it, only whoever ran the ECIES encryption
 * (and so knows k) can make a handle for that K, and only for the owner, key and ciphertext it
 * signed into the proof.
 */

const KEY_ID = 'demo-key';
const NOW = 1_700_000_000;
const DEPLOYMENT = { committeeId: 'committee-a' };
const PROOF_MESSAGE = /proof of the ephemeral key/;

function flip(bytes: Uint8Array, index = 0, mask = 0x01): Uint8Array {
  const out = Uint8Array.from(bytes);
  out[index]! ^= mask;
  return out;
}

const digestOf = (s: HandleDigestInput): HandleDigestInput => ({ keyId: s.keyId, K: s.K, nonce: s.nonce, ciphertextHash: s.ciphertextHash, owner: s.owner });
const descriptorOf = (s: SealedHandle): HandleDescriptor => ({ ...digestOf(s), kProof: s.kProof });

/** A delegation by `requester` for `handle`, valid now, signed by the requester. */
function delegationFor(requester: Account, handle: Uint8Array, rsaSpki: Uint8Array, keyId = KEY_ID) {
  return signDelegation(requester.secretKey, {
    handle,
    keyId,
    requester: requester.addressBytes,
    rsaSpki,
    notBefore: NOW - 60,
    notAfter: NOW + 600,
    requestId: randomBytes(16),
  }, DEPLOYMENT);
}

function expectUnauthorized(fn: () => unknown, message: RegExp, label: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isTkmsError(e), `${label}: expected a TkmsError, got ${String(e)}`);
    assert.equal(e.code, 'unauthorized', `${label}: expected unauthorized, got ${e.code}: ${e.message}`);
    assert.match(e.message, message, label);
    return true;
  }, label);
}

describe('core sealed handle (K binding)', function () {
  this.timeout(60_000);

  const networkSecret = randomScalar();
  const publicKey = publicKeyFromSecret(networkSecret);
  const plaintext = utf8ToBytes('the victim’s secret');
  // Any DER bytes do: authorizeDelegation signs and compares rsaSpki but never imports it.
  const rsaSpki = nodeRandomBytes(294);
  let victim: Account;
  let attacker: Account;
  let sealed: SealedHandle;

  before(async () => {
    victim = generateAccount();
    attacker = generateAccount();
    sealed = await sealToHandle({ publicKey, keyId: KEY_ID, owner: victim.addressBytes, plaintext });
  });

  describe('sealToHandle', () => {
    it('is ECIES that core eciesDecrypt opens, with the handle deriveHandle computes', async () => {
      assert.deepEqual(await eciesDecrypt(networkSecret, { K: sealed.K, nonce: sealed.nonce, ciphertext: sealed.ciphertext }), plaintext);
      assert.deepEqual(sealed.handle, deriveHandle({ keyId: KEY_ID, K: sealed.K, nonce: sealed.nonce, ciphertext: sealed.ciphertext, owner: victim.addressBytes }));
      assert.deepEqual(sealed.handle, deriveHandleFromDigest(digestOf(sealed)));
      assert.deepEqual(sealed.ciphertextHash, sha256(sealed.ciphertext));
      assert.equal(sealed.keyId, KEY_ID);
      assert.deepEqual(sealed.owner, victim.addressBytes);
      assert.equal(sealed.K.length, 33);
      assert.equal(sealed.nonce.length, 12);
      assert.equal(sealed.ciphertext.length, plaintext.length + 16);
      assert.equal(sealed.kProof.length, EPHEMERAL_PROOF_LENGTH);
      assert.equal(EPHEMERAL_PROOF_LENGTH, 64);
    });

    it('the proof verifies, and the descriptor passes the handle commitment', () => {
      assert.equal(verifyEphemeralKeyProof(digestOf(sealed), sealed.kProof), true);
      checkHandleCommitment(sealed.handle, descriptorOf(sealed));
    });

    it('a fresh k every time: the same plaintext seals to another K, handle and proof', async () => {
      const again = await sealToHandle({ publicKey, keyId: KEY_ID, owner: victim.addressBytes, plaintext });
      assert.notDeepEqual(again.K, sealed.K);
      assert.notDeepEqual(again.handle, sealed.handle);
      assert.notDeepEqual(again.kProof, sealed.kProof);
      assert.equal(verifyEphemeralKeyProof(digestOf(again), again.kProof), true);
      // Proofs do not transfer between the two handles.
      assert.equal(verifyEphemeralKeyProof(digestOf(again), sealed.kProof), false);
      assert.equal(verifyEphemeralKeyProof(digestOf(sealed), again.kProof), false);
      assert.deepEqual(await eciesDecrypt(networkSecret, again), plaintext);
    });

    it('seals the empty plaintext, and refuses the identity as public key and non-bytes plaintext', async () => {
      const empty = await sealToHandle({ publicKey, keyId: KEY_ID, owner: victim.addressBytes, plaintext: new Uint8Array(0) });
      assert.deepEqual(await eciesDecrypt(networkSecret, empty), new Uint8Array(0));
      assert.equal(verifyEphemeralKeyProof(digestOf(empty), empty.kProof), true);
      await assert.rejects(sealToHandle({ publicKey: Point.ZERO, keyId: KEY_ID, owner: victim.addressBytes, plaintext }), (e: unknown) => isTkmsError(e, 'bad_point'));
      await assert.rejects(sealToHandle({ publicKey, keyId: KEY_ID, owner: victim.addressBytes, plaintext: 'text' as unknown as Uint8Array }), (e: unknown) => isTkmsError(e, 'bad_request'));
    });
  });

  describe('verifyEphemeralKeyProof', () => {
    it('fails when any bound field changes: owner, keyId, nonce, ciphertextHash, K', () => {
      const d = digestOf(sealed);
      const variants: [string, HandleDigestInput][] = [
        ['owner (the attacker)', { ...d, owner: attacker.addressBytes }],
        ['owner (one bit)', { ...d, owner: flip(d.owner, 19) }],
        ['keyId', { ...d, keyId: 'other-key' }],
        ['keyId (one character)', { ...d, keyId: 'demo-kez' }],
        ['nonce', { ...d, nonce: flip(d.nonce, 0) }],
        ['nonce (last byte)', { ...d, nonce: flip(d.nonce, 11, 0x80) }],
        ['ciphertextHash', { ...d, ciphertextHash: flip(d.ciphertextHash, 31) }],
        ['ciphertextHash of another ciphertext', { ...d, ciphertextHash: sha256(utf8ToBytes('another ciphertext')) }],
        ['K (another point)', { ...d, K: encodePoint(publicKeyFromSecret(randomScalar())) }],
        ['K (negated: same x, other parity)', { ...d, K: Uint8Array.of(d.K[0] === 2 ? 3 : 2, ...d.K.subarray(1)) }],
        ['K (not a point)', { ...d, K: flip(d.K, 32) }],
        ['K (the network key)', { ...d, K: encodePoint(publicKey) }],
      ];
      for (const [name, changed] of variants) assert.equal(verifyEphemeralKeyProof(changed, sealed.kProof), false, name);
      assert.equal(verifyEphemeralKeyProof(d, sealed.kProof), true, 'the unchanged digest still verifies');
    });

    it('fails when any single bit of the proof is flipped', () => {
      const d = digestOf(sealed);
      for (let i = 0; i < EPHEMERAL_PROOF_LENGTH; i++) {
        for (const mask of [0x01, 0x80]) assert.equal(verifyEphemeralKeyProof(d, flip(sealed.kProof, i, mask)), false, `byte ${i} mask ${mask}`);
      }
      // c and s swapped, and either half alone.
      const swapped = Uint8Array.of(...sealed.kProof.subarray(32), ...sealed.kProof.subarray(0, 32));
      assert.equal(verifyEphemeralKeyProof(d, swapped), false, 'swapped halves');
      assert.equal(verifyEphemeralKeyProof(d, sealed.kProof.subarray(0, 32)), false, 'c alone');
    });

    it('fails for wrong lengths, non-bytes, zero and out-of-range scalars, without throwing', () => {
      const d = digestOf(sealed);
      const nMinus1 = encodeScalar(CURVE_ORDER - 1n);
      const c = sealed.kProof.subarray(0, 32);
      const s = sealed.kProof.subarray(32);
      const allOnes = new Uint8Array(32).fill(0xff); // ≥ n: not a canonical scalar
      const cases: [string, unknown][] = [
        ['empty', new Uint8Array(0)],
        ['63 bytes', sealed.kProof.subarray(0, 63)],
        ['65 bytes', Uint8Array.of(...sealed.kProof, 0)],
        ['all zero', new Uint8Array(64)],
        ['s = 0', Uint8Array.of(...c, ...new Uint8Array(32))],
        ['c = 0', Uint8Array.of(...new Uint8Array(32), ...s)],
        ['c = n - 1', Uint8Array.of(...nMinus1, ...s)],
        ['c ≥ n', Uint8Array.of(...allOnes, ...s)],
        ['s ≥ n', Uint8Array.of(...c, ...allOnes)],
        ['all 0xff', new Uint8Array(64).fill(0xff)],
        ['hex string', Buffer.from(sealed.kProof).toString('hex')],
        ['number array', Array.from(sealed.kProof)],
        ['undefined', undefined],
        ['null', null],
      ];
      for (const [name, proof] of cases) assert.equal(verifyEphemeralKeyProof(d, proof as Uint8Array), false, name);
      // A Buffer holding the valid proof is a Uint8Array: accepted.
      assert.equal(verifyEphemeralKeyProof(d, Buffer.from(sealed.kProof)), true, 'Buffer');
    });

    it('a proof made with a wrong k does not verify for K = k·G', () => {
      const k = randomScalar();
      const d: HandleDigestInput = { keyId: KEY_ID, K: encodePoint(publicKeyFromSecret(k)), nonce: randomBytes(12), ciphertextHash: randomBytes(32), owner: victim.addressBytes };
      assert.equal(verifyEphemeralKeyProof(d, proveEphemeralKey(k, d)), true, 'the right k');
      for (const wrong of [randomScalar(), k + 1n, CURVE_ORDER - k, 1n]) {
        assert.equal(verifyEphemeralKeyProof(d, proveEphemeralKey(wrong, d)), false, `k' = ${wrong === 1n ? '1' : 'other'}`);
      }
      // Knowing the victim's network-side secret does not help either: only k does.
      assert.equal(verifyEphemeralKeyProof(digestOf(sealed), proveEphemeralKey(networkSecret, digestOf(sealed))), false, 'network secret');
    });

    it('proofs are randomized (hedged nonce) yet each verifies', () => {
      const k = randomScalar();
      const d: HandleDigestInput = { keyId: KEY_ID, K: encodePoint(G.multiply(k)), nonce: randomBytes(12), ciphertextHash: randomBytes(32), owner: victim.addressBytes };
      const a = proveEphemeralKey(k, d);
      const b = proveEphemeralKey(k, d);
      assert.notDeepEqual(a, b);
      assert.equal(verifyEphemeralKeyProof(d, a), true);
      assert.equal(verifyEphemeralKeyProof(d, b), true);
    });
  });

  describe('the K-copy attack', () => {
    /**
     * The attacker copies the victim's K, nonce and ciphertext hash into a descriptor of their
     * own, owner = attacker. Its handle is a correct commitment to those fields, so the handle
     * check passes; were the nodes to answer, K·sk would decrypt the victim's ciphertext.
     */
    function attackerCopy(kProof: Uint8Array): { handle: Uint8Array; descriptor: HandleDescriptor } {
      const descriptor: HandleDescriptor = { ...digestOf(sealed), owner: attacker.addressBytes, kProof };
      return { handle: deriveHandleFromDigest(descriptor), descriptor };
    }

    it('the copied descriptor passes the handle commitment: only the K binding stops it', () => {
      const { handle, descriptor } = attackerCopy(sealed.kProof);
      assert.notDeepEqual(handle, sealed.handle);
      checkHandleCommitment(handle, descriptor);
      assert.deepEqual(descriptor.K, sealed.K);
    });

    it('(a) with the victim’s kProof, authorizeDelegation refuses the attacker as owner (unauthorized, about the proof)', () => {
      const { handle, descriptor } = attackerCopy(sealed.kProof);
      const delegation = delegationFor(attacker, handle, rsaSpki);
      expectUnauthorized(
        () => authorizeDelegation({ deployment: DEPLOYMENT, delegation, descriptor, grant: undefined, revokedAt: () => undefined, nowSeconds: NOW }),
        PROOF_MESSAGE,
        'victim’s kProof',
      );
    });

    it('(b) with a random 64-byte proof, likewise', () => {
      for (let i = 0; i < 8; i++) {
        const { handle, descriptor } = attackerCopy(nodeRandomBytes(EPHEMERAL_PROOF_LENGTH));
        const delegation = delegationFor(attacker, handle, rsaSpki);
        expectUnauthorized(
          () => authorizeDelegation({ deployment: DEPLOYMENT, delegation, descriptor, grant: undefined, revokedAt: () => undefined, nowSeconds: NOW }),
          PROOF_MESSAGE,
          `random proof ${i}`,
        );
      }
    });

    it('(c) with a proof the attacker made for the copied fields (not knowing k), likewise', () => {
      const forged = attackerCopy(new Uint8Array(64));
      const kProof = proveEphemeralKey(randomScalar(), digestOf(forged.descriptor));
      const { handle, descriptor } = attackerCopy(kProof);
      const delegation = delegationFor(attacker, handle, rsaSpki);
      expectUnauthorized(
        () => authorizeDelegation({ deployment: DEPLOYMENT, delegation, descriptor, grant: undefined, revokedAt: () => undefined, nowSeconds: NOW }),
        PROOF_MESSAGE,
        'attacker’s own proof',
      );
    });

    it('a grant the attacker signs to an accomplice for the copied handle does not help', () => {
      const accomplice = generateAccount();
      const { handle, descriptor } = attackerCopy(sealed.kProof);
      const grant = signGrant(attacker.secretKey, { handle, grantee: accomplice.addressBytes, notAfter: NOW + 86_400, issuedAt: NOW - 100 }, DEPLOYMENT);
      const delegation = delegationFor(accomplice, handle, rsaSpki);
      expectUnauthorized(
        () => authorizeDelegation({ deployment: DEPLOYMENT, delegation, descriptor, grant, revokedAt: () => undefined, nowSeconds: NOW }),
        PROOF_MESSAGE,
        'accomplice via grant',
      );
    });

    it('the attacker cannot register the copied handle either (verifyRegisterHandle)', () => {
      const { handle, descriptor } = attackerCopy(sealed.kProof);
      const registration = signRegisterHandle(attacker.secretKey, { handle, keyId: KEY_ID, owner: attacker.addressBytes }, DEPLOYMENT);
      expectUnauthorized(() => verifyRegisterHandle(registration, descriptor, DEPLOYMENT), PROOF_MESSAGE, 'registration of the copy');
    });

    it('the victim, with their own descriptor, is authorized (and may register it)', () => {
      const descriptor = descriptorOf(sealed);
      const delegation = delegationFor(victim, sealed.handle, rsaSpki);
      const authorized = authorizeDelegation({ deployment: DEPLOYMENT, delegation, descriptor, grant: undefined, revokedAt: () => undefined, nowSeconds: NOW });
      assert.equal(authorized.viaGrant, false);
      assert.deepEqual(authorized.requester, victim.addressBytes);
      verifyRegisterHandle(signRegisterHandle(victim.secretKey, { handle: sealed.handle, keyId: KEY_ID, owner: victim.addressBytes }, DEPLOYMENT), descriptor, DEPLOYMENT);
      // ... and a grantee of the victim through the victim's grant.
      const grantee = generateAccount();
      const grant = signGrant(victim.secretKey, { handle: sealed.handle, grantee: grantee.addressBytes, notAfter: NOW + 86_400, issuedAt: NOW - 100 }, DEPLOYMENT);
      const viaGrant = authorizeDelegation({ deployment: DEPLOYMENT, delegation: delegationFor(grantee, sealed.handle, rsaSpki), descriptor, grant, revokedAt: () => undefined, nowSeconds: NOW });
      assert.equal(viaGrant.viaGrant, true);
    });

    it('the victim’s own descriptor with a broken proof is refused too', () => {
      const delegation = delegationFor(victim, sealed.handle, rsaSpki);
      expectUnauthorized(
        () => authorizeDelegation({ deployment: DEPLOYMENT, delegation, descriptor: { ...descriptorOf(sealed), kProof: flip(sealed.kProof, 63) }, grant: undefined, revokedAt: () => undefined, nowSeconds: NOW }),
        PROOF_MESSAGE,
        'victim, flipped proof',
      );
    });
  });

  describe('properties', () => {
    const keyIdArb = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,63}$/).filter((s) => !s.includes('..'));
    const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
    // K: mostly arbitrary 33 bytes (rarely a point), sometimes a real point.
    const kArb = fc.oneof(bytes(33), fc.bigInt({ min: 1n, max: CURVE_ORDER - 1n }).map((k) => encodePoint(publicKeyFromSecret(k))));
    const digestArb: fc.Arbitrary<HandleDigestInput> = fc.record({ keyId: keyIdArb, K: kArb, nonce: bytes(12), ciphertextHash: bytes(32), owner: bytes(20) });

    it('random 64-byte proofs never verify for a real handle, and never throw', () => {
      const d = digestOf(sealed);
      fc.assert(
        fc.property(bytes(64), (proof) => {
          assert.equal(verifyEphemeralKeyProof(d, proof), false);
        }),
        { numRuns: 2000 },
      );
    });

    it('random descriptors with random proofs (or the real proof) never verify, and never throw', () => {
      fc.assert(
        fc.property(digestArb, fc.oneof(bytes(64), fc.uint8Array({ maxLength: 100 }), fc.constant(sealed.kProof)), (d, proof) => {
          assert.equal(verifyEphemeralKeyProof(d, proof), false);
        }),
        { numRuns: 1000 },
      );
    });

    it('a valid proof verifies only for its own fields: any other digest fails', () => {
      fc.assert(
        fc.property(fc.bigInt({ min: 1n, max: CURVE_ORDER - 1n }), digestArb, (k, other) => {
          const d: HandleDigestInput = { ...other, K: encodePoint(publicKeyFromSecret(k)) };
          const proof = proveEphemeralKey(k, d);
          assert.equal(verifyEphemeralKeyProof(d, proof), true);
          const fields = ['keyId', 'K', 'nonce', 'ciphertextHash', 'owner'] as const;
          for (const f of fields) {
            const changed = { ...d, [f]: f === 'keyId' ? `${d.keyId.slice(0, 63)}${d.keyId.endsWith('x') ? 'y' : 'x'}` : flip(d[f] as Uint8Array, d[f].length - 1) };
            assert.equal(verifyEphemeralKeyProof(changed, proof), false, f);
          }
        }),
        { numRuns: 100 },
      );
    });

    it('an invalid key id never verifies: false, or a typed bad_key_id error', () => {
      const d = digestOf(sealed);
      fc.assert(
        fc.property(fc.oneof(fc.constantFrom('', 'A', 'a..b', '.a', 'a'.repeat(65), 'ké'), fc.string({ maxLength: 70 })), (keyId) => {
          if (keyId === KEY_ID) return;
          try {
            assert.equal(verifyEphemeralKeyProof({ ...d, keyId }, sealed.kProof), false);
          } catch (e) {
            assert.ok(isTkmsError(e, 'bad_key_id'), `keyId ${JSON.stringify(keyId)}: ${String(e)}`);
          }
        }),
        { numRuns: 300 },
      );
    });
  });
});
