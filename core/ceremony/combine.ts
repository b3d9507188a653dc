import { sha256 } from '@noble/hashes/sha2.js';
import { encodeHex, equalBytes, lengthPrefixed, utf8ToBytes } from '../bytes.ts';
import { committeeDigest, committeeToJson } from '../committee.ts';
import { curveBackend } from '../curve-backend.ts';
import { secp256k1Group, type Group, type GroupPoint } from '../group.ts';
import { lagrangeCoefficientsAtZero } from '../shamir.ts';
import type { KeyDealing } from './codec.ts';
import { commitmentAt, commitmentPoints } from './dealing.ts';
import type { KeyEpochData, UnsignedHandover } from './handover.ts';
import type { ReshareProposal } from './types.ts';

/**
 * From the agreed dealings to the new epoch: the combined commitments A′_k = Σ λ_j·A_{j,k} over the
 * agreed dealers S (λ at 0 over S), the unchanged group key A′_0, each arriving member's Y′_i and
 * share s′_m = Σ λ_j·g_j(m), and the unsigned handover all members vote on.
 */
const TRANSCRIPT_DOMAIN = utf8ToBytes('tkms/ceremony/v1/transcript');

/** Binds the certificate to this proposal and exactly these dealings (by their hashes, dealers ascending). */
export function ceremonyTranscriptHash(proposalId: Uint8Array, dealers: readonly number[], dealingHashes: readonly Uint8Array[]): Uint8Array {
  const ids = new Uint8Array(dealers.length * 2);
  dealers.forEach((d, i) => {
    ids[2 * i] = d >>> 8;
    ids[2 * i + 1] = d & 0xff;
  });
  return sha256(lengthPrefixed(TRANSCRIPT_DOMAIN, proposalId, ids, ...dealingHashes));
}

/** New verification shares of one key (by to-member id); undefined when the dealings do not reproduce the group key. */
export function combineVerificationShares(dealers: readonly number[], keyDealings: readonly KeyDealing[], groupPublicKey: Uint8Array, toIds: readonly number[], group: Group = secp256k1Group): Map<number, Uint8Array> | undefined {
  const lambdas = lagrangeCoefficientsAtZero(dealers, group.Fn);
  const degree = keyDealings[0]!.commitments.length;
  const combined: GroupPoint[] = [];
  for (let k = 0; k < degree; k++) {
    let encoded: Uint8Array | null;
    if (group.name === 'secp256k1') {
      // Public points and coefficients: the backend's variable-time combination (libsecp256k1 where
      // it loads: about half noble's multi-scalar multiplication with these full-size λ_j).
      encoded = curveBackend().linearCombination(0n, keyDealings.map((d) => d.commitments[k]!), lambdas);
    } else {
      const sum = group.linearCombination(keyDealings.map((d) => commitmentPoints(d, group)[k]!), lambdas);
      encoded = sum === undefined ? null : group.encodePoint(sum);
    }
    if (encoded === null) return undefined;
    if (k === 0 && !equalBytes(encoded, groupPublicKey)) return undefined;
    combined.push(group.decodePoint(encoded, 'combined commitment'));
  }
  const shares = new Map<number, Uint8Array>();
  for (const id of toIds) {
    const y = commitmentAt(combined, id);
    if (y === undefined) return undefined;
    shares.set(id, group.encodePoint(y));
  }
  return shares;
}

/** s′_m = Σ λ_j·g_j(m) over the agreed dealers (sub-shares aligned with dealers). */
export function combineSubShares(dealers: readonly number[], subShares: readonly bigint[], group: Group = secp256k1Group): bigint {
  const lambdas = lagrangeCoefficientsAtZero(dealers, group.Fn);
  return subShares.reduce((acc, v, i) => group.mod(acc + v * lambdas[i]!), 0n);
}

export function unsignedHandover(proposal: ReshareProposal, keys: readonly KeyEpochData[], newShares: readonly Map<number, Uint8Array>[], transcriptHash: Uint8Array): UnsignedHandover {
  return {
    v: 1,
    committeeId: proposal.from.committeeId,
    fromEpoch: proposal.from.epoch,
    fromDigest: encodeHex(committeeDigest(proposal.from)),
    to: committeeToJson(proposal.to),
    keys: keys.map((key, i) => ({
      keyId: key.keyId,
      ...(key.curve === undefined ? {} : { curve: key.curve }),
      groupPublicKey: encodeHex(key.groupPublicKey),
      verificationShares: Object.fromEntries([...newShares[i]!].sort((a, b) => a[0] - b[0]).map(([id, y]) => [String(id), encodeHex(y)])),
    })),
    transcriptHash: encodeHex(transcriptHash),
  };
}
