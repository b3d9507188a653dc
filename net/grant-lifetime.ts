import { DEFAULT_MAX_GRANT_LIFETIME_SECONDS } from '../core/authz.ts';
import { envInt, type Env } from './env-config.ts';

/**
 * `maxGrantLifetimeSeconds`, one config field the node and the gateway both read: the longest a
 * grant may be valid (notAfter − issuedAt). Every node refuses longer grants and keeps each
 * revocation until revokedAt + this + clock skew, after which nothing it cancels can be valid;
 * the gateway refuses longer grants up front. Give every process of a deployment the same value.
 */
export const MAX_GRANT_LIFETIME_FIELD = 'maxGrantLifetimeSeconds';
export const MAX_GRANT_LIFETIME_ENV = 'TKMS_MAX_GRANT_LIFETIME_SECONDS';
const MIN_SECONDS = 60;
/** Ten years: beyond that the revocations kept for it would never expire in practice. */
const MAX_SECONDS = 10 * 366 * 86_400;

/** The configured bound (the environment wins over the file), or the default; mistakes go to `problems`. */
export function readMaxGrantLifetime(raw: Record<string, unknown>, env: Env, problems: string[]): number {
  const fromEnv = envInt(env, MAX_GRANT_LIFETIME_ENV, MIN_SECONDS, MAX_SECONDS, 'seconds');
  if (fromEnv.problem !== undefined) problems.push(fromEnv.problem);
  if (fromEnv.value !== undefined) return fromEnv.value;
  const v = raw[MAX_GRANT_LIFETIME_FIELD];
  if (v === undefined) return DEFAULT_MAX_GRANT_LIFETIME_SECONDS;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < MIN_SECONDS || v > MAX_SECONDS) {
    problems.push(`${MAX_GRANT_LIFETIME_FIELD} must be an integer number of seconds in ${MIN_SECONDS}..${MAX_SECONDS}`);
    return DEFAULT_MAX_GRANT_LIFETIME_SECONDS;
  }
  return v;
}
