import { createFROST } from '@noble/curves/abstract/frost.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import { sha512 } from '@noble/hashes/sha2.js';
import { Ed25519FrostPoint, isValidEd25519Element, precomputeEd25519GroupKey } from './validated-points.ts';
import { schnorr, schnorr_FROST, secp256k1 } from '@noble/curves/secp256k1.js';
import type { FROST, FrostPublic, FrostSecret } from '@noble/curves/abstract/frost.js';
import { concatBytes } from '@noble/hashes/utils.js';
import { TkmsError } from '../errors.ts';
import { encodeEd25519Spki, encodePublicKeySpki } from '../spki.ts';
import type { KeySpec, KeyUsage } from '../keys/key-model.ts';

/**
 * The two FROST ciphersuites tkms signs with, and the one place that turns a key's DKG output (group
 * key, one verification share per member, this node's Shamir share) into noble's FROST packages.
 *
 * - `ed25519`: RFC 9591 FROST(Ed25519, SHA-512). Signatures are plain RFC 8032 Ed25519 signatures
 *   under the group key.
 * - `bip340`: FROST(secp256k1, SHA-256, Taproot). The DKG's group key is the Taproot internal key P;
 *   signatures verify under the output key Q = P_even + H_TapTweak(x(P))·G (BIP341 key path with no
 *   script tree), which is what a P2TR address commits to. The tweak is public, so it is applied to
 *   every verification share and, by each node, to its own share (adding a constant to every share
 *   adds it to the secret, since Lagrange coefficients sum to one).
 *
 * FROST identifiers are our member ids: our Shamir shares are evaluations at x = member id.
 */
export const SIGNING_SUITES = ['ed25519', 'bip340'] as const;
export type SigningSuite = (typeof SIGNING_SUITES)[number];

export const SIGNATURE_LENGTH = 64;
/** Bytes of a suite's signing public key as verifiers take it: Ed25519 raw, BIP340 x-only. */
export const SIGNING_PUBLIC_KEY_LENGTH = 32;

/**
 * RFC 9591 FROST(Ed25519, SHA-512) as noble's ed25519_FROST declares it, with two changes to what it
 * costs, not to what it computes: no validatePoint hook (it repeats the subgroup check createFROST
 * already makes of every point it parses), and points whose encodings passed that check before are
 * not checked again (core/signing/validated-points.ts). The check is most of a signature's cost. Same
 * ciphersuite, same bytes (test/unit/signing-suites.test.ts compares the two).
 */
export const ED25519_FROST: FROST = createFROST({ name: 'FROST-ED25519-SHA512-v1', Point: Ed25519FrostPoint as unknown as typeof ed25519.Point, hash: sha512, H2: '' });

const FROSTS: Record<SigningSuite, FROST> = { ed25519: ED25519_FROST, bip340: schnorr_FROST };

export function frostOf(suite: SigningSuite): FROST {
  return FROSTS[suite];
}

/** The suite a key signs with; key_usage_mismatch for a key that does not sign. */
export function suiteOfKey(keyId: string, spec: KeySpec, usage: KeyUsage): SigningSuite {
  if (usage !== 'SIGN_VERIFY') throw new TkmsError('key_usage_mismatch', `key ${keyId} is an ${usage} key: it does not sign`);
  return spec === 'ECC_NIST_EDWARDS25519' ? 'ed25519' : 'bip340';
}

/** The public half of a signing key's DKG output. Points as the DKG result encodes them (ed25519: 32 bytes; secp256k1: 33-byte compressed). */
export interface SigningKeyShares {
  suite: SigningSuite;
  t: number;
  n: number;
  groupPublicKey: Uint8Array;
  verificationShares: ReadonlyMap<number, Uint8Array>;
}

export function frostIdentifier(suite: SigningSuite, memberId: number): string {
  return frostOf(suite).Identifier.fromNumber(memberId);
}

/**
 * Whether `bytes` is a valid FROST element of the suite (RFC 9591 DeserializeElement: the suite's
 * encoding, on the curve, not the identity, in the prime-order subgroup). Checked as commitments
 * arrive, so a member that hands out garbage is named then, not discovered by a failed signature.
 */
export function isValidElement(suite: SigningSuite, bytes: Uint8Array): boolean {
  if (suite === 'ed25519') return isValidEd25519Element(bytes);
  if (bytes.length !== 33 || (bytes[0] !== 0x02 && bytes[0] !== 0x03)) return false;
  try {
    secp256k1.Point.fromBytes(bytes).assertValidity();
    return true;
  } catch {
    return false;
  }
}

/** The member id of a FROST identifier among `members`, or undefined. */
export function memberOfIdentifier(suite: SigningSuite, identifier: string, members: Iterable<number>): number | undefined {
  for (const id of members) if (frostIdentifier(suite, id) === identifier) return id;
  return undefined;
}

/** BIP341 TapTweak with no script tree: t = H_TapTweak(x(P)). */
function tapTweak(internalKey: Uint8Array): bigint {
  const P = secp256k1.Point.fromBytes(internalKey);
  const x = P.toBytes(true).subarray(1);
  const t = secp256k1.Point.Fn.fromBytes(schnorr.utils.taggedHash('TapTweak', x));
  return t;
}

/** noble's FROST packages take ArrayBuffer-backed bytes; a copy is one. */
const own = (bytes: Uint8Array): Uint8Array<ArrayBuffer> => new Uint8Array(bytes);

const hasEvenY = (compressed: Uint8Array): boolean => compressed[0] === 0x02;

/** P ↦ P_even + t·G, the BIP341 output-key map applied to each public point of the key. */
function tweakPoint(point: Uint8Array, evenGroup: boolean, t: bigint): Uint8Array<ArrayBuffer> {
  const P = secp256k1.Point.fromBytes(point);
  return (evenGroup ? P : P.negate()).add(secp256k1.Point.BASE.multiply(t)).toBytes(true);
}

/** The FROST public package a coordinator verifies shares and aggregates with (Taproot-tweaked for bip340). */
export function frostPublic(key: SigningKeyShares): FrostPublic {
  const verifyingShares: Record<string, Uint8Array<ArrayBuffer>> = {};
  if (key.suite === 'ed25519') {
    // Checked once per process (then remembered): FROST parses the group key at every step.
    if (!isValidEd25519Element(key.groupPublicKey)) throw new TkmsError('bad_point', 'the group key is not an Ed25519 element');
    precomputeEd25519GroupKey(key.groupPublicKey);
    for (const [id, Y] of key.verificationShares) {
      if (!isValidEd25519Element(Y)) throw new TkmsError('bad_point', `Y_${id} is not an Ed25519 element`);
      verifyingShares[frostIdentifier('ed25519', id)] = own(Y);
    }
    return { signers: { min: key.t, max: key.n }, commitments: [own(key.groupPublicKey)], verifyingShares };
  }
  const even = hasEvenY(key.groupPublicKey);
  const t = tapTweak(key.groupPublicKey);
  for (const [id, Y] of key.verificationShares) verifyingShares[frostIdentifier('bip340', id)] = tweakPoint(Y, even, t);
  return { signers: { min: key.t, max: key.n }, commitments: [tweakPoint(key.groupPublicKey, even, t)], verifyingShares };
}

/** A node's own FROST secret package from its Shamir share (Taproot-tweaked for bip340). */
export function frostSecret(key: SigningKeyShares, memberId: number, share: bigint): FrostSecret {
  const Fn = frostOf(key.suite).utils.Fn;
  let s = Fn.create(share);
  if (key.suite === 'bip340') {
    if (!hasEvenY(key.groupPublicKey)) s = Fn.neg(s);
    s = Fn.add(s, tapTweak(key.groupPublicKey));
  }
  return { identifier: frostIdentifier(key.suite, memberId), signingShare: own(Fn.toBytes(s)) };
}

/** The key verifiers check signatures with: Ed25519 raw 32 bytes, or the BIP340 x-only Taproot output key. */
export function signingPublicKey(key: Pick<SigningKeyShares, 'suite' | 'groupPublicKey'>): Uint8Array {
  if (key.suite === 'ed25519') return key.groupPublicKey.slice();
  const t = tapTweak(key.groupPublicKey);
  return tweakPoint(key.groupPublicKey, hasEvenY(key.groupPublicKey), t).subarray(1);
}

/** The BIP340 x-only internal key (what a P2TR address is built from, with the tweak applied by the address code). */
export function taprootInternalKey(groupPublicKey: Uint8Array): Uint8Array {
  return secp256k1.Point.fromBytes(groupPublicKey).toBytes(true).subarray(1);
}

/**
 * Verifies a finished signature with the suite's plain verifier (not the FROST code path):
 * RFC 8032 Ed25519 (noble, ZIP-215 off: strict encodings), or BIP340.
 */
export function verifySignature(suite: SigningSuite, signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean {
  if (signature.length !== SIGNATURE_LENGTH || publicKey.length !== SIGNING_PUBLIC_KEY_LENGTH) return false;
  try {
    return suite === 'ed25519' ? ed25519.verify(signature, message, publicKey, { zip215: false }) : schnorr.verify(signature, message, publicKey);
  } catch {
    return false;
  }
}

/** Signing algorithm names as the API shows them (AWS's for Ed25519). */
export const SIGNING_ALGORITHMS: Record<SigningSuite, string> = { ed25519: 'ED25519_SHA_512', bip340: 'BIP340_SCHNORR_TAPROOT' };

export interface SigningKeyDescription {
  algorithm: string;
  /** 32 bytes: what verifiers take (Ed25519 raw, or the BIP340 x-only Taproot output key). */
  publicKey: Uint8Array;
  /** DER SubjectPublicKeyInfo of the same key (BIP340: the output key as an even-y secp256k1 point). */
  spki: Uint8Array;
  /** bip340 only: the x-only internal key, from which a P2TR address is built. */
  taprootInternalKey?: Uint8Array;
}

export function describeSigningKey(suite: SigningSuite, groupPublicKey: Uint8Array): SigningKeyDescription {
  const publicKey = signingPublicKey({ suite, groupPublicKey });
  if (suite === 'ed25519') return { algorithm: SIGNING_ALGORITHMS.ed25519, publicKey, spki: encodeEd25519Spki(publicKey) };
  const evenOutputKey = secp256k1.Point.fromBytes(concatBytes(Uint8Array.of(0x02), publicKey));
  return { algorithm: SIGNING_ALGORITHMS.bip340, publicKey, spki: encodePublicKeySpki(evenOutputKey), taprootInternalKey: taprootInternalKey(groupPublicKey) };
}
