/**
 * One error type for the whole project. `code` is stable: clients, metrics and
 * HTTP mappings switch on it, never on `message`. Messages describe what was
 * wrong with the input; they must never quote secret material.
 */
export const ERROR_CODES = {
  bad_request: 400,
  bad_hex: 400,
  bad_length: 400,
  bad_point: 400,
  bad_scalar: 400,
  bad_key_id: 400,
  bad_handle: 400,
  bad_address: 400,
  bad_rsa_key: 400,
  bad_threshold: 400,
  bad_proof: 422,
  decrypt_failed: 422,
  insufficient_partials: 503,
  unauthorized: 403,
  legacy_signature: 403,
  expired: 403,
  replayed: 409,
  revoked: 403,
  unknown_key: 404,
  not_found: 404,
  conflict: 409,
  /** Members saw two DKG sessions (or two results) for one key id: nothing is stored or served for it. */
  dkg_conflict: 409,
  /** A known path asked with another method; the answer's Allow header lists the methods it takes. */
  method_not_allowed: 405,
  payload_too_large: 413,
  /** A request body that is not application/json. */
  unsupported_media_type: 415,
  rate_limited: 429,
  insecure_transport: 400,
  response_too_large: 502,
  keystore_locked: 500,
  keystore_corrupt: 500,
  dkg_failed: 500,
  not_implemented: 501,
  unavailable: 503,
  /** The request names an ACL block more than maxBlockLag behind this node's head (a gateway replaying old chain state). */
  acl_block_too_old: 409,
  /** The request names an ACL block this node's RPC has not reached, even after waiting aheadWaitMs: retry. */
  acl_block_ahead: 503,
  /** This deployment takes on-chain grants only (acl.mode = chain): an owner-signed grant does not count. */
  signed_grants_refused: 403,
  /** The RPC reports another chain, or the contract address holds no TkmsAcl of this version. */
  chain_mismatch: 500,
  /**
   * A committee change (reshare) this node's own operator has not approved, or a control-plane action
   * that arrived over the peer protocol: only the node's loopback admin API approves.
   */
  not_approved: 403,
  /** The request names a committee epoch this node no longer (or not yet) serves; the message names the current one. */
  stale_epoch: 409,
  /** A key cannot be created, and no other committee change approved, while a reshare or refresh is in progress. */
  reshare_in_progress: 409,
  /** A reshare or refresh ended without a handover certificate; the committee stays at its epoch. */
  reshare_failed: 500,
  /**
   * A restore found a vote lock on this node (a DKG vote, a reshare vote or approval) that the
   * backup's contradicts; nothing was installed (a vote is never withdrawn, so neither is replaced).
   */
  vote_lock_conflict: 409,
  timeout: 504,
  internal: 500,
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;

export class TkmsError extends Error {
  readonly code: ErrorCode;
  /** Public, non-secret context (a node id, a field name) for callers and logs. */
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TkmsError';
    this.code = code;
    this.details = details;
  }

  get httpStatus(): number {
    return ERROR_CODES[this.code];
  }

  /** The `{ error: { code, message } }` body every HTTP surface returns. */
  toJSON(): { error: { code: ErrorCode; message: string; details?: Readonly<Record<string, unknown>> } } {
    return this.details === undefined
      ? { error: { code: this.code, message: this.message } }
      : { error: { code: this.code, message: this.message, details: this.details } };
  }
}

export function isTkmsError(value: unknown, code?: ErrorCode): value is TkmsError {
  return value instanceof TkmsError && (code === undefined || value.code === code);
}

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(ERROR_CODES, value);
}
