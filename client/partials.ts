import {
  assertPointBytes,
  combinePartials,
  decodeDleqProof,
  type DleqProof,
  isTkmsError,
  rsaOaepUnwrap,
  TkmsError,
  verifyDleq,
} from '../core/index.ts';
import { combineDerivedPartials } from '../core/keys/derive.ts';

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
  /** The handle's K, compressed and validated. */
  K: Uint8Array;
  t: number;
  /** Y_i = share_i·G (compressed, validated) for each node id, from the key's published DKG result. */
  verificationShares: ReadonlyMap<number, Uint8Array>;
  partials: readonly WrappedPartial[];
  rsaPrivateKey: CryptoKey;
  /**
   * For a derived key, its public tweak τ (deriveKeyTweak): the partials are the root's, checked
   * against the root's Y_i, and the combination adds τ·K. Absent for a DKG key.
   */
  tweak?: bigint;
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

/** Unwraps one node's partial and checks its proof; any failure is a typed error naming the node. */
async function openPartial(input: RecoverInput, part: WrappedPartial): Promise<Uint8Array> {
  const Y = input.verificationShares.get(part.nodeId);
  if (!Y) throw new TkmsError('unknown_key', `node ${part.nodeId} has no verification share for key ${input.keyId}`);
  const proof: DleqProof = decodeDleqProof(part.proof);
  const point = await rsaOaepUnwrap(input.rsaPrivateKey, part.wrapped);
  assertPointBytes(point, `partial from node ${part.nodeId}`);
  const ctx = { keyId: input.keyId, nodeId: part.nodeId, requestId: input.requestId };
  if (!verifyDleq(ctx, Y, input.K, point, proof)) {
    throw new TkmsError('bad_proof', `partial from node ${part.nodeId} does not match its verification share`);
  }
  return point;
}

/**
 * Unwraps each partial, checks its DLEQ proof against the node's verification share and
 * combines the first t that verify. A node whose partial fails is named, never trusted.
 * Partials are opened in rounds of as many as are still missing, so the RSA decryptions of
 * one round run concurrently (WebCrypto is asynchronous) and no more are opened than needed.
 */
export async function recoverSharedSecret(input: RecoverInput): Promise<RecoveredSecret> {
  const valid: { id: number; point: Uint8Array }[] = [];
  const rejected: RejectedPartial[] = [];
  const seen = new Set<number>();
  const queue = [...input.partials];
  while (valid.length < input.t && queue.length > 0) {
    const round: WrappedPartial[] = [];
    while (round.length < input.t - valid.length && queue.length > 0) {
      const part = queue.shift()!;
      if (seen.has(part.nodeId)) {
        rejected.push({ nodeId: part.nodeId, code: 'bad_request', reason: 'duplicate answer from this node' });
        continue;
      }
      seen.add(part.nodeId);
      round.push(part);
    }
    const opened = await Promise.allSettled(round.map((part) => openPartial(input, part)));
    opened.forEach((result, i) => {
      const nodeId = round[i]!.nodeId;
      if (result.status === 'fulfilled') {
        valid.push({ id: nodeId, point: result.value });
        return;
      }
      const err: unknown = result.reason;
      if (!isTkmsError(err)) throw err;
      rejected.push({ nodeId, code: err.code, reason: err.message });
    });
  }
  if (valid.length < input.t) {
    const named = rejected.length ? `; rejected: ${rejected.map((r) => `node ${r.nodeId} (${r.code})`).join(', ')}` : '';
    throw new TkmsError(
      'insufficient_partials',
      `${valid.length} valid partials of the ${input.t} needed (${input.partials.length} answers)${named}`,
      { valid: valid.length, needed: input.t, rejected },
    );
  }
  const combined = input.tweak === undefined ? combinePartials(valid) : combineDerivedPartials(valid, input.K, input.tweak);
  // x(K·sk) is bytes 1..33 of the compressed point.
  const sharedSecretX = combined.slice(1);
  combined.fill(0);
  return { sharedSecretX, usedNodeIds: valid.map((v) => v.id), rejected };
}

export interface EpochRecoverInput extends Omit<RecoverInput, 't' | 'verificationShares' | 'partials'> {
  /** The key's t and Y_i by epoch (client/epochs.ts). */
  epochs: ReadonlyMap<number, { t: number; verificationShares: ReadonlyMap<number, Uint8Array> }>;
  /** Each partial names the epoch of the share that made it (absent = 0). */
  partials: readonly (WrappedPartial & { epoch?: number })[];
}

/**
 * Partials of different epochs are shares of different polynomials: they never combine. Groups the
 * partials by epoch, latest first, and recovers from the first group that yields t valid partials
 * of its epoch, each checked against that epoch's Y_i. Partials of an epoch the client has no data
 * for are rejected (`stale_epoch`), not opened.
 */
export async function recoverFromEpochs(input: EpochRecoverInput): Promise<RecoveredSecret & { epoch: number }> {
  const groups = new Map<number, WrappedPartial[]>();
  for (const p of input.partials) {
    const epoch = p.epoch ?? 0;
    groups.set(epoch, [...(groups.get(epoch) ?? []), { nodeId: p.nodeId, wrapped: p.wrapped, proof: p.proof }]);
  }
  const rejected: RejectedPartial[] = [];
  let best = { valid: 0, needed: 0 };
  for (const epoch of [...groups.keys()].sort((a, b) => b - a)) {
    const partials = groups.get(epoch)!;
    const shares = input.epochs.get(epoch);
    if (shares === undefined) {
      for (const p of partials) rejected.push({ nodeId: p.nodeId, code: 'stale_epoch', reason: `answered at epoch ${epoch}, for which the client holds no verified verification shares` });
      continue;
    }
    try {
      const recovered = await recoverSharedSecret({ ...input, t: shares.t, verificationShares: shares.verificationShares, partials });
      return { ...recovered, rejected: [...rejected, ...recovered.rejected], epoch };
    } catch (e) {
      if (!isTkmsError(e, 'insufficient_partials')) throw e;
      rejected.push(...((e.details?.rejected as RejectedPartial[] | undefined) ?? []));
      const valid = (e.details?.valid as number | undefined) ?? 0;
      if (best.needed === 0 || valid > best.valid) best = { valid, needed: shares.t };
    }
  }
  const named = rejected.length ? `; rejected: ${rejected.map((r) => `node ${r.nodeId} (${r.code})`).join(', ')}` : '';
  throw new TkmsError('insufficient_partials', `no epoch has enough valid partials (${input.partials.length} answers)${named}`, { valid: best.valid, needed: best.needed, rejected });
}
