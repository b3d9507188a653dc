import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';

/**
 * SHA-256 of whole messages that can be large (a ceremony proposal or certificate carries every
 * dealing: about 190 kB at n = 32, hashed by each member on arrival). Same bytes as @noble/hashes;
 * Node installs node:crypto's (core/node-crypto.ts), tens of times faster on such inputs.
 */
export type Sha256 = (data: Uint8Array) => Uint8Array;

let active: Sha256 = nobleSha256;

export function messageSha256(data: Uint8Array): Uint8Array {
  return active(data);
}

export function setMessageSha256(hash: Sha256 | undefined): void {
  active = hash ?? nobleSha256;
}
