import type { Logger } from 'pino';
import { assertKeyId, encodeHex, isTkmsError, randomBytes, TkmsError } from '../core/index.ts';
import { verifyDkgPublicResult, type DkgPublicResult, type ExpectedCommittee } from '../core/dkg/index.ts';
import { expectedCommittee } from '../core/committee.ts';
import type { CeremonyIdentity, CeremonyTiming } from '../core/ceremony/types.ts';
import type { DkgCeremonyApi, DkgCeremonyFaults, DkgCeremonyParams } from '../core/ceremony/dkg-types.ts';
import type { Committee } from '../net/committee.ts';
import { errorText } from '../core/errors.ts';
import { decodeDkgFrame, encodeDkgFrame, sessionKey, SESSION_ID_LENGTH, type DkgFrame, type DkgProposal } from './dkg-wire.ts';
import { decodeCeremonyReply, encodeCeremonyReply, type CeremonyReply } from './reshare-wire.ts';
import { answersLaggard, certificateMessage, pastFinalDeadline } from './ceremony-driver.ts';
import type { FrameReply } from './ceremony-delivery.ts';
import { PreApprovalInbox } from './reshare-inbox.ts';
import { DkgStateFiles } from './dkg-state.ts';
import { DkgWithdrawals } from './dkg-withdrawals.ts';
import type { Keystore } from './keystore.ts';
import type { NodeMetrics } from './metrics.ts';
import { EarlyReplies } from './early-replies.ts';
import { HeldDkgKeys, publicResultToJson } from './dkg-held-keys.ts';
import { heldKeyStatus, newDkgSession, othersOf, sessionStatus, type DkgSession, type DkgStatus } from './dkg-session.ts';

export { publicResultToJson } from './dkg-held-keys.ts';
export type { DkgStatus, DkgStatusName } from './dkg-session.ts';

/** How the node builds the engine (core/ceremony DkgCeremony). */
export type DkgCeremonyFactory = (params: DkgCeremonyParams, identity: CeremonyIdentity, options: { timing: CeremonyTiming; faults?: DkgCeremonyFaults }) => DkgCeremonyApi;

/** How the runner reaches another member: one frame out, one reply frame back. */
export interface DkgTransport {
  send(memberId: number, frame: Uint8Array, timeoutMs: number): Promise<Uint8Array>;
}

export interface DkgRunnerOptions {
  committee: Committee;
  /** This node's id in `committee`; undefined when it is not a member (it then takes part in no DKG). */
  selfId: number | undefined;
  identity: CeremonyIdentity;
  /** The node-local ceremony seed (the reshare runner's): the engine derives every random value from it. */
  seed: Uint8Array;
  createCeremony: DkgCeremonyFactory;
  keystore: Keystore;
  /** Vote locks and results held without a share (default: in memory only). */
  state?: DkgStateFiles;
  transport: DkgTransport;
  log: Logger;
  metrics: NodeMetrics;
  /** φ, the ceremony's phase length. */
  phaseMs: number;
  faults?: DkgCeremonyFaults;
  /** Called once the share is durable in the keystore, so the node can serve partials at once. */
  onKeyStored?: (result: DkgPublicResult, share: bigint) => void;
  /** Called once a result this node took no share of is durable: the key exists, this node serves no partials for it. */
  onPublicResultStored?: (result: DkgPublicResult) => void;
  /** Keys withdrawn before the certificate made splits impossible (read only): still not served. */
  withdrawals?: DkgWithdrawals;
  /** Whether a reshare or refresh of this node is approved and not finished: no new DKG starts meanwhile (its key would not move). */
  reshareBusy?: () => boolean;
  /** The committee of an earlier epoch (from the handover chain): a held result is checked against the committee of its epoch. */
  committeeAt?: (epoch: number) => ExpectedCommittee | undefined;
  /** Key ids the committee serves at its epoch (NodeEpochStore.epochKeys): a second DKG for any of them is refused. */
  servedKeyIds?: () => readonly string[];
  /** Throws unless a DKG of this key id may run (node/key-material.ts: a managed key's version the admins made). */
  admitKeyId?: (keyId: string) => void;
  /**
   * The group of a key id's shares in this node's own view (node/key-material.ts: a managed key's
   * spec); undefined = secp256k1. Never taken from the proposal: each member runs the DKG over the
   * group it knows the key to be, and the ceremony id binds it, so a member that disagrees takes no part.
   */
  curveOf?: (keyId: string) => 'ed25519' | undefined;
  /** Runs before a member's proposal is considered: the managed key's changes the proposer holds and this node lacks are pulled first (node/key-changes.ts). */
  beforeProposal?: (keyId: string, proposer: number) => Promise<void>;
  now?: () => number;
}

/** Sessions running at once; a proposal past it is refused (unavailable), so peers cannot make a member run unbounded ceremonies. */
export const MAX_RUNNING_SESSIONS = 8;
/** A finished session keeps answering and re-sending its certificate this many phases, so slower members finish too. */
const LINGER_PHASES = 10;

/**
 * Runs DKG ceremonies (core/ceremony DkgCeremony) over /tkms/dkg/2: proposals from the operator
 * (POST /admin/dkg) and from members, the engine's steps through the shared ceremony driver (votes
 * on disk before they are sent, deadlines, retransmits) and storing the outcome (share, or the public
 * result alone). The held results and their exchange (legacy re-signing, the keys protocol) are
 * HeldDkgKeys' (node/dkg-held-keys.ts); a session's record and status, node/dkg-session.ts.
 */
export class DkgRunner {
  private readonly sessions = new Map<string, DkgSession>();
  /** Payloads of sessions not (yet) running here: the proposal may arrive after a member's first message. */
  private readonly early = new PreApprovalInbox();
  /** Frames answered once their payload is queued, up to UNPROCESSED_PER_PEER per member (node/early-replies.ts). */
  private readonly earlyReplies = new EarlyReplies();
  /** Public results of keys held (loaded at start, added on completion), with or without a share, and their exchange. */
  private readonly held: HeldDkgKeys;
  private readonly withdrawals: DkgWithdrawals;
  private readonly state: DkgStateFiles;
  private readonly now: () => number;
  private stopped = false;
  private committee: Committee;
  private selfId: number | undefined;

  constructor(private readonly o: DkgRunnerOptions) {
    this.committee = o.committee;
    this.selfId = o.selfId;
    this.withdrawals = o.withdrawals ?? DkgWithdrawals.none();
    this.state = o.state ?? DkgStateFiles.inMemory();
    this.now = o.now ?? Date.now;
    this.held = new HeldDkgKeys({
      keystore: o.keystore,
      state: this.state,
      withdrawals: this.withdrawals,
      identity: o.identity,
      transport: o.transport,
      log: o.log,
      metrics: o.metrics,
      served: () => ({ committee: this.committee, selfId: this.selfId }),
      ...(o.committeeAt === undefined ? {} : { committeeAt: o.committeeAt }),
      deliveryTimeoutMs: this.deliveryTimeoutMs(),
    });
  }

  /** A reshare committed: new DKGs run among the committee served now, under this node's id in it (undefined: it left). */
  serveCommittee(committee: Committee, selfId: number | undefined): void {
    this.committee = committee;
    this.selfId = selfId;
  }

  private requireSelf(): number {
    if (this.selfId === undefined) {
      throw new TkmsError('unauthorized', `this node is not a member of committee ${this.committee.committeeId} at epoch ${this.committee.epoch}; it takes part in no DKG`);
    }
    return this.selfId;
  }

  // --- held keys (node/dkg-held-keys.ts) ---------------------------------------------------

  /** Registers a key already on disk, so a second DKG for it is refused; `share` false: a result held without a share. */
  addHeldKey(result: DkgPublicResult, share = true): void {
    this.held.addHeldKey(result, share);
  }

  /** Loads the results this node holds no share of (DkgStateFiles), checked against their epoch's committee. */
  loadPublicOnlyResults(): void {
    this.held.loadPublicOnlyResults();
  }

  /** Whether a held key was withdrawn before this version (a split proven by the DKG that had no certificate): its share is not served. */
  isWithdrawn(keyId: string): boolean {
    return this.held.isWithdrawn(keyId);
  }

  /** Whether this node holds a share of a held key (false: public result only, no partials served). */
  holdsShare(keyId: string): boolean {
    return this.held.holdsShare(keyId);
  }

  /** Registers a key stored with pre-v2 signatures (the caller checked they confirm it under the old rule): re-signed with the other members. */
  addLegacyKey(result: DkgPublicResult): void {
    this.held.addLegacyKey(result);
  }

  /** Every held key, including ones still being re-signed, withdrawn or held without a share (the admin view). */
  heldKeys(): DkgPublicResult[] {
    return this.held.heldKeys();
  }

  /** What /tkms/keys/1 answers: held keys with valid v2 signatures that were not withdrawn. */
  publishedKeys(): DkgPublicResult[] {
    return this.held.publishedKeys();
  }

  /** Sends every held key's result with the signatures this node knows to one member (on connect). */
  exchangeResults(memberId: number, onlyUpgrading = false): void {
    this.held.exchangeResults(memberId, onlyUpgrading);
  }

  stop(): void {
    this.stopped = true;
    this.held.stop();
    for (const s of this.sessions.values()) s.driver.stop();
  }

  // --- admin API ---------------------------------------------------------------------------

  status(keyId: string): DkgStatus {
    assertKeyId(keyId);
    const s = this.sessions.get(keyId);
    const withdrawn = this.withdrawals.get(keyId);
    if (s === undefined) {
      const held = this.held.get(keyId);
      if (held === undefined) throw new TkmsError('unknown_key', `no DKG known for key id ${keyId}`);
      return heldKeyStatus(keyId, held, withdrawn, this.holdsShare(keyId));
    }
    return sessionStatus(s, withdrawn);
  }

  /** POST /admin/dkg: this node proposes a DKG of keyId to the committee it serves. */
  propose(keyId: string): DkgStatus {
    this.refuseIfStopped();
    assertKeyId(keyId);
    const selfId = this.requireSelf();
    const sessionId = randomBytes(SESSION_ID_LENGTH);
    this.refuseIfBusy(keyId, encodeHex(sessionId));
    const proposal: DkgProposal = { type: 'proposal', keyId, sessionId, committeeId: this.committee.committeeId, epoch: this.committee.epoch, t: this.committee.t, proposer: selfId };
    const s = this.newSession(proposal, selfId);
    s.announce = encodeDkgFrame(proposal);
    this.o.log.info({ keyId, sessionId: s.sid, t: proposal.t, n: this.committee.members.length }, 'proposing DKG');
    // Queued first on every member's FIFO, so the proposal precedes this node's first message.
    for (const m of othersOf(s)) {
      s.delivery.enqueue(m, s.announce, {
        mustQueue: true,
        payload: s.announce,
        onReply: (reply) => {
          if (reply.ok) return;
          s.refusals.set(m.id, `${reply.code}: ${reply.message}`);
          this.o.log.warn({ keyId, member: m.id, code: reply.code, reason: reply.message }, 'member refused the DKG proposal');
        },
      });
    }
    this.start(s);
    return this.status(keyId);
  }

  /** A second DKG for a key id held, served, running or voted for here is refused; so is one while a reshare runs. */
  private refuseIfBusy(keyId: string, sid: string): void {
    this.requireSelf();
    this.o.admitKeyId?.(keyId);
    if (this.o.reshareBusy?.() === true) throw new TkmsError('reshare_in_progress', `a reshare or refresh of this node's committee is running; propose the DKG of ${keyId} once it finished`);
    if (this.held.has(keyId) || this.o.keystore.list().includes(keyId) || (this.o.servedKeyIds?.() ?? []).includes(keyId)) {
      throw new TkmsError('conflict', `key id ${keyId} already exists on this node; a second DKG is refused`);
    }
    const s = this.sessions.get(keyId);
    if (s !== undefined && s.status === 'running') throw new TkmsError('conflict', `a DKG for key id ${keyId} is already running (session ${s.sid})`);
    if (s !== undefined && s.status === 'done') throw new TkmsError('conflict', `a DKG for key id ${keyId} already completed on this node`);
    const voted = this.state.vote(keyId);
    if (voted !== undefined && voted.sessionId !== sid) {
      throw new TkmsError('conflict', `this node voted in DKG session ${voted.sessionId} of key id ${keyId}; a vote is never withdrawn, so it takes part in no other session for that key id (use another key id)`);
    }
    const running = [...this.sessions.values()].filter((r) => r.status === 'running').length;
    if (running >= MAX_RUNNING_SESSIONS) throw new TkmsError('unavailable', `${MAX_RUNNING_SESSIONS} DKGs are running on this node; propose again once one finished`);
  }

  // --- libp2p ------------------------------------------------------------------------------

  /** A reply frame refusing a request before it reaches any session (e.g. from a non-member). */
  refusal(e: TkmsError): Uint8Array {
    return encodeCeremonyReply({ ok: false, code: e.code, message: e.message });
  }

  /** Protocol entry point: a frame from an authenticated member. Always answers a reply frame. */
  async answerFrame(fromMember: number, bytes: Uint8Array): Promise<Uint8Array> {
    let reply: CeremonyReply = { ok: true };
    try {
      this.refuseIfStopped();
      await this.onFrame(fromMember, decodeDkgFrame(bytes));
    } catch (e) {
      const err = isTkmsError(e) ? e : new TkmsError('internal', 'DKG frame handling failed');
      if (!isTkmsError(e)) this.o.log.error({ err: errorText(e), from: fromMember }, 'unexpected error handling a DKG frame');
      reply = { ok: false, code: err.code, message: err.message };
    }
    return encodeCeremonyReply(reply);
  }

  private async onFrame(from: number, frame: DkgFrame): Promise<void> {
    if (frame.type === 'proposal') {
      // Only for a proposal that could be accepted (its author, this committee, epoch and t): nobody
      // makes this node ask another member anything with a proposal refused anyway.
      const c = this.committee;
      if (frame.proposer === from && frame.committeeId === c.committeeId && frame.epoch === c.epoch && frame.t === c.t && !this.sessions.has(frame.keyId)) {
        await this.o.beforeProposal?.(frame.keyId, from);
      }
      return this.acceptProposal(from, frame);
    }
    if (frame.type === 'result') return this.held.onResultFrame(from, frame);
    const s = this.sessions.get(frame.keyId);
    if (s === undefined || s.sid !== encodeHex(frame.sessionId)) {
      try {
        this.early.hold(String(from), sessionKey(frame.keyId, frame.sessionId), frame.payload, this.now());
      } catch {
        throw new TkmsError('unavailable', `no DKG session ${encodeHex(frame.sessionId)} of key id ${frame.keyId} runs here, and enough early messages from member ${from} are held; send it again later`);
      }
      // Held, not acknowledged: the sender sends it again should the hold run out before a session takes it.
      throw new TkmsError('unavailable', `no DKG session ${encodeHex(frame.sessionId)} of key id ${frame.keyId} runs here yet; the message is held, send it again later`);
    }
    s.timeline.received(frame.payload, this.now());
    await this.earlyReplies.answer(
      String(from),
      async () => {
        let repeat = false;
        await s.driver.step(() => {
          repeat = s.ceremony.isRepeat(frame.payload);
          return s.ceremony.receive(frame.payload, this.now());
        });
        if (s.status === 'done') this.answerLaggard(s, from, repeat);
      },
      // The sender has its answer already (node/early-replies.ts): a refusal found later is logged here.
      (e: unknown) => this.o.log.debug({ keyId: s.keyId, from, err: errorText(e) }, 'a DKG message taken from a member was refused'),
    );
  }

  private acceptProposal(from: number, p: DkgProposal): void {
    const selfId = this.requireSelf();
    if (p.proposer !== from) throw new TkmsError('unauthorized', `proposal claims proposer ${p.proposer} but came from member ${from}`);
    if (p.committeeId !== this.committee.committeeId || p.epoch !== this.committee.epoch) {
      throw new TkmsError('bad_request', `proposal is for committee ${p.committeeId} at epoch ${p.epoch}; this node serves ${this.committee.committeeId} at epoch ${this.committee.epoch}`);
    }
    if (p.t !== this.committee.t) throw new TkmsError('bad_request', `proposal has t = ${p.t}, the committee served (epoch ${this.committee.epoch}) has t = ${this.committee.t}`);
    const sid = encodeHex(p.sessionId);
    const existing = this.sessions.get(p.keyId);
    // A retried delivery, or the proposer's retransmit, of a proposal accepted here.
    if (existing !== undefined && existing.sid === sid) return;
    this.refuseIfBusy(p.keyId, sid);
    this.o.log.info({ keyId: p.keyId, sessionId: sid, proposer: from }, 'accepted DKG proposal');
    this.start(this.newSession(p, selfId));
  }

  // --- the ceremony ------------------------------------------------------------------------

  private newSession(p: DkgProposal, selfId: number): DkgSession {
    const committee = this.committee;
    const sid = encodeHex(p.sessionId);
    const prior = this.state.vote(p.keyId);
    const params: DkgCeremonyParams = {
      keyId: p.keyId,
      committee,
      sessionId: p.sessionId,
      seed: this.o.seed,
      ...(prior !== undefined && prior.sessionId === sid ? { priorVote: prior.vote } : {}),
      ...curveParam(this.o.curveOf?.(p.keyId)),
    };
    const ceremony = this.o.createCeremony(params, this.o.identity, { timing: { phaseMs: this.o.phaseMs }, ...(this.o.faults === undefined ? {} : { faults: this.o.faults }) });
    const s = newDkgSession(p, committee, selfId, ceremony, {
      send: async (to, frame): Promise<FrameReply> => decodeCeremonyReply(await this.o.transport.send(to.id, frame, this.deliveryTimeoutMs())),
      persistVote: (vote) => this.state.recordVote(p.keyId, sid, vote),
      afterStep: (session) => this.afterStep(session),
      isStopped: () => this.stopped,
      log: this.o.log,
      metrics: this.o.metrics,
      now: this.now,
    });
    this.sessions.set(p.keyId, s);
    return s;
  }

  private start(s: DkgSession): void {
    void s.driver.step(() => s.ceremony.start(s.startedAt)).catch((e: unknown) => this.finish(s, 'aborted', `could not start: ${errorText(e)}`));
    for (const early of this.early.take(sessionKey(s.keyId, s.sessionId), this.now())) {
      s.driver.step(() => s.ceremony.receive(early.payload, this.now())).catch((e: unknown) => {
        this.o.log.debug({ keyId: s.keyId, from: early.peer, err: errorText(e) }, 'an early DKG message was refused');
      });
    }
    s.driver.startRetransmits(Math.max(50, Math.floor(this.o.phaseMs / 2)), () => this.retransmit(s));
  }

  private retransmit(s: DkgSession): void {
    if (this.stopped) return;
    if (s.finishedAt !== undefined && this.now() - s.finishedAt > LINGER_PHASES * this.o.phaseMs) {
      s.driver.stopRetransmits();
      return;
    }
    s.driver.retransmitRound(
      () => s.ceremony.retransmit(this.now()),
      () => {
        // Until a member took it, and in full rounds (a member that restarted has no session: it takes it again).
        const announce = s.announce;
        if (announce !== undefined && s.status === 'running') for (const m of othersOf(s)) if (!s.delivery.wasAcked(m, announce)) s.delivery.enqueue(m, announce, { mustQueue: false, payload: announce });
      },
    );
  }

  /** The certificate again to a member that may lack it (answersLaggard), at most once per phase. */
  private answerLaggard(s: DkgSession, from: number, repeat: boolean): void {
    const member = othersOf(s).find((m) => m.id === from);
    const certificate = certificateMessage(s.ceremony.retransmit());
    if (member === undefined || certificate === undefined) return;
    if (!answersLaggard({ repeat, lacksCertificate: s.ceremony.lacksCertificate(member.publicKey), finishedAt: s.finishedAt, nowMs: this.now(), phaseMs: this.o.phaseMs })) return;
    const last = s.laggardsAnswered.get(from);
    if (last !== undefined && this.now() - last < this.o.phaseMs) return;
    s.laggardsAnswered.set(from, this.now());
    s.delivery.enqueue(member, encodeDkgFrame({ type: 'payload', keyId: s.keyId, sessionId: s.sessionId, payload: certificate.payload }), { mustQueue: false, payload: certificate.payload });
  }

  private afterStep(s: DkgSession): void {
    const ceremony = s.ceremony;
    if (ceremony.phase !== s.phase) {
      const now = this.now();
      this.o.metrics.dkgPhaseSeconds.observe({ phase: s.phase }, (now - s.phaseStartedAt) / 1000);
      this.o.log.debug({ keyId: s.keyId, from: s.phase, to: ceremony.phase }, 'DKG phase');
      s.phase = ceremony.phase;
      s.phaseStartedAt = now;
    }
    // A certificate may arrive after this node gave up at its final deadline (others re-send it a
    // while): the key is made all the same, so store it rather than hold no share of it for good.
    if (ceremony.phase === 'done' && s.status === 'aborted' && !s.committing) {
      s.committing = true;
      this.o.log.info({ keyId: s.keyId, sessionId: s.sid }, 'the certificate of a DKG this node had given up on arrived; storing it');
      void this.complete(s);
      return;
    }
    if (s.status !== 'running') return;
    if (ceremony.phase === 'done') {
      if (s.committing) return;
      s.committing = true;
      s.driver.stopTick();
      void this.complete(s);
      return;
    }
    if (ceremony.phase === 'failed') {
      this.finish(s, 'aborted', ceremony.failureReason ?? 'the DKG failed');
      return;
    }
    if (pastFinalDeadline(s.startedAt, this.o.phaseMs, s.committee.members.length, this.now())) {
      this.finish(s, 'aborted', 'no certificate by the final deadline');
      return;
    }
    s.driver.armTick(ceremony.nextDeadline(), this.now(), () => {
      void s.driver.step(() => ceremony.tick(this.now())).catch((e: unknown) => this.o.log.error({ keyId: s.keyId, err: errorText(e) }, 'DKG tick failed'));
    });
  }

  /** The certified result, checked, then the share (or the public result alone) on disk, then served. */
  private async complete(s: DkgSession): Promise<void> {
    const outcome = s.ceremony.outcome();
    if (outcome === undefined) {
      this.finish(s, 'aborted', 'the DKG reported done without an outcome');
      return;
    }
    try {
      const result = verifyDkgPublicResult(outcome.result, expectedCommittee(s.committee));
      if (result.keyId !== s.keyId || result.sessionId !== s.sid) throw new TkmsError('internal', 'the certified result names another key id or session');
      if (result.curve !== this.o.curveOf?.(s.keyId)) throw new TkmsError('internal', 'the certified result is of another curve than the key');
      s.timeline.mark('certified', this.now());
      if (outcome.share !== undefined) {
        await this.o.keystore.save({ keyId: s.keyId, share: outcome.share, publicResult: publicResultToJson(result) });
        this.o.onKeyStored?.(result, outcome.share);
      } else {
        await this.state.savePublicOnly(result);
        this.o.onPublicResultStored?.(result);
      }
      s.timeline.mark('sharesOnDisk', this.now());
      s.result = result;
      s.share = outcome.share !== undefined;
      this.addHeldKey(result, s.share);
      this.finish(s, 'done', undefined);
    } catch (e) {
      this.finish(s, 'aborted', `the DKG finished but its result could not be stored: ${errorText(e)}`);
    }
  }

  private finish(s: DkgSession, status: 'done' | 'aborted', reason: string | undefined): void {
    // aborted → done happens once, when a late certificate was stored (afterStep); nothing else changes a finished session.
    if (s.status === 'done' || (s.status === 'aborted' && !(status === 'done' && s.committing))) return;
    s.driver.stopTick();
    // A finished session keeps re-sending its certificate a while (LINGER_PHASES); a failed one stops.
    if (status === 'aborted') s.driver.stopRetransmits();
    s.status = status;
    s.finishedAt = this.now();
    s.abortReason = reason;
    const seconds = (s.finishedAt - s.startedAt) / 1000;
    this.o.metrics.dkgSessions.inc({ outcome: status });
    this.o.metrics.dkgDurationSeconds.observe({ outcome: status }, seconds);
    const fields = { keyId: s.keyId, sessionId: s.sid, seconds, disqualified: s.ceremony.disqualified() };
    this.o.log.debug({ keyId: s.keyId, startedAt: s.startedAt, ...s.timeline.summary() }, 'ceremony timeline (ms after the approval)');
    if (status === 'aborted') this.o.log.error({ ...fields, reason }, 'DKG aborted');
    else if (s.share === true) this.o.log.info({ ...fields, groupPublicKey: s.result?.groupPublicKey, qualified: s.result?.qualified }, 'DKG completed; share stored');
    else {
      this.o.log.warn(
        { ...fields, groupPublicKey: s.result?.groupPublicKey, qualified: s.result?.qualified },
        'DKG completed without a share here (this node missed the hello or a sub-share): public result stored, no partials served for this key until a refresh gives it a share',
      );
    }
  }

  // --- helpers -----------------------------------------------------------------------------

  /** Long enough for a loaded peer to answer; retries are safe (the engine drops duplicates). */
  private deliveryTimeoutMs(): number {
    return Math.max(2_000, Math.min(this.o.phaseMs, 15_000));
  }

  private refuseIfStopped(): void {
    if (this.stopped) throw new TkmsError('unavailable', 'node is stopping');
  }
}

function curveParam(curve: 'ed25519' | undefined): { curve?: 'ed25519' } {
  return curve === undefined ? {} : { curve };
}
