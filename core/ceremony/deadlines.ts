/**
 * The deadline policy, as pure functions of the member's start time and the phase length φ:
 * hellos are awaited until start + φ, dealings until start + 2φ (the whole phase, so complaints
 * about bad sub-shares reach the proposer before it picks the dealers), then each attempt a gets
 * 3φ (proposal, echoes, votes). After maxAttempts attempts without a certificate the ceremony
 * fails; the committee keeps serving the old epoch.
 */
export function helloDeadline(startMs: number, phaseMs: number): number {
  return startMs + phaseMs;
}

export function dealingDeadline(startMs: number, phaseMs: number): number {
  return startMs + 2 * phaseMs;
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
