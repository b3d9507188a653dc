import { TkmsError } from './errors.ts';

/**
 * WebCrypto is the one implementation of AES-GCM, HKDF and RSA-OAEP used by core,
 * so the same code runs in Node (globalThis.crypto) and in browsers.
 */
export function subtle(): SubtleCrypto {
  const s = globalThis.crypto?.subtle;
  if (!s) throw new TkmsError('internal', 'WebCrypto (crypto.subtle) is not available in this runtime');
  return s;
}

/** WebCrypto wants ArrayBuffer-backed views; copy only when a view is backed by something else. */
export function asBufferSource(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return bytes.buffer instanceof ArrayBuffer ? (bytes as Uint8Array<ArrayBuffer>) : new Uint8Array(bytes);
}
