import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { sha256 } from '@noble/hashes/sha2.js';
import { ethers } from 'ethers';
import { generateAccount, type Account } from '../../client/account.ts';
import { Compile } from 'typebox/compile';
import {
  authorizeDelegation,
  decodeHex,
  DelegationJson,
  DelegationMessage,
  encodeType,
  EncryptRequestJson,
  EncryptRequestMessage,
  type WireFields,
  GrantJson,
  GrantMessage,
  HandleDescriptorJson,
  HandleDescriptorMessage,
  MESSAGE_EXAMPLES,
  RegisterHandleJson,
  RegisterHandleMessage,
  RevocationJson,
  RevocationMessage,
  toChecksumAddress,
  committeeSalt,
  domainSeparator,
  encodeHex,
  signTypedData,
  tkmsDomain,
  type Eip712Struct,
  checkHandleCommitment,
  checkValidityWindow,
  DEFAULT_CLOCK_SKEW_SECONDS,
  deriveHandle,
  deriveHandleFromDigest,
  eciesDecrypt,
  encodePoint,
  type ErrorCode,
  grantKey,
  isTkmsError,
  MAX_VALIDITY_SECONDS,
  publicKeyFromSecret,
  randomBytes,
  randomScalar,
  sealToHandle,
  signDelegation,
  signEncryptRequest,
  signGrant,
  signRegisterHandle,
  signRevocation,
  type Delegation,
  type DelegationCheck,
  type Grant,
  type HandleDescriptor,
  type UnsignedDelegation,
  type UnsignedGrant,
  utf8ToBytes,
  verifyEphemeralKeyProof,
  verifyEncryptRequest,
  verifyGrant,
  verifyRegisterHandle,
  verifyRevocation,
} from '../../core/index.ts';

/**
 * The authorization chain owner → grant → requester, over real accounts, real ECIES output
 * and real handles (with real K-binding proofs, core/sealed-handle.ts): every refusal must
 * carry its exact error code.
 */

const NOW = 1_700_000_000;
const SKEW = DEFAULT_CLOCK_SKEW_SECONDS;
const KEY_ID = 'k1';
const DEPLOYMENT = { committeeId: 'committee-a' };

function expectCode(fn: () => unknown, code: ErrorCode, label = ''): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught !== undefined, `${label}: expected ${code}, but the call succeeded`);
  assert.ok(isTkmsError(caught), `${label}: expected a TkmsError, got ${String(caught)}`);
  assert.equal(caught.code, code, `${label}: expected ${code}, got ${caught.code}: ${caught.message}`);
}

function flip(bytes: Uint8Array, index = 0, mask = 0x01): Uint8Array {
  const out = Uint8Array.from(bytes);
  out[index]! ^= mask;
  return out;
}

interface Scenario {
  owner: Account;
  grantee: Account;
  stranger: Account;
  handle: Uint8Array;
  descriptor: HandleDescriptor;
  /** A second handle of the same owner (another ciphertext). */
  otherHandle: Uint8Array;
  otherDescriptor: HandleDescriptor;
  plaintext: Uint8Array;
  rsaSpki: Uint8Array;
  /** The network secret the handles are encrypted to, and the main handle's ciphertext. */
  networkSecret: bigint;
  ciphertext: Uint8Array;
}

async function makeHandle(
  owner: Account,
  plaintext: Uint8Array,
  networkSecret: bigint,
  keyId = KEY_ID,
): Promise<{ handle: Uint8Array; descriptor: HandleDescriptor; ciphertext: Uint8Array }> {
  const sealed = await sealToHandle({ publicKey: publicKeyFromSecret(networkSecret), keyId, owner: owner.addressBytes, plaintext });
  const descriptor: HandleDescriptor = { keyId, K: sealed.K, nonce: sealed.nonce, ciphertextHash: sealed.ciphertextHash, owner: sealed.owner, kProof: sealed.kProof };
  return { handle: sealed.handle, descriptor, ciphertext: sealed.ciphertext };
}

describe('core authz', function () {
  this.timeout(60_000);
  let s: Scenario;

  before(async () => {
    const owner = generateAccount();
    const grantee = generateAccount();
    const stranger = generateAccount();
    const plaintext = utf8ToBytes('the secret the owner encrypted');
    const networkSecret = randomScalar();
    const { handle, descriptor, ciphertext } = await makeHandle(owner, plaintext, networkSecret);
    const other = await makeHandle(owner, utf8ToBytes('another secret'), networkSecret);
    const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const rsaSpki = new Uint8Array(publicKey.export({ type: 'spki', format: 'der' }));
    s = { owner, grantee, stranger, handle, descriptor, otherHandle: other.handle, otherDescriptor: other.descriptor, plaintext, rsaSpki, networkSecret, ciphertext };
  });

  function unsignedDelegation(requester: Account, over: Partial<UnsignedDelegation> = {}): UnsignedDelegation {
    return {
      handle: s.handle,
      keyId: KEY_ID,
      requester: requester.addressBytes,
      rsaSpki: s.rsaSpki,
      notBefore: NOW - 60,
      notAfter: NOW + 600,
      requestId: randomBytes(16),
      ...over,
    };
  }

  function delegation(requester: Account, over: Partial<UnsignedDelegation> = {}, signer: Account = requester): Delegation {
    return signDelegation(signer.secretKey, unsignedDelegation(requester, over), DEPLOYMENT);
  }

  function grant(over: Partial<UnsignedGrant> = {}, signer: Account = s.owner): Grant {
    return signGrant(signer.secretKey, { handle: s.handle, grantee: s.grantee.addressBytes, notAfter: NOW + 86_400, issuedAt: NOW - 100, ...over }, DEPLOYMENT);
  }

  function check(d: Delegation, over: Partial<DelegationCheck> = {}): DelegationCheck {
    return { deployment: DEPLOYMENT, delegation: d, descriptor: s.descriptor, grant: undefined, revokedAt: () => undefined, nowSeconds: NOW, ...over };
  }

  describe('scenario', () => {
    it('handles are real: deriveHandle over ECIES output equals deriveHandleFromDigest of the descriptor', async () => {
      const { descriptor: d } = s;
      assert.deepEqual(deriveHandle({ keyId: d.keyId, K: d.K, nonce: d.nonce, ciphertext: s.ciphertext, owner: d.owner }), s.handle);
      assert.deepEqual(sha256(s.ciphertext), d.ciphertextHash);
      assert.deepEqual(await eciesDecrypt(s.networkSecret, { K: d.K, nonce: d.nonce, ciphertext: s.ciphertext }), s.plaintext);
      assert.deepEqual(deriveHandleFromDigest(s.descriptor), s.handle);
      assert.ok(verifyEphemeralKeyProof(s.descriptor, s.descriptor.kProof), 'the K-binding proof verifies');
      assert.ok(verifyEphemeralKeyProof(s.otherDescriptor, s.otherDescriptor.kProof));
      assert.equal(s.handle.length, 32);
      assert.notDeepEqual(s.handle, s.otherHandle);
      checkHandleCommitment(s.handle, s.descriptor);
      expectCode(() => checkHandleCommitment(s.otherHandle, s.descriptor), 'unauthorized', 'other handle');
    });
  });

  describe('authorizeDelegation', () => {
    it('accepts the owner without a grant', () => {
      const d = delegation(s.owner);
      const res = authorizeDelegation(check(d));
      assert.deepEqual(res.requester, s.owner.addressBytes);
      assert.equal(res.viaGrant, false);
    });

    it('accepts the grantee with the owner’s grant', () => {
      const res = authorizeDelegation(check(delegation(s.grantee), { grant: grant() }));
      assert.deepEqual(res.requester, s.grantee.addressBytes);
      assert.equal(res.viaGrant, true);
    });

    it('asks the revocation lookup about exactly (handle, requester)', () => {
      const calls: [Uint8Array, Uint8Array][] = [];
      authorizeDelegation(check(delegation(s.grantee), { grant: grant(), revokedAt: (h, g) => (calls.push([h, g]), undefined) }));
      assert.equal(calls.length, 1);
      assert.deepEqual(calls[0]![0], s.handle);
      assert.deepEqual(calls[0]![1], s.grantee.addressBytes);
    });

    it('refuses a non-owner without a grant (unauthorized)', () => {
      expectCode(() => authorizeDelegation(check(delegation(s.grantee))), 'unauthorized', 'grantee without grant');
      expectCode(() => authorizeDelegation(check(delegation(s.stranger))), 'unauthorized', 'stranger without grant');
    });

    it('refuses a grant signed by a stranger (unauthorized)', () => {
      expectCode(() => authorizeDelegation(check(delegation(s.grantee), { grant: grant({}, s.stranger) })), 'unauthorized', 'stranger grant');
      // Nor may the grantee grant itself.
      expectCode(() => authorizeDelegation(check(delegation(s.grantee), { grant: grant({}, s.grantee) })), 'unauthorized', 'self grant');
    });

    it('refuses a grant for another handle of the same owner (unauthorized)', () => {
      const g = grant({ handle: s.otherHandle });
      expectCode(() => authorizeDelegation(check(delegation(s.grantee), { grant: g })), 'unauthorized', 'other handle');
    });

    it('refuses a grant for another grantee (unauthorized)', () => {
      // The owner granted the stranger; the grantee presents that grant.
      const toStranger = grant({ grantee: s.stranger.addressBytes });
      expectCode(() => authorizeDelegation(check(delegation(s.grantee), { grant: toStranger })), 'unauthorized', 'grant to stranger used by grantee');
      // The stranger presents the grantee's grant.
      expectCode(() => authorizeDelegation(check(delegation(s.stranger), { grant: grant() })), 'unauthorized', 'grantee grant used by stranger');
    });

    it('refuses a delegation signed by another account than its requester (unauthorized)', () => {
      // A stranger claims to be the grantee (holding the grantee's grant).
      expectCode(() => authorizeDelegation(check(delegation(s.grantee, {}, s.stranger), { grant: grant() })), 'unauthorized', 'stranger as grantee');
      // A stranger claims to be the owner.
      expectCode(() => authorizeDelegation(check(delegation(s.owner, {}, s.stranger))), 'unauthorized', 'stranger as owner');
      // The owner signs on behalf of the grantee: still not the requester's signature.
      expectCode(() => authorizeDelegation(check(delegation(s.grantee, {}, s.owner), { grant: grant() })), 'unauthorized', 'owner as grantee');
    });

    it('refuses when the descriptor does not match the handle (K, nonce, ciphertextHash, owner, keyId changed)', () => {
      const d = delegation(s.owner);
      const otherK = encodePoint(publicKeyFromSecret(randomScalar()));
      const variants: [string, HandleDescriptor][] = [
        ['K', { ...s.descriptor, K: otherK }],
        ['nonce', { ...s.descriptor, nonce: flip(s.descriptor.nonce, 11) }],
        ['ciphertextHash', { ...s.descriptor, ciphertextHash: flip(s.descriptor.ciphertextHash, 5) }],
        ['owner', { ...s.descriptor, owner: s.stranger.addressBytes }],
        ['keyId', { ...s.descriptor, keyId: 'k2' }],
        ['another real descriptor', s.otherDescriptor],
        // The handle commitment holds; only K's proof is wrong (core/sealed-handle.ts).
        ['kProof of another handle', { ...s.descriptor, kProof: s.otherDescriptor.kProof }],
        ['kProof with a flipped byte', { ...s.descriptor, kProof: flip(s.descriptor.kProof, 40) }],
        ['kProof all zero', { ...s.descriptor, kProof: new Uint8Array(64) }],
      ];
      for (const [name, descriptor] of variants) {
        expectCode(() => authorizeDelegation(check(d, { descriptor })), 'unauthorized', `owner, ${name}`);
      }
      // The grantee cannot become "owner" by naming itself the owner in the descriptor.
      const dg = delegation(s.grantee);
      expectCode(() => authorizeDelegation(check(dg, { descriptor: { ...s.descriptor, owner: s.grantee.addressBytes } })), 'unauthorized', 'grantee as owner');
      // Nor by pairing a grant it signed itself with that descriptor.
      const selfGrant = grant({}, s.grantee);
      expectCode(
        () => authorizeDelegation(check(dg, { descriptor: { ...s.descriptor, owner: s.grantee.addressBytes }, grant: selfGrant })),
        'unauthorized',
        'grantee as owner with self grant',
      );
    });

    it('refuses delegation.keyId ≠ descriptor.keyId (unauthorized), even when both are signed consistently', () => {
      const d = delegation(s.owner, { keyId: 'k2' });
      expectCode(() => authorizeDelegation(check(d)), 'unauthorized', 'delegation k2, descriptor k1');
      // Both say k2, but the handle commits to k1.
      expectCode(() => authorizeDelegation(check(d, { descriptor: { ...s.descriptor, keyId: 'k2' } })), 'unauthorized', 'both k2');
    });

    it('refuses an expired window and a window in the future beyond the skew (expired)', () => {
      expectCode(() => authorizeDelegation(check(delegation(s.owner, { notBefore: NOW - 1000, notAfter: NOW - 100 }))), 'expired', 'past');
      expectCode(() => authorizeDelegation(check(delegation(s.owner, { notBefore: NOW + 100, notAfter: NOW + 200 }))), 'expired', 'future');
    });

    it('accepts windows that reach now within the skew, at the exact boundary values', () => {
      // notAfter + skew == now: still valid; one second later: expired.
      authorizeDelegation(check(delegation(s.owner, { notBefore: NOW - 600, notAfter: NOW - SKEW })));
      expectCode(() => authorizeDelegation(check(delegation(s.owner, { notBefore: NOW - 600, notAfter: NOW - SKEW - 1 }))), 'expired', 'notAfter edge');
      // notBefore - skew == now: valid; one second later: not yet valid.
      authorizeDelegation(check(delegation(s.owner, { notBefore: NOW + SKEW, notAfter: NOW + 600 })));
      expectCode(() => authorizeDelegation(check(delegation(s.owner, { notBefore: NOW + SKEW + 1, notAfter: NOW + 600 }))), 'expired', 'notBefore edge');
      // An explicit skew replaces the default.
      authorizeDelegation(check(delegation(s.owner, { notBefore: NOW - 600, notAfter: NOW }), { clockSkewSeconds: 0 }));
      expectCode(() => authorizeDelegation(check(delegation(s.owner, { notBefore: NOW - 600, notAfter: NOW - 1 }), { clockSkewSeconds: 0 })), 'expired', 'skew 0');
      authorizeDelegation(check(delegation(s.owner, { notBefore: NOW - 600, notAfter: NOW - 120 }), { clockSkewSeconds: 120 }));
    });

    it('refuses a window longer than an hour and an empty or inverted window (bad_request)', () => {
      assert.equal(MAX_VALIDITY_SECONDS, 3600);
      authorizeDelegation(check(delegation(s.owner, { notBefore: NOW - 100, notAfter: NOW - 100 + 3600 })));
      expectCode(() => authorizeDelegation(check(delegation(s.owner, { notBefore: NOW - 100, notAfter: NOW - 100 + 3601 }))), 'bad_request', '3601 s');
      expectCode(() => authorizeDelegation(check(delegation(s.owner, { notBefore: NOW, notAfter: NOW }))), 'bad_request', 'notAfter == notBefore');
      expectCode(() => authorizeDelegation(check(delegation(s.owner, { notBefore: NOW + 10, notAfter: NOW - 10 }))), 'bad_request', 'inverted');
    });

    it('refuses an expired grant (expired), honouring the skew at the boundary', () => {
      const d = delegation(s.grantee);
      expectCode(() => authorizeDelegation(check(d, { grant: grant({ notAfter: NOW - SKEW - 1 }) })), 'expired', 'grant expired');
      authorizeDelegation(check(d, { grant: grant({ notAfter: NOW - SKEW }) }));
      expectCode(() => authorizeDelegation(check(d, { grant: grant({ notAfter: NOW - 1 }), clockSkewSeconds: 0 })), 'expired', 'grant expired, skew 0');
    });

    it('refuses a grant revoked at or after its issue time (revoked); a re-grant after a revocation passes', () => {
      const d = delegation(s.grantee);
      const issuedAt = NOW - 100;
      const g = grant({ issuedAt });
      expectCode(() => authorizeDelegation(check(d, { grant: g, revokedAt: () => issuedAt })), 'revoked', 'revokedAt == issuedAt');
      expectCode(() => authorizeDelegation(check(d, { grant: g, revokedAt: () => issuedAt + 50 })), 'revoked', 'revokedAt > issuedAt');
      // The owner re-granted after revoking: the new grant's issuedAt is later than the revocation.
      const res = authorizeDelegation(check(d, { grant: g, revokedAt: () => issuedAt - 1 }));
      assert.equal(res.viaGrant, true);
      // The grantee cannot dodge the revocation by bumping issuedAt on the old grant.
      const bumped: Grant = { ...g, issuedAt: issuedAt + 100 };
      expectCode(() => authorizeDelegation(check(d, { grant: bumped, revokedAt: () => issuedAt + 50 })), 'unauthorized', 'bumped issuedAt');
    });

    it('a revocation is keyed on the grantee: another grantee’s revocation does not apply', () => {
      const d = delegation(s.grantee);
      const revokedAt = (_h: Uint8Array, g: Uint8Array): number | undefined => (grantKey(s.handle, g) === grantKey(s.handle, s.stranger.addressBytes) ? NOW : undefined);
      assert.equal(authorizeDelegation(check(d, { grant: grant(), revokedAt })).viaGrant, true);
    });

    it('refuses a delegation with any single signature byte tampered (unauthorized)', () => {
      const d = delegation(s.owner);
      for (let i = 0; i < d.signature.length; i++) {
        expectCode(() => authorizeDelegation(check({ ...d, signature: flip(d.signature, i) })), 'unauthorized', `delegation signature byte ${i}`);
      }
      const g = grant();
      const dg = delegation(s.grantee);
      for (const i of [0, 31, 32, 63, 64]) {
        expectCode(() => authorizeDelegation(check(dg, { grant: { ...g, signature: flip(g.signature, i) } })), 'unauthorized', `grant signature byte ${i}`);
      }
    });

    it('refuses a delegation whose signed fields were changed after signing (unauthorized)', () => {
      const d = delegation(s.grantee);
      const g = grant();
      const { publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const otherSpki = new Uint8Array(publicKey.export({ type: 'spki', format: 'der' }));
      const variants: [string, Delegation][] = [
        ['rsaSpki swapped (gateway substitutes its own RSA key)', { ...d, rsaSpki: otherSpki }],
        ['requestId', { ...d, requestId: flip(d.requestId) }],
        ['notAfter', { ...d, notAfter: d.notAfter + 1 }],
        ['notBefore', { ...d, notBefore: d.notBefore - 1 }],
      ];
      for (const [name, tampered] of variants) expectCode(() => authorizeDelegation(check(tampered, { grant: g })), 'unauthorized', name);
      // Grant fields changed after signing.
      expectCode(() => authorizeDelegation(check(d, { grant: { ...g, notAfter: g.notAfter + 1 } })), 'unauthorized', 'grant notAfter');
    });

    it('refuses fields of the wrong length (bad_request)', () => {
      const d = delegation(s.owner);
      expectCode(() => authorizeDelegation(check({ ...d, handle: d.handle.subarray(0, 31) })), 'bad_request', 'handle');
      expectCode(() => authorizeDelegation(check({ ...d, requestId: new Uint8Array(15) })), 'bad_request', 'requestId');
      expectCode(() => authorizeDelegation(check({ ...d, requester: new Uint8Array(21) })), 'bad_request', 'requester');
    });
  });

  describe('checkValidityWindow', () => {
    it('boundaries', () => {
      checkValidityWindow(100, 200, { nowSeconds: 230 }, 'w');
      expectCode(() => checkValidityWindow(100, 200, { nowSeconds: 231 }, 'w'), 'expired');
      checkValidityWindow(100, 200, { nowSeconds: 70 }, 'w');
      expectCode(() => checkValidityWindow(100, 200, { nowSeconds: 69 }, 'w'), 'expired');
      checkValidityWindow(0, 3600, { nowSeconds: 0 }, 'w');
      expectCode(() => checkValidityWindow(0, 3601, { nowSeconds: 0 }, 'w'), 'bad_request');
      expectCode(() => checkValidityWindow(5, 5, { nowSeconds: 5 }, 'w'), 'bad_request');
      // Shape errors take precedence over time errors.
      expectCode(() => checkValidityWindow(0, 10_000, { nowSeconds: 1e9 }, 'w'), 'bad_request');
    });
  });

  describe('verifyGrant', () => {
    it('accepts the owner’s grant and refuses others (unauthorized)', () => {
      verifyGrant(grant(), s.descriptor, DEPLOYMENT);
      expectCode(() => verifyGrant(grant({}, s.stranger), s.descriptor, DEPLOYMENT), 'unauthorized', 'stranger');
      expectCode(() => verifyGrant(grant({}, s.grantee), s.descriptor, DEPLOYMENT), 'unauthorized', 'grantee');
      expectCode(() => verifyGrant(grant(), s.otherDescriptor, DEPLOYMENT), 'unauthorized', 'other descriptor');
      expectCode(() => verifyGrant(grant(), { ...s.descriptor, owner: s.stranger.addressBytes }, DEPLOYMENT), 'unauthorized', 'descriptor owner changed');
      const g = grant();
      expectCode(() => verifyGrant({ ...g, notAfter: g.notAfter + 1 }, s.descriptor, DEPLOYMENT), 'unauthorized', 'tampered notAfter');
      expectCode(() => verifyGrant({ ...g, grantee: s.stranger.addressBytes }, s.descriptor, DEPLOYMENT), 'unauthorized', 'tampered grantee');
      expectCode(() => verifyGrant({ ...g, signature: flip(g.signature, 10) }, s.descriptor, DEPLOYMENT), 'unauthorized', 'tampered signature');
    });
  });

  describe('verifyRevocation', () => {
    it('accepts the owner’s revocation and refuses others (unauthorized)', () => {
      const r = signRevocation(s.owner.secretKey, { handle: s.handle, grantee: s.grantee.addressBytes, revokedAt: NOW }, DEPLOYMENT);
      verifyRevocation(r, s.descriptor, DEPLOYMENT);
      // The grantee cannot revoke (or un-revoke) on the owner's behalf, nor can a stranger.
      expectCode(() => verifyRevocation(signRevocation(s.stranger.secretKey, { handle: s.handle, grantee: s.grantee.addressBytes, revokedAt: NOW }, DEPLOYMENT), s.descriptor, DEPLOYMENT), 'unauthorized', 'stranger');
      expectCode(() => verifyRevocation(signRevocation(s.grantee.secretKey, { handle: s.handle, grantee: s.grantee.addressBytes, revokedAt: NOW }, DEPLOYMENT), s.descriptor, DEPLOYMENT), 'unauthorized', 'grantee');
      expectCode(() => verifyRevocation(r, s.otherDescriptor, DEPLOYMENT), 'unauthorized', 'other descriptor');
      expectCode(() => verifyRevocation({ ...r, revokedAt: NOW - 1 }, s.descriptor, DEPLOYMENT), 'unauthorized', 'tampered revokedAt');
      expectCode(() => verifyRevocation({ ...r, grantee: s.stranger.addressBytes }, s.descriptor, DEPLOYMENT), 'unauthorized', 'tampered grantee');
      expectCode(() => verifyRevocation({ ...r, signature: flip(r.signature, 40) }, s.descriptor, DEPLOYMENT), 'unauthorized', 'tampered signature');
      // A stranger describing its own "ownership" of the handle fails the commitment.
      const stolen = signRevocation(s.stranger.secretKey, { handle: s.handle, grantee: s.grantee.addressBytes, revokedAt: NOW }, DEPLOYMENT);
      expectCode(() => verifyRevocation(stolen, { ...s.descriptor, owner: s.stranger.addressBytes }, DEPLOYMENT), 'unauthorized', 'stranger as owner');
    });
  });

  describe('verifyRegisterHandle', () => {
    it('accepts the owner’s registration and refuses mismatches (unauthorized)', () => {
      const r = signRegisterHandle(s.owner.secretKey, { handle: s.handle, keyId: KEY_ID, owner: s.owner.addressBytes }, DEPLOYMENT);
      verifyRegisterHandle(r, s.descriptor, DEPLOYMENT);
      // Signed by a stranger in the owner's name.
      expectCode(() => verifyRegisterHandle(signRegisterHandle(s.stranger.secretKey, { handle: s.handle, keyId: KEY_ID, owner: s.owner.addressBytes }, DEPLOYMENT), s.descriptor, DEPLOYMENT), 'unauthorized', 'stranger signs for owner');
      // A stranger registering the owner's handle as its own.
      const claim = signRegisterHandle(s.stranger.secretKey, { handle: s.handle, keyId: KEY_ID, owner: s.stranger.addressBytes }, DEPLOYMENT);
      expectCode(() => verifyRegisterHandle(claim, s.descriptor, DEPLOYMENT), 'unauthorized', 'owner mismatch');
      expectCode(() => verifyRegisterHandle(claim, { ...s.descriptor, owner: s.stranger.addressBytes }, DEPLOYMENT), 'unauthorized', 'commitment mismatch');
      // keyId and handle mismatches.
      const k2 = signRegisterHandle(s.owner.secretKey, { handle: s.handle, keyId: 'k2', owner: s.owner.addressBytes }, DEPLOYMENT);
      expectCode(() => verifyRegisterHandle(k2, s.descriptor, DEPLOYMENT), 'unauthorized', 'keyId');
      expectCode(() => verifyRegisterHandle(k2, { ...s.descriptor, keyId: 'k2' }, DEPLOYMENT), 'unauthorized', 'keyId both');
      const other = signRegisterHandle(s.owner.secretKey, { handle: s.otherHandle, keyId: KEY_ID, owner: s.owner.addressBytes }, DEPLOYMENT);
      expectCode(() => verifyRegisterHandle(other, s.descriptor, DEPLOYMENT), 'unauthorized', 'other handle');
      verifyRegisterHandle(other, s.otherDescriptor, DEPLOYMENT);
      expectCode(() => verifyRegisterHandle({ ...r, signature: flip(r.signature, 64) }, s.descriptor, DEPLOYMENT), 'unauthorized', 'tampered v');
      // The owner's own, correctly signed registration, but K is not bound to the handle.
      expectCode(() => verifyRegisterHandle(r, { ...s.descriptor, kProof: s.otherDescriptor.kProof }, DEPLOYMENT), 'unauthorized', 'kProof of another handle');
      expectCode(() => verifyRegisterHandle(r, { ...s.descriptor, kProof: flip(s.descriptor.kProof, 0) }, DEPLOYMENT), 'unauthorized', 'kProof flipped');
    });
  });

  describe('verifyEncryptRequest', () => {
    function encryptRequest(over: Partial<Parameters<typeof signEncryptRequest>[1]> = {}, signer: Account = s.owner) {
      return signEncryptRequest(signer.secretKey, {
        keyId: KEY_ID,
        owner: s.owner.addressBytes,
        plaintextHash: sha256(s.plaintext),
        notBefore: NOW - 10,
        notAfter: NOW + 300,
        requestId: randomBytes(16),
        ...over,
      }, DEPLOYMENT);
    }

    it('accepts the owner’s request for the right plaintext', () => {
      verifyEncryptRequest(encryptRequest(), s.plaintext, { nowSeconds: NOW }, DEPLOYMENT);
    });

    it('refuses a plaintext that does not match plaintextHash (unauthorized)', () => {
      expectCode(() => verifyEncryptRequest(encryptRequest(), utf8ToBytes('something else'), { nowSeconds: NOW }, DEPLOYMENT), 'unauthorized', 'other plaintext');
      const oneByteOff = Uint8Array.from(s.plaintext);
      oneByteOff[0]! ^= 1;
      expectCode(() => verifyEncryptRequest(encryptRequest(), oneByteOff, { nowSeconds: NOW }, DEPLOYMENT), 'unauthorized', 'flipped plaintext');
      expectCode(() => verifyEncryptRequest(encryptRequest(), new Uint8Array(0), { nowSeconds: NOW }, DEPLOYMENT), 'unauthorized', 'empty plaintext');
    });

    it('refuses a wrong signer, tampered fields, and bad windows', () => {
      expectCode(() => verifyEncryptRequest(encryptRequest({}, s.stranger), s.plaintext, { nowSeconds: NOW }, DEPLOYMENT), 'unauthorized', 'stranger signs for owner');
      const r = encryptRequest();
      expectCode(() => verifyEncryptRequest({ ...r, keyId: 'k2' }, s.plaintext, { nowSeconds: NOW }, DEPLOYMENT), 'unauthorized', 'tampered keyId');
      expectCode(() => verifyEncryptRequest({ ...r, owner: s.stranger.addressBytes }, s.plaintext, { nowSeconds: NOW }, DEPLOYMENT), 'unauthorized', 'tampered owner');
      expectCode(() => verifyEncryptRequest({ ...r, signature: flip(r.signature, 3) }, s.plaintext, { nowSeconds: NOW }, DEPLOYMENT), 'unauthorized', 'tampered signature');
      expectCode(() => verifyEncryptRequest(r, s.plaintext, { nowSeconds: NOW + 300 + SKEW + 1 }, DEPLOYMENT), 'expired', 'expired');
      verifyEncryptRequest(r, s.plaintext, { nowSeconds: NOW + 300 + SKEW }, DEPLOYMENT);
      expectCode(() => verifyEncryptRequest(encryptRequest({ notBefore: NOW, notAfter: NOW + 3601 }), s.plaintext, { nowSeconds: NOW }, DEPLOYMENT), 'bad_request', 'too long');
      expectCode(() => verifyEncryptRequest(encryptRequest({ notBefore: NOW, notAfter: NOW }), s.plaintext, { nowSeconds: NOW }, DEPLOYMENT), 'bad_request', 'empty window');
    });
  });

  describe('deployment binding (EIP-712 domain version 2)', () => {
    const OTHER = { committeeId: 'committee-b' };
    const V1 = { name: 'tkms', version: '1' };
    const signV1 = (who: Account, struct: Eip712Struct, message: Record<string, Uint8Array | string | number>): Uint8Array => signTypedData(who.secretKey, V1, struct, message);

    it('the domain is {name "tkms", version "2", salt keccak256("tkms/committee/" ‖ id)}, as ethers builds it, with chainId only when given', () => {
      const salt = ethers.keccak256(ethers.toUtf8Bytes('tkms/committee/committee-a'));
      assert.equal(encodeHex(committeeSalt('committee-a')), salt);
      assert.equal(encodeHex(domainSeparator(tkmsDomain(DEPLOYMENT))), ethers.TypedDataEncoder.hashDomain({ name: 'tkms', version: '2', salt }));
      assert.equal(
        encodeHex(domainSeparator(tkmsDomain({ ...DEPLOYMENT, chainId: 31337n }))),
        ethers.TypedDataEncoder.hashDomain({ name: 'tkms', version: '2', chainId: 31337n, salt }),
      );
      assert.notDeepEqual(domainSeparator(tkmsDomain(DEPLOYMENT)), domainSeparator(tkmsDomain(OTHER)));
      assert.equal(tkmsDomain(DEPLOYMENT).chainId, undefined);
      for (const bad of ['', 'x'.repeat(129), 5, undefined]) expectCode(() => tkmsDomain({ committeeId: bad as string }), 'bad_request', `committee id ${String(bad)}`);
    });

    it('a wallet (ethers signTypedData) signs what the nodes verify', async () => {
      const wallet = new ethers.Wallet(encodeHex(s.owner.secretKey));
      const salt = encodeHex(committeeSalt(DEPLOYMENT.committeeId));
      const types = { Grant: GrantMessage.struct.fields.map((f) => ({ name: f.name, type: f.type })) };
      const g = { handle: s.handle, grantee: s.grantee.addressBytes, notAfter: NOW + 600, issuedAt: NOW - 1 };
      const signature = await wallet.signTypedData({ name: 'tkms', version: '2', salt }, types, { ...g, handle: encodeHex(g.handle), grantee: encodeHex(g.grantee) });
      const signed = GrantMessage.decode({ handle: encodeHex(g.handle), grantee: encodeHex(g.grantee), notAfter: g.notAfter, issuedAt: g.issuedAt, signature });
      verifyGrant(signed, s.descriptor, DEPLOYMENT);
      assert.deepEqual(signed.signature, signGrant(s.owner.secretKey, g, DEPLOYMENT).signature);
      expectCode(() => verifyGrant(signed, s.descriptor, OTHER), 'unauthorized', 'wallet grant at another committee');
    });

    it('every kind of message signed for one committee is refused by another (unauthorized)', () => {
      const g = grant();
      const r = signRevocation(s.owner.secretKey, { handle: s.handle, grantee: s.grantee.addressBytes, revokedAt: NOW }, DEPLOYMENT);
      const reg = signRegisterHandle(s.owner.secretKey, { handle: s.handle, keyId: KEY_ID, owner: s.owner.addressBytes }, DEPLOYMENT);
      const enc = signEncryptRequest(s.owner.secretKey, { keyId: KEY_ID, owner: s.owner.addressBytes, plaintextHash: sha256(s.plaintext), notBefore: NOW - 10, notAfter: NOW + 300, requestId: randomBytes(16) }, DEPLOYMENT);
      const d = delegation(s.grantee);
      // Each is good where it was signed…
      verifyGrant(g, s.descriptor, DEPLOYMENT);
      verifyRevocation(r, s.descriptor, DEPLOYMENT);
      verifyRegisterHandle(reg, s.descriptor, DEPLOYMENT);
      verifyEncryptRequest(enc, s.plaintext, { nowSeconds: NOW }, DEPLOYMENT);
      authorizeDelegation(check(d, { grant: g }));
      // …and worthless anywhere else.
      expectCode(() => verifyGrant(g, s.descriptor, OTHER), 'unauthorized', 'grant');
      expectCode(() => verifyRevocation(r, s.descriptor, OTHER), 'unauthorized', 'revocation');
      expectCode(() => verifyRegisterHandle(reg, s.descriptor, OTHER), 'unauthorized', 'registration');
      expectCode(() => verifyEncryptRequest(enc, s.plaintext, { nowSeconds: NOW }, OTHER), 'unauthorized', 'encrypt request');
      expectCode(() => authorizeDelegation(check(d, { grant: g, deployment: OTHER })), 'unauthorized', 'delegation');
      // A delegation made for B with A's grant: the grant is what fails.
      const dOther = signDelegation(s.grantee.secretKey, unsignedDelegation(s.grantee), OTHER);
      expectCode(() => authorizeDelegation(check(dOther, { grant: g, deployment: OTHER })), 'unauthorized', 'grant of another committee');
      assert.throws(() => authorizeDelegation(check(dOther, { grant: g, deployment: OTHER })), /grant is not signed by .* \(committee committee-b\)/);
      // A chain id is part of the deployment too.
      expectCode(() => verifyGrant(g, s.descriptor, { ...DEPLOYMENT, chainId: 1n }), 'unauthorized', 'grant with a chain id');
    });

    it('version-1 signatures (no deployment) are refused with legacy_signature, each kind', () => {
      const g = { handle: s.handle, grantee: s.grantee.addressBytes, notAfter: NOW + 600, issuedAt: NOW - 100 };
      const legacyGrant = { ...g, signature: signV1(s.owner, GrantMessage.struct, g) };
      const r = { handle: s.handle, grantee: s.grantee.addressBytes, revokedAt: NOW };
      const reg = { handle: s.handle, keyId: KEY_ID, owner: s.owner.addressBytes };
      const enc = { keyId: KEY_ID, owner: s.owner.addressBytes, plaintextHash: sha256(s.plaintext), notBefore: NOW - 10, notAfter: NOW + 300, requestId: randomBytes(16) };
      const d = unsignedDelegation(s.grantee);
      expectCode(() => verifyGrant(legacyGrant, s.descriptor, DEPLOYMENT), 'legacy_signature', 'grant');
      expectCode(() => verifyRevocation({ ...r, signature: signV1(s.owner, RevocationMessage.struct, r) }, s.descriptor, DEPLOYMENT), 'legacy_signature', 'revocation');
      expectCode(() => verifyRegisterHandle({ ...reg, signature: signV1(s.owner, RegisterHandleMessage.struct, reg) }, s.descriptor, DEPLOYMENT), 'legacy_signature', 'registration');
      expectCode(() => verifyEncryptRequest({ ...enc, signature: signV1(s.owner, EncryptRequestMessage.struct, enc) }, s.plaintext, { nowSeconds: NOW }, DEPLOYMENT), 'legacy_signature', 'encrypt');
      expectCode(() => authorizeDelegation(check({ ...d, signature: signV1(s.grantee, DelegationMessage.struct, { ...d }) })), 'legacy_signature', 'delegation');
      // A stored version-1 grant behind a current delegation: the error names the grant and says to grant again.
      assert.throws(() => authorizeDelegation(check(delegation(s.grantee), { grant: legacyGrant })), (e: unknown) => isTkmsError(e, 'legacy_signature') && /^grant .*version 1.*sign it again/.test(e.message));
      // A version-1 signature by someone else is plain unauthorized: legacy_signature only ever names the expected signer.
      expectCode(() => verifyGrant({ ...g, signature: signV1(s.stranger, GrantMessage.struct, g) }, s.descriptor, DEPLOYMENT), 'unauthorized', 'v1 by a stranger');
    });
  });

  describe('JSON round trips', () => {
    const viaJson = <T>(toJson: (x: T) => unknown, parse: (v: unknown) => T, x: T): T => parse(JSON.parse(JSON.stringify(toJson(x))));

    it('parseX(xToJson(x)) deep-equals x for every message type, directly and through JSON text', () => {
      const d = delegation(s.grantee);
      const g = grant();
      const r = signRevocation(s.owner.secretKey, { handle: s.handle, grantee: s.grantee.addressBytes, revokedAt: NOW }, DEPLOYMENT);
      const e = signEncryptRequest(s.owner.secretKey, {
        keyId: KEY_ID,
        owner: s.owner.addressBytes,
        plaintextHash: sha256(s.plaintext),
        notBefore: NOW,
        notAfter: NOW + 60,
        requestId: randomBytes(16),
      }, DEPLOYMENT);
      const reg = signRegisterHandle(s.owner.secretKey, { handle: s.handle, keyId: KEY_ID, owner: s.owner.addressBytes }, DEPLOYMENT);

      assert.deepStrictEqual(DelegationMessage.decode(DelegationMessage.encode(d)), d);
      assert.deepStrictEqual(GrantMessage.decode(GrantMessage.encode(g)), g);
      assert.deepStrictEqual(RevocationMessage.decode(RevocationMessage.encode(r)), r);
      assert.deepStrictEqual(EncryptRequestMessage.decode(EncryptRequestMessage.encode(e)), e);
      assert.deepStrictEqual(RegisterHandleMessage.decode(RegisterHandleMessage.encode(reg)), reg);
      assert.deepStrictEqual(HandleDescriptorMessage.decode(HandleDescriptorMessage.encode(s.descriptor)), s.descriptor);

      assert.deepStrictEqual(viaJson(DelegationMessage.encode, DelegationMessage.decode, d), d);
      assert.deepStrictEqual(viaJson(GrantMessage.encode, GrantMessage.decode, g), g);
      assert.deepStrictEqual(viaJson(RevocationMessage.encode, RevocationMessage.decode, r), r);
      assert.deepStrictEqual(viaJson(EncryptRequestMessage.encode, EncryptRequestMessage.decode, e), e);
      assert.deepStrictEqual(viaJson(RegisterHandleMessage.encode, RegisterHandleMessage.decode, reg), reg);
      assert.deepStrictEqual(viaJson(HandleDescriptorMessage.encode, HandleDescriptorMessage.decode, s.descriptor), s.descriptor);
    });

    it('parsed messages still verify (the wire form loses nothing the signature covers)', () => {
      const d = DelegationMessage.decode(JSON.parse(JSON.stringify(DelegationMessage.encode(delegation(s.grantee)))));
      const g = GrantMessage.decode(JSON.parse(JSON.stringify(GrantMessage.encode(grant()))));
      const descriptor = HandleDescriptorMessage.decode(JSON.parse(JSON.stringify(HandleDescriptorMessage.encode(s.descriptor))));
      assert.equal(authorizeDelegation({ deployment: DEPLOYMENT, delegation: d, descriptor, grant: g, revokedAt: () => undefined, nowSeconds: NOW }).viaGrant, true);
    });

    it('the wire forms are the documented ones (0x hex, SPKI without 0x, numbers for times)', () => {
      const j = DelegationMessage.encode(delegation(s.owner));
      assert.match(String(j.handle), /^0x[0-9a-f]{64}$/);
      assert.match(String(j.requester), /^0x[0-9a-f]{40}$/);
      assert.match(String(j.rsaSpki), /^[0-9a-f]+$/);
      assert.match(String(j.requestId), /^0x[0-9a-f]{32}$/);
      assert.match(String(j.signature), /^0x[0-9a-f]{130}$/);
      assert.equal(typeof j.notBefore, 'number');
      assert.equal(j.requester, s.owner.address);
    });
  });
});

describe('core: messages declared once (core/messages.ts)', () => {
  const DEVNET = { committeeId: 'devnet' };
  const codecs = {
    handleDescriptor: HandleDescriptorMessage,
    delegation: DelegationMessage,
    grant: GrantMessage,
    revocation: RevocationMessage,
    encryptRequest: EncryptRequestMessage,
    registerHandle: RegisterHandleMessage,
  } as const;
  const schemas = [HandleDescriptorJson, DelegationJson, GrantJson, RevocationJson, EncryptRequestJson, RegisterHandleJson];

  it('every example decodes, re-encodes to itself, and every example signature verifies for its deployment', () => {
    for (const [name, codec] of Object.entries(codecs)) {
      const example = MESSAGE_EXAMPLES[name as keyof typeof MESSAGE_EXAMPLES];
      assert.deepStrictEqual(codec.encode(codec.decode(example) as never), example, name);
      assert.deepStrictEqual((codec.schema as { examples?: unknown[] }).examples, [example], name);
    }
    const descriptor = HandleDescriptorMessage.decode(MESSAGE_EXAMPLES.handleDescriptor);
    const grant = GrantMessage.decode(MESSAGE_EXAMPLES.grant);
    const delegation = DelegationMessage.decode(MESSAGE_EXAMPLES.delegation);
    verifyRegisterHandle(RegisterHandleMessage.decode(MESSAGE_EXAMPLES.registerHandle), descriptor, DEVNET);
    verifyGrant(grant, descriptor, DEVNET);
    verifyRevocation(RevocationMessage.decode(MESSAGE_EXAMPLES.revocation), descriptor, DEVNET);
    const encrypt = EncryptRequestMessage.decode(MESSAGE_EXAMPLES.encryptRequest);
    verifyEncryptRequest(encrypt, utf8ToBytes('hello, tkms'), { nowSeconds: encrypt.notBefore }, DEVNET);
    const auth = authorizeDelegation({ deployment: DEVNET, delegation, descriptor, grant, revokedAt: () => undefined, nowSeconds: delegation.notBefore });
    assert.equal(auth.viaGrant, true);
  });

  it('every field carries a description and an example its own schema accepts', () => {
    for (const [name, codec] of Object.entries(codecs)) {
      for (const [field, f] of Object.entries(codec.fields as WireFields)) {
        const schema = f.schema as { description?: string; examples?: unknown[] };
        assert.ok(typeof schema.description === 'string' && schema.description.length > 0, `${name}.${field} has no description`);
        assert.equal(schema.examples?.length, 1, `${name}.${field} has no example`);
        assert.ok(Compile(f.schema).Check(schema.examples![0]), `${name}.${field}: its example does not match its schema`);
      }
    }
  });

  it('the JSON schemas are plain JSON Schema objects: every field required, nothing else allowed', () => {
    for (const schema of schemas) {
      const plain = JSON.parse(JSON.stringify(schema)) as { type: string; required: string[]; properties: Record<string, unknown>; additionalProperties: boolean; description: string };
      assert.equal(plain.type, 'object');
      assert.equal(plain.additionalProperties, false);
      assert.deepEqual(plain.required, Object.keys(plain.properties));
      assert.ok(plain.description.length > 0);
    }
  });

  it('each EIP-712 struct is its declaration without the signature, in order, with the types wallets sign', () => {
    const expected: [Eip712Struct, string][] = [
      [DelegationMessage.struct, 'Delegation(bytes32 handle,string keyId,address requester,bytes rsaSpki,uint64 notBefore,uint64 notAfter,bytes16 requestId)'],
      [GrantMessage.struct, 'Grant(bytes32 handle,address grantee,uint64 notAfter,uint64 issuedAt)'],
      [RevocationMessage.struct, 'Revocation(bytes32 handle,address grantee,uint64 revokedAt)'],
      [EncryptRequestMessage.struct, 'EncryptRequest(string keyId,address owner,bytes32 plaintextHash,uint64 notBefore,uint64 notAfter,bytes16 requestId)'],
      [RegisterHandleMessage.struct, 'RegisterHandle(bytes32 handle,string keyId,address owner)'],
    ];
    for (const [struct, type] of expected) assert.equal(encodeType(struct), type);
    assert.deepEqual(Object.keys(DelegationMessage.fields), [...DelegationMessage.struct.fields.map((f) => f.name), 'signature']);
  });

  it('without code generation (a strict Content-Security-Policy) the codecs decode, encode and refuse the same', () => {
    // Every message and frame, decoded and re-encoded, and one refusal of each kind, in a process that forbids eval.
    const script = `
      const m = await import('./core/index.ts');
      const E = m.MESSAGE_EXAMPLES;
      const out = [];
      for (const [codec, example] of [[m.HandleDescriptorMessage, E.handleDescriptor], [m.DelegationMessage, E.delegation], [m.GrantMessage, E.grant], [m.RevocationMessage, E.revocation], [m.EncryptRequestMessage, E.encryptRequest], [m.RegisterHandleMessage, E.registerHandle]]) {
        out.push(JSON.stringify(codec.encode(codec.decode(example))) === JSON.stringify(example));
      }
      const request = { delegation: m.DelegationMessage.decode(E.delegation), descriptor: m.HandleDescriptorMessage.decode(E.handleDescriptor), grant: m.GrantMessage.decode(E.grant) };
      out.push(m.decodePartialRequest(m.encodePartialRequest(request)).grant.issuedAt === E.grant.issuedAt);
      out.push(m.decodePartialReply(m.encodePartialReply({ ok: false, code: 'rate_limited', message: 'x', retryAfterSeconds: 3 })).retryAfterSeconds === 3);
      for (const bad of [{ ...E.grant, handle: '0x12' }, { ...E.grant, extra: 1 }, { ...E.grant, grantee: 'x' }]) {
        try { m.GrantMessage.decode(bad); out.push('accepted'); } catch (e) { out.push(e.code); }
      }
      console.log(JSON.stringify(out));`;
    const run = spawnSync(process.execPath, ['--disallow-code-generation-from-strings', '--import', 'tsx', '--input-type=module', '-e', script], { cwd: fileURLToPath(new URL('../..', import.meta.url)), encoding: 'utf8', timeout: 60_000 });
    assert.equal(run.status, 0, run.stderr);
    assert.deepEqual(JSON.parse(run.stdout.trim().split('\n').pop()!), [true, true, true, true, true, true, true, true, 'bad_length', 'bad_request', 'bad_address']);
  });

  it('a refusal keeps its code: bad_hex, bad_length, bad_address, bad_key_id, bad_request with the field named', () => {
    const g = MESSAGE_EXAMPLES.grant;
    const refused = (value: unknown, code: ErrorCode, message: RegExp): void => {
      assert.throws(() => GrantMessage.decode(value), (e: unknown) => isTkmsError(e, code) && message.test(e.message), `${code} ${message}`);
    };
    refused({ ...g, handle: `${g.handle.slice(0, -1)}g` }, 'bad_hex', /^handle is not valid hex/);
    refused({ ...g, handle: g.handle.slice(0, -2) }, 'bad_length', /^handle must be 32 bytes, got 31$/);
    refused({ ...g, grantee: g.grantee.slice(0, -1) }, 'bad_address', /^grantee must be 0x followed by 40 hex digits$/);
    refused({ ...g, grantee: toChecksumAddress(decodeHex(g.grantee)).replace(/[a-f]/, (c) => c.toUpperCase()) }, 'bad_address', /^grantee has an invalid EIP-55 checksum$/);
    refused({ ...g, notAfter: '1' }, 'bad_request', /^notAfter must be a unix time in whole seconds$/);
    refused({ ...g, signature: g.signature.slice(2) }, 'bad_hex', /^signature must start with 0x$/);
    refused({ ...g, extra: 1 }, 'bad_request', /^grant has an unexpected field "extra"$/);
    const { issuedAt: _issuedAt, ...missing } = g;
    refused(missing, 'bad_request', /^grant is missing the field "issuedAt"$/);
    refused([g], 'bad_request', /^grant must be a JSON object$/);
    assert.throws(() => DelegationMessage.decode({ ...MESSAGE_EXAMPLES.delegation, keyId: 'a..b' }), (e: unknown) => isTkmsError(e, 'bad_key_id'));
    // A mixed-case address with a valid checksum is the same address.
    assert.deepStrictEqual(GrantMessage.decode({ ...g, grantee: toChecksumAddress(decodeHex(g.grantee)) }), GrantMessage.decode(g));
  });
});
