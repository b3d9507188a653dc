import { voteQuorum } from './handover.ts';

/**
 * The agreement rules of README "Agreement" as pure bookkeeping (no crypto: callers count only
 * messages whose signatures they checked). Who proposes an attempt, which dealers a proposer picks,
 * when a proposal is locked (q matching echoes) and when votes certify it (q arriving, t leaving).
 */
export interface QuorumSizes {
  /** Echoes and arriving votes: voteQuorum(n′, t′). */
  arriving: number;
  /** Leaving votes: voteQuorum(n, t) of the committee left, so two handovers of one epoch share an honest leaving member. */
  leaving: number;
}

export function quorumSizes(nTo: number, tTo: number, nFrom: number, tFrom: number): QuorumSizes {
  return { arriving: voteQuorum(nTo, tTo), leaving: voteQuorum(nFrom, tFrom) };
}

/** Index into to.members (sorted by id) of attempt a's proposer. */
export function proposerIndex(attempt: number, nTo: number): number {
  return attempt % nTo;
}

export interface DealerStanding {
  dealer: number;
  /** Exactly one signed dealing seen, and it passed the public checks. */
  valid: boolean;
  equivocated: boolean;
  /** A complaint that holds is known against its dealing. */
  complained: boolean;
  /** Arriving members its dealing has no sealed sub-share for (no hello reached the dealer in time). */
  absent: number;
  /** Of those, members whose hello the proposer itself held when its hello phase closed. */
  unsealed: number;
}

/**
 * The t dealers a proposer picks (ascending), or undefined while fewer than t qualify: valid, not
 * equivocating, no complaint that holds; those that sealed to the most arriving members first (an
 * arriving member without a sub-share from every agreed dealer gets no share and cannot vote), then
 * the lowest ids.
 */
export function chooseDealers(standings: readonly DealerStanding[], t: number): number[] | undefined {
  const ok = standings.filter((s) => s.valid && !s.equivocated && !s.complained).sort((a, b) => a.absent - b.absent || a.dealer - b.dealer);
  return ok.length >= t ? ok.slice(0, t).map((s) => s.dealer).sort((a, b) => a - b) : undefined;
}

/**
 * The DKG's dealer set: every dealer that is valid, not equivocating, without a complaint that holds
 * and sealed to every member whose hello the proposer held, when at least t qualify. Taking all of
 * them, not t of them, leaves the proposer no choice among subsets (README "DKG", bias).
 */
export function chooseAllDealers(standings: readonly DealerStanding[], t: number): number[] | undefined {
  const ok = standings.filter((s) => s.valid && !s.equivocated && !s.complained && s.unsealed === 0).map((s) => s.dealer).sort((a, b) => a - b);
  return ok.length >= t ? ok : undefined;
}

/** Echoes by attempt: the first proposal hash each arriving member echoed (later, different echoes are its equivocation and ignored). */
export class EchoTally {
  private readonly byAttempt = new Map<number, Map<number, string>>();

  /** Records an echo; false when the member already echoed another proposal in that attempt. */
  add(attempt: number, member: number, proposalHash: string): boolean {
    let echoes = this.byAttempt.get(attempt);
    if (echoes === undefined) this.byAttempt.set(attempt, (echoes = new Map()));
    const prior = echoes.get(member);
    if (prior !== undefined) return prior === proposalHash;
    echoes.set(member, proposalHash);
    return true;
  }

  count(attempt: number, proposalHash: string): number {
    let n = 0;
    for (const h of this.byAttempt.get(attempt)?.values() ?? []) if (h === proposalHash) n++;
    return n;
  }

  /** The members that echoed this proposal in that attempt (they hold it). */
  echoers(attempt: number, proposalHash: string): number[] {
    return [...(this.byAttempt.get(attempt) ?? [])].filter(([, h]) => h === proposalHash).map(([member]) => member);
  }

  isLocked(attempt: number, proposalHash: string, quorum: number): boolean {
    return this.count(attempt, proposalHash) >= quorum;
  }
}

/**
 * Valid votes by handover digest. A member that signs two handovers has both counted, each for its
 * own digest: safety needs only honest members to vote once (two quorums share an honest one), and
 * ignoring the second vote would let a liar show one handover to some members and another to the
 * rest, so that a certificate one honest member holds is "too few votes" to another.
 */
export class VoteTally {
  private readonly byDigest = new Map<string, { from: Set<number>; to: Set<number> }>();
  private readonly firstDigest = new Map<string, string>();

  /** Records a valid vote; false when its voter had voted for another digest (counted anyway; the caller names it). */
  add(fromId: number, toId: number, digest: string): boolean {
    const voter = `${fromId}:${toId}`;
    const prior = this.firstDigest.get(voter);
    if (prior === undefined) this.firstDigest.set(voter, digest);
    let entry = this.byDigest.get(digest);
    if (entry === undefined) this.byDigest.set(digest, (entry = { from: new Set(), to: new Set() }));
    if (fromId !== 0) entry.from.add(fromId);
    if (toId !== 0) entry.to.add(toId);
    return prior === undefined || prior === digest;
  }

  voters(digest: string): { from: number[]; to: number[] } {
    const entry = this.byDigest.get(digest);
    const sorted = (ids: Set<number> | undefined) => [...(ids ?? [])].sort((a, b) => a - b);
    return { from: sorted(entry?.from), to: sorted(entry?.to) };
  }

  certifies(digest: string, quorum: QuorumSizes): boolean {
    const v = this.voters(digest);
    return v.to.length >= quorum.arriving && v.from.length >= quorum.leaving;
  }
}
