import { bytesToHex, decodeHex, equalBytes } from './bytes.ts';
import { TkmsError } from './errors.ts';
import { LruCache } from './lru.ts';
import { asBufferSource, subtle } from './webcrypto.ts';

/**
 * RSA-OAEP (SHA-256, MGF1-SHA-256, empty label) for delegation: each node wraps its partial
 * to the requester's key. Keys travel as SPKI DER in hex, without a 0x prefix (spec).
 */
export const RSA_MIN_BITS = 2048;
export const RSA_MAX_BITS = 4096;
const RSA_OAEP = { name: 'RSA-OAEP', hash: 'SHA-256' } as const;
/** A 4096-bit SPKI is 550 bytes; anything far larger is not a key we accept, so stop before parsing. */
export const MAX_SPKI_BYTES = 1024;

export interface RsaPublicKey {
  key: CryptoKey;
  modulusBits: number;
  /** The SPKI hex the key was imported from (lower case, no prefix). */
  spkiHex: string;
}

/**
 * Imports an RSA public key from SPKI hex and checks what WebCrypto parsed out of it:
 * modulus of 2048..4096 bits and public exponent 65537. Anything else is `bad_rsa_key`.
 */
export async function importRsaPublicKey(spki: unknown): Promise<RsaPublicKey> {
  // DER bytes as parsed from a signed request, or hex as the spec carries it.
  const der = spki instanceof Uint8Array ? spki : decodeHex(spki, { name: 'RSA SPKI', maxLength: MAX_SPKI_BYTES });
  if (der.length > MAX_SPKI_BYTES) throw new TkmsError('bad_length', `RSA SPKI is longer than ${MAX_SPKI_BYTES} bytes`);
  let key: CryptoKey;
  try {
    key = await subtle().importKey('spki', asBufferSource(der), RSA_OAEP, true, ['encrypt']);
  } catch {
    throw new TkmsError('bad_rsa_key', 'RSA SPKI is not a valid DER-encoded RSA public key');
  }
  // OpenSSL ignores bytes after the SPKI: require the canonical encoding, so one key has one spelling.
  const canonical = new Uint8Array(await subtle().exportKey('spki', key));
  if (!equalBytes(canonical, der)) throw new TkmsError('bad_rsa_key', 'RSA SPKI is not canonical DER');
  const algorithm = key.algorithm as RsaHashedKeyAlgorithm;
  const bits = algorithm.modulusLength;
  if (!Number.isInteger(bits) || bits < RSA_MIN_BITS || bits > RSA_MAX_BITS) {
    throw new TkmsError('bad_rsa_key', `RSA modulus must be ${RSA_MIN_BITS}..${RSA_MAX_BITS} bits, got ${bits}`);
  }
  const e = algorithm.publicExponent;
  const isF4 = e.length === 3 ? e[0] === 1 && e[1] === 0 && e[2] === 1 : e.length === 4 && e[0] === 0 && e[1] === 1 && e[2] === 0 && e[3] === 1;
  if (!isF4) throw new TkmsError('bad_rsa_key', 'RSA public exponent must be 65537');
  return { key, modulusBits: bits, spkiHex: bytesToHex(der) };
}

/**
 * Imported requester keys by SPKI. A requester reuses one RSA key across its requests and an
 * import (parse, canonical re-export, checks) costs about a millisecond, more than the wrap
 * itself. Only keys that passed every check are kept; `prepare` lets a server attach its own
 * form of the key (e.g. a node:crypto KeyObject) once per key instead of once per request.
 */
export class RsaPublicKeyCache<T = RsaPublicKey> {
  private readonly keys: LruCache<string, Promise<T>>;

  constructor(
    capacity: number,
    private readonly prepare: (key: RsaPublicKey) => T = (key) => key as T,
  ) {
    this.keys = new LruCache(capacity);
  }

  import(spki: Uint8Array): Promise<T> {
    if (!(spki instanceof Uint8Array) || spki.length > MAX_SPKI_BYTES) return importRsaPublicKey(spki).then(this.prepare);
    const id = bytesToHex(spki);
    let pending = this.keys.get(id);
    if (pending === undefined) {
      pending = importRsaPublicKey(spki).then(this.prepare);
      this.keys.set(id, pending);
      // A refused key is not remembered: the next request pays for the check again.
      pending.catch(() => this.keys.delete(id));
    }
    return pending;
  }
}

export interface RsaKeyPair {
  publicKey: RsaPublicKey;
  /** Non-extractable: the private key never leaves WebCrypto. */
  privateKey: CryptoKey;
}

export async function generateRsaKeyPair(modulusBits = RSA_MIN_BITS): Promise<RsaKeyPair> {
  if (modulusBits < RSA_MIN_BITS || modulusBits > RSA_MAX_BITS || modulusBits % 8 !== 0) {
    throw new TkmsError('bad_rsa_key', `RSA modulus must be ${RSA_MIN_BITS}..${RSA_MAX_BITS} bits`);
  }
  const pair = await subtle().generateKey(
    { ...RSA_OAEP, modulusLength: modulusBits, publicExponent: new Uint8Array([1, 0, 1]) },
    false,
    ['encrypt', 'decrypt'],
  );
  const spki = new Uint8Array(await subtle().exportKey('spki', pair.publicKey));
  return { publicKey: { key: pair.publicKey, modulusBits, spkiHex: bytesToHex(spki) }, privateKey: pair.privateKey };
}

export async function rsaOaepWrap(publicKey: RsaPublicKey, data: Uint8Array): Promise<Uint8Array> {
  const max = publicKey.modulusBits / 8 - 2 * 32 - 2; // OAEP-SHA-256 capacity: k − 2·hLen − 2
  if (!(data instanceof Uint8Array) || data.length > max) throw new TkmsError('bad_length', `RSA-OAEP input must be at most ${max} bytes`);
  return new Uint8Array(await subtle().encrypt(RSA_OAEP, publicKey.key, asBufferSource(data)));
}

/** RSA-OAEP-SHA-256 decryption with a WebCrypto private key; throws anything when it fails. */
export type RsaOaepUnwrapper = (privateKey: CryptoKey, wrapped: Uint8Array) => Uint8Array;
let platformUnwrapper: RsaOaepUnwrapper | undefined;

/**
 * Node installs a synchronous node:crypto path (core/node-crypto.ts): the same result as
 * WebCrypto at 0.69 instead of 0.84 ms of CPU, no thread-pool hop. undefined restores WebCrypto.
 */
export function setRsaOaepUnwrapper(unwrapper: RsaOaepUnwrapper | undefined): void {
  platformUnwrapper = unwrapper;
}

export async function rsaOaepUnwrap(privateKey: CryptoKey, wrapped: Uint8Array): Promise<Uint8Array> {
  const bits = (privateKey.algorithm as RsaHashedKeyAlgorithm).modulusLength;
  if (!(wrapped instanceof Uint8Array) || wrapped.length !== bits / 8) {
    throw new TkmsError('bad_length', `RSA-OAEP ciphertext must be ${bits / 8} bytes`);
  }
  const unwrapper = platformUnwrapper;
  try {
    if (unwrapper !== undefined) return unwrapper(privateKey, wrapped);
    return new Uint8Array(await subtle().decrypt(RSA_OAEP, privateKey, asBufferSource(wrapped)));
  } catch {
    throw new TkmsError('decrypt_failed', 'RSA-OAEP decryption failed: not wrapped to this key, or tampered');
  }
}
