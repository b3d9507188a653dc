import type { TSchema } from 'typebox';
import { MAX_VALIDITY_SECONDS, TkmsError, type ErrorCode } from '../core/index.ts';
import { MAX_EPOCH } from '../core/committee.ts';
import type { Method } from '../net/http.ts';
import { EX, EXAMPLE_COMMITTEE, EXAMPLE_HANDLE_FIELDS, EXAMPLE_KEY_CHANGES, EXAMPLE_KEY_VIEWS } from './api-examples.ts';
import { KEY_CHANGE_PAGE_SIZE } from '../core/keys/key-wire.ts';
import { KEY_STATES } from '../core/keys/key-model.ts';
import * as S from './api-schemas.ts';
import * as K from './key-schemas.ts';
import * as G from './sign-schemas.ts';

/**
 * Every route of the gateway API, declared once: method, path, schemas, examples and what it
 * answers. gateway/api.ts attaches a handler to each (by operationId) and the router validates
 * with the schemas; gateway/openapi.ts turns the same table into the OpenAPI document, and
 * scripts/gen-api-docs.ts that into docs/api.md.
 */
export interface ApiResponse {
  description: string;
  schema?: TSchema;
  example?: unknown;
  /** Defaults to application/json. */
  contentType?: string;
}

/** An optional query parameter: an integer within bounds, or a text matching a pattern. */
export type QueryParam =
  | { type?: 'integer'; minimum: number; maximum: number; description: string; example: number }
  | { type: 'string'; pattern: string; maxLength: number; description: string; example: string };

export interface ApiRoute {
  operationId: string;
  method: Method;
  /** "{name}" segments are path parameters, declared in api-schemas.ts's PathParams. */
  path: string;
  tag: 'meta' | 'keys' | 'handles' | 'grants' | 'decryption' | 'signing';
  summary: string;
  description?: string;
  /** Not charged to the client address's token bucket (probes and this description). */
  free?: boolean;
  body?: { schema: TSchema; description: string; example: unknown };
  /** Optional query parameters: name → bounds and meaning (parsed by queryInteger and queryText). */
  query?: Record<string, QueryParam>;
  responses: Record<number, ApiResponse>;
  /** Error codes by status, with what the status means for this route. */
  errors?: Partial<Record<number, ErrorCode[]>>;
  errorNotes?: Partial<Record<number, string>>;
}

export const TAGS: Record<ApiRoute['tag'], string> = {
  meta: 'The document itself, health and metrics.',
  keys: 'Keys: the DKG results the committee holds, and managed keys (state, versions, aliases, tags, admins, policy) that admin-signed key changes make.',
  handles: 'Ciphertexts stored under handles.',
  grants: 'Owner-signed grants and revocations.',
  decryption: 'Delegated threshold decryption.',
  signing: 'Threshold signing (FROST): Ed25519 and BIP340 Taproot signatures by t members, each checking the request and the key\'s signing policy.',
};

const RATE_LIMIT_NOTE =
  'Per-account token bucket (config `rateLimit`), or the client address\'s (ten times it, charged before the body is read; also too many connections or body bytes in flight from the address, config `httpLimits`); `details.retryAfterSeconds` says when to retry.';
const IP_RATE_NOTE =
  'Per client address: a token bucket (ten times config `rateLimit`) charged before anything else, or too many connections from the address (config `httpLimits`); `details.retryAfterSeconds` says when to retry.';
const BODY_BUDGET_NOTE = 'Too many request-body bytes in flight at the gateway (config `httpLimits.maxBodyBytesInFlight`): refused with the body unread; retry later.';
const HANDLE_QUOTA_NOTE = 'Also past the owner\'s handles (config `handles.perOwner`, `handles.perOwnerBytes`), without `retryAfterSeconds`: handles never expire.';
const HANDLE_STORE_NOTE =
  'Or the gateway takes no new handles: `details.reason` is `store_full` (config `handles.maxBytes`), `disk_reserve` (free disk under `handles.minFreeDiskBytes`, kept for grants and revocations; grants stop at half of it, revocations never) or `store_queue_full` (config `storeWriteQueueBytes`; retry later).';
const RESPONSE_BUDGET_NOTE =
  'Too many bytes of large answers being built or not yet read, at the gateway (config `httpLimits.maxResponseBytesInFlight`); retry later. From one address that is a 429 (`httpLimits.maxResponseBytesInFlightPerIp`).';
const STORE_FULL_NOTE = (field: 'grants' | 'revocations'): string => `The gateway holds \`${field}.max\` live ${field} and this owner holds as many as any other.`;
const BODY_LIMIT_NOTE = 'The body limit follows the configured `maxPlaintextBytes` (base64 of it plus 16 KiB).';
const MALFORMED: ErrorCode[] = ['bad_request', 'bad_hex', 'bad_length', 'bad_address'];

const KEY_CHANGE_NOTE =
  'The gateway checks the change against its own copy of the key (signature, admin, order, body, state, limits: a refusal is answered and nothing is sent), then sends it to every committee member, which checks and applies it on its own. The change is effective once n − t + 1 members applied it: then fewer than t members can still act on the key as it was. The gateway takes it into its own copy once a member applied it. Re-sending the same change is safe (members that hold it answer so): on 202, send it again. When no member applied it and every member refused for one reason, that refusal is answered, with the members\' `failures` in `details`. Rate limited per signing account.';
const KEY_CHANGE_ERRORS: Partial<Record<number, ErrorCode[]>> = {
  400: [...MALFORMED, 'bad_key_id'],
  403: ['unauthorized', 'not_key_admin', 'expired'],
  409: ['key_change_replayed', 'key_change_out_of_order', 'key_change_conflict', 'key_change_invalid', 'alias_taken', 'key_limit_exceeded'],
  410: ['key_destroyed'],
  413: ['payload_too_large'],
  429: ['rate_limited'],
  500: ['internal'],
  503: ['unavailable'],
};
const KEY_CHANGE_ERROR_NOTES: Partial<Record<number, string>> = {
  400: 'A body that does not parse for its action (`bad_request` names the field).',
  403: 'Not signed by the `admin` it names (for this deployment), or that account is not an admin of the key (for a create: not in `keys.creators`). `expired`: the members refused a change issued more than an hour from their clocks; sign it again.',
  409: 'The change does not follow the key\'s last change (replayed, a gap, or another change at that place), does not fit the key\'s state, takes an alias another key holds, or passes a limit (`keys.maxKeys`, `keys.perCreatorQuota`, the key\'s own).',
  410: 'The key was destroyed: nothing changes it.',
  413: BODY_LIMIT_NOTE,
  429: RATE_LIMIT_NOTE,
  503: BODY_BUDGET_NOTE,
};
const keyChangeResponses = (key: unknown): Record<number, ApiResponse> => ({
  200: { description: 'Effective: at least n − t + 1 members applied the change.', schema: K.KeyChangeResult, example: { key, acknowledgedBy: [1, 2, 3], needed: 2, effective: true, failures: [] } },
  202: {
    description: 'Applied by fewer than n − t + 1 members: not yet effective. Send the same change again.',
    schema: K.KeyChangeResult,
    example: { key, acknowledgedBy: [1], needed: 2, effective: false, failures: [{ nodeId: 2, code: 'timeout', message: 'no answer within 3000 ms' }, { nodeId: 3, code: 'unavailable', message: 'connection refused' }] },
  },
});

const storedHandle = (verb: string): Record<number, ApiResponse> => ({
  201: { description: `${verb}: the handle is new.`, schema: S.HandleStored, example: { ...EXAMPLE_HANDLE_FIELDS, created: true } },
  200: { description: 'The gateway already held this handle; it is returned unchanged (`created: false`).', schema: S.HandleStored, example: { ...EXAMPLE_HANDLE_FIELDS, created: false } },
});
const health = (status: string, nodesConnected: number[]) => ({ status, committeeId: EX.key.committeeId, t: 2, n: 3, nodesConnected, keys: [EX.key.keyId] });

export const API_ROUTES: readonly ApiRoute[] = [
  {
    operationId: 'getOpenApiDocument',
    method: 'GET',
    path: '/openapi.json',
    tag: 'meta',
    summary: 'This OpenAPI document',
    free: true,
    responses: { 200: { description: 'The OpenAPI 3.1 document of the gateway API.', schema: { type: 'object' } as TSchema } },
  },
  {
    operationId: 'getHealth',
    method: 'GET',
    path: '/health',
    tag: 'meta',
    summary: 'Readiness: at least t committee members connected',
    free: true,
    responses: {
      200: { description: 'Ready.', schema: S.Health, example: health('ready', [1, 2, 3]) },
      503: { description: 'Not ready: fewer than t members connected. The body is a Health object, not an Error.', schema: S.Health, example: health('not_ready', [2]) },
    },
  },
  {
    operationId: 'getMetrics',
    method: 'GET',
    path: '/metrics',
    tag: 'meta',
    summary: 'Prometheus metrics',
    description: 'Charged to the client address\'s token bucket like the API: scrape from an address of its own, or at most a few times a second.',
    responses: {
      200: {
        description: 'Prometheus text exposition format (`text/plain; version=0.0.4; charset=utf-8`).',
        contentType: 'text/plain',
        schema: { type: 'string' } as TSchema,
        example: '# HELP tkms_gateway_delegations_total Delegation requests by outcome\n# TYPE tkms_gateway_delegations_total counter\ntkms_gateway_delegations_total{outcome="ok"} 42\n',
      },
    },
    errors: { 429: ['rate_limited'] },
    errorNotes: { 429: IP_RATE_NOTE },
  },
  {
    operationId: 'listKeys',
    method: 'GET',
    path: '/v1/keys',
    tag: 'keys',
    summary: 'List the keys the committee holds, and its managed keys',
    description:
      'Asks the nodes for their public DKG results (at most once a second) and lists those that verify and that at least t members hold identically (a key id for which members hold different valid results of one session is withdrawn; a valid result of another session for a published key is ignored), sorted by key id. `managed` lists the managed keys of the gateway\'s copy of the key changes (caught up from the members every 30 s), filtered by `tag` (`?tag=team` for any value, `?tag=team%3Dfinance` for one, split at the first `=`), `alias` (`?alias=alias%2Fpayroll`) and `state` (' +
      KEY_STATES.map((st) => `\`${st}\``).join(', ') +
      `, at the gateway's clock), at most ${K.MAX_LISTED_MANAGED_KEYS} and ${K.MAX_LISTED_VIEW_BYTES / 1024 / 1024} MiB of them a page: \`managedNext\` is the \`after\` of the next page.`,
    query: {
      tag: { type: 'string', pattern: '^[A-Za-z0-9 _.:/=+@-]{1,385}$', maxLength: 385, description: 'Managed keys with this tag: `key` (any value) or `key=value` (split at the first `=`).', example: 'team=finance' },
      alias: { type: 'string', pattern: '^alias/[A-Za-z0-9/_-]{1,250}$', maxLength: 256, description: 'The managed key with this alias.', example: 'alias/payroll' },
      state: { type: 'string', pattern: `^(${KEY_STATES.join('|')})$`, maxLength: 16, description: `Managed keys in this state at the gateway's clock: ${KEY_STATES.join(', ')}.`, example: 'Enabled' },
      after: { type: 'string', pattern: '^[a-z0-9][a-z0-9._-]{0,63}$', maxLength: 64, description: 'Managed keys after this key id (the previous page\'s `managedNext`).', example: 'demo' },
    },
    responses: { 200: { description: 'The published keys and the managed keys.', schema: K.KeyList, example: { keys: [EX.key], managed: [EXAMPLE_KEY_VIEWS.created], managedNext: null } } },
    errors: { 400: ['bad_request'], 429: ['rate_limited'], 500: ['internal'] },
    errorNotes: { 400: 'A query parameter that does not match its pattern.', 429: IP_RATE_NOTE },
  },
  {
    operationId: 'getKey',
    method: 'GET',
    path: '/v1/keys/{keyId}',
    tag: 'keys',
    summary: 'One key: group public key, verification shares, DKG result signatures; and the managed key of that id or alias',
    description:
      'For a published DKG key the answer is as it always was, plus `managed` when the id also names a managed key (an alias names the managed key; its version 1 is the DKG key of the managed key\'s id). A managed key without a published DKG result of its id (a derived key, a DKG key whose ceremony has not finished) answers with `managed` alone.',
    responses: { 200: { description: 'The key.', schema: K.KeyDescription, example: { ...EX.key, managed: EXAMPLE_KEY_VIEWS.created } } },
    errors: { 400: ['bad_key_id'], 404: ['unknown_key'], 429: ['rate_limited'], 500: ['internal'] },
    errorNotes: { 429: IP_RATE_NOTE },
  },
  {
    operationId: 'createKey',
    method: 'POST',
    path: '/v1/keys',
    tag: 'keys',
    summary: 'Create a managed key: send its signed create change to every node',
    description: `${KEY_CHANGE_NOTE} The change's action must be \`create\` (sequence 1, \`previous\` 32 zero bytes), signed by an account config \`keys.creators\` allows, within its \`keys.perCreatorQuota\`.`,
    body: { schema: K.KeyChangeBody, description: 'The signed create change.', example: { change: EXAMPLE_KEY_CHANGES.create } },
    responses: keyChangeResponses(EXAMPLE_KEY_VIEWS.created),
    errors: KEY_CHANGE_ERRORS,
    errorNotes: KEY_CHANGE_ERROR_NOTES,
  },
  {
    operationId: 'changeKey',
    method: 'POST',
    path: '/v1/keys/{keyId}/changes',
    tag: 'keys',
    summary: 'Change a managed key (describe, alias, tag, enable, disable, schedule or cancel deletion, rotate, policy, admins): send the signed change to every node',
    description: `${KEY_CHANGE_NOTE} The change's \`keyId\` must be the key id in the path (not an alias), and its action anything but \`create\`, signed by one of the key's admins.`,
    body: { schema: K.KeyChangeBody, description: 'The signed change.', example: { change: EXAMPLE_KEY_CHANGES.disable } },
    responses: keyChangeResponses(EXAMPLE_KEY_VIEWS.disabled),
    errors: KEY_CHANGE_ERRORS,
    errorNotes: { ...KEY_CHANGE_ERROR_NOTES, 400: `${KEY_CHANGE_ERROR_NOTES[400]} Also a change whose keyId is not the path's, or a create.` },
  },
  {
    operationId: 'listKeyChanges',
    method: 'GET',
    path: '/v1/keys/{keyId}/changes',
    tag: 'keys',
    summary: 'A managed key\'s signed changes, in order',
    description: `A page of at most ${KEY_CHANGE_PAGE_SIZE} of the key's changes after sequence \`after\` (default 0), from the gateway's copy. Every change carries its admin's signature and the digest of the one before: a client can check the whole history itself.`,
    query: { after: { minimum: 0, maximum: Number.MAX_SAFE_INTEGER, description: 'Answer the changes after this sequence number (default 0: from the create).', example: 0 } },
    responses: { 200: { description: 'A page of changes.', schema: K.KeyChangePage, example: { changes: [EXAMPLE_KEY_CHANGES.create, EXAMPLE_KEY_CHANGES.disable], next: null } } },
    errors: { 400: ['bad_request', 'bad_key_id'], 404: ['unknown_key'], 429: ['rate_limited'], 500: ['internal'] },
    errorNotes: { 429: IP_RATE_NOTE },
  },
  {
    operationId: 'getKeyPolicy',
    method: 'GET',
    path: '/v1/keys/{keyId}/policy',
    tag: 'keys',
    summary: 'A managed key\'s purpose-bound policy',
    responses: { 200: { description: 'The policy and the key sequence it is read at.', schema: K.KeyPolicy, example: { keyId: EX.key.keyId, sequence: 2, policy: {} } } },
    errors: { 400: ['bad_key_id'], 404: ['unknown_key'], 429: ['rate_limited'], 500: ['internal'] },
    errorNotes: { 429: IP_RATE_NOTE },
  },
  {
    operationId: 'getCommittee',
    method: 'GET',
    path: '/v1/committee',
    tag: 'keys',
    summary: 'The committee served now, and the handover certificates that lead to it',
    description:
      'Asks the nodes (at most once a second) for the handover certificates they hold and follows them from the gateway\'s own committee file, verifying each against the committee reached so far; answers the committee reached and a page of the certificates leaving epoch `since` and later, oldest first, with the epoch the next page starts at (`next`, null after the last). A client pinned to an earlier committee asks from its pinned epoch, pages until `next` is null and follows them itself (core/ceremony/handover.ts followHandovers) rather than trusting this answer. Without `since` the first page from epoch 0 is answered.',
    query: {
      since: { minimum: 0, maximum: MAX_EPOCH, description: 'Answer the certificates leaving this epoch and later (default 0): a client passes the epoch it trusts.', example: 0 },
    },
    responses: { 200: { description: 'The committee and a page of its certificates.', schema: S.CommitteeState, example: { committeeId: EX.key.committeeId, epoch: 0, committee: EXAMPLE_COMMITTEE, handovers: [], next: null } } },
    errors: { 400: ['bad_request'], 429: ['rate_limited'], 500: ['internal'] },
    errorNotes: { 429: IP_RATE_NOTE },
  },
  {
    operationId: 'encrypt',
    method: 'POST',
    path: '/v1/encrypt',
    tag: 'handles',
    summary: 'Encrypt a plaintext to a key and store it as a handle',
    description:
      'The gateway checks the owner\'s signed EncryptRequest (window, SHA-256 of the plaintext, signature, unused request id), ECIES-encrypts the plaintext to the key, proves knowledge of the ephemeral secret for the new handle (`kProof`) and stores the ciphertext under its handle, owned by `request.owner`. The gateway sees this plaintext; encrypt client-side and use POST /v1/handles to keep it from the gateway. A managed key is encrypted to at its current version: the handle\'s keyId is that version\'s material key id (the key id for version 1, `<keyId>.v<n>` after a rotation); a managed key that is not Enabled is refused. A derived key\'s version is encrypted to its root\'s published key moved by the version\'s public tweak (docs/derived-keys.md). Rate limited per owner.',
    body: { schema: S.EncryptBody, description: 'The signed request and the plaintext.', example: { request: EX.encryptRequest, plaintext: EX.plaintext } },
    responses: storedHandle('Encrypted and stored'),
    errors: {
      400: [...MALFORMED, 'bad_key_id'],
      403: ['unauthorized', 'legacy_signature', 'expired', 'key_disabled', 'key_pending_deletion'],
      404: ['unknown_key'],
      409: ['replayed'],
      410: ['key_destroyed'],
      413: ['payload_too_large'],
      429: ['rate_limited'],
      500: ['internal'],
      503: ['unavailable', 'key_not_ready'],
    },
    errorNotes: {
      400: `Also a validity window longer than ${MAX_VALIDITY_SECONDS} s.`,
      403: 'Bad signature, plaintextHash mismatch, or outside the validity window. `key_disabled`, `key_pending_deletion`: the managed key (or its version) is not Enabled.',
      410: 'The managed key (or the version named) was destroyed.',
      413: BODY_LIMIT_NOTE,
      429: `${RATE_LIMIT_NOTE} ${HANDLE_QUOTA_NOTE}`,
      503: `${BODY_BUDGET_NOTE} ${HANDLE_STORE_NOTE} \`key_not_ready\`: the managed key's DKG for its current version has not finished.`,
    },
  },
  {
    operationId: 'registerHandle',
    method: 'POST',
    path: '/v1/handles',
    tag: 'handles',
    summary: 'Store a ciphertext encrypted client-side, with the owner\'s signed registration',
    description:
      'The gateway recomputes the handle from keyId, K, nonce, SHA-256(ciphertext) and owner, checks that `kProof` proves knowledge of k for K over exactly these fields, checks the owner\'s RegisterHandle signature and that the key exists, and stores the ciphertext. Idempotent. Rate limited per owner.',
    body: {
      schema: S.RegisterHandleBody,
      description: 'Registration, ECIES envelope, ciphertext and the proof binding K to the handle.',
      example: { registration: EX.registration, K: EX.K, nonce: EX.nonce, ciphertext: EX.ciphertext, kProof: EX.kProof },
    },
    responses: storedHandle('Registered and stored'),
    errors: { 400: [...MALFORMED, 'bad_point', 'bad_key_id'], 403: ['unauthorized', 'legacy_signature'], 404: ['unknown_key'], 413: ['payload_too_large'], 429: ['rate_limited'], 500: ['internal'], 503: ['unavailable'] },
    errorNotes: {
      403: 'The handle does not commit to these fields, `kProof` does not verify for them, or the registration is not signed by its owner.',
      413: BODY_LIMIT_NOTE,
      429: `${RATE_LIMIT_NOTE} ${HANDLE_QUOTA_NOTE}`,
      503: `${BODY_BUDGET_NOTE} ${HANDLE_STORE_NOTE}`,
    },
  },
  {
    operationId: 'getHandle',
    method: 'GET',
    path: '/v1/handles/{handle}',
    tag: 'handles',
    summary: 'A handle\'s metadata and ciphertext',
    responses: { 200: { description: 'The handle.', schema: S.HandleRecord, example: { ...EXAMPLE_HANDLE_FIELDS, ciphertext: EX.ciphertext } } },
    errors: { 400: ['bad_hex', 'bad_length'], 404: ['not_found'], 429: ['rate_limited'], 500: ['internal'], 503: ['unavailable'] },
    errorNotes: { 429: `${IP_RATE_NOTE} Also too many unread answer bytes for the address (config \`httpLimits.maxResponseBytesInFlightPerIp\`).`, 503: RESPONSE_BUDGET_NOTE },
  },
  {
    operationId: 'listGrants',
    method: 'GET',
    path: '/v1/handles/{handle}/grants',
    tag: 'grants',
    summary: 'The grants of a handle: those the gateway holds and, with the on-chain ACL on, those on chain',
    description:
      'Each kind of grant is revoked in its own place: a signed grant by DELETE …/grants/{grantee} (`source` absent, or `signed`), an on-chain grant (`source: "chain"`) only by the owner\'s transaction to the TkmsAcl contract. With config `acl.mode` `chain` or `either` the gateway lists the owner\'s on-chain grants from the contract\'s events (at most 1000), each with `live` (isGranted at `block`); in mode `chain` stored signed grants are not listed (they count for nothing). When the chain cannot be read now (RPC down, providers disagree, a stale head) the answer is still 200 with the signed grants and `chainUnavailable` set: retry later for the on-chain part.',
    responses: {
      200: {
        description: 'The grants.',
        schema: S.GrantList,
        example: {
          handle: EX.handle,
          grants: [
            { ...EX.grant, status: 'active', source: 'signed' },
            { source: 'chain', handle: EX.handle, grantee: EX.grant.grantee, notAfter: EX.grant.notAfter, live: true, block: 1234 },
          ],
        },
      },
    },
    errors: { 400: ['bad_hex', 'bad_length'], 404: ['not_found'], 429: ['rate_limited'], 500: ['internal'], 503: ['unavailable'] },
    errorNotes: {
      429: `${IP_RATE_NOTE} Also too many unread answer bytes for the address (config \`httpLimits.maxResponseBytesInFlightPerIp\`; a listing is charged 400 bytes a grant plus 64 KiB).`,
      503: RESPONSE_BUDGET_NOTE,
    },
  },
  {
    operationId: 'putGrant',
    method: 'POST',
    path: '/v1/handles/{handle}/grants',
    tag: 'grants',
    summary: 'Store an owner-signed grant',
    description:
      'The body is the signed Grant itself. `grant.handle` must be the handle in the URL and the grant must be signed by the handle\'s owner. A grant valid for longer than `maxGrantLifetimeSeconds` (notAfter − issuedAt) or issued later than now + clock skew is refused (`bad_request`); nodes refuse those too. The gateway keeps the latest grant (greatest issuedAt) per grantee until it expires (notAfter + clock skew) and attaches it to the grantee\'s delegation requests; nodes verify it again. It keeps at most `grants.perOwner` live grants per handle owner (more are refused with `rate_limited` until some expire) and `grants.max` in all: when full, an owner holding fewer than the owner holding the most still gets in (that owner\'s oldest grant is dropped), any other gets `unavailable`. Rate limited per handle owner.',
    body: { schema: S.Grant, description: 'The signed grant.', example: EX.grant },
    responses: {
      201: { description: 'Stored.', schema: S.GrantStored, example: { grant: EX.grant, stored: true } },
      200: { description: 'Valid, but the gateway already holds a grant to this grantee issued at the same time or later; not stored.', schema: S.GrantStored, example: { grant: EX.grant, stored: false } },
    },
    errors: { 400: MALFORMED, 403: ['unauthorized', 'legacy_signature', 'signed_grants_refused'], 404: ['not_found'], 413: ['payload_too_large'], 429: ['rate_limited'], 500: ['internal'], 503: ['unavailable'] },
    errorNotes: {
      400: '`bad_request` also when grant.handle differs from the URL.',
      403: 'Not signed by the handle\'s owner (for this deployment). `signed_grants_refused`: the deployment takes on-chain grants only (config `acl.mode` `chain`); grant on the TkmsAcl contract.',
      429: `${RATE_LIMIT_NOTE} Also past the owner's live grants (config \`grants.perOwner\`), without \`retryAfterSeconds\`.`,
      503: `${BODY_BUDGET_NOTE} Or: ${STORE_FULL_NOTE('grants')} Or \`details.reason\` \`disk_reserve\`: free disk is under half of \`handles.minFreeDiskBytes\`; the rest is kept for revocations.`,
    },
  },
  {
    operationId: 'revokeGrant',
    method: 'DELETE',
    path: '/v1/handles/{handle}/grants/{grantee}',
    tag: 'grants',
    summary: 'Revoke a grant: store an owner-signed revocation and push it to every node',
    description:
      'The body (required, even though this is DELETE) is the signed Revocation; its handle and grantee must match the URL. The gateway stores it, then sends it to every committee member. The revocation is effective once n − t + 1 nodes hold it: then fewer than t nodes could still answer for the grant. Nodes also gossip revocations among themselves, so a 202 usually becomes effective later; re-sending the same revocation is safe. A node refuses it past the owner\'s quota of live revocations (`rate_limited`); this shows in `failures`. A full store (a node\'s or the gateway\'s) never refuses a revocation: it folds an older one into a "revoked up to T" watermark that keeps it in force (docs/operators.md, "Revocations"). The gateway keeps each revocation until revokedAt + `maxGrantLifetimeSeconds` + clock skew, within the same per-owner bound (`revocations.perOwner`: `rate_limited`), and sends nothing to the nodes when it refuses. Rate limited per handle owner.',
    body: { schema: S.Revocation, description: 'The signed revocation.', example: EX.revocation },
    responses: {
      200: { description: 'Effective: at least n − t + 1 nodes acknowledged.', schema: S.RevocationResult, example: { revocation: EX.revocation, acknowledgedBy: [1, 2, 3], needed: 2, effective: true, failures: [] } },
      202: {
        description: 'Stored by the gateway but acknowledged by fewer than n − t + 1 nodes: not yet effective. Retry.',
        schema: S.RevocationResult,
        example: {
          revocation: EX.revocation,
          acknowledgedBy: [1],
          needed: 2,
          effective: false,
          failures: [
            { nodeId: 2, code: 'timeout', message: 'no answer within 3000 ms' },
            { nodeId: 3, code: 'unavailable', message: 'connection refused' },
          ],
        },
      },
    },
    errors: { 400: MALFORMED, 403: ['unauthorized', 'legacy_signature'], 404: ['not_found'], 413: ['payload_too_large'], 429: ['rate_limited'], 500: ['internal'], 503: ['unavailable'] },
    errorNotes: {
      400: '`bad_request` also when the revocation\'s handle or grantee differs from the URL.',
      403: 'Not signed by the handle\'s owner (for this deployment).',
      429: `${RATE_LIMIT_NOTE} Also past the owner's live revocations at the gateway (config \`revocations.perOwner\`), without \`retryAfterSeconds\`.`,
      503: BODY_BUDGET_NOTE,
    },
  },
  {
    operationId: 'delegate',
    method: 'POST',
    path: '/v1/handles/{handle}/delegate',
    tag: 'decryption',
    summary: 'Get t partial decryptions of a handle, wrapped to the requester\'s RSA key',
    description:
      'The requester signs a Delegation for the handle. The gateway checks the chain owner → grant → requester (signature, validity window, key id, handle commitment, K binding, grant, revocations it knows of), attaches the stored grant, and asks exactly t nodes for partials (the fastest healthy ones), replacing nodes that fail and hedging to one more when an answer is late for that node (its mean latency plus four deviations, at most `hedgeDelayMs`). Every node checks the whole chain again, plus its own revocations and spent request ids. With the on-chain ACL on (config `acl.mode` `chain`, or `either` without a valid signed grant) the gateway names block B = its head − `acl.chain.confirmations`, checks the owner\'s on-chain grant to the requester at B itself (after the signature and the rate limit) and sends B to every node, which checks it again at exactly B; in mode `chain` no signed grant is attached. When fewer than t nodes answer and they all refused for one reason (unauthorized, legacy_signature, expired, replayed, revoked, unknown_key, bad_rsa_key, rate_limited, acl_block_too_old, signed_grants_refused), that error is returned; when every node that failed said it cannot read its chain (`unavailable`) or has not reached B (`acl_block_ahead`), that code (503, retry); otherwise `insufficient_partials`. A grant the gateway stored in signature format version 1 answers `legacy_signature`: the owner grants again. Rate limited per requester, at the gateway and at every node; when the nodes refuse for their limits the answer is 429 with `details.retryAfterSeconds` (when enough of them take requests again) and a `Retry-After` header.',
    body: { schema: S.DelegateBody, description: 'The signed delegation and, optionally, nodes to avoid.', example: { delegation: EX.delegation } },
    responses: {
      200: {
        description: 't wrapped partials with their proofs, and the ciphertext.',
        schema: S.DelegationResult,
        example: { ...EXAMPLE_HANDLE_FIELDS, ciphertext: EX.ciphertext, t: 2, epoch: 0, requestId: EX.delegation.requestId, partials: EX.partials, failures: [] },
      },
    },
    errors: {
      400: [...MALFORMED, 'bad_key_id', 'bad_rsa_key'],
      403: ['unauthorized', 'legacy_signature', 'expired', 'revoked', 'signed_grants_refused'],
      404: ['not_found', 'unknown_key'],
      409: ['replayed', 'acl_block_too_old'],
      413: ['payload_too_large'],
      429: ['rate_limited'],
      503: ['insufficient_partials', 'unavailable', 'acl_block_ahead'],
      500: ['internal'],
    },
    errorNotes: {
      400: `Also a validity window longer than ${MAX_VALIDITY_SECONDS} s, an \`exclude\` that is not an array of at most ${S.MAX_EXCLUDE} node ids, or \`delegation.handle\` differing from the URL; \`bad_rsa_key\` when the nodes reject rsaSpki.`,
      403: 'No valid grant, a bad signature, a key id or handle mismatch, a stored kProof that does not verify, an expired window or grant, or a revoked grant.',
      409: 'The nodes have already answered this requestId. `acl_block_too_old`: the nodes found the ACL block the gateway named more than their `maxBlockLag` behind their head (the gateway\'s RPC lags, or its `confirmations` is too high).',
      429: `${RATE_LIMIT_NOTE} Also when the nodes refused for their own per-requester limits; then \`details\` has \`answered\`, \`needed\` and the per-node \`failures\` too.`,
      503: `Fewer than t nodes answered; \`details\` has \`answered\`, \`needed\` and the per-node \`failures\`. \`unavailable\`: ${BODY_BUDGET_NOTE} Or the on-chain ACL cannot be read now, by the gateway or by every node that refused (RPC down, providers disagree, a stale head); \`acl_block_ahead\`: the nodes have not reached the block the gateway named. Both are retryable.`,
    },
  },
  {
    operationId: 'signWithKey',
    method: 'POST',
    path: '/v1/keys/{keyId}/sign',
    tag: 'signing',
    summary: 'Sign a message or a Bitcoin transaction with a SIGN_VERIFY key: t members sign with FROST, none holds the key',
    description:
      'The requester signs a SignRequest (EIP-712) naming the key version (its material key id), the message kind and the SHA-256 of the message. The gateway checks the key\'s state, the request\'s window and signature and the requester\'s rate limit, then asks t members for signature shares in one round trip (it holds nonce commitments each member made ahead of time). Every member checks the request and the key\'s policy itself (who may sign, and what: `sign.raw`, `sign.prefixes`, `sign.psbt` with its allowed addresses and daily value cap; docs/key-policy.md) and spends its nonce durably before it answers. The gateway aggregates and verifies the signature under the key; a member whose share does not verify is named in `blamed` and replaced, and the signature is made again with another. A PSBT gets a signature per input the key owns, and comes back finalised. When fewer than t members sign and all refused for one reason, that refusal is the answer (it names the rule); else `insufficient_signers` with every member\'s failure.',
    body: { schema: G.SignBody, description: 'The signed request and the message.', example: (G.SignBody as { examples?: unknown[] }).examples?.[0] },
    responses: {
      200: {
        description: 'The signatures, verified by the gateway under the key.',
        schema: G.SignResult,
        example: {
          keyId: 'treasury',
          algorithm: 'ED25519_SHA_512',
          publicKey: `0x${'3d'.repeat(32)}`,
          signatures: [`0x${'5a'.repeat(64)}`],
          signers: [1, 2, 4],
          blamed: [],
          failures: [],
        },
      },
    },
    errors: {
      400: [...MALFORMED, 'bad_key_id', 'bad_psbt', 'key_usage_mismatch'],
      403: ['unauthorized', 'expired', 'key_disabled', 'key_pending_deletion', 'policy_requester_denied', 'policy_outside_window', 'policy_approvals_missing', 'policy_operation_denied', 'policy_raw_denied', 'policy_prefix_denied', 'policy_message_kind_denied', 'policy_output_denied', 'policy_value_cap'],
      404: ['unknown_key'],
      410: ['key_destroyed'],
      413: ['payload_too_large'],
      429: ['rate_limited', 'policy_daily_limit'],
      503: ['insufficient_signers', 'key_not_ready', 'unavailable'],
      500: ['internal'],
    },
    errorNotes: {
      400: 'Also a request whose key id is not a version of the key in the path, or a PSBT for an Ed25519 key (`key_usage_mismatch`), or an ENCRYPT_DECRYPT key.',
      403: 'The request\'s signature or window fails, the key is disabled or pending deletion, or (from the members) a rule of the key\'s policy refuses it: the code names the rule.',
      429: RATE_LIMIT_NOTE,
      503: 'Fewer than t members signed; `details.failures` has each member\'s failure (code bad_signature_share for a member whose share did not verify).',
    },
  },
];

/** The names of a path template's parameters, in order. */
export function pathParamNames(path: string): (keyof typeof S.PathParams)[] {
  return [...path.matchAll(/\{([^}/]+)\}/g)].map((m) => {
    const name = m[1]!;
    if (!(name in S.PathParams)) throw new Error(`route ${path}: no schema for path parameter ${name}`);
    return name as keyof typeof S.PathParams;
  });
}

/** A route's optional integer query parameter, within its declared bounds; undefined when absent. */
export function queryInteger(route: ApiRoute, url: URL, name: string): number | undefined {
  const param = route.query?.[name];
  if (param === undefined || param.type === 'string') throw new TkmsError('internal', `route ${route.operationId} declares no integer query parameter ${name}`);
  const text = url.searchParams.get(name);
  if (text === null) return undefined;
  const value = /^(0|[1-9][0-9]{0,15})$/.test(text) ? Number(text) : NaN;
  if (!(value >= param.minimum && value <= param.maximum)) throw new TkmsError('bad_request', `query parameter ${name} must be an integer in ${param.minimum}..${param.maximum}`);
  return value;
}

/** A route's optional text query parameter, matching its declared pattern; undefined when absent. */
export function queryText(route: ApiRoute, url: URL, name: string): string | undefined {
  const param = route.query?.[name];
  if (param === undefined || param.type !== 'string') throw new TkmsError('internal', `route ${route.operationId} declares no text query parameter ${name}`);
  const text = url.searchParams.get(name);
  if (text === null) return undefined;
  if (text.length > param.maxLength || !new RegExp(param.pattern).test(text)) throw new TkmsError('bad_request', `query parameter ${name} must match ${param.pattern}`);
  return text;
}
