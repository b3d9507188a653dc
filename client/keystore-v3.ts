import { scryptAsync } from '@noble/hashes/scrypt.js';
import { keccak_256 } from '@noble/hashes/sha3.js';
import { bytesToHex, concatBytes, decodeHex, equalBytes, randomBytes, TkmsError, utf8ToBytes } from '../core/index.ts';
import { accountFromSecretKey, type Account } from './account.ts';

/**
 * Ethereum keystore v3 (the "Web3 Secret Storage" file geth, ethers and wallets write): the
 * account's secret key under AES-128-CTR with a key from scrypt, and a keccak256 MAC that tells
 * a wrong password apart from a damaged file. Uses WebCrypto for AES, so it runs in browsers too.
 *
 * Errors: a wrong password is `keystore_locked` (as for the node's keystore); a file that is not
 * a well-formed keystore, or whose scrypt parameters are beyond READ_LIMITS, is
 * `keystore_corrupt`; a well-formed file with a KDF or cipher we do not implement is
 * `not_implemented`.
 */

export interface ScryptParams {
  n: number;
  r: number;
  p: number;
}

/** What ethers writes by default (N = 2^17: about 128 MiB and a fraction of a second). */
export const DEFAULT_SCRYPT: ScryptParams = { n: 131_072, r: 8, p: 1 };

/**
 * The most a file may ask of us before scrypt runs: a keystore can come from anyone, and scrypt
 * costs 128·n·r bytes and time in n·r·p. The bound admits geth's "standard" parameters
 * (n = 2^18, r = 8, p = 1), the most expensive any common wallet writes.
 */
export const READ_LIMITS = { maxN: 2 ** 18, maxR: 32, maxP: 16, maxMemoryBytes: 256 * 1024 * 1024, maxWork: 2 ** 18 * 8 } as const;

/** A keystore file is a few hundred bytes; anything far larger is not one. */
export const MAX_KEYSTORE_CHARS = 64 * 1024;

export interface KeystoreV3Json {
  version: 3;
  id: string;
  address: string;
  crypto: {
    cipher: 'aes-128-ctr';
    cipherparams: { iv: string };
    ciphertext: string;
    kdf: 'scrypt';
    kdfparams: { dklen: 32; n: number; r: number; p: number; salt: string };
    mac: string;
  };
}

/** A keystore checked for shape and cost, not yet decrypted. */
export interface ParsedKeystore {
  address: Uint8Array | undefined;
  iv: Uint8Array;
  ciphertext: Uint8Array;
  salt: Uint8Array;
  scrypt: ScryptParams;
  mac: Uint8Array;
}

function corrupt(message: string): TkmsError {
  return new TkmsError('keystore_corrupt', `account keystore: ${message}`);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function hexField(value: unknown, name: string, opts: { length?: number; min?: number; max?: number }): Uint8Array {
  let bytes: Uint8Array;
  try {
    bytes = decodeHex(value, { name, maxLength: opts.length ?? opts.max ?? 64, ...(opts.length !== undefined ? { length: opts.length } : {}) });
  } catch (e) {
    throw corrupt(e instanceof Error ? e.message : `${name} is not hex`);
  }
  if (opts.min !== undefined && bytes.length < opts.min) throw corrupt(`${name} must be at least ${opts.min} bytes`);
  return bytes;
}

function intField(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw corrupt(`${name} must be an integer in ${min}..${max} (a file asking for more is refused before any work)`);
  }
  return value;
}

/** Checks shape, lengths and scrypt cost of a keystore v3 document (parsed JSON or its text). */
export function parseKeystore(input: unknown): ParsedKeystore {
  let doc = input;
  if (typeof input === 'string') {
    if (input.length > MAX_KEYSTORE_CHARS) throw corrupt(`larger than ${MAX_KEYSTORE_CHARS} characters`);
    try {
      doc = JSON.parse(input);
    } catch {
      throw corrupt('not JSON');
    }
  }
  if (!isRecord(doc)) throw corrupt('not a JSON object');
  if (doc.version !== 3) throw corrupt('version must be 3');
  // geth writes "crypto"; some older tools wrote "Crypto".
  const c = doc.crypto ?? doc.Crypto;
  if (!isRecord(c)) throw corrupt('crypto must be an object');
  if (c.kdf !== 'scrypt') {
    if (typeof c.kdf === 'string' && c.kdf.length <= 32) throw new TkmsError('not_implemented', `account keystore: KDF "${c.kdf}" is not supported (only scrypt)`);
    throw corrupt('crypto.kdf must be a string');
  }
  if (c.cipher !== 'aes-128-ctr') {
    if (typeof c.cipher === 'string' && c.cipher.length <= 32) throw new TkmsError('not_implemented', `account keystore: cipher "${c.cipher}" is not supported (only aes-128-ctr)`);
    throw corrupt('crypto.cipher must be a string');
  }
  const kp = c.kdfparams;
  if (!isRecord(kp)) throw corrupt('crypto.kdfparams must be an object');
  if (kp.dklen !== 32) throw corrupt('crypto.kdfparams.dklen must be 32');
  const n = intField(kp.n, 'crypto.kdfparams.n', 2, READ_LIMITS.maxN);
  if ((n & (n - 1)) !== 0) throw corrupt('crypto.kdfparams.n must be a power of two');
  const r = intField(kp.r, 'crypto.kdfparams.r', 1, READ_LIMITS.maxR);
  const p = intField(kp.p, 'crypto.kdfparams.p', 1, READ_LIMITS.maxP);
  if (128 * n * r > READ_LIMITS.maxMemoryBytes || n * r * p > READ_LIMITS.maxWork) {
    throw corrupt(`scrypt parameters n=${n}, r=${r}, p=${p} cost more than this client allows`);
  }
  const cp = c.cipherparams;
  if (!isRecord(cp)) throw corrupt('crypto.cipherparams must be an object');
  const address = doc.address === undefined ? undefined : hexField(doc.address, 'address', { length: 20 });
  return {
    address,
    iv: hexField(cp.iv, 'crypto.cipherparams.iv', { length: 16 }),
    ciphertext: hexField(c.ciphertext, 'crypto.ciphertext', { length: 32 }),
    salt: hexField(kp.salt, 'crypto.kdfparams.salt', { min: 1, max: 128 }),
    scrypt: { n, r, p },
    mac: hexField(c.mac, 'crypto.mac', { length: 32 }),
  };
}

function passwordBytes(password: string): Uint8Array {
  // ethers normalises to NFKC; for ASCII passwords this is the identity, as in geth.
  return utf8ToBytes(password.normalize('NFKC'));
}

async function aesCtr(key: Uint8Array, iv: Uint8Array, data: Uint8Array): Promise<Uint8Array> {
  const k = await globalThis.crypto.subtle.importKey('raw', key as Uint8Array<ArrayBuffer>, 'AES-CTR', false, ['encrypt']);
  return new Uint8Array(await globalThis.crypto.subtle.encrypt({ name: 'AES-CTR', counter: iv as Uint8Array<ArrayBuffer>, length: 128 }, k, data as Uint8Array<ArrayBuffer>));
}

function deriveKey(password: string, salt: Uint8Array, s: ScryptParams): Promise<Uint8Array> {
  return scryptAsync(passwordBytes(password), salt, { N: s.n, r: s.r, p: s.p, dkLen: 32 });
}

/** Decrypts a keystore v3 document (text or parsed JSON) into an account. */
export async function decryptKeystore(input: unknown, password: string): Promise<Account> {
  const k = parseKeystore(input);
  const dk = await deriveKey(password, k.salt, k.scrypt);
  if (!equalBytes(keccak_256(concatBytes(dk.subarray(16, 32), k.ciphertext)), k.mac)) {
    throw new TkmsError('keystore_locked', 'wrong account password (the keystore MAC does not match)');
  }
  const secretKey = await aesCtr(dk.subarray(0, 16), k.iv, k.ciphertext);
  let account: Account;
  try {
    account = accountFromSecretKey(secretKey);
  } catch {
    throw corrupt('the decrypted secret key is not a valid secp256k1 key');
  }
  if (k.address !== undefined && !equalBytes(k.address, account.addressBytes)) throw corrupt('the address does not match the decrypted key');
  return account;
}

/** Encrypts an account as keystore v3 with scrypt (ethers' parameters unless told otherwise). */
export async function encryptKeystore(account: Account, password: string, scrypt: ScryptParams = DEFAULT_SCRYPT): Promise<KeystoreV3Json> {
  const salt = randomBytes(32);
  const iv = randomBytes(16);
  const dk = await deriveKey(password, salt, scrypt);
  const ciphertext = await aesCtr(dk.subarray(0, 16), iv, account.secretKey);
  const mac = keccak_256(concatBytes(dk.subarray(16, 32), ciphertext));
  return {
    version: 3,
    id: globalThis.crypto.randomUUID(),
    address: bytesToHex(account.addressBytes),
    crypto: {
      cipher: 'aes-128-ctr',
      cipherparams: { iv: bytesToHex(iv) },
      ciphertext: bytesToHex(ciphertext),
      kdf: 'scrypt',
      kdfparams: { dklen: 32, n: scrypt.n, r: scrypt.r, p: scrypt.p, salt: bytesToHex(salt) },
      mac: bytesToHex(mac),
    },
  };
}
