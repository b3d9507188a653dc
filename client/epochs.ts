import { equalBytes } from '../core/bytes.ts';
import { followHandovers, type KeyEpochData, type VerifiedHandover } from '../core/ceremony/handover.ts';
import type { CommitteeMembership } from '../core/committee.ts';
import { decodeHex } from '../core/bytes.ts';

/** A key's threshold and verification shares at one committee epoch. */
export interface EpochShares {
  t: number;
  /** Y_i by member id at this epoch, compressed and validated. */
  verificationShares: Map<number, Uint8Array>;
}

/**
 * The epochs a key is known at, from the committee the client trusts for it: the epoch its DKG result
 * was checked at, then every epoch a verified handover certificate carried it to with the same group
 * key. Earlier epochs stay: a member that has not moved on yet answers with the share of its epoch.
 */
export interface KeyEpochs {
  /** The latest epoch reached. */
  epoch: number;
  /** The committee at that epoch. */
  committee: CommitteeMembership;
  byEpoch: Map<number, EpochShares>;
}

/**
 * Follows `certificates` from `start` (the committee the key's DKG result was checked against, at its
 * epoch) and collects the key's data at every epoch the chain carries it to. A certificate that drops
 * the key or changes its group key ends the key's epochs there (verifyHandover refuses it anyway when
 * it knows the key, so this only matters for certificates before the key is known).
 */
export function followKey(start: CommitteeMembership, made: KeyEpochData, certificates: readonly unknown[]): KeyEpochs {
  const byEpoch = new Map<number, EpochShares>([[made.epoch, { t: made.t, verificationShares: made.verificationShares }]]);
  let committee = start;
  if (certificates.length === 0) return { epoch: start.epoch, committee, byEpoch };
  const followed = followHandovers(start, certificates, new Map([[made.keyId, made]]));
  let last = start.epoch;
  for (const step of followed.chain as VerifiedHandover[]) {
    const k = step.keys.find((key) => key.keyId === made.keyId);
    if (k === undefined || !equalBytes(k.groupPublicKey, made.groupPublicKey)) break;
    byEpoch.set(k.epoch, { t: k.t, verificationShares: k.verificationShares });
    committee = step.to;
    last = k.epoch;
  }
  return { epoch: last, committee, byEpoch };
}

/** The pinned committee as a membership: member keys (id → 0x hex), t, id and epoch. */
export function pinnedMembership(memberKeys: Record<number, string>, t: number, committeeId: string, epoch: number): CommitteeMembership {
  const members = Object.entries(memberKeys)
    .map(([id, hex]) => ({ id: Number(id), publicKey: decodeHex(hex, { name: `member ${id} key`, length: 32 }) }))
    .sort((a, b) => a.id - b.id);
  return { committeeId, epoch, t, members };
}
