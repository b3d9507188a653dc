import type { CommitteeMember } from '../core/committee.ts';
import { encodeHex, equalBytes } from '../core/index.ts';
import type { ReshareProposal } from '../core/ceremony/types.ts';

/**
 * The participants of proposals (members of both committees, once each), computed once per
 * proposal: every step and delivery asks.
 */
export class ProposalParticipants {
  private readonly byProposal = new WeakMap<ReshareProposal, CommitteeMember[]>();

  constructor(private readonly selfKey: Uint8Array) {}

  of(p: ReshareProposal): CommitteeMember[] {
    const known = this.byProposal.get(p);
    if (known !== undefined) return known;
    const byKey = new Map<string, CommitteeMember>();
    for (const m of [...p.from.members, ...p.to.members]) if (!byKey.has(encodeHex(m.publicKey))) byKey.set(encodeHex(m.publicKey), m);
    const members = [...byKey.values()];
    this.byProposal.set(p, members);
    return members;
  }

  isSelf(m: { publicKey: Uint8Array }): boolean {
    return equalBytes(m.publicKey, this.selfKey);
  }

  /** The participants of these proposals, once each by key. */
  across(proposals: readonly ReshareProposal[]): CommitteeMember[] {
    const byKey = new Map<string, CommitteeMember>();
    for (const p of proposals) for (const m of this.of(p)) byKey.set(encodeHex(m.publicKey), m);
    return [...byKey.values()];
  }

  /** Whether this node leaves or stays: it is a member of the committee `p` leaves. */
  inFrom(p: ReshareProposal): boolean {
    return p.from.members.some((m) => this.isSelf(m));
  }
}
