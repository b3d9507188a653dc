import { sha256 } from '@noble/hashes/sha2.js';
import { concatBytes, randomBytes, utf8ToBytes } from './bytes.ts';
import { decodeScalar, encodePoint, encodeScalar, G, mod, type Point, randomScalar } from './curve.ts';
import { curveBackend } from './curve-backend.ts';
import { hashToScalar } from './dleq.ts';
import { encryptWithSharedSecretX, TAG_LENGTH } from './ecies.ts';
import { TkmsError } from './errors.ts';
import { deriveHandleFromDigest, type HandleDigestInput } from './handle.ts';
import { keyIdBytes } from './identifiers.ts';

/**
 * Binding K to its handle. A handle commits to (keyId, K, nonce, H(ciphertext), owner), but
 * that alone does not stop anyone from copying a victim's K into a NEW handle they own and
 * asking the nodes for K·sk as its "owner". So every handle carries a Schnorr proof that its
 * creator knows k with K = k·G, whose challenge binds the whole handle: only whoever ran the
 * ECIES encryption can make it, and it cannot be moved to another owner, key or ciphertext
 * (the labelled-ElGamal idea of TDH2). Nodes refuse a partial for a handle without a valid one.
 *
 * The ECIES bytes themselves (K, nonce, ciphertext ‖ tag) stay exactly the spec's.
 */
const PROOF_DOMAIN = utf8ToBytes('tkms/ephemeral-key-proof/v1');
const G_BYTES = encodePoint(G);
const NONCE_DOMAIN = utf8ToBytes('tkms/ephemeral-key-proof/nonce/v1');
export const EPHEMERAL_PROOF_LENGTH = 64;

function challenge(K: Uint8Array, R: Uint8Array, d: HandleDigestInput): bigint {
  return hashToScalar(PROOF_DOMAIN, G_BYTES, K, R, keyIdBytes(d.keyId), d.nonce, d.ciphertextHash, d.owner);
}

/** Proof (c ‖ s, 64 bytes) of knowledge of k = log_G(K), bound to the handle fields. */
export function proveEphemeralKey(k: bigint, d: HandleDigestInput): Uint8Array {
  let r = 0n;
  // Hedged nonce: a weak RNG alone cannot repeat r for two different handles.
  while (r === 0n) r = hashToScalar(NONCE_DOMAIN, encodeScalar(k), randomBytes(32), d.K, d.nonce, d.ciphertextHash, d.owner);
  const R = curveBackend().multiplyBaseSecret(r);
  const c = challenge(d.K, R, d);
  return concatBytes(encodeScalar(c), encodeScalar(mod(r + c * k)));
}

/** True when `proof` shows knowledge of log_G(K) for exactly these handle fields. Public inputs only; never throws. */
export function verifyEphemeralKeyProof(d: HandleDigestInput, proof: Uint8Array): boolean {
  if (!(proof instanceof Uint8Array) || proof.length !== EPHEMERAL_PROOF_LENGTH) return false;
  try {
    const c = decodeScalar(proof.subarray(0, 32), { allowZero: true });
    const s = decodeScalar(proof.subarray(32), { allowZero: true });
    const curve = curveBackend();
    if (!(d.K instanceof Uint8Array) || !curve.isValidPoint(d.K)) return false;
    const R = curve.linearCombination(s, [d.K], [mod(-c)]);
    return R !== null && challenge(d.K, R, d) === c;
  } catch {
    // A malformed scalar, key id or field cannot belong to a valid proof.
    return false;
  }
}

export interface SealedHandle extends HandleDigestInput {
  handle: Uint8Array;
  ciphertext: Uint8Array;
  /** Proof of the ephemeral key, bound to the handle. */
  kProof: Uint8Array;
}

/**
 * ECIES-encrypts to the network key and makes the handle and its K-binding proof in one
 * step, so the ephemeral secret k never leaves this function.
 */
export async function sealToHandle(input: { publicKey: Point; keyId: string; owner: Uint8Array; plaintext: Uint8Array }): Promise<SealedHandle> {
  if (input.publicKey.is0()) throw new TkmsError('bad_point', 'public key is the identity point');
  if (!(input.plaintext instanceof Uint8Array)) throw new TkmsError('bad_request', 'plaintext must be bytes');
  const k = randomScalar();
  const curve = curveBackend();
  const K = curve.multiplyBaseSecret(k);
  // The x-coordinate is bytes 1..33 of the compressed point.
  const shared = curve.multiplySecret(encodePoint(input.publicKey), k);
  const sharedX = shared.slice(1);
  shared.fill(0);
  let sealed: { nonce: Uint8Array; ciphertext: Uint8Array };
  try {
    sealed = await encryptWithSharedSecretX(sharedX, input.plaintext);
  } finally {
    sharedX.fill(0);
  }
  if (sealed.ciphertext.length < TAG_LENGTH) throw new TkmsError('internal', 'AES-GCM produced no tag');
  const digest: HandleDigestInput = { keyId: input.keyId, K, nonce: sealed.nonce, ciphertextHash: sha256(sealed.ciphertext), owner: input.owner };
  const handle = deriveHandleFromDigest(digest);
  return { ...digest, handle, ciphertext: sealed.ciphertext, kProof: proveEphemeralKey(k, digest) };
}
