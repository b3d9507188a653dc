import {
  combinePartials,
  decodeDleqProof,
  decodePoint,
  type DleqProof,
  isTkmsError,
  type Point,
  rsaOaepUnwrap,
  TkmsError,
  verifyDleq,
  xCoordinate,
} from '../core/index.ts';

/** One node's answer to a delegation request, as the client receives it. */
export interface WrappedPartial {
  nodeId: number;
  /** RSA-OAEP(requester key) of the 33-byte compressed P_i = K·share_i. */
  wrapped: Uint8Array;
  /** 64-byte DLEQ proof (c ‖ s); it proves nothing secret, so it travels in clear. */
  proof: Uint8Array;
}

export interface RecoverInput {
  keyId: string;
  requestId: Uint8Array;
  K: Point;
  t: number;
  /** Y_i = share_i·G for each node id, from the key's published DKG result. */
  verificationShares: ReadonlyMap<number, Point>;
  partials: readonly WrappedPartial[];
  rsaPrivateKey: CryptoKey;
}

export interface RejectedPartial {
  nodeId: number;
  code: string;
  reason: string;
}

export interface RecoveredSecret {
  /** x(K·sk): the HKDF input. The caller zeroes it when done. */
  sharedSecretX: Uint8Array;
  usedNodeIds: number[];
  rejected: RejectedPartial[];
}

/**
 * Unwraps each partial, checks its DLEQ proof against the node's verification share and
 * combines the first t that verify. A node whose partial fails is named, never trusted.
 */
export async function recoverSharedSecret(input: RecoverInput): Promise<RecoveredSecret> {
  const valid: { id: number; point: Point }[] = [];
  const rejected: RejectedPartial[] = [];
  const seen = new Set<number>();
  for (const part of input.partials) {
    if (valid.length === input.t) break;
    if (seen.has(part.nodeId)) {
      rejected.push({ nodeId: part.nodeId, code: 'bad_request', reason: 'duplicate answer from this node' });
      continue;
    }
    seen.add(part.nodeId);
    try {
      const Y = input.verificationShares.get(part.nodeId);
      if (!Y) throw new TkmsError('unknown_key', `node ${part.nodeId} has no verification share for key ${input.keyId}`);
      const proof: DleqProof = decodeDleqProof(part.proof);
      const point = decodePoint(await rsaOaepUnwrap(input.rsaPrivateKey, part.wrapped), `partial from node ${part.nodeId}`);
      const ctx = { keyId: input.keyId, nodeId: part.nodeId, requestId: input.requestId };
      if (!verifyDleq(ctx, Y, input.K, point, proof)) {
        throw new TkmsError('bad_proof', `partial from node ${part.nodeId} does not match its verification share`);
      }
      valid.push({ id: part.nodeId, point });
    } catch (err) {
      if (!isTkmsError(err)) throw err;
      rejected.push({ nodeId: part.nodeId, code: err.code, reason: err.message });
    }
  }
  if (valid.length < input.t) {
    const named = rejected.length ? `; rejected: ${rejected.map((r) => `node ${r.nodeId} (${r.code})`).join(', ')}` : '';
    throw new TkmsError(
      'insufficient_partials',
      `${valid.length} valid partials of the ${input.t} needed (${input.partials.length} answers)${named}`,
      { valid: valid.length, needed: input.t, rejected },
    );
  }
  return { sharedSecretX: xCoordinate(combinePartials(valid)), usedNodeIds: valid.map((v) => v.id), rejected };
}
