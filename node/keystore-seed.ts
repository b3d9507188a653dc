import { TkmsError, decodeHex, encodeHex, lengthPrefixed, randomBytes, utf8ToBytes } from '../core/index.ts';
import { GCM_NONCE_LENGTH, GCM_TAG_LENGTH, deriveSubkey, openAesGcm, sealAesGcm, wipe } from './keystore-crypto.ts';
import { SALT_LENGTH, isPlainObject } from './keystore-format.ts';

/**
 * The ceremony seed at rest: 32 random bytes (every dealing polynomial, sealing key and receiver key
 * of a reshare derive from them, core/ceremony), sealed with AES-256-GCM under HKDF(master key,
 * salt, its own info) in `ceremony-seed.json`. Random rather than derived from the master key so it
 * survives a password rotation (a restore re-seals it under the new password, like the shares), and
 * sealed so neither the identity file nor any other unencrypted file yields it.
 */

export const CEREMONY_SEED_FILE_NAME = 'ceremony-seed.json';
export const CEREMONY_SEED_LENGTH = 32;
export const MAX_SEED_FILE_BYTES = 1024;
const FORMAT = 'tkms-ceremony-seed';
const FIELDS = ['format', 'version', 'hkdfSalt', 'nonce', 'ciphertext'] as const;

export interface SealedSeed {
  hkdfSalt: Uint8Array;
  nonce: Uint8Array;
  ciphertext: Uint8Array;
}

function seedKeyInfo(): Uint8Array {
  return lengthPrefixed(utf8ToBytes('tkms-keystore/ceremony-seed-key'), utf8ToBytes('1'));
}

function seedAad(): Uint8Array {
  return lengthPrefixed(utf8ToBytes('tkms-keystore/ceremony-seed'), utf8ToBytes('1'));
}

function corrupt(message: string): TkmsError {
  return new TkmsError('keystore_corrupt', `${CEREMONY_SEED_FILE_NAME}: ${message}`);
}

export function sealSeed(masterKey: Uint8Array, seed: Uint8Array): SealedSeed {
  if (seed.length !== CEREMONY_SEED_LENGTH) throw new TkmsError('internal', 'a ceremony seed is 32 bytes');
  const hkdfSalt = randomBytes(SALT_LENGTH);
  const nonce = randomBytes(GCM_NONCE_LENGTH);
  const key = deriveSubkey(masterKey, hkdfSalt, seedKeyInfo());
  try {
    return { hkdfSalt, nonce, ciphertext: sealAesGcm(key, nonce, seed, seedAad()) };
  } finally {
    wipe(key);
  }
}

/** The seed; keystore_corrupt when the file was altered (the header already proved the password). */
export function openSeed(masterKey: Uint8Array, sealed: SealedSeed): Uint8Array {
  const key = deriveSubkey(masterKey, sealed.hkdfSalt, seedKeyInfo());
  try {
    const seed = openAesGcm(key, sealed.nonce, sealed.ciphertext, seedAad());
    if (seed === undefined || seed.length !== CEREMONY_SEED_LENGTH) {
      wipe(seed);
      throw corrupt('failed authentication');
    }
    const out = new Uint8Array(seed);
    wipe(seed);
    return out;
  } finally {
    wipe(key);
  }
}

export function sealedSeedToJson(sealed: SealedSeed): Record<string, unknown> {
  return { format: FORMAT, version: 1, hkdfSalt: encodeHex(sealed.hkdfSalt), nonce: encodeHex(sealed.nonce), ciphertext: encodeHex(sealed.ciphertext) };
}

export function serializeSealedSeed(sealed: SealedSeed): Uint8Array {
  return utf8ToBytes(`${JSON.stringify(sealedSeedToJson(sealed))}\n`);
}

/** Strict: the file is only ever written by this node, so anything loose was edited (keystore_corrupt). */
export function parseSealedSeed(value: unknown): SealedSeed {
  if (!isPlainObject(value)) throw corrupt('not a JSON object');
  const keys = Object.keys(value);
  if (keys.length !== FIELDS.length || FIELDS.some((f) => !(f in value))) throw corrupt(`expected exactly the fields ${FIELDS.join(', ')}`);
  if (value['format'] !== FORMAT || value['version'] !== 1) throw corrupt(`format must be ${FORMAT} version 1`);
  const hex = (field: string, length: number): Uint8Array => {
    try {
      return decodeHex(value[field], { name: field, length });
    } catch {
      throw corrupt(`${field} must be ${length} bytes of hex`);
    }
  };
  return { hkdfSalt: hex('hkdfSalt', SALT_LENGTH), nonce: hex('nonce', GCM_NONCE_LENGTH), ciphertext: hex('ciphertext', CEREMONY_SEED_LENGTH + GCM_TAG_LENGTH) };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

export function parseSealedSeedBytes(bytes: Uint8Array): SealedSeed {
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(bytes));
  } catch {
    throw corrupt('not UTF-8 JSON');
  }
  return parseSealedSeed(value);
}
