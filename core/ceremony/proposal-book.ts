import { encodeHex, equalBytes } from '../bytes.ts';
import { messageSha256 } from '../digest.ts';
import { TkmsError } from '../errors.ts';
import { EchoTally, proposerIndex } from './agreement.ts';
import type { DecodedCeremonyMessage, EchoMessage } from './codec.ts';
import { ceremonyTranscriptHash } from './combine.ts';
import type { CeremonyContext } from './context.ts';
import type { DealingBook, DealingRecord } from './dealing-book.ts';
import type { CeremonyOutbound } from './types.ts';

export interface ProposalRecord<Unsigned> {
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

/**
 * The proposals and echoes this member holds: each proposal checked once (its dealings, their
 * order, the result they determine), this member's echo of the first proposal of each attempt, the
 * echoes that lock a proposal, proposals held back until their attempt begins, and this member's
 * own proposal when it is an attempt's proposer.
 */
export class ProposalBook<Unsigned, Outcome> {
  private readonly proposals = new Map<string, ProposalRecord<Unsigned>>();
  private readonly proposalsByDigest = new Map<string, ProposalRecord<Unsigned>>();
  private readonly echoedAttempts = new Set<number>();
  /** Proposals for attempts not begun here yet (bounded by the inbox: two per attempt per proposer). */
  private deferredProposals: DecodedCeremonyMessage[] = [];
  private readonly proposedAttempts = new Set<number>();
  private readonly echoes = new EchoTally();
  private readonly echoRaws = new Map<string, Uint8Array[]>();

  constructor(
    private readonly context: CeremonyContext<Unsigned, Outcome>,
    private readonly dealings: DealingBook<Unsigned, Outcome>,
  ) {}

  get(hash: string): ProposalRecord<Unsigned> | undefined {
    return this.proposals.get(hash);
  }

  /** The first valid proposal that determines this digest. */
  byDigest(digest: string): ProposalRecord<Unsigned> | undefined {
    return this.proposalsByDigest.get(digest);
  }

  all(): Iterable<ProposalRecord<Unsigned>> {
    return this.proposals.values();
  }

  /** Every valid proposal by the digest it determines (the first for each digest). */
  byDigests(): Iterable<[string, ProposalRecord<Unsigned>]> {
    return this.proposalsByDigest;
  }

  /** The arriving members whose echo of `p` is here. */
  echoers(p: ProposalRecord<Unsigned>): number[] {
    return this.echoes.echoers(p.attempt, p.hash);
  }

  /** The echoes of `p` as they arrived (re-sent with it by a member that voted for it). */
  echoRawsOf(p: ProposalRecord<Unsigned>): Uint8Array[] {
    return this.echoRaws.get(`${p.attempt}:${p.hash}`) ?? [];
  }

  isLocked(p: ProposalRecord<Unsigned>): boolean {
    return p.valid && this.echoes.isLocked(p.attempt, p.hash, this.context.kind.quorum.arriving);
  }

  /** Whether `author` is the proposer of `attempt` (arriving members take turns by ascending id). */
  isProposer(author: number, attempt: number): boolean {
    const toIds = this.context.roster.toIds;
    return toIds[proposerIndex(attempt, toIds.length)] === author;
  }

  acceptEcho(body: EchoMessage, raw: Uint8Array): void {
    const slot = `${body.attempt}:${hex(body.proposalHash)}`;
    if (this.echoes.add(body.attempt, body.author, hex(body.proposalHash))) {
      const raws = this.echoRaws.get(slot) ?? [];
      raws.push(raw);
      this.echoRaws.set(slot, raws);
    } else this.context.disqualifications.note('to', body.author, `echoed two proposals in attempt ${body.attempt}`);
  }

  defer(m: DecodedCeremonyMessage): void {
    this.deferredProposals.push(m);
  }

  /** Takes the deferred proposals whose attempt has begun (`current`). */
  releaseDeferred(current: number, out: CeremonyOutbound[]): void {
    const due = this.deferredProposals.filter((m) => m.body.kind === 'proposal' && m.body.attempt <= current);
    if (due.length === 0) return;
    this.deferredProposals = this.deferredProposals.filter((m) => !due.includes(m));
    // Relayed with the retransmits, as every proposal received (retransmit()).
    for (const m of due) this.acceptProposal(m, out);
  }

  /** Whether this member's proposal for `attempt` is made (or it tried: too few dealers qualified). */
  hasProposed(attempt: number): boolean {
    return this.proposedAttempts.has(attempt);
  }

  /** This member's proposal for `attempt`; `heard`: the receivers whose hello it held when its hello phase closed. */
  propose(attempt: number, heard: Set<number>, out: CeremonyOutbound[]): void {
    const { kind, roster, messages, faults } = this.context;
    const dealers = kind.chooseDealers(this.dealings.standings(heard));
    if (dealers === undefined) return;
    this.proposedAttempts.add(attempt);
    const pick = (ids: number[]) => ids.map((d) => this.dealings.firstOf(d).raw);
    const raw = messages.signOwn({ kind: 'proposal', author: roster.toId!, attempt, dealings: pick(dealers) });
    const local: CeremonyOutbound[] = [];
    this.acceptProposal(messages.decode(raw), local);
    if (faults.equivocateProposal === true) {
      // Another dealer set: one dealer fewer when more than the minimum were picked (a DKG), else the highest valid ids (a reshare).
      const all = this.dealings.standings(heard).filter((s) => s.valid).map((s) => s.dealer).sort((a, b) => b - a);
      const otherDealers = dealers.length > kind.shape.tTo && kind.family === 'dkg' ? dealers.slice(0, -1) : all.slice(0, kind.shape.t).sort((a, b) => a - b);
      const other = messages.sign({ kind: 'proposal', author: roster.toId!, attempt, dealings: pick(otherDealers) });
      const { half, rest } = roster.equivocationHalves();
      out.push({ payload: raw, to: rest }, { payload: other, to: half });
      out.push(...local.filter((o) => !equalBytes(o.payload, raw)));
    } else out.push({ payload: raw }, ...local.filter((o) => !equalBytes(o.payload, raw)));
  }

  acceptProposal(m: DecodedCeremonyMessage, out: CeremonyOutbound[], echo = true): ProposalRecord<Unsigned> {
    const { kind, roster, messages, disqualifications } = this.context;
    const hash = hex(m.hash);
    const known = this.proposals.get(hash);
    if (known !== undefined) return known;
    const body = m.body;
    if (body.kind !== 'proposal') throw new TkmsError('bad_request', 'ceremony: not a proposal');
    const record: ProposalRecord<Unsigned> = { hash, attempt: body.attempt, author: body.author, raw: m.raw, valid: false, dealers: [], dealingHashes: [] };
    this.proposals.set(hash, record);
    for (const other of this.proposals.values()) {
      if (other !== record && other.attempt === body.attempt) disqualifications.note('to', body.author, `signed two proposals for attempt ${body.attempt}`);
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
        decoded = messages.decode(raw);
      } catch {
        disqualifications.note('to', body.author, 'proposed a malformed dealing');
        return record;
      }
      if (decoded.body.kind !== 'dealing') return record;
      const known = this.dealings.get(hex(decoded.hash));
      if (known === undefined) {
        try {
          messages.authenticate(decoded, roster.fromKeys, decoded.body.author);
        } catch {
          disqualifications.note('to', body.author, 'proposed a dealing its dealer did not sign');
          return record;
        }
      }
      records.push(known ?? this.dealings.acceptDealing(decoded, out));
    }
    const dealers = records.map((r) => r.message.author);
    if (records.some((r) => !r.valid) || dealers.some((d, i) => i > 0 && d <= dealers[i - 1]!)) {
      disqualifications.note('to', body.author, 'proposed invalid or unordered dealings');
      return record;
    }
    const transcript = ceremonyTranscriptHash(kind.ceremonyId, dealers, records.map((r) => messageSha256(r.raw)));
    const combined = kind.combine(dealers, records.map((r) => r.message), transcript);
    if (combined === undefined) {
      disqualifications.note('to', body.author, 'proposed dealings that determine no valid result (for a reshare: they do not keep the group key)');
      return record;
    }
    record.unsigned = combined.unsigned;
    record.digest = hex(combined.digest);
    record.dealers = dealers;
    record.dealingHashes = records.map((r) => r.hash);
    record.valid = true;
    if (!this.proposalsByDigest.has(record.digest)) this.proposalsByDigest.set(record.digest, record);
    const toId = roster.toId;
    if (echo && toId !== undefined && !this.echoedAttempts.has(body.attempt)) {
      this.echoedAttempts.add(body.attempt);
      const echoRaw = messages.signOwn({ kind: 'echo', author: toId, attempt: body.attempt, proposalHash: m.hash });
      this.echoes.add(body.attempt, toId, hash);
      this.echoRaws.set(`${body.attempt}:${hash}`, [...(this.echoRaws.get(`${body.attempt}:${hash}`) ?? []), echoRaw]);
      out.push({ payload: echoRaw });
    }
    return record;
  }
}
