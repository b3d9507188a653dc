import { TAG_LENGTH } from './limits.ts';
import { randomBytes, utf8ToBytes } from './bytes.ts';
import { CURVE_ORDER, decodePoint, encodePoint, multiplySecret, Point, randomScalar, xCoordinate } from './curve.ts';
import { curveBackend } from './curve-backend.ts';
import { TkmsError } from './errors.ts';
import { asBufferSource, subtle } from './webcrypto.ts';

/** Wire constants from the spec (seed 002), byte for byte. */
export const ECIES_INFO = utf8ToBytes('ECIES:AES_GCM:v1');
export const ECIES_SALT = new Uint8Array(32);
export const NONCE_LENGTH = 12;
export { TAG_LENGTH } from './limits.ts';
export const SHARED_X_LENGTH = 32;

export interface EciesCiphertext {
  /** Ephemeral public key K = k·G, 33-byte compressed SEC1. */
  K: Uint8Array;
  /** 12-byte AES-GCM nonce. */
  nonce: Uint8Array;
  /** AES-256-GCM output: ciphertext ‖ 16-byte tag. */
  ciphertext: Uint8Array;
}

/** HKDF-SHA256(IKM = x(S), salt = 32 zero bytes, info = "ECIES:AES_GCM:v1") → non-extractable AES-256-GCM key. */
export async function deriveAesKey(sharedSecretX: Uint8Array): Promise<CryptoKey> {
  if (!(sharedSecretX instanceof Uint8Array) || sharedSecretX.length !== SHARED_X_LENGTH) {
    throw new TkmsError('bad_length', `shared secret x-coordinate must be ${SHARED_X_LENGTH} bytes`);
  }
  const ikm = await subtle().importKey('raw', asBufferSource(sharedSecretX), 'HKDF', false, ['deriveKey']);
  return subtle().deriveKey(
    { name: 'HKDF', hash: 'SHA-256', salt: ECIES_SALT, info: ECIES_INFO },
    ikm,
    { name: 'AES-GCM', length: 256 },
    false,
    ['encrypt', 'decrypt'],
  );
}

/** HKDF + AES-256-GCM decryption given x(K·sk); throws anything on a failed tag. */
export type SharedSecretDecryptor = (sharedSecretX: Uint8Array, nonce: Uint8Array, ciphertext: Uint8Array) => Uint8Array;
let platformDecryptor: SharedSecretDecryptor | undefined;

/**
 * Node installs a synchronous node:crypto path (core/node-crypto.ts): the same bytes as WebCrypto
 * without its two thread-pool round trips. Browsers keep WebCrypto. undefined restores it.
 */
export function setSharedSecretDecryptor(decryptor: SharedSecretDecryptor | undefined): void {
  platformDecryptor = decryptor;
}

/** AES-GCM decryption given x(K·sk); what a client does after combining partials. */
export async function decryptWithSharedSecretX(
  sharedSecretX: Uint8Array,
  nonce: Uint8Array,
  ciphertext: Uint8Array,
): Promise<Uint8Array> {
  if (!(nonce instanceof Uint8Array) || nonce.length !== NONCE_LENGTH) {
    throw new TkmsError('bad_length', `nonce must be ${NONCE_LENGTH} bytes`);
  }
  if (!(ciphertext instanceof Uint8Array) || ciphertext.length < TAG_LENGTH) {
    throw new TkmsError('bad_length', `ciphertext must hold at least the ${TAG_LENGTH}-byte tag`);
  }
  if (!(sharedSecretX instanceof Uint8Array) || sharedSecretX.length !== SHARED_X_LENGTH) {
    throw new TkmsError('bad_length', `shared secret x-coordinate must be ${SHARED_X_LENGTH} bytes`);
  }
  const decryptor = platformDecryptor;
  try {
    if (decryptor !== undefined) return decryptor(sharedSecretX, nonce, ciphertext);
    const key = await deriveAesKey(sharedSecretX);
    const plain = await subtle().decrypt({ name: 'AES-GCM', iv: asBufferSource(nonce), tagLength: 128 }, key, asBufferSource(ciphertext));
    return new Uint8Array(plain);
  } catch {
    // Same message for a wrong key and a tampered ciphertext: the caller cannot tell them apart either.
    throw new TkmsError('decrypt_failed', 'AES-GCM authentication failed: wrong key or tampered ciphertext');
  }
}

export async function encryptWithSharedSecretX(
  sharedSecretX: Uint8Array,
  plaintext: Uint8Array,
  nonce: Uint8Array = randomBytes(NONCE_LENGTH),
): Promise<{ nonce: Uint8Array; ciphertext: Uint8Array }> {
  if (nonce.length !== NONCE_LENGTH) throw new TkmsError('bad_length', `nonce must be ${NONCE_LENGTH} bytes`);
  const key = await deriveAesKey(sharedSecretX);
  const ct = await subtle().encrypt({ name: 'AES-GCM', iv: asBufferSource(nonce), tagLength: 128 }, key, asBufferSource(plaintext));
  return { nonce, ciphertext: new Uint8Array(ct) };
}

/** ECIES to a public key: k random, K = k·G, S = k·PK, AES key from x(S). */
export async function eciesEncrypt(publicKey: Point | Uint8Array | string, plaintext: Uint8Array): Promise<EciesCiphertext> {
  const pk = publicKey instanceof Point ? publicKey : decodePoint(publicKey as Uint8Array | string, 'public key');
  if (pk.is0()) throw new TkmsError('bad_point', 'public key is the identity point');
  if (!(plaintext instanceof Uint8Array)) throw new TkmsError('bad_request', 'plaintext must be bytes');
  const k = randomScalar();
  const curve = curveBackend();
  const K = curve.multiplyBaseSecret(k);
  // The x-coordinate is bytes 1..33 of the compressed point.
  const shared = curve.multiplySecret(encodePoint(pk), k);
  const sharedX = shared.slice(1);
  shared.fill(0);
  const { nonce, ciphertext } = await encryptWithSharedSecretX(sharedX, plaintext);
  sharedX.fill(0);
  return { K, nonce, ciphertext };
}

/** ECIES decryption with the whole secret key (tests, single-key tools); the network never does this. */
export async function eciesDecrypt(secretKey: bigint, message: EciesCiphertext): Promise<Uint8Array> {
  if (typeof secretKey !== 'bigint' || secretKey <= 0n || secretKey >= CURVE_ORDER) {
    throw new TkmsError('bad_scalar', 'secret key must be in 1..n-1');
  }
  const K = decodePoint(message.K, 'K');
  const sharedX = xCoordinate(multiplySecret(K, secretKey));
  try {
    return await decryptWithSharedSecretX(sharedX, message.nonce, message.ciphertext);
  } finally {
    sharedX.fill(0);
  }
}
