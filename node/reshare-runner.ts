import type { Logger } from 'pino';
import { committeeToJson, type Committee, type CommitteeMember } from '../core/committee.ts';
import { decodeHex, encodeHex, isTkmsError, TkmsError } from '../core/index.ts';
import type { KeyEpochData } from '../core/ceremony/handover.ts';
import { parseReshareProposal, proposalDigest } from '../core/ceremony/proposal.ts';
import type {
  CeremonyFaults,
  CeremonyIdentity,
  CeremonyStep,
  CeremonyTiming,
  ReshareCeremonyApi,
  ReshareParams,
  ReshareProposal,
} from '../core/ceremony/types.ts';
import { libp2pCommitteeDecoders } from '../net/committee.ts';
import { errorText } from '../core/errors.ts';
import type { EpochShare, EpochStore, ReshareStatus, ServedEpoch, StoredApproval } from './epoch-types.ts';
import type { NodeMetrics } from './metrics.ts';
import { buildRefreshProposal, checkOperatorApproval, checkPeerRefresh, RefreshRate, type ApprovalContext, type CheckedProposal } from './reshare-approvals.ts';
import { PreApprovalInbox } from './reshare-inbox.ts';
import { CeremonyTimeline } from './ceremony-timeline.ts';
import { EarlyReplies } from './early-replies.ts';
import { decodeCeremonyFrame, decodeCeremonyReply, encodeCeremonyReply, type CeremonyReply } from './reshare-wire.ts';
import { pastFinalDeadline } from './ceremony-driver.ts';
import { HandoverCommits } from './reshare-commit.ts';
import { ServedKeyData } from './served-key-data.ts';
import { ProposalParticipants } from './proposal-participants.ts';
import { answerLaggard, equalCommittee, finishRun, lingerOver, newReshareRun, runStatus, type ReshareRun } from './reshare-run.ts';

/** How the node builds the engine (core/ceremony ReshareCeremony). */
export type CeremonyFactory = (params: ReshareParams, identity: CeremonyIdentity, options: { timing: CeremonyTiming; faults?: CeremonyFaults }) => ReshareCeremonyApi;

/** How the runner reaches a participant: one frame out, one reply frame back. */
export interface CeremonyTransport {
  send(to: CommitteeMember, frame: Uint8Array, timeoutMs: number): Promise<Uint8Array>;
}

export interface ReshareRunnerOptions {
  store: EpochStore;
  identity: CeremonyIdentity;
  seed: Uint8Array;
  createCeremony: CeremonyFactory;
  transport: CeremonyTransport;
  log: Logger;
  metrics: NodeMetrics;
  phaseMs: number;
  /** How long a ceremony waits for every arriving member's hello (config reshare.approvalWindowSeconds); default phaseMs. */
  helloWaitMs?: number;
  /** Fewest seconds between two refreshes accepted from peers (config reshare.minRefreshSpacingSeconds). */
  minRefreshSpacingSeconds?: number;
  faults?: CeremonyFaults;
  /** Awaited before each vote is written: only the test fault testFaults.holdVoteWhileExists sets it (node/vote-hold.ts). */
  beforeVoteWrite?: () => Promise<void>;
  /**
   * Public data of every key at the served epoch, also those this node holds no share of (it joined
   * after the dealers dealt: it serves nothing until a refresh gives it shares). Default: the shares'.
   */
  epochKeys?: () => KeyEpochData[];
  /** The keys' public data at from.epoch when this node holds none of them (it joins): asked of `from`'s members. */
  fetchKeys: (proposal: ReshareProposal) => Promise<KeyEpochData[]>;
  /** After a commit: serve the new epoch (shares, committee, this node's id in it). */
  onCommitted: (served: ServedEpoch, shares: EpochShare[]) => void;
  /** The participants this node talks to changed (an approval or a finished ceremony): admission, addresses. */
  onParticipantsChanged?: () => void;
  /**
   * Run after the ceremony's outcome and before the commit when this node joins (it is not in
   * `from`): what it must hold before it serves, i.e. the revocations the members hold. Throws
   * while it cannot; the runner retries (the new epoch is not served here meanwhile).
   */
  beforeJoining?: (proposal: ReshareProposal) => Promise<void>;
  /** When the epoch served was committed (after a restart): the refresh schedule counts from it. Default: now. */
  committedAt?: number;
  now?: () => number;
}

/**
 * Runs reshare and refresh ceremonies over /tkms/ceremony/2: the operator's approvals (admin API),
 * refreshes members start, the engine's steps (votes on disk before they are sent), deadlines and
 * retransmits, and the commit (new shares, then the certificate, then serving the new epoch:
 * node/reshare-commit.ts). A run's record and wiring are node/reshare-run.ts's; the key data it
 * brings, node/served-key-data.ts's. One ceremony at a time: a second approval waits until the
 * first is finished or cancelled.
 */
export class ReshareRunner {
  private readonly runs = new Map<string, ReshareRun>();
  private readonly inbox = new PreApprovalInbox();
  /** Approvals being written, by proposal id: a second approval of one proposal meanwhile waits for the first, not starts a second ceremony. */
  private readonly approving = new Map<string, Promise<void>>();
  /** Frames answered once their payload is queued, up to UNPROCESSED_PER_PEER per peer (node/early-replies.ts). */
  private readonly early = new EarlyReplies();
  private readonly members: ProposalParticipants;
  private readonly keys: ServedKeyData;
  private readonly commits: HandoverCommits;
  private readonly refreshRate: RefreshRate;
  private readonly now: () => number;
  private stopped = false;

  constructor(private readonly o: ReshareRunnerOptions) {
    this.now = o.now ?? Date.now;
    this.refreshRate = RefreshRate.forCommittee(o.store.served().committee, o.minRefreshSpacingSeconds);
    this.members = new ProposalParticipants(o.identity.publicKey);
    this.keys = new ServedKeyData({ store: o.store, ...(o.epochKeys === undefined ? {} : { epochKeys: o.epochKeys }), participants: this.members });
    this.commits = new HandoverCommits({
      store: o.store,
      log: o.log,
      metrics: o.metrics,
      phaseMs: o.phaseMs,
      participants: this.members,
      keys: this.keys,
      onCommitted: o.onCommitted,
      ...(o.beforeJoining === undefined ? {} : { beforeJoining: o.beforeJoining }),
      isStopped: () => this.stopped,
      now: this.now,
      committedAt: o.committedAt ?? this.now(),
    });
  }

  /** Resumes approved ceremonies that had not committed when the node stopped (votes already cast are re-sent, never re-signed). */
  resume(): void {
    const served = this.o.store.served().committee;
    for (const a of this.o.store.approvals()) {
      if (a.status !== 'approved') continue;
      const run = this.newRun(a.proposalId, a.proposal);
      if (served.epoch >= a.proposal.to.epoch && !this.joinsAt(a.proposal, served)) {
        run.status = 'done';
        continue;
      }
      if (served.epoch > a.proposal.from.epoch && !this.joinsAt(a.proposal, served)) {
        run.status = 'failed';
        run.failureReason = 'the served epoch moved past this proposal';
        continue;
      }
      this.launch(run);
    }
    this.o.onParticipantsChanged?.();
  }

  stop(): void {
    this.stopped = true;
    for (const run of this.runs.values()) this.clearTimers(run);
  }

  /** When this node last committed a handover (or started): the refresh schedule reads it. */
  get lastCommitTime(): number {
    return this.commits.lastCommitAt;
  }

  /** Whether a ceremony is approved here and not finished (a new DKG waits for it). */
  busy(): boolean {
    return [...this.runs.values()].some((r) => r.status === 'approved' || r.status === 'running');
  }

  /** Raw Ed25519 keys (hex) of every participant of approved ceremonies still running or lingering. */
  participantKeys(): Set<string> {
    const now = this.now();
    const live = [...this.runs.values()].filter((run) => run.status !== 'cancelled' && !lingerOver(run, now, this.o.phaseMs));
    return new Set(this.members.across(live.map((run) => run.proposal)).map((m) => encodeHex(m.publicKey)));
  }

  /** Members of both committees of every approved proposal not cancelled, with their addresses (for dialing). */
  participantMembers(): CommitteeMember[] {
    return this.members.across([...this.runs.values()].filter((run) => run.status !== 'cancelled').map((run) => run.proposal));
  }

  // --- admin API ------------------------------------------------------------------------

  /** POST /admin/reshare/approve: the operator approves a proposal file. */
  async approve(body: unknown): Promise<{ proposalId: string; kind: 'reshare' | 'refresh'; status: ReshareStatus['status'] }> {
    this.refuseIfStopped();
    const proposal = parseReshareProposal(body, libp2pCommitteeDecoders);
    const checked = checkOperatorApproval(proposal, this.approvalContext());
    await this.approveChecked(checked);
    return this.brief(checked.proposalId);
  }

  /** POST /admin/refresh: this node proposes a refresh of the committee it serves and tells the other members. */
  async refresh(): Promise<{ proposalId: string; kind: 'refresh'; status: ReshareStatus['status'] }> {
    this.refuseIfStopped();
    const ctx = this.approvalContext();
    const proposal = buildRefreshProposal(ctx.served, ctx.heldKeyIds);
    const checked = checkOperatorApproval(proposal, ctx);
    const run = this.runs.get(checked.proposalId);
    if (run === undefined || run.status === 'failed') {
      // Queued first on every member's FIFO, so the proposal precedes this node's first message.
      const fresh = this.newRun(checked.proposalId, proposal);
      for (const m of this.members.of(proposal)) if (!this.members.isSelf(m)) this.enqueue(fresh, m, fresh.announce!, true, fresh.announce!);
    }
    await this.approveChecked(checked);
    return { ...this.brief(checked.proposalId), kind: 'refresh' };
  }

  /** POST /admin/reshare/cancel: withdraws an approval, refused once this node voted for it. */
  async cancel(proposalId: string): Promise<{ proposalId: string; status: 'cancelled' }> {
    const approval = this.o.store.approvals().find((a) => a.proposalId === proposalId);
    if (approval === undefined) throw new TkmsError('unknown_key', `no approval of proposal ${proposalId} here`);
    if (this.o.store.priorVote(proposalId) !== undefined) {
      throw new TkmsError('conflict', `this node already voted for proposal ${proposalId}; a vote cannot be withdrawn (the ceremony ends with a certificate or fails on its own)`);
    }
    const run = this.runs.get(proposalId);
    if (run?.status === 'done') throw new TkmsError('conflict', `proposal ${proposalId} is already committed`);
    await this.o.store.saveApproval({ ...approval, status: 'cancelled' });
    if (run !== undefined) {
      this.clearTimers(run);
      run.status = 'cancelled';
      run.finishedAt = this.now();
    }
    this.o.onParticipantsChanged?.();
    this.o.log.info({ proposalId }, 'reshare approval cancelled by the operator');
    return { proposalId, status: 'cancelled' };
  }

  /** GET /admin/reshare. */
  list(): { epoch: number; committee: Record<string, unknown>; handovers: number; proposals: ReshareStatus[] } {
    const served = this.o.store.served();
    return { epoch: served.committee.epoch, committee: committeeToJson(served.committee), handovers: served.handovers.length, proposals: [...this.runs.values()].map((r) => this.statusOf(r)) };
  }

  /** The ceremony running now, for GET /admin/status. */
  current(): ReshareStatus | undefined {
    const running = [...this.runs.values()].filter((r) => r.status === 'running' || r.status === 'approved');
    return running.length === 0 ? undefined : this.statusOf(running[running.length - 1]!);
  }

  // --- libp2p ---------------------------------------------------------------------------

  /** One frame from an admitted participant (the daemon checked the peer); always answers a reply frame. */
  async answerFrame(peer: string, bytes: Uint8Array): Promise<Uint8Array> {
    let reply: CeremonyReply = { ok: true };
    try {
      this.refuseIfStopped();
      const frame = decodeCeremonyFrame(bytes);
      const proposalId = encodeHex(frame.proposalId);
      if (frame.type === 'refresh') await this.onRefreshFrame(proposalId, frame.payload);
      else await this.onPayload(peer, proposalId, frame.payload);
    } catch (e) {
      const err = isTkmsError(e) ? e : new TkmsError('internal', 'ceremony frame handling failed');
      if (!isTkmsError(e)) this.o.log.error({ err: errorText(e), peer }, 'unexpected error handling a ceremony frame');
      this.o.metrics.reshareFramesRefused.inc({ code: err.code });
      reply = { ok: false, code: err.code, message: err.message };
    }
    return encodeCeremonyReply(reply);
  }

  private async onRefreshFrame(proposalId: string, payload: Uint8Array): Promise<void> {
    // Taking part already (or approving it now): the proposal this id names is known here, so a copy
    // sent again (every member announces a refresh) is not parsed (two committee files, a point check per member).
    const approving = this.approving.get(proposalId);
    if (approving !== undefined) return approving;
    const run = this.runs.get(proposalId);
    if (run !== undefined && run.status !== 'failed' && run.status !== 'cancelled') return;
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload));
    } catch {
      throw new TkmsError('bad_request', 'refresh frame: the proposal is not UTF-8 JSON');
    }
    const proposal = parseReshareProposal(json, libp2pCommitteeDecoders);
    // The proposer's frame again while this node still writes its approval: the same approval, not a second one (nor a rate refusal).
    const pending = encodeHex(proposalDigest(proposal)) === proposalId ? this.approving.get(proposalId) : undefined;
    if (pending !== undefined) return pending;
    const checked = checkPeerRefresh(proposal, this.approvalContext(), this.refreshRate, this.now());
    if (checked.proposalId !== proposalId) throw new TkmsError('bad_request', 'refresh frame: proposalId is not the digest of the proposal carried');
    if (checked.known !== undefined) return;
    this.o.log.info({ proposalId, epoch: proposal.from.epoch }, 'a member proposed a refresh of the committee served here; taking part');
    await this.approveChecked(checked);
  }

  private async onPayload(peer: string, proposalId: string, payload: Uint8Array): Promise<void> {
    const run = this.runs.get(proposalId);
    if (run === undefined) {
      this.inbox.hold(peer, proposalId, payload, this.now());
      throw new TkmsError('not_approved', `this node has not approved proposal ${proposalId}`);
    }
    if (run.status === 'cancelled') throw new TkmsError('not_approved', `proposal ${proposalId} was cancelled here`);
    if (run.ceremony === undefined) {
      // Approved, still preparing (key data from other members): held like an early message, and
      // not acknowledged, so the sender sends it again should the hold run out first.
      this.inbox.hold(peer, proposalId, payload, this.now());
      throw new TkmsError('unavailable', `proposal ${proposalId} is approved here and its ceremony is being prepared; the message is held, send it again later`);
    }
    const ceremony = run.ceremony;
    run.timeline.received(payload, this.now());
    await this.early.answer(
      peer,
      async () => {
        let repeat = false;
        await this.step(run, () => {
          repeat = ceremony.isRepeat(payload);
          return ceremony.receive(payload, this.now());
        });
        const member = run.status === 'done' ? this.members.of(run.proposal).find((m) => m.peerId === peer) : undefined;
        if (member !== undefined) answerLaggard(run, ceremony, member, repeat, this.now(), this.o.phaseMs);
      },
      // The sender has its answer already: a refusal found later is counted and logged here.
      (e: unknown) => {
        this.o.metrics.reshareFramesRefused.inc({ code: isTkmsError(e) ? e.code : 'internal' });
        this.o.log.debug({ proposalId, peer, err: errorText(e) }, 'a ceremony message taken from a peer was refused');
      },
    );
  }

  // --- the ceremony ---------------------------------------------------------------------

  /**
   * One approval of a proposal at a time: the proposer re-sends its refresh frame every half phase,
   * and under load writing the approval can take longer than that. Each frame that arrived meanwhile
   * found no approval yet and started a ceremony of its own, replacing the one that had the messages
   * (a refresh failed so on a loaded machine, its members restarting their engine a dozen times).
   */
  private approveChecked(checked: CheckedProposal): Promise<void> {
    const pending = this.approving.get(checked.proposalId);
    if (pending !== undefined) return pending;
    const approval = this.approveOnce(checked).finally(() => this.approving.delete(checked.proposalId));
    this.approving.set(checked.proposalId, approval);
    return approval;
  }

  private async approveOnce(checked: CheckedProposal): Promise<void> {
    const existing = this.runs.get(checked.proposalId);
    if (checked.known?.status === 'approved' && existing !== undefined && existing.status !== 'failed') return;
    const approval: StoredApproval = { proposalId: checked.proposalId, proposal: checked.proposal, status: 'approved', approvedAt: new Date(this.now()).toISOString() };
    // On disk before this node deals or votes for it.
    await this.o.store.saveApproval(approval);
    const run = existing !== undefined && existing.status !== 'failed' ? existing : this.newRun(checked.proposalId, checked.proposal);
    this.o.log.info({ proposalId: checked.proposalId, kind: checked.kind, fromEpoch: checked.proposal.from.epoch, toMembers: checked.proposal.to.members.length, toT: checked.proposal.to.t }, 'ceremony approved');
    this.o.onParticipantsChanged?.();
    this.launch(run);
  }

  private newRun(proposalId: string, proposal: ReshareProposal): ReshareRun {
    const run = newReshareRun(proposalId, proposal, {
      send: async (to, frame) => decodeCeremonyReply(await this.o.transport.send(to, frame, this.deliveryTimeoutMs())),
      others: () => this.members.of(proposal).filter((m) => !this.members.isSelf(m)),
      persistVote: async (vote) => {
        await this.o.beforeVoteWrite?.();
        await this.o.store.recordVote(proposalId, vote);
      },
      afterStep: (r) => this.afterStep(r),
      isStopped: () => this.stopped,
      log: this.o.log,
      metrics: this.o.metrics,
      now: this.now,
    });
    this.runs.set(proposalId, run);
    return run;
  }

  private launch(run: ReshareRun): void {
    run.status = 'running';
    run.startedAt = this.now();
    run.timeline = new CeremonyTimeline(run.startedAt);
    run.finishedAt = undefined;
    run.failureReason = undefined;
    void this.begin(run).catch((e: unknown) => this.finish(run, 'failed', `could not start: ${errorText(e)}`));
  }

  private async begin(run: ReshareRun): Promise<void> {
    const { proposal, proposalId } = run;
    const { keys, oldShares } = this.keys.atFrom(proposal) ?? { keys: await this.o.fetchKeys(proposal), oldShares: undefined };
    if (run.status !== 'running' || this.stopped) return;
    const params: ReshareParams = {
      proposal,
      proposalId: decodeHex(proposalId),
      keys,
      ...(oldShares === undefined ? {} : { oldShares }),
      seed: this.o.seed,
      ...(this.o.store.priorVote(proposalId) === undefined ? {} : { priorVote: this.o.store.priorVote(proposalId)! }),
    };
    const ceremony = this.o.createCeremony(params, this.o.identity, { timing: { phaseMs: this.o.phaseMs, ...(this.o.helloWaitMs === undefined ? {} : { helloWaitMs: this.o.helloWaitMs }) }, ...(this.o.faults === undefined ? {} : { faults: this.o.faults }) });
    run.ceremony = ceremony;
    this.o.log.info({ proposalId, kind: run.kind, dealer: oldShares !== undefined, keys: keys.length }, 'ceremony started');
    run.ceremonyStartedAt = this.now();
    run.timeline.mark('engineStarted', run.ceremonyStartedAt);
    await this.step(run, () => ceremony.start(run.ceremonyStartedAt!));
    for (const early of this.inbox.take(proposalId, this.now())) {
      await this.step(run, () => ceremony.receive(early.payload, this.now())).catch((e: unknown) => {
        this.o.log.debug({ proposalId, peer: early.peer, err: errorText(e) }, 'an early ceremony message was refused');
      });
    }
    run.driver.startRetransmits(Math.max(50, Math.floor(this.o.phaseMs / 2)), () => this.retransmit(run));
  }

  /** One engine call and what it asks for (ceremony-driver.ts). A payload the engine refuses throws back to the sender's reply. */
  private step(run: ReshareRun, call: () => CeremonyStep): Promise<void> {
    return run.driver.step(call);
  }

  private retransmit(run: ReshareRun): void {
    if (this.stopped || run.ceremony === undefined) return;
    if (lingerOver(run, this.now(), this.o.phaseMs)) {
      this.clearTimers(run);
      this.o.onParticipantsChanged?.();
      return;
    }
    if (run.status === 'cancelled') return;
    const ceremony = run.ceremony;
    run.driver.retransmitRound(
      () => ceremony.retransmit(this.now()),
      () => {
        // Until a member took it, and in full rounds (a member whose ceremony could not start takes it again): each copy costs a parse of two committee files.
        const announce = run.announce;
        if (announce === undefined || run.finishedAt !== undefined) return;
        for (const m of this.members.of(run.proposal)) if (!this.members.isSelf(m) && !run.delivery.wasAcked(m, announce)) this.enqueue(run, m, announce, false, announce);
      },
    );
  }

  private async afterStep(run: ReshareRun): Promise<void> {
    const ceremony = run.ceremony;
    if (ceremony === undefined || run.status !== 'running') return;
    if (ceremony.phase === 'done') {
      if (run.committing) return;
      run.committing = true;
      // Off the chain: a joiner may wait for its revocations, and the engine keeps answering meanwhile.
      void this.commit(run, ceremony);
      return;
    }
    if (ceremony.phase === 'failed') {
      this.finish(run, 'failed', ceremony.failureReason ?? 'the ceremony failed');
      return;
    }
    this.armTick(run, ceremony);
  }

  private armTick(run: ReshareRun, ceremony: ReshareCeremonyApi): void {
    run.driver.stopTick();
    const deadline = ceremony.nextDeadline();
    if (deadline === undefined) return;
    if (run.ceremonyStartedAt !== undefined && pastFinalDeadline(run.ceremonyStartedAt, this.o.phaseMs, run.proposal.to.members.length, this.now(), this.o.helloWaitMs)) {
      this.finish(run, 'failed', 'no certificate by the final deadline');
      return;
    }
    run.driver.armTick(deadline, this.now(), () => {
      void this.step(run, () => ceremony.tick(this.now())).catch((e: unknown) => this.o.log.error({ proposalId: run.proposalId, err: errorText(e) }, 'ceremony tick failed'));
    });
  }

  /** New shares on disk first, then the certificate (the commit), then the new epoch served. */
  private async commit(run: ReshareRun, ceremony: ReshareCeremonyApi): Promise<void> {
    const outcome = ceremony.outcome();
    if (outcome === undefined) {
      this.finish(run, 'failed', 'the ceremony reported done without an outcome');
      return;
    }
    try {
      await this.commits.commit(run, outcome, () => this.finish(run, 'done', undefined));
    } catch (e) {
      this.finish(run, 'failed', `the certificate could not be committed: ${errorText(e)}`);
    }
  }

  private finish(run: ReshareRun, status: 'done' | 'failed', reason: string | undefined): void {
    finishRun(run, status, reason, { metrics: this.o.metrics, log: this.o.log, nowMs: this.now(), epoch: () => this.o.store.served().committee.epoch });
  }

  private clearTimers(run: ReshareRun): void {
    run.driver.stop();
  }

  // --- delivery ---------------------------------------------------------------------------

  private enqueue(run: ReshareRun, to: CommitteeMember, frame: Uint8Array, mustQueue: boolean, payload?: Uint8Array): void {
    run.delivery.enqueue(to, frame, { mustQueue, ...(payload === undefined ? {} : { payload }) });
  }

  private deliveryTimeoutMs(): number {
    return Math.max(2_000, Math.min(this.o.phaseMs, 15_000));
  }

  // --- helpers ----------------------------------------------------------------------------

  private joinsAt(p: ReshareProposal, served: Committee): boolean {
    return !this.members.inFrom(p) && equalCommittee(served, p.to) && this.o.store.served().handovers.length === 0;
  }

  private approvalContext(): ApprovalContext {
    const served = this.o.store.served().committee;
    return {
      served,
      selfKey: this.o.identity.publicKey,
      heldKeyIds: this.keys.served().map((k) => k.keyId).sort(),
      approvals: this.o.store.approvals(),
      finished: (id) => {
        const run = this.runs.get(id);
        return run !== undefined && (run.status === 'done' || run.status === 'failed' || run.status === 'cancelled');
      },
      voted: (id) => this.o.store.priorVote(id) !== undefined,
    };
  }

  private brief(proposalId: string): { proposalId: string; kind: 'reshare' | 'refresh'; status: ReshareStatus['status'] } {
    const run = this.runs.get(proposalId)!;
    return { proposalId, kind: run.kind, status: run.status };
  }

  private statusOf(run: ReshareRun): ReshareStatus {
    return runStatus(run, this.o.phaseMs, this.now());
  }

  private refuseIfStopped(): void {
    if (this.stopped) throw new TkmsError('unavailable', 'node is stopping');
  }
}
