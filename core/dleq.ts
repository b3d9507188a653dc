import { sha512 } from '@noble/hashes/sha2.js';
import { bytesToNumberBE } from '@noble/curves/utils.js';
import { concatBytes, lengthPrefixed, randomBytes, utf8ToBytes } from './bytes.ts';
import { CURVE_ORDER, decodeScalar, encodePoint, encodeScalar, G, mod } from './curve.ts';
import { curveBackend } from './curve-backend.ts';
import { TkmsError } from './errors.ts';
import { keyIdBytes, REQUEST_ID_LENGTH } from './identifiers.ts';
import { assertParticipantId } from './shamir.ts';

/**
 * Chaum-Pedersen proof that log_G(Y) = log_K(P): the partial P = K·share was made with
 * the same share whose public image Y = share·G the DKG published for that node.
 * Fiat-Shamir challenge binds key id, node id, request id, K and every point, so a proof
 * cannot be replayed for another request, node or key.
 */
const CHALLENGE_DOMAIN = utf8ToBytes('tkms/dleq/challenge/v1');
const NONCE_DOMAIN = utf8ToBytes('tkms/dleq/nonce/v1');
export const DLEQ_PROOF_LENGTH = 64;
const G_BYTES = encodePoint(G);

export interface DleqContext {
  keyId: string;
  nodeId: number;
  requestId: Uint8Array;
}

function contextBytes(ctx: DleqContext): Uint8Array {
  assertParticipantId(ctx.nodeId);
  if (!(ctx.requestId instanceof Uint8Array) || ctx.requestId.length !== REQUEST_ID_LENGTH) {
    throw new TkmsError('bad_length', `request id must be ${REQUEST_ID_LENGTH} bytes`);
  }
  const node = new Uint8Array(4);
  new DataView(node.buffer).setUint32(0, ctx.nodeId, false);
  return lengthPrefixed(keyIdBytes(ctx.keyId), node, ctx.requestId);
}

/** SHA-512 then reduce: 512 bits mod a 256-bit order leaves a bias below 2^-256. */
export function hashToScalar(...parts: Uint8Array[]): bigint {
  return mod(bytesToNumberBE(sha512(lengthPrefixed(...parts))));
}

/**
 * The hash domains of one use of the proof. Each use has its own, so a proof made for one
 * purpose (a decryption partial, a DKG pair key) never verifies as another.
 */
export interface DleqDomain {
  challenge: Uint8Array;
  nonce: Uint8Array;
}
const PARTIAL_DOMAIN: DleqDomain = { challenge: CHALLENGE_DOMAIN, nonce: NONCE_DOMAIN };

/** All points as 33-byte compressed encodings, exactly as they travel. */
function challenge(domain: DleqDomain, ctx: Uint8Array, Y: Uint8Array, K: Uint8Array, P: Uint8Array, A1: Uint8Array, A2: Uint8Array): bigint {
  return hashToScalar(domain.challenge, ctx, G_BYTES, Y, K, P, A1, A2);
}

export interface DleqProof {
  c: bigint;
  s: bigint;
}

/**
 * Proves log_G(Y) = log_K(P) for the secret `share` (points compressed, already validated).
 * The nonce is hedged: derived from the share, the full public statement and 32 fresh random
 * bytes, so neither a weak RNG nor a repeated request can repeat a nonce across different
 * statements. Both multiplications by the nonce go through the backend's constant-time path.
 */
export function proveDleq(ctx: DleqContext, share: bigint, K: Uint8Array, Y: Uint8Array, P: Uint8Array): DleqProof {
  return proveDleqIn(PARTIAL_DOMAIN, contextBytes(ctx), share, K, Y, P);
}

/** `proveDleq` for another use: its own hash domains and context bytes. */
export function proveDleqIn(domain: DleqDomain, context: Uint8Array, share: bigint, K: Uint8Array, Y: Uint8Array, P: Uint8Array): DleqProof {
  const curve = curveBackend();
  let r = 0n;
  while (r === 0n) {
    r = hashToScalar(domain.nonce, encodeScalar(share), randomBytes(32), context, K, P);
  }
  const A1 = curve.multiplyBaseSecret(r);
  const A2 = curve.multiplySecret(K, r);
  const c = challenge(domain, context, Y, K, P, A1, A2);
  const s = mod(r + c * share);
  return { c, s };
}

/**
 * Checks a proof; all inputs are public, so variable-time arithmetic is fine. Never throws:
 * whatever is wrong with a proof or its points, the answer is false.
 */
export function verifyDleq(ctx: DleqContext, Y: Uint8Array, K: Uint8Array, P: Uint8Array, proof: DleqProof): boolean {
  let context: Uint8Array;
  try {
    context = contextBytes(ctx);
  } catch {
    return false;
  }
  return verifyDleqIn(PARTIAL_DOMAIN, context, Y, K, P, proof);
}

/** `verifyDleq` for another use (see proveDleqIn). Never throws. */
export function verifyDleqIn(domain: DleqDomain, context: Uint8Array, Y: Uint8Array, K: Uint8Array, P: Uint8Array, proof: DleqProof): boolean {
  const inRange = (v: unknown): boolean => typeof v === 'bigint' && v >= 0n && v < CURVE_ORDER;
  if (!inRange(proof?.c) || !inRange(proof?.s)) return false;
  try {
    const curve = curveBackend();
    const negC = mod(-proof.c);
    // An honest prover's A1 = r·G and A2 = r·K are never the identity (null here).
    const A1 = curve.linearCombination(proof.s, [Y], [negC]);
    const A2 = curve.linearCombination(0n, [K, P], [proof.s, negC]);
    if (A1 === null || A2 === null) return false;
    return challenge(domain, context, Y, K, P, A1, A2) === proof.c;
  } catch {
    return false;
  }
}

export function encodeDleqProof(proof: DleqProof): Uint8Array {
  return concatBytes(encodeScalar(proof.c), encodeScalar(proof.s));
}

export function decodeDleqProof(bytes: Uint8Array): DleqProof {
  if (!(bytes instanceof Uint8Array) || bytes.length !== DLEQ_PROOF_LENGTH) {
    throw new TkmsError('bad_length', `DLEQ proof must be ${DLEQ_PROOF_LENGTH} bytes`);
  }
  return {
    c: decodeScalar(bytes.subarray(0, 32), { name: 'proof challenge', allowZero: true }),
    s: decodeScalar(bytes.subarray(32, 64), { name: 'proof response', allowZero: true }),
  };
}

export interface ProvenPartial {
  /** P_i = K·share_i, compressed. */
  partial: Uint8Array;
  proof: DleqProof;
}

/**
 * What a node computes for one request: P_i = K·share_i and the proof tying it to Y_i.
 * Y_i is passed in (the node has it from the DKG result) to avoid a second secret multiplication.
 * Three constant-time multiplications in all: K·share, r·G and r·K.
 */
export function computeProvenPartial(ctx: DleqContext, share: bigint, verificationShare: Uint8Array, K: Uint8Array): ProvenPartial {
  const partial = curveBackend().multiplySecret(K, share);
  return { partial, proof: proveDleq(ctx, share, K, verificationShare, partial) };
}
