import { concatBytes, decodeHex, encodeHex, equalBytes } from '../bytes.ts';
import { messageSha256 } from '../digest.ts';
import { curveBackend } from '../curve-backend.ts';
import { verifyMemberSignature } from '../dkg/member-signatures.ts';
import { isTkmsError, TkmsError } from '../errors.ts';
import { EchoTally, proposerIndex, VoteTally, type DealerStanding } from './agreement.ts';
import {
  ceremonyMessageKind,
  decodeCeremonyMessage,
  encodeUnsigned,
  signingBytes,
  withSignature,
  type CeremonyBody,
  type CeremonyShape,
  type ComplaintMessage,
  type DealingMessage,
  type DecodedCeremonyMessage,
  type KeyDealing,
  type PointCache,
} from './codec.ts';
import { LruCache } from '../lru.ts';
import { ceremonyTranscriptHash } from './combine.ts';
import { complaintHolds, dealKey, openSubShare, proveComplaint, receiverSecret } from './dealing.ts';
import { agreementStart, attemptAt, attemptDeadline, finalDeadline, maxAttempts } from './deadlines.ts';
import { Inbox, inboxBounds } from './inbox.ts';
import { SeenMessages } from './seen.ts';
import type { CeremonyKind, VoteRecord } from './kind.ts';
import type { CeremonyFaults, CeremonyIdentity, CeremonyOutbound, CeremonyPhase, CeremonyStep, CeremonyTiming } from './types.ts';

/**
 * Test-only misbehaviour the engine acts out (the node passes these only when test faults are
 * enabled); a wrong constant term is the reshare kind's (it picks the constant terms).
 */
export interface EngineFaults extends Omit<CeremonyFaults, 'wrongConstantTerm'> {
  /** As a DKG dealer: a proof of knowledge of the constant term that does not verify. */
  badProofOfKnowledge?: boolean;
  /** As a receiver: complain against these dealers' valid sub-shares (the complaint cannot hold). */
  falseComplaintAgainst?: number[];
}

/** A dealing seen (received, relayed or inside a proposal), checked once. */
interface DealingRecord {
  hash: string;
  raw: Uint8Array;
  message: DealingMessage;
  valid: boolean;
  /** This member's opened sub-shares (one per key) when it is an arriving member with a slot; 'bad' after a failed opening. */
  mine: bigint[] | 'bad' | 'absent' | undefined;
}

interface ProposalRecord<Unsigned> {
  hash: string;
  attempt: number;
  author: number;
  raw: Uint8Array;
  valid: boolean;
  dealers: number[];
  dealingHashes: string[];
  unsigned?: Unsigned;
  digest?: string;
}

const hex = (b: Uint8Array): string => encodeHex(b);

function badRequest(error: unknown): never {
  if (isTkmsError(error, 'bad_request')) throw error;
  if (isTkmsError(error)) throw new TkmsError('bad_request', error.message);
  throw error;
}

/**
 * One member's view of one ceremony (README): the state machine that ties the dealing math
 * (dealing.ts), the agreement rules (agreement.ts), the inbox bounds (inbox.ts) and the deadline
 * policy (deadlines.ts) to the messages (codec.ts). What a reshare and a DKG do differently (who
 * deals, the constant term, which dealers are picked, how the outcome is combined and what a vote
 * signs) is its CeremonyKind. Pure: the runner passes time in and carries the outbound messages.
 */
export class CeremonyEngine<Unsigned, Outcome> {
  phase: CeremonyPhase = 'hello';
  failureReason: string | undefined;

  private readonly kind: CeremonyKind<Unsigned, Outcome>;
  private readonly identity: CeremonyIdentity;
  private readonly timing: CeremonyTiming;
  private readonly faults: EngineFaults;
  private readonly shape: CeremonyShape;
  private readonly inbox: Inbox;
  private readonly fromKeys: Map<number, Uint8Array>;
  private readonly toKeys: Map<number, Uint8Array>;
  private readonly toIds: number[];
  private readonly fromId: number | undefined;
  private readonly toId: number | undefined;
  private readonly receiver: { secret: bigint; key: Uint8Array } | undefined;
  /** Receivers whose hello this member held when its hello phase closed: a DKG proposer picks only dealers that sealed to all of them. */
  private helloesAtClose: Set<number> | undefined;

  private startMs: number | undefined;
  private lastNow = 0;
  /** When every arriving member's hello was here, or the hello wait ran out: the clock of every later deadline. */
  private helloesDoneAt: number | undefined;
  /** When the last leaving member's first dealing arrived (agreementStart uses it once all dealt). */
  private lastDealingAt: number | undefined;
  private attempt = 0;
  private resentAtAttempt = -1;
  private readonly seen = new SeenMessages();
  /** Bounded: decoding happens before authentication. */
  private readonly pointCache: PointCache = new LruCache(4096);
  /** Signatures that verified (a forged one is checked again if sent again, never stored), bounded. */
  private readonly signatureCache = new LruCache<string, true>(4096);
  private readonly hellos = new Map<number, { receiverKey: Uint8Array; signature: Uint8Array }>();
  private dealt = false;
  private readonly dealings = new Map<string, DealingRecord>();
  private readonly dealingsByDealer = new Map<number, string[]>();
  private readonly complaints: ComplaintMessage[] = [];
  private readonly complainedDealings = new Set<string>();
  private readonly proposals = new Map<string, ProposalRecord<Unsigned>>();
  private readonly proposalsByDigest = new Map<string, ProposalRecord<Unsigned>>();
  private readonly echoedAttempts = new Set<number>();
  /** Proposals for attempts not begun here yet (bounded by the inbox: two per attempt per proposer). */
  private deferredProposals: DecodedCeremonyMessage[] = [];
  private readonly proposedAttempts = new Set<number>();
  private readonly echoes = new EchoTally();
  private readonly echoRaws = new Map<string, Uint8Array[]>();
  private readonly votes = new VoteTally();
  private readonly voteRecords = new Map<string, Map<string, VoteRecord>>();
  /** This member's vote; `author` and `castAt` when it was cast in this run (not restored from disk): see voteOutbound. */
  private myVote: { raw: Uint8Array; digest: string; author?: number; castAt?: number } | undefined;
  private readonly own: Uint8Array[] = [];
  private certificateRaw: Uint8Array | undefined;
  /** Members whose certificate arrived after the outcome (hex keys): they hold one. */
  private readonly certificateHolders = new Set<string>();
  /** The digest the certificate certifies (set with the outcome). */
  private certifiedDigest: string | undefined;
  /** Every participant but this member (both committees, once each): who a message may go to. */
  private readonly others: Uint8Array[];
  private result: Outcome | undefined;
  private readonly disq: Record<string, string> = {};

  constructor(kind: CeremonyKind<Unsigned, Outcome>, identity: CeremonyIdentity, options: { timing: CeremonyTiming; faults?: EngineFaults; priorVote?: Uint8Array }) {
    if (!(options.timing.phaseMs > 0)) throw new TkmsError('bad_request', 'ceremony: phaseMs must be positive');
    this.kind = kind;
    this.identity = identity;
    this.timing = options.timing;
    this.faults = options.faults ?? {};
    this.fromKeys = new Map(kind.dealers.map((m) => [m.id, m.publicKey]));
    this.toKeys = new Map(kind.receivers.map((m) => [m.id, m.publicKey]));
    this.toIds = kind.receivers.map((m) => m.id).sort((a, b) => a - b);
    this.fromId = kind.dealers.find((m) => equalBytes(m.publicKey, identity.publicKey))?.id;
    this.toId = kind.receivers.find((m) => equalBytes(m.publicKey, identity.publicKey))?.id;
    if (this.fromId === undefined && this.toId === undefined) throw new TkmsError('bad_request', 'ceremony: this node is in neither committee');
    const everyone = new Map([...kind.dealers, ...kind.receivers].map((m) => [hex(m.publicKey), m.publicKey]));
    everyone.delete(hex(identity.publicKey));
    this.others = [...everyone.values()];
    this.shape = kind.shape;
    this.inbox = new Inbox(inboxBounds(this.shape));
    if (this.toId !== undefined) {
      const secret = receiverSecret(kind.seed, kind.ceremonyId, this.toId);
      this.receiver = { secret, key: curveBackend().multiplyBaseSecret(secret) };
    }
    if (options.priorVote !== undefined) {
      const decoded = this.decode(options.priorVote);
      if (decoded.body.kind !== 'vote' || decoded.body.fromId !== (this.fromId ?? 0) || decoded.body.toId !== (this.toId ?? 0)) {
        throw new TkmsError('bad_request', 'ceremony: priorVote is not this member\'s vote');
      }
      this.myVote = { raw: options.priorVote, digest: hex(decoded.body.digest) };
    }
  }

  // ---------------------------------------------------------------- API

  start(nowMs: number): CeremonyStep {
    if (this.faults.silent === true) return { outbound: [] };
    if (this.startMs !== undefined) return this.step(nowMs, []);
    this.startMs = nowMs;
    const out: CeremonyOutbound[] = [];
    if (this.toId !== undefined && this.receiver !== undefined) {
      // Re-sent like every own message: a member whose operator approves later may refuse it now, and
      // the dealers wait for every hello (clock()), so one lost hello stalls the whole ceremony.
      const raw = this.signOwn({ kind: 'hello', author: this.toId, receiverKey: this.receiver.key });
      this.hellos.set(this.toId, { receiverKey: this.receiver.key, signature: raw.slice(raw.length - 64) });
      out.push({ payload: raw });
    }
    if (this.myVote !== undefined) {
      this.acceptVote(this.decode(this.myVote.raw), false);
      out.push({ payload: this.myVote.raw });
    }
    return this.step(nowMs, out);
  }

  receive(payload: Uint8Array, nowMs: number): CeremonyStep {
    if (this.faults.silent === true) return { outbound: [] };
    if (!(payload instanceof Uint8Array)) throw new TkmsError('bad_request', 'ceremony message must be bytes');
    if (this.seen.has(payload)) return this.step(nowMs, []);
    if (this.phase === 'done') {
      // Read the header first: anything but a vote or a certificate after the outcome costs a lookup.
      const kind = ceremonyMessageKind(payload)?.kind;
      if ((kind === 'vote' || kind === 'certificate') && this.lackingCertificate()?.length !== 0) this.noteCertificateHolder(payload);
      return this.step(nowMs, []);
    }
    this.lastNow = Math.max(this.lastNow, nowMs);
    const out: CeremonyOutbound[] = [];
    this.handle(this.decode(payload), out);
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
    const out: CeremonyOutbound[] = this.own.map((payload) => ({ payload }));
    for (const p of this.proposals.values()) {
      if (p.valid && p.attempt === this.attempt && p.author !== this.toId && (this.myVote === undefined || p.digest !== this.myVote.digest)) out.push({ payload: p.raw, to: this.lacking(p, false) });
    }
    if (this.myVote !== undefined) {
      const locked = this.proposalsByDigest.get(this.myVote.digest);
      // Only to whoever may lack it: a member that echoed or voted for it holds it (at n = 32 the
      // proposal is ~110 KB, and every voter re-sent it to everyone).
      if (locked !== undefined) out.push({ payload: locked.raw, to: this.lacking(locked, false) });
      out.push(this.voteOutbound(nowMs));
    }
    if (this.certificateRaw !== undefined) out.push({ payload: this.certificateRaw, to: this.lackingCertificate() });
    return out;
  }

  /**
   * The other participants that may lack proposal `p` (none of its echoes or votes came from them)
   * or, with `certificate`, its certificate (no vote for it came from them: a voter gets it from the
   * author it sent its vote to, and one that re-sent its vote to everyone gathers the votes itself;
   * the author itself counts only certificate holders). Whoever is left out and
   * still lacks it (a liar sent its vote to some members only) re-sends its own messages to
   * everyone in its runner's full retransmit rounds, and the runners answer such a laggard with the
   * certificate.
   */
  private lacking(p: ProposalRecord<Unsigned>, certificate: boolean): Uint8Array[] {
    // The author gathered the votes that were sent to it alone (maybeVote): its voters lack the certificate.
    const holders = new Set(certificate && p.author === this.toId ? [] : this.voteRecords.get(p.digest!)?.keys());
    if (certificate) for (const k of this.certificateHolders) holders.add(k);
    else for (const id of this.echoes.echoers(p.attempt, p.hash)) holders.add(hex(this.toKeys.get(id)!));
    return this.others.filter((k) => !holders.has(hex(k)));
  }

  /**
   * After the outcome, a vote for it or a certificate still says who holds the certificate or will
   * gather it (lacking()); anything else, or anything that does not verify, changes nothing.
   */
  private noteCertificateHolder(payload: Uint8Array): void {
    try {
      const m = this.decode(payload);
      if (m.body.kind === 'vote' && hex(m.body.digest) === this.certifiedDigest) this.acceptVote(m, true);
      else if (m.body.kind === 'certificate') {
        this.certificateHolders.add(hex(this.authenticate(m, m.body.authorRole === 0 ? this.fromKeys : this.toKeys, m.body.author)));
        this.seen.add(m.raw);
      }
    } catch {
      // Only a hint for addressing the certificate: a message that does not check is ignored.
    }
  }

  private lackingCertificate(): Uint8Array[] | undefined {
    const p = this.certifiedDigest === undefined ? undefined : this.proposalsByDigest.get(this.certifiedDigest);
    return p === undefined ? undefined : this.lacking(p, true);
  }

  isRepeat(payload: Uint8Array): boolean {
    return this.seen.has(payload);
  }

  lacksCertificate(publicKey: Uint8Array): boolean {
    return this.lackingCertificate()?.some((k) => equalBytes(k, publicKey)) === true;
  }

  outcome(): Outcome | undefined {
    return this.result;
  }

  disqualified(): Record<string, string> {
    return { ...this.disq };
  }

  // ---------------------------------------------------------------- messages

  private decode(payload: Uint8Array): DecodedCeremonyMessage {
    try {
      return decodeCeremonyMessage(payload, this.shape, this.pointCache);
    } catch (error) {
      badRequest(error);
    }
  }

  private sign(body: CeremonyBody): Uint8Array {
    const unsigned = encodeUnsigned(body, this.kind.family);
    return withSignature(unsigned, this.identity.sign(signingBytes(this.kind.ceremonyId, unsigned, this.kind.family)));
  }

  private label(role: 'from' | 'to', id: number): string {
    return this.kind.label(role, id);
  }

  private signOwn(body: CeremonyBody): Uint8Array {
    const raw = this.sign(body);
    this.own.push(raw);
    this.seen.add(raw);
    return raw;
  }

  /** Member signature check, once per (key, message, signature). */
  private verified(publicKey: Uint8Array | undefined, message: Uint8Array, signature: Uint8Array): boolean {
    if (publicKey === undefined) return false;
    const key = hex(messageSha256(concatBytes(publicKey, messageSha256(message), signature)));
    if (this.signatureCache.get(key) === true) return true;
    const ok = verifyMemberSignature(publicKey, message, signature);
    if (ok) this.signatureCache.set(key, true);
    return ok;
  }

  private authenticate(m: DecodedCeremonyMessage, keys: Map<number, Uint8Array>, author: number): Uint8Array {
    const publicKey = keys.get(author);
    if (publicKey === undefined) throw new TkmsError('bad_request', `ceremony ${m.body.kind}: author ${author} is not a member`);
    if (!this.verified(publicKey, signingBytes(this.kind.ceremonyId, m.signed, this.kind.family), m.signature)) {
      throw new TkmsError('bad_request', `ceremony ${m.body.kind}: bad signature of member ${author}`);
    }
    return publicKey;
  }

  private admit(publicKey: Uint8Array, m: DecodedCeremonyMessage): boolean {
    return this.inbox.admit(hex(publicKey), m.body.kind, m.raw.length);
  }

  private handle(m: DecodedCeremonyMessage, out: CeremonyOutbound[]): void {
    const body = m.body;
    switch (body.kind) {
      case 'hello': {
        const key = this.authenticate(m, this.toKeys, body.author);
        if (!this.admit(key, m)) return;
        this.seen.add(m.raw);
        const prior = this.hellos.get(body.author);
        if (prior === undefined) this.hellos.set(body.author, { receiverKey: body.receiverKey, signature: m.signature });
        else if (!equalBytes(prior.receiverKey, body.receiverKey)) this.disq[this.label('to', body.author)] = 'said hello with two receiver keys';
        return;
      }
      case 'dealing': {
        const key = this.authenticate(m, this.fromKeys, body.author);
        if (!this.admit(key, m)) return;
        this.seen.add(m.raw);
        // Not relayed: n members relaying n dealings to n members is the cubic term that made a
        // 16-member refresh take a minute. Nobody needs it: the proposal carries its dealings whole,
        // the author re-sends its own until each member acknowledged it, and a dealing sent to some
        // members only changes nothing (the proposal decides which bytes everyone combines).
        this.acceptDealing(m, out);
        return;
      }
      case 'complaint': {
        const key = this.authenticate(m, this.toKeys, body.author);
        if (!this.admit(key, m)) return;
        this.seen.add(m.raw);
        this.complaints.push(body);
        this.judgeComplaints();
        out.push({ payload: m.raw });
        return;
      }
      case 'proposal': {
        const key = this.authenticate(m, this.toKeys, body.author);
        if (this.toIds[proposerIndex(body.attempt, this.toIds.length)] !== body.author) {
          throw new TkmsError('bad_request', `ceremony proposal: member ${body.author} is not the proposer of attempt ${body.attempt}`);
        }
        if (!this.admit(key, m)) return;
        this.seen.add(m.raw);
        // A proposal for a later attempt waits for that attempt: echoed at once, a liar due to propose
        // later would lock a second proposal beside the current one and split the votes.
        if (body.attempt > this.currentAttempt()) {
          this.deferredProposals.push(m);
          return;
        }
        // Relayed on the next retransmit round (to the members none of whose echo or vote for it is
        // here by then), not at once: at once it went to everyone, and at n = 32 (a DKG proposal
        // carries all n dealings, ~160 KB) that was 31 copies per member, 150 MB in all, for a
        // proposer that had sent it to everyone already.
        this.acceptProposal(m, out);
        return;
      }
      case 'echo': {
        const key = this.authenticate(m, this.toKeys, body.author);
        if (!this.admit(key, m)) return;
        this.seen.add(m.raw);
        const slot = `${body.attempt}:${hex(body.proposalHash)}`;
        if (this.echoes.add(body.attempt, body.author, hex(body.proposalHash))) {
          const raws = this.echoRaws.get(slot) ?? [];
          raws.push(m.raw);
          this.echoRaws.set(slot, raws);
        } else this.disq[this.label('to', body.author)] = `echoed two proposals in attempt ${body.attempt}`;
        return;
      }
      case 'vote':
        this.acceptVote(m, true);
        return;
      case 'certificate':
        this.acceptCertificate(m);
        return;
    }
  }

  /** A certificate message: its proposal (checked like any) and enough valid votes for the proposal's digest. */
  private acceptCertificate(m: DecodedCeremonyMessage): void {
    const body = m.body;
    if (body.kind !== 'certificate') return;
    const key = this.authenticate(m, body.authorRole === 0 ? this.fromKeys : this.toKeys, body.author);
    if (!this.admit(key, m)) return;
    let record = this.proposals.get(hex(messageSha256(body.proposal)));
    if (record === undefined) {
      const proposal = this.decode(body.proposal);
      if (proposal.body.kind !== 'proposal') throw new TkmsError('bad_request', 'ceremony certificate: does not carry a proposal');
      this.authenticate(proposal, this.toKeys, proposal.body.author);
      if (this.toIds[proposerIndex(proposal.body.attempt, this.toIds.length)] !== proposal.body.author) {
        throw new TkmsError('bad_request', 'ceremony certificate: proposal by a member that is not its proposer');
      }
      record = this.acceptProposal(proposal, [], false);
    }
    if (!record.valid) throw new TkmsError('bad_request', 'ceremony certificate: the proposal is invalid');
    for (const v of body.votes) this.acceptVote(this.decode(v), true);
    if (!this.votes.certifies(record.digest!, this.kind.quorum)) throw new TkmsError('bad_request', 'ceremony certificate: too few valid votes');
    this.seen.add(m.raw);
    this.certificateRaw = m.raw;
  }

  // ---------------------------------------------------------------- dealings and complaints

  private acceptDealing(m: DecodedCeremonyMessage, out: CeremonyOutbound[]): DealingRecord {
    const hash = hex(m.hash);
    const known = this.dealings.get(hash);
    if (known !== undefined) return known;
    const message = m.body as DealingMessage;
    const dealer = message.author;
    const valid = this.dealingIsValid(message);
    const record: DealingRecord = { hash, raw: m.raw, message, valid, mine: undefined };
    this.dealings.set(hash, record);
    const byDealer = this.dealingsByDealer.get(dealer) ?? [];
    byDealer.push(hash);
    this.dealingsByDealer.set(dealer, byDealer);
    if (byDealer.length === 1) this.lastDealingAt = this.lastNow;
    if (byDealer.length > 1) this.disq[this.label('from', dealer)] = 'signed two different dealings';
    if (!valid) this.disq[this.label('from', dealer)] = this.kind.invalidDealingReason;
    if (valid && this.receiver !== undefined && this.toId !== undefined) {
      record.mine = this.openMine(message);
      if (record.mine === 'bad') this.complain(record, out);
      else if (this.faults.falseComplaintAgainst?.includes(dealer) === true && Array.isArray(record.mine)) this.complain(record, out, true);
    }
    this.judgeComplaints();
    return record;
  }

  private dealingIsValid(d: DealingMessage): boolean {
    if (!this.fromKeys.has(d.author)) return false;
    for (let i = 0; i < this.toIds.length; i++) {
      const r = d.recipients[i];
      if (r === undefined) continue;
      // The hello this member already authenticated, as most dealings carry it: no second check.
      const known = this.hellos.get(this.toIds[i]!);
      if (known !== undefined && equalBytes(known.signature, r.helloSignature) && equalBytes(known.receiverKey, r.receiverKey)) continue;
      const helloSigned = encodeUnsigned({ kind: 'hello', author: this.toIds[i]!, receiverKey: r.receiverKey }, this.kind.family);
      if (!this.verified(this.toKeys.get(this.toIds[i]!), signingBytes(this.kind.ceremonyId, helloSigned, this.kind.family), r.helloSignature)) return false;
    }
    return d.keys.every((k, i) => this.kind.keyDealingIsValid(d.author, i, k));
  }

  private slot(d: DealingMessage, toId: number): { index: number; cipherIndex: number } | undefined {
    const index = this.toIds.indexOf(toId);
    if (index < 0 || d.recipients[index] === undefined) return undefined;
    let cipherIndex = 0;
    for (let i = 0; i < index; i++) if (d.recipients[i] !== undefined) cipherIndex++;
    return { index, cipherIndex };
  }

  private openMine(d: DealingMessage): bigint[] | 'bad' | 'absent' {
    const slot = this.slot(d, this.toId!);
    if (slot === undefined) return 'absent';
    const receiverKey = d.recipients[slot.index]!.receiverKey;
    if (!equalBytes(receiverKey, this.receiver!.key)) return 'absent';
    const values: bigint[] = [];
    for (let k = 0; k < d.keys.length; k++) {
      const kd = d.keys[k]!;
      const v = openSubShare(this.kind.ceremonyId, this.kind.keyIds[k]!, d.author, this.toId!, receiverKey, this.receiver!.secret, kd, kd.ciphertexts[slot.cipherIndex]!);
      if (v === undefined) return 'bad';
      values.push(v);
    }
    return values;
  }

  /** `falsely` (a test fault): complain about a sub-share that opens fine, with its true pair key, so the complaint is public and cannot hold. */
  private complain(record: DealingRecord, out: CeremonyOutbound[], falsely = false): void {
    const d = record.message;
    const slot = this.slot(d, this.toId!)!;
    for (let k = 0; k < d.keys.length; k++) {
      const kd = d.keys[k]!;
      const keyId = this.kind.keyIds[k]!;
      const v = openSubShare(this.kind.ceremonyId, keyId, d.author, this.toId!, this.receiver!.key, this.receiver!.secret, kd, kd.ciphertexts[slot.cipherIndex]!);
      if (v !== undefined && !falsely) continue;
      const proven = proveComplaint(this.kind.ceremonyId, keyId, d.author, this.toId!, this.receiver!.key, this.receiver!.secret, kd);
      const body: ComplaintMessage = { kind: 'complaint', author: this.toId!, dealer: d.author, dealingHash: messageSha256(record.raw), keyIndex: k, pairKey: proven.pairKey, proof: proven.proof };
      this.complaints.push(body);
      out.push({ payload: this.signOwn(body) });
      return;
    }
  }

  /** Judges complaints whose dealing is known (each once). */
  private judgeComplaints(): void {
    for (let i = this.complaints.length - 1; i >= 0; i--) {
      const c = this.complaints[i]!;
      const record = this.dealings.get(hex(c.dealingHash));
      if (record === undefined) continue;
      this.complaints.splice(i, 1);
      const d = record.message;
      const slot = this.slot(d, c.author);
      const kd = d.keys[c.keyIndex];
      if (!record.valid || slot === undefined || kd === undefined || d.author !== c.dealer) continue;
      const holds = complaintHolds(this.kind.ceremonyId, this.kind.keyIds[c.keyIndex]!, d.author, c.author, d.recipients[slot.index]!.receiverKey, kd, kd.ciphertexts[slot.cipherIndex]!, c.pairKey, c.proof);
      if (holds) {
        this.complainedDealings.add(record.hash);
        this.disq[this.label('from', d.author)] = `sealed a sub-share to ${this.label('to', c.author)} that does not match its commitments`;
      } else this.disq[this.label('to', c.author)] = `complained about a valid sub-share of ${this.label('from', d.author)}`;
    }
  }

  private deal(out: CeremonyOutbound[]): void {
    this.dealt = true;
    const constantTerms = this.kind.constantTerms!;
    const recipients = this.toIds.map((id) => {
      const h = this.hellos.get(id);
      return h === undefined ? undefined : { receiverKey: h.receiverKey, helloSignature: h.signature };
    });
    const present = this.toIds.flatMap((id, i) => (recipients[i] === undefined ? [] : [{ id, receiverKey: recipients[i]!.receiverKey }]));
    const make = (variant: number): Uint8Array => {
      const keys: KeyDealing[] = this.kind.keyIds.map((keyId, k) =>
        dealKey({
          seed: this.kind.seed,
          proposalId: this.kind.ceremonyId,
          keyId,
          dealer: this.fromId!,
          constantTerm: constantTerms[k]!,
          tTo: this.shape.tTo,
          recipients: present,
          proveConstantTerm: this.kind.proveConstantTerms,
          variant,
          badConstantProof: this.faults.badProofOfKnowledge,
          badSubShareTo: this.faults.badSubShareTo,
        }),
      );
      return this.sign({ kind: 'dealing', author: this.fromId!, recipients, keys });
    };
    const raw = make(0);
    this.own.push(raw);
    this.seen.add(raw);
    this.acceptDealing(this.decode(raw), out);
    if (this.faults.equivocateDealing === true) {
      const other = make(1);
      const half = this.toIds.slice(Math.ceil(this.toIds.length / 2)).map((id) => this.toKeys.get(id)!);
      const rest = [...this.fromKeys.values(), ...this.toKeys.values()].filter((k) => !half.some((h) => equalBytes(h, k)) && !equalBytes(k, this.identity.publicKey));
      out.push({ payload: raw, to: rest }, { payload: other, to: half });
    } else out.push({ payload: raw });
  }

  // ---------------------------------------------------------------- proposals, echoes, votes

  private standings(): DealerStanding[] {
    const heard = this.helloesAtClose ?? new Set<number>();
    return [...this.dealingsByDealer].map(([dealer, hashes]) => {
      const record = this.dealings.get(hashes[0]!)!;
      const recipients = record.message.recipients;
      const absent = recipients.filter((r) => r === undefined).length;
      const unsealed = this.toIds.filter((id, i) => recipients[i] === undefined && heard.has(id)).length;
      return { dealer, valid: record.valid, equivocated: hashes.length > 1, complained: this.complainedDealings.has(record.hash), absent, unsealed };
    });
  }

  private propose(out: CeremonyOutbound[]): void {
    const dealers = this.kind.chooseDealers(this.standings());
    if (dealers === undefined) return;
    this.proposedAttempts.add(this.attempt);
    const pick = (ids: number[]) => ids.map((d) => this.dealings.get(this.dealingsByDealer.get(d)![0]!)!.raw);
    const raw = this.sign({ kind: 'proposal', author: this.toId!, attempt: this.attempt, dealings: pick(dealers) });
    this.own.push(raw);
    this.seen.add(raw);
    const local: CeremonyOutbound[] = [];
    this.acceptProposal(this.decode(raw), local);
    if (this.faults.equivocateProposal === true) {
      // Another dealer set: one dealer fewer when more than the minimum were picked (a DKG), else the highest valid ids (a reshare).
      const all = this.standings().filter((s) => s.valid).map((s) => s.dealer).sort((a, b) => b - a);
      const otherDealers = dealers.length > this.shape.tTo && this.kind.family === 'dkg' ? dealers.slice(0, -1) : all.slice(0, this.shape.t).sort((a, b) => a - b);
      const other = this.sign({ kind: 'proposal', author: this.toId!, attempt: this.attempt, dealings: pick(otherDealers) });
      const half = this.toIds.slice(Math.ceil(this.toIds.length / 2)).map((id) => this.toKeys.get(id)!);
      const rest = [...this.fromKeys.values(), ...this.toKeys.values()].filter((k) => !half.some((h) => equalBytes(h, k)) && !equalBytes(k, this.identity.publicKey));
      out.push({ payload: raw, to: rest }, { payload: other, to: half });
      out.push(...local.filter((o) => !equalBytes(o.payload, raw)));
    } else out.push({ payload: raw }, ...local.filter((o) => !equalBytes(o.payload, raw)));
  }

  private acceptProposal(m: DecodedCeremonyMessage, out: CeremonyOutbound[], echo = true): ProposalRecord<Unsigned> {
    const hash = hex(m.hash);
    const known = this.proposals.get(hash);
    if (known !== undefined) return known;
    const body = m.body;
    if (body.kind !== 'proposal') throw new TkmsError('bad_request', 'ceremony: not a proposal');
    const record: ProposalRecord<Unsigned> = { hash, attempt: body.attempt, author: body.author, raw: m.raw, valid: false, dealers: [], dealingHashes: [] };
    this.proposals.set(hash, record);
    for (const other of this.proposals.values()) {
      if (other !== record && other.attempt === body.attempt) this.disq[this.label('to', body.author)] = `signed two proposals for attempt ${body.attempt}`;
    }
    const records: DealingRecord[] = [];
    for (const raw of body.dealings) {
      const already = this.dealings.get(hex(messageSha256(raw)));
      if (already !== undefined) {
        records.push(already);
        continue;
      }
      let decoded: DecodedCeremonyMessage;
      try {
        decoded = this.decode(raw);
      } catch {
        this.disq[this.label('to', body.author)] = 'proposed a malformed dealing';
        return record;
      }
      if (decoded.body.kind !== 'dealing') return record;
      const known = this.dealings.get(hex(decoded.hash));
      if (known === undefined) {
        try {
          this.authenticate(decoded, this.fromKeys, decoded.body.author);
        } catch {
          this.disq[this.label('to', body.author)] = 'proposed a dealing its dealer did not sign';
          return record;
        }
      }
      records.push(known ?? this.acceptDealing(decoded, out));
    }
    const dealers = records.map((r) => r.message.author);
    if (records.some((r) => !r.valid) || dealers.some((d, i) => i > 0 && d <= dealers[i - 1]!)) {
      this.disq[this.label('to', body.author)] = 'proposed invalid or unordered dealings';
      return record;
    }
    const transcript = ceremonyTranscriptHash(this.kind.ceremonyId, dealers, records.map((r) => messageSha256(r.raw)));
    const combined = this.kind.combine(dealers, records.map((r) => r.message), transcript);
    if (combined === undefined) {
      this.disq[this.label('to', body.author)] = 'proposed dealings that determine no valid result (for a reshare: they do not keep the group key)';
      return record;
    }
    record.unsigned = combined.unsigned;
    record.digest = hex(combined.digest);
    record.dealers = dealers;
    record.dealingHashes = records.map((r) => r.hash);
    record.valid = true;
    if (!this.proposalsByDigest.has(record.digest)) this.proposalsByDigest.set(record.digest, record);
    if (echo && this.toId !== undefined && !this.echoedAttempts.has(body.attempt)) {
      this.echoedAttempts.add(body.attempt);
      const echoRaw = this.signOwn({ kind: 'echo', author: this.toId, attempt: body.attempt, proposalHash: m.hash });
      this.echoes.add(body.attempt, this.toId, hash);
      this.echoRaws.set(`${body.attempt}:${hash}`, [...(this.echoRaws.get(`${body.attempt}:${hash}`) ?? []), echoRaw]);
      out.push({ payload: echoRaw });
    }
    return record;
  }

  private acceptVote(m: DecodedCeremonyMessage, check: boolean): void {
    const body = m.body;
    if (body.kind !== 'vote') throw new TkmsError('bad_request', 'ceremony: not a vote');
    const fromKey = body.fromId === 0 ? undefined : this.fromKeys.get(body.fromId);
    const toKey = body.toId === 0 ? undefined : this.toKeys.get(body.toId);
    const key = fromKey ?? toKey;
    if (key === undefined || (body.fromId !== 0 && fromKey === undefined) || (body.toId !== 0 && toKey === undefined)) throw new TkmsError('bad_request', 'ceremony vote: voter is not a member');
    // A vote names all of its voter's ids (its signature does not cover them): no variant of one vote passes as another.
    const expected = this.idsOf(key);
    if (expected.fromId !== body.fromId || expected.toId !== body.toId) throw new TkmsError('bad_request', 'ceremony vote: ids are not exactly the voter\'s');
    const digest = hex(body.digest);
    const records = this.voteRecords.get(digest) ?? new Map<string, VoteRecord>();
    const voter = hex(key);
    if (records.has(voter)) return;
    if (check && !this.verified(key, this.kind.voteMessage(body.digest), m.signature)) throw new TkmsError('bad_request', 'ceremony vote: bad signature');
    if (!this.admit(key, m)) return;
    this.seen.add(m.raw);
    if (!this.votes.add(body.fromId, body.toId, digest)) this.disq[body.toId !== 0 ? this.label('to', body.toId) : this.label('from', body.fromId)] = `voted for two ${this.kind.family === 'dkg' ? 'results' : 'handovers'}`;
    records.set(voter, { fromId: body.fromId, toId: body.toId, signature: m.signature, raw: m.raw });
    this.voteRecords.set(digest, records);
  }

  private idsOf(publicKey: Uint8Array): { fromId: number; toId: number } {
    const find = (keys: Map<number, Uint8Array>) => [...keys].find(([, k]) => equalBytes(k, publicKey))?.[0] ?? 0;
    return { fromId: find(this.fromKeys), toId: find(this.toKeys) };
  }

  private isLocked(p: ProposalRecord<Unsigned>): boolean {
    return p.valid && this.echoes.isLocked(p.attempt, p.hash, this.kind.quorum.arriving);
  }

  private mayVoteFor(p: ProposalRecord<Unsigned>): boolean {
    if (p.dealingHashes.some((h) => this.complainedDealings.has(h))) return false;
    if (this.toId === undefined) return true;
    return p.dealingHashes.every((h) => Array.isArray(this.dealings.get(h)!.mine));
  }

  private maybeVote(out: CeremonyOutbound[]): CeremonyStep['persistVote'] {
    if (this.myVote !== undefined) return undefined;
    for (const p of this.proposals.values()) {
      if (!this.isLocked(p) || !this.mayVoteFor(p)) continue;
      const digest = decodeHex(p.digest!);
      const unsigned = encodeUnsigned({ kind: 'vote', fromId: this.fromId ?? 0, toId: this.toId ?? 0, digest }, this.kind.family);
      const raw = withSignature(unsigned, this.identity.sign(this.kind.voteMessage(digest)));
      this.myVote = { raw, digest: p.digest!, author: p.author, castAt: this.lastNow };
      this.acceptVote(this.decode(raw), false);
      out.push(this.voteOutbound(this.lastNow));
      return raw;
    }
    return undefined;
  }

  /**
   * This member's vote, addressed: for half a phase after it was cast, to the proposal's author
   * alone, which gathers the votes and sends everyone the certificate (votes to everyone were n²
   * frames, a quarter of a DKG's at n = 32); after that to everyone, so a silent author delays the
   * outcome but cannot stop it (the members then gather the votes themselves). A vote restored
   * from disk goes to everyone: its proposal may not be here.
   */
  private voteOutbound(nowMs: number): CeremonyOutbound {
    const v = this.myVote!;
    if (v.castAt === undefined || v.author === undefined || nowMs - v.castAt >= this.timing.phaseMs / 2) return { payload: v.raw };
    return { payload: v.raw, to: v.author === this.toId ? [] : [this.toKeys.get(v.author)!] };
  }

  private maybeCertify(out: CeremonyOutbound[]): void {
    if (this.result !== undefined) return;
    for (const [digest, p] of this.proposalsByDigest) {
      if (!this.votes.certifies(digest, this.kind.quorum)) continue;
      const records = [...this.voteRecords.get(digest)!.values()];
      this.result = this.kind.outcome(p.unsigned!, records, this.toId !== undefined ? this.newShares(p) : undefined);
      this.phase = 'done';
      if (this.certificateRaw === undefined) {
        const authorRole = this.toId !== undefined ? 1 : 0;
        const raw = this.sign({ kind: 'certificate', authorRole, author: (this.toId ?? this.fromId)!, proposal: p.raw, votes: records.map((r) => r.raw) });
        this.certificateRaw = raw;
        this.seen.add(raw);
      }
      this.certifiedDigest = digest;
      const to = this.lackingCertificate();
      if (to === undefined || to.length > 0) out.push({ payload: this.certificateRaw, ...(to === undefined ? {} : { to }) });
      return;
    }
  }

  /** This member's share of each key (aligned with the key ids). */
  private newShares(p: ProposalRecord<Unsigned>): bigint[] | undefined {
    const mine = p.dealingHashes.map((h) => this.dealings.get(h)!.mine);
    // Certified without a sub-share from every agreed dealer (no hello reached one in time): no share; the outcome says so by its absence.
    if (!mine.every((m): m is bigint[] => Array.isArray(m))) return undefined;
    return this.kind.keyIds.map((_, i) => this.kind.combineShares(p.dealers, mine.map((m) => m[i]!)));
  }

  // ---------------------------------------------------------------- progress

  private step(nowMs: number, out: CeremonyOutbound[]): CeremonyStep {
    this.lastNow = Math.max(this.lastNow, nowMs);
    let persistVote: Uint8Array | undefined;
    if (this.phase === 'failed') {
      // A certificate that arrives after this member gave up still completes it: it verifies like any other.
      this.maybeCertify(out);
      if ((this.phase as CeremonyPhase) === 'done') this.failureReason = undefined;
    } else if (this.phase !== 'done') {
      if (this.startMs !== undefined) this.advance(out);
      persistVote = this.maybeVote(out);
      this.maybeCertify(out);
      const clock = this.clock();
      if ((this.phase as CeremonyPhase) !== 'done' && clock !== undefined && this.lastNow >= finalDeadline(clock, this.timing.phaseMs, this.toIds.length)) {
        this.phase = 'failed';
        this.failureReason = `no certificate after ${maxAttempts(this.toIds.length)} attempts`;
      }
    }
    return persistVote === undefined ? { outbound: out } : { persistVote, outbound: out };
  }

  /** The attempt under way at this member's clock (0 until the agreement starts). */
  private currentAttempt(): number {
    const clock = this.clock();
    if (clock === undefined) return 0;
    return Math.min(attemptAt(clock, this.timing.phaseMs, this.lastNow), this.shape.maxAttempts - 1);
  }

  private releaseDeferredProposals(out: CeremonyOutbound[]): void {
    const current = this.currentAttempt();
    const due = this.deferredProposals.filter((m) => m.body.kind === 'proposal' && m.body.attempt <= current);
    if (due.length === 0) return;
    this.deferredProposals = this.deferredProposals.filter((m) => !due.includes(m));
    // Relayed with the retransmits, as every proposal received (retransmit()).
    for (const m of due) this.acceptProposal(m, out);
  }

  private allDealt(): boolean {
    return this.kind.dealers.every((m) => this.dealingsByDealer.has(m.id));
  }

  private agreementAt(): number {
    return agreementStart(this.clock() ?? Infinity, this.timing.phaseMs, this.allDealt() ? this.lastDealingAt : undefined);
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
      if (this.toIds.every((id) => this.hellos.has(id))) this.helloesDoneAt = this.lastNow;
      else if (this.lastNow >= this.startMs + this.helloWaitMs()) this.helloesDoneAt = this.startMs + this.helloWaitMs();
      if (this.helloesDoneAt !== undefined) this.helloesAtClose = new Set(this.hellos.keys());
    }
    return this.helloesDoneAt === undefined ? undefined : this.helloesDoneAt - this.timing.phaseMs;
  }

  private advance(out: CeremonyOutbound[]): void {
    const phi = this.timing.phaseMs;
    const now = this.lastNow;
    const clock = this.clock();
    const isDealer = this.fromId !== undefined && this.kind.constantTerms !== undefined;
    if (isDealer && !this.dealt && clock !== undefined) this.deal(out);
    if (clock === undefined && !this.allDealt()) this.phase = 'hello';
    else if (now < this.agreementAt()) this.phase = 'dealing';
    else this.phase = 'agreement';
    if (this.phase !== 'agreement' || clock === undefined) return;
    this.releaseDeferredProposals(out);
    const current = attemptAt(clock, phi, now);
    if (this.myVote === undefined) {
      this.attempt = Math.max(this.attempt, Math.min(current, this.shape.maxAttempts - 1));
      const proposer = this.toIds[proposerIndex(this.attempt, this.toIds.length)];
      if (proposer === this.toId && !this.proposedAttempts.has(this.attempt)) this.propose(out);
    } else if (current > this.resentAtAttempt) {
      // A member that voted stays with its vote: it re-sends the vote, the proposal and the echoes that locked it, so others join it.
      this.resentAtAttempt = current;
      this.attempt = Math.min(current, this.shape.maxAttempts - 1);
      const p = this.proposalsByDigest.get(this.myVote.digest);
      if (current > 0 && p !== undefined) {
        out.push({ payload: p.raw, to: this.lacking(p, false) }, ...(this.echoRaws.get(`${p.attempt}:${p.hash}`) ?? []).map((payload) => ({ payload })), { payload: this.myVote.raw });
      }
    }
  }
}

