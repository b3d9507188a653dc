import assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv, createECDH, hkdfSync, randomBytes as nodeRandomBytes } from 'node:crypto';
import fc from 'fast-check';
import {
  decodePoint,
  eciesDecrypt,
  eciesEncrypt,
  type EciesCiphertext,
  encodePoint,
  encodeScalar,
  isTkmsError,
  multiplySecret,
  publicKeyFromSecret,
  randomScalar,
  xCoordinate,
} from '../../core/index.ts';

/**
 * Cross-checks core ECIES against an independent implementation built from node:crypto
 * (OpenSSL) alone: ECDH for x(k·PK), HKDF-SHA256 and AES-256-GCM, with the spec's constants
 * written out here rather than imported from core.
 */
const SPEC_INFO = Buffer.from('45434945533a4145535f47434d3a7631', 'hex'); // "ECIES:AES_GCM:v1", as printed in the spec
const SPEC_SALT = Buffer.alloc(32);
const MIB = 1024 * 1024;

interface Recipient {
  sk: bigint;
  ecdh: ReturnType<typeof createECDH>;
  publicKeyCompressed: Buffer;
}

function newRecipient(): Recipient {
  const sk = randomScalar();
  const ecdh = createECDH('secp256k1');
  ecdh.setPrivateKey(Buffer.from(encodeScalar(sk)));
  return { sk, ecdh, publicKeyCompressed: ecdh.getPublicKey(null, 'compressed') };
}

function nodeAesKey(sharedX: Buffer): Buffer {
  return Buffer.from(hkdfSync('sha256', sharedX, SPEC_SALT, SPEC_INFO, 32));
}

/** Decrypts a core ciphertext with node:crypto only, given the recipient's ECDH object. */
function nodeDecrypt(recipient: Recipient, message: EciesCiphertext): Buffer {
  const sharedX = recipient.ecdh.computeSecret(Buffer.from(message.K)); // OpenSSL ECDH output = x-coordinate
  const body = message.ciphertext.subarray(0, message.ciphertext.length - 16);
  const tag = message.ciphertext.subarray(message.ciphertext.length - 16);
  const decipher = createDecipheriv('aes-256-gcm', nodeAesKey(sharedX), message.nonce);
  decipher.setAuthTag(tag);
  return Buffer.concat([decipher.update(body), decipher.final()]);
}

/** Encrypts to a compressed public key with node:crypto only. */
function nodeEncrypt(publicKeyCompressed: Buffer, plaintext: Uint8Array): EciesCiphertext {
  const ephemeral = createECDH('secp256k1');
  ephemeral.generateKeys();
  const sharedX = ephemeral.computeSecret(publicKeyCompressed);
  const nonce = nodeRandomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', nodeAesKey(sharedX), nonce);
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return {
    K: new Uint8Array(ephemeral.getPublicKey(null, 'compressed')),
    nonce: new Uint8Array(nonce),
    ciphertext: new Uint8Array(Buffer.concat([body, cipher.getAuthTag()])),
  };
}

function assertLayout(message: EciesCiphertext, plaintextLength: number): void {
  assert.ok(message.K instanceof Uint8Array);
  assert.equal(message.K.length, 33);
  assert.ok(message.K[0] === 0x02 || message.K[0] === 0x03, `K prefix ${message.K[0]}`);
  assert.equal(message.nonce.length, 12);
  assert.equal(message.ciphertext.length, plaintextLength + 16);
  decodePoint(message.K, 'K'); // K is a valid curve point
}

describe('core: ECIES cross-checked with node:crypto', () => {
  it('core shared secret x(k·PK) equals node:crypto ECDH computeSecret, from both sides', () => {
    for (let run = 0; run < 20; run++) {
      const recipient = newRecipient();
      const k = randomScalar();
      const K = publicKeyFromSecret(k);
      const coreFromSender = xCoordinate(multiplySecret(decodePoint(recipient.publicKeyCompressed), k));
      const coreFromRecipient = xCoordinate(multiplySecret(K, recipient.sk));
      const nodeFromRecipient = recipient.ecdh.computeSecret(Buffer.from(encodePoint(K)));
      assert.deepEqual(Buffer.from(coreFromSender), nodeFromRecipient);
      assert.deepEqual(Buffer.from(coreFromRecipient), nodeFromRecipient);
      // The compressed public key from OpenSSL equals core's encoding of sk·G.
      assert.deepEqual(Buffer.from(encodePoint(publicKeyFromSecret(recipient.sk))), recipient.publicKeyCompressed);
    }
  });

  it('a core ciphertext decrypts with node:crypto alone and has the spec byte layout', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: 300 }), async (plaintext) => {
        const recipient = newRecipient();
        const message = await eciesEncrypt(publicKeyFromSecret(recipient.sk), plaintext);
        assertLayout(message, plaintext.length);
        assert.deepEqual(new Uint8Array(nodeDecrypt(recipient, message)), plaintext);
      }),
      { numRuns: 30 },
    );
  });

  it('a node:crypto ciphertext decrypts with core eciesDecrypt', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: 300 }), async (plaintext) => {
        const recipient = newRecipient();
        const message = nodeEncrypt(recipient.publicKeyCompressed, plaintext);
        assert.deepEqual(await eciesDecrypt(recipient.sk, message), plaintext);
      }),
      { numRuns: 30 },
    );
  });

  it('core accepts the public key as a Point, 33 bytes or hex, and all decrypt with node:crypto', async () => {
    const recipient = newRecipient();
    const plaintext = new TextEncoder().encode('three encodings of one key');
    const forms = [publicKeyFromSecret(recipient.sk), new Uint8Array(recipient.publicKeyCompressed), `0x${recipient.publicKeyCompressed.toString('hex')}`];
    for (const form of forms) {
      const message = await eciesEncrypt(form, plaintext);
      assert.deepEqual(new Uint8Array(nodeDecrypt(recipient, message)), plaintext);
    }
  });

  it('empty plaintext: 16-byte output (tag only), both directions', async () => {
    const recipient = newRecipient();
    const empty = new Uint8Array(0);
    const fromCore = await eciesEncrypt(publicKeyFromSecret(recipient.sk), empty);
    assertLayout(fromCore, 0);
    assert.equal(nodeDecrypt(recipient, fromCore).length, 0);
    const fromNode = nodeEncrypt(recipient.publicKeyCompressed, empty);
    assert.equal(fromNode.ciphertext.length, 16);
    assert.deepEqual(await eciesDecrypt(recipient.sk, fromNode), empty);
  });

  it('1 MiB plaintext, both directions', async () => {
    const recipient = newRecipient();
    const big = new Uint8Array(nodeRandomBytes(MIB));
    const fromCore = await eciesEncrypt(publicKeyFromSecret(recipient.sk), big);
    assertLayout(fromCore, MIB);
    assert.ok(nodeDecrypt(recipient, fromCore).equals(Buffer.from(big)));
    const fromNode = nodeEncrypt(recipient.publicKeyCompressed, big);
    assert.ok(Buffer.from(await eciesDecrypt(recipient.sk, fromNode)).equals(Buffer.from(big)));
  });

  it('two encryptions of the same plaintext use fresh K and nonce', async () => {
    const recipient = newRecipient();
    const plaintext = new Uint8Array(32);
    const a = await eciesEncrypt(publicKeyFromSecret(recipient.sk), plaintext);
    const b = await eciesEncrypt(publicKeyFromSecret(recipient.sk), plaintext);
    assert.notDeepEqual(a.K, b.K);
    assert.notDeepEqual(a.nonce, b.nonce);
    assert.notDeepEqual(a.ciphertext, b.ciphertext);
  });

  it('decrypting with the wrong secret key, or a tampered K, is decrypt_failed', async () => {
    const recipient = newRecipient();
    const message = await eciesEncrypt(publicKeyFromSecret(recipient.sk), new TextEncoder().encode('secret'));
    await assert.rejects(() => eciesDecrypt(randomScalar(), message), (e: unknown) => isTkmsError(e, 'decrypt_failed'));
    const otherK = encodePoint(publicKeyFromSecret(randomScalar()));
    await assert.rejects(() => eciesDecrypt(recipient.sk, { ...message, K: otherK }), (e: unknown) => isTkmsError(e, 'decrypt_failed'));
    // Flipping the prefix 02↔03 gives −K, a valid point with the same x: x(−K·sk) = x(K·sk), so
    // ECIES (x-only IKM) still decrypts. Pin that behaviour so a change to it is noticed.
    const negK = Uint8Array.from(message.K);
    negK[0] = negK[0] === 0x02 ? 0x03 : 0x02;
    assert.deepEqual(await eciesDecrypt(recipient.sk, { ...message, K: negK }), new TextEncoder().encode('secret'));
  });

  it('malformed K or public key is a typed error, not another exception', async () => {
    const recipient = newRecipient();
    const message = await eciesEncrypt(publicKeyFromSecret(recipient.sk), new Uint8Array(1));
    const badK = [message.K.subarray(0, 32), Uint8Array.from([0x04, ...message.K.subarray(1)]), new Uint8Array(33)];
    for (const K of badK) {
      await assert.rejects(() => eciesDecrypt(recipient.sk, { ...message, K }), (e: unknown) => isTkmsError(e) && ['bad_point', 'bad_length'].includes(e.code));
    }
    for (const pk of ['0x1234', 'zz', new Uint8Array(33), new Uint8Array(65)]) {
      await assert.rejects(() => eciesEncrypt(pk, new Uint8Array(1)), (e: unknown) => isTkmsError(e) && ['bad_point', 'bad_length', 'bad_hex'].includes(e.code));
    }
  });
});
