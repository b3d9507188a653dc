import type { Logger } from 'pino';
import { assertKeyId, decodeHex, encodeHex, isTkmsError, randomBytes, TkmsError, type ErrorCode } from '../core/index.ts';
import {
  confirmMessage,
  decodeDkgMessage,
  dkgPublicResultDigest,
  DkgSession,
  verifyDkgPublicResult,
  verifyMemberSignature,
  type DkgFaults,
  type DkgIdentity,
  type DkgOutbound,
  type DkgPhase,
  type DkgPublicResult,
  type ExpectedCommittee,
} from '../core/dkg/index.ts';
import { messageToSign, sessionContext } from '../core/dkg/context.ts';
import type { Committee } from '../net/committee.ts';
import {
  decodeDkgFrame,
  decodeDkgReply,
  encodeDkgFrame,
  encodeDkgReply,
  sessionKey,
  SESSION_ID_LENGTH,
  type DkgFrame,
  type DkgProposal,
  type DkgReply,
  type DkgResultFrame,
} from './dkg-wire.ts';
import { SessionClaims } from './dkg-claims.ts';
import { DkgWithdrawals } from './dkg-withdrawals.ts';
import type { Keystore } from './keystore.ts';
import type { NodeMetrics } from './metrics.ts';
import { errorText } from '../net/p2p.ts';

/** How the runner reaches another member: one frame out, one reply frame back. */
export interface DkgTransport {
  send(memberId: number, frame: Uint8Array, timeoutMs: number): Promise<Uint8Array>;
}

export interface DkgRunnerOptions {
  committee: Committee;
  selfId: number;
  identity: DkgIdentity;
  keystore: Keystore;
  transport: DkgTransport;
  log: Logger;
  metrics: NodeMetrics;
  phaseTimeoutMs: number;
  faults: DkgFaults | undefined;
  /** Called once the share is durable in the keystore, so the node can serve partials at once. */
  onKeyStored?: (result: DkgPublicResult, share: bigint) => void;
  /** Called when a member holds a different valid result of the same session for a held key (a proven split): stop serving it. */
  onKeyWithdrawn?: (keyId: string) => void;
  /** Where withdrawals are kept across restarts (default: in memory only). */
  withdrawals?: DkgWithdrawals;
  /** The committee epoch served (default 0): results made at epoch ≥ 1 carry it. */
  servedEpoch?: () => number;
  /** Whether a reshare or refresh of this node is approved and not finished: no new DKG starts meanwhile (its key would not move). */
  reshareBusy?: () => boolean;
  /**
   * The committee of an earlier epoch (from the handover chain): a result is checked against the
   * committee of the epoch it was made at, which a reshare may have replaced since. Default: none
   * (only the committee served).
   */
  committeeAt?: (epoch: number) => ExpectedCommittee | undefined;
  /**
   * Key ids the committee serves at its epoch (NodeEpochStore.epochKeys): a key a reshare moved here
   * has no DKG file in the keystore, yet a second DKG for its id must be refused like any other.
   */
  servedKeyIds?: () => readonly string[];
}

export type DkgStatusName = 'running' | 'done' | 'aborted';

/** What the admin endpoint reports about a key id's DKG. */
export interface DkgStatus {
  keyId: string;
  sessionId: string;
  /** Unknown (null) for keys loaded from the keystore at start. */
  proposer: number | null;
  status: DkgStatusName;
  phase: DkgPhase;
  startedAt: string | null;
  durationMs: number | undefined;
  abortReason: string | undefined;
  /** Set when the DKG or the held key failed for a reason clients switch on (dkg_conflict). */
  errorCode: ErrorCode | undefined;
  disqualified: Record<string, string>;
  refusals: Record<string, string>;
  result: DkgPublicResult | undefined;
}

interface SessionState {
  keyId: string;
  sessionId: Uint8Array;
  proposer: number;
  session: DkgSession;
  status: DkgStatusName;
  phase: DkgPhase;
  startedAt: number;
  phaseStartedAt: number;
  finishedAt: number | undefined;
  abortReason: string | undefined;
  errorCode: ErrorCode | undefined;
  refusals: Map<number, string>;
  result: DkgPublicResult | undefined;
  timer: NodeJS.Timeout | undefined;
  deadlinesPassed: number;
  /** Per-destination FIFO: messages to one member arrive in the order the session emitted them. */
  outQueues: Map<number, Promise<void>>;
  /** Digest of the first valid result of this session another member announced (compared with ours before storing). */
  announcedDigest: { from: number; digest: string } | undefined;
  /** Set once a member announced a different result of this session: nothing is stored. */
  conflict: string | undefined;
}

interface PendingPayload {
  from: number;
  payload: Uint8Array;
  at: number;
}

/** Deadlines after which a session that still has not finished is given up. */
const MAX_DEADLINES = 12;
const DELIVERY_ATTEMPTS = 4;
const PENDING_TTL_MS = 60_000;
const MAX_PENDING_SESSIONS = 32;
const MAX_PENDING_PER_SESSION = 4096;
/** Stored results without v2 signatures are re-announced this often until t members re-signed them. */
const UPGRADE_EXCHANGE_INTERVAL_MS = 10_000;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

/**
 * Runs DKG sessions over the network: accepts or refuses proposals, routes framed
 * payloads to the right session, delivers what sessions emit, enforces per-phase
 * deadlines by calling advance(), and stores the share when a session completes.
 */
export class DkgRunner {
  private readonly sessions = new Map<string, SessionState>();
  private readonly pending = new Map<string, PendingPayload[]>();
  /** Public results of keys in the keystore (loaded at start, added on completion). */
  private readonly held = new Map<string, DkgPublicResult>();
  /**
   * Keys stored before results were signed whole (70e9873): member id → v2 signature over this
   * node's stored result. Not published until t members signed the same result.
   */
  private readonly upgrading = new Map<string, Map<number, string>>();
  private readonly persisting = new Set<string>();
  private claims: SessionClaims;
  /** Held keys another member holds a different valid result of the same session for: not served, kept on disk. */
  private readonly withdrawals: DkgWithdrawals;
  private expected: ExpectedCommittee;
  private upgradeTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  private committee: Committee;
  private selfId: number;
  /** False once a reshare left this node out of the committee served: it takes part in no DKG. */
  private member = true;
  private identity: DkgIdentity;
  private readonly keystore: Keystore;
  private readonly transport: DkgTransport;
  private readonly log: Logger;
  private readonly metrics: NodeMetrics;
  private readonly phaseTimeoutMs: number;
  private readonly faults: DkgFaults | undefined;
  private readonly onKeyStored: DkgRunnerOptions['onKeyStored'];
  private readonly onKeyWithdrawn: DkgRunnerOptions['onKeyWithdrawn'];
  private readonly servedEpoch: () => number;
  private readonly reshareBusy: () => boolean;
  private readonly committeeAt: (epoch: number) => ExpectedCommittee | undefined;
  private readonly servedKeyIds: () => readonly string[];

  constructor(options: DkgRunnerOptions) {
    this.committee = options.committee;
    this.selfId = options.selfId;
    this.identity = options.identity;
    this.keystore = options.keystore;
    this.transport = options.transport;
    this.log = options.log;
    this.metrics = options.metrics;
    this.phaseTimeoutMs = options.phaseTimeoutMs;
    this.faults = options.faults;
    this.onKeyStored = options.onKeyStored;
    this.onKeyWithdrawn = options.onKeyWithdrawn;
    this.withdrawals = options.withdrawals ?? DkgWithdrawals.inMemory();
    this.servedEpoch = options.servedEpoch ?? (() => 0);
    this.reshareBusy = options.reshareBusy ?? (() => false);
    this.committeeAt = options.committeeAt ?? (() => undefined);
    this.servedKeyIds = options.servedKeyIds ?? (() => []);
    this.expected = { committeeId: this.committee.committeeId, t: this.committee.t, memberKeys: this.identity.memberKeys };
    this.claims = new SessionClaims(this.committee.t);
  }

  /**
   * A reshare committed: new DKGs run among the committee served now, under this node's id in it
   * (undefined: it left and refuses DKG proposals). Held results keep being checked against the
   * committee of their own epoch (committeeAt). Called when no DKG runs (reshareBusy refuses them).
   */
  serveCommittee(committee: Committee, selfId: number | undefined, identity: DkgIdentity): void {
    this.committee = committee;
    this.member = selfId !== undefined;
    if (selfId !== undefined) this.selfId = selfId;
    this.identity = identity;
    this.expected = { committeeId: committee.committeeId, t: committee.t, memberKeys: identity.memberKeys };
    this.claims = new SessionClaims(committee.t);
  }

  /** The committee a result must verify against: the one of the epoch it carries. */
  private expectedFor(result: DkgPublicResult): ExpectedCommittee {
    const epoch = result.epoch ?? 0;
    if (epoch === this.committee.epoch) return this.expected;
    return this.committeeAt(epoch) ?? this.expected;
  }

  private refuseIfNotMember(): void {
    if (!this.member) {
      throw new TkmsError('unauthorized', `this node is not a member of committee ${this.committee.committeeId} at epoch ${this.committee.epoch}; it takes part in no DKG`);
    }
  }

  /** Registers keys already in the keystore, so a second DKG for them is refused. */
  addHeldKey(result: DkgPublicResult): void {
    this.held.set(result.keyId, result);
    this.metrics.keysHeld.set(this.held.size);
  }

  /** Whether a held key was withdrawn (now or before a restart): its share must not be served. */
  isWithdrawn(keyId: string): boolean {
    return this.withdrawals.get(keyId) !== undefined;
  }

  /**
   * Registers a key stored with pre-v2 signatures (the caller checked they confirm it under the
   * old rule). This node signs the digest of its own stored result; the result is published
   * again once t members' signatures over that same digest arrived (exchangeResults).
   */
  addLegacyKey(result: DkgPublicResult): void {
    this.addHeldKey(result);
    const own = encodeHex(this.identity.sign(this.resultMessage(result)));
    this.upgrading.set(result.keyId, new Map([[this.selfId, own]]));
    this.log.warn({ keyId: result.keyId }, 'stored DKG result has pre-v2 signatures; re-signing it with the other members');
    if (this.upgradeTimer === undefined) {
      this.upgradeTimer = setInterval(() => {
        if (this.upgrading.size === 0) return;
        for (const m of this.committee.members) if (m.id !== this.selfId) this.exchangeResults(m.id, true);
      }, UPGRADE_EXCHANGE_INTERVAL_MS);
      this.upgradeTimer.unref();
    }
  }

  /** Every held key, including ones still being re-signed or withdrawn (the admin view). */
  heldKeys(): DkgPublicResult[] {
    return [...this.held.values()].sort((a, b) => (a.keyId < b.keyId ? -1 : 1));
  }

  /** What /tkms/keys/1 answers: held keys with valid v2 signatures that no member disputes. */
  publishedKeys(): DkgPublicResult[] {
    return this.heldKeys().filter((r) => !this.upgrading.has(r.keyId) && !this.isWithdrawn(r.keyId));
  }

  stop(): void {
    this.stopped = true;
    if (this.upgradeTimer !== undefined) clearInterval(this.upgradeTimer);
    for (const s of this.sessions.values()) if (s.timer !== undefined) clearTimeout(s.timer);
  }

  /**
   * Sends every held key's result with the signatures this node knows to one member (on connect,
   * and periodically while a result is being re-signed): members merge signatures over the same
   * result, and notice a different one for the same key id.
   */
  exchangeResults(memberId: number, onlyUpgrading = false): void {
    if (this.stopped) return;
    for (const keyId of this.held.keys()) {
      if (this.isWithdrawn(keyId) || (onlyUpgrading && !this.upgrading.has(keyId))) continue;
      void this.sendResult(memberId, keyId);
    }
  }

  private async sendResult(memberId: number, keyId: string): Promise<void> {
    const result = this.resultToAnnounce(keyId);
    if (result === undefined) return;
    try {
      const reply = decodeDkgReply(
        await this.transport.send(memberId, encodeDkgFrame({ type: 'result', keyId, sessionId: decodeHex(result.sessionId), result }), this.deliveryTimeoutMs()),
      );
      if (!reply.ok) this.log.warn({ keyId, member: memberId, code: reply.code, reason: reply.message }, 'member disputes a held DKG result');
    } catch (e) {
      this.log.debug({ keyId, member: memberId, err: errorText(e) }, 'could not send a held DKG result');
    }
  }

  /** The held result as announced: while re-signing, with the v2 signatures gathered so far. */
  private resultToAnnounce(keyId: string): DkgPublicResult | undefined {
    const held = this.held.get(keyId);
    if (held === undefined) return undefined;
    const upgrading = this.upgrading.get(keyId);
    return upgrading === undefined ? held : { ...held, signatures: Object.fromEntries(upgrading) };
  }

  private resultMessage(result: DkgPublicResult): Uint8Array {
    return confirmMessage(dkgPublicResultDigest(result, this.expectedFor(result).memberKeys));
  }

  private digestHex(result: DkgPublicResult): string {
    return encodeHex(dkgPublicResultDigest(result, this.expectedFor(result).memberKeys));
  }

  private isValid(result: DkgPublicResult): boolean {
    try {
      verifyDkgPublicResult(result, this.expectedFor(result));
      return true;
    } catch {
      return false;
    }
  }

  /** Only for a proven split (two valid results of one session): the key is not served again, even after a restart. */
  private withdraw(keyId: string, reason: string): void {
    if (this.isWithdrawn(keyId)) return;
    this.metrics.dkgConflicts.inc({ kind: 'withdrawn' });
    this.onKeyWithdrawn?.(keyId);
    this.log.error({ keyId, code: 'dkg_conflict', reason }, 'members hold different valid results of one DKG session for a held key id; it is no longer served');
    this.withdrawals.add(keyId, reason).catch((e: unknown) => {
      this.log.error({ keyId, err: errorText(e) }, 'could not record the withdrawal on disk; the key stays withdrawn until this process stops');
    });
  }

  /**
   * A member's held or about-to-be-stored result. The same result (equal digest): merge
   * signatures. Another result of the same session: a split if both are valid; a held key is
   * withdrawn, a pending one is not stored. Another session for a held key: refused, and never a
   * reason to stop serving it (members that missed a DKG can be led through a second one).
   */
  private onResultFrame(from: number, frame: DkgResultFrame): void {
    const sid = encodeHex(frame.sessionId);
    const held = this.held.get(frame.keyId);
    if (held !== undefined) {
      if (held.sessionId !== sid) {
        this.metrics.dkgConflicts.inc({ kind: 'other_session' });
        this.log.warn({ keyId: frame.keyId, from, sessionId: sid, held: held.sessionId }, 'a member announced another DKG session for a held key id; refused, the held key is kept');
        throw new TkmsError('dkg_conflict', `this node holds key ${frame.keyId} from another DKG session (${held.sessionId})`);
      }
      if (this.digestHex(frame.result) === this.digestHex(held)) {
        this.mergeSignatures(from, held, frame.result);
        return;
      }
      this.metrics.dkgConflicts.inc({ kind: 'same_session' });
      if (this.isValid(frame.result)) {
        this.withdraw(frame.keyId, `member ${from} holds a different valid result of the same session ${sid}: the DKG split`);
      }
      throw new TkmsError('dkg_conflict', `this node holds a different result of DKG session ${sid} for key ${frame.keyId}`);
    }
    const valid = this.isValid(frame.result);
    // Only a result t members signed is evidence of a session; the sender's word alone is not.
    if (valid) this.claims.noteResult(frame.keyId, sid, from);
    const s = this.sessions.get(frame.keyId);
    if (s === undefined) return;
    if (encodeHex(s.sessionId) !== sid) {
      if (s.status !== 'aborted') throw new TkmsError('dkg_conflict', `another DKG session (${encodeHex(s.sessionId)}) for key ${frame.keyId} ran here`);
      return;
    }
    const digest = this.digestHex(frame.result);
    const own = s.session.phase === 'done' ? s.session.result : undefined;
    const other = own !== undefined ? this.digestHex(own) : valid ? (s.announcedDigest ??= { from, digest }).digest : undefined;
    if (other !== undefined && other !== digest) {
      s.conflict ??= `member ${from} announced a different result of this session`;
      this.metrics.dkgConflicts.inc({ kind: 'same_session' });
      this.log.error({ keyId: frame.keyId, from, sessionId: sid }, 'a member announced a different result of this DKG session; it will not be stored');
      throw new TkmsError('dkg_conflict', `this node has a different result of DKG session ${sid} for key ${frame.keyId}`);
    }
  }

  private mergeSignatures(from: number, held: DkgPublicResult, incoming: DkgPublicResult): void {
    const keyId = held.keyId;
    const message = this.resultMessage(held);
    const upgrading = this.upgrading.get(keyId);
    const known = upgrading ?? new Map(Object.entries(held.signatures).map(([id, sig]) => [Number(id), sig] as const));
    let added = false;
    for (const [key, sig] of Object.entries(incoming.signatures)) {
      const id = Number(key);
      const publicKey = this.expectedFor(held).memberKeys.get(id);
      if (known.has(id) || publicKey === undefined || !verifyMemberSignature(publicKey, message, decodeHex(sig))) continue;
      known.set(id, sig);
      added = true;
    }
    if (added && upgrading === undefined) this.held.set(keyId, { ...held, signatures: Object.fromEntries(known) });
    if (upgrading !== undefined && known.size >= held.t) void this.persistUpgrade(keyId);
    // The sender lacks signatures we have: send ours back (sets only grow, so this ends).
    if ([...known.keys()].some((id) => !(String(id) in incoming.signatures))) void this.sendResult(from, keyId);
  }

  /** t members signed this node's stored legacy result: store it with those signatures, atomically. */
  private async persistUpgrade(keyId: string): Promise<void> {
    const held = this.held.get(keyId);
    const signatures = this.upgrading.get(keyId);
    if (held === undefined || signatures === undefined || this.persisting.has(keyId)) return;
    this.persisting.add(keyId);
    try {
      const upgraded = verifyDkgPublicResult({ ...held, signatures: Object.fromEntries(signatures) }, this.expectedFor(held));
      await this.keystore.replacePublicResult(keyId, publicResultToJson(upgraded));
      this.held.set(keyId, upgraded);
      this.upgrading.delete(keyId);
      this.log.info({ keyId, signers: Object.keys(upgraded.signatures).map(Number) }, 'stored DKG result re-signed by t members; published again');
    } catch (e) {
      this.log.error({ keyId, err: errorText(e) }, 'could not store the re-signed DKG result; will retry');
    } finally {
      this.persisting.delete(keyId);
    }
  }

  status(keyId: string): DkgStatus {
    assertKeyId(keyId);
    const s = this.sessions.get(keyId);
    if (s === undefined) {
      const held = this.held.get(keyId);
      if (held === undefined) throw new TkmsError('unknown_key', `no DKG known for key id ${keyId}`);
      const withdrawn = this.withdrawals.get(keyId);
      return {
        keyId,
        sessionId: held.sessionId,
        proposer: null,
        status: withdrawn === undefined ? 'done' : 'aborted',
        phase: 'done',
        startedAt: null,
        durationMs: undefined,
        abortReason: withdrawn,
        errorCode: withdrawn === undefined ? undefined : 'dkg_conflict',
        disqualified: {},
        refusals: {},
        result: held,
      };
    }
    return {
      keyId,
      sessionId: encodeHex(s.sessionId),
      proposer: s.proposer,
      status: s.status,
      phase: s.phase,
      startedAt: new Date(s.startedAt).toISOString(),
      durationMs: s.finishedAt === undefined ? undefined : s.finishedAt - s.startedAt,
      abortReason: this.withdrawals.get(keyId) ?? s.abortReason,
      errorCode: this.isWithdrawn(keyId) ? 'dkg_conflict' : s.errorCode,
      disqualified: Object.fromEntries([...s.session.disqualified].map(([id, why]) => [String(id), why])),
      refusals: Object.fromEntries([...s.refusals].map(([id, why]) => [String(id), why])),
      result: s.status === 'done' ? s.result : undefined,
    };
  }

  private refuseIfBusy(keyId: string): void {
    this.refuseIfNotMember();
    if (this.reshareBusy()) throw new TkmsError('reshare_in_progress', `a reshare or refresh of this node's committee is running; propose the DKG of ${keyId} once it finished`);
    if (this.held.has(keyId) || this.keystore.list().includes(keyId) || this.servedKeyIds().includes(keyId)) {
      throw new TkmsError('conflict', `key id ${keyId} already exists on this node; a second DKG is refused`);
    }
    const s = this.sessions.get(keyId);
    if (s !== undefined && s.status === 'running') {
      throw new TkmsError('conflict', `a DKG for key id ${keyId} is already running (session ${encodeHex(s.sessionId)})`);
    }
    if (s !== undefined && s.status === 'done') {
      throw new TkmsError('conflict', `a DKG for key id ${keyId} already completed on this node`);
    }
  }

  /** Admin entry point: this node proposes a DKG for keyId to the whole committee. */
  propose(keyId: string): DkgStatus {
    if (this.stopped) throw new TkmsError('unavailable', 'node is stopping');
    assertKeyId(keyId);
    this.refuseIfBusy(keyId);
    const proposal: DkgProposal = {
      type: 'proposal',
      keyId,
      sessionId: randomBytes(SESSION_ID_LENGTH),
      t: this.committee.t,
      committeeId: this.committee.committeeId,
      proposer: this.selfId,
    };
    const state = this.createSession(proposal);
    this.log.info({ keyId, sessionId: encodeHex(proposal.sessionId), t: proposal.t }, 'proposing DKG');
    const frame = encodeDkgFrame(proposal);
    for (const member of this.committee.members) {
      if (member.id === this.selfId) continue;
      // Queued on the member's FIFO so the proposal precedes our round-1 message.
      this.enqueue(state, member.id, frame, (reply) => {
        if (!reply.ok) {
          state.refusals.set(member.id, `${reply.code}: ${reply.message}`);
          this.log.warn({ keyId, member: member.id, reason: reply.message }, 'member refused the DKG proposal');
        }
      });
    }
    this.startSession(state);
    return this.status(keyId);
  }

  /** A reply frame refusing a request before it reaches any session (e.g. from a non-member). */
  refusal(e: TkmsError): Uint8Array {
    return encodeDkgReply({ ok: false, code: e.code, message: e.message });
  }

  /** Protocol entry point: a frame from an authenticated member. Always answers a reply frame. */
  async answerFrame(fromMember: number, bytes: Uint8Array): Promise<Uint8Array> {
    let reply: DkgReply;
    try {
      const frame = decodeDkgFrame(bytes);
      this.onFrame(fromMember, frame);
      reply = { ok: true };
    } catch (e) {
      const err = isTkmsError(e) ? e : new TkmsError('internal', 'DKG frame handling failed');
      if (!isTkmsError(e)) this.log.error({ err: errorText(e), from: fromMember }, 'unexpected error handling a DKG frame');
      reply = { ok: false, code: err.code, message: err.message };
    }
    return encodeDkgReply(reply);
  }

  private onFrame(from: number, frame: DkgFrame): void {
    if (this.stopped) throw new TkmsError('unavailable', 'node is stopping');
    if (frame.type === 'proposal') {
      this.acceptProposal(from, frame);
      return;
    }
    if (frame.type === 'result') {
      this.onResultFrame(from, frame);
      return;
    }
    const key = sessionKey(frame.keyId, frame.sessionId);
    const s = this.sessions.get(frame.keyId);
    if (s !== undefined && sessionKey(s.keyId, s.sessionId) === key) {
      this.deliverToSession(s, from, frame.payload);
      return;
    }
    this.noteSignedRound1(from, frame.keyId, frame.sessionId, frame.payload);
    this.bufferPending(key, { from, payload: frame.payload, at: Date.now() });
  }

  /**
   * A payload of a session not running here counts toward evidence of that session only if it is
   * the sender's own round-1 package, signed by it for this key id, committee and session; the
   * session is evidence once t dealers' packages were seen (SessionClaims).
   */
  private noteSignedRound1(from: number, keyId: string, sessionId: Uint8Array, payload: Uint8Array): void {
    const sid = encodeHex(sessionId);
    if (this.claims.hasRound1(keyId, sid, from)) return;
    try {
      const message = decodeDkgMessage(payload, { t: this.committee.t, n: this.committee.members.length });
      if (message.kind !== 'round1' || message.dealer !== from) return;
      const members = this.committee.members.map((m) => m.id).sort((a, b) => a - b);
      const context = sessionContext({ keyId, committeeId: this.committee.committeeId, sessionId, t: this.committee.t, memberIds: members, selfId: this.selfId }, members);
      if (this.identity.verify(from, messageToSign(context, message.signed), message.signature)) this.claims.noteRound1(keyId, sid, from);
    } catch {
      // Not a well-formed round-1 package: no evidence of anything.
    }
  }

  private acceptProposal(from: number, p: DkgProposal): void {
    this.refuseIfNotMember();
    if (p.proposer !== from) throw new TkmsError('unauthorized', `proposal claims proposer ${p.proposer} but came from member ${from}`);
    if (p.committeeId !== this.committee.committeeId) {
      throw new TkmsError('bad_request', `proposal is for committee ${p.committeeId}, this node is in ${this.committee.committeeId}`);
    }
    if (p.t !== this.committee.t) throw new TkmsError('bad_request', `proposal has t = ${p.t}, the committee served (epoch ${this.committee.epoch}) has t = ${this.committee.t}`);
    // A proposal is not evidence of a session, even one it races: one member could then block any
    // key id. A rival that can produce a key shows itself by t dealers' round-1 packages or by its
    // members' dkg_conflict answers to our pre-store announcement (uniquenessProblem).
    const existing = this.sessions.get(p.keyId);
    if (existing !== undefined && existing.proposer === p.proposer && sessionKey(existing.keyId, existing.sessionId) === sessionKey(p.keyId, p.sessionId)) {
      return; // a retried delivery of a proposal we already accepted
    }
    this.refuseIfBusy(p.keyId);
    this.log.info({ keyId: p.keyId, sessionId: encodeHex(p.sessionId), proposer: from }, 'accepted DKG proposal');
    const state = this.createSession(p);
    this.startSession(state);
    const key = sessionKey(p.keyId, p.sessionId);
    const queued = this.pending.get(key) ?? [];
    this.pending.delete(key);
    for (const item of queued) this.deliverToSession(state, item.from, item.payload);
  }

  private createSession(p: DkgProposal): SessionState {
    // A session that aborted here for its own reasons no longer blocks a retry for its key id; if
    // other members stored it anyway, they answer the retry's announcement with dkg_conflict.
    const previous = this.sessions.get(p.keyId);
    if (previous !== undefined && previous.status === 'aborted' && previous.errorCode !== 'dkg_conflict') {
      this.claims.forget(p.keyId, encodeHex(previous.sessionId));
    }
    const session = new DkgSession(
      {
        keyId: p.keyId,
        committeeId: p.committeeId,
        sessionId: p.sessionId,
        t: p.t,
        memberIds: this.committee.members.map((m) => m.id),
        selfId: this.selfId,
        ...(this.servedEpoch() > 0 ? { epoch: this.servedEpoch() } : {}),
      },
      this.identity,
      this.faults === undefined ? {} : { faults: this.faults },
    );
    const now = Date.now();
    const state: SessionState = {
      keyId: p.keyId,
      sessionId: p.sessionId,
      proposer: p.proposer,
      session,
      status: 'running',
      phase: session.phase,
      startedAt: now,
      phaseStartedAt: now,
      finishedAt: undefined,
      abortReason: undefined,
      errorCode: undefined,
      refusals: new Map(),
      result: undefined,
      timer: undefined,
      deadlinesPassed: 0,
      outQueues: new Map(),
      announcedDigest: undefined,
      conflict: undefined,
    };
    this.sessions.set(p.keyId, state);
    return state;
  }

  private startSession(s: SessionState): void {
    this.dispatch(s, s.session.start());
    this.afterStep(s, true);
  }

  private deliverToSession(s: SessionState, from: number, payload: Uint8Array): void {
    let out: DkgOutbound[];
    try {
      out = s.session.receive(from, payload);
    } catch (e) {
      // The contract says receive never throws; if it does, the message is dropped, not the node.
      this.log.error({ keyId: s.keyId, from, err: errorText(e) }, 'DKG session threw on receive');
      return;
    }
    this.dispatch(s, out);
    this.afterStep(s, false);
  }

  private dispatch(s: SessionState, out: DkgOutbound[]): void {
    for (const msg of out) {
      const frame = encodeDkgFrame({ type: 'payload', keyId: s.keyId, sessionId: s.sessionId, payload: msg.payload });
      const targets = msg.to === 'all' ? this.committee.members.map((m) => m.id).filter((id) => id !== this.selfId) : [msg.to];
      for (const to of targets) {
        if (to === this.selfId) continue;
        this.enqueue(s, to, frame);
      }
    }
  }

  /** Appends a delivery to the member's FIFO; failed sends are retried briefly, then dropped. */
  private enqueue(s: SessionState, to: number, frame: Uint8Array, onReply?: (reply: DkgReply) => void): void {
    const previous = s.outQueues.get(to) ?? Promise.resolve();
    const next = previous.then(async () => {
      for (let attempt = 1; attempt <= DELIVERY_ATTEMPTS && !this.stopped; attempt++) {
        try {
          const replyBytes = await this.transport.send(to, frame, this.deliveryTimeoutMs());
          const reply = decodeDkgReply(replyBytes);
          onReply?.(reply);
          if (!reply.ok) this.log.debug({ keyId: s.keyId, to, code: reply.code, reason: reply.message }, 'member rejected a DKG frame');
          return;
        } catch (e) {
          if (attempt === DELIVERY_ATTEMPTS) {
            this.log.warn({ keyId: s.keyId, to, err: errorText(e) }, 'giving up delivering a DKG message');
            return;
          }
          await sleep(150 * 2 ** (attempt - 1));
        }
      }
    });
    s.outQueues.set(to, next);
  }

  /** Long enough for a loaded peer to answer; retries are safe (sessions drop duplicates). */
  private deliveryTimeoutMs(): number {
    return Math.max(2_000, Math.min(this.phaseTimeoutMs, 15_000));
  }

  /** Notices phase changes: metrics, deadline timer, completion. */
  private afterStep(s: SessionState, force: boolean): void {
    if (s.status !== 'running') return;
    const phase = s.session.phase;
    if (phase === s.phase && !force) return;
    const now = Date.now();
    if (phase !== s.phase) {
      this.metrics.dkgPhaseSeconds.observe({ phase: s.phase }, (now - s.phaseStartedAt) / 1000);
      this.log.debug({ keyId: s.keyId, from: s.phase, to: phase }, 'DKG phase');
      s.phase = phase;
      s.phaseStartedAt = now;
      s.deadlinesPassed = 0;
    }
    if (s.timer !== undefined) clearTimeout(s.timer);
    s.timer = undefined;
    if (phase === 'done') void this.complete(s);
    else if (phase === 'aborted') this.finish(s, 'aborted', s.session.abortReason ?? 'aborted (no reason given)');
    else this.armDeadline(s);
  }

  private armDeadline(s: SessionState): void {
    s.timer = setTimeout(() => this.onDeadline(s), this.phaseTimeoutMs);
    s.timer.unref();
  }

  private onDeadline(s: SessionState): void {
    s.timer = undefined;
    if (s.status !== 'running' || this.stopped) return;
    s.deadlinesPassed++;
    this.log.info({ keyId: s.keyId, phase: s.phase }, 'DKG phase deadline passed; advancing with what arrived');
    let out: DkgOutbound[] = [];
    try {
      out = s.session.advance();
    } catch (e) {
      this.log.error({ keyId: s.keyId, err: errorText(e) }, 'DKG session threw on advance');
    }
    this.dispatch(s, out);
    if (s.session.phase !== s.phase) {
      this.afterStep(s, false);
      return;
    }
    if (s.deadlinesPassed >= MAX_DEADLINES) {
      this.finish(s, 'aborted', `DKG made no progress in phase ${s.phase} after ${MAX_DEADLINES} deadlines`);
      return;
    }
    this.armDeadline(s);
  }

  private async complete(s: SessionState): Promise<void> {
    const result = s.session.result;
    if (result === undefined) {
      this.finish(s, 'aborted', 'DKG reported done without a result');
      return;
    }
    let conflict: string | undefined;
    try {
      verifyDkgPublicResult(result, this.expectedFor(result));
      conflict = await this.uniquenessProblem(s, result);
    } catch (e) {
      this.finish(s, 'aborted', `DKG finished but its result could not be stored: ${errorText(e)}`);
      return;
    }
    const digest = this.digestHex(result);
    if (conflict === undefined && s.announcedDigest !== undefined && s.announcedDigest.digest !== digest) {
      s.conflict ??= `member ${s.announcedDigest.from} announced a different result of this session`;
    }
    conflict ??= s.conflict;
    if (conflict !== undefined) {
      // Our t-signed result is evidence of this session: a retry for the key id waits out the claims.
      this.claims.noteResult(s.keyId, encodeHex(s.sessionId), this.selfId);
      s.errorCode = 'dkg_conflict';
      this.metrics.dkgConflicts.inc({ kind: 'refused_store' });
      this.finish(s, 'aborted', `dkg_conflict: ${conflict}; nothing was stored`);
      return;
    }
    try {
      const share = s.session.takeShare();
      await this.keystore.save({ keyId: s.keyId, share, publicResult: publicResultToJson(result) });
      this.onKeyStored?.(result, share);
    } catch (e) {
      this.finish(s, 'aborted', `DKG finished but its result could not be stored: ${errorText(e)}`);
      return;
    }
    s.result = result;
    this.addHeldKey(result);
    this.finish(s, 'done', undefined);
  }

  /**
   * Before storing: no other session for this key id may have been seen here, and members must
   * confirm they know of none. The result goes to every other member; any dkg_conflict answer, or
   * fewer than n − t confirmations (so that with this node, n − t + 1 members — at least one of
   * any t that could have confirmed another session — vouched), refuses the store.
   * The claims alone cannot catch every rival: its dealers may include members that send their
   * round-1 package only to some (or it may start late), so fewer than t packages reach us. The
   * announcement does: every honest member of a rival still running, finishing or holding it answers
   * dkg_conflict, and a rival finishing later announces its result to us and is refused likewise.
   */
  private async uniquenessProblem(s: SessionState, result: DkgPublicResult): Promise<string | undefined> {
    const sid = encodeHex(s.sessionId);
    const before = this.claims.others(s.keyId, sid);
    if (before.length > 0) return `another DKG session for key id ${s.keyId} was seen (${before.join(', ')})`;
    const frame = encodeDkgFrame({ type: 'result', keyId: s.keyId, sessionId: s.sessionId, result });
    const others = this.committee.members.map((m) => m.id).filter((id) => id !== this.selfId);
    const disputes: string[] = [];
    let confirmed = 0;
    await Promise.all(
      others.map(async (id) => {
        for (let attempt = 1; attempt <= 2 && !this.stopped; attempt++) {
          try {
            const reply = decodeDkgReply(await this.transport.send(id, frame, this.deliveryTimeoutMs()));
            if (reply.ok) confirmed++;
            else if (reply.code === 'dkg_conflict') disputes.push(`member ${id}: ${reply.message}`);
            return;
          } catch {
            if (attempt < 2) await sleep(300);
          }
        }
      }),
    );
    if (disputes.length > 0) return disputes.join('; ');
    const after = this.claims.others(s.keyId, sid);
    if (after.length > 0) return `another DKG session for key id ${s.keyId} was seen (${after.join(', ')})`;
    const needed = this.committee.members.length - this.committee.t;
    if (confirmed < needed) return `only ${confirmed} other members confirmed they know no other session for key id ${s.keyId}, need ${needed}`;
    return undefined;
  }

  private finish(s: SessionState, status: 'done' | 'aborted', reason: string | undefined): void {
    if (s.status !== 'running') return;
    if (s.timer !== undefined) clearTimeout(s.timer);
    s.timer = undefined;
    s.status = status;
    s.finishedAt = Date.now();
    s.abortReason = reason;
    const seconds = (s.finishedAt - s.startedAt) / 1000;
    this.metrics.dkgSessions.inc({ outcome: status });
    this.metrics.dkgDurationSeconds.observe({ outcome: status }, seconds);
    const disqualified = Object.fromEntries(s.session.disqualified);
    if (status === 'done') {
      this.log.info(
        { keyId: s.keyId, sessionId: encodeHex(s.sessionId), seconds, groupPublicKey: s.result?.groupPublicKey, qualified: s.result?.qualified, disqualified },
        'DKG completed; share stored',
      );
    } else {
      this.log.error({ keyId: s.keyId, sessionId: encodeHex(s.sessionId), seconds, reason, disqualified }, 'DKG aborted');
    }
  }

  private bufferPending(key: string, item: PendingPayload): void {
    const now = Date.now();
    for (const [k, items] of this.pending) {
      if (items.every((i) => now - i.at > PENDING_TTL_MS)) this.pending.delete(k);
    }
    let list = this.pending.get(key);
    if (list === undefined) {
      if (this.pending.size >= MAX_PENDING_SESSIONS) throw new TkmsError('unavailable', 'too many unknown DKG sessions buffered');
      list = [];
      this.pending.set(key, list);
    }
    if (list.length >= MAX_PENDING_PER_SESSION) throw new TkmsError('unavailable', 'too many early messages for this DKG session');
    list.push(item);
  }
}

/** The DkgPublicResult as the plain JSON object the keystore stores. */
export function publicResultToJson(r: DkgPublicResult): Record<string, unknown> {
  return JSON.parse(JSON.stringify(r)) as Record<string, unknown>;
}
