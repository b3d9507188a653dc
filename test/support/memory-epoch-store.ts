import type { HandoverCertificate, KeyEpochData, VerifiedHandover } from '../../core/ceremony/handover.ts';
import { committeeFileDigest } from '../../core/committee.ts';
import { equalBytes, TkmsError } from '../../core/index.ts';
import type { Committee } from '../../net/committee.ts';
import type { EpochShare, EpochStore, ServedEpoch, StoredApproval } from '../../node/epoch-types.ts';

/**
 * In-memory stand-in for node/epoch-store.ts (the real one is tested on its own): the order of
 * calls the runner makes is what these tests look at.
 */
export class MemoryEpochStore implements EpochStore {
  readonly calls: string[] = [];
  private handovers: HandoverCertificate[] = [];
  private current: EpochShare[];
  private readonly pending = new Map<string, { shares: ReadonlyMap<string, bigint>; keys: readonly KeyEpochData[] }>();
  private readonly approvalList: StoredApproval[] = [];
  private readonly votes = new Map<string, Uint8Array>();

  constructor(
    private committee: Committee,
    shares: EpochShare[],
    private readonly selfKey: Uint8Array,
  ) {
    this.current = shares;
  }

  served(): ServedEpoch {
    return { committee: this.committee, handovers: [...this.handovers] };
  }
  async savePending(proposalId: string, shares: ReadonlyMap<string, bigint>, keys: readonly KeyEpochData[]): Promise<void> {
    this.calls.push('savePending');
    this.pending.set(proposalId, { shares, keys });
  }
  async loadPending(proposalId: string): Promise<Map<string, bigint> | undefined> {
    const p = this.pending.get(proposalId);
    return p === undefined ? undefined : new Map(p.shares);
  }
  async commit(handover: VerifiedHandover, proposalId: string): Promise<void> {
    this.calls.push('commit');
    // A member that joins was started with the arriving committee's file (as node/epoch-store.ts allows).
    const joining = this.handovers.length === 0 && equalBytes(committeeFileDigest(handover.to), committeeFileDigest(this.committee));
    if (!joining && handover.from.epoch !== this.committee.epoch) throw new TkmsError('stale_epoch', 'not the served epoch');
    const inTo = handover.to.members.some((m) => equalBytes(m.publicKey, this.selfKey));
    const p = this.pending.get(proposalId);
    if (inTo && p === undefined) throw new TkmsError('internal', 'commit before savePending');
    this.handovers.push(handover.certificate);
    this.committee = handover.to;
    this.current = inTo ? handover.keys.map((data) => ({ keyId: data.keyId, share: p!.shares.get(data.keyId)!, data })) : [];
  }
  shares(): EpochShare[] {
    return this.current;
  }
  async saveApproval(approval: StoredApproval): Promise<void> {
    this.calls.push(`approval:${approval.status}`);
    const i = this.approvalList.findIndex((a) => a.proposalId === approval.proposalId);
    if (i >= 0) this.approvalList[i] = approval;
    else this.approvalList.push(approval);
  }
  approvals(): StoredApproval[] {
    return [...this.approvalList];
  }
  async recordVote(proposalId: string, vote: Uint8Array): Promise<void> {
    this.calls.push('recordVote');
    this.votes.set(proposalId, vote);
  }
  priorVote(proposalId: string): Uint8Array | undefined {
    return this.votes.get(proposalId);
  }
}
