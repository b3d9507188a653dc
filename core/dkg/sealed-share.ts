import { lengthPrefixed, utf8ToBytes } from '../bytes.ts';
import { mod, randomScalar } from '../curve.ts';
import { curveBackend } from '../curve-backend.ts';
import { hashToScalar, proveDleqIn, verifyDleqIn, type DleqDomain, type DleqProof } from '../dleq.ts';
import { u16 } from './context.ts';

/**
 * A share sealed to one complainer, so a justification can be published to every member without
 * publishing the share (ETHDKG-style: the pad comes from a Diffie–Hellman key that only the two
 * ends know, and a dispute reveals that one key with a DLEQ proof).
 *
 * The complainer puts a fresh key E = e·G per accused dealer in its signed complaints message
 * (one key per dealer: a proven K = e·D' for a D' that a faulty dealer derived from another
 * dealer's D, say D' = D + x·G, gives K − x·E = e·D, which opens that other answer only if it was
 * sealed to the same E; see session.ts for which answers a complainer opens). The dealer picks a
 * fresh d, publishes D = d·G and c = share + H(binding, D, K) mod n with K = d·E; the complainer
 * computes K = e·D. No AEAD: the commitments already tell the complainer whether what it opened
 * is its share, and the dealer's signature stops anyone else from altering c. When it is not,
 * the complainer publishes K with a proof that log_G(E) = log_D(K); anyone can then open c and
 * see the mismatch, and nobody can open it to anything else (K is fixed by E and D), so an
 * honest dealer cannot be framed. Revealing K exposes only this share, of a dealer that is
 * disqualified for it: the complainer proves a pair key only for the first answer it opens under a
 * key, and only the accused dealer's answers sealed to that key are opened.
 */
const PAD_DOMAIN = utf8ToBytes('tkms/dkg/v2/sealed-share/pad');
const PAIR_KEY_PROOF: DleqDomain = {
  challenge: utf8ToBytes('tkms/dkg/v2/sealed-share/pair-key/challenge'),
  nonce: utf8ToBytes('tkms/dkg/v2/sealed-share/pair-key/nonce'),
};

/** What a sealed share is bound to: the session, the (dealer, recipient) pair and the recipient's key. */
export interface SealBinding {
  /** What binds the sealing to one ceremony (its id, the key id: core/ceremony/dealing.ts). */
  context: Uint8Array;
  dealer: number;
  recipient: number;
  /** E, compressed and already validated. */
  recipientKey: Uint8Array;
}

function bindingBytes(b: SealBinding): Uint8Array {
  return lengthPrefixed(b.context, u16(b.dealer), u16(b.recipient), b.recipientKey);
}

function pad(b: SealBinding, ephemeralKey: Uint8Array, pairKey: Uint8Array): bigint {
  return hashToScalar(PAD_DOMAIN, bindingBytes(b), ephemeralKey, pairKey);
}

export interface SealedShare {
  ephemeralKey: Uint8Array;
  ciphertext: bigint;
}

export function sealShare(b: SealBinding, share: bigint): SealedShare {
  return sealShareWith(b, share, randomScalar());
}

/**
 * sealShare with the ephemeral scalar d given (1..n−1): for a dealer whose every value is derived
 * from a stored seed, so a restart seals byte-identical shares (core/ceremony). d must never seal
 * anything else.
 */
export function sealShareWith(b: SealBinding, share: bigint, d: bigint): SealedShare {
  const curve = curveBackend();
  const ephemeralKey = curve.multiplyBaseSecret(d);
  const pairKey = curve.multiplySecret(b.recipientKey, d);
  return { ephemeralKey, ciphertext: mod(share + pad(b, ephemeralKey, pairKey)) };
}

/** The recipient's side: whatever c opens to under its key (the caller checks it against the commitments). */
export function openShare(b: SealBinding, secretKey: bigint, sealed: SealedShare): bigint {
  const pairKey = curveBackend().multiplySecret(sealed.ephemeralKey, secretKey);
  return mod(sealed.ciphertext - pad(b, sealed.ephemeralKey, pairKey));
}

export interface ProvenPairKey {
  pairKey: Uint8Array;
  proof: DleqProof;
}

/** K = e·D and the proof that it is (log_G E = log_D K), for a sealed share that does not open to a valid share. */
export function provePairKey(b: SealBinding, secretKey: bigint, ephemeralKey: Uint8Array): ProvenPairKey {
  const pairKey = curveBackend().multiplySecret(ephemeralKey, secretKey);
  const proof = proveDleqIn(PAIR_KEY_PROOF, bindingBytes(b), secretKey, ephemeralKey, b.recipientKey, pairKey);
  return { pairKey, proof };
}

/** What a sealed share opens to under a proven pair key; undefined when the proof does not hold. Never throws. */
export function openWithProvenKey(b: SealBinding, sealed: SealedShare, proven: ProvenPairKey): bigint | undefined {
  if (!verifyDleqIn(PAIR_KEY_PROOF, bindingBytes(b), b.recipientKey, sealed.ephemeralKey, proven.pairKey, proven.proof)) return undefined;
  return openWithPairKey(b, sealed, proven.pairKey);
}

/**
 * What a sealed share opens to under a candidate pair key, proven or not: what anyone holding a
 * revealed (or derived) K can compute. The pad is bound to (session, dealer, recipient, E, D), so
 * a K opens only shares sealed by that dealer to that E with that D.
 */
export function openWithPairKey(b: SealBinding, sealed: SealedShare, pairKey: Uint8Array): bigint {
  return mod(sealed.ciphertext - pad(b, sealed.ephemeralKey, pairKey));
}
