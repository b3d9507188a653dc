import { bytesToNumberBE, numberToBytesBE } from '@noble/curves/utils.js';
import { keccak_256 } from '@noble/hashes/sha3.js';
import { bytesToHex, concatBytes, decodeHex, utf8ToBytes } from './bytes.ts';
import { CURVE_ORDER, decodeScalar, Point } from './curve.ts';
import { curveBackend } from './curve-backend.ts';
import { TkmsError } from './errors.ts';
import { LruCache } from './lru.ts';
import { ADDRESS_LENGTH } from './identifiers.ts';

/**
 * EIP-712 typed-data hashing and Ethereum-style (r ‖ s ‖ v) secp256k1 signatures, for the
 * project's fixed, flat struct types: what a wallet's eth_signTypedData_v4 signs, so users
 * sign our messages with ordinary Ethereum accounts.
 */

export type Eip712FieldType = 'address' | 'bytes32' | 'bytes16' | 'string' | 'bytes' | 'uint64';

export interface Eip712Field {
  name: string;
  type: Eip712FieldType;
}

/** Flat: no nested structs, no arrays, so encodeType never has referenced types to append. */
export interface Eip712Struct {
  name: string;
  fields: readonly Eip712Field[];
}

/**
 * The EIP712Domain type includes `chainId` and `salt` only when they are given, in the order
 * EIP-712 fixes (name, version, chainId, verifyingContract, salt), as wallets build it.
 */
export interface Eip712Domain {
  name: string;
  version: string;
  chainId?: bigint;
  /** bytes32: what tells one deployment's signatures from another's when there is no contract. */
  salt?: Uint8Array;
}

/**
 * Values: address → 20-byte Uint8Array; bytes32/bytes16 → Uint8Array of exactly 32/16 bytes;
 * string → string; bytes → Uint8Array; uint64 → bigint or safe-integer number in 0..2^64-1.
 * Missing, extra or mistyped fields → TkmsError('bad_request') naming the field.
 */
export type Eip712Value = Uint8Array | string | bigint | number;

export const SIGNATURE_LENGTH = 65;

const WORD = 32;
const UINT64_MAX = (1n << 64n) - 1n;
const UINT256_MAX = (1n << 256n) - 1n;
const HALF_ORDER = CURVE_ORDER >> 1n;
const FIELD_TYPES: ReadonlySet<string> = new Set<Eip712FieldType>(['address', 'bytes32', 'bytes16', 'string', 'bytes', 'uint64']);
// Names go verbatim into the type string; anything beyond a Solidity identifier (",", ")", " ")
// would let two different definitions produce the same string and so the same type hash.
const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
// TextEncoder turns a lone surrogate into U+FFFD, so two different strings would hash (and
// sign) the same; wallets and ethers refuse them, so we do too.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** `Name(type1 name1,type2 name2,…)`. */
export function encodeType(struct: Eip712Struct): string {
  assertStruct(struct);
  return `${struct.name}(${struct.fields.map((f) => `${f.type} ${f.name}`).join(',')})`;
}

/** keccak256(typeHash ‖ enc(field1) ‖ … ‖ enc(fieldN)), each enc one 32-byte word. */
export function hashStruct(struct: Eip712Struct, message: Record<string, Eip712Value>): Uint8Array {
  const typeHash = cachedKeccak(typeHashes, encodeType(struct), () => utf8ToBytes(encodeType(struct)));
  if (typeof message !== 'object' || message === null || Array.isArray(message) || message instanceof Uint8Array) {
    throw new TkmsError('bad_request', `${struct.name} message must be an object`);
  }
  const known = new Set(struct.fields.map((f) => f.name));
  for (const key of Object.keys(message)) {
    // The key is caller-supplied: cap what of it reaches messages and logs.
    if (!known.has(key)) throw fieldError(struct, key.length > 64 ? `${key.slice(0, 64)}…` : key, 'is not a field of this type');
  }
  const words = new Uint8Array(WORD * (struct.fields.length + 1));
  words.set(typeHash, 0);
  struct.fields.forEach((field, i) => {
    // Own properties only: a field inherited from a prototype is not part of what was sent.
    if (!Object.prototype.hasOwnProperty.call(message, field.name)) throw fieldError(struct, field.name, 'is missing');
    words.set(encodeValue(struct, field, message[field.name]), WORD * (i + 1));
  });
  return keccak_256(words);
}

/**
 * Type hashes and domain separators, by their defining string: a server hashes the same few on
 * every request (about half of all keccak calls on the delegation path), and a string key,
 * unlike an object key, cannot go stale when a caller mutates its object.
 */
const typeHashes = new Map<string, Uint8Array>();
const domainSeparators = new Map<string, Uint8Array>();
const MAX_CACHED_HASHES = 256;

function cachedKeccak(cache: Map<string, Uint8Array>, key: string, input: () => Uint8Array): Uint8Array {
  let hash = cache.get(key);
  if (hash === undefined) {
    hash = keccak_256(input());
    if (cache.size < MAX_CACHED_HASHES) cache.set(key, hash);
  }
  return hash;
}

export function domainSeparator(domain: Eip712Domain): Uint8Array {
  if (typeof domain !== 'object' || domain === null) throw new TkmsError('bad_request', 'EIP-712 domain must be an object');
  for (const key of Object.keys(domain)) {
    // A caller who passes verifyingContract expects it to be bound; silently dropping it
    // would make the signature cover less than the caller believes.
    if (key !== 'name' && key !== 'version' && key !== 'chainId' && key !== 'salt') {
      throw new TkmsError('bad_request', `EIP-712 domain field "${key}" is not supported`, { field: key });
    }
  }
  const name = domainString(domain.name, 'name');
  const version = domainString(domain.version, 'version');
  const salt = domain.salt;
  if (salt !== undefined && (!(salt instanceof Uint8Array) || salt.length !== WORD)) {
    throw new TkmsError('bad_request', 'EIP-712 domain salt must be 32 bytes', { field: 'salt' });
  }
  const key = JSON.stringify([
    domain.name,
    domain.version,
    typeof domain.chainId === 'bigint' ? domain.chainId.toString() : domain.chainId ?? null,
    salt === undefined ? null : bytesToHex(salt),
  ]);
  const cached = domainSeparators.get(key);
  // A copy: the caller may write into what it gets back.
  if (cached !== undefined) return cached.slice();
  const words = [keccak_256(name), keccak_256(version)];
  let type = 'EIP712Domain(string name,string version';
  if (domain.chainId !== undefined) {
    const chainId: unknown = domain.chainId;
    if (typeof chainId !== 'bigint' || chainId < 0n || chainId > UINT256_MAX) {
      throw new TkmsError('bad_request', 'EIP-712 domain chainId must be a bigint in 0..2^256-1', { field: 'chainId' });
    }
    type += ',uint256 chainId';
    words.push(numberToBytesBE(chainId, WORD));
  }
  if (salt !== undefined) {
    type += ',bytes32 salt';
    words.push(salt.slice());
  }
  type += ')';
  const separator = keccak_256(concatBytes(keccak_256(utf8ToBytes(type)), ...words));
  if (domainSeparators.size < MAX_CACHED_HASHES) domainSeparators.set(key, separator.slice());
  return separator;
}

/** keccak256(0x19 0x01 ‖ domainSeparator ‖ hashStruct): the digest a wallet signs. */
export function hashTypedData(domain: Eip712Domain, struct: Eip712Struct, message: Record<string, Eip712Value>): Uint8Array {
  return keccak_256(concatBytes(Uint8Array.of(0x19, 0x01), domainSeparator(domain), hashStruct(struct, message)));
}

/** 65 bytes r ‖ s ‖ v with v ∈ {27, 28}, low-s (RFC 6979 deterministic, as Ethereum wallets produce). */
export function signTypedData(
  secretKey: Uint8Array,
  domain: Eip712Domain,
  struct: Eip712Struct,
  message: Record<string, Eip712Value>,
): Uint8Array {
  assertSecretKey(secretKey);
  const digest = hashTypedData(domain, struct, message);
  let signed: { rs: Uint8Array; recovery: number };
  try {
    signed = curveBackend().signRecoverable(digest, secretKey);
  } catch (e) {
    throw new TkmsError('internal', 'secp256k1 signing failed', undefined, { cause: e });
  }
  const recovery = signed.recovery;
  // Ids 2 and 3 (R.x ≥ n, probability ~2^-128) have no Ethereum v encoding.
  if (recovery > 1) throw new TkmsError('internal', 'signature recovery id has no Ethereum encoding');
  const out = new Uint8Array(SIGNATURE_LENGTH);
  out.set(signed.rs, 0);
  out[64] = 27 + recovery;
  return out;
}

/**
 * Recovers the 20-byte signer address. Only the canonical encoding is accepted: v ∈ {27, 28}
 * and low s. v = 0/1 and high-s are the same signature under another encoding, and anything
 * keyed on signature bytes (spent-id sets, logs) must see exactly one form per signature.
 * Every failure is a TkmsError: 'bad_request' for the message or domain (or a non-byte
 * signature), 'bad_length' for the signature's size, 'unauthorized' for everything else
 * about the signature, 'internal' for a malformed struct definition.
 */
export function recoverTypedDataSigner(
  domain: Eip712Domain,
  struct: Eip712Struct,
  message: Record<string, Eip712Value>,
  signature: Uint8Array,
): Uint8Array {
  if (!(signature instanceof Uint8Array)) throw new TkmsError('bad_request', 'signature must be bytes');
  if (signature.length !== SIGNATURE_LENGTH) {
    throw new TkmsError('bad_length', `signature must be ${SIGNATURE_LENGTH} bytes, got ${signature.length}`);
  }
  const digest = hashTypedData(domain, struct, message);
  const r = bytesToNumberBE(signature.subarray(0, 32));
  const s = bytesToNumberBE(signature.subarray(32, 64));
  const v = signature[64]!;
  if (v !== 27 && v !== 28) throw new TkmsError('unauthorized', `signature v must be 27 or 28, got ${v}`);
  if (r === 0n || r >= CURVE_ORDER) throw new TkmsError('unauthorized', 'signature r is out of range');
  if (s === 0n || s >= CURVE_ORDER) throw new TkmsError('unauthorized', 'signature s is out of range');
  if (s > HALF_ORDER) throw new TkmsError('unauthorized', 'signature s is in the upper half of the group order (malleable)');
  const key = `${bytesToHex(digest)}${bytesToHex(signature)}`;
  const known = recoveredSigners.get(key);
  if (known !== undefined) return known.slice();
  const publicKey = curveBackend().recoverPublicKey(digest, signature.subarray(0, 64), v === 27 ? 0 : 1);
  // About half of all r values are not the x-coordinate of any curve point.
  if (publicKey === null) throw new TkmsError('unauthorized', 'signature does not recover to a public key');
  const address = keccak_256(publicKey.subarray(1)).slice(WORD - ADDRESS_LENGTH);
  recoveredSigners.set(key, address.slice());
  return address;
}

/**
 * Signers by (digest, signature). A grant or revocation is presented with every request that
 * relies on it, so the same recovery would otherwise run over and over; recovery is a pure
 * function of these bytes, so a remembered answer is the answer.
 */
const recoveredSigners = new LruCache<string, Uint8Array>(4096);

/** 33- or 65-byte SEC1 → keccak256(uncompressed point without its 0x04 prefix), last 20 bytes. */
export function addressFromPublicKey(publicKey: Uint8Array): Uint8Array {
  if (!(publicKey instanceof Uint8Array)) throw new TkmsError('bad_point', 'public key must be bytes');
  if (publicKey.length !== 33 && publicKey.length !== 65) {
    throw new TkmsError('bad_length', `public key must be a 33- or 65-byte SEC1 point, got ${publicKey.length} bytes`);
  }
  let point: Point;
  try {
    point = Point.fromBytes(publicKey);
    point.assertValidity();
  } catch {
    throw new TkmsError('bad_point', 'public key is not a point on secp256k1');
  }
  return addressFromPoint(point);
}

export function addressFromSecretKey(secretKey: Uint8Array): Uint8Array {
  return addressFromPoint(Point.BASE.multiply(assertSecretKey(secretKey)));
}

/**
 * Decodes the wire form (0x + 130 hex digits). Only the size is checked here: whether the
 * bytes are a valid, canonical signature is recoverTypedDataSigner's 'unauthorized' decision.
 */
export function decodeSignature(value: unknown): Uint8Array {
  if (typeof value !== 'string') throw new TkmsError('bad_hex', 'signature must be a hex string');
  if (!value.startsWith('0x') && !value.startsWith('0X')) throw new TkmsError('bad_hex', 'signature must start with 0x');
  return decodeHex(value, { name: 'signature', length: SIGNATURE_LENGTH, maxLength: SIGNATURE_LENGTH });
}

function addressFromPoint(point: Point): Uint8Array {
  return keccak_256(point.toBytes(false).subarray(1)).slice(WORD - ADDRESS_LENGTH);
}

function assertSecretKey(secretKey: unknown): bigint {
  // decodeScalar would also take a hex string, which noble's sign would then refuse.
  if (!(secretKey instanceof Uint8Array)) throw new TkmsError('bad_scalar', 'secret key must be bytes');
  return decodeScalar(secretKey, { name: 'secret key' });
}

function assertStruct(struct: Eip712Struct): void {
  // Struct definitions are code, not input: a bad one is a bug, hence 'internal'.
  if (typeof struct !== 'object' || struct === null || !Array.isArray(struct.fields)) {
    throw new TkmsError('internal', 'EIP-712 struct definition must have a name and a fields array');
  }
  if (typeof struct.name !== 'string' || !IDENTIFIER.test(struct.name) || struct.name === 'EIP712Domain') {
    throw new TkmsError('internal', 'EIP-712 struct name must be an identifier other than EIP712Domain');
  }
  const seen = new Set<string>();
  for (const field of struct.fields as readonly unknown[]) {
    const f = field as Partial<Eip712Field> | null;
    if (typeof f?.name !== 'string' || !IDENTIFIER.test(f.name) || seen.has(f.name)) {
      throw new TkmsError('internal', `EIP-712 struct ${struct.name} has a missing, invalid or duplicate field name`);
    }
    if (typeof f.type !== 'string' || !FIELD_TYPES.has(f.type)) {
      throw new TkmsError('internal', `EIP-712 struct ${struct.name} field ${f.name} has an unsupported type`);
    }
    seen.add(f.name);
  }
}

function encodeValue(struct: Eip712Struct, field: Eip712Field, value: unknown): Uint8Array {
  switch (field.type) {
    case 'address': {
      const bytes = fixedBytes(struct, field, value, ADDRESS_LENGTH);
      const word = new Uint8Array(WORD);
      word.set(bytes, WORD - ADDRESS_LENGTH);
      return word;
    }
    case 'bytes32':
      return fixedBytes(struct, field, value, 32);
    case 'bytes16': {
      // bytesN is left-aligned (right-padded), unlike address and uintN.
      const word = new Uint8Array(WORD);
      word.set(fixedBytes(struct, field, value, 16), 0);
      return word;
    }
    case 'string':
      if (typeof value !== 'string') throw fieldError(struct, field.name, 'must be a string');
      if (LONE_SURROGATE.test(value)) throw fieldError(struct, field.name, 'contains an unpaired UTF-16 surrogate');
      return keccak_256(utf8ToBytes(value));
    case 'bytes':
      if (!(value instanceof Uint8Array)) throw fieldError(struct, field.name, 'must be bytes');
      return keccak_256(value);
    case 'uint64': {
      let n: bigint;
      if (typeof value === 'bigint') n = value;
      else if (typeof value === 'number' && Number.isSafeInteger(value)) n = BigInt(value);
      else throw fieldError(struct, field.name, 'must be a bigint or a safe integer');
      if (n < 0n || n > UINT64_MAX) throw fieldError(struct, field.name, 'must be in 0..2^64-1');
      return numberToBytesBE(n, WORD);
    }
  }
}

function fixedBytes(struct: Eip712Struct, field: Eip712Field, value: unknown, length: number): Uint8Array {
  if (!(value instanceof Uint8Array) || value.length !== length) {
    throw fieldError(struct, field.name, `must be ${length} bytes`);
  }
  return value;
}

function domainString(value: unknown, field: string): Uint8Array {
  if (typeof value !== 'string' || LONE_SURROGATE.test(value)) {
    throw new TkmsError('bad_request', `EIP-712 domain ${field} must be a well-formed string`, { field });
  }
  return utf8ToBytes(value);
}

function fieldError(struct: Eip712Struct, field: string, problem: string): TkmsError {
  return new TkmsError('bad_request', `${struct.name}.${field} ${problem}`, { field });
}
