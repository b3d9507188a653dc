import { ed25519 } from '@noble/curves/ed25519.js';
import { schnorr } from '@noble/curves/secp256k1.js';
import { bytesToNumberLE, numberToBytesLE } from '@noble/curves/utils.js';
import { sha256, sha512 } from '@noble/hashes/sha2.js';
import { concatBytes, equalBytes, lengthPrefixed, utf8ToBytes } from '../bytes.ts';
import { encodeScalar, mod } from '../curve.ts';
import { curveBackend } from '../curve-backend.ts';
import { ed25519Group, secp256k1Group, type Group, type GroupPoint } from '../group.ts';
import { openShare, openWithProvenKey, provePairKey, sealShareWith, type SealBinding } from '../dkg/sealed-share.ts';
import { hashToScalar, type DleqProof } from '../dleq.ts';
import { keyIdBytes } from '../identifiers.ts';
import { evaluatePolynomial } from '../shamir.ts';
import type { KeyDealing } from './codec.ts';
import { deriveBytes, deriveScalar, deriveScalarIn, u16Bytes } from './derive.ts';

/**
 * The dealing math of one dealer for one key (README "Construction"): a polynomial of degree
 * t′ − 1 through the dealer's constant term (its old share in a reshare, a fresh secret in a DKG),
 * its Feldman commitments, sub-shares sealed to the arriving members' receiver keys, and the checks
 * every participant runs on what others dealt.
 *
 * Each sealing key D comes with a BIP340 proof that the dealer knows d: a receiver that complains
 * reveals K = e·D, and without the proof a dealer could publish D′ = D_j + x·G for another dealer's
 * D_j, so that K′ − x·E opened j's sub-share to everyone. A DKG dealer proves d and its a_0 in one
 * proof (dealerKeysCoefficient).
 *
 * Keys of another group (core/group.ts; ed25519 for FROST signing) have their polynomial, Feldman
 * commitments and A_0 in that group; everything that carries the sub-shares (receiver keys E, sealing
 * keys D, the sealed c, complaints with their DLEQ proofs) stays secp256k1 for every key. A sub-share
 * of ed25519 is < ℓ < n, so it seals and opens mod n unchanged, and one that opens to a value ≥ ℓ is a
 * bad sub-share like any other. A DKG dealer of such a key cannot fold a_0 and d into one proof (two
 * groups), so it gives two over the same message (bound to A_0 and D): BIP340 for d and an Ed25519
 * signature under A_0 made with a_0 itself as the secret scalar, checked by noble's RFC 8032 verifier.
 */
const SEAL_CONTEXT_DOMAIN = utf8ToBytes('tkms/ceremony/v1/seal');
const EPHEMERAL_PROOF_DOMAIN = utf8ToBytes('tkms/ceremony/v1/ephemeral-key');
const DEALER_KEYS_PROOF_DOMAIN = utf8ToBytes('tkms/ceremony/v1/dkg-dealer-keys');
const DEALER_KEYS_COEFFICIENT_DOMAIN = utf8ToBytes('tkms/ceremony/v1/dkg-dealer-keys-coefficient');

export function sealContext(proposalId: Uint8Array, keyId: string): Uint8Array {
  return lengthPrefixed(SEAL_CONTEXT_DOMAIN, proposalId, keyIdBytes(keyId));
}

export function sealBinding(proposalId: Uint8Array, keyId: string, dealer: number, recipient: number, receiverKey: Uint8Array): SealBinding {
  return { context: sealContext(proposalId, keyId), dealer, recipient, recipientKey: receiverKey };
}

function ephemeralProofMessage(proposalId: Uint8Array, keyId: string, dealer: number, ephemeralKey: Uint8Array): Uint8Array {
  return sha256(lengthPrefixed(EPHEMERAL_PROOF_DOMAIN, proposalId, keyIdBytes(keyId), u16Bytes(dealer), ephemeralKey));
}

/**
 * What a DKG dealer's one proof signs: bound to the ceremony, the key, the dealer, A_0 and D, so a
 * dealer cannot replay another's A_0 or D with its proof (the rogue-key attack: A_0 = X − Σ others'
 * A_0 with no known logarithm; or D′ = D_j + x·G, above), and the proof of one ceremony is worthless
 * in another.
 */
function dealerKeysMessage(proposalId: Uint8Array, keyId: string, dealer: number, constantCommitment: Uint8Array, ephemeralKey: Uint8Array): Uint8Array {
  return sha256(lengthPrefixed(DEALER_KEYS_PROOF_DOMAIN, proposalId, keyIdBytes(keyId), u16Bytes(dealer), constantCommitment, ephemeralKey));
}

/**
 * c in P = A_0 + c·D: a DKG dealer proves it knows log P = a_0 + c·d with one BIP340 proof instead
 * of one for A_0 and one for D. c is a hash of both points, fixed before the proof's nonce, so an
 * extractor that rewinds the dealer to another c gets two values of a_0 + c·d and solves for a_0 and
 * d: a proof of knowledge of both (the key aggregation of MuSig, Maxwell et al. 2019, with the
 * dealer holding both keys). Each member checks n − 1 dealings, and the BIP340 check is most of a
 * DKG's CPU: one per dealing instead of two.
 */
function dealerKeysCoefficient(message: Uint8Array): bigint {
  return hashToScalar(DEALER_KEYS_COEFFICIENT_DOMAIN, message);
}

/** The arriving member's receiver key e_m (its hello carries E_m = e_m·G). */
export function receiverSecret(seed: Uint8Array, proposalId: Uint8Array, toId: number): bigint {
  return deriveScalar(seed, proposalId, 'receiver', u16Bytes(toId));
}

export interface DealInput {
  /** The key's group (default secp256k1). */
  group?: Group;
  seed: Uint8Array;
  proposalId: Uint8Array;
  keyId: string;
  dealer: number;
  /** g(0): the dealer's old share (reshare) or its fresh secret a_0 (DKG). */
  constantTerm: bigint;
  tTo: number;
  /** Present recipients: to-id and receiver key, in to.members order. */
  recipients: { id: number; receiverKey: Uint8Array }[];
  /** DKG: publish a proof of knowledge of the constant term (a reshare's A_0 is checked against Y_j instead). */
  proveConstantTerm?: boolean;
  /** Test faults: another polynomial (equivocation), a proof of knowledge that fails, wrong sub-shares to these ids. */
  variant?: number;
  badConstantProof?: boolean;
  badSubShareTo?: readonly number[];
}

/**
 * An Ed25519 signature (RFC 8032's equation, so noble's verifier checks it) made with a_0 as the
 * secret scalar rather than from a seed: proof of knowledge of log A_0. The nonce is derived from the
 * seed and the message, so a restart signs the same bytes and no nonce serves two messages.
 */
function signWithScalar(seed: Uint8Array, proposalId: Uint8Array, tag: Uint8Array[], secret: bigint, publicKey: Uint8Array, message: Uint8Array): Uint8Array {
  const group = ed25519.Point.Fn;
  const nonce = deriveScalarIn(ed25519Group, seed, proposalId, 'dealer-constant-proof', ...tag, message);
  const r = ed25519.Point.BASE.multiply(nonce).toBytes();
  const challenge = group.create(bytesToNumberLE(sha512(concatBytes(r, publicKey, message))));
  return concatBytes(r, numberToBytesLE(group.create(nonce + challenge * secret), 32));
}

function provesConstantTerm(proof: Uint8Array | undefined, message: Uint8Array, constantCommitment: Uint8Array): boolean {
  if (proof === undefined) return false;
  try {
    // zip215 false: RFC 8032's strict rule (canonical R and A, s < ℓ); A_0 passed the group's decoder.
    return ed25519.verify(proof, message, constantCommitment, { zip215: false });
  } catch {
    return false;
  }
}

export function dealKey(input: DealInput): KeyDealing {
  const { seed, proposalId, keyId, dealer } = input;
  const group = input.group ?? secp256k1Group;
  const curve = curveBackend();
  // secp256k1 keeps the backend (libsecp256k1 where it loads): the same bytes, faster.
  const multiplyBase = group.name === 'secp256k1' ? (a: bigint) => curve.multiplyBaseSecret(a) : (a: bigint) => group.multiplyBaseSecret(a);
  const tag = [keyIdBytes(keyId), u16Bytes(dealer), Uint8Array.of(input.variant ?? 0)];
  const coefficients = [input.constantTerm];
  for (let k = 1; k < input.tTo; k++) coefficients.push(deriveScalarIn(group, seed, proposalId, 'polynomial', ...tag, u16Bytes(k)));
  const commitments = coefficients.map(multiplyBase);
  const d = deriveScalar(seed, proposalId, 'seal', ...tag);
  const ephemeralKey = curve.multiplyBaseSecret(d);
  let proof: Uint8Array;
  let constantProof: Uint8Array | undefined;
  if (input.proveConstantTerm === true && group.name !== 'secp256k1') {
    const signed = dealerKeysMessage(proposalId, keyId, dealer, commitments[0]!, ephemeralKey);
    proof = schnorr.sign(signed, encodeScalar(d), deriveBytes(seed, proposalId, 'dealer-keys-proof', ...tag));
    constantProof = signWithScalar(seed, proposalId, tag, coefficients[0]!, commitments[0]!, input.badConstantProof === true ? sha256(signed) : signed);
  } else if (input.proveConstantTerm === true) {
    const signed = dealerKeysMessage(proposalId, keyId, dealer, commitments[0]!, ephemeralKey);
    const joint = mod(coefficients[0]! + dealerKeysCoefficient(signed) * d);
    // A proof under another message verifies under nothing it is checked against: the bad-proof fault.
    proof = schnorr.sign(input.badConstantProof === true ? sha256(signed) : signed, encodeScalar(joint), deriveBytes(seed, proposalId, 'dealer-keys-proof', ...tag));
  } else {
    proof = schnorr.sign(ephemeralProofMessage(proposalId, keyId, dealer, ephemeralKey), encodeScalar(d), deriveBytes(seed, proposalId, 'seal-proof', ...tag));
  }
  const bad = new Set(input.badSubShareTo ?? []);
  const ciphertexts = input.recipients.map((r) => {
    const value = evaluatePolynomial(coefficients, BigInt(r.id), group.Fn);
    const sealed = sealShareWith(sealBinding(proposalId, keyId, dealer, r.id, r.receiverKey), bad.has(r.id) ? group.mod(value + 1n) : value, d);
    return sealed.ciphertext;
  });
  return { commitments, ephemeralKey, proof, ...(constantProof === undefined ? {} : { constantProof }), ciphertexts };
}

/** BIP340 over x-only keys: a proof for ±P, and knowing the logarithm of −P is knowing that of P. */
function provesKnowledge(proof: Uint8Array, message: Uint8Array, point: Uint8Array): boolean {
  try {
    return schnorr.verify(proof, message, point.subarray(1));
  } catch {
    return false;
  }
}

/** Public checks of one key's reshare dealing: the constant term is the dealer's old Y_j and the dealer knows d. */
export function keyDealingIsValid(proposalId: Uint8Array, keyId: string, dealer: number, dealing: KeyDealing, oldVerificationShare: Uint8Array | undefined): boolean {
  if (oldVerificationShare === undefined || !equalBytes(dealing.commitments[0]!, oldVerificationShare)) return false;
  return provesKnowledge(dealing.proof, ephemeralProofMessage(proposalId, keyId, dealer, dealing.ephemeralKey), dealing.ephemeralKey);
}

/**
 * Public checks of one key's DKG dealing: the dealer knows a_0 for A_0 and d for D (one proof under
 * A_0 + c·D; for a key of another group, one proof each over the same message).
 */
export function dkgKeyDealingIsValid(proposalId: Uint8Array, keyId: string, dealer: number, dealing: KeyDealing, group: Group = secp256k1Group): boolean {
  const signed = dealerKeysMessage(proposalId, keyId, dealer, dealing.commitments[0]!, dealing.ephemeralKey);
  if (group.name !== 'secp256k1') return provesKnowledge(dealing.proof, signed, dealing.ephemeralKey) && provesConstantTerm(dealing.constantProof, signed, dealing.commitments[0]!);
  if (dealing.constantProof !== undefined) return false;
  const joint = curveBackend().linearCombination(0n, [dealing.commitments[0]!, dealing.ephemeralKey], [1n, dealerKeysCoefficient(signed)]);
  return joint !== null && provesKnowledge(dealing.proof, signed, joint);
}

/**
 * x·P for a member id x (1..65535) and a public P, by double-and-add from the top bit in projective
 * coordinates: a few doublings, where noble's multiplyUnsafe first builds a window table for P.
 */
function multiplyById<P extends GroupPoint>(point: P, x: number): P {
  let acc = point;
  for (let bit = 30 - Math.clz32(x); bit >= 0; bit--) {
    acc = acc.double();
    if ((x >>> bit) & 1) acc = acc.add(point);
  }
  return acc;
}

/**
 * Σ_k A_k·x^k, the public image of g(x), by Horner's rule: x is a member id (16 bits), so each step
 * is a short variable-time multiplication of public points. Undefined for the identity.
 */
export function commitmentAt<P extends GroupPoint>(commitments: readonly P[], x: number): P | undefined {
  const isId = Number.isInteger(x) && x >= 1 && x <= 0xffff;
  const times = isId ? (p: P): P => multiplyById(p, x) : (p: P): P => p.multiplyUnsafe(BigInt(x));
  let acc = commitments[commitments.length - 1]!;
  for (let k = commitments.length - 2; k >= 0; k--) acc = times(acc).add(commitments[k]!);
  return acc.is0() ? undefined : acc;
}

export function commitmentPoints(dealing: KeyDealing, group: Group = secp256k1Group): GroupPoint[] {
  return dealing.commitmentPoints ?? dealing.commitments.map((c) => group.decodePoint(c, 'commitment'));
}

/** The recipient opens its sub-share; undefined when it does not match the commitments (then it complains). */
export function openSubShare(proposalId: Uint8Array, keyId: string, dealer: number, recipient: number, receiverKey: Uint8Array, secret: bigint, dealing: KeyDealing, ciphertext: bigint, group: Group = secp256k1Group): bigint | undefined {
  const value = openShare(sealBinding(proposalId, keyId, dealer, recipient, receiverKey), secret, { ephemeralKey: dealing.ephemeralKey, ciphertext });
  // Sealing is mod n: a value of a smaller group's range opened to ≥ its order is no sub-share.
  if (value === 0n || value >= group.order) return undefined;
  const expected = commitmentAt(commitmentPoints(dealing, group), recipient);
  const image = group.name === 'secp256k1' ? curveBackend().multiplyBaseSecret(value) : group.multiplyBaseSecret(value);
  if (expected === undefined || !equalBytes(image, group.encodePoint(expected))) return undefined;
  return value;
}

export function proveComplaint(proposalId: Uint8Array, keyId: string, dealer: number, recipient: number, receiverKey: Uint8Array, secret: bigint, dealing: KeyDealing): { pairKey: Uint8Array; proof: DleqProof } {
  return provePairKey(sealBinding(proposalId, keyId, dealer, recipient, receiverKey), secret, dealing.ephemeralKey);
}

/**
 * Whether a complaint proves the sub-share bad: the pair key is proven for the receiver key the
 * dealing names, and what it opens does not match the commitments. Public; never throws.
 */
export function complaintHolds(proposalId: Uint8Array, keyId: string, dealer: number, recipient: number, receiverKey: Uint8Array, dealing: KeyDealing, ciphertext: bigint, pairKey: Uint8Array, proof: DleqProof, group: Group = secp256k1Group): boolean {
  const opened = openWithProvenKey(sealBinding(proposalId, keyId, dealer, recipient, receiverKey), { ephemeralKey: dealing.ephemeralKey, ciphertext }, { pairKey, proof });
  if (opened === undefined) return false;
  const expected = commitmentAt(commitmentPoints(dealing, group), recipient);
  if (expected === undefined || opened === 0n || opened >= group.order) return true;
  // The opened value is public now (the dealer is out for it): a variable-time check is fine.
  return !group.base.multiplyUnsafe(opened).equals(expected);
}
