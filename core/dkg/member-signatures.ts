import { ed25519 } from '@noble/curves/ed25519.js';
import { concatBytes, utf8ToBytes } from '../bytes.ts';
import type { DkgIdentity } from './types.ts';

/**
 * Members sign DKG messages and results with their libp2p Ed25519 key over
 * DOMAIN ‖ message, so such a signature can never pass as any other signature of the node.
 * This verifier is pure (noble) so a gateway or a browser client can check a published
 * DKG result against the committee's member keys; nodes use node:crypto for speed.
 */
export const DKG_SIGNATURE_DOMAIN = utf8ToBytes('tkms/dkg-identity/v1\0');

export function dkgSignedBytes(message: Uint8Array): Uint8Array {
  return concatBytes(DKG_SIGNATURE_DOMAIN, message);
}

/** A DkgIdentity['verify'] over raw 32-byte Ed25519 public keys by member id. */
export function memberSignatureVerifier(publicKeys: ReadonlyMap<number, Uint8Array>): DkgIdentity['verify'] {
  return (memberId, message, signature) => {
    const key = publicKeys.get(memberId);
    if (key === undefined || !(signature instanceof Uint8Array) || signature.length !== 64) return false;
    try {
      return ed25519.verify(signature, dkgSignedBytes(message), key);
    } catch {
      return false;
    }
  };
}
