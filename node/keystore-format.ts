import { sha256 } from '@noble/hashes/sha2.js';
import { TkmsError, assertKeyId, decodeHex, encodeHex, lengthPrefixed, utf8ToBytes } from '../core/index.ts';
import { GCM_NONCE_LENGTH, GCM_TAG_LENGTH, scryptParamsWithinLimits, type ScryptParams } from './keystore-crypto.ts';

/**
 * The keystore's on-disk JSON: a header (`keystore.json`) and one file per key
 * (`<keyId>.key.json`). Parsers are strict — exact field sets, types, versions and
 * canonical hex — and every failure is a `keystore_corrupt` TkmsError, because a
 * file that parses loosely is a file someone could have edited unnoticed.
 */

export const FORMAT_VERSION = 1;
export const HEADER_FORMAT = 'tkms-keystore';
export const KEY_FILE_FORMAT = 'tkms-keystore-key';
export const HEADER_FILE_NAME = 'keystore.json';
export const KEY_FILE_SUFFIX = '.key.json';

export const SALT_LENGTH = 32;
export const SHARE_LENGTH = 32;
/** The password verifier's plaintext: a fixed constant, so decrypting it proves the password. */
export const VERIFIER_PLAINTEXT = utf8ToBytes('tkms keystore password verifier v1');

export const MAX_HEADER_BYTES = 4096;
/** A DKG public result holds O(n) points; 1 MiB leaves ample room while bounding reads. */
export const MAX_KEY_FILE_BYTES = 1024 * 1024;
/** Nesting bound for publicResult, so canonicalisation cannot exhaust the stack. */
export const MAX_JSON_DEPTH = 64;

export interface KeystoreHeader {
  version: number;
  kdf: ScryptParams & { name: 'scrypt'; salt: Uint8Array };
  verifier: { nonce: Uint8Array; ciphertext: Uint8Array };
}

export interface KeyFile {
  version: number;
  keyId: string;
  publicResult: Record<string, unknown>;
  hkdfSalt: Uint8Array;
  nonce: Uint8Array;
  /** Encrypted 32-byte share ‖ GCM tag. */
  ciphertext: Uint8Array;
}

function corrupt(what: string, message: string, cause?: unknown): TkmsError {
  return new TkmsError('keystore_corrupt', `${what}: ${message}`, undefined, cause === undefined ? undefined : { cause });
}

// ---------------------------------------------------------------------------
// Canonical JSON

/**
 * Deterministic JSON: object keys sorted by code unit, no whitespace, numbers as
 * JSON.stringify writes them. Used to hash publicResult into the share's AAD, so the
 * hash survives reordering of keys on disk but not a change of any value.
 * Throws `bad_request` for anything JSON cannot represent faithfully.
 */
export function canonicalJson(value: unknown): string {
  return canonical(value, 0);
}

function canonical(value: unknown, depth: number): string {
  if (depth > MAX_JSON_DEPTH) throw new TkmsError('bad_request', `publicResult is nested deeper than ${MAX_JSON_DEPTH} levels`);
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new TkmsError('bad_request', 'publicResult contains a non-finite number');
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) {
    const items: string[] = [];
    for (let i = 0; i < value.length; i++) {
      if (!(i in value)) throw new TkmsError('bad_request', 'publicResult contains a sparse array');
      items.push(canonical(value[i], depth + 1));
    }
    return `[${items.join(',')}]`;
  }
  if (isPlainObject(value)) {
    const keys = Object.keys(value).sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical(value[k], depth + 1)}`).join(',')}}`;
  }
  throw new TkmsError('bad_request', `publicResult contains a value JSON cannot represent (${typeof value})`);
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

export function publicResultDigest(publicResult: Record<string, unknown>): Uint8Array {
  return sha256(utf8ToBytes(canonicalJson(publicResult)));
}

// ---------------------------------------------------------------------------
// Associated data and HKDF info: each binds the format version and the purpose,
// and share material additionally binds the key id and the public result.

const VERSION_BYTES = utf8ToBytes(String(FORMAT_VERSION));

export function verifierAad(header: Pick<KeystoreHeader, 'version' | 'kdf'>): Uint8Array {
  const { kdf } = header;
  return lengthPrefixed(
    utf8ToBytes('tkms-keystore/verifier'),
    utf8ToBytes(String(header.version)),
    utf8ToBytes(`scrypt:${kdf.N}:${kdf.r}:${kdf.p}`),
    kdf.salt,
  );
}

export function verifierKeyInfo(): Uint8Array {
  return lengthPrefixed(utf8ToBytes('tkms-keystore/verifier-key'), VERSION_BYTES);
}

export function shareKeyInfo(keyId: string): Uint8Array {
  return lengthPrefixed(utf8ToBytes('tkms-keystore/share-key'), VERSION_BYTES, utf8ToBytes(keyId));
}

export function shareAad(keyId: string, publicResult: Record<string, unknown>): Uint8Array {
  return lengthPrefixed(utf8ToBytes('tkms-keystore/share'), VERSION_BYTES, utf8ToBytes(keyId), publicResultDigest(publicResult));
}

// ---------------------------------------------------------------------------
// Parsing helpers

const utf8Decoder = new TextDecoder('utf-8', { fatal: true });

function parseJsonObject(bytes: Uint8Array, maxBytes: number, what: string): Record<string, unknown> {
  if (bytes.length === 0) throw corrupt(what, 'file is empty');
  if (bytes.length > maxBytes) throw corrupt(what, `file is larger than ${maxBytes} bytes`);
  let text: string;
  try {
    text = utf8Decoder.decode(bytes);
  } catch {
    throw corrupt(what, 'file is not valid UTF-8');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw corrupt(what, 'file is not valid JSON');
  }
  if (!isPlainObject(value)) throw corrupt(what, 'top level is not a JSON object');
  return value;
}

function expectExactFields(obj: Record<string, unknown>, fields: readonly string[], what: string): void {
  const actual = Object.keys(obj).sort();
  const expected = [...fields].sort();
  if (actual.length !== expected.length || actual.some((k, i) => k !== expected[i])) {
    throw corrupt(what, `expected exactly the fields ${expected.join(', ')}`);
  }
}

function expectObject(value: unknown, what: string, field: string): Record<string, unknown> {
  if (!isPlainObject(value)) throw corrupt(what, `${field} must be an object`);
  return value;
}

function expectInteger(value: unknown, what: string, field: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value)) throw corrupt(what, `${field} must be an integer`);
  return value;
}

/** Only the exact form encodeHex writes (0x + lower-case, exact length) is accepted. */
function expectHex(value: unknown, length: number, what: string, field: string): Uint8Array {
  let bytes: Uint8Array;
  try {
    bytes = decodeHex(value, { name: field, length, maxLength: length });
  } catch {
    throw corrupt(what, `${field} must be ${length} bytes of hex`);
  }
  if (encodeHex(bytes) !== value) throw corrupt(what, `${field} must be 0x-prefixed lower-case hex`);
  return bytes;
}

function expectVersion(obj: Record<string, unknown>, format: string, what: string): number {
  if (obj['format'] !== format) throw corrupt(what, `format must be "${format}"`);
  const version = expectInteger(obj['version'], what, 'version');
  if (version !== FORMAT_VERSION) throw corrupt(what, `unsupported version ${version}`);
  return version;
}

// ---------------------------------------------------------------------------
// Header

const HEADER_FIELDS = ['format', 'version', 'kdf', 'verifier'] as const;
const KDF_FIELDS = ['name', 'N', 'r', 'p', 'salt'] as const;
const VERIFIER_FIELDS = ['nonce', 'ciphertext'] as const;

export function parseHeader(bytes: Uint8Array): KeystoreHeader {
  const what = 'keystore header';
  const obj = parseJsonObject(bytes, MAX_HEADER_BYTES, what);
  expectExactFields(obj, HEADER_FIELDS, what);
  const version = expectVersion(obj, HEADER_FORMAT, what);

  const kdf = expectObject(obj['kdf'], what, 'kdf');
  expectExactFields(kdf, KDF_FIELDS, `${what} kdf`);
  if (kdf['name'] !== 'scrypt') throw corrupt(what, 'kdf.name must be "scrypt"');
  const params: ScryptParams = {
    N: expectInteger(kdf['N'], what, 'kdf.N'),
    r: expectInteger(kdf['r'], what, 'kdf.r'),
    p: expectInteger(kdf['p'], what, 'kdf.p'),
  };
  if (!scryptParamsWithinLimits(params)) throw corrupt(what, 'kdf parameters are out of bounds');
  const salt = expectHex(kdf['salt'], SALT_LENGTH, what, 'kdf.salt');

  const verifier = expectObject(obj['verifier'], what, 'verifier');
  expectExactFields(verifier, VERIFIER_FIELDS, `${what} verifier`);
  const nonce = expectHex(verifier['nonce'], GCM_NONCE_LENGTH, what, 'verifier.nonce');
  const ciphertext = expectHex(verifier['ciphertext'], VERIFIER_PLAINTEXT.length + GCM_TAG_LENGTH, what, 'verifier.ciphertext');

  return { version, kdf: { name: 'scrypt', ...params, salt }, verifier: { nonce, ciphertext } };
}

export function serializeHeader(header: KeystoreHeader): Uint8Array {
  const { kdf, verifier } = header;
  const json = {
    format: HEADER_FORMAT,
    version: header.version,
    kdf: { name: 'scrypt', N: kdf.N, r: kdf.r, p: kdf.p, salt: encodeHex(kdf.salt) },
    verifier: { nonce: encodeHex(verifier.nonce), ciphertext: encodeHex(verifier.ciphertext) },
  };
  return utf8ToBytes(`${JSON.stringify(json, null, 2)}\n`);
}

// ---------------------------------------------------------------------------
// Key files

const KEY_FILE_FIELDS = ['format', 'version', 'keyId', 'publicResult', 'hkdfSalt', 'nonce', 'ciphertext'] as const;

/** Parses `<expectedKeyId>.key.json`; a file naming a different key id is corrupt (swapped or renamed). */
export function parseKeyFile(bytes: Uint8Array, expectedKeyId: string): KeyFile {
  const what = `key file for ${expectedKeyId}`;
  const obj = parseJsonObject(bytes, MAX_KEY_FILE_BYTES, what);
  expectExactFields(obj, KEY_FILE_FIELDS, what);
  const version = expectVersion(obj, KEY_FILE_FORMAT, what);

  const keyId = obj['keyId'];
  try {
    assertKeyId(keyId);
  } catch {
    throw corrupt(what, 'keyId is not a valid key id');
  }
  if (keyId !== expectedKeyId) throw corrupt(what, 'keyId does not match the file name');

  const publicResult = expectObject(obj['publicResult'], what, 'publicResult');
  try {
    canonicalJson(publicResult);
  } catch (err) {
    throw corrupt(what, 'publicResult cannot be canonicalised', err);
  }

  const hkdfSalt = expectHex(obj['hkdfSalt'], SALT_LENGTH, what, 'hkdfSalt');
  const nonce = expectHex(obj['nonce'], GCM_NONCE_LENGTH, what, 'nonce');
  const ciphertext = expectHex(obj['ciphertext'], SHARE_LENGTH + GCM_TAG_LENGTH, what, 'ciphertext');
  return { version, keyId, publicResult, hkdfSalt, nonce, ciphertext };
}

/** Serialises a key file; publicResult is written in canonical key order. */
export function serializeKeyFile(file: KeyFile): Uint8Array {
  const text =
    '{\n' +
    `  "format": ${JSON.stringify(KEY_FILE_FORMAT)},\n` +
    `  "version": ${file.version},\n` +
    `  "keyId": ${JSON.stringify(file.keyId)},\n` +
    `  "publicResult": ${canonicalJson(file.publicResult)},\n` +
    `  "hkdfSalt": ${JSON.stringify(encodeHex(file.hkdfSalt))},\n` +
    `  "nonce": ${JSON.stringify(encodeHex(file.nonce))},\n` +
    `  "ciphertext": ${JSON.stringify(encodeHex(file.ciphertext))}\n` +
    '}\n';
  return utf8ToBytes(text);
}

export function keyFileName(keyId: string): string {
  return `${keyId}${KEY_FILE_SUFFIX}`;
}

/** The key id a directory entry names, or undefined for anything that is not a key file. */
export function keyIdFromFileName(name: string): string | undefined {
  if (!name.endsWith(KEY_FILE_SUFFIX)) return undefined;
  const keyId = name.slice(0, -KEY_FILE_SUFFIX.length);
  try {
    assertKeyId(keyId);
  } catch {
    return undefined;
  }
  return keyId;
}

// ---------------------------------------------------------------------------
// Epoch share files: a share made by a reshare or refresh, one file per (key, epoch, proposal).
// Their own suffix keeps them apart from `<keyId>.key.json` (key ids may contain ".e1").

export const EPOCH_SHARE_SUFFIX = '.share.json';
const EPOCH_SHARE_NAME = /^([a-z0-9][a-z0-9._-]{0,63})\.e(0|[1-9][0-9]{0,9})\.([0-9a-f]{64})\.share\.json$/;
const MAX_FILE_EPOCH = 0xffff_ffff;

export interface EpochShareName {
  keyId: string;
  epoch: number;
  /** The proposal id as 0x + 64 lower-case hex. */
  proposalId: string;
}

export function epochShareFileName(name: EpochShareName): string {
  assertKeyId(name.keyId);
  return `${name.keyId}.e${name.epoch}.${name.proposalId.slice(2)}${EPOCH_SHARE_SUFFIX}`;
}

/** The (key, epoch, proposal) an epoch share file name carries, or undefined for any other name. */
export function parseEpochShareFileName(name: string): EpochShareName | undefined {
  const match = EPOCH_SHARE_NAME.exec(name);
  if (match === null) return undefined;
  const epoch = Number(match[2]);
  if (epoch > MAX_FILE_EPOCH) return undefined;
  try {
    assertKeyId(match[1]);
  } catch {
    return undefined;
  }
  return { keyId: match[1]!, epoch, proposalId: `0x${match[3]!}` };
}

/** HKDF info of an epoch share: the key id and the epoch, so no subkey serves two epochs. */
export function epochShareKeyInfo(keyId: string, epoch: number): Uint8Array {
  return lengthPrefixed(utf8ToBytes('tkms-keystore/epoch-share-key'), VERSION_BYTES, utf8ToBytes(keyId), utf8ToBytes(String(epoch)));
}

/** AAD of an epoch share: version, key id, epoch and the public data, under a domain no DKG-time share uses. */
export function epochShareAad(keyId: string, epoch: number, publicResult: Record<string, unknown>): Uint8Array {
  return lengthPrefixed(utf8ToBytes('tkms-keystore/epoch-share'), VERSION_BYTES, utf8ToBytes(keyId), utf8ToBytes(String(epoch)), publicResultDigest(publicResult));
}
