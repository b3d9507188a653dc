import { sha256 } from '@noble/hashes/sha2.js';
import { decodeHex, encodeHex, expectBytes, lengthPrefixed, utf8ToBytes } from './bytes.ts';
import { assertPointBytes } from './curve-backend.ts';
import { NONCE_LENGTH, TAG_LENGTH } from './ecies.ts';
import { TkmsError } from './errors.ts';
import { ADDRESS_LENGTH, keyIdBytes } from './identifiers.ts';

/**
 * A handle commits to everything it protects, so a node can check that the K it is asked
 * to multiply belongs to the handle the requester was granted:
 *   handle = SHA-256( lp("tkms/handle/v1") ‖ lp(keyId) ‖ lp(K) ‖ lp(nonce) ‖ lp(SHA-256(ciphertext)) ‖ lp(owner) )
 * where lp(x) = u32be(len(x)) ‖ x, K is the 33-byte compressed point and owner the 20-byte address.
 */
const HANDLE_DOMAIN = utf8ToBytes('tkms/handle/v1');
export const HANDLE_LENGTH = 32;

export interface HandleInput {
  keyId: string;
  K: Uint8Array;
  nonce: Uint8Array;
  ciphertext: Uint8Array;
  /** 20-byte Ethereum address of the owner. */
  owner: Uint8Array;
}

export function deriveHandle(input: HandleInput): Uint8Array {
  if (!(input.ciphertext instanceof Uint8Array)) throw new TkmsError('bad_request', 'ciphertext must be bytes');
  if (input.ciphertext.length < TAG_LENGTH) throw new TkmsError('bad_length', `ciphertext must hold at least the ${TAG_LENGTH}-byte tag`);
  return deriveHandleFromDigest({ keyId: input.keyId, K: input.K, nonce: input.nonce, ciphertextHash: sha256(input.ciphertext), owner: input.owner });
}

export const CIPHERTEXT_HASH_LENGTH = 32;

/** What a node sees of a handle: everything but the ciphertext, which only its hash stands for. */
export interface HandleDigestInput {
  keyId: string;
  K: Uint8Array;
  nonce: Uint8Array;
  /** SHA-256 of ciphertext ‖ tag. */
  ciphertextHash: Uint8Array;
  owner: Uint8Array;
}

/** The same commitment as deriveHandle, from the ciphertext's hash: nodes never need the ciphertext. */
export function deriveHandleFromDigest(input: HandleDigestInput): Uint8Array {
  if (!(input.K instanceof Uint8Array)) throw new TkmsError('bad_request', 'K must be bytes');
  assertPointBytes(input.K, 'K'); // 33-byte compressed, on the curve
  expectBytes(input.nonce, NONCE_LENGTH, 'nonce');
  expectBytes(input.ciphertextHash, CIPHERTEXT_HASH_LENGTH, 'ciphertext hash');
  expectBytes(input.owner, ADDRESS_LENGTH, 'owner');
  return sha256(lengthPrefixed(HANDLE_DOMAIN, keyIdBytes(input.keyId), input.K, input.nonce, input.ciphertextHash, input.owner));
}

export function decodeHandle(value: unknown): Uint8Array {
  return decodeHex(value, { name: 'handle', length: HANDLE_LENGTH });
}

export function encodeHandle(handle: Uint8Array): string {
  if (handle.length !== HANDLE_LENGTH) throw new TkmsError('bad_handle', `handle must be ${HANDLE_LENGTH} bytes`);
  return encodeHex(handle);
}
