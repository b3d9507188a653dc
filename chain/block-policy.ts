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
 * The highest block at least `quorum` providers have reached: the quorum-th highest of their
 * heads. Undefined when fewer than `quorum` answered, since then no block is vouched for enough.
 */
export function quorumHeadNumber(heads: readonly number[], quorum: number): number | undefined {
  if (quorum < 1 || heads.length < quorum) return undefined;
  const sorted = [...heads].sort((a, b) => b - a);
  return sorted[quorum - 1];
}

/** Seconds since the head was produced; a clock behind the chain counts as age 0, not negative. */
export function headAgeSeconds(nowMs: number, head: BlockRef): number {
  return Math.max(0, nowMs / 1000 - head.timestamp);
}

export type BlockVerdict = 'ok' | 'ahead' | 'too_old';

/**
 * Whether block B may be evaluated against this head. Ahead: our providers have not seen B yet.
 * Too old: a gateway naming a block from before a revocation must not get the old answer; with no
 * maxBlockLag (the gateway's own reader) any past block is fine.
 */
export function judgeBlock(block: number, head: number, maxBlockLag: number | undefined): BlockVerdict {
  if (block > head) return 'ahead';
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
