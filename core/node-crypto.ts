import { constants, createDecipheriv, createHash, hkdfSync, KeyObject, privateDecrypt } from 'node:crypto';
import { setMessageSha256 } from './digest.ts';
import { ECIES_INFO, ECIES_SALT, setSharedSecretDecryptor, TAG_LENGTH } from './ecies.ts';
import { setRsaOaepUnwrapper } from './rsa.ts';

/**
 * Node-only: the client's RSA-OAEP unwrap and its HKDF + AES-256-GCM decryption through node:crypto,
 * synchronously. Same algorithms and bytes as the WebCrypto paths (the tests cross-check them);
 * WebCrypto in Node runs each operation as a thread-pool job behind a promise, which costs more
 * than these small operations themselves. Browsers never load this module.
 */
export function installNodeCryptoPaths(): void {
  setMessageSha256((data) => new Uint8Array(createHash('sha256').update(data).digest()));
  // The WebCrypto key stays the handle the client holds; node:crypto needs its KeyObject view.
  const keyObjects = new WeakMap<CryptoKey, KeyObject>();
  setRsaOaepUnwrapper((privateKey, wrapped) => {
    let key = keyObjects.get(privateKey);
    if (key === undefined) {
      // node:crypto ignores the algorithm a CryptoKey was made for; refuse what WebCrypto would.
      const algorithm = privateKey.algorithm as RsaHashedKeyAlgorithm;
      if (privateKey.type !== 'private' || algorithm.name !== 'RSA-OAEP' || algorithm.hash?.name !== 'SHA-256' || !privateKey.usages.includes('decrypt')) {
        throw new Error('not an RSA-OAEP SHA-256 decryption key');
      }
      key = KeyObject.from(privateKey);
      keyObjects.set(privateKey, key);
    }
    return new Uint8Array(privateDecrypt({ key, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, wrapped));
  });
  setSharedSecretDecryptor((sharedSecretX, nonce, ciphertext) => {
    const key = new Uint8Array(hkdfSync('sha256', sharedSecretX, ECIES_SALT, ECIES_INFO, 32));
    let head: Buffer | undefined;
    try {
      const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: TAG_LENGTH });
      decipher.setAuthTag(ciphertext.subarray(ciphertext.length - TAG_LENGTH));
      head = decipher.update(ciphertext.subarray(0, ciphertext.length - TAG_LENGTH));
      const tail = decipher.final();
      const out = new Uint8Array(head.length + tail.length);
      out.set(head);
      out.set(tail, head.length);
      return out;
    } finally {
      // Unauthenticated plaintext (when the tag fails) and the key must not linger.
      head?.fill(0);
      key.fill(0);
    }
  });
}

/** Back to WebCrypto for both (tests compare the two paths). */
export function uninstallNodeCryptoPaths(): void {
  setRsaOaepUnwrapper(undefined);
  setSharedSecretDecryptor(undefined);
  setMessageSha256(undefined);
}
