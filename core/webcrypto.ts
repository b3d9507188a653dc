import { TkmsError } from './errors.ts';

/**
 * WebCrypto is the one implementation of AES-GCM, HKDF and RSA-OAEP used by core,
 * so the same code runs in Node (globalThis.crypto) and in browsers.
 */
export function subtle(): SubtleCrypto {
  const s = globalThis.crypto?.subtle;
  if (s) return s;
  // Browsers hide crypto.subtle from pages that are not a secure context; say what to change.
  if ((globalThis as { isSecureContext?: boolean }).isSecureContext === false) {
    throw new TkmsError(
      'insecure_transport',
      'WebCrypto (crypto.subtle) is missing because this page is not a secure context: the tkms client needs https, or a page on localhost / 127.0.0.1',
      { reason: 'insecure_context' },
    );
  }
  throw new TkmsError('internal', 'WebCrypto (crypto.subtle) is not available in this runtime');
}

/** WebCrypto wants ArrayBuffer-backed views; copy only when a view is backed by something else. */
export function asBufferSource(bytes: Uint8Array): Uint8Array<ArrayBuffer> {
  return bytes.buffer instanceof ArrayBuffer ? (bytes as Uint8Array<ArrayBuffer>) : new Uint8Array(bytes);
}
