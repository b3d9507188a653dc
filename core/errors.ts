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
  // Managed keys (core/keys): each refusal names the key state or the policy rule that refused.
  /** The key is Disabled by its admins; enable it to use it again. */
  key_disabled: 403,
  /** The key (or the version asked) is scheduled for deletion; cancel the deletion to use it again. */
  key_pending_deletion: 403,
  /** The key (or the version asked) was deleted: its deletion window ended. Nothing can use it again. */
  key_destroyed: 410,
  /** The key's material is not ready yet (its DKG has not finished on this node). */
  key_not_ready: 503,
  /** The key's usage or spec does not allow this operation (e.g. encrypting to a signing key). */
  key_usage_mismatch: 400,
  /** A key change signed by an account that is not an admin of the key (or, for a create, not allowed to create keys). */
  not_key_admin: 403,
  /** A key change whose sequence number this node already applied (a replay). */
  key_change_replayed: 409,
  /** A key change whose sequence number is beyond the next one this node expects: an earlier change is missing. */
  key_change_out_of_order: 409,
  /** A key change that names a predecessor other than the change this node applied at the sequence before it. */
  key_change_conflict: 409,
  /** A key change that is valid in form but not in the key's current state (e.g. enable a key pending deletion). */
  key_change_invalid: 409,
  /** An alias already names another key. */
  alias_taken: 409,
  /** Too many keys, aliases, tags or changes: a limit of the key registry (the message names it). */
  key_limit_exceeded: 409,
  /** Policy: the key's policy does not allow this operation. */
  policy_operation_denied: 403,
  /** Policy: the grant's source (signed, on-chain) is not one the policy counts. */
  policy_grant_source_denied: 403,
  /** Policy: the grant is valid for longer than the policy's longest grant lifetime. */
  policy_grant_too_long: 403,
  /** Policy: the requester is not on the key's allow-list. */
  policy_requester_denied: 403,
  /** Policy: the request falls outside the key's allowed time windows. */
  policy_outside_window: 403,
  /** Policy: the requester reached the key's daily limit. */
  policy_daily_limit: 429,
  /** Policy: the key is sensitive and the request carries fewer admin co-signatures than it requires. */
  policy_approvals_missing: 403,
  // Threshold signing (core/signing): each policy refusal names its rule.
  /** Signing policy: the key's policy does not allow signing raw bytes. */
  policy_raw_denied: 403,
  /** Signing policy: the message does not start with one of the key's allowed domain prefixes. */
  policy_prefix_denied: 403,
  /** Signing policy: a transaction output pays an address the key's allow-list does not name. */
  policy_output_denied: 403,
  /** Signing policy: the transaction would take the key past its daily value cap. */
  policy_value_cap: 403,
  /** Signing policy: the key's policy does not take this kind of message (raw, prefixed, PSBT) at all. */
  policy_message_kind_denied: 403,
  /** A PSBT that does not parse, or has no input this key can sign. */
  bad_psbt: 400,
  /** A signing request names a nonce commitment this node never issued, or one it discarded on restart. */
  nonce_unknown: 409,
  /** A signing request names a nonce commitment this node already spent: a nonce signs once. */
  nonce_spent: 409,
  /** A member's signature share does not verify against its verification share (the coordinator names it and asks another). */
  bad_signature_share: 502,
  /** Fewer than t members could contribute a valid signature share. */
  insufficient_signers: 503,
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

/** One line for a log or a failure list: a TkmsError's code and message, another error's name and message. */
export function errorText(e: unknown): string {
  if (isTkmsError(e)) return `${e.code}: ${e.message}`;
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  return 'unknown error';
}
