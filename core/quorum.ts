/**
 * How many members must sign what a committee agrees on (a DKG result, a handover): a majority of
 * the members plus f (so two quorums share an honest member whatever f members lie), never fewer than t,
 * with f = min(t − 1, ⌊(n − 1)/3⌋) the lying members tolerated. core/ceremony/README.md, "Agreement".
 */
export function voteQuorum(n: number, t: number): number {
  return Math.max(t, Math.floor((n + toleratedFaults(n, t)) / 2) + 1);
}

/** The lying members an agreement of n members with threshold t tolerates (see voteQuorum). */
export function toleratedFaults(n: number, t: number): number {
  return Math.min(t - 1, Math.floor((n - 1) / 3));
}
