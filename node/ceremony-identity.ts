import { createPrivateKey, sign as cryptoSign } from 'node:crypto';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { utf8ToBytes } from '../core/bytes.ts';
import { dkgSignedBytes } from '../core/dkg/index.ts';
import type { CeremonyIdentity } from '../core/ceremony/types.ts';
import type { NodeIdentity } from './identity.ts';

const SEED_INFO = utf8ToBytes('tkms/ceremony/v1/seed');

/** libp2p's raw Ed25519 private key is seed(32) ‖ public key(32). */
function rawParts(identity: NodeIdentity): { seed: Uint8Array; publicKey: Uint8Array } {
  const raw = identity.privateKey.raw;
  return { seed: raw.subarray(0, 32), publicKey: raw.subarray(32, 64) };
}

/**
 * The ceremony's node-local secret (ReshareParams.seed): HKDF-SHA256 of the identity key, so a
 * restarted node derives the same seed and sends byte-identical messages, and the identity key
 * itself is never used for anything but signatures. Never logged.
 */
export function ceremonySeed(identity: NodeIdentity): Uint8Array {
  return hkdf(sha256, rawParts(identity).seed, undefined, SEED_INFO, 32);
}

/** Member signatures with the node's libp2p key, in the domain every member signature uses (verifyMemberSignature). */
export function ceremonyIdentity(identity: NodeIdentity): CeremonyIdentity {
  const { seed, publicKey } = rawParts(identity);
  const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64url');
  const privateKey = createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d: b64(seed), x: b64(publicKey) }, format: 'jwk' });
  return {
    publicKey: new Uint8Array(publicKey),
    sign: (message) => new Uint8Array(cryptoSign(null, dkgSignedBytes(message), privateKey)),
  };
}
