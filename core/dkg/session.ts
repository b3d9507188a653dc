import { bytesToHex, encodeHex, equalBytes } from '../bytes.ts';
import { decodePoint, encodePoint, G, mod, multiplySecret, Point, randomScalar, type Point as PointT } from '../curve.ts';
import { curveBackend } from '../curve-backend.ts';
import { isTkmsError, TkmsError } from '../errors.ts';
import { assertKeyId } from '../identifiers.ts';
import { assertParticipantId, assertThreshold } from '../shamir.ts';
import {
  complaintsUnsigned,
  decodeDkgMessage,
  decodeDkgMessageOfKind,
  echoUnsigned,
  encodeConfirm,
  justificationUnsigned,
  maxRound1Length,
  MAX_SIGNATURE_LENGTH,
  round1Unsigned,
  shareUnsigned,
  verdictUnsigned,
  withSignature,
  type Complaint,
  type ComplaintsMessage,
  type ConfirmMessage,
  type DkgCodecLimits,
  type DkgMessage,
  type EchoMessage,
  type JustificationMessage,
  type JustificationEvidence,
  type Round1Message,
  type ShareMessage,
  type VerdictMessage,
} from './codec.ts';
import { confirmMessage, dkgResultDigest, messageToSign, sessionContext, transcriptHash } from './context.ts';
import { deal, eraseDealing, evaluateCommitments, shareFor, verifyProofOfKnowledge, type Dealing } from './frost.ts';
import { assertCommitteeId, SESSION_ID_LENGTH } from './result.ts';
import { openShare, openWithProvenKey, provePairKey, sealShare, type SealBinding } from './sealed-share.ts';
import type { DkgFaults, DkgIdentity, DkgOutbound, DkgParams, DkgPhase, DkgPublicResult, DkgSessionOptions } from './types.ts';

const PHASE_ORDER: Record<DkgPhase, number> = { round1: 0, echo: 1, round2: 2, complaints: 3, confirm: 4, done: 5, aborted: 6 };
const MESSAGE_PHASE: Record<DkgMessage['kind'], DkgPhase> = {
  round1: 'round1',
  echo: 'echo',
  share: 'round2',
  complaints: 'complaints',
  justification: 'complaints',
  verdict: 'complaints',
  confirm: 'confirm',
};
/** Caps on what a peer can make us store: early messages per sender, and the event log. */
const MAX_BUFFERED_BASE = 8;
const MAX_EVENTS = 1000;
/**
 * Phases whose first deadline is a grace period when messages are still missing. A member that
 * waited a full deadline in the previous phase (for a late package or share) enters this phase one
 * deadline after us; with equal relative deadlines its messages would otherwise race our deadline
 * and split the members' views. round1 has no grace (nobody can be ahead of a proposal), round2
 * neither (a late share is recovered through a complaint and its justification).
 */
const GRACE_PHASES: ReadonlySet<DkgPhase> = new Set<DkgPhase>(['echo', 'complaints', 'confirm']);
/** Sealed answers kept (and relayed) per (dealer, complainer): one from an honest dealer, a second to catch a faulty one. */
const MAX_ANSWERS_PER_PAIR = 2;
/** Deadlines a member short of t matching confirmations waits for more before it aborts. */
const MAX_CONFIRM_GRACES = 3;

interface ReceivedShare {
  share: bigint;
  raw: Uint8Array;
  valid: boolean;
}

interface Buffered {
  from: number;
  message: DkgMessage;
}

const pairKey = (dealer: number, recipient: number): string => `${dealer}:${recipient}`;

/**
 * One member's view of one DKG run (Pedersen/Feldman VSS with FROST proofs of knowledge, an echo
 * round for a common round-1 transcript, signed complaints with evidence, justifications sealed
 * to the complainer, the complainer's verdicts and a signed transcript hash). Pure and deterministic apart from randomness: the runner delivers
 * authenticated messages, sends what the session returns, and calls `advance()` at deadlines.
 *
 * Deadlines: `advance()` ends the current phase with what has arrived, except that in 'echo',
 * 'complaints' and 'confirm' a deadline at which messages are still missing can be a grace period
 * (the phase stays; see GRACE_PHASES, graceLimit and othersHaveMovedOn). The runner therefore
 * re-arms its timer after every `advance()` while the session is not done or aborted. The
 * 'complaints' phase includes the dealers' justifications and the complainers' verdicts; closing
 * it disqualifies every dealer with an unanswered complaint. Complaints, justifications, withdrawals
 * and proven evidence are re-published by whoever receives them first-hand, so a member that crashes part-way through a broadcast, or one
 * that runs behind, leaves every member with the same view.
 */
export class DkgSession {
  private readonly params: DkgParams;
  private readonly identity: DkgIdentity;
  private readonly faults: DkgFaults;
  private readonly members: number[];
  private readonly others: number[];
  private readonly self: number;
  private readonly t: number;
  private readonly context: Uint8Array;
  private readonly limits: DkgCodecLimits;
  private readonly maxPayloadLength: number;

  private currentPhase: DkgPhase = 'round1';
  /** Members that sent us at least one well-formed message (the transport authenticates senders). */
  private readonly heardFrom = new Set<number>();
  /** Grace deadlines taken per phase. */
  private readonly graceTaken = new Map<DkgPhase, number>();
  private started = false;
  private outbox: DkgOutbound[] = [];
  private readonly log: string[] = [];
  private droppedEvents = 0;
  private readonly buffered = new Map<number, Buffered[]>();
  /**
   * Early justifications and verdicts by (kind, dealer, member), at most two distinct each,
   * whoever relayed them: with relays one sender may carry one per pair, which the per-sender
   * buffer is not sized for.
   */
  private readonly bufferedJustifications = new Map<string, { raw: string; early: Buffered }[]>();
  /** Hex of every justification and verdict already handled (relays repeat them). */
  private readonly seenJustifications = new Set<string>();
  private readonly disqualifiedDealers = new Map<number, string>();
  private publicResult: DkgPublicResult | undefined;
  private reason: string | undefined;
  private finalShare: bigint | undefined;

  // round 1 and echo
  private dealing: Dealing | undefined;
  /** Every distinct dealer-signed round-1 package seen, per dealer, keyed by the hex of its signed bytes. */
  private readonly packages = new Map<number, Map<string, Round1Message>>();
  /** Hex of every raw round-1 message already accepted: echoes repeat them, so skip re-verification. */
  private readonly knownRaw = new Set<string>();
  private readonly round1Senders = new Set<number>();
  private readonly echoSenders = new Set<number>();
  private expectedEchoes = new Set<number>();
  private readonly round1Qualified = new Map<number, Round1Message>();

  // round 2
  private ownShare: bigint | undefined;
  /** Secret: f(recipient) for every other member, kept to answer complaints until the session ends. */
  private readonly sentShares = new Map<number, bigint>();
  private readonly receivedShares = new Map<number, ReceivedShare>();

  // complaints
  private expectedComplaints = new Set<number>();
  private readonly complaintSenders = new Set<number>();
  private readonly openComplaints = new Map<string, { dealer: number; complainer: number }>();
  /** Pairs whose complainer withdrew its complaint (it holds a valid share from the dealer). */
  private readonly justifiedPairs = new Set<string>();
  private readonly justificationsFrom = new Map<number, number>();
  /**
   * Our key E_j = e_j·G for each dealer j we complain about (fresh each), held only during the
   * complaints phase: only dealer j's answer may be sealed to E_j, so a pair key we prove for it
   * can open nothing but dealer j's own answers.
   */
  private readonly ownKeys = new Map<number, { secret: bigint; key: Uint8Array }>();
  /** Dealers whose sealed answer we opened: one answer per key, so at most one pair key per key is ever proven. */
  private readonly openedAnswers = new Set<number>();
  /** Dealers we complained about without evidence: we give a verdict on their answer. */
  private readonly ownComplaints = new Set<number>();
  private readonly verdictsGiven = new Set<string>();
  /** E_{C,j} per (dealer j, complainer C): the key of C's complaint against j. */
  private readonly complaintKeys = new Map<string, Uint8Array>();
  /** Each complainer's distinct signed complaints messages: one from an honest member; two prove equivocation. */
  private readonly complaintCopies = new Map<number, ComplaintsMessage[]>();
  /** Complainers that signed two different complaints messages: their complaints without evidence are void. */
  private readonly equivocators = new Set<number>();
  /** Complaints messages whose signature we checked, per sender, so a flood of signed copies stays bounded. */
  private readonly complaintsFrom = new Map<number, number>();
  /** Dealer-signed sealed shares seen, per (dealer, member) pair. */
  private readonly justifications = new Map<string, JustificationMessage[]>();
  /** Pairs whose complainer has given a verdict (withdrawal or evidence, true or not). */
  private readonly verdictsFrom = new Set<string>();

  // confirm
  private expectedConfirms = new Set<number>();
  private ownTranscriptHash: Uint8Array | undefined;
  private pendingResult: Omit<DkgPublicResult, 'signatures'> | undefined;
  private readonly confirms = new Map<number, { hash: Uint8Array; signature: Uint8Array }>();
  /** What this member signed: the confirm message over its own result's digest. */
  private ownConfirmMessage: Uint8Array | undefined;

  constructor(params: DkgParams, identity: DkgIdentity, options: DkgSessionOptions = {}) {
    assertKeyId(params.keyId);
    assertCommitteeId(params.committeeId);
    if (!(params.sessionId instanceof Uint8Array) || params.sessionId.length !== SESSION_ID_LENGTH) {
      throw new TkmsError('bad_length', `session id must be ${SESSION_ID_LENGTH} bytes`);
    }
    if (!Array.isArray(params.memberIds)) throw new TkmsError('bad_request', 'memberIds must be an array');
    const members = [...params.memberIds].sort((a, b) => a - b);
    members.forEach((id, i) => {
      assertParticipantId(id, 'member id');
      if (i > 0 && members[i - 1] === id) throw new TkmsError('bad_request', `member id ${id} appears twice`);
    });
    assertThreshold(params.t, members.length);
    assertParticipantId(params.selfId, 'self id');
    if (!members.includes(params.selfId)) throw new TkmsError('bad_request', `self id ${params.selfId} is not a committee member`);
    if (typeof identity?.sign !== 'function' || typeof identity.verify !== 'function') throw new TkmsError('bad_request', 'identity must provide sign and verify');

    this.params = { ...params, sessionId: params.sessionId.slice(), memberIds: members };
    this.identity = identity;
    this.faults = options.faults ?? {};
    this.members = members;
    this.self = params.selfId;
    this.others = members.filter((id) => id !== this.self);
    this.t = params.t;
    this.context = sessionContext(this.params, members);
    this.limits = { t: params.t, n: members.length };
    this.maxPayloadLength = 16 + 2 * members.length * (4 + maxRound1Length(params.t)) + MAX_SIGNATURE_LENGTH;
  }

  get phase(): DkgPhase {
    return this.currentPhase;
  }

  get result(): DkgPublicResult | undefined {
    return this.publicResult;
  }

  get abortReason(): string | undefined {
    return this.reason;
  }

  get disqualified(): ReadonlyMap<number, string> {
    return this.disqualifiedDealers;
  }

  /** Non-secret record of what happened (ignored messages, disqualifications, phase changes). */
  get events(): readonly string[] {
    return this.droppedEvents === 0 ? this.log : [...this.log, `(${this.droppedEvents} more events dropped)`];
  }

  takeShare(): bigint {
    if (this.currentPhase === 'aborted') throw new TkmsError('dkg_failed', `DKG for key ${this.params.keyId} aborted: ${this.reason ?? 'unknown reason'}`);
    if (this.currentPhase !== 'done' || this.finalShare === undefined) {
      throw new TkmsError('conflict', `DKG for key ${this.params.keyId} is not done (phase ${this.currentPhase})`);
    }
    return this.finalShare;
  }

  start(): DkgOutbound[] {
    if (this.started) {
      this.event('start() called twice; ignored');
      return [];
    }
    this.started = true;
    return this.guard(() => {
      if (this.faults.silent) {
        this.event('silent (test fault): taking part in nothing');
        return;
      }
      this.dealing = deal(this.self, this.t, this.members.length);
      const primary = this.signRound1(this.dealing);
      this.acceptRound1(primary);
      const equivocateTo = new Set(this.faults.equivocateRound1 ?? []);
      if (equivocateTo.size === 0) {
        this.broadcast(primary.raw);
      } else {
        const alternative = deal(this.self, this.t, this.members.length);
        const other = this.signRound1(alternative);
        eraseDealing(alternative);
        for (const id of this.others) this.send(id, equivocateTo.has(id) ? other.raw : primary.raw);
      }
      this.deliverBuffered('round1');
    });
  }

  receive(from: number, payload: Uint8Array): DkgOutbound[] {
    try {
      if (this.currentPhase === 'done' || this.currentPhase === 'aborted') {
        this.event(`ignored a message from ${String(from)}: session is ${this.currentPhase}`);
        return [];
      }
      if (this.faults.silent) return [];
      if (typeof from !== 'number' || !this.others.includes(from)) {
        this.event(`ignored a message from non-member ${String(from).slice(0, 20)}`);
        return [];
      }
      if (!(payload instanceof Uint8Array) || payload.length > this.maxPayloadLength) {
        this.event(`ignored an oversized or non-binary message from ${from}`);
        return [];
      }
      let message: DkgMessage;
      try {
        message = decodeDkgMessage(payload, this.limits);
      } catch (error) {
        this.event(`ignored a malformed message from ${from}: ${isTkmsError(error) ? error.message : 'undecodable'}`);
        return [];
      }
      this.heardFrom.add(from);
      const messagePhase = MESSAGE_PHASE[message.kind];
      // A message from a later phase is kept for then (and shows that its sender has moved on).
      if (!this.started || PHASE_ORDER[messagePhase] > PHASE_ORDER[this.currentPhase]) {
        this.buffer(from, message);
        return [];
      }
      return this.guard(() => this.apply(from, message));
    } catch {
      // Only reachable through a bug: never let it escape to the runner.
      this.event(`internal error while receiving from ${String(from)}`);
      return this.drain();
    }
  }

  advance(): DkgOutbound[] {
    if (!this.started || this.currentPhase === 'done' || this.currentPhase === 'aborted') return [];
    return this.guard(() => {
      if (this.faults.silent) {
        this.abort('silent (test fault): took part in nothing');
        return;
      }
      const phase = this.currentPhase;
      const graces = this.graceTaken.get(phase) ?? 0;
      if (GRACE_PHASES.has(phase) && this.waitingForOthers() && graces < this.graceLimit()) {
        this.graceTaken.set(phase, graces + 1);
        if (graces > 0 || !this.othersHaveMovedOn()) {
          this.event(`deadline in phase ${phase}: allowing one more deadline for members that are behind`);
          return;
        }
        this.event(`deadline in phase ${phase}: no grace, member(s) ${[...this.membersAhead()].join(', ')} already moved on (still missing: ${[...this.missingSenders()!].join(', ')})`);
      } else {
        this.event(`deadline in phase ${phase}`);
      }
      this.endPhase();
    });
  }

  /**
   * Grace deadlines a phase may take. One, for members one phase behind. Two in 'complaints': a
   * member that got an echo the others did not moves on alone, up to two deadlines ahead, and its
   * complaints must not close before the others' complaints and justifications arrive. In 'confirm'
   * a second one when more than n − t members are missing or silent (an honest member is then among
   * the missing), and up to MAX_CONFIRM_GRACES while fewer than t confirmations match ours, since
   * ending then means aborting. Waiting only delays; ending early splits members.
   */
  private graceLimit(): number {
    if (this.currentPhase !== 'complaints' && this.currentPhase !== 'confirm') return 1;
    // Without t matching confirmations ending means aborting; the others' may be on their way.
    if (this.currentPhase === 'confirm' && this.matchingConfirmations() < this.t) return MAX_CONFIRM_GRACES;
    if (this.currentPhase === 'complaints') return 2;
    const absent = new Set([...(this.missingSenders() ?? []), ...this.silentMembers()]);
    return absent.size > this.members.length - this.t ? 2 : 1;
  }

  private matchingConfirmations(): number {
    const own = this.ownTranscriptHash;
    if (own === undefined) return 0;
    return [...this.confirms.values()].filter((c) => equalBytes(c.hash, own)).length;
  }

  /** Whether the current phase still lacks messages that a member one deadline behind us could send. */
  private waitingForOthers(): boolean {
    return (this.missingSenders()?.size ?? 0) > 0;
  }

  // ---------------------------------------------------------------- plumbing

  /** Runs a step, then lets the session advance on its own; internal failures abort instead of throwing. */
  private guard(step: () => void): DkgOutbound[] {
    try {
      step();
      this.progress();
    } catch (error) {
      const detail = isTkmsError(error) ? `${error.code}: ${error.message}` : 'unexpected error';
      this.abort(`internal error in phase ${this.currentPhase} (${detail})`);
    }
    return this.drain();
  }

  private drain(): DkgOutbound[] {
    const out = this.outbox;
    this.outbox = [];
    return out;
  }

  private event(text: string): void {
    if (this.log.length < MAX_EVENTS) this.log.push(text);
    else this.droppedEvents++;
  }

  private send(to: number, payload: Uint8Array): void {
    this.outbox.push({ to, payload });
  }

  private broadcast(payload: Uint8Array): void {
    if (this.others.length > 0) this.outbox.push({ to: 'all', payload });
  }

  private sign(unsigned: Uint8Array): Uint8Array {
    return withSignature(unsigned, this.identity.sign(messageToSign(this.context, unsigned)));
  }

  private verifySigned(signer: number, signed: Uint8Array, signature: Uint8Array): boolean {
    return this.verifyRaw(signer, messageToSign(this.context, signed), signature);
  }

  private verifyRaw(signer: number, message: Uint8Array, signature: Uint8Array): boolean {
    try {
      return this.identity.verify(signer, message, signature) === true;
    } catch {
      return false;
    }
  }

  private buffer(from: number, message: DkgMessage): void {
    if (message.kind === 'justification' || message.kind === 'verdict') {
      this.bufferJustification(from, message);
      return;
    }
    const queue = this.buffered.get(from) ?? [];
    // A sender may legitimately run ahead by every phase and relay one complaints message per member.
    if (queue.length >= MAX_BUFFERED_BASE + 2 * this.members.length) {
      this.event(`dropped an early ${message.kind} message from ${from}: buffer full`);
      return;
    }
    queue.push({ from, message });
    this.buffered.set(from, queue);
  }

  /**
   * Early justifications and verdicts are kept by content, whoever sent them: with relays one
   * sender carries one per (dealer, member) pair, which the per-sender queue is not sized for. Only
   * signed ones are kept (the check is charged to the sender), at most two per pair and kind, so
   * nobody can fill the buffer with junk or crowd out another dealer's answers.
   */
  private bufferJustification(from: number, message: JustificationMessage | VerdictMessage): void {
    if (!this.checkRelayed(from, message)) return;
    const raw = bytesToHex(message.raw);
    const { dealer } = message;
    const member = message.kind === 'justification' ? message.recipient : message.complainer;
    const slot = `${message.kind}:${pairKey(dealer, member)}`;
    const held = this.bufferedJustifications.get(slot) ?? [];
    if (held.some((b) => b.raw === raw)) return;
    if (held.length >= 2) {
      this.event(`dropped an early ${message.kind} from ${from}: two already held for dealer ${dealer} and member ${member}`);
      return;
    }
    held.push({ raw, early: { from, message } });
    this.bufferedJustifications.set(slot, held);
  }

  /**
   * Whether a relayable message (a dealer-signed justification, a complainer-signed verdict) is
   * new and genuine: it names a dealer and another member, was not seen before, and its author's
   * signature holds. Each signature check is charged to the sender.
   */
  private checkRelayed(from: number, message: JustificationMessage | VerdictMessage): boolean {
    const { dealer } = message;
    const member = message.kind === 'justification' ? message.recipient : message.complainer;
    const author = message.kind === 'justification' ? dealer : member;
    if (!this.members.includes(dealer) || !this.members.includes(member) || member === dealer) return false;
    if (this.seenJustifications.has(bytesToHex(message.raw)) || this.disqualifiedDealers.has(dealer)) return false;
    // An honest sender sends or relays at most one justification and two verdicts per (dealer,
    // member) pair; a buffered one is checked again when delivered.
    const count = (this.justificationsFrom.get(from) ?? 0) + 1;
    this.justificationsFrom.set(from, count);
    if (count > 4 * this.members.length * this.members.length) {
      this.event(`ignored a ${message.kind} from ${from}: too many`);
      return false;
    }
    if (!this.verifySigned(author, message.signed, message.signature)) {
      this.event(`ignored a ${message.kind} relayed by ${from}: bad signature of member ${author}`);
      return false;
    }
    return true;
  }

  /** Processes buffered messages that belong to the phase just entered. */
  private deliverBuffered(phase: DkgPhase): void {
    if (phase === 'complaints') {
      const early = [...this.bufferedJustifications.values()].flat().map((b) => b.early);
      this.bufferedJustifications.clear();
      for (const b of early) {
        if (this.currentPhase !== phase) return;
        this.apply(b.from, b.message);
      }
    }
    for (const [from, queue] of this.buffered) {
      const now = queue.filter((b) => MESSAGE_PHASE[b.message.kind] === phase);
      if (now.length === 0) continue;
      this.buffered.set(from, queue.filter((b) => MESSAGE_PHASE[b.message.kind] !== phase));
      for (const b of now) {
        if (this.currentPhase !== phase) return;
        this.apply(b.from, b.message);
      }
    }
  }

  private disqualify(dealer: number, reason: string): void {
    if (this.disqualifiedDealers.has(dealer)) return;
    this.disqualifiedDealers.set(dealer, reason);
    this.event(`dealer ${dealer} disqualified: ${reason}`);
  }

  private abort(reason: string): void {
    if (this.currentPhase === 'done' || this.currentPhase === 'aborted') return;
    this.reason = reason;
    this.currentPhase = 'aborted';
    this.event(`aborted: ${reason}`);
    this.eraseSecrets();
  }

  private eraseSecrets(): void {
    if (this.dealing) eraseDealing(this.dealing);
    this.ownShare = undefined;
    this.ownKeys.clear();
    this.sentShares.clear();
    this.receivedShares.clear();
    this.buffered.clear();
    this.bufferedJustifications.clear();
    this.seenJustifications.clear();
  }

  /** Moves through every phase whose expected messages have all arrived. */
  private progress(): void {
    for (let guard = 0; guard < 8; guard++) {
      const before = this.currentPhase;
      const missing = this.missingSenders();
      if (missing === undefined || missing.size > 0) return;
      this.endPhase();
      if (this.currentPhase === before) return;
    }
  }

  /**
   * Members whose message for the current phase has not arrived; in 'complaints' also the dealers
   * whose justification is still owed. Undefined when no phase is running.
   */
  private missingSenders(): Set<number> | undefined {
    const lacking = (expected: Iterable<number>, has: (id: number) => boolean): Set<number> =>
      new Set([...expected].filter((id) => id !== this.self && !has(id)));
    switch (this.currentPhase) {
      case 'round1':
        return lacking(this.others, (id) => this.round1Senders.has(id));
      case 'echo':
        return lacking(this.expectedEchoes, (id) => this.echoSenders.has(id));
      case 'round2':
        return lacking(this.round1Qualified.keys(), (id) => this.receivedShares.has(id));
      case 'complaints': {
        const missing = lacking(this.expectedComplaints, (id) => this.complaintSenders.has(id));
        for (const { dealer, complainer } of this.openComplaints.values()) {
          if (this.disqualifiedDealers.has(dealer)) continue;
          // Unanswered: the dealer owes an answer. Answered: the complainer owes its verdict on it.
          if (!this.answered(dealer, complainer)) missing.add(dealer);
          else if (complainer !== this.self && !this.verdictsFrom.has(pairKey(dealer, complainer))) missing.add(complainer);
        }
        return missing;
      }
      case 'confirm':
        return lacking(this.expectedConfirms, (id) => this.confirms.has(id));
      default:
        return undefined;
    }
  }

  /**
   * Whether the grace deadline would do harm. The grace is for members one phase behind us, but it
   * puts us one more deadline behind any member that has already left this phase, and the protocol
   * tolerates one deadline of skew: a member waiting twice in echo for a dealer that crashed
   * part-way through its echo broadcast reached the complaints phase after the members that got
   * that echo had closed it, and the honest members split. So we end the phase at its first
   * deadline when the members we wait for, with the silent ones, could all be faulty (at most
   * n − t), none of them has moved on (their messages would be in flight), and more members have
   * sent us a later-phase message than could be faulty besides the silent ones.
   * (Nothing follows 'confirm', so there the grace is always given.)
   */
  private othersHaveMovedOn(): boolean {
    const faulty = this.members.length - this.t;
    const missing = this.missingSenders();
    if (missing === undefined || missing.size === 0) return false;
    const silent = this.silentMembers();
    if (new Set([...missing, ...silent]).size > faulty) return false;
    const ahead = this.membersAhead();
    // More members ahead than could still be faulty once the silent ones are counted as faulty: at
    // least one honest member really has moved on, so faulty members cannot talk us out of the
    // grace to split us from the members still behind.
    return ahead.size > faulty - silent.size && ![...missing].some((id) => ahead.has(id));
  }

  /** Members we have had no message at all from in this session: crashed, or never started. */
  private silentMembers(): Set<number> {
    return new Set(this.others.filter((id) => !this.heardFrom.has(id)));
  }

  /** Members that have sent us a message of a phase after the current one (buffered for later). */
  private membersAhead(): Set<number> {
    const now = PHASE_ORDER[this.currentPhase];
    const ahead = new Set<number>();
    for (const [from, queue] of this.buffered) {
      if (queue.some((b) => PHASE_ORDER[MESSAGE_PHASE[b.message.kind]] > now)) ahead.add(from);
    }
    return ahead;
  }

  /** Ends the current phase with what has arrived (a deadline, or nothing left to wait for). */
  private endPhase(): void {
    switch (this.currentPhase) {
      case 'round1':
        this.enterEcho();
        break;
      case 'echo':
        this.enterRound2();
        break;
      case 'round2':
        this.enterComplaints();
        break;
      case 'complaints':
        // An answered complaint without a verdict stands answered: a complainer that goes silent
        // cannot hold up or split the others, and a dealer's answer is judged by evidence only.
        for (const { dealer, complainer } of this.openComplaints.values()) {
          if (!this.answered(dealer, complainer)) this.disqualify(dealer, `did not answer the complaint of member ${complainer} with a valid share`);
        }
        this.openComplaints.clear();
        this.ownKeys.clear();
        this.enterConfirm();
        break;
      case 'confirm':
        this.finish();
        break;
    }
  }

  private apply(from: number, message: DkgMessage): void {
    switch (message.kind) {
      case 'round1':
        return this.onRound1(from, message);
      case 'echo':
        return this.onEcho(from, message);
      case 'share':
        return this.onShare(from, message);
      case 'complaints':
        return this.onComplaints(from, message);
      case 'justification':
        return this.onJustification(from, message);
      case 'verdict':
        return this.onVerdict(from, message);
      case 'confirm':
        return this.onConfirm(from, message);
    }
  }

  // ---------------------------------------------------------------- round 1 and echo

  private signRound1(dealing: Dealing): Round1Message {
    const raw = this.sign(round1Unsigned(this.self, dealing.commitmentBytes, dealing.proofOfKnowledge));
    return decodeDkgMessageOfKind(raw, 'round1', this.limits);
  }

  /** Adds a dealer-signed package to the pool; a second, different one is proof of equivocation. */
  private acceptRound1(message: Round1Message): void {
    this.knownRaw.add(bytesToHex(message.raw));
    const pool = this.packages.get(message.dealer) ?? new Map<string, Round1Message>();
    const key = bytesToHex(message.signed);
    if (pool.has(key)) return;
    pool.set(key, message);
    this.packages.set(message.dealer, pool);
    if (pool.size === 2) this.event(`dealer ${message.dealer} signed two different round-1 packages`);
  }

  private onRound1(from: number, message: Round1Message): void {
    if (PHASE_ORDER[this.currentPhase] > PHASE_ORDER.echo) {
      this.event(`ignored a late round-1 package from ${from}`);
      return;
    }
    if (message.dealer !== from) {
      this.event(`ignored a round-1 package for dealer ${message.dealer} sent by ${from}`);
      return;
    }
    if (!this.knownRaw.has(bytesToHex(message.raw))) {
      if (!this.verifySigned(from, message.signed, message.signature)) {
        this.event(`ignored a round-1 package from ${from}: bad signature`);
        return;
      }
      this.acceptRound1(message);
    }
    this.round1Senders.add(from);
  }

  private enterEcho(): void {
    this.currentPhase = 'echo';
    this.expectedEchoes = new Set(this.round1Senders);
    const packages: Uint8Array[] = [];
    for (const pool of this.packages.values()) for (const p of pool.values()) packages.push(p.raw);
    this.broadcast(this.sign(echoUnsigned(this.self, packages)));
    this.deliverBuffered('echo');
  }

  private onEcho(from: number, message: EchoMessage): void {
    if (this.currentPhase !== 'echo') {
      this.event(`ignored a late echo from ${from}`);
      return;
    }
    if (message.echoer !== from || this.echoSenders.has(from)) {
      this.event(`ignored a duplicate or misattributed echo from ${from}`);
      return;
    }
    if (!this.verifySigned(from, message.signed, message.signature)) {
      this.event(`ignored an echo from ${from}: bad signature`);
      return;
    }
    this.echoSenders.add(from);
    for (const raw of message.packages) {
      if (this.knownRaw.has(bytesToHex(raw))) continue;
      let p: Round1Message;
      try {
        p = decodeDkgMessageOfKind(raw, 'round1', this.limits);
      } catch {
        this.event(`echo from ${from} carried a malformed round-1 package`);
        continue;
      }
      if (!this.members.includes(p.dealer) || !this.verifySigned(p.dealer, p.signed, p.signature)) {
        this.event(`echo from ${from} carried a round-1 package without a valid signature of its dealer`);
        continue;
      }
      this.acceptRound1(p);
    }
  }

  /** Fixes the round-1 transcript: one valid package per dealer, or the dealer is out. */
  private enterRound2(): void {
    for (const dealer of this.members) {
      const pool = this.packages.get(dealer);
      if (pool === undefined || pool.size === 0) {
        this.disqualify(dealer, 'sent no round-1 package');
        continue;
      }
      if (pool.size > 1) {
        this.disqualify(dealer, 'equivocated in round 1 (signed two different packages)');
        continue;
      }
      const p = [...pool.values()][0]!;
      if (dealer !== this.self && !verifyProofOfKnowledge(dealer, p.commitmentBytes[0]!, p.proofOfKnowledge)) {
        this.disqualify(dealer, 'round-1 proof of knowledge is invalid');
        continue;
      }
      this.round1Qualified.set(dealer, p);
    }
    this.currentPhase = 'round2';
    this.event(`round 1 fixed: ${this.round1Qualified.size} dealers`);
    if (this.dealing && this.round1Qualified.has(this.self)) {
      const badTo = new Set(this.faults.badShareTo ?? []);
      const withheldFrom = new Set([...(this.faults.badJustificationTo ?? []), ...(this.faults.shiftedAnswer ? [this.faults.shiftedAnswer.complainer] : [])]);
      this.ownShare = shareFor(this.dealing, this.self);
      for (const id of this.others) {
        let share = shareFor(this.dealing, id);
        if (badTo.has(id) || withheldFrom.has(id)) share = mod(share + 1n) || 1n;
        this.sentShares.set(id, share);
        if (!withheldFrom.has(id)) this.send(id, this.sign(shareUnsigned(this.self, id, share)));
      }
    }
    if (this.dealing) eraseDealing(this.dealing);
    this.deliverBuffered('round2');
  }

  // ---------------------------------------------------------------- round 2

  private shareMatches(dealer: number, recipient: number, share: bigint): boolean {
    const p = this.round1Qualified.get(dealer);
    // Zero is never a valid share (and an opened sealed share may be any residue).
    if (p === undefined || share === 0n) return false;
    return multiplySecret(G, share).equals(evaluateCommitments(p.commitments, recipient));
  }

  private onShare(from: number, message: ShareMessage): void {
    if (this.currentPhase === 'complaints' && this.openComplaints.has(pairKey(from, this.self))) {
      this.onLateShare(from, message);
      return;
    }
    if (this.currentPhase !== 'round2') {
      this.event(`ignored a late share from ${from}`);
      return;
    }
    if (message.dealer !== from || message.recipient !== this.self || !this.round1Qualified.has(from) || this.receivedShares.has(from)) {
      this.event(`ignored an unexpected share message from ${from}`);
      return;
    }
    if (!this.verifySigned(from, message.signed, message.signature)) {
      this.event(`ignored a share from ${from}: bad signature`);
      return;
    }
    const valid = this.shareMatches(from, this.self, message.share);
    if (!valid) this.event(`share from dealer ${from} does not match its commitments`);
    this.receivedShares.set(from, { share: message.share, raw: message.raw, valid });
  }

  /**
   * A share that arrives after we complained about its absence: the dealer is behind, not silent.
   * A valid one settles our complaint, and we withdraw it for everyone at once, without waiting for
   * the dealer to reach the complaints phase (a member that moved on ahead of the others would
   * otherwise close its complaints first). The share itself is never published. One that does not
   * match is left to the dealer's sealed answer, which the commitments judge the same way.
   */
  private onLateShare(from: number, message: ShareMessage): void {
    if (message.dealer !== from || message.recipient !== this.self || !this.round1Qualified.has(from)) {
      this.event(`ignored an unexpected late share message from ${from}`);
      return;
    }
    if (!this.verifySigned(from, message.signed, message.signature)) {
      this.event(`ignored a late share from ${from}: bad signature`);
      return;
    }
    if (!this.shareMatches(from, this.self, message.share)) {
      this.event(`late share from dealer ${from} does not match its commitments; waiting for its answer to our complaint`);
      return;
    }
    if (this.receivedShares.get(from)?.valid !== true) this.receivedShares.set(from, { share: message.share, raw: message.raw, valid: true });
    this.event(`dealer ${from} sent its share late; withdrawing our complaint`);
    this.withdrawComplaint(from);
  }

  // ---------------------------------------------------------------- complaints and justifications

  private enterComplaints(): void {
    this.currentPhase = 'complaints';
    this.expectedComplaints = new Set(this.echoSenders);
    const falseAgainst = new Set([...(this.faults.falseComplaintAgainst ?? []), ...(this.faults.falseEvidenceAgainst ?? [])]);
    // A fresh key per accused dealer, so answers to our complaints can be published without
    // publishing our shares, and a pair key we prove about one dealer's answer opens no other's.
    const freshKey = (): { secret: bigint; key: Uint8Array } => {
      const secret = randomScalar();
      return { secret, key: curveBackend().multiplyBaseSecret(secret) };
    };
    const complaints: Complaint[] = [];
    for (const dealer of this.round1Qualified.keys()) {
      if (dealer === this.self) continue;
      const received = this.receivedShares.get(dealer);
      const complaint = received === undefined || falseAgainst.has(dealer) ? undefined : received.valid ? null : received.raw;
      if (complaint === null) continue;
      const key = freshKey();
      this.ownKeys.set(dealer, key);
      this.complaintKeys.set(pairKey(dealer, this.self), key.key);
      complaints.push({ accused: dealer, encryptionKey: key.key, evidence: complaint });
    }
    const signed = this.sign(complaintsUnsigned(this.self, complaints));
    const equivocateTo = new Set(this.faults.equivocateComplaints ?? []);
    if (equivocateTo.size === 0) {
      this.broadcast(signed);
    } else {
      const other = this.sign(complaintsUnsigned(this.self, complaints.map((c) => ({ ...c, encryptionKey: freshKey().key }))));
      for (const id of this.others) this.send(id, equivocateTo.has(id) ? other : signed);
    }
    for (const c of complaints) {
      if (c.evidence !== undefined) {
        this.disqualify(c.accused, `sent member ${this.self} a share that does not match its commitments`);
      } else {
        this.ownComplaints.add(c.accused);
        this.openComplaint(c.accused, this.self);
      }
    }
    this.deliverBuffered('complaints');
  }

  private openComplaint(dealer: number, complainer: number): void {
    const key = pairKey(dealer, complainer);
    if (this.justifiedPairs.has(key) || this.disqualifiedDealers.has(dealer) || this.equivocators.has(complainer)) return;
    this.openComplaints.set(key, { dealer, complainer });
  }

  /**
   * Complaints travel relayed: whoever accepts a non-empty complaints message passes it on to
   * everyone. A complainer that crashes part-way through its broadcast would otherwise
   * leave some members waiting for a justification that the accused dealer, never having seen the
   * complaint, does not send, and those members would disqualify an honest dealer alone.
   *
   * A complainer that signs two different complaints messages has equivocated; the pair, both
   * signed, is the proof. Each member keeps and relays the first two distinct ones it gets (the
   * first one too, even when empty, once the second arrives), so every member that holds one copy
   * receives the other. With both, the complainer's complaints without evidence are void: nobody
   * waits for or needs an answer to them. Evidence is judged in every copy (it proves a bad share
   * whoever carries it). Until a member holds both, it needs an answer sealed to the key of the copy
   * it holds, and the accused dealer answers every copy it keeps, even after moving on; so an honest
   * accused dealer stays qualified for every member, whichever copies reached whom first.
   */
  private onComplaints(from: number, message: ComplaintsMessage): void {
    const late = this.currentPhase !== 'complaints';
    const complainer = message.complainer;
    const copies = this.complaintCopies.get(complainer) ?? [];
    if (complainer === this.self || !this.others.includes(complainer) || copies.some((c) => equalBytes(c.signed, message.signed))) {
      if (complainer === from) this.event(`ignored a duplicate or misattributed complaints message from ${from}`);
      return;
    }
    // An honest sender sends its own and relays at most two per other complainer.
    const count = (this.complaintsFrom.get(from) ?? 0) + 1;
    this.complaintsFrom.set(from, count);
    if (count > 2 * this.members.length) {
      this.event(`ignored complaints of ${complainer} from ${from}: too many complaints messages`);
      return;
    }
    if (!this.verifySigned(complainer, message.signed, message.signature)) {
      this.event(`ignored complaints of ${complainer} (from ${from}): bad signature`);
      return;
    }
    const kept = copies.length < 2;
    if (kept) this.complaintCopies.set(complainer, [...copies, message]);
    const first = copies.length === 0;
    this.complaintSenders.add(complainer);
    if (kept && !first) this.onComplaintEquivocation(complainer, copies[0]!, late);
    // Relayed by every member that accepts it, whoever brought it, so all see the same complaints.
    if (!late && kept && (message.complaints.length > 0 || !first)) this.broadcast(withSignature(message.signed, message.signature));
    const seen = new Set<number>();
    for (const complaint of message.complaints) {
      const dealer = complaint.accused;
      if (seen.has(dealer) || dealer === complainer || !this.round1Qualified.has(dealer)) continue;
      seen.add(dealer);
      // A dealer that has moved on still answers complaints, so slower members can clear it. It judges
      // evidence against itself like everyone else, so even a faulty dealer reaches the common view.
      if (dealer === this.self) {
        if (!late && complaint.evidence !== undefined && this.evidenceProvesBadShare(dealer, complainer, complaint.evidence)) {
          this.disqualify(dealer, `sent member ${complainer} a share that does not match its commitments (signed evidence)`);
        } else if (kept) {
          this.justify(complainer, complaint.encryptionKey);
        }
        continue;
      }
      if (late || this.disqualifiedDealers.has(dealer)) continue;
      if (complaint.evidence !== undefined && this.evidenceProvesBadShare(dealer, complainer, complaint.evidence)) {
        this.disqualify(dealer, `sent member ${complainer} a share that does not match its commitments (signed evidence)`);
        continue;
      }
      if (!first) continue;
      this.complaintKeys.set(pairKey(dealer, complainer), complaint.encryptionKey);
      this.openComplaint(dealer, complainer);
    }
    if (late) this.event(`complaints of ${complainer} arrived after the complaints phase`);
  }

  /** A second signed complaints message: the complainer's complaints without evidence no longer count. */
  private onComplaintEquivocation(complainer: number, firstCopy: ComplaintsMessage, late: boolean): void {
    this.event(`member ${complainer} signed two different complaints messages: its complaints without evidence are void`);
    if (late) return;
    this.equivocators.add(complainer);
    for (const [key, { complainer: c }] of this.openComplaints) if (c === complainer) this.openComplaints.delete(key);
    // Whoever holds only the other copy learns of the equivocation from us.
    if (firstCopy.complaints.length === 0) this.broadcast(withSignature(firstCopy.signed, firstCopy.signature));
  }

  private evidenceProvesBadShare(dealer: number, complainer: number, evidence: Uint8Array): boolean {
    let share: ShareMessage;
    try {
      share = decodeDkgMessageOfKind(evidence, 'share', this.limits);
    } catch {
      return false;
    }
    if (share.dealer !== dealer || share.recipient !== complainer) return false;
    if (!this.verifySigned(dealer, share.signed, share.signature)) return false;
    return !this.shareMatches(dealer, complainer, share.share);
  }

  /** Our answer to an evidence-less complaint: the complainer's share, sealed to the key of its complaint against us. */
  private justify(complainer: number, encryptionKey: Uint8Array): void {
    const share = this.sentShares.get(complainer);
    if (share === undefined) return;
    if (this.faults.shiftedAnswer?.complainer === complainer) return;
    this.event(`answering the complaint of member ${complainer} with its sealed share`);
    const binding: SealBinding = { context: this.context, dealer: this.self, recipient: complainer, recipientKey: encryptionKey };
    const sealed = sealShare(binding, share);
    const raw = this.sign(justificationUnsigned(this.self, complainer, encryptionKey, sealed.ephemeralKey, sealed.ciphertext));
    this.seenJustifications.add(bytesToHex(raw));
    this.broadcast(raw);
  }

  /**
   * A dealer-signed sealed share made public. It answers the complaint about its pair when it is
   * sealed to the key of the complainer's complaint against that dealer (checked when the phase is
   * judged, as the complaint may come later); only the complainer can open it, and whether it matches is for
   * the complainer's verdict to show. Every member relays each one it sees first, whoever sent it,
   * so all end with the same set: a dealer crashing part-way through, or a faulty member passing a
   * copy to only some, cannot leave a complaint answered for some members and open for others.
   */
  private onJustification(from: number, message: JustificationMessage): void {
    if (this.currentPhase !== 'complaints') {
      this.event(`ignored a late justification from ${from}`);
      return;
    }
    if (!this.checkRelayed(from, message)) return;
    const { dealer, recipient } = message;
    if (!this.round1Qualified.has(dealer)) return;
    this.seenJustifications.add(bytesToHex(message.raw));
    const key = pairKey(dealer, recipient);
    const held = this.justifications.get(key) ?? [];
    // An honest dealer seals one answer per complaint; fresh ephemeral keys would let a faulty one
    // sign any number, each relayed by everyone.
    if (held.length >= MAX_ANSWERS_PER_PAIR) {
      this.event(`ignored another answer of dealer ${dealer} to member ${recipient}`);
      return;
    }
    this.justifications.set(key, [...held, message]);
    this.broadcast(message.raw);
    this.event(`dealer ${dealer} answered the complaint of member ${recipient} (sealed)`);
    if (recipient === this.self) this.openOwnJustification(message);
    if (this.faults.shiftedAnswer?.victim === dealer && this.faults.shiftedAnswer.complainer === recipient) this.answerWithShiftedKey(message);
  }

  /** Test fault (see DkgFaults.shiftedAnswer): answers with D' = D_victim + offset·G, for the complainer to prove e·D'. */
  private answerWithShiftedKey(victimAnswer: JustificationMessage): void {
    const { complainer, offset } = this.faults.shiftedAnswer!;
    const shifted = encodePoint(decodePoint(victimAnswer.ephemeralKey).add(G.multiply(BigInt(offset))));
    const ours = this.complaintCopies.get(complainer)?.[0]?.complaints.find((c) => c.accused === this.self)?.encryptionKey;
    const keys = [victimAnswer.recipientKey, ours].filter((k): k is Uint8Array => k !== undefined);
    for (const [i, key] of keys.entries()) {
      if (i > 0 && equalBytes(key, keys[0]!)) continue;
      this.event(`(test fault) answering member ${complainer} with dealer ${victimAnswer.dealer}'s ephemeral key shifted by ${offset}·G`);
      const raw = this.sign(justificationUnsigned(this.self, complainer, key, shifted, randomScalar()));
      this.seenJustifications.add(bytesToHex(raw));
      this.broadcast(raw);
    }
  }

  /** Whether the complaint (dealer, complainer) has an answer: its withdrawal, or a share from that dealer sealed to the complaint's key. */
  private answered(dealer: number, complainer: number): boolean {
    const key = pairKey(dealer, complainer);
    if (this.justifiedPairs.has(key)) return true;
    const encryptionKey = this.complaintKeys.get(key);
    return encryptionKey !== undefined && (this.justifications.get(key) ?? []).some((j) => equalBytes(j.recipientKey, encryptionKey));
  }

  /**
   * A sealed share for us: open it; a valid share settles our complaint, any other is proven bad for
   * all to check. Only an answer from dealer j sealed to our key for j is opened, and only the first:
   * a proven pair key e_j·D then opens only dealer j's own answers, and we never prove two pair keys
   * for one key (a dealer choosing D after seeing another dealer's answer learns nothing from it).
   */
  private openOwnJustification(message: JustificationMessage): void {
    const { dealer } = message;
    const own = this.ownKeys.get(dealer);
    if (own === undefined || !equalBytes(message.recipientKey, own.key)) {
      this.event(`dealer ${dealer} sealed an answer to a key that is not ours for it`);
      return;
    }
    if (!this.ownComplaints.has(dealer) || this.disqualifiedDealers.has(dealer) || this.openedAnswers.has(dealer)) return;
    this.openedAnswers.add(dealer);
    const secret = own.secret;
    const binding: SealBinding = { context: this.context, dealer, recipient: this.self, recipientKey: own.key };
    const sealed = { ephemeralKey: message.ephemeralKey, ciphertext: message.ciphertext };
    const share = openShare(binding, secret, sealed);
    const valid = this.shareMatches(dealer, this.self, share);
    const falseEvidence = (this.faults.falseEvidenceAgainst ?? []).includes(dealer);
    if (valid && !falseEvidence) {
      if (this.receivedShares.get(dealer)?.valid !== true) this.receivedShares.set(dealer, { share, raw: message.raw, valid: true });
      this.withdrawComplaint(dealer);
      return;
    }
    if (valid) this.event(`(test fault) claiming that the valid answer of dealer ${dealer} is bad`);
    else this.disqualify(dealer, `answered the complaint of member ${this.self} with a share that does not match its commitments`);
    const evidence: JustificationEvidence = { justification: message.raw, ...provePairKey(binding, secret, message.ephemeralKey) };
    this.giveVerdict(dealer, evidence);
  }

  /** We hold a valid share from the dealer: our complaint is settled, for everyone. */
  private withdrawComplaint(dealer: number): void {
    const key = pairKey(dealer, this.self);
    this.justifiedPairs.add(key);
    this.openComplaints.delete(key);
    if (this.ownComplaints.has(dealer)) this.giveVerdict(dealer, undefined);
  }

  private giveVerdict(dealer: number, evidence: JustificationEvidence | undefined): void {
    const kind = `${evidence === undefined ? 'ok' : 'bad'}:${dealer}`;
    if (this.verdictsGiven.has(kind)) return;
    this.verdictsGiven.add(kind);
    const raw = this.sign(verdictUnsigned(this.self, dealer, evidence));
    this.seenJustifications.add(bytesToHex(raw));
    this.broadcast(raw);
  }

  /**
   * A complainer's verdict on the answer to its complaint. A withdrawal clears the complaint. Evidence
   * disqualifies the dealer when it holds: the dealer signed the sealed share, the pair key is
   * proven, and the share it opens to does not match the dealer's commitments; otherwise it is
   * false and ignored (the honest dealer stays). Either way the complainer has spoken, so nobody
   * waits for it any more. Relayed like justifications so every member judges the same set.
   */
  private onVerdict(from: number, message: VerdictMessage): void {
    if (this.currentPhase !== 'complaints') {
      this.event(`ignored a late verdict from ${from}`);
      return;
    }
    if (!this.checkRelayed(from, message)) return;
    const { complainer, dealer, evidence } = message;
    const key = pairKey(dealer, complainer);
    this.seenJustifications.add(bytesToHex(message.raw));
    this.verdictsFrom.add(key);
    if (evidence === undefined) {
      this.broadcast(message.raw);
      this.justifiedPairs.add(key);
      this.openComplaints.delete(key);
      this.event(`member ${complainer} withdrew its complaint against dealer ${dealer}`);
      return;
    }
    if (!this.evidenceProvesBadJustification(dealer, complainer, evidence)) {
      this.event(`rejected the evidence of member ${complainer} against dealer ${dealer}: it does not prove a bad share`);
      return;
    }
    this.broadcast(message.raw);
    this.disqualify(dealer, `answered the complaint of member ${complainer} with a share that does not match its commitments (proven by ${complainer})`);
  }

  private evidenceProvesBadJustification(dealer: number, complainer: number, evidence: JustificationEvidence): boolean {
    let j: JustificationMessage;
    try {
      j = decodeDkgMessageOfKind(evidence.justification, 'justification', this.limits);
    } catch {
      return false;
    }
    if (j.dealer !== dealer || j.recipient !== complainer || !this.round1Qualified.has(dealer)) return false;
    if (!this.verifySigned(dealer, j.signed, j.signature)) return false;
    const binding: SealBinding = { context: this.context, dealer, recipient: complainer, recipientKey: j.recipientKey };
    const share = openWithProvenKey(binding, { ephemeralKey: j.ephemeralKey, ciphertext: j.ciphertext }, { pairKey: evidence.pairKey, proof: evidence.proof });
    return share !== undefined && !this.shareMatches(dealer, complainer, share);
  }

  // ---------------------------------------------------------------- confirm

  private enterConfirm(): void {
    const qualified = [...this.round1Qualified.keys()].filter((d) => !this.disqualifiedDealers.has(d)).sort((a, b) => a - b);
    if (qualified.length < this.t) {
      this.abort(`only ${qualified.length} qualified dealers, need t = ${this.t}${this.disqualificationSummary()}`);
      return;
    }
    let share = 0n;
    for (const dealer of qualified) {
      const part = dealer === this.self ? this.ownShare : this.receivedShares.get(dealer)?.valid === true ? this.receivedShares.get(dealer)!.share : undefined;
      if (part === undefined) {
        this.abort(`no valid share from qualified dealer ${dealer}`);
        return;
      }
      share = mod(share + part);
    }
    const aggregate: PointT[] = [];
    for (let k = 0; k < this.t; k++) {
      aggregate.push(qualified.reduce((acc, d) => acc.add(this.round1Qualified.get(d)!.commitments[k]!), Point.ZERO));
    }
    const groupKey = aggregate[0]!;
    if (groupKey.is0()) {
      this.abort('the qualified contributions cancel out to the identity point');
      return;
    }
    const verificationShares: [number, Uint8Array][] = [];
    for (const id of this.members) {
      const y = evaluateCommitments(aggregate, id);
      if (y.is0()) {
        this.abort(`verification share of member ${id} is the identity point`);
        return;
      }
      verificationShares.push([id, encodePoint(y)]);
    }
    if (share === 0n || !multiplySecret(G, share).equals(evaluateCommitments(aggregate, this.self))) {
      this.abort('own share does not match the verification share (internal inconsistency)');
      return;
    }
    const groupKeyBytes = encodePoint(groupKey);
    const hash = transcriptHash({
      context: this.context,
      qualified,
      packages: qualified.map((d) => this.round1Qualified.get(d)!.signed),
      groupPublicKey: groupKeyBytes,
      verificationShares,
    });
    this.finalShare = share;
    this.ownShare = undefined;
    this.receivedShares.clear();
    this.ownTranscriptHash = hash;
    this.pendingResult = {
      keyId: this.params.keyId,
      committeeId: this.params.committeeId,
      // Epoch 0 stays absent: results made before epochs existed keep their digest.
      ...(this.params.epoch !== undefined && this.params.epoch > 0 ? { epoch: this.params.epoch } : {}),
      sessionId: encodeHex(this.params.sessionId),
      t: this.t,
      n: this.members.length,
      groupPublicKey: encodeHex(groupKeyBytes),
      verificationShares: Object.fromEntries(verificationShares.map(([id, y]) => [String(id), encodeHex(y)])),
      qualified,
      transcriptHash: encodeHex(hash),
    };
    let ownConfirm: Uint8Array;
    try {
      ownConfirm = confirmMessage(dkgResultDigest(this.pendingResult, this.identity.memberKeys));
    } catch {
      this.abort('no committee key for every member: cannot sign the result');
      return;
    }
    this.ownConfirmMessage = ownConfirm;
    const signature = this.identity.sign(ownConfirm);
    this.confirms.set(this.self, { hash, signature });
    this.currentPhase = 'confirm';
    this.expectedConfirms = new Set(this.complaintSenders);
    this.event(`qualified dealers: ${qualified.join(', ')}`);
    this.broadcast(encodeConfirm(this.self, hash, signature));
    this.deliverBuffered('confirm');
  }

  private disqualificationSummary(): string {
    if (this.disqualifiedDealers.size === 0) return '';
    return ` (disqualified: ${[...this.disqualifiedDealers].map(([id, why]) => `${id}: ${why}`).join('; ')})`;
  }

  private onConfirm(from: number, message: ConfirmMessage): void {
    if (this.currentPhase !== 'confirm') return;
    if (message.member !== from || this.confirms.has(from)) {
      this.event(`ignored a duplicate or misattributed confirmation from ${from}`);
      return;
    }
    // A signature covers the signer's whole result, so only one over our own result can be checked.
    if (this.ownTranscriptHash && !equalBytes(message.transcriptHash, this.ownTranscriptHash)) {
      this.confirms.set(from, { hash: message.transcriptHash, signature: message.signature });
      this.event(`member ${from} confirmed a different transcript hash`);
      return;
    }
    if (this.ownConfirmMessage === undefined || !this.verifyRaw(from, this.ownConfirmMessage, message.signature)) {
      this.event(`ignored a confirmation from ${from}: bad signature`);
      return;
    }
    this.confirms.set(from, { hash: message.transcriptHash, signature: message.signature });
  }

  /** Done with ≥ t signatures over our result; members that confirmed another transcript are named. */
  private finish(): void {
    const own = this.ownTranscriptHash;
    const pending = this.pendingResult;
    if (own === undefined || pending === undefined) {
      this.abort('no transcript to confirm');
      return;
    }
    const matching: number[] = [];
    const different: number[] = [];
    for (const [id, c] of [...this.confirms].sort((a, b) => a[0] - b[0])) (equalBytes(c.hash, own) ? matching : different).push(id);
    const silent = this.others.filter((id) => !this.confirms.has(id));
    const detail = `${different.length > 0 ? `; different transcript from member(s) ${different.join(', ')}` : ''}${silent.length > 0 ? `; no confirmation from member(s) ${silent.join(', ')}` : ''}`;
    if (matching.length < this.t) {
      this.abort(`only ${matching.length} matching confirmations, need t = ${this.t}${detail}`);
      return;
    }
    this.publicResult = {
      ...pending,
      signatures: Object.fromEntries(matching.map((id) => [String(id), encodeHex(this.confirms.get(id)!.signature)])),
    };
    this.currentPhase = 'done';
    this.event(`done with ${matching.length} matching confirmations${detail}`);
    this.sentShares.clear();
    this.buffered.clear();
    this.bufferedJustifications.clear();
    this.seenJustifications.clear();
  }
}
