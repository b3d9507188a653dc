import { voteQuorum } from './handover.ts';

/**
 * The agreement rules of README "Agreement" as pure bookkeeping (no crypto: callers count only
 * messages whose signatures they checked). Who proposes an attempt, which dealers a proposer picks,
 * when a proposal is locked (q matching echoes) and when votes certify it (q arriving, t leaving).
 */
export interface QuorumSizes {
  /** Echoes and arriving votes: voteQuorum(n′, t′). */
  arriving: number;
  /** Leaving votes: from.t. */
  leaving: number;
}

export function quorumSizes(nTo: number, tTo: number, tFrom: number): QuorumSizes {
  return { arriving: voteQuorum(nTo, tTo), leaving: tFrom };
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

  isLocked(attempt: number, proposalHash: string, quorum: number): boolean {
    return this.count(attempt, proposalHash) >= quorum;
  }
}

/** Votes by proposal: who voted (by from and to id); a member's second, different vote is ignored. */
export class VoteTally {
  private readonly fromVoted = new Map<number, string>();
  private readonly toVoted = new Map<number, string>();

  add(fromId: number, toId: number, proposalHash: string): boolean {
    for (const [id, map] of [[fromId, this.fromVoted], [toId, this.toVoted]] as const) {
      if (id === 0) continue;
      const prior = map.get(id);
      if (prior !== undefined && prior !== proposalHash) return false;
    }
    if (fromId !== 0) this.fromVoted.set(fromId, proposalHash);
    if (toId !== 0) this.toVoted.set(toId, proposalHash);
    return true;
  }

  voters(proposalHash: string): { from: number[]; to: number[] } {
    const pick = (map: Map<number, string>) => [...map].filter(([, h]) => h === proposalHash).map(([id]) => id).sort((a, b) => a - b);
    return { from: pick(this.fromVoted), to: pick(this.toVoted) };
  }

  certifies(proposalHash: string, quorum: QuorumSizes): boolean {
    const v = this.voters(proposalHash);
    return v.to.length >= quorum.arriving && v.from.length >= quorum.leaving;
  }
}
