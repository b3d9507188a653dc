import { TkmsError, type ErrorCode } from '../core/errors.ts';
import type { FanOutResult, NodeFailure } from './node-pool.ts';

/** Refusals that mean the same on every node, so when all refusing nodes agree they are the answer. */
const SHARED_REFUSALS: ReadonlySet<ErrorCode> = new Set<ErrorCode>([
  'unauthorized',
  'legacy_signature',
  'expired',
  'replayed',
  'revoked',
  'unknown_key',
  'bad_rsa_key',
  'bad_request',
  'rate_limited',
  'acl_block_too_old',
  'signed_grants_refused',
  // A managed key's state and policy: every node decides from the same signed changes.
  'key_disabled',
  'key_pending_deletion',
  'key_destroyed',
  'policy_operation_denied',
  'policy_grant_source_denied',
  'policy_grant_too_long',
  'policy_requester_denied',
  'policy_outside_window',
  'policy_daily_limit',
  'policy_approvals_missing',
]);
/** A node that cannot read its chain (or has not reached block B): retryable, whatever the mix. */
const CHAIN_DOUBTS: ReadonlySet<ErrorCode> = new Set<ErrorCode>(['unavailable', 'acl_block_ahead']);

/**
 * The error for a delegation that got fewer than t partials. When every node that failed refused
 * for one reason (say, revoked) that reason is the answer, with its own status: `rate_limited`
 * becomes a 429 whose retryAfterSeconds is when enough of the refusing nodes expect to answer
 * again. Anything mixed or transport-level is `insufficient_partials` (503).
 */
export function shortfallError(fan: Pick<FanOutResult, 'answers' | 'failures'> & Partial<Pick<FanOutResult, 'refusedBy'>>, t: number, committeeSize: number): TkmsError {
  const detail = fan.failures.map((f) => `node ${f.nodeId}: ${f.code}`).join('; ');
  const codes = new Set(fan.failures.map((f) => f.code));
  const single = codes.size === 1 ? [...codes][0]! : undefined;
  const chainDoubt = chainDoubtOf(fan);
  const code: ErrorCode = single !== undefined && SHARED_REFUSALS.has(single) ? single : (chainDoubt ?? 'insufficient_partials');
  const details: Record<string, unknown> = { answered: fan.answers.length, needed: t, failures: fan.failures };
  if (code === 'rate_limited') details.retryAfterSeconds = retryAfter(fan.failures, t - fan.answers.length);
  // A managed key's refusal names the state or the policy rule: the first node's words say which.
  const keyReason = code.startsWith('key_') || code.startsWith('policy_') ? `: ${fan.failures[0]!.message}` : '';
  const why = chainDoubt === undefined ? keyReason : code === 'acl_block_ahead' ? ': the nodes have not reached the ACL block yet; retry' : ': the nodes cannot read the on-chain ACL now; retry';
  return new TkmsError(code, `${fan.answers.length} of ${committeeSize} nodes answered, ${t} needed${why}${detail ? ` (${detail})` : ''}`, details);
}

/**
 * `unavailable` or `acl_block_ahead` when every failing node said so itself (its chain reader's
 * doubt), not when it could not be reached: transport failures stay insufficient_partials.
 */
function chainDoubtOf(fan: Pick<FanOutResult, 'failures'> & Partial<Pick<FanOutResult, 'refusedBy'>>): ErrorCode | undefined {
  if (fan.failures.length === 0 || fan.refusedBy === undefined) return undefined;
  const refused = new Set(fan.refusedBy);
  if (!fan.failures.every((f) => CHAIN_DOUBTS.has(f.code) && refused.has(f.nodeId))) return undefined;
  return fan.failures.every((f) => f.code === 'acl_block_ahead') ? 'acl_block_ahead' : 'unavailable';
}

/** Seconds until `missing` more of the rate-limited nodes take requests again (1 s when they gave no hint). */
function retryAfter(failures: readonly NodeFailure[], missing: number): number {
  const waits = failures.map((f) => Math.max(1, f.retryAfterSeconds ?? 1)).sort((a, b) => a - b);
  return waits[Math.min(Math.max(missing, 1), waits.length) - 1] ?? 1;
}
