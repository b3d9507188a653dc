import { encodeHex } from '../bytes.ts';
import { secp256k1Group, type Group, type GroupPoint, type GroupName } from '../group.ts';
import type { UnsignedDkgResult } from '../dkg/context.ts';
import type { CommitteeMembership } from '../committee.ts';
import type { KeyDealing } from './codec.ts';
import { commitmentAt, commitmentPoints } from './dealing.ts';

/**
 * From the certified DKG dealings (QUAL, every dealer that qualified) to the new key: the combined
 * commitments C_k = Σ_j A_{j,k}, the group key C_0 = Σ_j A_{j,0}, Y_i = Σ_k C_k·i^k for every member,
 * and a member's share Σ_j g_j(m). Sums, not Lagrange combinations as in a reshare: the secret is the
 * sum of the dealers' fresh a_{j,0}, and no dealer alone knows it.
 */
export interface DkgKeyMaterial {
  groupPublicKey: Uint8Array;
  /** Member id → encoded Y_i. */
  verificationShares: Map<number, Uint8Array>;
}

/** Undefined when the sum is the identity somewhere (only adversarial dealings could do that; the proposal is then void). */
export function combineDkgCommitments(keyDealings: readonly KeyDealing[], memberIds: readonly number[], group: Group = secp256k1Group): DkgKeyMaterial | undefined {
  const points = keyDealings.map((d) => commitmentPoints(d, group));
  const degree = points[0]!.length;
  const combined: GroupPoint[] = [];
  for (let k = 0; k < degree; k++) {
    // Public points: variable-time additions.
    const sum = points.reduce((acc, p) => acc.add(p[k]!), group.zero);
    if (sum.is0()) return undefined;
    combined.push(sum);
  }
  const verificationShares = new Map<number, Uint8Array>();
  for (const id of memberIds) {
    const y = commitmentAt(combined, id);
    if (y === undefined) return undefined;
    verificationShares.set(id, group.encodePoint(y));
  }
  return { groupPublicKey: group.encodePoint(combined[0]!), verificationShares };
}

/** A member's share: Σ_j g_j(m) over the qualified dealers. */
export function sumSubShares(subShares: readonly bigint[], group: Group = secp256k1Group): bigint {
  return subShares.reduce((acc, v) => group.mod(acc + v), 0n);
}

/**
 * The unsigned result members vote on, in core/dkg/result.ts's canonical field order; epoch 0 is
 * spelled by leaving the field out (the digest of a result made before epochs existed).
 */
export function unsignedDkgResult(input: { keyId: string; committee: CommitteeMembership; sessionId: Uint8Array; qualified: readonly number[]; material: DkgKeyMaterial; transcriptHash: Uint8Array; curve?: GroupName }): UnsignedDkgResult {
  const { committee, material } = input;
  return {
    keyId: input.keyId,
    committeeId: committee.committeeId,
    ...(committee.epoch === 0 ? {} : { epoch: committee.epoch }),
    // Absent for secp256k1: a result of the only curve before Ed25519 keys keeps its bytes and digest.
    ...(input.curve === undefined || input.curve === 'secp256k1' ? {} : { curve: input.curve }),
    sessionId: encodeHex(input.sessionId),
    t: committee.t,
    n: committee.members.length,
    groupPublicKey: encodeHex(material.groupPublicKey),
    verificationShares: Object.fromEntries([...material.verificationShares].sort((a, b) => a[0] - b[0]).map(([id, y]) => [String(id), encodeHex(y)])),
    qualified: [...input.qualified],
    transcriptHash: encodeHex(input.transcriptHash),
  };
}
