import { createCipheriv, createDecipheriv, hkdfSync, scrypt as scryptCallback } from 'node:crypto';
import { TkmsError } from '../core/index.ts';

/**
 * The keystore's symmetric crypto, all from node:crypto: scrypt turns the operator
 * password into a master key, HKDF-SHA256 derives one key per use from it, AES-256-GCM
 * seals shares and the password verifier. Nothing here logs or puts key material in errors.
 */

export const MASTER_KEY_LENGTH = 32;
export const AES_KEY_LENGTH = 32;
export const GCM_NONCE_LENGTH = 12;
export const GCM_TAG_LENGTH = 16;

export interface ScryptParams {
  N: number;
  r: number;
  p: number;
}

/**
 * What new keystores use: N = 2^17 (128 MiB of scrypt memory, current OWASP-style guidance for
 * an interactive-ish unlock). Keystores made with N = 2^15 (before this) still open: the header
 * stores its parameters.
 */
export const DEFAULT_SCRYPT_PARAMS: Readonly<ScryptParams> = Object.freeze({ N: 2 ** 17, r: 8, p: 1 });

/**
 * Bounds on parameters read back from a header. A header is input from disk: without a
 * cap an edited N or r would make `open` allocate gigabytes or spin for minutes.
 */
export const SCRYPT_LIMITS = Object.freeze({
  minLog2N: 14,
  maxLog2N: 20,
  maxR: 32,
  maxP: 16,
  /** 128·N·r bytes is scrypt's working memory; 2^20·128 = 128 MiB. */
  maxNr: 2 ** 20,
  /** Total work, so p cannot multiply a large N·r into minutes. */
  maxNrp: 2 ** 22,
});

export function scryptParamsWithinLimits(params: ScryptParams): boolean {
  const { N, r, p } = params;
  if (!Number.isSafeInteger(N) || !Number.isSafeInteger(r) || !Number.isSafeInteger(p)) return false;
  if (N < 2 ** SCRYPT_LIMITS.minLog2N || N > 2 ** SCRYPT_LIMITS.maxLog2N) return false;
  if ((N & (N - 1)) !== 0) return false;
  if (r < 1 || r > SCRYPT_LIMITS.maxR || p < 1 || p > SCRYPT_LIMITS.maxP) return false;
  return N * r <= SCRYPT_LIMITS.maxNr && N * r * p <= SCRYPT_LIMITS.maxNrp;
}

/** Async scrypt (libuv thread pool), so opening a keystore does not block the event loop. */
export function deriveMasterKey(password: Uint8Array, salt: Uint8Array, params: ScryptParams): Promise<Buffer> {
  if (!scryptParamsWithinLimits(params)) {
    return Promise.reject(new TkmsError('keystore_corrupt', 'keystore scrypt parameters are out of bounds'));
  }
  // Node refuses when 128·N·r reaches maxmem (default 32 MiB), so give it headroom.
  const maxmem = 128 * params.N * params.r * 2 + 128 * params.r * params.p + 1024 * 1024;
  return new Promise((resolve, reject) => {
    scryptCallback(password, salt, MASTER_KEY_LENGTH, { N: params.N, r: params.r, p: params.p, maxmem }, (err, key) => {
      if (err) reject(new TkmsError('internal', 'keystore key derivation failed'));
      else resolve(key);
    });
  });
}

/** HKDF-SHA256 to a 32-byte AES key; `info` names the purpose (and, for shares, the key id). */
export function deriveSubkey(masterKey: Uint8Array, salt: Uint8Array, info: Uint8Array): Buffer {
  return Buffer.from(hkdfSync('sha256', masterKey, salt, info, AES_KEY_LENGTH));
}

/** AES-256-GCM; returns ciphertext ‖ 16-byte tag. */
export function sealAesGcm(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array, aad: Uint8Array): Uint8Array {
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: GCM_TAG_LENGTH });
  cipher.setAAD(aad);
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return new Uint8Array(Buffer.concat([body, cipher.getAuthTag()]));
}

/**
 * Opens ciphertext ‖ tag. Returns undefined when authentication fails (wrong key, edited
 * bytes or AAD) so the caller decides whether that means "locked" or "corrupt".
 */
export function openAesGcm(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array, aad: Uint8Array): Buffer | undefined {
  if (sealed.length < GCM_TAG_LENGTH) return undefined;
  const body = sealed.subarray(0, sealed.length - GCM_TAG_LENGTH);
  const tag = sealed.subarray(sealed.length - GCM_TAG_LENGTH);
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: GCM_TAG_LENGTH });
    decipher.setAAD(aad);
    decipher.setAuthTag(tag);
    return Buffer.concat([decipher.update(body), decipher.final()]);
  } catch {
    return undefined;
  }
}

/** Best-effort scrubbing of key material we own; JS gives no stronger guarantee. */
export function wipe(...buffers: (Uint8Array | undefined)[]): void {
  for (const b of buffers) b?.fill(0);
}
