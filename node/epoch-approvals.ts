import { join } from 'node:path';
import { TkmsError, encodeHex } from '../core/index.ts';
import type { CommitteeDecoders } from '../core/committee.ts';
import { proposalDigest } from '../core/ceremony/proposal.ts';
import type { StoredApproval } from './epoch-types.ts';
import {
  MAX_APPROVALS,
  MAX_APPROVAL_FILE_BYTES,
  MAX_VOTES,
  MAX_VOTE_BYTES,
  MAX_VOTE_FILE_BYTES,
  approvalFileName,
  assertProposalId,
  parseApprovalFileName,
  parseApprovalRecord,
  parseVoteFileName,
  parseVoteRecord,
  sameBytes,
  serializeApprovalRecord,
  serializeVoteRecord,
  voteFileName,
  type ApprovalRecord,
} from './epoch-files.ts';
import { publishNewFile, readBounded, removeFileDurably } from './keystore-fs.ts';

/**
 * The operator's approvals and the vote lock, as files in the keystore directory (node/epoch-files.ts
 * names them). Approvals are append-only records (a cancellation is a new one); a vote is one file
 * per proposal, published before the vote is sent and never replaced. Both are bounded: done
 * proposals (cancelled, or leaving an epoch the node has left) are pruned to make room.
 */
export class ApprovalLedger {
  readonly #dir: string;
  readonly #decoders: CommitteeDecoders | undefined;
  readonly #servedEpoch: () => number;
  readonly #serial: <T>(fn: () => Promise<T>) => Promise<T>;
  #approvals = new Map<string, ApprovalRecord>();
  #approvalSeqs = new Map<string, number[]>();
  #nextSeq = 0;
  #votes = new Map<string, Uint8Array>();

  constructor(dir: string, servedEpoch: () => number, serial: <T>(fn: () => Promise<T>) => Promise<T>, decoders?: CommitteeDecoders) {
    this.#dir = dir;
    this.#servedEpoch = servedEpoch;
    this.#serial = serial;
    this.#decoders = decoders;
  }

  async load(entries: readonly string[]): Promise<void> {
    await this.#loadApprovals(entries);
    await this.#loadVotes(entries);
  }

  async #erase(name: string): Promise<void> {
    await removeFileDurably(this.#dir, name);
  }

  async #loadApprovals(entries: readonly string[]): Promise<void> {
    const records: ApprovalRecord[] = [];
    for (const name of entries) {
      const seq = parseApprovalFileName(name);
      if (seq === undefined) continue;
      const bytes = await readBounded(join(this.#dir, name), MAX_APPROVAL_FILE_BYTES, () => corrupt(`${name} is not a regular file of at most ${MAX_APPROVAL_FILE_BYTES} bytes`));
      if (bytes !== undefined) records.push(parseApprovalRecord(bytes, seq, this.#decoders));
    }
    records.sort((a, b) => a.seq - b.seq);
    for (const record of records) this.#noteApproval(record);
  }

  #noteApproval(record: ApprovalRecord): void {
    const id = record.approval.proposalId;
    this.#approvals.set(id, record);
    this.#approvalSeqs.set(id, [...(this.#approvalSeqs.get(id) ?? []), record.seq]);
    this.#nextSeq = Math.max(this.#nextSeq, record.seq + 1);
  }

  async #loadVotes(entries: readonly string[]): Promise<void> {
    for (const name of entries) {
      const proposalId = parseVoteFileName(name);
      if (proposalId === undefined) continue;
      const bytes = await readBounded(join(this.#dir, name), MAX_VOTE_FILE_BYTES, () => corrupt(`${name} is larger than a vote`));
      if (bytes !== undefined) this.#votes.set(proposalId, parseVoteRecord(bytes, proposalId));
    }
  }

  approvals(): StoredApproval[] {
    return [...this.#approvals.values()].sort((a, b) => a.seq - b.seq).map((r) => r.approval);
  }

  saveApproval(approval: StoredApproval): Promise<void> {
    assertProposalId(approval.proposalId);
    if (encodeHex(proposalDigest(approval.proposal)) !== approval.proposalId) throw new TkmsError('bad_request', 'proposalId is not the digest of the proposal');
    if (approval.status !== 'approved' && approval.status !== 'cancelled') throw new TkmsError('bad_request', 'status must be approved or cancelled');
    if (Number.isNaN(Date.parse(approval.approvedAt)) || approval.approvedAt.length > 64) throw new TkmsError('bad_request', 'approvedAt must be an ISO time');
    return this.#serial(async () => {
      const current = this.#approvals.get(approval.proposalId);
      if (current !== undefined && current.approval.status === approval.status) return;
      if (current === undefined && this.#approvals.size >= MAX_APPROVALS) await this.#pruneApprovals();
      if (current === undefined && this.#approvals.size >= MAX_APPROVALS) {
        throw new TkmsError('conflict', `${MAX_APPROVALS} proposals are approved and not done; cancel one first`);
      }
      for (;;) {
        const seq = this.#nextSeq++;
        const record: ApprovalRecord = { seq, approval: { ...approval } };
        if ((await publishNewFile(this.#dir, approvalFileName(seq), serializeApprovalRecord(record))) === 'written') {
          this.#noteApproval(record);
          return;
        }
      }
    });
  }

  /** Drops the oldest done proposals (cancelled, or leaving an epoch already left), their records oldest first so a crash never revives an approval. */
  async #pruneApprovals(): Promise<void> {
    const epoch = this.#servedEpoch();
    const done = [...this.#approvals.values()]
      .filter((r) => r.approval.status === 'cancelled' || r.approval.proposal.from.epoch < epoch)
      .sort((a, b) => a.seq - b.seq);
    for (const record of done) {
      if (this.#approvals.size < MAX_APPROVALS) break;
      const id = record.approval.proposalId;
      for (const seq of this.#approvalSeqs.get(id) ?? []) await this.#erase(approvalFileName(seq));
      this.#approvals.delete(id);
      this.#approvalSeqs.delete(id);
      if (this.#votes.has(id)) {
        await this.#erase(voteFileName(id));
        this.#votes.delete(id);
      }
    }
  }

  recordVote(proposalId: string, vote: Uint8Array): Promise<void> {
    assertProposalId(proposalId);
    if (!(vote instanceof Uint8Array) || vote.length === 0 || vote.length > MAX_VOTE_BYTES) throw new TkmsError('bad_request', `a vote is 1..${MAX_VOTE_BYTES} bytes`);
    const copy = Uint8Array.from(vote);
    return this.#serial(async () => {
      const prior = this.#votes.get(proposalId);
      if (prior !== undefined) {
        if (sameBytes(prior, copy)) return;
        throw new TkmsError('conflict', 'this node already voted differently for this proposal');
      }
      // Pruning keeps only votes of approved proposals not done: at most MAX_APPROVALS < MAX_VOTES.
      if (this.#votes.size >= MAX_VOTES) await this.#pruneVotes();
      const name = voteFileName(proposalId);
      if ((await publishNewFile(this.#dir, name, serializeVoteRecord(proposalId, copy))) === 'exists') {
        const bytes = await readBounded(join(this.#dir, name), MAX_VOTE_FILE_BYTES, () => corrupt(`${name} is larger than a vote`));
        const onDisk = bytes === undefined ? undefined : parseVoteRecord(bytes, proposalId);
        if (onDisk === undefined || !sameBytes(onDisk, copy)) throw new TkmsError('conflict', 'this node already voted differently for this proposal');
      }
      this.#votes.set(proposalId, copy);
    });
  }

  /** Votes whose proposal is done (left epoch), cancelled or pruned are never needed again (a cancel after a vote is refused upstream). */
  async #pruneVotes(): Promise<void> {
    const epoch = this.#servedEpoch();
    for (const id of [...this.#votes.keys()]) {
      const record = this.#approvals.get(id);
      if (record !== undefined && record.approval.status === 'approved' && record.approval.proposal.from.epoch >= epoch) continue;
      await this.#erase(voteFileName(id));
      this.#votes.delete(id);
    }
  }

  priorVote(proposalId: string): Uint8Array | undefined {
    const vote = this.#votes.get(proposalId);
    return vote === undefined ? undefined : Uint8Array.from(vote);
  }
}

function corrupt(message: string): TkmsError {
  return new TkmsError('keystore_corrupt', message);
}
