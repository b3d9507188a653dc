import { decodeHex, encodeHex } from '../bytes.ts';
import { messageSha256 } from '../digest.ts';
import { TkmsError } from '../errors.ts';
import { VoteTally } from './agreement.ts';
import { encodeUnsigned, withSignature, type DecodedCeremonyMessage } from './codec.ts';
import type { CeremonyContext } from './context.ts';
import type { DealingBook } from './dealing-book.ts';
import type { VoteRecord } from './kind.ts';
import type { ProposalBook, ProposalRecord } from './proposal-book.ts';
import type { CeremonyOutbound } from './types.ts';

const hex = (b: Uint8Array): string => encodeHex(b);

/**
 * The votes and the certificate: every valid vote by the digest it signs, this member's one vote
 * (cast for the first locked proposal it may vote for, or restored from disk) and where it goes,
 * the certificate this member made or took, the outcome it determines, and who may still lack it.
 */
export class VoteBook<Unsigned, Outcome> {
  private readonly votes = new VoteTally();
  private readonly voteRecords = new Map<string, Map<string, VoteRecord>>();
  /** This member's vote; `author` and `castAt` when it was cast in this run (not restored from disk): see voteOutbound. */
  myVote: { raw: Uint8Array; digest: string; author?: number; castAt?: number } | undefined;
  certificateRaw: Uint8Array | undefined;
  /** Members whose certificate arrived after the outcome (hex keys): they hold one. */
  private readonly certificateHolders = new Set<string>();
  /** The digest the certificate certifies (set with the outcome). */
  private certifiedDigest: string | undefined;
  outcome: Outcome | undefined;

  constructor(
    private readonly context: CeremonyContext<Unsigned, Outcome>,
    private readonly dealings: DealingBook<Unsigned, Outcome>,
    private readonly proposals: ProposalBook<Unsigned, Outcome>,
    priorVote: Uint8Array | undefined,
  ) {
    if (priorVote !== undefined) {
      const decoded = context.messages.decode(priorVote);
      const { fromId, toId } = context.roster;
      if (decoded.body.kind !== 'vote' || decoded.body.fromId !== (fromId ?? 0) || decoded.body.toId !== (toId ?? 0)) {
        throw new TkmsError('bad_request', 'ceremony: priorVote is not this member\'s vote');
      }
      this.myVote = { raw: priorVote, digest: hex(decoded.body.digest) };
    }
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
  lacking(p: ProposalRecord<Unsigned>, certificate: boolean): Uint8Array[] {
    const { roster } = this.context;
    // The author gathered the votes that were sent to it alone (maybeVote): its voters lack the certificate.
    const holders = new Set(certificate && p.author === roster.toId ? [] : this.voteRecords.get(p.digest!)?.keys());
    if (certificate) for (const k of this.certificateHolders) holders.add(k);
    else for (const id of this.proposals.echoers(p)) holders.add(hex(roster.toKeys.get(id)!));
    return roster.others.filter((k) => !holders.has(hex(k)));
  }

  lackingCertificate(): Uint8Array[] | undefined {
    const p = this.certifiedDigest === undefined ? undefined : this.proposals.byDigest(this.certifiedDigest);
    return p === undefined ? undefined : this.lacking(p, true);
  }

  /**
   * After the outcome, a vote for it or a certificate still says who holds the certificate or will
   * gather it (lacking()); anything else, or anything that does not verify, changes nothing.
   */
  noteCertificateHolder(payload: Uint8Array): void {
    const { messages, roster } = this.context;
    try {
      const m = messages.decode(payload);
      if (m.body.kind === 'vote' && hex(m.body.digest) === this.certifiedDigest) this.acceptVote(m, true);
      else if (m.body.kind === 'certificate') {
        this.certificateHolders.add(hex(messages.authenticate(m, m.body.authorRole === 0 ? roster.fromKeys : roster.toKeys, m.body.author)));
        messages.seen.add(m.raw);
      }
    } catch {
      // Only a hint for addressing the certificate: a message that does not check is ignored.
    }
  }

  /** A certificate message: its proposal (checked like any) and enough valid votes for the proposal's digest. */
  acceptCertificate(m: DecodedCeremonyMessage): void {
    const { kind, messages, roster } = this.context;
    const body = m.body;
    if (body.kind !== 'certificate') return;
    const key = messages.authenticate(m, body.authorRole === 0 ? roster.fromKeys : roster.toKeys, body.author);
    if (!messages.admit(key, m)) return;
    let record = this.proposals.get(hex(messageSha256(body.proposal)));
    if (record === undefined) {
      const proposal = messages.decode(body.proposal);
      if (proposal.body.kind !== 'proposal') throw new TkmsError('bad_request', 'ceremony certificate: does not carry a proposal');
      messages.authenticate(proposal, roster.toKeys, proposal.body.author);
      if (!this.proposals.isProposer(proposal.body.author, proposal.body.attempt)) {
        throw new TkmsError('bad_request', 'ceremony certificate: proposal by a member that is not its proposer');
      }
      record = this.proposals.acceptProposal(proposal, [], false);
    }
    if (!record.valid) throw new TkmsError('bad_request', 'ceremony certificate: the proposal is invalid');
    for (const v of body.votes) this.acceptVote(messages.decode(v), true);
    if (!this.votes.certifies(record.digest!, kind.quorum)) throw new TkmsError('bad_request', 'ceremony certificate: too few valid votes');
    messages.seen.add(m.raw);
    this.certificateRaw = m.raw;
  }

  acceptVote(m: DecodedCeremonyMessage, check: boolean): void {
    const { kind, messages, roster, disqualifications } = this.context;
    const body = m.body;
    if (body.kind !== 'vote') throw new TkmsError('bad_request', 'ceremony: not a vote');
    const fromKey = body.fromId === 0 ? undefined : roster.fromKeys.get(body.fromId);
    const toKey = body.toId === 0 ? undefined : roster.toKeys.get(body.toId);
    const key = fromKey ?? toKey;
    if (key === undefined || (body.fromId !== 0 && fromKey === undefined) || (body.toId !== 0 && toKey === undefined)) throw new TkmsError('bad_request', 'ceremony vote: voter is not a member');
    // A vote names all of its voter's ids (its signature does not cover them): no variant of one vote passes as another.
    const expected = roster.idsOf(key);
    if (expected.fromId !== body.fromId || expected.toId !== body.toId) throw new TkmsError('bad_request', 'ceremony vote: ids are not exactly the voter\'s');
    const digest = hex(body.digest);
    const records = this.voteRecords.get(digest) ?? new Map<string, VoteRecord>();
    const voter = hex(key);
    if (records.has(voter)) return;
    if (check && !messages.verified(key, kind.voteMessage(body.digest), m.signature)) throw new TkmsError('bad_request', 'ceremony vote: bad signature');
    if (!messages.admit(key, m)) return;
    messages.seen.add(m.raw);
    if (!this.votes.add(body.fromId, body.toId, digest)) {
      const [role, id] = body.toId !== 0 ? (['to', body.toId] as const) : (['from', body.fromId] as const);
      disqualifications.note(role, id, `voted for two ${kind.family === 'dkg' ? 'results' : 'handovers'}`);
    }
    records.set(voter, { fromId: body.fromId, toId: body.toId, signature: m.signature, raw: m.raw });
    this.voteRecords.set(digest, records);
  }

  /** This member's vote for the first locked proposal it may vote for, once: the bytes to persist before sending. */
  maybeVote(out: CeremonyOutbound[]): Uint8Array | undefined {
    const { kind, roster, messages } = this.context;
    if (this.myVote !== undefined) return undefined;
    for (const p of this.proposals.all()) {
      if (!this.proposals.isLocked(p) || !this.dealings.mayVoteFor(p.dealingHashes)) continue;
      const digest = decodeHex(p.digest!);
      const unsigned = encodeUnsigned({ kind: 'vote', fromId: roster.fromId ?? 0, toId: roster.toId ?? 0, digest }, kind.family);
      const raw = withSignature(unsigned, messages.signVote(kind.voteMessage(digest)));
      const now = this.context.now();
      this.myVote = { raw, digest: p.digest!, author: p.author, castAt: now };
      this.acceptVote(messages.decode(raw), false);
      out.push(this.voteOutbound(now));
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
  voteOutbound(nowMs: number): CeremonyOutbound {
    const v = this.myVote!;
    if (v.castAt === undefined || v.author === undefined || nowMs - v.castAt >= this.context.timing.phaseMs / 2) return { payload: v.raw };
    return { payload: v.raw, to: v.author === this.context.roster.toId ? [] : [this.context.roster.toKeys.get(v.author)!] };
  }

  /** Whether a proposal gathered enough votes just now: the outcome is set and the certificate made (or taken) and sent to whoever lacks it. */
  maybeCertify(out: CeremonyOutbound[]): boolean {
    const { kind, roster, messages } = this.context;
    if (this.outcome !== undefined) return false;
    for (const [digest, p] of this.proposals.byDigests()) {
      if (!this.votes.certifies(digest, kind.quorum)) continue;
      const records = [...this.voteRecords.get(digest)!.values()];
      this.outcome = kind.outcome(p.unsigned!, records, roster.toId !== undefined ? this.dealings.newShares(p.dealers, p.dealingHashes) : undefined);
      if (this.certificateRaw === undefined) {
        const authorRole = roster.toId !== undefined ? 1 : 0;
        const raw = messages.sign({ kind: 'certificate', authorRole, author: (roster.toId ?? roster.fromId)!, proposal: p.raw, votes: records.map((r) => r.raw) });
        this.certificateRaw = raw;
        messages.seen.add(raw);
      }
      this.certifiedDigest = digest;
      const to = this.lackingCertificate();
      if (to === undefined || to.length > 0) out.push({ payload: this.certificateRaw, ...(to === undefined ? {} : { to }) });
      return true;
    }
    return false;
  }
}
