import { equalBytes } from '../bytes.ts';
import { TkmsError } from '../errors.ts';
import { proposerIndex } from './agreement.ts';
import { ceremonyMessageKind, type DecodedCeremonyMessage } from './codec.ts';
import type { CeremonyContext, EngineFaults } from './context.ts';
import { DealingBook } from './dealing-book.ts';
import { agreementStart, attemptAt, attemptDeadline, finalDeadline, maxAttempts } from './deadlines.ts';
import { Disqualifications } from './disqualifications.ts';
import type { CeremonyKind } from './kind.ts';
import { CeremonyMessages } from './messages.ts';
import { ProposalBook } from './proposal-book.ts';
import { CeremonyRoster } from './roster.ts';
import { VoteBook } from './vote-book.ts';
import type { CeremonyIdentity, CeremonyOutbound, CeremonyPhase, CeremonyStep, CeremonyTiming } from './types.ts';

export type { EngineFaults } from './context.ts';

/**
 * One member's view of one ceremony (README): the state machine that ties the dealing math
 * (dealing.ts), the agreement rules (agreement.ts), the inbox bounds (inbox.ts) and the deadline
 * policy (deadlines.ts) to the messages (codec.ts). What a reshare and a DKG do differently (who
 * deals, the constant term, which dealers are picked, how the outcome is combined and what a vote
 * signs) is its CeremonyKind. Pure: the runner passes time in and carries the outbound messages.
 * The engine keeps the clock and the progress through the phases; what it holds lives in its books:
 * the message layer (messages.ts), hellos, dealings and complaints (dealing-book.ts), proposals and
 * echoes (proposal-book.ts), votes and the certificate (vote-book.ts).
 */
export class CeremonyEngine<Unsigned, Outcome> {
  phase: CeremonyPhase = 'hello';
  failureReason: string | undefined;

  private readonly kind: CeremonyKind<Unsigned, Outcome>;
  private readonly timing: CeremonyTiming;
  private readonly faults: EngineFaults;
  private readonly roster: CeremonyRoster;
  private readonly messages: CeremonyMessages;
  private readonly disqualifications: Disqualifications;
  private readonly dealings: DealingBook<Unsigned, Outcome>;
  private readonly proposals: ProposalBook<Unsigned, Outcome>;
  private readonly votes: VoteBook<Unsigned, Outcome>;
  /** Receivers whose hello this member held when its hello phase closed: a DKG proposer picks only dealers that sealed to all of them. */
  private helloesAtClose: Set<number> | undefined;

  private startMs: number | undefined;
  private lastNow = 0;
  /** When every arriving member's hello was here, or the hello wait ran out: the clock of every later deadline. */
  private helloesDoneAt: number | undefined;
  private attempt = 0;
  private resentAtAttempt = -1;

  constructor(kind: CeremonyKind<Unsigned, Outcome>, identity: CeremonyIdentity, options: { timing: CeremonyTiming; faults?: EngineFaults; priorVote?: Uint8Array }) {
    if (!(options.timing.phaseMs > 0)) throw new TkmsError('bad_request', 'ceremony: phaseMs must be positive');
    this.kind = kind;
    this.timing = options.timing;
    this.faults = options.faults ?? {};
    this.roster = new CeremonyRoster(kind.dealers, kind.receivers, identity.publicKey);
    this.messages = new CeremonyMessages(kind, identity);
    this.disqualifications = new Disqualifications((role, id) => kind.label(role, id));
    const context: CeremonyContext<Unsigned, Outcome> = {
      kind,
      roster: this.roster,
      messages: this.messages,
      faults: this.faults,
      timing: this.timing,
      disqualifications: this.disqualifications,
      now: () => this.lastNow,
    };
    this.dealings = new DealingBook(context);
    this.proposals = new ProposalBook(context, this.dealings);
    this.votes = new VoteBook(context, this.dealings, this.proposals, options.priorVote);
  }

  // ---------------------------------------------------------------- API

  start(nowMs: number): CeremonyStep {
    if (this.faults.silent === true) return { outbound: [] };
    if (this.startMs !== undefined) return this.step(nowMs, []);
    this.startMs = nowMs;
    const out: CeremonyOutbound[] = [];
    // Re-sent like every own message: a member whose operator approves later may refuse it now, and
    // the dealers wait for every hello (clock()), so one lost hello stalls the whole ceremony.
    const hello = this.dealings.sayHello();
    if (hello !== undefined) out.push({ payload: hello });
    const myVote = this.votes.myVote;
    if (myVote !== undefined) {
      this.votes.acceptVote(this.messages.decode(myVote.raw), false);
      out.push({ payload: myVote.raw });
    }
    return this.step(nowMs, out);
  }

  receive(payload: Uint8Array, nowMs: number): CeremonyStep {
    if (this.faults.silent === true) return { outbound: [] };
    if (!(payload instanceof Uint8Array)) throw new TkmsError('bad_request', 'ceremony message must be bytes');
    if (this.messages.seen.has(payload)) return this.step(nowMs, []);
    if (this.phase === 'done') {
      // Read the header first: anything but a vote or a certificate after the outcome costs a lookup.
      const kind = ceremonyMessageKind(payload)?.kind;
      if ((kind === 'vote' || kind === 'certificate') && this.votes.lackingCertificate()?.length !== 0) this.votes.noteCertificateHolder(payload);
      return this.step(nowMs, []);
    }
    this.lastNow = Math.max(this.lastNow, nowMs);
    const out: CeremonyOutbound[] = [];
    this.handle(this.messages.decode(payload), out);
    return this.step(nowMs, out);
  }

  tick(nowMs: number): CeremonyStep {
    if (this.faults.silent === true) return { outbound: [] };
    return this.step(nowMs, []);
  }

  nextDeadline(): number | undefined {
    if (this.startMs === undefined || this.phase === 'done' || this.phase === 'failed' || this.faults.silent === true) return undefined;
    const phi = this.timing.phaseMs;
    const clock = this.clock();
    if (clock === undefined) return this.startMs + this.helloWaitMs();
    const candidates = [this.agreementAt(), attemptDeadline(clock, phi, this.attempt)].filter((d) => d > this.lastNow);
    return candidates.length > 0 ? Math.min(...candidates) : attemptDeadline(clock, phi, this.attempt);
  }

  retransmit(nowMs: number = this.lastNow): CeremonyOutbound[] {
    if (this.faults.silent === true) return [];
    const out: CeremonyOutbound[] = this.messages.own.map((payload) => ({ payload }));
    const myVote = this.votes.myVote;
    for (const p of this.proposals.all()) {
      if (p.valid && p.attempt === this.attempt && p.author !== this.roster.toId && (myVote === undefined || p.digest !== myVote.digest)) out.push({ payload: p.raw, to: this.votes.lacking(p, false) });
    }
    if (myVote !== undefined) {
      const locked = this.proposals.byDigest(myVote.digest);
      // Only to whoever may lack it: a member that echoed or voted for it holds it (at n = 32 the
      // proposal is ~110 KB, and every voter re-sent it to everyone).
      if (locked !== undefined) out.push({ payload: locked.raw, to: this.votes.lacking(locked, false) });
      out.push(this.votes.voteOutbound(nowMs));
    }
    const certificate = this.votes.certificateRaw;
    if (certificate !== undefined) out.push({ payload: certificate, to: this.votes.lackingCertificate() });
    return out;
  }

  isRepeat(payload: Uint8Array): boolean {
    return this.messages.seen.has(payload);
  }

  lacksCertificate(publicKey: Uint8Array): boolean {
    return this.votes.lackingCertificate()?.some((k) => equalBytes(k, publicKey)) === true;
  }

  outcome(): Outcome | undefined {
    return this.votes.outcome;
  }

  disqualified(): Record<string, string> {
    return this.disqualifications.all();
  }

  // ---------------------------------------------------------------- messages

  private handle(m: DecodedCeremonyMessage, out: CeremonyOutbound[]): void {
    const { messages, roster } = this;
    const body = m.body;
    switch (body.kind) {
      case 'hello': {
        const key = messages.authenticate(m, roster.toKeys, body.author);
        if (!messages.admit(key, m)) return;
        messages.seen.add(m.raw);
        this.dealings.acceptHello(body.author, body.receiverKey, m.signature);
        return;
      }
      case 'dealing': {
        const key = messages.authenticate(m, roster.fromKeys, body.author);
        if (!messages.admit(key, m)) return;
        messages.seen.add(m.raw);
        // Not relayed: n members relaying n dealings to n members is the cubic term that made a
        // 16-member refresh take a minute. Nobody needs it: the proposal carries its dealings whole,
        // the author re-sends its own until each member acknowledged it, and a dealing sent to some
        // members only changes nothing (the proposal decides which bytes everyone combines).
        this.dealings.acceptDealing(m, out);
        return;
      }
      case 'complaint': {
        const key = messages.authenticate(m, roster.toKeys, body.author);
        if (!messages.admit(key, m)) return;
        messages.seen.add(m.raw);
        this.dealings.acceptComplaint(body);
        out.push({ payload: m.raw });
        return;
      }
      case 'proposal': {
        const key = messages.authenticate(m, roster.toKeys, body.author);
        if (!this.proposals.isProposer(body.author, body.attempt)) {
          throw new TkmsError('bad_request', `ceremony proposal: member ${body.author} is not the proposer of attempt ${body.attempt}`);
        }
        if (!messages.admit(key, m)) return;
        messages.seen.add(m.raw);
        // A proposal for a later attempt waits for that attempt: echoed at once, a liar due to propose
        // later would lock a second proposal beside the current one and split the votes.
        if (body.attempt > this.currentAttempt()) {
          this.proposals.defer(m);
          return;
        }
        // Relayed on the next retransmit round (to the members none of whose echo or vote for it is
        // here by then), not at once: at once it went to everyone, and at n = 32 (a DKG proposal
        // carries all n dealings, ~160 KB) that was 31 copies per member, 150 MB in all, for a
        // proposer that had sent it to everyone already.
        this.proposals.acceptProposal(m, out);
        return;
      }
      case 'echo': {
        const key = messages.authenticate(m, roster.toKeys, body.author);
        if (!messages.admit(key, m)) return;
        messages.seen.add(m.raw);
        this.proposals.acceptEcho(body, m.raw);
        return;
      }
      case 'vote':
        this.votes.acceptVote(m, true);
        return;
      case 'certificate':
        this.votes.acceptCertificate(m);
        return;
    }
  }

  // ---------------------------------------------------------------- progress

  private step(nowMs: number, out: CeremonyOutbound[]): CeremonyStep {
    this.lastNow = Math.max(this.lastNow, nowMs);
    let persistVote: Uint8Array | undefined;
    if (this.phase === 'failed') {
      // A certificate that arrives after this member gave up still completes it: it verifies like any other.
      if (this.votes.maybeCertify(out)) {
        this.phase = 'done';
        this.failureReason = undefined;
      }
    } else if (this.phase !== 'done') {
      if (this.startMs !== undefined) this.advance(out);
      persistVote = this.votes.maybeVote(out);
      if (this.votes.maybeCertify(out)) this.phase = 'done';
      const clock = this.clock();
      if ((this.phase as CeremonyPhase) !== 'done' && clock !== undefined && this.lastNow >= finalDeadline(clock, this.timing.phaseMs, this.roster.toIds.length)) {
        this.phase = 'failed';
        this.failureReason = `no certificate after ${maxAttempts(this.roster.toIds.length)} attempts`;
      }
    }
    return persistVote === undefined ? { outbound: out } : { persistVote, outbound: out };
  }

  /** The attempt under way at this member's clock (0 until the agreement starts). */
  private currentAttempt(): number {
    const clock = this.clock();
    if (clock === undefined) return 0;
    return Math.min(attemptAt(clock, this.timing.phaseMs, this.lastNow), this.kind.shape.maxAttempts - 1);
  }

  private agreementAt(): number {
    return agreementStart(this.clock() ?? Infinity, this.timing.phaseMs, this.dealings.allDealt() ? this.dealings.lastDealingAt : undefined);
  }

  private helloWaitMs(): number {
    return this.timing.helloWaitMs ?? this.timing.phaseMs;
  }

  /**
   * The start every deadline after the hellos counts from (deadlines.ts counts a hello phase of φ
   * first): φ before the moment the last arriving member's hello was here, or the hello wait ran out.
   * Undefined until then. Counting from each member's own start instead, members whose operators
   * approved minutes apart dealt without the late ones and failed every attempt.
   */
  private clock(): number | undefined {
    if (this.helloesDoneAt === undefined && this.startMs !== undefined) {
      const hellos = this.dealings.hellos;
      if (this.roster.toIds.every((id) => hellos.has(id))) this.helloesDoneAt = this.lastNow;
      else if (this.lastNow >= this.startMs + this.helloWaitMs()) this.helloesDoneAt = this.startMs + this.helloWaitMs();
      if (this.helloesDoneAt !== undefined) this.helloesAtClose = new Set(hellos.keys());
    }
    return this.helloesDoneAt === undefined ? undefined : this.helloesDoneAt - this.timing.phaseMs;
  }

  private advance(out: CeremonyOutbound[]): void {
    const phi = this.timing.phaseMs;
    const now = this.lastNow;
    const clock = this.clock();
    if (this.dealings.dueToDeal() && clock !== undefined) this.dealings.deal(out);
    if (clock === undefined && !this.dealings.allDealt()) this.phase = 'hello';
    else if (now < this.agreementAt()) this.phase = 'dealing';
    else this.phase = 'agreement';
    if (this.phase !== 'agreement' || clock === undefined) return;
    this.proposals.releaseDeferred(this.currentAttempt(), out);
    const current = attemptAt(clock, phi, now);
    const maxAttempt = this.kind.shape.maxAttempts - 1;
    const myVote = this.votes.myVote;
    if (myVote === undefined) {
      this.attempt = Math.max(this.attempt, Math.min(current, maxAttempt));
      const proposer = this.roster.toIds[proposerIndex(this.attempt, this.roster.toIds.length)];
      if (proposer === this.roster.toId && !this.proposals.hasProposed(this.attempt)) this.proposals.propose(this.attempt, this.helloesAtClose ?? new Set<number>(), out);
    } else if (current > this.resentAtAttempt) {
      // A member that voted stays with its vote: it re-sends the vote, the proposal and the echoes that locked it, so others join it.
      this.resentAtAttempt = current;
      this.attempt = Math.min(current, maxAttempt);
      const p = this.proposals.byDigest(myVote.digest);
      if (current > 0 && p !== undefined) {
        out.push({ payload: p.raw, to: this.votes.lacking(p, false) }, ...this.proposals.echoRawsOf(p).map((payload) => ({ payload })), { payload: myVote.raw });
      }
    }
  }
}
