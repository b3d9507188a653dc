/**
 * The deadline policy, as pure functions of the ceremony's clock and the phase length φ. The clock
 * is φ before the moment every arriving member's hello was here (or the member's hello wait,
 * CeremonyTiming.helloWaitMs, ran out: ceremony.ts clock()), so "hellos until start + φ" has passed
 * when these apply; dealings until start + 2φ (so complaints about bad sub-shares
 * reach the proposer before it picks the dealers) or, once every leaving member dealt, until a short
 * complaint grace after the last dealing (agreementStart); then each attempt a gets
 * 3φ (proposal, echoes, votes). After maxAttempts attempts without a certificate the ceremony
 * fails; the committee keeps serving the old epoch.
 */
export function dealingDeadline(startMs: number, phaseMs: number): number {
  return startMs + 2 * phaseMs;
}

/**
 * How long the proposer of attempt 0 waits after the last dealing before it proposes, when every
 * leaving member has dealt: long enough for the complaints those dealings cause (each arriving member
 * checks a dealing as it arrives) on a healthy network, short beside φ. A complaint later than this
 * leaves its complainer without a share in this ceremony (a refresh gives it one); it never splits.
 */
export function complaintGraceMs(phaseMs: number): number {
  return Math.max(20, Math.floor(phaseMs / 20));
}

/**
 * When the agreement may start: the end of the dealing phase, or earlier, a complaint grace after the
 * last dealing once every leaving member has dealt (`lastDealingMs` is given only then).
 */
export function agreementStart(startMs: number, phaseMs: number, lastDealingMs: number | undefined): number {
  const end = dealingDeadline(startMs, phaseMs);
  return lastDealingMs === undefined ? end : Math.min(end, lastDealingMs + complaintGraceMs(phaseMs));
}

/** When attempt a ends (it starts at the end of the dealing phase plus 3φ per earlier attempt). */
export function attemptDeadline(startMs: number, phaseMs: number, attempt: number): number {
  return dealingDeadline(startMs, phaseMs) + 3 * phaseMs * (attempt + 1);
}

/** The attempt in progress at nowMs (0 during the hello and dealing phases). */
export function attemptAt(startMs: number, phaseMs: number, nowMs: number): number {
  const sinceDealing = nowMs - dealingDeadline(startMs, phaseMs);
  return sinceDealing < 0 ? 0 : Math.floor(sinceDealing / (3 * phaseMs));
}

/** One attempt per arriving member: every proposer gets its turn, so f + 1 ≤ n′ attempts reach an honest one. */
export function maxAttempts(nTo: number): number {
  return nTo;
}

export function finalDeadline(startMs: number, phaseMs: number, nTo: number): number {
  return attemptDeadline(startMs, phaseMs, maxAttempts(nTo) - 1);
}
