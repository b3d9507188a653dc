import type { Logger } from 'pino';
import { committeeFileDigest, committeeToJson, type Committee, type CommitteeMember } from '../core/committee.ts';
import { decodeHex, encodeHex, equalBytes, isTkmsError, TkmsError } from '../core/index.ts';
import { verifyHandover, type KeyEpochData } from '../core/ceremony/handover.ts';
import { isRefresh, parseReshareProposal, proposalDigest, reshareProposalToJson } from '../core/ceremony/proposal.ts';
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
import { errorText } from '../net/p2p.ts';
import type { EpochShare, EpochStore, ReshareStatus, ServedEpoch, StoredApproval } from './epoch-types.ts';
import type { NodeMetrics } from './metrics.ts';
import { buildRefreshProposal, checkOperatorApproval, checkPeerRefresh, RefreshRate, type ApprovalContext, type CheckedProposal } from './reshare-approvals.ts';
import { PreApprovalInbox } from './reshare-inbox.ts';
import { CeremonyTimeline } from './ceremony-timeline.ts';
import { attemptAt } from '../core/ceremony/deadlines.ts';
import { EarlyReplies } from './early-replies.ts';
import { decodeCeremonyFrame, decodeCeremonyReply, encodeCeremonyFrame, encodeCeremonyReply, type CeremonyReply } from './reshare-wire.ts';
import { countFramesSent, DeliveryQueues } from './ceremony-delivery.ts';
import { answersLaggard, CeremonyDriver, certificateMessage, pastFinalDeadline } from './ceremony-driver.ts';

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

interface Run {
  proposalId: string;
  proposal: ReshareProposal;
  kind: 'reshare' | 'refresh';
  status: ReshareStatus['status'];
  ceremony: ReshareCeremonyApi | undefined;
  startedAt: number | undefined;
  /** The time handed to the engine's start(): its deadlines (and attempts) count from it. */
  ceremonyStartedAt: number | undefined;
  finishedAt: number | undefined;
  failureReason: string | undefined;
  /** Engine calls, vote persistence and sends in order (a vote is on disk before anything after it is sent), the tick and retransmit timers. */
  driver: CeremonyDriver<CommitteeMember>;
  /** Peer id → when it was last sent the certificate after this ceremony finished (answerLaggard). */
  laggardsAnswered: Map<string, number>;
  /** Per-participant FIFOs and what each acknowledged (retransmits skip it). */
  delivery: DeliveryQueues<CommitteeMember>;
  /** A refresh's `refresh` frame, sent again with every retransmit: a member that was still committing the epoch before refused it the first time. */
  announce: Uint8Array | undefined;
  /** Set once the outcome is being committed (a joiner may wait for beforeJoining first). */
  committing: boolean;
  /** Why a joiner does not serve the new epoch yet (beforeJoining failed; retried), shown in the status. */
  waiting: string | undefined;
  /** When each step happened since the approval, logged (debug) when the ceremony finishes. */
  timeline: CeremonyTimeline;
}

/** Retries of beforeJoining: every this many ms (at least), until it succeeds or the node stops. */
const JOIN_RETRY_MIN_MS = 500;

/** A finished ceremony keeps answering and re-sending its certificate this many phases, so slower members finish too. */
const LINGER_PHASES = 10;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());
const keyHex = (k: Uint8Array): string => encodeHex(k);

/**
 * Runs reshare and refresh ceremonies over /tkms/ceremony/2: the operator's approvals (admin API),
 * refreshes members start, the engine's steps (votes on disk before they are sent), deadlines and
 * retransmits, and the commit (new shares, then the certificate, then serving the new epoch).
 * One ceremony at a time: a second approval waits until the first is finished or cancelled.
 */
export class ReshareRunner {
  private readonly runs = new Map<string, Run>();
  private readonly inbox = new PreApprovalInbox();
  /** Approvals being written, by proposal id: a second approval of one proposal meanwhile waits for the first, not starts a second ceremony. */
  private readonly approving = new Map<string, Promise<void>>();
  /** Frames answered once their payload is queued, up to UNPROCESSED_PER_PEER per peer (node/early-replies.ts). */
  private readonly early = new EarlyReplies();
  private readonly participantsOf = new WeakMap<ReshareProposal, CommitteeMember[]>();
  private readonly refreshRate: RefreshRate;
  private readonly now: () => number;
  private stopped = false;
  private lastCommitAt: number;

  constructor(private readonly o: ReshareRunnerOptions) {
    this.now = o.now ?? Date.now;
    this.refreshRate = RefreshRate.forCommittee(o.store.served().committee, o.minRefreshSpacingSeconds);
    this.lastCommitAt = o.committedAt ?? this.now();
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
    return this.lastCommitAt;
  }

  /** Whether a ceremony is approved here and not finished (a new DKG waits for it). */
  busy(): boolean {
    return [...this.runs.values()].some((r) => r.status === 'approved' || r.status === 'running');
  }

  /** Raw Ed25519 keys (hex) of every participant of approved ceremonies still running or lingering. */
  participantKeys(): Set<string> {
    const out = new Set<string>();
    const now = this.now();
    for (const run of this.runs.values()) {
      if (run.status === 'cancelled' || (run.finishedAt !== undefined && now - run.finishedAt > LINGER_PHASES * this.o.phaseMs)) continue;
      for (const m of this.participants(run.proposal)) out.add(keyHex(m.publicKey));
    }
    return out;
  }

  /** Members of both committees of every approved proposal not cancelled, with their addresses (for dialing). */
  participantMembers(): CommitteeMember[] {
    const byKey = new Map<string, CommitteeMember>();
    for (const run of this.runs.values()) if (run.status !== 'cancelled') for (const m of this.participants(run.proposal)) byKey.set(keyHex(m.publicKey), m);
    return [...byKey.values()];
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
      for (const m of this.participants(proposal)) if (!this.isSelf(m)) this.enqueue(fresh, m, fresh.announce!, true, fresh.announce!);
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
        if (run.status === 'done') this.answerLaggard(run, ceremony, peer, repeat);
      },
      // The sender has its answer already: a refusal found later is counted and logged here.
      (e: unknown) => {
        this.o.metrics.reshareFramesRefused.inc({ code: isTkmsError(e) ? e.code : 'internal' });
        this.o.log.debug({ proposalId, peer, err: errorText(e) }, 'a ceremony message taken from a peer was refused');
      },
    );
  }

  /** The certificate again to a participant that may lack it (answersLaggard), at most once per phase per peer, for as long as this process runs. */
  private answerLaggard(run: Run, ceremony: ReshareCeremonyApi, peer: string, repeat: boolean): void {
    const member = this.participants(run.proposal).find((m) => m.peerId === peer);
    const certificate = certificateMessage(ceremony.retransmit());
    if (member === undefined || certificate === undefined) return;
    if (!answersLaggard({ repeat, lacksCertificate: ceremony.lacksCertificate(member.publicKey), finishedAt: run.finishedAt, nowMs: this.now(), phaseMs: this.o.phaseMs })) return;
    const last = run.laggardsAnswered.get(peer);
    if (last !== undefined && this.now() - last < this.o.phaseMs) return;
    run.laggardsAnswered.set(peer, this.now());
    this.enqueue(run, member, encodeCeremonyFrame({ type: 'payload', proposalId: decodeHex(run.proposalId), payload: certificate.payload }), false, certificate.payload);
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

  private newRun(proposalId: string, proposal: ReshareProposal): Run {
    const delivery = new DeliveryQueues<CommitteeMember>({
      send: async (to, frame) => decodeCeremonyReply(await this.o.transport.send(to, frame, this.deliveryTimeoutMs())),
      keyOf: (m) => keyHex(m.publicKey),
      nameOf: (m) => m.id,
      isStopped: () => this.stopped,
      log: this.o.log,
      onAttempt: countFramesSent(this.o.metrics.ceremonyFramesSent, 'reshare'),
      logFields: { proposalId },
    });
    const run: Run = {
      proposalId,
      proposal,
      kind: isRefresh(proposal) ? 'refresh' : 'reshare',
      status: 'approved',
      ceremony: undefined,
      startedAt: undefined,
      ceremonyStartedAt: undefined,
      finishedAt: undefined,
      failureReason: undefined,
      laggardsAnswered: new Map(),
      delivery,
      driver: new CeremonyDriver<CommitteeMember>({
        delivery,
        others: () => this.participants(proposal).filter((m) => !this.isSelf(m)),
        publicKeyOf: (m) => m.publicKey,
        frameOf: (payload) => encodeCeremonyFrame({ type: 'payload', proposalId: decodeHex(proposalId), payload }),
        persistVote: async (vote) => {
          await this.o.beforeVoteWrite?.();
          await this.o.store.recordVote(proposalId, vote);
          run.timeline.mark('voteOnDisk', this.now());
        },
        onEngineCall: (engineMs, outbound) => {
          run.timeline.engine(engineMs);
          if (run.ceremony !== undefined) run.timeline.mark(`phase:${run.ceremony.phase}`, this.now());
          for (const o of outbound) run.timeline.sent(o.payload, this.now());
        },
        afterStep: () => this.afterStep(run),
        isActive: () => run.status !== 'cancelled' && !this.stopped,
      }),
      announce: isRefresh(proposal) ? refreshFrame(proposalId, proposal) : undefined,
      committing: false,
      waiting: undefined,
      timeline: new CeremonyTimeline(this.now()),
    };
    this.runs.set(proposalId, run);
    return run;
  }

  private launch(run: Run): void {
    run.status = 'running';
    run.startedAt = this.now();
    run.timeline = new CeremonyTimeline(run.startedAt);
    run.finishedAt = undefined;
    run.failureReason = undefined;
    void this.begin(run).catch((e: unknown) => this.finish(run, 'failed', `could not start: ${errorText(e)}`));
  }

  private async begin(run: Run): Promise<void> {
    const { proposal, proposalId } = run;
    const served = this.o.store.served().committee;
    const inFrom = proposal.from.members.some((m) => this.isSelf(m));
    let keys: KeyEpochData[];
    let oldShares: Map<string, bigint> | undefined;
    if (inFrom && equalCommittee(served, proposal.from)) {
      const known = new Map(this.servedKeys().map((k) => [k.keyId, k]));
      keys = proposal.keyIds.map((id) => {
        const k = known.get(id);
        if (k === undefined) throw new TkmsError('stale_epoch', `this node knows no key ${id} at epoch ${served.epoch}`);
        return k;
      });
      // A member holding no share (it joined late) takes part as a receiver only: the refresh gives it one.
      const held = new Map(this.o.store.shares().map((s) => [s.keyId, s.share]));
      if (proposal.keyIds.every((id) => held.has(id))) oldShares = new Map(proposal.keyIds.map((id) => [id, held.get(id)!]));
    } else {
      keys = await this.o.fetchKeys(proposal);
    }
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
  private step(run: Run, call: () => CeremonyStep): Promise<void> {
    return run.driver.step(call);
  }

  private retransmit(run: Run): void {
    if (this.stopped || run.ceremony === undefined) return;
    if (run.finishedAt !== undefined && this.now() - run.finishedAt > LINGER_PHASES * this.o.phaseMs) {
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
        for (const m of this.participants(run.proposal)) if (!this.isSelf(m) && !run.delivery.wasAcked(m, announce)) this.enqueue(run, m, announce, false, announce);
      },
    );
  }

  private async afterStep(run: Run): Promise<void> {
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

  private armTick(run: Run, ceremony: ReshareCeremonyApi): void {
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
  private async commit(run: Run, ceremony: ReshareCeremonyApi): Promise<void> {
    const outcome = ceremony.outcome();
    if (outcome === undefined) {
      this.finish(run, 'failed', 'the ceremony reported done without an outcome');
      return;
    }
    try {
      const from = run.proposal.from;
      const fromKeys = new Map(this.keysOf(run).map((k) => [k.keyId, k]));
      const verified = verifyHandover(outcome.certificate, from, fromKeys.size > 0 ? fromKeys : undefined, libp2pCommitteeDecoders);
      run.timeline.mark('certified', this.now());
      if (outcome.newShares !== undefined) await this.o.store.savePending(run.proposalId, outcome.newShares, verified.keys);
      run.timeline.mark('sharesOnDisk', this.now());
      if (!from.members.some((m) => this.isSelf(m))) await this.untilJoinable(run);
      if (this.stopped || run.status !== 'running') return;
      await this.o.store.commit(verified, run.proposalId);
      this.lastCommitAt = this.now();
      run.timeline.mark('committed', this.lastCommitAt);
      this.o.onCommitted(this.o.store.served(), this.o.store.shares());
      run.timeline.mark('serving', this.now());
      this.o.metrics.committeeEpoch.set(this.o.store.served().committee.epoch);
      this.finish(run, 'done', undefined);
    } catch (e) {
      this.finish(run, 'failed', `the certificate could not be committed: ${errorText(e)}`);
    }
  }

  /** Retries beforeJoining until it succeeds (the new epoch is not served before) or the node stops. */
  private async untilJoinable(run: Run): Promise<void> {
    const join = this.o.beforeJoining;
    if (join === undefined) return;
    for (let attempt = 1; !this.stopped && run.status === 'running'; attempt++) {
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

  private keysOf(run: Run): KeyEpochData[] {
    const inFrom = run.proposal.from.members.some((m) => this.isSelf(m));
    if (!inFrom) return [];
    const known = new Map(this.servedKeys().map((k) => [k.keyId, k]));
    return run.proposal.keyIds.flatMap((id) => (known.has(id) && known.get(id)!.epoch === run.proposal.from.epoch ? [known.get(id)!] : []));
  }

  /** The keys of the served epoch: all the committee holds, with or without a share here. */
  private servedKeys(): KeyEpochData[] {
    return this.o.epochKeys?.() ?? this.o.store.shares().map((s) => s.data);
  }

  private finish(run: Run, status: 'done' | 'failed', reason: string | undefined): void {
    if (run.status !== 'running' && run.status !== 'approved') return;
    run.driver.stopTick();
    run.status = status;
    run.finishedAt = this.now();
    run.failureReason = reason;
    // The retransmit timer lingers on a finished ceremony, so members still missing the certificate get it.
    if (status === 'failed') run.driver.stopRetransmits();
    const seconds = run.startedAt === undefined ? 0 : (run.finishedAt - run.startedAt) / 1000;
    this.o.metrics.reshareCeremonies.inc({ kind: run.kind, outcome: status });
    this.o.metrics.reshareDurationSeconds.observe({ kind: run.kind, outcome: status }, seconds);
    const fields = { proposalId: run.proposalId, kind: run.kind, seconds, disqualified: run.ceremony?.disqualified() };
    this.o.log.debug({ proposalId: run.proposalId, startedAt: run.startedAt, ...run.timeline.summary() }, 'ceremony timeline (ms after the approval)');
    if (status === 'done') this.o.log.info({ ...fields, epoch: this.o.store.served().committee.epoch }, 'ceremony committed; serving the new epoch');
    else this.o.log.error({ ...fields, reason }, 'ceremony failed; the committee keeps serving its epoch');
  }

  private clearTimers(run: Run): void {
    run.driver.stop();
  }

  // --- delivery ---------------------------------------------------------------------------

  private enqueue(run: Run, to: CommitteeMember, frame: Uint8Array, mustQueue: boolean, payload?: Uint8Array): void {
    run.delivery.enqueue(to, frame, { mustQueue, ...(payload === undefined ? {} : { payload }) });
  }

  private deliveryTimeoutMs(): number {
    return Math.max(2_000, Math.min(this.o.phaseMs, 15_000));
  }

  // --- helpers ----------------------------------------------------------------------------

  /** Members of both committees, once each (computed once per proposal: every step and delivery asks). */
  private participants(p: ReshareProposal): CommitteeMember[] {
    const known = this.participantsOf.get(p);
    if (known !== undefined) return known;
    const byKey = new Map<string, CommitteeMember>();
    for (const m of [...p.from.members, ...p.to.members]) if (!byKey.has(keyHex(m.publicKey))) byKey.set(keyHex(m.publicKey), m);
    const members = [...byKey.values()];
    this.participantsOf.set(p, members);
    return members;
  }

  private isSelf(m: { publicKey: Uint8Array }): boolean {
    return equalBytes(m.publicKey, this.o.identity.publicKey);
  }

  private joinsAt(p: ReshareProposal, served: Committee): boolean {
    return !p.from.members.some((m) => this.isSelf(m)) && equalCommittee(served, p.to) && this.o.store.served().handovers.length === 0;
  }

  private approvalContext(): ApprovalContext {
    const served = this.o.store.served().committee;
    return {
      served,
      selfKey: this.o.identity.publicKey,
      heldKeyIds: this.servedKeys().map((k) => k.keyId).sort(),
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

  private statusOf(run: Run): ReshareStatus {
    const c = run.ceremony;
    const running = run.status === 'running' && run.ceremonyStartedAt !== undefined;
    return {
      proposalId: run.proposalId,
      kind: run.kind,
      fromEpoch: run.proposal.from.epoch,
      toEpoch: run.proposal.to.epoch,
      status: run.status,
      phase: run.waiting !== undefined && run.status === 'running' ? 'syncing_revocations' : (c?.phase ?? (run.status === 'approved' || run.status === 'running' ? 'preparing' : run.status)),
      attempt: running ? attemptAt(run.ceremonyStartedAt!, this.o.phaseMs, this.now()) : 0,
      startedAt: run.startedAt === undefined ? null : new Date(run.startedAt).toISOString(),
      durationMs: run.startedAt === undefined || run.finishedAt === undefined ? null : run.finishedAt - run.startedAt,
      failureReason: run.failureReason ?? run.waiting ?? null,
      disqualified: c?.disqualified() ?? {},
    };
  }

  private refuseIfStopped(): void {
    if (this.stopped) throw new TkmsError('unavailable', 'node is stopping');
  }
}

function refreshFrame(proposalId: string, proposal: ReshareProposal): Uint8Array {
  return encodeCeremonyFrame({ type: 'refresh', proposalId: decodeHex(proposalId), payload: new TextEncoder().encode(JSON.stringify(reshareProposalToJson(proposal))) });
}

function equalCommittee(a: Committee, b: Committee): boolean {
  return equalBytes(committeeFileDigest(a), committeeFileDigest(b));
}
