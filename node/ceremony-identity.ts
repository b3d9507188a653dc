import { createPrivateKey, sign as cryptoSign } from 'node:crypto';
import { dkgSignedBytes } from '../core/dkg/index.ts';
import type { CeremonyIdentity } from '../core/ceremony/types.ts';
import type { NodeIdentity } from './identity.ts';
import type { Keystore } from './keystore.ts';

/** libp2p's raw Ed25519 private key is seed(32) ‖ public key(32). */
function rawParts(identity: NodeIdentity): { seed: Uint8Array; publicKey: Uint8Array } {
  const raw = identity.privateKey.raw;
  return { seed: raw.subarray(0, 32), publicKey: raw.subarray(32, 64) };
}

/**
 * The ceremony's node-local secret (ReshareParams.seed), the one place the daemon (reshare and DKG
 * runners) gets it: 32 random bytes sealed in the keystore (node/keystore-seed.ts), so a restarted
 * node derives the same seed and sends byte-identical messages, while the identity file (plaintext,
 * 0600) and the ceremony messages every participant receives never yield it without the keystore
 * password. Never logged.
 */
export function ceremonySeed(keystore: Pick<Keystore, 'ceremonySeed'>): Promise<Uint8Array> {
  return keystore.ceremonySeed();
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
