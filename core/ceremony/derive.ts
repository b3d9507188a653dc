import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToNumberBE } from '@noble/curves/utils.js';
import { lengthPrefixed, utf8ToBytes } from '../bytes.ts';
import { secp256k1Group, type Group } from '../group.ts';

/**
 * Every secret value of a ceremony comes from the node's seed and the proposal id, never from a
 * random source: a member that restarts mid-ceremony recomputes the same polynomial, sealing keys
 * and receiver key, so it sends byte-identical messages and never a second, different dealing.
 * Each value has its own label (and key id, index), so no two uses share a scalar.
 */
const DERIVE_DOMAIN = 'tkms/ceremony/v1/derive/';

export function deriveScalar(seed: Uint8Array, proposalId: Uint8Array, label: string, ...parts: Uint8Array[]): bigint {
  return deriveScalarIn(secp256k1Group, seed, proposalId, label, ...parts);
}

/** deriveScalar for a key's group (its order ℓ for ed25519); secp256k1 gives deriveScalar's values. */
export function deriveScalarIn(group: Group, seed: Uint8Array, proposalId: Uint8Array, label: string, ...parts: Uint8Array[]): bigint {
  for (let counter = 0; ; counter++) {
    const info = lengthPrefixed(utf8ToBytes(DERIVE_DOMAIN + label), Uint8Array.of(counter), ...parts);
    // 48 bytes reduced mod the group order: bias below 2^-128.
    const value = group.mod(bytesToNumberBE(hkdf(sha256, seed, proposalId, info, 48)));
    if (value !== 0n) return value;
  }
}

/** 32 derived bytes (BIP340 auxiliary randomness, which must also be the same after a restart). */
export function deriveBytes(seed: Uint8Array, proposalId: Uint8Array, label: string, ...parts: Uint8Array[]): Uint8Array {
  return hkdf(sha256, seed, proposalId, lengthPrefixed(utf8ToBytes(DERIVE_DOMAIN + label), ...parts), 32);
}

export function u16Bytes(value: number): Uint8Array {
  return Uint8Array.of(value >>> 8, value & 0xff);
}
