import { ed25519 } from '@noble/curves/ed25519.js';
import { bytesToHex, concatBytes, utf8ToBytes } from '../bytes.ts';

/**
 * Members sign DKG messages and results with their libp2p Ed25519 key over
 * DOMAIN ‖ message, so such a signature can never pass as any other signature of the node.
 */
export const DKG_SIGNATURE_DOMAIN = utf8ToBytes('tkms/dkg-identity/v1\0');

export function dkgSignedBytes(message: Uint8Array): Uint8Array {
  return concatBytes(DKG_SIGNATURE_DOMAIN, message);
}

/**
 * The one rule every node, gateway and client applies to a member's signature: RFC 8032
 * with canonical encodings of A and R, s < L, and no small-order A (noble's zip215: false).
 * Verifiers that disagree would let a member publish a result some parties accept and others
 * refuse, so nothing verifies member signatures any other way (node:crypto is faster but
 * checks a different equation: cofactorless, and it accepts small-order keys).
 */
export function verifyMemberSignature(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) return false;
  if (!(signature instanceof Uint8Array) || signature.length !== 64) return false;
  const signed = dkgSignedBytes(message);
  // The fast check says yes only where the strict rule says yes too (see setMemberSignatureFastCheck).
  if (fastCheck !== undefined && isAcceptableMemberKeyCached(publicKey) && fastCheck(publicKey, signed, signature)) return true;
  try {
    return ed25519.verify(signature, signed, publicKey, { zip215: false });
  } catch {
    return false;
  }
}

/**
 * A cofactorless RFC 8032 verifier (node:crypto's, installed by core/platform/node.ts): about 15 times
 * faster than noble, and a DKG or reshare at n = 32 checks hundreds of member signatures per member.
 * It is only ever trusted to say yes, for a key the strict rule accepts: a signature satisfying
 * [s]B = R + [k]A with R's bytes equal to their canonical encoding (OpenSSL compares encodings) and
 * s < L also satisfies the cofactored equation noble checks, so the answer is the strict rule's.
 * Every "no" is decided again by noble (signatures with torsion components verify cofactored only).
 */
export type MemberSignatureFastCheck = (publicKey: Uint8Array, signedBytes: Uint8Array, signature: Uint8Array) => boolean;
let fastCheck: MemberSignatureFastCheck | undefined;

export function setMemberSignatureFastCheck(check: MemberSignatureFastCheck | undefined): void {
  fastCheck = check;
}

const acceptableKeys = new Map<string, boolean>();
const ACCEPTABLE_KEYS_CACHED = 4096;

function isAcceptableMemberKeyCached(publicKey: Uint8Array): boolean {
  const hex = bytesToHex(publicKey);
  let ok = acceptableKeys.get(hex);
  if (ok === undefined) {
    ok = isAcceptableMemberKey(publicKey);
    if (acceptableKeys.size >= ACCEPTABLE_KEYS_CACHED) acceptableKeys.clear();
    acceptableKeys.set(hex, ok);
  }
  return ok;
}

/**
 * Whether a raw Ed25519 key can be a member key: a canonical encoding of a point outside the
 * small-order subgroup (such a key verifies signatures its holder never made).
 */
export function isAcceptableMemberKey(publicKey: Uint8Array): boolean {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) return false;
  try {
    return !ed25519.Point.fromBytes(publicKey, false).isSmallOrder();
  } catch {
    return false;
  }
}
