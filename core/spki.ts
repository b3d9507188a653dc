import { concatBytes, hexToBytes } from '@noble/hashes/utils.js';
import type { Point } from './curve.ts';

/**
 * DER SubjectPublicKeyInfo of a secp256k1 public key (id-ecPublicKey, secp256k1, uncompressed
 * point), the form OpenSSL, WebCrypto-adjacent tooling and KMS APIs exchange. The prefix is
 * fixed because every field but the 65-byte point has a fixed length.
 */
export const SECP256K1_SPKI_PREFIX_HEX = '3056301006072a8648ce3d020106052b8104000a034200';
const SECP256K1_SPKI_PREFIX = hexToBytes(SECP256K1_SPKI_PREFIX_HEX);

export function encodePublicKeySpki(point: Point): Uint8Array {
  return concatBytes(SECP256K1_SPKI_PREFIX, point.toBytes(false));
}

/** DER SubjectPublicKeyInfo of an Ed25519 key (RFC 8410: id-Ed25519, no parameters, the 32-byte key). */
export const ED25519_SPKI_PREFIX_HEX = '302a300506032b6570032100';
const ED25519_SPKI_PREFIX = hexToBytes(ED25519_SPKI_PREFIX_HEX);

export function encodeEd25519Spki(publicKey: Uint8Array): Uint8Array {
  if (publicKey.length !== 32) throw new RangeError('an Ed25519 public key is 32 bytes');
  return concatBytes(ED25519_SPKI_PREFIX, publicKey);
}
