import { bytesToHex, concatBytes, hexToBytes, randomBytes, utf8ToBytes } from '@noble/hashes/utils.js';
import { equalBytes } from '@noble/curves/utils.js';
import { TkmsError } from './errors.ts';

// equalBytes is noble's constant-time comparison (no early exit on the first difference).
export { bytesToHex, concatBytes, equalBytes, randomBytes, utf8ToBytes };

const HEX_BODY = /^(?:[0-9a-fA-F]{2})*$/;

export interface HexOptions {
  /** Field name used in error messages, e.g. "K" or "nonce". */
  name?: string;
  /** Exact decoded length in bytes. */
  length?: number;
  /** Upper bound on the decoded length, checked before decoding. */
  maxLength?: number;
  /** Whether the "0x" prefix is accepted (default true). */
  allowPrefix?: boolean;
}

/**
 * Strict hex decoder for anything that arrives from outside: rejects non-strings,
 * odd length, non-hex characters, and wrong or excessive lengths with a typed error.
 */
export function decodeHex(value: unknown, opts: HexOptions = {}): Uint8Array {
  const name = opts.name ?? 'value';
  if (typeof value !== 'string') throw new TkmsError('bad_hex', `${name} must be a hex string`);
  let body = value;
  if (body.startsWith('0x') || body.startsWith('0X')) {
    if (opts.allowPrefix === false) throw new TkmsError('bad_hex', `${name} must be hex without a 0x prefix`);
    body = body.slice(2);
  }
  if (opts.maxLength !== undefined && body.length > opts.maxLength * 2) {
    throw new TkmsError('bad_length', `${name} is longer than ${opts.maxLength} bytes`);
  }
  if (!HEX_BODY.test(body)) throw new TkmsError('bad_hex', `${name} is not valid hex (even number of 0-9a-f digits)`);
  const bytes = hexToBytes(body);
  if (opts.length !== undefined && bytes.length !== opts.length) {
    throw new TkmsError('bad_length', `${name} must be ${opts.length} bytes, got ${bytes.length}`);
  }
  return bytes;
}

/** Lower-case hex with a 0x prefix: the project's wire form for binary fields. */
export function encodeHex(bytes: Uint8Array): string {
  return `0x${bytesToHex(bytes)}`;
}

/** Requires a Uint8Array of an exact length; for binary inputs from other modules or the wire. */
export function expectBytes(value: unknown, length: number, name = 'value'): Uint8Array {
  if (!(value instanceof Uint8Array)) throw new TkmsError('bad_request', `${name} must be bytes`);
  if (value.length !== length) throw new TkmsError('bad_length', `${name} must be ${length} bytes, got ${value.length}`);
  return value;
}

/** Length-prefixed (u32 big-endian) framing, so concatenated fields cannot be confused. */
export function lengthPrefixed(...fields: Uint8Array[]): Uint8Array {
  const parts: Uint8Array[] = [];
  for (const field of fields) {
    const len = new Uint8Array(4);
    new DataView(len.buffer).setUint32(0, field.length, false);
    parts.push(len, field);
  }
  return concatBytes(...parts);
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Standard base64 with padding, for bulk data in JSON (ciphertexts, plaintexts). Works in browsers too. */
export function encodeBase64(bytes: Uint8Array): string {
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

const BASE64_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** For a value BASE64 accepts: whether the bits the padding leaves out of the last character are zero. */
function zeroPaddingBits(value: string): boolean {
  if (value.endsWith('==')) return (BASE64_ALPHABET.indexOf(value[value.length - 3]!) & 0x0f) === 0;
  if (value.endsWith('=')) return (BASE64_ALPHABET.indexOf(value[value.length - 2]!) & 0x03) === 0;
  return true;
}

/** Strict: canonical padded base64 only (no whitespace, no URL alphabet), bounded before decoding. */
export function decodeBase64(value: unknown, opts: { name?: string; maxLength?: number } = {}): Uint8Array {
  const name = opts.name ?? 'value';
  if (typeof value !== 'string') throw new TkmsError('bad_request', `${name} must be a base64 string`);
  if (opts.maxLength !== undefined && value.length > Math.ceil(opts.maxLength / 3) * 4) {
    throw new TkmsError('payload_too_large', `${name} is longer than ${opts.maxLength} bytes`);
  }
  if (!BASE64.test(value)) throw new TkmsError('bad_request', `${name} is not canonical base64`);
  const binary = atob(value);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  // Non-zero padding bits decode too; insist on the one canonical spelling (the bits the padding
  // drops are zero). Checked on the last character rather than by encoding the whole value again.
  if (!zeroPaddingBits(value)) throw new TkmsError('bad_request', `${name} is not canonical base64`);
  if (opts.maxLength !== undefined && out.length > opts.maxLength) throw new TkmsError('payload_too_large', `${name} is longer than ${opts.maxLength} bytes`);
  return out;
}
