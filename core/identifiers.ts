import { keccak_256 } from '@noble/hashes/sha3.js';
import { bytesToHex, decodeHex, randomBytes, utf8ToBytes } from './bytes.ts';
import { TkmsError } from './errors.ts';

/**
 * Key ids name a DKG'd key: lower-case, 1..64 chars, no "..", safe in file names, URLs and logs.
 * A JSON Schema pattern too (core/schema.ts), so validators and the API docs state the same rule.
 */
export const KEY_ID_PATTERN = '^(?!.*\\.\\.)[a-z0-9][a-z0-9._-]{0,63}$';
const KEY_ID = new RegExp(KEY_ID_PATTERN);

export function assertKeyId(value: unknown): asserts value is string {
  if (typeof value !== 'string' || !KEY_ID.test(value)) {
    throw new TkmsError('bad_key_id', 'key id must be 1-64 characters of a-z, 0-9, ".", "_" or "-", starting with a letter or digit');
  }
}

export function keyIdBytes(keyId: string): Uint8Array {
  assertKeyId(keyId);
  return utf8ToBytes(keyId);
}

export const ADDRESS_LENGTH = 20;

/**
 * Decodes an Ethereum address (0x + 40 hex). All-lower or all-upper case is accepted as is;
 * mixed case must carry a valid EIP-55 checksum, so a mistyped address is caught.
 */
export function decodeAddress(value: unknown, name = 'address'): Uint8Array {
  if (typeof value !== 'string' || !/^0x[0-9a-fA-F]{40}$/.test(value)) {
    throw new TkmsError('bad_address', `${name} must be 0x followed by 40 hex digits`);
  }
  const body = value.slice(2);
  const mixed = body !== body.toLowerCase() && body !== body.toUpperCase();
  if (mixed && toChecksumAddress(decodeHex(value)) !== value) {
    throw new TkmsError('bad_address', `${name} has an invalid EIP-55 checksum`);
  }
  return decodeHex(value, { name, length: ADDRESS_LENGTH });
}

/** EIP-55 mixed-case checksum form. */
export function toChecksumAddress(address: Uint8Array): string {
  if (address.length !== ADDRESS_LENGTH) throw new TkmsError('bad_address', `address must be ${ADDRESS_LENGTH} bytes`);
  const lower = bytesToHex(address);
  const hash = bytesToHex(keccak_256(utf8ToBytes(lower)));
  let out = '0x';
  for (let i = 0; i < lower.length; i++) {
    const c = lower[i]!;
    out += parseInt(hash[i]!, 16) >= 8 ? c.toUpperCase() : c;
  }
  return out;
}

/** Canonical text form of an address: lower-case hex, for map keys and comparisons. */
export function normalizeAddress(value: unknown, name = 'address'): string {
  return `0x${bytesToHex(decodeAddress(value, name))}`;
}

export const REQUEST_ID_LENGTH = 16;

export function newRequestId(): Uint8Array {
  return randomBytes(REQUEST_ID_LENGTH);
}

export function decodeRequestId(value: unknown): Uint8Array {
  return decodeHex(value, { name: 'request id', length: REQUEST_ID_LENGTH });
}
