import { TkmsError } from '../core/index.ts';
import type { KeyEpochData } from '../core/ceremony/handover.ts';
import type { ReshareProposal } from '../core/ceremony/types.ts';
import type { EpochStore } from './epoch-types.ts';
import type { ProposalParticipants } from './proposal-participants.ts';
import { equalCommittee } from './reshare-run.ts';

export interface ServedKeyDataOptions {
  store: EpochStore;
  /** Public data of every key at the served epoch, also those this node holds no share of (ReshareRunnerOptions.epochKeys). */
  epochKeys?: () => KeyEpochData[];
  participants: ProposalParticipants;
}

/**
 * The key data a reshare or refresh of this node works with: the served epoch's keys, what it
 * brings to a ceremony when it serves `from` (the keys' public data at from.epoch, and its old
 * shares when it deals), and what a leaving member checks the certificate against.
 */
export class ServedKeyData {
  constructor(private readonly o: ServedKeyDataOptions) {}

  /** The keys of the served epoch: all the committee holds, with or without a share here. */
  served(): KeyEpochData[] {
    return this.o.epochKeys?.() ?? this.o.store.shares().map((s) => s.data);
  }

  /**
   * The keys' public data at from.epoch and, when this node deals, its old share of each, when this
   * node serves `from`; undefined when it does not (it joins): then it asks `from`'s members.
   */
  atFrom(proposal: ReshareProposal): { keys: KeyEpochData[]; oldShares: Map<string, bigint> | undefined } | undefined {
    const served = this.o.store.served().committee;
    if (!this.o.participants.inFrom(proposal) || !equalCommittee(served, proposal.from)) return undefined;
    const known = new Map(this.served().map((k) => [k.keyId, k]));
    const keys = proposal.keyIds.map((id) => {
      const k = known.get(id);
      if (k === undefined) throw new TkmsError('stale_epoch', `this node knows no key ${id} at epoch ${served.epoch}`);
      return k;
    });
    // A member holding no share (it joined late) takes part as a receiver only: the refresh gives it one.
    const held = new Map(this.o.store.shares().map((s) => [s.keyId, s.share]));
    const oldShares = proposal.keyIds.every((id) => held.has(id)) ? new Map(proposal.keyIds.map((id) => [id, held.get(id)!])) : undefined;
    return { keys, oldShares };
  }

  /** The public data at from.epoch of the keys the proposal moves, as this node knows them when it leaves (none when it joins). */
  leaving(proposal: ReshareProposal): KeyEpochData[] {
    if (!this.o.participants.inFrom(proposal)) return [];
    const known = new Map(this.served().map((k) => [k.keyId, k]));
    return proposal.keyIds.flatMap((id) => (known.has(id) && known.get(id)!.epoch === proposal.from.epoch ? [known.get(id)!] : []));
  }
}
