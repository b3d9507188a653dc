import type { Logger } from 'pino';
import { verifyHandover } from '../core/ceremony/handover.ts';
import type { ReshareOutcome, ReshareProposal } from '../core/ceremony/types.ts';
import { libp2pCommitteeDecoders } from '../net/committee.ts';
import { errorText } from '../core/errors.ts';
import type { EpochShare, EpochStore, ServedEpoch } from './epoch-types.ts';
import type { NodeMetrics } from './metrics.ts';
import type { ServedKeyData } from './served-key-data.ts';
import type { ProposalParticipants } from './proposal-participants.ts';
import type { ReshareRun } from './reshare-run.ts';

/** Retries of beforeJoining: every this many ms (at least), until it succeeds or the node stops. */
const JOIN_RETRY_MIN_MS = 500;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

export interface HandoverCommitsOptions {
  store: EpochStore;
  log: Logger;
  metrics: NodeMetrics;
  phaseMs: number;
  participants: ProposalParticipants;
  keys: ServedKeyData;
  /** After a commit: serve the new epoch (shares, committee, this node's id in it). */
  onCommitted: (served: ServedEpoch, shares: EpochShare[]) => void;
  /** What a joining node must hold before it serves (ReshareRunnerOptions.beforeJoining); throws while it cannot. */
  beforeJoining?: (proposal: ReshareProposal) => Promise<void>;
  isStopped: () => boolean;
  now: () => number;
  /** When the epoch served was committed (after a restart): the refresh schedule counts from it. */
  committedAt: number;
}

/**
 * Commits a certified handover: new shares on disk first, then the certificate (the commit), then
 * the new epoch served. A joining node waits for what it must hold before it serves (its
 * revocations) in between. Remembers when this node last committed: the refresh schedule reads it.
 */
export class HandoverCommits {
  lastCommitAt: number;

  constructor(private readonly o: HandoverCommitsOptions) {
    this.lastCommitAt = o.committedAt;
  }

  /** Commits the run's outcome and calls `committed` once the new epoch is served (not when the run or the node stopped meanwhile); throws when it cannot commit. */
  async commit(run: ReshareRun, outcome: ReshareOutcome, committed: () => void): Promise<void> {
    const from = run.proposal.from;
    const fromKeys = new Map(this.o.keys.leaving(run.proposal).map((k) => [k.keyId, k]));
    const verified = verifyHandover(outcome.certificate, from, fromKeys.size > 0 ? fromKeys : undefined, libp2pCommitteeDecoders);
    run.timeline.mark('certified', this.o.now());
    if (outcome.newShares !== undefined) await this.o.store.savePending(run.proposalId, outcome.newShares, verified.keys);
    run.timeline.mark('sharesOnDisk', this.o.now());
    if (!this.o.participants.inFrom(run.proposal)) await this.untilJoinable(run);
    if (this.o.isStopped() || run.status !== 'running') return;
    await this.o.store.commit(verified, run.proposalId);
    this.lastCommitAt = this.o.now();
    run.timeline.mark('committed', this.lastCommitAt);
    this.o.onCommitted(this.o.store.served(), this.o.store.shares());
    run.timeline.mark('serving', this.o.now());
    this.o.metrics.committeeEpoch.set(this.o.store.served().committee.epoch);
    committed();
  }

  /** Retries beforeJoining until it succeeds (the new epoch is not served before) or the node stops. */
  private async untilJoinable(run: ReshareRun): Promise<void> {
    const join = this.o.beforeJoining;
    if (join === undefined) return;
    for (let attempt = 1; !this.o.isStopped() && run.status === 'running'; attempt++) {
      try {
        await join(run.proposal);
        if (run.waiting !== undefined) this.o.log.info({ proposalId: run.proposalId, attempt }, 'joining member is ready to serve the new epoch');
        run.waiting = undefined;
        return;
      } catch (e) {
        run.waiting = errorText(e);
        this.o.log.warn({ proposalId: run.proposalId, attempt, err: run.waiting }, 'joining member does not serve the new epoch yet: revocations not synced; retrying');
        await sleep(Math.max(JOIN_RETRY_MIN_MS, Math.floor(this.o.phaseMs / 2)));
      }
    }
  }
}
