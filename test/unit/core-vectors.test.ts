import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeHex, decryptWithSharedSecretX, isTkmsError } from '../../core/index.ts';
import { installNodeCryptoPaths, uninstallNodeCryptoPaths } from '../../core/node-crypto.ts';

/**
 * The public ECIES vector from the reference client of the spec's system. The committed copy
 * is tested always; the shared copy (CI clones the repo with `shared/` beside it) is tested
 * when present and must be byte-identical to the committed one.
 */
const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const COMMITTED_PATH = fileURLToPath(new URL('../vectors/ecies-decrypt.json', import.meta.url));
const SHARED_PATH = resolve(REPO_ROOT, '..', 'shared', 'vectors', 'ecies-decrypt.json');

interface EciesVector {
  ciphertext: Uint8Array;
  iv: Uint8Array;
  sharedSecretX: Uint8Array;
  plaintext: Uint8Array;
}

function loadVector(path: string): EciesVector {
  const raw = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  return {
    ciphertext: decodeHex(raw['ciphertext'], { name: 'ciphertext' }),
    iv: decodeHex(raw['iv'], { name: 'iv', length: 12 }),
    sharedSecretX: decodeHex(raw['sharedSecretX'], { name: 'sharedSecretX', length: 32 }),
    plaintext: decodeHex(raw['plaintext'], { name: 'plaintext' }),
  };
}

function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const out = Uint8Array.from(bytes);
  out[bit >> 3]! ^= 1 << (bit & 7);
  return out;
}

async function assertDecryptFails(x: Uint8Array, iv: Uint8Array, ct: Uint8Array, what: string): Promise<void> {
  await assert.rejects(
    () => decryptWithSharedSecretX(x, iv, ct),
    (e: unknown) => isTkmsError(e, 'decrypt_failed'),
    what,
  );
}

// The browser path (WebCrypto) and the path Node clients install (node:crypto) must agree byte for byte.
for (const path of ['WebCrypto', 'node:crypto'] as const) describe(`core: ECIES public vector (${path})`, () => {
  const committed = loadVector(COMMITTED_PATH);
  before(() => {
    if (path === 'node:crypto') installNodeCryptoPaths();
  });
  after(() => uninstallNodeCryptoPaths());

  it('the committed vector decrypts to its plaintext', async () => {
    const plain = await decryptWithSharedSecretX(committed.sharedSecretX, committed.iv, committed.ciphertext);
    assert.deepEqual(plain, committed.plaintext);
    // Sanity on the vector itself, so a truncated copy is not silently "passing".
    assert.equal(committed.ciphertext.length, committed.plaintext.length + 16);
  });

  it('the shared vector (when present) is byte-identical to the committed copy and decrypts', async function () {
    if (!existsSync(SHARED_PATH)) this.skip();
    assert.deepEqual(readFileSync(SHARED_PATH), readFileSync(COMMITTED_PATH));
    const shared = loadVector(SHARED_PATH);
    assert.deepEqual(await decryptWithSharedSecretX(shared.sharedSecretX, shared.iv, shared.ciphertext), shared.plaintext);
  });

  it('every single-bit flip of the encrypted data or tag fails with decrypt_failed', async () => {
    const { sharedSecretX, iv, ciphertext } = committed;
    for (let bit = 0; bit < ciphertext.length * 8; bit++) {
      const where = bit >= (ciphertext.length - 16) * 8 ? 'tag' : 'ciphertext';
      await assertDecryptFails(sharedSecretX, iv, flipBit(ciphertext, bit), `${where} bit ${bit}`);
    }
  });

  it('every single-bit flip of the iv fails with decrypt_failed', async () => {
    const { sharedSecretX, iv, ciphertext } = committed;
    for (let bit = 0; bit < iv.length * 8; bit++) {
      await assertDecryptFails(sharedSecretX, flipBit(iv, bit), ciphertext, `iv bit ${bit}`);
    }
  });

  it('every single-bit flip of sharedSecretX fails with decrypt_failed', async () => {
    const { sharedSecretX, iv, ciphertext } = committed;
    for (let bit = 0; bit < sharedSecretX.length * 8; bit++) {
      await assertDecryptFails(flipBit(sharedSecretX, bit), iv, ciphertext, `sharedSecretX bit ${bit}`);
    }
  });

  it('a truncated tag, wrong-length iv or wrong-length sharedSecretX is a typed bad_length', async () => {
    const { sharedSecretX, iv, ciphertext } = committed;
    const badLength = (e: unknown) => isTkmsError(e, 'bad_length');
    await assert.rejects(() => decryptWithSharedSecretX(sharedSecretX, iv, ciphertext.subarray(0, 15)), badLength);
    await assert.rejects(() => decryptWithSharedSecretX(sharedSecretX, iv.subarray(0, 11), ciphertext), badLength);
    await assert.rejects(() => decryptWithSharedSecretX(sharedSecretX.subarray(0, 31), iv, ciphertext), badLength);
    // Dropping one byte of the body keeps ≥ 16 bytes, so it reaches GCM and must fail authentication.
    await assertDecryptFails(sharedSecretX, iv, ciphertext.subarray(1), 'first byte dropped');
  });
});
