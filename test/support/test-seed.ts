import { sha256 } from '@noble/hashes/sha2.js';
import type { NodeIdentity } from '../../node/identity.ts';

/**
 * A ceremony seed for in-process runners: fixed per identity, so a runner "restarted" in a test sends
 * the same bytes, as a node does with the seed sealed in its keystore (node/keystore-seed.ts). Never
 * how a node gets its seed: that one is random and encrypted at rest.
 */
export function testSeed(identity: NodeIdentity): Uint8Array {
  return sha256(identity.privateKey.raw);
}
