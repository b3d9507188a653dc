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
