import { DEFAULT_MAX_GRANT_LIFETIME_SECONDS } from '../core/authz.ts';
import { field } from './config-schema.ts';

/** Ten years: beyond that the revocations kept for it would never expire in practice. */
const MAX_SECONDS = 10 * 366 * 86_400;

/**
 * `maxGrantLifetimeSeconds`, one config field the node and the gateway both declare: every node
 * refuses longer grants and keeps each revocation until revokedAt + this + clock skew, after which
 * nothing it cancels can be valid; the gateway refuses longer grants up front. Give every process
 * of a deployment the same value.
 */
export const maxGrantLifetimeField = () =>
  field.integer(60, MAX_SECONDS, DEFAULT_MAX_GRANT_LIFETIME_SECONDS, {
    description: 'longest a grant may be valid, notAfter − issuedAt; give the gateway and every node the same value',
    details: 'Revocations are kept this long (plus skew) after revokedAt',
    env: 'TKMS_MAX_GRANT_LIFETIME_SECONDS',
    unit: 'seconds',
  });
