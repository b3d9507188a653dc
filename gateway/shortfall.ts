import { TkmsError, type ErrorCode } from '../core/errors.ts';
import type { FanOutResult, NodeFailure } from './node-pool.ts';

/** Refusals that mean the same on every node, so when all refusing nodes agree they are the answer. */
const SHARED_REFUSALS: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['unauthorized', 'legacy_signature', 'expired', 'replayed', 'revoked', 'unknown_key', 'bad_rsa_key', 'bad_request', 'rate_limited']);

/**
 * The error for a delegation that got fewer than t partials. When every node that failed refused
 * for one reason (say, revoked) that reason is the answer, with its own status: `rate_limited`
 * becomes a 429 whose retryAfterSeconds is when enough of the refusing nodes expect to answer
 * again. Anything mixed or transport-level is `insufficient_partials` (503).
 */
export function shortfallError(fan: Pick<FanOutResult, 'answers' | 'failures'>, t: number, committeeSize: number): TkmsError {
  const detail = fan.failures.map((f) => `node ${f.nodeId}: ${f.code}`).join('; ');
  const codes = new Set(fan.failures.map((f) => f.code));
  const single = codes.size === 1 ? [...codes][0]! : undefined;
  const code: ErrorCode = single !== undefined && SHARED_REFUSALS.has(single) ? single : 'insufficient_partials';
  const details: Record<string, unknown> = { answered: fan.answers.length, needed: t, failures: fan.failures };
  if (code === 'rate_limited') details.retryAfterSeconds = retryAfter(fan.failures, t - fan.answers.length);
  return new TkmsError(code, `${fan.answers.length} of ${committeeSize} nodes answered, ${t} needed${detail ? ` (${detail})` : ''}`, details);
}

/** Seconds until `missing` more of the rate-limited nodes take requests again (1 s when they gave no hint). */
function retryAfter(failures: readonly NodeFailure[], missing: number): number {
  const waits = failures.map((f) => Math.max(1, f.retryAfterSeconds ?? 1)).sort((a, b) => a - b);
  return waits[Math.min(Math.max(missing, 1), waits.length) - 1] ?? 1;
}
