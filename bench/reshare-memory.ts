import { makeScenario, simulate } from '../test/unit/ceremony-harness.ts';

/**
 * The CPU a refresh needs, without the network: every member's engine (core/ceremony) in one
 * process, messages handed over in memory (test/unit/ceremony-harness.ts), the same shape as the
 * real-process rows (n members, t = ⌊2n/3⌋ + 1, one key). Its time over n is the engine's CPU per
 * member; set beside the real-process wall time it shows how much of that is waiting.
 */
export interface InMemoryRow {
  n: number;
  t: number;
  /** Wall time of the whole simulation (one core: every member's work in turn). */
  totalMs: number;
  perMemberMs: number;
  deliveries: number;
}

export function benchRefreshInMemory(n: number): InMemoryRow {
  const t = Math.floor((2 * n) / 3) + 1;
  const stay = Array.from({ length: n }, (_, i) => [i + 1, i + 1] as [number, number]);
  const s = makeScenario({ n, t, nTo: n, tTo: t, stay });
  const started = performance.now();
  const r = simulate(s, { seed: 19, maxDelay: 5 });
  const totalMs = Math.round(performance.now() - started);
  const done = r.outcomes.filter((o) => o !== undefined).length;
  if (done !== n || r.errors.length > 0) throw new Error(`in-memory refresh at n = ${n}: ${done} of ${n} members finished; ${r.errors.join('; ')}`);
  return { n, t, totalMs, perMemberMs: Math.round(totalMs / n), deliveries: r.deliveries };
}
