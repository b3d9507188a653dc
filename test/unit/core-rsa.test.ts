import assert from 'node:assert/strict';
import { constants, createPublicKey, generateKeyPairSync, type KeyObject, privateDecrypt, publicEncrypt, randomBytes as nodeRandomBytes } from 'node:crypto';
import fc from 'fast-check';
import forge from 'node-forge';
import {
  generateRsaKeyPair,
  importRsaPublicKey,
  isTkmsError,
  type RsaKeyPair,
  rsaOaepUnwrap,
  rsaOaepWrap,
} from '../../core/index.ts';
import { installNodeCryptoPaths, uninstallNodeCryptoPaths } from '../../core/node-crypto.ts';

/**
 * RSA-OAEP(SHA-256, MGF1-SHA-256, empty label) interop: core (WebCrypto) against node:crypto
 * (OpenSSL) and node-forge (pure JS), both directions, plus the SPKI import policy
 * (2048..4096 bits, e = 65537, RSA only).
 */
interface NodeRsa {
  bits: number;
  publicKey: KeyObject;
  privateKey: KeyObject;
  spkiHex: string;
}

function nodeRsa(bits: number, publicExponent = 65537): NodeRsa {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', { modulusLength: bits, publicExponent });
  return { bits, publicKey, privateKey, spkiHex: publicKey.export({ type: 'spki', format: 'der' }).toString('hex') };
}

function nodeOaepDecrypt(key: KeyObject, data: Uint8Array): Buffer {
  return privateDecrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, data);
}

function spkiKey(spkiHex: string): KeyObject {
  return createPublicKey({ key: Buffer.from(spkiHex, 'hex'), format: 'der', type: 'spki' });
}

function nodeOaepEncrypt(spkiHex: string, data: Uint8Array): Uint8Array {
  const ct = publicEncrypt({ key: spkiKey(spkiHex), padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, data);
  return new Uint8Array(ct);
}

function forgeOaepOptions(): { md: forge.md.MessageDigest; mgf1: { md: forge.md.MessageDigest } } {
  // forge's message digests are stateful objects: a fresh pair per call.
  return { md: forge.md.sha256.create(), mgf1: { md: forge.md.sha256.create() } };
}

function forgePublicFromSpkiHex(spkiHex: string): forge.pki.rsa.PublicKey {
  return forge.pki.publicKeyFromAsn1(forge.asn1.fromDer(forge.util.hexToBytes(spkiHex))) as forge.pki.rsa.PublicKey;
}

function forgePrivateFromNode(key: KeyObject): forge.pki.rsa.PrivateKey {
  return forge.pki.privateKeyFromPem(key.export({ type: 'pkcs1', format: 'pem' }).toString()) as forge.pki.rsa.PrivateKey;
}

/** An SPKI carrying an arbitrary modulus/exponent: cheap way to present 8192-bit or odd-sized keys to the importer. */
function syntheticSpkiHex(bits: number, exponent = 65537): string {
  const random = forge.util.bytesToHex(forge.random.getBytesSync(Math.ceil(bits / 8)));
  let n = new forge.jsbn.BigInteger(random, 16);
  // Force exactly `bits` bits and an odd modulus.
  const top = forge.jsbn.BigInteger.ONE.shiftLeft(bits);
  n = n.mod(top).or(forge.jsbn.BigInteger.ONE.shiftLeft(bits - 1)).or(forge.jsbn.BigInteger.ONE);
  const pub = forge.pki.setRsaPublicKey(n, new forge.jsbn.BigInteger(String(exponent), 10));
  return forge.util.bytesToHex(forge.asn1.toDer(forge.pki.publicKeyToAsn1(pub)).getBytes());
}

function isCode(...codes: string[]): (e: unknown) => boolean {
  return (e: unknown) => isTkmsError(e) && codes.includes(e.code);
}

/** Max OAEP-SHA256 message for a modulus of `bits`: k − 2·hLen − 2. */
function maxOaepMessage(bits: number): number {
  return bits / 8 - 2 * 32 - 2;
}

describe('core: RSA-OAEP interop and SPKI policy', function () {
  this.timeout(60_000);

  let node2048: NodeRsa;
  let node3072: NodeRsa;
  let node4096: NodeRsa;
  let core2048: RsaKeyPair;

  before(async () => {
    node2048 = nodeRsa(2048);
    node3072 = nodeRsa(3072);
    node4096 = nodeRsa(4096); // ~1-3 s: generated once for the whole file
    core2048 = await generateRsaKeyPair(2048);
  });

  describe('interop with node:crypto', () => {
    it('core wrap → node:crypto privateDecrypt (2048, 3072, 4096)', async () => {
      for (const key of [node2048, node3072, node4096]) {
        const imported = await importRsaPublicKey(key.spkiHex);
        for (const length of [0, 1, 33, maxOaepMessage(key.bits)]) {
          const data = new Uint8Array(nodeRandomBytes(length));
          const wrapped = await rsaOaepWrap(imported, data);
          assert.equal(wrapped.length, key.bits / 8);
          assert.deepEqual(new Uint8Array(nodeOaepDecrypt(key.privateKey, wrapped)), data, `${key.bits}-bit, ${length} bytes`);
        }
      }
    });

    it('node:crypto publicEncrypt → core unwrap (random messages)', async () => {
      await fc.assert(
        fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: maxOaepMessage(2048) }), async (data) => {
          const wrapped = nodeOaepEncrypt(core2048.publicKey.spkiHex, data);
          assert.deepEqual(await rsaOaepUnwrap(core2048.privateKey, wrapped), data);
        }),
        { numRuns: 25 },
      );
    });

    it('core wrap is randomized (OAEP seed): same data wraps differently', async () => {
      const data = new Uint8Array(33).fill(7);
      const a = await rsaOaepWrap(core2048.publicKey, data);
      const b = await rsaOaepWrap(core2048.publicKey, data);
      assert.notDeepEqual(a, b);
      assert.deepEqual(await rsaOaepUnwrap(core2048.privateKey, a), data);
      assert.deepEqual(await rsaOaepUnwrap(core2048.privateKey, b), data);
    });

    it('node:crypto with the SHA-1 OAEP default does not interoperate (hash is really SHA-256)', async () => {
      const data = new Uint8Array(33).fill(1);
      const sha1 = new Uint8Array(publicEncrypt({ key: spkiKey(core2048.publicKey.spkiHex), padding: constants.RSA_PKCS1_OAEP_PADDING }, data));
      await assert.rejects(() => rsaOaepUnwrap(core2048.privateKey, sha1), isCode('decrypt_failed'));
      const imported = await importRsaPublicKey(node2048.spkiHex);
      const wrapped = await rsaOaepWrap(imported, data);
      assert.throws(() => privateDecrypt({ key: node2048.privateKey, padding: constants.RSA_PKCS1_OAEP_PADDING }, wrapped));
    });
  });

  describe('interop with node-forge', () => {
    it('core wrap → forge RSA-OAEP(SHA-256, MGF1-SHA-256) decrypt', async () => {
      const forgePrivate = forgePrivateFromNode(node2048.privateKey);
      const imported = await importRsaPublicKey(node2048.spkiHex);
      await fc.assert(
        fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: maxOaepMessage(2048) }), async (data) => {
          const wrapped = await rsaOaepWrap(imported, data);
          const plain = forgePrivate.decrypt(forge.util.binary.raw.encode(wrapped), 'RSA-OAEP', forgeOaepOptions());
          assert.deepEqual(new Uint8Array(forge.util.binary.raw.decode(plain)), data);
        }),
        { numRuns: 10 },
      );
    });

    it('forge RSA-OAEP(SHA-256, MGF1-SHA-256) encrypt → core unwrap', async () => {
      const forgePublic = forgePublicFromSpkiHex(core2048.publicKey.spkiHex);
      await fc.assert(
        fc.asyncProperty(fc.uint8Array({ minLength: 0, maxLength: maxOaepMessage(2048) }), async (data) => {
          const wrapped = forgePublic.encrypt(forge.util.binary.raw.encode(data), 'RSA-OAEP', forgeOaepOptions());
          assert.deepEqual(await rsaOaepUnwrap(core2048.privateKey, new Uint8Array(forge.util.binary.raw.decode(wrapped))), data);
        }),
        { numRuns: 10 },
      );
    });

    it('forge encrypt to a 4096-bit key → core-imported node key decrypts via node:crypto, and forge parses core SPKI', async () => {
      const data = new Uint8Array(nodeRandomBytes(33));
      const forgePublic = forgePublicFromSpkiHex(node4096.spkiHex);
      assert.equal(forgePublic.n.bitLength(), 4096);
      const wrapped = forgePublic.encrypt(forge.util.binary.raw.encode(data), 'RSA-OAEP', forgeOaepOptions());
      assert.deepEqual(new Uint8Array(nodeOaepDecrypt(node4096.privateKey, new Uint8Array(forge.util.binary.raw.decode(wrapped)))), data);
      // core's exported SPKI parses in forge with e = 65537 and the advertised size.
      const corePublic = forgePublicFromSpkiHex(core2048.publicKey.spkiHex);
      assert.equal(corePublic.n.bitLength(), 2048);
      assert.equal(corePublic.e.toString(10), '65537');
    });
  });

  describe('SPKI import policy', () => {
    it('accepts real 2048, 3072 and 4096-bit keys and reports their size', async () => {
      for (const key of [node2048, node3072, node4096]) {
        const imported = await importRsaPublicKey(key.spkiHex);
        assert.equal(imported.modulusBits, key.bits);
        assert.equal(imported.spkiHex, key.spkiHex);
      }
    });

    it('accepts 0x-prefixed and upper-case hex, and normalizes spkiHex to lower case without prefix', async () => {
      for (const form of [`0x${node2048.spkiHex}`, node2048.spkiHex.toUpperCase(), `0X${node2048.spkiHex}`]) {
        const imported = await importRsaPublicKey(form);
        assert.equal(imported.spkiHex, node2048.spkiHex);
        assert.equal(imported.modulusBits, 2048);
      }
    });

    it('rejects a real 1024-bit key with bad_rsa_key', async () => {
      await assert.rejects(() => importRsaPublicKey(nodeRsa(1024).spkiHex), isCode('bad_rsa_key'));
    });

    it('rejects out-of-range modulus sizes (synthetic SPKI): 1024, 2040, 4104, 6000 → bad_rsa_key; 8192 → size limit', async () => {
      for (const bits of [1024, 2040, 4104, 6000]) {
        await assert.rejects(() => importRsaPublicKey(syntheticSpkiHex(bits)), isCode('bad_rsa_key'), `${bits} bits`);
      }
      // A 8192-bit SPKI is 1062 bytes: over the pre-parse size cap, so it fails on length.
      await assert.rejects(() => importRsaPublicKey(syntheticSpkiHex(8192)), isCode('bad_length'));
      // The synthetic builder itself produces importable keys at allowed sizes (so the rejections above are about size).
      for (const bits of [2048, 3000, 4096]) assert.equal((await importRsaPublicKey(syntheticSpkiHex(bits))).modulusBits, bits);
    });

    it('rejects public exponents other than 65537', async () => {
      await assert.rejects(() => importRsaPublicKey(nodeRsa(2048, 3).spkiHex), isCode('bad_rsa_key'));
      for (const e of [3, 17, 65539, 4294967297]) {
        await assert.rejects(() => importRsaPublicKey(syntheticSpkiHex(2048, e)), isCode('bad_rsa_key'), `e = ${e}`);
      }
    });

    it('rejects EC SPKI (P-256, secp256k1), Ed25519, PKCS#1 RSAPublicKey and garbage', async () => {
      const ecP256 = generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ type: 'spki', format: 'der' }).toString('hex');
      const ecK1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' }).publicKey.export({ type: 'spki', format: 'der' }).toString('hex');
      const ed = generateKeyPairSync('ed25519').publicKey.export({ type: 'spki', format: 'der' }).toString('hex');
      const pkcs1 = node2048.publicKey.export({ type: 'pkcs1', format: 'der' }).toString('hex');
      for (const spki of [ecP256, ecK1, ed, pkcs1, '', '00', 'deadbeef', '30820122']) {
        await assert.rejects(() => importRsaPublicKey(spki), isCode('bad_rsa_key'), spki.slice(0, 16));
      }
      // A truncated valid SPKI is not a key either.
      await assert.rejects(() => importRsaPublicKey(node2048.spkiHex.slice(0, -2)), isCode('bad_rsa_key'));
    });

    it('rejects a valid SPKI followed by trailing bytes (non-canonical DER: one key, many spellings)', async () => {
      // OpenSSL's DER parser (behind node's WebCrypto) ignores trailing data, so this needs an explicit check.
      for (const suffix of ['00', '0500', 'ffff']) {
        await assert.rejects(() => importRsaPublicKey(`${node2048.spkiHex}${suffix}`), isCode('bad_rsa_key'), `suffix ${suffix}`);
      }
    });

    it('rejects non-hex and non-string input with bad_hex', async () => {
      for (const value of [undefined, null, 42, {}, ['30'], 'xyz', `${node2048.spkiHex}0`, `0x0x${node2048.spkiHex}`]) {
        await assert.rejects(() => importRsaPublicKey(value), isCode('bad_hex'), String(value).slice(0, 16));
      }
    });
  });

  describe('wrap/unwrap failures', () => {
    it('unwrap with the wrong key of the same size is decrypt_failed', async () => {
      const other = await generateRsaKeyPair(2048);
      const wrapped = await rsaOaepWrap(core2048.publicKey, new Uint8Array(33).fill(9));
      await assert.rejects(() => rsaOaepUnwrap(other.privateKey, wrapped), isCode('decrypt_failed'));
    });

    it('every tampered byte position class (first, middle, last) is decrypt_failed', async () => {
      const wrapped = await rsaOaepWrap(core2048.publicKey, new Uint8Array(33).fill(3));
      for (const index of [0, 1, 128, 255]) {
        const tampered = Uint8Array.from(wrapped);
        tampered[index]! ^= 0x01;
        await assert.rejects(() => rsaOaepUnwrap(core2048.privateKey, tampered), isCode('decrypt_failed'), `byte ${index}`);
      }
    });

    it('a ciphertext of the wrong length is bad_length (e.g. wrapped to a 3072-bit key)', async () => {
      const wrapped3072 = await rsaOaepWrap(await importRsaPublicKey(node3072.spkiHex), new Uint8Array(33));
      await assert.rejects(() => rsaOaepUnwrap(core2048.privateKey, wrapped3072), isCode('bad_length'));
      await assert.rejects(() => rsaOaepUnwrap(core2048.privateKey, new Uint8Array(0)), isCode('bad_length'));
    });

    it('wrapping more than the OAEP capacity is a typed bad_length, not a DOMException', async () => {
      const max = maxOaepMessage(2048);
      assert.equal((await rsaOaepWrap(core2048.publicKey, new Uint8Array(max))).length, 256);
      await assert.rejects(() => rsaOaepWrap(core2048.publicKey, new Uint8Array(max + 1)), isCode('bad_length'));
    });

    it('the node:crypto unwrap Node clients install agrees with WebCrypto, failures included', async () => {
      const other = await generateRsaKeyPair(2048);
      const cases: { wrapped: Uint8Array; key: CryptoKey }[] = [];
      for (let i = 0; i < 24; i++) {
        const data = crypto.getRandomValues(new Uint8Array(1 + (i % 33)));
        const wrapped = await rsaOaepWrap(core2048.publicKey, data);
        const tampered = Uint8Array.from(wrapped);
        tampered[i * 10]! ^= 1 << (i % 8);
        cases.push({ wrapped, key: core2048.privateKey }, { wrapped: tampered, key: core2048.privateKey }, { wrapped, key: other.privateKey });
      }
      const outcome = async (c: { wrapped: Uint8Array; key: CryptoKey }): Promise<string> => {
        try {
          return Buffer.from(await rsaOaepUnwrap(c.key, c.wrapped)).toString('hex');
        } catch (e) {
          return isTkmsError(e) ? `error ${e.code}` : `untyped ${String(e)}`;
        }
      };
      const viaWebCrypto = await Promise.all(cases.map(outcome));
      installNodeCryptoPaths();
      try {
        assert.deepEqual(await Promise.all(cases.map(outcome)), viaWebCrypto);
      } finally {
        uninstallNodeCryptoPaths();
      }
      assert.equal(viaWebCrypto.filter((o) => o === 'error decrypt_failed').length, 48, 'every tampered or wrong-key case fails');
      // Keys WebCrypto would not decrypt OAEP-SHA-256 with are refused by the node:crypto path too.
      const wrapped = await rsaOaepWrap(core2048.publicKey, new Uint8Array(33).fill(1));
      const rsaParams = { modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) };
      const sha1Oaep = await crypto.subtle.generateKey({ name: 'RSA-OAEP', hash: 'SHA-1', ...rsaParams }, false, ['decrypt', 'encrypt']);
      const pss = await crypto.subtle.generateKey({ name: 'RSA-PSS', hash: 'SHA-256', ...rsaParams }, false, ['sign', 'verify']);
      const exportable = await crypto.subtle.generateKey({ name: 'RSA-OAEP', hash: 'SHA-256', ...rsaParams }, true, ['decrypt', 'encrypt']);
      const pkcs8 = await crypto.subtle.exportKey('pkcs8', exportable.privateKey);
      const unwrapOnly = await crypto.subtle.importKey('pkcs8', pkcs8, { name: 'RSA-OAEP', hash: 'SHA-256' }, false, ['unwrapKey']);
      installNodeCryptoPaths();
      try {
        for (const key of [sha1Oaep.privateKey, pss.privateKey, unwrapOnly, exportable.publicKey]) {
          await assert.rejects(() => rsaOaepUnwrap(key, wrapped), isCode('decrypt_failed'), `${key.algorithm.name} ${key.type}`);
        }
      } finally {
        uninstallNodeCryptoPaths();
      }
    });

    it('generateRsaKeyPair refuses sizes outside 2048..4096 with bad_rsa_key', async () => {
      for (const bits of [1024, 2047, 4104, 8192]) {
        await assert.rejects(() => generateRsaKeyPair(bits), isCode('bad_rsa_key'), `${bits}`);
      }
    });
  });
});
