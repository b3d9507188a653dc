import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { setMemberSignatureFastCheck } from './dkg/member-signatures.ts';

/**
 * Node-only: member signatures are first checked with node:crypto (OpenSSL), whose "yes" the strict
 * rule always shares (core/dkg/member-signatures.ts explains why); noble decides every "no".
 * Browsers never load this module.
 */
const keyObjects = new Map<string, KeyObject>();
const KEY_OBJECTS_CACHED = 4096;

function keyObject(publicKey: Uint8Array): KeyObject {
  const x = Buffer.from(publicKey).toString('base64url');
  let key = keyObjects.get(x);
  if (key === undefined) {
    key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x }, format: 'jwk' });
    if (keyObjects.size >= KEY_OBJECTS_CACHED) keyObjects.clear();
    keyObjects.set(x, key);
  }
  return key;
}

export function installNodeMemberSignatureCheck(): void {
  setMemberSignatureFastCheck((publicKey, signedBytes, signature) => {
    try {
      return verify(null, signedBytes, keyObject(publicKey), signature);
    } catch {
      return false;
    }
  });
}

export function uninstallNodeMemberSignatureCheck(): void {
  setMemberSignatureFastCheck(undefined);
}
