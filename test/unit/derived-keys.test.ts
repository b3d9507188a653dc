import assert from 'node:assert/strict';
import { sha512 } from '@noble/hashes/sha2.js';
import { bytesToNumberBE } from '@noble/curves/utils.js';
import {
  computeProvenPartial,
  CURVE_ORDER,
  decryptWithSharedSecretX,
  encodeDleqProof,
  eciesEncrypt,
  G,
  generateRsaKeyPair,
  importRsaPublicKey,
  isTkmsError,
  mod,
  newRequestId,
  publicKeyFromSecret,
  randomScalar,
  type RsaKeyPair,
  rsaOaepWrap,
  splitSecret,
  utf8ToBytes,
} from '../../core/index.ts';
import {
  assertDerivationPath,
  combineDerivedPartials,
  DERIVATION_PATH_MAX_LENGTH,
  deriveKeyTweak,
  derivedPublicKey,
  MAX_DERIVATION_VERSION,
} from '../../core/keys/derive.ts';
import { recoverFromEpochs, recoverSharedSecret, type WrappedPartial } from '../../client/partials.ts';
import { backendsUnderTest, withCurveBackend } from '../support/curve-backends.ts';

const pub = (secret: bigint): Uint8Array => publicKeyFromSecret(secret).toBytes(true);

function rejectsCode(fn: () => unknown, code: string): void {
  assert.throws(fn, (e: unknown) => isTkmsError(e) && e.code === code);
}

/** The encoding spelled out by hand, independent of lengthPrefixed and mapHashToField. */
function referenceTweak(root: Uint8Array, path: string, version: number): bigint {
  const u32 = (v: number): number[] => [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
  const field = (bytes: Uint8Array): number[] => [...u32(bytes.length), ...bytes];
  const input = Uint8Array.from([
    ...field(utf8ToBytes('tkms/derived-key/v1')),
    ...field(root),
    ...field(utf8ToBytes(path)),
    ...field(Uint8Array.from(u32(version))),
  ]);
  return (bytesToNumberBE(sha512(input)) % (CURVE_ORDER - 1n)) + 1n;
}

/** τ for root = G, path "m/0", version 1. */
const PINNED_TWEAK_HEX = 'f83bd11e335a812723344bd01e51b8fa761c3d9d5a254c4136645f52ba00a261';

/** A committee's root, dealt t-of-n: the shares, Y_i and the root public key. */
function dealRoot(t: number, n: number) {
  const secret = randomScalar();
  const shares = splitSecret(secret, t, n);
  return {
    secret,
    publicKey: pub(secret),
    shares,
    verificationShares: new Map(shares.map((s) => [s.id, pub(s.value)] as const)),
  };
}

/** What each node sends: the partial of the ROOT share, proven against the root's Y_i, wrapped to the requester. */
async function nodeAnswers(
  root: ReturnType<typeof dealRoot>,
  ids: readonly number[],
  keyId: string,
  requestId: Uint8Array,
  K: Uint8Array,
  rsa: RsaKeyPair,
): Promise<WrappedPartial[]> {
  const rsaPublic = await importRsaPublicKey(rsa.publicKey.spkiHex);
  return Promise.all(
    ids.map(async (id) => {
      const share = root.shares.find((s) => s.id === id)!.value;
      const proven = computeProvenPartial({ keyId, nodeId: id, requestId }, share, root.verificationShares.get(id)!, K);
      return { nodeId: id, wrapped: await rsaOaepWrap(rsaPublic, proven.partial), proof: encodeDleqProof(proven.proof) };
    }),
  );
}

describe('derived keys: the tweak', () => {
  it('is the length-prefixed SHA-512 of (domain, root, path, version) mapped into 1..n−1, pinned', () => {
    const root = G.toBytes(true);
    const tweak = deriveKeyTweak(root, 'm/0', 1);
    assert.equal(tweak, referenceTweak(root, 'm/0', 1));
    // Pinned: changing the encoding re-keys every derived key, so it must show up as a failing test.
    assert.equal(tweak.toString(16), PINNED_TWEAK_HEX);
    const other = pub(randomScalar());
    for (const [path, version] of [['users/alice', 0], ['é/✓/😀', 7], ['x'.repeat(DERIVATION_PATH_MAX_LENGTH), MAX_DERIVATION_VERSION]] as const) {
      assert.equal(deriveKeyTweak(other, path, version), referenceTweak(other, path, version), `${path} v${version}`);
    }
  });

  it('the path rule: 1..256 code points, no control characters, no unpaired surrogates', () => {
    for (const ok of ['a', ' ', 'users/alice/0', 'é', '😀'.repeat(DERIVATION_PATH_MAX_LENGTH), 'tab\\t-literal', '\u00a0']) assertDerivationPath(ok);
    const bad: unknown[] = ['', 'x'.repeat(DERIVATION_PATH_MAX_LENGTH + 1), 'a\nb', 'a\u0000', '\u001f', '\u007f', '\u0085', '\u009f', '\ud800', 'a\udc00', '\ude00\ud83d', 7, null, undefined, ['a'], { toString: () => 'a' }];
    for (const value of bad) rejectsCode(() => assertDerivationPath(value), 'bad_request');
  });

  it('refuses a bad root, path or version with a typed error', () => {
    const root = pub(randomScalar());
    const uncompressed = publicKeyFromSecret(randomScalar()).toBytes(false);
    rejectsCode(() => deriveKeyTweak(uncompressed, 'a', 1), 'bad_length');
    rejectsCode(() => deriveKeyTweak(new Uint8Array(33), 'a', 1), 'bad_point');
    rejectsCode(() => deriveKeyTweak(Uint8Array.from([2, ...new Uint8Array(32).fill(0xff)]), 'a', 1), 'bad_point');
    rejectsCode(() => deriveKeyTweak('02' as unknown as Uint8Array, 'a', 1), 'bad_point');
    rejectsCode(() => deriveKeyTweak(root, 'a\r', 1), 'bad_request');
    for (const version of [-1, 1.5, MAX_DERIVATION_VERSION + 1, Number.NaN, 1n, '1']) {
      rejectsCode(() => deriveKeyTweak(root, 'a', version as number), 'bad_request');
    }
  });

  it('derivedPublicKey refuses tweaks out of range and the identity (τ = −root)', () => {
    const secret = randomScalar();
    const root = pub(secret);
    for (const tweak of [0n, -1n, CURVE_ORDER, CURVE_ORDER + 1n]) rejectsCode(() => derivedPublicKey(root, tweak), 'bad_scalar');
    rejectsCode(() => derivedPublicKey(root, 1 as unknown as bigint), 'bad_scalar');
    rejectsCode(() => derivedPublicKey(root, mod(-secret)), 'bad_point');
    assert.deepEqual(derivedPublicKey(root, 5n), pub(mod(secret + 5n)));
  });
});

for (const backend of backendsUnderTest()) describe(`derived keys end to end with ${backend.name}`, function () {
  this.timeout(120_000);
  withCurveBackend(backend);
  let rsa: RsaKeyPair;
  before(async () => {
    rsa = await generateRsaKeyPair(2048);
  });

  it('encrypt to the derived key; the root shares answer; verified against the root Y_i and combined with τ, it decrypts', async () => {
    const root = dealRoot(3, 5);
    const tweak = deriveKeyTweak(root.publicKey, 'wallets/user-42', 1);
    const publicKey = derivedPublicKey(root.publicKey, tweak);
    assert.deepEqual(publicKey, pub(mod(root.secret + tweak)));
    const plaintext = utf8ToBytes('the derived key holds this');
    const message = await eciesEncrypt(publicKey, plaintext);
    const keyId = 'wallets-user-42';
    const requestId = newRequestId();
    const partials = await nodeAnswers(root, [5, 2, 4], keyId, requestId, message.K, rsa);
    const base = { keyId, requestId, K: message.K, t: 3, verificationShares: root.verificationShares, partials, rsaPrivateKey: rsa.privateKey };

    const recovered = await recoverSharedSecret({ ...base, tweak });
    assert.deepEqual(recovered.usedNodeIds, [5, 2, 4]);
    assert.deepEqual(recovered.rejected, []);
    assert.deepEqual(await decryptWithSharedSecretX(recovered.sharedSecretX, message.nonce, message.ciphertext), plaintext);

    // The epoch-aware path the client's decrypt uses carries the tweak through.
    const byEpoch = await recoverFromEpochs({
      keyId, requestId, K: message.K, rsaPrivateKey: rsa.privateKey, tweak,
      epochs: new Map([[0, { t: 3, verificationShares: root.verificationShares }]]),
      partials,
    });
    assert.deepEqual(byEpoch.sharedSecretX, recovered.sharedSecretX);

    // Another path, another version, no tweak (the root itself): the same partials give another key.
    const wrongTweaks: [string, bigint | undefined][] = [
      ['other path', deriveKeyTweak(root.publicKey, 'wallets/user-43', 1)],
      ['other version', deriveKeyTweak(root.publicKey, 'wallets/user-42', 2)],
      ['the root', undefined],
    ];
    for (const [what, wrong] of wrongTweaks) {
      const other = await recoverSharedSecret(wrong === undefined ? base : { ...base, tweak: wrong });
      await assert.rejects(decryptWithSharedSecretX(other.sharedSecretX, message.nonce, message.ciphertext), (e: unknown) => isTkmsError(e, 'decrypt_failed'), what);
    }
  });

  it('a node answering with root + τ instead of its root share is caught by the proof, and the rest still decrypt', async () => {
    const root = dealRoot(2, 4);
    const tweak = deriveKeyTweak(root.publicKey, 'svc/a', 3);
    const message = await eciesEncrypt(derivedPublicKey(root.publicKey, tweak), utf8ToBytes('x'));
    const keyId = 'svc-a';
    const requestId = newRequestId();
    const honest = await nodeAnswers(root, [2, 3], keyId, requestId, message.K, rsa);
    // Node 1 shifts its share by τ: a partial that matches no published Y_i.
    const shifted = { ...root, shares: root.shares.map((s) => (s.id === 1 ? { id: 1, value: mod(s.value + tweak) } : s)) };
    const [liar] = await nodeAnswers(shifted, [1], keyId, requestId, message.K, rsa);
    const recovered = await recoverSharedSecret({
      keyId, requestId, K: message.K, t: 2, verificationShares: root.verificationShares, partials: [liar!, ...honest], rsaPrivateKey: rsa.privateKey, tweak,
    });
    assert.deepEqual(recovered.rejected.map((r) => [r.nodeId, r.code]), [[1, 'bad_proof']]);
    assert.deepEqual(await decryptWithSharedSecretX(recovered.sharedSecretX, message.nonce, message.ciphertext), utf8ToBytes('x'));
  });

  it('combineDerivedPartials refuses a bad tweak, a bad K and malformed partials with typed errors', () => {
    const K = pub(randomScalar());
    const partial = { id: 1, point: pub(randomScalar()) };
    rejectsCode(() => combineDerivedPartials([partial], K, 0n), 'bad_scalar');
    rejectsCode(() => combineDerivedPartials([partial], K, CURVE_ORDER), 'bad_scalar');
    rejectsCode(() => combineDerivedPartials([partial], new Uint8Array(33), 1n), 'bad_point');
    rejectsCode(() => combineDerivedPartials([{ id: 1, point: new Uint8Array(32) }], K, 1n), 'bad_point');
    rejectsCode(() => combineDerivedPartials([partial, { ...partial }], K, 1n), 'bad_request');
    rejectsCode(() => combineDerivedPartials([], K, 1n), 'bad_request');
    // One partial: λ = 1, so the sum is P + τ·K, the identity exactly when P = −τ·K.
    const k = randomScalar();
    const tweak = randomScalar();
    const s = randomScalar();
    assert.deepEqual(combineDerivedPartials([{ id: 1, point: pub(mod(k * s)) }], pub(k), tweak), pub(mod(k * (s + tweak))));
    rejectsCode(() => combineDerivedPartials([{ id: 1, point: pub(mod(-k * tweak)) }], pub(k), tweak), 'bad_point');
  });
});
