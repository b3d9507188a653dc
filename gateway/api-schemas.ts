import { decryptApprovalsField } from '../core/keys/decrypt-approval.ts';
import { Type, type TSchema } from 'typebox';
import {
  COMMITTEE_ID_PATTERN,
  addressField,
  BASE64_PATTERN,
  COMPRESSED_POINT_LENGTH,
  committeeSalt,
  decodeBase64,
  DelegationMessage,
  DLEQ_PROOF_LENGTH,
  encodeHex,
  encodeType,
  EncryptRequestMessage,
  EPHEMERAL_PROOF_LENGTH,
  ERROR_CODES,
  GrantMessage,
  HANDLE_LENGTH,
  hexBytesField,
  hexBytesUpToField,
  keyIdField,
  MAX_PARTICIPANT_ID,
  MAX_RSA_CIPHERTEXT_BYTES,
  MAX_SPKI_BYTES,
  NONCE_LENGTH,
  RegisterHandleMessage,
  REQUEST_ID_LENGTH,
  RevocationMessage,
  signatureField,
  TAG_LENGTH,
  TKMS_EIP712_NAME,
  TKMS_EIP712_VERSION,
  TkmsError,
  unixSecondsField,
  type AnyWireField,
  type WireFields,
  type SignedCodec,
} from '../core/index.ts';
import { assertParticipantId } from '../core/shamir.ts';
import { assertKeyId, KEY_ID_PATTERN } from '../core/identifiers.ts';
import { SESSION_ID_LENGTH } from '../core/dkg/index.ts';
import { MAX_EPOCH, MIN_REFRESH_INTERVAL_SECONDS } from '../core/committee.ts';
import { MAX_HANDOVER_KEYS } from '../core/ceremony/handover.ts';
import { COMMITTEE_PAGE_SIZE } from './epochs.ts';
import { ED25519_SPKI_PREFIX_HEX, SECP256K1_SPKI_PREFIX_HEX } from '../core/spki.ts';
import { explainerOf, explainWith } from '../net/http-validation.ts';
import { EX, EXAMPLE_HANDLE_FIELDS } from './api-examples.ts';
import { LOG_WINDOW_BLOCKS, MAX_LISTED_GRANTS, MAX_LISTED_LOGS, MAX_LOG_WINDOWS } from '../chain/chain-acl.ts';

/**
 * The JSON schemas of the gateway API, each declared once: the router validates requests with
 * them (compiled), and gateway/openapi.ts publishes them as `components.schemas` (a schema
 * registered here under a name appears there once and is `$ref`erenced wherever it is used).
 * Signed messages and their fields are core/messages.ts's; the primitives are core's field
 * wire forms (core/schema.ts), so the router takes exactly what core's decoders take. A schema's
 * explainer (its decode step) names a refused value's error: `bad_hex`, `bad_length`, ….
 */

const NAMES = new WeakMap<object, string>();
const REFINED = new WeakMap<object, { base: object; description: string }>();
const COMPONENTS = new Map<string, { kind: ComponentKind; schema: TSchema }>();
/**
 * The document lists components by kind in this order, each kind in declaration order: the
 * managed-key schemas (gateway/key-schemas.ts) are declared after this module's but belong to
 * several kinds.
 */
const COMPONENT_KINDS = ['primitive', 'signed message', 'request body', 'path parameter', 'response', 'error'] as const;
type ComponentKind = (typeof COMPONENT_KINDS)[number];

/** Registers schemas of one kind: `schema` becomes the component `name` of the OpenAPI document. */
function registrar(kind: ComponentKind) {
  return <T extends TSchema>(name: string, schema: T): T => {
    NAMES.set(schema, name);
    COMPONENTS.set(name, { kind, schema });
    return schema;
  };
}
const primitiveComponent = registrar('primitive');
const signedComponent = registrar('signed message');
export const requestComponent = registrar('request body');
const paramComponent = registrar('path parameter');
export const responseComponent = registrar('response');
const errorComponent = registrar('error');

/** A registered schema with its own description at one use (a `$ref` with a description in OpenAPI). */
export function described<T extends TSchema>(base: T, description: string): T {
  const out = { ...base, description } as T;
  REFINED.set(out, { base, description });
  const explain = explainerOf(base);
  return explain === undefined ? out : explainWith(out, explain);
}

/** The component name of a registered schema, for gateway/openapi.ts. */
export function componentName(schema: object): string | undefined {
  return NAMES.get(schema);
}
export function refinement(schema: object): { base: object; description: string } | undefined {
  return REFINED.get(schema);
}

/** A core field as a named component: its wire schema, its decode step explaining refusals. */
function fieldComponent(name: string, field: Pick<AnyWireField, "schema" | "explain">, description: string, examples?: unknown[]): TSchema {
  return primitiveComponent(name, explainWith({ ...field.schema, description, ...(examples === undefined ? {} : { examples }) } as TSchema, field.explain));
}

/** Node ids a delegate request may ask the gateway to skip. */
export const MAX_EXCLUDE = 256;
const HEX_FORM = 'Hex, 0x-prefixed (0X and upper case are taken; the gateway answers in lower case).';

function hexBytes(length: number, description: string): TSchema {
  const field = hexBytesField(length, { description });
  return explainWith({ ...field.schema }, field.explain);
}

export function closed<P extends Record<string, TSchema>>(properties: P, opts: { description?: string; examples?: unknown[] } = {}) {
  return Type.Object(properties, { additionalProperties: false, ...opts });
}

// --- primitives: the wire forms of core's fields (core/schema.ts), named --------------------

export const KeyId = fieldComponent('KeyId', keyIdField({ description: '' }), 'Names a DKG key: 1-64 characters of a-z, 0-9, ".", "_", "-", starting with a letter or digit, no "..".', [EX.key.keyId]);
export const Address = fieldComponent(
  'Address',
  addressField({ description: '' }),
  '20-byte Ethereum address, 0x + 40 hex digits. All-lower or all-upper case as is; mixed case must carry a valid EIP-55 checksum. The gateway answers in lower case.',
  [EX.owner],
);
export const Handle = fieldComponent('Handle', hexBytesField(HANDLE_LENGTH, { description: '' }), `A handle: SHA-256 commitment to keyId, K, nonce, SHA-256(ciphertext) and owner (core/handle.ts). 32 bytes. ${HEX_FORM}`, [EX.handle]);
export const Bytes32 = fieldComponent('Bytes32', hexBytesField(32, { description: '' }), `32 bytes (a SHA-256 digest). ${HEX_FORM}`);
export const RequestId = fieldComponent('RequestId', hexBytesField(REQUEST_ID_LENGTH, { description: '' }), `A random 16-byte request id. Each may be used once within its validity window. ${HEX_FORM}`);
export const Nonce = fieldComponent('Nonce', hexBytesField(NONCE_LENGTH, { description: '' }), `The 12-byte AES-GCM nonce. ${HEX_FORM}`);
export const EphemeralKeyProof = fieldComponent(
  'EphemeralKeyProof',
  hexBytesField(EPHEMERAL_PROOF_LENGTH, { description: '' }),
  'Binds K to the handle: a Schnorr proof c ‖ s (64 bytes) that whoever made the handle knows the ECIES ephemeral secret k with K = k·G, its challenge binding keyId, K, nonce, SHA-256(ciphertext) and owner (core/sealed-handle.ts). The handle alone does not stop anyone from copying another handle\'s K, nonce and ciphertext into a new handle they own and asking the nodes for K·sk, which would decrypt the original; only whoever ran the encryption knows k, and the proof cannot be moved to another owner, key or ciphertext. The gateway and every node refuse a handle whose proof does not verify (403 `unauthorized`). The gateway makes it for POST /v1/encrypt; clients that encrypt locally make it themselves for POST /v1/handles. ' + HEX_FORM,
  [EX.kProof],
);
const pointField = hexBytesField(COMPRESSED_POINT_LENGTH, { description: '' });
export const CompressedPoint = primitiveComponent(
  'CompressedPoint',
  explainWith({ ...pointField.schema, description: `A secp256k1 point, 33-byte compressed SEC1 (02 or 03 first), on the curve. ${HEX_FORM}` } as TSchema, (value, name) => {
    pointField.explain(value, name);
  }),
);
export const Signature = primitiveComponent(
  'Signature',
  explainWith(
    { ...signatureField.schema, description: 'Ethereum signature r ‖ s ‖ v, 65 bytes, 0x + 130 hex digits; low s, v ∈ {27, 28} (0x1b, 0x1c), or it does not verify (403 `unauthorized`).' } as TSchema,
    signatureField.explain,
  ),
);
export const Timestamp = fieldComponent('Timestamp', unixSecondsField({ description: '' }), 'Unix time in whole seconds (JSON integer).');
export const RsaSpki = fieldComponent(
  'RsaSpki',
  hexBytesUpToField(MAX_SPKI_BYTES, { prefix: 'forbidden', description: '' }),
  'DER SubjectPublicKeyInfo of the requester\'s RSA-OAEP key (2048..4096-bit modulus, exponent 65537, canonical DER), as hex WITHOUT a 0x prefix (spec). At most 1024 bytes. Nodes wrap their partials to it with RSA-OAEP (SHA-256, MGF1-SHA-256, empty label). In the EIP-712 message it is the `bytes` value of these DER bytes (wallet libraries take it as 0x-hex).',
);
export const Base64 = primitiveComponent(
  'Base64',
  explainWith(Type.String({ pattern: BASE64_PATTERN, contentEncoding: 'base64', description: 'Standard base64 with padding (RFC 4648 §4), no whitespace.' }), (value, name) => void decodeBase64(value, { name })),
);
export const NodeId = primitiveComponent(
  'NodeId',
  explainWith(Type.Integer({ minimum: 1, maximum: MAX_PARTICIPANT_ID, description: 'A committee member id (its Shamir x-coordinate).' }), (value, name) => assertParticipantId(value, name)),
);
export const ErrorCode = primitiveComponent('ErrorCode', Type.String({ enum: Object.keys(ERROR_CODES), description: 'Stable error code (core/errors.ts); clients switch on it, never on the message.' }));

// --- signed messages: core/messages.ts's declarations, documented for wallets -------------------

const EIP712_DOMAIN_TYPE = 'EIP712Domain(string name,string version,bytes32 salt)';
export const EIP712_DOMAIN_TEXT = `{ "name": "${TKMS_EIP712_NAME}", "version": "${TKMS_EIP712_VERSION}", "salt": keccak256("tkms/committee/" ‖ committeeId) }`;
export const EIP712_DEPLOYMENT_NOTE =
  'The salt binds every signature to one deployment: `committeeId` is the gateway\'s committee (`GET /health`, or a key\'s `committeeId`; the committee file when pinned), so a message signed for one committee is refused by every other. No chainId (no chain is involved yet) and no verifyingContract. Signatures of format version 1 (`{ "name": "tkms", "version": "1" }`, no salt) are refused with 403 `legacy_signature`: sign again.';
export const EIP712_DOMAIN = `Domain \`${EIP712_DOMAIN_TEXT}\` (type \`${EIP712_DOMAIN_TYPE}\`). ${EIP712_DEPLOYMENT_NOTE}`;

/** Which named primitive each message field is (checked: the same wire schema), for the document's $refs. */
const FIELD_COMPONENTS: Record<string, TSchema> = {
  handle: Handle,
  keyId: KeyId,
  owner: Address,
  grantee: Address,
  requester: Address,
  rsaSpki: RsaSpki,
  notBefore: Timestamp,
  notAfter: Timestamp,
  issuedAt: Timestamp,
  revokedAt: Timestamp,
  requestId: RequestId,
  plaintextHash: Bytes32,
  signature: Signature,
};
const wireShape = (schema: object): string => JSON.stringify(Object.entries(schema).filter(([k]) => k !== 'description' && k !== 'examples').sort(([a], [b]) => (a < b ? -1 : 1)));

/** `primitives: false` for a message whose fields are its own (a key change's), not the named primitives above. */
export function signedMessage(codec: SignedCodec<WireFields>, what: string, primitives = true): TSchema {
  const struct = codec.struct;
  for (const [name, field] of primitives ? Object.entries(codec.schema.properties as Record<string, TSchema>) : []) {
    const base = FIELD_COMPONENTS[name];
    if (base === undefined || wireShape(base) !== wireShape(field)) throw new Error(`api-schemas: ${struct.name}.${name} is not the wire form of a named primitive`);
    if (field !== base) REFINED.set(field, { base, description: String((field as { description?: unknown }).description ?? '') });
  }
  const description = [
    what,
    '',
    `EIP-712 typed data, primary type \`${struct.name}\`, signed by an Ethereum account (eth_signTypedData_v4).`,
    `Domain: \`${EIP712_DOMAIN_TEXT}\` (type \`${EIP712_DOMAIN_TYPE}\`). ${EIP712_DEPLOYMENT_NOTE} The \`x-eip712\` domain is the example committee's (\`${EX.key.committeeId}\`).`,
    `Type string: \`${encodeType(struct)}\`.`,
    '`signature` is the 65-byte r ‖ s ‖ v signature over the typed-data digest, low-s, v ∈ {27, 28}. Every field but `signature` is signed.',
  ].join('\n');
  // The typed-data `types` a wallet needs, as eth_signTypedData_v4 takes them.
  const eip712 = {
    primaryType: struct.name,
    domain: { name: TKMS_EIP712_NAME, version: TKMS_EIP712_VERSION, salt: encodeHex(committeeSalt(EX.key.committeeId)) },
    types: {
      EIP712Domain: [
        { name: 'name', type: 'string' },
        { name: 'version', type: 'string' },
        { name: 'salt', type: 'bytes32' },
      ],
      [struct.name]: struct.fields.map((f) => ({ name: f.name, type: f.type })),
    },
  };
  const schema = { ...codec.schema, description, 'x-eip712': eip712 } as TSchema;
  return signedComponent(struct.name, explainWith(schema, (value) => void codec.decode(value)));
}

export const asSigned = (codec: unknown): SignedCodec<WireFields> => codec as SignedCodec<WireFields>;
export const EncryptRequest = signedMessage(asSigned(EncryptRequestMessage), 'The owner\'s signed request to have the gateway encrypt a plaintext to a key and store the result as a handle the owner owns.');
export const RegisterHandle = signedMessage(asSigned(RegisterHandleMessage), 'The owner\'s signature over a handle they computed for a ciphertext they encrypted themselves.');
export const Grant = signedMessage(asSigned(GrantMessage), 'The owner lets `grantee` decrypt the handle until `notAfter`. A later grant (greater issuedAt) to the same grantee replaces an earlier one.');
export const Revocation = signedMessage(asSigned(RevocationMessage), 'The owner cancels every grant to `grantee` on the handle issued at or before `revokedAt`.');
export const Delegation = signedMessage(asSigned(DelegationMessage), 'The requester (the owner, or a grantee) asks the nodes for their partial decryptions of the handle, wrapped to the requester\'s RSA key.');
export const SIGNED_STRUCTS = [EncryptRequestMessage, RegisterHandleMessage, GrantMessage, RevocationMessage, DelegationMessage].map((m) => m.struct);

// --- request bodies and path parameters -------------------------------------------------

const ciphertext = explainWith(
  {
    ...Base64,
    minLength: Math.ceil(TAG_LENGTH / 3) * 4,
    description: `AES-256-GCM ciphertext ‖ ${TAG_LENGTH}-byte tag, standard padded base64 (at least the tag; at most maxPlaintextBytes + ${TAG_LENGTH} bytes).`,
  } as TSchema,
  (value, name) => {
    if (decodeBase64(value, { name }).length < TAG_LENGTH) throw new TkmsError('bad_length', `${name} must hold at least the ${TAG_LENGTH}-byte tag`);
  },
);
REFINED.set(ciphertext, { base: Base64, description: String((ciphertext as { description?: unknown }).description) });

export const EncryptBody = requestComponent(
  'EncryptBody',
  closed(
    { request: EncryptRequest, plaintext: described(Base64, 'The plaintext, standard padded base64; at most maxPlaintextBytes (default 1 MiB) decoded.') },
    { description: 'POST /v1/encrypt body.', examples: [{ request: EX.encryptRequest, plaintext: EX.plaintext }] },
  ),
);
export const RegisterHandleBody = requestComponent(
  'RegisterHandleBody',
  closed(
    {
      registration: RegisterHandle,
      K: described(CompressedPoint, 'The ECIES ephemeral public key k·G (on the curve, not the identity).'),
      nonce: Nonce,
      ciphertext,
      kProof: described(EphemeralKeyProof, 'The proof of k for K, made with the k the client encrypted with, over this handle\'s fields (owner = registration.owner).'),
    },
    {
      description: 'POST /v1/handles body: a ciphertext the owner encrypted client-side, with the signed registration of its handle and the proof that binds its K to it.',
      examples: [{ registration: EX.registration, K: EX.K, nonce: EX.nonce, ciphertext: EX.ciphertext, kProof: EX.kProof }],
    },
  ),
);
export const DelegateBody = requestComponent(
  'DelegateBody',
  closed(
    {
      delegation: Delegation,
      exclude: Type.Optional(Type.Array(NodeId, { maxItems: MAX_EXCLUDE, description: 'Node ids not to ask (say, nodes whose partials failed verification last time).' })),
      approvals: Type.Optional(decryptApprovalsField.schema),
    },
    { description: 'POST /v1/handles/{handle}/delegate body.', examples: [{ delegation: EX.delegation, exclude: [2] }] },
  ),
);

/** An alias as key changes name it (core/keys/key-change.ts). */
export const ALIAS_PATTERN = '^alias/[A-Za-z0-9/_-]{1,250}$';
export const KeyIdOrAlias = paramComponent(
  'KeyIdOrAlias',
  explainWith(
    Type.String({
      maxLength: 256,
      pattern: `${KEY_ID_PATTERN}|${ALIAS_PATTERN}`,
      description: 'A key id, or the alias of a managed key (`alias/…`; in a path, URL-encoded: `alias%2Fpayroll`).',
      examples: [EX.key.keyId, 'alias/payroll'],
    }),
    (value) => {
      if (typeof value !== 'string' || !value.startsWith('alias/')) assertKeyId(value);
      else if (!new RegExp(ALIAS_PATTERN).test(value)) throw new TkmsError('bad_key_id', 'an alias is alias/ followed by 1-250 of A-Z a-z 0-9 / _ -');
    },
  ),
);

/** Path parameters, with the description and example each gets in the document. */
export const PathParams = {
  keyId: { schema: KeyIdOrAlias, description: 'The key id, or a managed key\'s alias URL-encoded (`alias%2Fpayroll`).', example: EX.key.keyId },
  handle: { schema: Handle, description: 'The handle, 0x + 64 hex digits.', example: EX.handle },
  grantee: { schema: Address, description: 'The grantee\'s address.', example: EX.grantee },
} as const;

// --- responses --------------------------------------------------------------------------

const handleFields = {
  handle: Handle,
  keyId: KeyId,
  K: described(CompressedPoint, 'The ECIES ephemeral public key k·G.'),
  nonce: Nonce,
  ciphertextHash: described(Bytes32, 'SHA-256 of ciphertext ‖ tag.'),
  owner: described(Address, 'The owner who encrypted or registered the handle; only they can grant and revoke.'),
  kProof: EphemeralKeyProof,
  createdAt: Type.String({ format: 'date-time', description: 'When the gateway first stored the handle (ISO 8601, UTC).' }),
};
const storedCiphertext = { ...ciphertext, description: 'ciphertext ‖ tag, standard padded base64.' } as TSchema;
REFINED.set(storedCiphertext, { base: Base64, description: 'ciphertext ‖ tag, standard padded base64.' });
const memberCount = (description?: string): TSchema => Type.Integer({ minimum: 1, maximum: MAX_PARTICIPANT_ID, ...(description === undefined ? {} : { description }) });
const byMemberId = (value: TSchema, description: string): TSchema => Type.Unsafe<Record<string, string>>({ type: 'object', propertyNames: { pattern: '^[1-9][0-9]{0,4}$' }, additionalProperties: value, description } as TSchema);

const epochField = (description: string): TSchema => Type.Integer({ minimum: 0, maximum: MAX_EPOCH, description });

export const Health = responseComponent(
  'Health',
  closed(
    {
      status: Type.String({ enum: ['ready', 'not_ready'], description: '"ready" when at least t committee members are connected.' }),
      committeeId: Type.String({ pattern: COMMITTEE_ID_PATTERN }),
      t: memberCount(),
      n: memberCount(),
      nodesConnected: Type.Array(NodeId, { description: 'Ids of the members the gateway is connected to.' }),
      keys: Type.Array(KeyId, { description: 'Key ids the gateway has verified and publishes.' }),
    },
    { description: 'Gateway readiness.' },
  ),
);
export const CommitteeMember = responseComponent(
  'CommitteeMember',
  closed(
    {
      id: NodeId,
      peerId: Type.String({ pattern: '^12D3KooW[1-9A-HJ-NP-Za-km-z]{44}$', description: 'libp2p Ed25519 peer id.' }),
      publicKey: hexBytes(32, 'The member\'s raw Ed25519 public key, 0x + 64 hex digits; it signs the DKG result.'),
    },
    { description: 'A committee member, from the committee file.' },
  ),
);
const Ed25519Element = Type.String({ pattern: '^0x[0-9a-f]{64}$', description: 'A point of the Ed25519 prime-order subgroup, 32-byte RFC 8032 encoding, 0x hex (Ed25519 keys).' });
export const PublishedKey = responseComponent(
  'PublishedKey',
  closed(
    {
      keyId: KeyId,
      curve: Type.Optional(Type.Literal('ed25519', { description: 'The key\'s group: "ed25519" for an Ed25519 signing key (its points are 32-byte RFC 8032 encodings); absent for secp256k1.' })),
      publicKey: Type.Union([described(CompressedPoint, 'The group public key PK = sk·G; encrypt to this (secp256k1 keys).'), Ed25519Element], { description: 'The group public key, in the key\'s group.' }),
      publicKeySpki: Type.String({
        pattern: `^(${SECP256K1_SPKI_PREFIX_HEX}04[0-9a-f]{128}|${ED25519_SPKI_PREFIX_HEX}[0-9a-f]{64})$`,
        description: 'The group public key as DER SubjectPublicKeyInfo (secp256k1: id-ecPublicKey, uncompressed point; Ed25519: RFC 8410), hex WITHOUT 0x.',
      }),
      t: memberCount('Threshold: partials of any t members decrypt.'),
      n: memberCount(),
      committeeId: Type.String({ pattern: COMMITTEE_ID_PATTERN }),
      verificationShares: byMemberId(Type.Union([CompressedPoint, Ed25519Element]), 'Member id (decimal) → Y_i = share_i·G in the key\'s group, for every member; clients check each partial\'s DLEQ proof (or, for signing keys, the gateway each signature share) against it.'),
      qualified: Type.Array(NodeId, { description: 'Dealers whose contributions form the key.' }),
      sessionId: hexBytes(SESSION_ID_LENGTH, 'The DKG session id.'),
      transcriptHash: hexBytes(32, 'Hash of the DKG transcript (covered by the members\' signatures).'),
      signatures: byMemberId(
        hexBytes(64, 'Ed25519 signature.'),
        'Member id → Ed25519 signature (RFC 8032, strict) over the domain-separated SHA-256 digest of the whole result: key id, committee id, session id, t, n, member ids and `members[].publicKey`, qualified, group key, every verification share, transcript hash (core/dkg/context.ts dkgResultDigest). At least t verify; the gateway publishes a key only when t members hold the same result.',
      ),
      members: Type.Array(CommitteeMember, { description: 'The members of the committee that made the key (its DKG result\'s epoch), whose keys sign the result.' }),
      epoch: epochField('The committee epoch the key is served at. After a handover the Y_i at this epoch are in the handover certificates (GET /v1/committee), not in `verificationShares`.'),
      resultEpoch: Type.Optional(Type.Integer({ minimum: 1, maximum: MAX_EPOCH, description: 'The epoch the key was made at (its DKG result\'s `epoch`, signed with it); absent = 0.' })),
    },
    { description: 'A key the committee holds: the public DKG result, verified by the gateway, and the committee it belongs to. Clients can verify it themselves.', examples: [EX.key] },
  ),
);
export const CommitteeFile = responseComponent(
  'CommitteeFile',
  closed(
    {
      committeeId: Type.String({ pattern: COMMITTEE_ID_PATTERN }),
      epoch: epochField('The committee\'s epoch: 0 for the committee of the first DKG, +1 for each completed reshare or refresh.'),
      t: memberCount('Threshold: partials of any t members decrypt.'),
      members: Type.Array(
        closed({
          id: NodeId,
          peerId: Type.String({ pattern: '^12D3KooW[1-9A-HJ-NP-Za-km-z]{44}$', description: 'libp2p Ed25519 peer id: its key signs for the member.' }),
          multiaddrs: Type.Array(Type.String(), { description: 'Where the member listens.' }),
        }),
      ),
      refreshIntervalSeconds: Type.Optional(Type.Integer({ minimum: MIN_REFRESH_INTERVAL_SECONDS, description: 'How often the members refresh their shares.' })),
    },
    { description: 'A committee file (core/committee.ts committeeToJson).' },
  ),
);
const signaturesByMember = byMemberId(hexBytes(64, 'Ed25519 signature.'), 'Member id → Ed25519 signature (RFC 8032, strict) over the certificate\'s vote message (core/ceremony/handover.ts handoverVoteMessage).');
export const HandoverCertificate = responseComponent(
  'HandoverCertificate',
  closed(
    {
      v: Type.Literal(1),
      committeeId: Type.String({ pattern: COMMITTEE_ID_PATTERN }),
      fromEpoch: epochField('The epoch the committee left.'),
      fromDigest: hexBytes(32, 'committeeDigest of the committee left (its id, epoch, t, member ids and keys).'),
      to: CommitteeFile,
      keys: Type.Array(
        closed({
          keyId: KeyId,
          groupPublicKey: described(CompressedPoint, 'The group key: unchanged by a handover.'),
          verificationShares: byMemberId(CompressedPoint, 'Member id → Y_i at the new epoch, for every member of `to`.'),
        }),
        { maxItems: MAX_HANDOVER_KEYS },
      ),
      transcriptHash: hexBytes(32, 'SHA-256 of the certified dealings.'),
      signatures: closed({ from: signaturesByMember, to: signaturesByMember }),
    },
    {
      description:
        'The signed result of a reshare or refresh (core/ceremony/handover.ts): at least t members of the committee left and a vote quorum of the committee reached sign it. A client that pinned an earlier committee verifies each certificate against the committee it already trusts.',
    },
  ),
);
export const CommitteeState = responseComponent(
  'CommitteeState',
  closed(
    {
      committeeId: Type.String({ pattern: COMMITTEE_ID_PATTERN }),
      epoch: epochField('The epoch the gateway serves: the latest its certificates reach from its own committee file.'),
      committee: CommitteeFile,
      handovers: Type.Array(HandoverCertificate, {
        maxItems: COMMITTEE_PAGE_SIZE,
        description:
          'A page of handover certificates leaving epoch `since` and later, oldest first: those before the gateway\'s file\'s epoch (verified backwards from its file), then those it followed from its file (verified). Clients verify every one from the committee they pinned.',
      }),
      next: Type.Union([Type.Integer({ minimum: 0, maximum: MAX_EPOCH }), Type.Null()], { description: 'The `since` of the next page, or null when this page reaches the epoch served.' }),
    },
    { description: 'The committee the gateway serves and the certificates that lead to it.' },
  ),
);
export const HandleStored = responseComponent(
  'HandleStored',
  closed({ ...handleFields, created: Type.Boolean({ description: 'false when the gateway already held this handle (it is left unchanged).' }) }, { description: 'A stored handle.', examples: [{ ...EXAMPLE_HANDLE_FIELDS, created: true }] }),
);
export const HandleRecord = responseComponent(
  'HandleRecord',
  closed({ ...handleFields, ciphertext: storedCiphertext }, { description: 'A handle with its ciphertext. Handles and ciphertexts are public: only t nodes together can decrypt.' }),
);
export const ListedGrant = responseComponent(
  'ListedGrant',
  closed(
    {
      handle: Handle,
      grantee: Address,
      notAfter: Timestamp,
      issuedAt: Timestamp,
      signature: Signature,
      status: Type.String({
        enum: ['active', 'revoked', 'expired'],
        description: 'As the gateway sees it now; nodes decide on their own. Signatures are not checked again here: a grant stored in signature format version 1 is listed but refused when used (`legacy_signature`).',
      }),
      source: Type.Optional(Type.Literal('signed', { description: 'Present when the deployment also reads the on-chain ACL (acl.mode either): an owner-signed grant, revoked through DELETE …/grants/{grantee}.' })),
    },
    { description: 'A stored grant (the signed Grant fields) with its current status.' },
  ),
);
export const ListedChainGrant = responseComponent(
  'ListedChainGrant',
  closed(
    {
      source: Type.Literal('chain', { description: 'A grant in the TkmsAcl contract (acl.mode chain or either): revoked on chain (`revoke`, `revokeAll`), never through this API.' }),
      handle: Handle,
      grantee: Address,
      notAfter: Timestamp,
      live: Type.Boolean({ description: 'isGranted at `block`: false once revoked, expired, or cancelled by the owner\'s revokeAll.' }),
      block: Type.Integer({ minimum: 0, description: 'The block the listing was read at.' }),
    },
    { description: 'An on-chain grant of the handle\'s owner, from the contract\'s Granted events.' },
  ),
);
export const GrantList = responseComponent(
  'GrantList',
  closed(
    {
      handle: Handle,
      grants: Type.Array(Type.Union([ListedGrant, ListedChainGrant]), {
        description:
          `The latest signed grant per grantee, sorted by grantee, with its status (revoked grants are listed too; expired ones are dropped from the store); with the on-chain ACL on, then the on-chain grants, newest first (at most ${MAX_LISTED_GRANTS}). In mode chain signed grants count for nothing and are not listed.`,
      }),
      chainTruncated: Type.Optional(
        Type.Literal(true, {
          description: `Present when the on-chain part stopped at a bound (${MAX_LISTED_GRANTS} grantees, or the events of the newest ${LOG_WINDOW_BLOCKS * MAX_LOG_WINDOWS} blocks, or ${MAX_LISTED_LOGS} events): older on-chain grants may exist that are not listed; isGranted on the contract answers for any one of them.`,
        }),
      ),
      chainUnavailable: Type.Optional(
        closed(
          { code: Type.String({ description: 'The error code of the failed read, e.g. `unavailable`.' }), message: Type.String({ description: 'Why, for a person.' }) },
          {
            description:
              'Present when the on-chain ACL is on but could not be read now (RPC down, providers disagree, a stale head): `grants` then holds the signed grants only and no on-chain grant is listed; retry later for those.',
          },
        ),
      ),
    },
    { description: 'Grants the gateway holds or reads for a handle.' },
  ),
);
export const GrantStored = responseComponent(
  'GrantStored',
  closed({ grant: Grant, stored: Type.Boolean({ description: 'false when the gateway already held a grant to this grantee issued at the same time or later.' }) }, { description: 'The outcome of storing a grant.' }),
);
export const NodeFailure = responseComponent(
  'NodeFailure',
  closed(
    {
      nodeId: NodeId,
      code: ErrorCode,
      message: Type.String(),
      retryAfterSeconds: Type.Optional(Type.Integer({ minimum: 0, description: 'With `rate_limited`: when this node expects to answer the requester again.' })),
    },
    { description: 'A node that refused or failed to answer, with its error code (`timeout`, `unavailable` for transport failures).' },
  ),
);
export const RevocationResult = responseComponent(
  'RevocationResult',
  closed(
    {
      revocation: Revocation,
      acknowledgedBy: Type.Array(NodeId, { description: 'Nodes that stored the revocation (or already held it), ascending.' }),
      needed: Type.Integer({ minimum: 1, description: 'n − t + 1: with that many nodes holding it, fewer than t nodes can still honour the grant.' }),
      effective: Type.Boolean({ description: 'acknowledgedBy.length ≥ needed (HTTP 200); otherwise HTTP 202 and the caller should retry.' }),
      failures: Type.Array(NodeFailure),
    },
    { description: 'The outcome of broadcasting a revocation to the committee.' },
  ),
);
export const PartialAnswer = responseComponent(
  'PartialAnswer',
  closed(
    {
      nodeId: NodeId,
      wrapped: Type.String({ pattern: `^0x(?:[0-9a-f]{2}){1,${MAX_RSA_CIPHERTEXT_BYTES}}$`, description: 'RSA-OAEP (SHA-256) encryption, to the delegation\'s rsaSpki, of the 33-byte compressed partial P_i = share_i·K.' }),
      proof: hexBytes(DLEQ_PROOF_LENGTH, 'DLEQ (Chaum-Pedersen) proof c ‖ s that log_G(Y_i) = log_K(P_i), bound to keyId, nodeId, K and requestId.'),
      epoch: Type.Optional(epochField('The committee epoch of the share that answered (absent = 0): the proof is checked against that epoch\'s Y_i, and only partials of one epoch combine.')),
    },
    { description: 'One node\'s partial decryption (core/node-wire.ts partialAnswerToJson).' },
  ),
);
export const DelegationResult = responseComponent(
  'DelegationResult',
  closed(
    {
      ...handleFields,
      ciphertext: storedCiphertext,
      t: memberCount('The key\'s threshold at `epoch`; exactly t partials follow.'),
      epoch: epochField('The committee epoch the gateway asked at.'),
      requestId: RequestId,
      partials: Type.Array(PartialAnswer, { description: 'Exactly t partials from distinct nodes. The client unwraps each, verifies its proof against the key\'s verification share, combines them (Lagrange at 0) into K·sk and decrypts.' }),
      failures: Type.Array(NodeFailure, { description: 'Nodes that refused or failed along the way (the gateway asked others instead).' }),
    },
    { description: 'Everything a requester needs to decrypt locally. The gateway never sees the plaintext or any unwrapped partial.' },
  ),
);
export const ErrorBody = errorComponent(
  'Error',
  closed(
    {
      error: closed({
        code: ErrorCode,
        message: Type.String({ description: 'Human-readable; never quotes secret material.' }),
        details: Type.Optional(Type.Unsafe<Record<string, unknown>>({ type: 'object', description: 'Public context, e.g. `retryAfterSeconds` (rate_limited) or `answered`, `needed`, `failures` (insufficient_partials).' } as TSchema)),
      }),
    },
    {
      description: 'Every error: `{ "error": { "code", "message", "details"? } }`. The HTTP status follows from the code: ' + Object.entries(ERROR_CODES).map(([c, s]) => `${c} ${s}`).join(', ') + '.',
      examples: [{ error: { code: 'not_found', message: `no handle ${EX.handle}` } }],
    },
  ),
);

/** Every registered component, by kind, each kind in declaration order. */
export function components(): ReadonlyMap<string, TSchema> {
  const rank = (kind: ComponentKind): number => COMPONENT_KINDS.indexOf(kind);
  return new Map([...COMPONENTS].sort(([, a], [, b]) => rank(a.kind) - rank(b.kind)).map(([name, { schema }]) => [name, schema]));
}
