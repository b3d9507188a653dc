import { ERROR_CODES } from '../../core/errors.ts';

/**
 * What every wire message of tkms must be, written out by hand from the protocol's rules (the
 * field lists, lengths, 0x rules and limits the hand-written decoders enforced before messages
 * were declared once, and the spec comments), never read from core/messages.ts or
 * core/node-messages.ts. test/property/authz-wire.test.ts checks that each declaration matches
 * its entry exactly and builds its valid and invalid values from here, so loosening a
 * declaration (a length, a bound, a 0x rule, a field made optional) fails the test instead of
 * loosening it too.
 */

export type HexPrefix = 'optional' | 'required' | 'forbidden';

export type WireKind =
  | { kind: 'hex'; length: number; prefix: HexPrefix }
  | { kind: 'hexUpTo'; maxLength: number; prefix: HexPrefix }
  | { kind: 'address' }
  | { kind: 'keyId' }
  | { kind: 'unixSeconds' }
  | { kind: 'integer'; min: number; max: number }
  | { kind: 'base64'; maxLength: number }
  | { kind: 'boolean' }
  | { kind: 'enum'; values: readonly string[] }
  | { kind: 'text'; maxLength: number }
  | { kind: 'literal'; value: string | number | boolean }
  | { kind: 'object'; message: WireMessage }
  /** An object or null; null decodes as undefined. */
  | { kind: 'objectOrNull'; message: WireMessage }
  | { kind: 'orNull'; field: WireKind }
  | { kind: 'array'; message: WireMessage; minItems: number; maxItems: number }
  /** Items the frame's decoder leaves to the receiver, or decodes one by one (`items`). */
  | { kind: 'openArray'; minItems: number; maxItems: number; items?: WireMessage };

/** required: must be present; optional: may be left out (never null); implied: a constant the decoded value leaves out. */
export type Presence = 'required' | 'optional' | 'implied';

export interface WireFieldRule {
  readonly presence: Presence;
  readonly want: WireKind;
}

export interface WireMessage {
  readonly name: string;
  /** In wire (and EIP-712 struct) order. */
  readonly fields: Readonly<Record<string, WireFieldRule>>;
}

const req = (want: WireKind): WireFieldRule => ({ presence: 'required', want });
const opt = (want: WireKind): WireFieldRule => ({ presence: 'optional', want });

/** Unix seconds run to the last second of year 9999. */
export const TABLE_MAX_TIMESTAMP = 253_402_300_799;

const hex = (length: number, prefix: HexPrefix = 'optional'): WireKind => ({ kind: 'hex', length, prefix });
const HASH32 = hex(32);
const REQUEST_ID = hex(16);
/** r ‖ s ‖ v, and the 0x is mandatory. */
const SIGNATURE = req(hex(65, 'required'));
const ADDRESS: WireKind = { kind: 'address' };
const KEY_ID: WireKind = { kind: 'keyId' };
const TIME: WireKind = { kind: 'unixSeconds' };
const VERSION: WireFieldRule = { presence: 'implied', want: { kind: 'literal', value: 1 } };
const OK_TRUE = req({ kind: 'literal', value: true });
const OFFSET: WireKind = { kind: 'integer', min: 0, max: Number.MAX_SAFE_INTEGER };

// Signed messages (core/authz.ts).

export const HANDLE_DESCRIPTOR_WIRE: WireMessage = {
  name: 'handle descriptor',
  fields: {
    keyId: req(KEY_ID),
    K: req(hex(33)), // compressed SEC1 point
    nonce: req(hex(12)), // AES-GCM nonce
    ciphertextHash: req(HASH32),
    owner: req(ADDRESS),
    kProof: req(hex(64)), // c ‖ s
  },
};

export const DELEGATION_WIRE: WireMessage = {
  name: 'delegation',
  fields: {
    handle: req(HASH32),
    keyId: req(KEY_ID),
    requester: req(ADDRESS),
    rsaSpki: req({ kind: 'hexUpTo', maxLength: 1024, prefix: 'forbidden' }), // DER SPKI, hex without 0x
    notBefore: req(TIME),
    notAfter: req(TIME),
    requestId: req(REQUEST_ID),
    signature: SIGNATURE,
  },
};

export const GRANT_WIRE: WireMessage = {
  name: 'grant',
  fields: { handle: req(HASH32), grantee: req(ADDRESS), notAfter: req(TIME), issuedAt: req(TIME), signature: SIGNATURE },
};

export const REVOCATION_WIRE: WireMessage = {
  name: 'revocation',
  fields: { handle: req(HASH32), grantee: req(ADDRESS), revokedAt: req(TIME), signature: SIGNATURE },
};

export const ENCRYPT_REQUEST_WIRE: WireMessage = {
  name: 'encrypt request',
  fields: { keyId: req(KEY_ID), owner: req(ADDRESS), plaintextHash: req(HASH32), notBefore: req(TIME), notAfter: req(TIME), requestId: req(REQUEST_ID), signature: SIGNATURE },
};

export const REGISTER_HANDLE_WIRE: WireMessage = {
  name: 'handle registration',
  fields: { handle: req(HASH32), keyId: req(KEY_ID), owner: req(ADDRESS), signature: SIGNATURE },
};

export const DECRYPT_APPROVAL_WIRE: WireMessage = {
  name: 'decrypt approval',
  fields: { keyId: req(KEY_ID), handle: req(HASH32), requester: req(ADDRESS), approver: req(ADDRESS), notBefore: req(TIME), notAfter: req(TIME), signature: SIGNATURE },
};

// Node frames' bodies (core/node-wire.ts).

export const WIRE_ERROR_WIRE: WireMessage = {
  name: 'error',
  fields: {
    // The error-code registry is the list, not the wire declarations.
    code: req({ kind: 'enum', values: Object.keys(ERROR_CODES) }),
    message: req({ kind: 'text', maxLength: 2000 }),
    retryAfterSeconds: opt({ kind: 'integer', min: 0, max: 86_400 }), // at most a day
  },
};

export const ERROR_REPLY_WIRE: WireMessage = {
  name: 'error reply',
  fields: { ok: req({ kind: 'literal', value: false }), error: req({ kind: 'object', message: WIRE_ERROR_WIRE }) },
};

export const PARTIAL_REQUEST_WIRE: WireMessage = {
  name: 'partial request',
  fields: {
    v: VERSION,
    delegation: req({ kind: 'object', message: DELEGATION_WIRE }),
    descriptor: req({ kind: 'object', message: HANDLE_DESCRIPTOR_WIRE }),
    // Present always; null when the requester owns the handle.
    grant: req({ kind: 'objectOrNull', message: GRANT_WIRE }),
    // The block the on-chain ACL is read at; left out by gateways that read no chain.
    aclBlock: opt({ kind: 'integer', min: 0, max: Number.MAX_SAFE_INTEGER }),
    // Approvers' co-signatures for a sensitive key; left out otherwise.
    approvals: opt({ kind: 'array', message: DECRYPT_APPROVAL_WIRE, minItems: 0, maxItems: 10 }),
  },
};

export const PARTIAL_BATCH_REQUEST_WIRE: WireMessage = {
  name: 'partial batch',
  fields: { v: VERSION, requests: req({ kind: 'openArray', minItems: 1, maxItems: 32, items: PARTIAL_REQUEST_WIRE }) },
};

const ANSWER_FIELDS = {
  nodeId: req({ kind: 'integer', min: 1, max: 65_535 }),
  wrapped: req({ kind: 'hexUpTo', maxLength: 512, prefix: 'optional' }), // RSA-OAEP up to 4096 bits
  proof: req(hex(64)), // DLEQ c ‖ s
  epoch: opt({ kind: 'integer', min: 0, max: 0xffff_ffff }), // committee epoch of the share; absent = 0
};

export const PARTIAL_ANSWER_WIRE: WireMessage = { name: 'partial', fields: ANSWER_FIELDS };

export const PARTIAL_REPLY_OK_WIRE: WireMessage = { name: 'partial reply', fields: { ok: OK_TRUE, ...ANSWER_FIELDS } };

export const PARTIAL_BATCH_REPLY_OK_WIRE: WireMessage = {
  name: 'partial batch reply',
  fields: { ok: OK_TRUE, replies: req({ kind: 'openArray', minItems: 0, maxItems: 32, items: PARTIAL_REPLY_OK_WIRE }) },
};

export const REVOCATION_ENVELOPE_WIRE: WireMessage = {
  name: 'revocation envelope',
  fields: { descriptor: req({ kind: 'object', message: HANDLE_DESCRIPTOR_WIRE }), revocation: req({ kind: 'object', message: REVOCATION_WIRE }) },
};

export const ACL_REVOKE_WIRE: WireMessage = {
  name: 'acl revoke',
  fields: { v: VERSION, type: req({ kind: 'literal', value: 'revoke' }), item: req({ kind: 'object', message: REVOCATION_ENVELOPE_WIRE }) },
};

export const ACL_SYNC_WIRE: WireMessage = {
  name: 'acl sync',
  fields: { v: VERSION, type: req({ kind: 'literal', value: 'sync' }), offset: req(OFFSET) },
};

export const ACL_STORED_WIRE: WireMessage = {
  name: 'acl stored',
  fields: { ok: OK_TRUE, type: req({ kind: 'literal', value: 'stored' }), stored: req({ kind: 'boolean' }) },
};

export const ACL_PAGE_WIRE: WireMessage = {
  name: 'acl page',
  fields: {
    ok: OK_TRUE,
    type: req({ kind: 'literal', value: 'page' }),
    items: req({ kind: 'array', message: REVOCATION_ENVELOPE_WIRE, minItems: 0, maxItems: 500 }),
    next: req({ kind: 'orNull', field: OFFSET }),
  },
};

export const KEYS_REQUEST_WIRE: WireMessage = { name: 'keys request', fields: { v: VERSION, handoversFrom: opt({ kind: 'integer', min: 0, max: 0xffff_ffff }) } }; // certificates leaving this epoch on; absent = 0

export const KEYS_REPLY_OK_WIRE: WireMessage = {
  name: 'keys reply',
  fields: {
    ok: OK_TRUE,
    keys: req({ kind: 'openArray', minItems: 0, maxItems: 10_000 }),
    epoch: opt({ kind: 'integer', min: 0, max: 0xffff_ffff }),
    handovers: opt({ kind: 'openArray', minItems: 0, maxItems: 1024 }), // certificates oldest first
  },
};
