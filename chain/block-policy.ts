/**
 * The reader's decisions that need no network, kept pure so property tests can pin them down:
 * which head counts, whether a named block may be evaluated, whether several providers' answers
 * add up to one answer, and whether the chain reorganised under us.
 */

/** A block as the reader remembers it: enough to date it and to notice it was replaced. */
export interface BlockRef {
  number: number;
  hash: string;
  /** Unix seconds. */
  timestamp: number;
}

/**
 * How far apart providers' heads may be. The head is what a revocation waits for (a grant counts
 * only if it still holds at this process's head), so no single provider may hold it back: the
 * highest head any provider reports must be confirmed by `quorum` providers within this many blocks.
 * Four blocks absorb ordinary propagation lag (a provider one or two blocks behind) and cost at most
 * four block times of revocation delay when one provider lies about, or stalls at, an old head.
 */
export const MAX_HEAD_SPREAD_BLOCKS = 4;

export type HeadVerdict = { ok: true; number: number } | { ok: false; reason: 'too_few' | 'unconfirmed'; highest?: number };

/**
 * The head to adopt from the providers' reported heads: the highest block at least `quorum` of them
 * reached (the quorum-th highest), but only if it is within `maxSpread` blocks of the highest head
 * any of them reported. Otherwise there is doubt, and the caller fails closed (unavailable) instead
 * of adopting an old head: the rule a plain quorum-th-highest lacks, since with quorum = every URL
 * that is the lowest head, and one provider reporting an old block would pull every process back to it.
 * A provider reporting a head far in the future only makes the others unconfirmed: also unavailable.
 */
export function confirmedHead(heads: readonly number[], quorum: number, maxSpread = MAX_HEAD_SPREAD_BLOCKS): HeadVerdict {
  if (quorum < 1 || heads.length < quorum) return { ok: false, reason: 'too_few', ...(heads.length > 0 ? { highest: Math.max(...heads) } : {}) };
  const sorted = [...heads].sort((a, b) => b - a);
  const highest = sorted[0]!;
  const number = sorted[quorum - 1]!;
  return number >= highest - maxSpread ? { ok: true, number } : { ok: false, reason: 'unconfirmed', highest };
}

/**
 * Whether the head this process holds is too far behind the highest head a provider last reported.
 * A failed poll keeps the old head (it ages out after maxHeadAgeSeconds); this stops one provider
 * that stalls or answers nonsense from holding the head back for that long while another shows the
 * chain moving on: past `maxSpread` blocks the process refuses instead.
 */
export function headFallsBehind(head: number, highestReported: number | undefined, maxSpread = MAX_HEAD_SPREAD_BLOCKS): boolean {
  return highestReported !== undefined && highestReported > head + maxSpread;
}

/** Seconds since the head was produced; a clock behind the chain counts as age 0, not negative. */
export function headAgeSeconds(nowMs: number, head: BlockRef): number {
  return Math.max(0, nowMs / 1000 - head.timestamp);
}

export type BlockVerdict = 'ok' | 'wait' | 'ahead' | 'too_old';

/**
 * Whether block B may be evaluated against this head. Wait: B is at most `aheadSlack` blocks past
 * the head, which is only this process's RPC trailing the gateway's a little, so waiting briefly
 * makes sense. Ahead: further than that, refused at once (no wait a caller could pile up). Too old:
 * a gateway naming a block from before a revocation must not get the old answer; with no
 * maxBlockLag (the gateway's own reader) any past block is fine.
 */
export function judgeBlock(block: number, head: number, maxBlockLag: number | undefined, aheadSlack = 0): BlockVerdict {
  if (block > head + aheadSlack) return 'ahead';
  if (block > head) return 'wait';
  if (maxBlockLag !== undefined && block < head - maxBlockLag) return 'too_old';
  return 'ok';
}

export type Agreement<T> = { ok: true; value: T } | { ok: false; reason: 'too_few' | 'disagree' };

/**
 * One answer from several providers: at least `quorum` must have answered and every answer must be
 * the same. A single dissenting provider voids the answer, because either it or the others lie and
 * the reader cannot tell which.
 */
export function agree<T>(answers: readonly T[], quorum: number, key: (value: T) => string): Agreement<T> {
  if (answers.length < quorum || answers.length === 0) return { ok: false, reason: 'too_few' };
  const first = key(answers[0]!);
  for (const a of answers) if (key(a) !== first) return { ok: false, reason: 'disagree' };
  return { ok: true, value: answers[0]! };
}

/**
 * Whether moving from `last` to `next` means the chain reorganised, so answers cached for blocks
 * we saw may be for blocks that no longer exist. `hashAtLastNumber` is what the providers now say
 * the block at last.number is (needed only when the head moved forward without being last's child).
 */
export function isReorg(last: BlockRef, next: BlockRef & { parentHash?: string }, hashAtLastNumber?: string): boolean {
  if (next.number < last.number) return true;
  if (next.number === last.number) return next.hash !== last.hash;
  if (next.number === last.number + 1 && next.parentHash !== undefined) return next.parentHash !== last.hash;
  return hashAtLastNumber !== undefined && hashAtLastNumber !== last.hash;
}

/** Whether isReorg needs the block at last.number fetched to decide. */
export function needsAncestorCheck(last: BlockRef, next: BlockRef & { parentHash?: string }): boolean {
  return next.number > last.number && !(next.number === last.number + 1 && next.parentHash !== undefined);
}

/**
 * Whether a head lower than the one we hold is only a provider trailing (the block it reports is
 * one we already adopted, with the same hash), as opposed to the chain reorganising to a shorter
 * branch. A trailing provider must neither move the head back nor be taken for a reorg.
 */
export function isTrailingReport(last: BlockRef, next: BlockRef, knownHashAtNext: string | undefined): boolean {
  return next.number < last.number && knownHashAtNext !== undefined && knownHashAtNext === next.hash;
}
