import {
  ADDRESS_LENGTH,
  COMPRESSED_POINT_LENGTH,
  DELEGATION_STRUCT,
  DLEQ_PROOF_LENGTH,
  ENCRYPT_STRUCT,
  encodeHex,
  encodeType,
  EPHEMERAL_PROOF_LENGTH,
  ERROR_CODES,
  GRANT_STRUCT,
  HANDLE_LENGTH,
  MAX_PARTICIPANT_ID,
  MAX_RSA_CIPHERTEXT_BYTES,
  MAX_VALIDITY_SECONDS,
  NONCE_LENGTH,
  REGISTER_STRUCT,
  REQUEST_ID_LENGTH,
  REVOCATION_STRUCT,
  SIGNATURE_LENGTH,
  TAG_LENGTH,
  TKMS_EIP712_NAME,
  TKMS_EIP712_VERSION,
  committeeSalt,
  type ErrorCode,
  type Eip712Struct,
} from '../core/index.ts';
import { SESSION_ID_LENGTH } from '../core/dkg/index.ts';

/**
 * The OpenAPI 3.1 description of the gateway's HTTP API (gateway/api.ts), served at
 * GET /openapi.json and rendered for humans in docs/api.md. Pure data: no I/O, built once.
 *
 * Conventions it documents (they are core/authz.ts's):
 *   - bytes travel as 0x-prefixed lower-case hex, except `rsaSpki` (and a key's
 *     `publicKeySpki`), which are hex WITHOUT 0x, as the spec has them;
 *   - bulk data (plaintext, ciphertext) is standard padded base64;
 *   - timestamps inside signed messages are unix seconds as JSON integers;
 *   - every error is `{ "error": { "code", "message", "details"? } }`, its HTTP status fixed by
 *     its code (core/errors.ts).
 * test/unit/gateway-openapi.test.ts keeps this document, the route table and docs/api.md in step.
 */

type Schema = Record<string, unknown>;

/** Not exported by core/authz.ts; mirrored here (the test checks them against the parsers). */
const MAX_TIMESTAMP = 253_402_300_799;
const MAX_SPKI_BYTES = 1024;
const MAX_EXCLUDE = 256;
const KEY_ID_PATTERN = '^(?!.*\\.\\.)[a-z0-9][a-z0-9._-]{0,63}$';
const COMMITTEE_ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$';
const BASE64_PATTERN = '^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$';
/** DER prefix of a secp256k1 SubjectPublicKeyInfo with an uncompressed point (core/spki.ts). */
const SECP256K1_SPKI_PREFIX = '3056301006072a8648ce3d020106052b8104000a034200';

const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const withDescription = (name: string, description: string): Schema => ({ ...ref(name), description });

function hexBytes(length: number, description: string): Schema {
  return { type: 'string', pattern: `^0x[0-9a-f]{${length * 2}}$`, description };
}

function object(properties: Record<string, Schema>, opts: { optional?: string[]; description?: string; examples?: unknown[] } = {}): Schema {
  const required = Object.keys(properties).filter((k) => !(opts.optional ?? []).includes(k));
  return {
    type: 'object',
    ...(opts.description === undefined ? {} : { description: opts.description }),
    properties,
    required,
    additionalProperties: false,
    ...(opts.examples === undefined ? {} : { examples: opts.examples }),
  };
}

// -----------------------------------------------------------------------------------------
// EIP-712

const EIP712_DOMAIN_TYPE = 'EIP712Domain(string name,string version,bytes32 salt)';
const EIP712_DOMAIN_TEXT = `{ "name": "${TKMS_EIP712_NAME}", "version": "${TKMS_EIP712_VERSION}", "salt": keccak256("tkms/committee/" ‖ committeeId) }`;
const EIP712_DEPLOYMENT_NOTE =
  'The salt binds every signature to one deployment: `committeeId` is the gateway\'s committee (`GET /health`, or a key\'s `committeeId`; the committee file when pinned), so a message signed for one committee is refused by every other. No chainId (no chain is involved yet) and no verifyingContract. Signatures of format version 1 (`{ "name": "tkms", "version": "1" }`, no salt) are refused with 403 `legacy_signature`: sign again.';

function eip712Description(struct: Eip712Struct, what: string): string {
  return [
    what,
    '',
    `EIP-712 typed data, primary type \`${struct.name}\`, signed by an Ethereum account (eth_signTypedData_v4).`,
    `Domain: \`${EIP712_DOMAIN_TEXT}\` (type \`${EIP712_DOMAIN_TYPE}\`). ${EIP712_DEPLOYMENT_NOTE} The \`x-eip712\` domain is the example committee's (\`${EX.key.committeeId}\`).`,
    `Type string: \`${encodeType(struct)}\`.`,
    '`signature` is the 65-byte r ‖ s ‖ v signature over the typed-data digest, low-s, v ∈ {27, 28}. Every field but `signature` is signed.',
  ].join('\n');
}

/** The typed-data `types` a wallet needs, as eth_signTypedData_v4 takes them. */
function eip712Extension(struct: Eip712Struct): Schema {
  return {
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
}

function signedMessage(struct: Eip712Struct, what: string, properties: Record<string, Schema>, example: unknown): Schema {
  return {
    ...object({ ...properties, signature: ref('Signature') }, { description: eip712Description(struct, what), examples: [example] }),
    'x-eip712': eip712Extension(struct),
  };
}

// -----------------------------------------------------------------------------------------
// Examples: one consistent, real data set (a 2-of-3 devnet key "demo", owner = Hardhat
// account #0, grantee = account #1, "hello, tkms" sealed to the key with core's sealToHandle).
// The signatures, the handle commitment, the K-binding proof (kProof) and the DKG transcript
// signatures all verify, and the two partials (wrapped to the delegation's RSA key) carry
// valid DLEQ proofs for this K and requestId and combine to decrypt the ciphertext.

const EXAMPLE_CREATED_AT = '2026-01-01T00:00:05.123Z';
const EX = {
  key: {
    keyId: 'demo',
    publicKey: '0x02c026888c0f2aa77ffbdee28023b7622e20192e9ff0b8291449dfa1557f6432ba',
    publicKeySpki: '3056301006072a8648ce3d020106052b8104000a03420004c026888c0f2aa77ffbdee28023b7622e20192e9ff0b8291449dfa1557f6432baed7c736fe3a56efd24174ddcfc19c97ba87f926a6da4decff95ac838c7910dce',
    t: 2,
    n: 3,
    committeeId: 'devnet',
    verificationShares: {
      '1': '0x0249380cd4f4b10fc134f01b04c523b4a93f77675cb79d6eb7f4d7d0949ed81232',
      '2': '0x03b046db8a785a4ff07f3d14b9c3c3a52a0f24bdc08ae4a73da79c99df808c580a',
      '3': '0x03c27c7f68a0adb3731201d8cd729713179e9c9133f8c85bafa7978a456bf4317d',
    },
    qualified: [1, 2, 3],
    sessionId: '0x5e55105e55105e55105e55105e551051',
    transcriptHash: '0x0c48627fe277142484318e4131db8ff56c858a3ed505390521bc5b28c9b30c23',
    signatures: {
      '1': '0x77bdfb2fdceec8e63981bf86458962cca72db3e26d25af4e1a6892607eaf03c22cd7e3623e7a03acd1d6fff0b0431eb8b732b14b6bde1e522a471d1bd8e5bb04',
      '2': '0x26f324a2bbc837060d72aadcb1b69b49e7905f358901d717887fc9b7980b06a908c953ff6c5f752d5e9cb7a8f36dd11ad8ac5980e9dbe6f176ca98aa142a7c04',
      '3': '0xb3c4bb4edc7b19b7e7b1c8900c8889ed94d7777447bc13087faabec1044b21eeade92c9881a042fb76e38ba17c1914839bcf0b4c193e39313d4c1b75cb917c0e',
    },
    members: [
      {
        id: 1,
        peerId: '12D3KooWQWTRnDxqU5irLHxBQHEycUxVRKKZQmTqYcZwMrvPa5Vy',
        publicKey: '0xda48cbc52182262132a3bdfa4bd0bbece0b8ad6f964415ad264d343026325208',
      },
      {
        id: 2,
        peerId: '12D3KooWRrtPyr3PHW3Mw3de1EQdDoSt8crWEAroy8WA88YyUdoF',
        publicKey: '0xee6054e32afdb370f1dc2b6e7af8980872ec0a8eb439b8b7a2d5f5c94a9b4be2',
      },
      {
        id: 3,
        peerId: '12D3KooWSM9ru64Er8tdt3qArZLpBUUaAGvg64G5pc7RcZEY1uBr',
        publicKey: '0xf59e145e2efa883820842f9306fede6a0f009a2deaf123913caa03a9c2180b55',
      },
    ],
  },
  plaintext: 'aGVsbG8sIHRrbXM=',
  K: '0x03d5d775ecc71deb332f6e74fcab23c6eb05a15a794112d80dd42668ee4ee3acea',
  nonce: '0xabe92201ab0eb11592812f01',
  ciphertext: 'hqdDva65vmTUqf+k11YeIoiHxDs4W6A+OWrz',
  ciphertextHash: '0x78cde0abd0cce51c886c675f3a34e164af29218484273517107e36834d93ee73',
  kProof: '0xb4d1ba1cb1501885bd9c3cdcf5d8d15fca0c8d0c0bb94d1179651911b415d9a474d2b6a7c11acf1d5a6a0ba9f2ab0c0390e66b4d1aa3325a9722410f33692b18',
  handle: '0x3d2d9b4303fce8d972dc9d23e4c81c9034a0e2e8f2bc959d3aa16a4d44543302',
  owner: '0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266',
  grantee: '0x70997970c51812dc3a010c7d01b50e0d17dc79c8',
  encryptRequest: {
    keyId: 'demo',
    owner: '0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266',
    plaintextHash: '0x3170fe9ba13901926ce6770eecfec139f9a49d8a13ad7648cf597c0345081391',
    notBefore: 1767225600,
    notAfter: 1767225900,
    requestId: '0x0f1e2d3c4b5a69788796a5b4c3d2e1f0',
    signature: '0x0818a02659eec8516accbe32ee55cf3370c1b45612167d5222e7d04482d8fc5965a1674504e06947ca5fa1f8a26fc5cb2d1a6d6b4afe616bf13b326997b9c0ca1b',
  },
  registration: {
    handle: '0x3d2d9b4303fce8d972dc9d23e4c81c9034a0e2e8f2bc959d3aa16a4d44543302',
    keyId: 'demo',
    owner: '0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266',
    signature: '0x81f74ac90e07377dd7ab951b5f901687f6503536614686d3d51c531c219cc3b1554f05b9dc990f279d785dc9b3c72ad0c59e7851a3d4b0a75f9a9676dc46cf271b',
  },
  grant: {
    handle: '0x3d2d9b4303fce8d972dc9d23e4c81c9034a0e2e8f2bc959d3aa16a4d44543302',
    grantee: '0x70997970c51812dc3a010c7d01b50e0d17dc79c8',
    notAfter: 1769817600,
    issuedAt: 1767225660,
    signature: '0xe65cb544a139cb8a77265b6d30427dbc03169c6bab630d64f2707ba16c251212542dcec08a48c92f11f26c470dc58fc5b35dee52ddc3ec98fb342c0fd827a0511b',
  },
  revocation: {
    handle: '0x3d2d9b4303fce8d972dc9d23e4c81c9034a0e2e8f2bc959d3aa16a4d44543302',
    grantee: '0x70997970c51812dc3a010c7d01b50e0d17dc79c8',
    revokedAt: 1767232800,
    signature: '0xb9cac648a1a9e1bfe6baea4674ef8d043b2608f2033de3f9d6b9f6792b43f3c67c466e14b862d8c6f05ed39aebc7f516d050cbf9d7113773fc87cb16704b74401b',
  },
  delegation: {
    handle: '0x3d2d9b4303fce8d972dc9d23e4c81c9034a0e2e8f2bc959d3aa16a4d44543302',
    keyId: 'demo',
    requester: '0x70997970c51812dc3a010c7d01b50e0d17dc79c8',
    rsaSpki: '30820122300d06092a864886f70d01010105000382010f003082010a0282010100d0dee7429571780b6603ab4d1aed5b71d1c43d52f23402f937a3cf7ff48fc22304b6d1ca533cf962423837cd4749b692f0da2fff8756ce5386ac4113d5a182df30e0e9c363b428e71139668a2ac0d8deb86aacf5b783ea5399eb090197e07d1b3cb87ca6b4cf6e47925e509e9fdef8d6b95fa3c84ea7a8a5d966ab46a5b5c87b8b7aecdfc32f5f54485422780a6bd0ba2a8042faa192d4e616d7bd5e76b56785d454d93f1175ca0c80e171ea94959fd8e261459cfa53a02067d13eb30429a67731a9e5c964309ab62b31028392a74c74f9ed1da60855af7bebff65b365ba6f22c98ac5e3f2a49283e14ffece293c7da14d5f20bc83a126c358bbbe4b502c033b0203010001',
    notBefore: 1767225720,
    notAfter: 1767226020,
    requestId: '0xa1b2c3d4e5f60718293a4b5c6d7e8f90',
    signature: '0xa276e932233adec7daf77999448c79f868ea06fd35b00e15c516c816ddc83f903471761484a9614fdd96cf61fa2e43a0008f9d698f05f934750cd5d6b8a768c81b',
  },
  partials: [
    {
      nodeId: 1,
      wrapped: '0xacff7daed191c271551d7bc330d25a2c77582d8b51fa166b91f90b40b21b785a044dbb83256e3dd3c494cf73c6abb6acbba630f16b33a01f5d91868bb25ced6efdacf328d4a65a57a43f9cd576b582321ad9d848ab6f9842f3fae2bf811b241a2e16edd1a30d4aa9f2bf39faee47f74cca8519c1b2bd395704e8385d4095579d61061858488368c5add52f9dbd81980795e75aca0529a1413b004b7ee6b422088c3d06cfee1a277767d4d5b5fa72ff6c28593efe6b01ded12deec0f3060b0f9b284f506e8c5dab83aa7585a458e54a0803cc9ef279395b8edfb678cd000a072630f57cae5370a585a3ff2515bb4e62fd04f0245a5a0e617e5f43b8407caf2f4d',
      proof: '0x74d87776d53f08e16e99124e66948c25337a08076bac12f225208c7bc7700c5317db7ce3c7b779d84204c3cadc18bc8164a5a802066d2247cfdba8f8578462ac',
    },
    {
      nodeId: 3,
      wrapped: '0x72429115bc1b48d1b9e8b270c000c39441fdf5c2934a436cc24e2a796ab662069197c7d5bd7687d8aa0522b98245221c1324543dacab378695991c3b27078060e9357337025bce69442ba763d6139ba30b3e02d6330007c21bdbbb3c06996f7781eca7839119102151460bf4d2c9f54d915a850368fe62a4da0a32ba720a846ae5a6eda556b64a07adf56a81256d133b5a183150a7cb69b5c58330407e99083b9ca7bfe2d0008ca85c1f235d2fa719499a63a29332cef3eea9948c9bb4cea26c5d6cc9033026ec1455d600e2afd600c6557b82b24f801c405bb4f54478ad356fc3ae9ab4af100ce04d200a2894c29333e3cffd7e70f632c23f7e7b96ec8ffcfc',
      proof: '0x784c979d9092bb8a946ce8e6bfe2dddd0bc09120d98ffc73cb0fbb2aa29da33ca105ef16e513b45230b252958642db1e99b7dd0c0987d38c103a20977d0b8537',
    },
  ],
} as const;

const EXAMPLE_HANDLE_FIELDS = {
  handle: EX.handle,
  keyId: EX.key.keyId,
  K: EX.K,
  nonce: EX.nonce,
  ciphertextHash: EX.ciphertextHash,
  owner: EX.owner,
  kProof: EX.kProof,
  createdAt: EXAMPLE_CREATED_AT,
};

const EXAMPLE_MESSAGES: Partial<Record<ErrorCode, string>> = {
  bad_request: 'request body must be a JSON object',
  bad_hex: 'handle is not valid hex (even number of 0-9a-f digits)',
  bad_length: 'requestId must be 16 bytes, got 15',
  bad_point: 'K is not a point on secp256k1',
  bad_key_id: 'key id must be 1-64 characters of a-z, 0-9, ".", "_" or "-", starting with a letter or digit',
  bad_address: 'grantee must be 0x followed by 40 hex digits',
  bad_rsa_key: 'RSA modulus must be 2048..4096 bits, got 1024',
  unauthorized: `0x70997970c51812dc3a010c7d01b50e0d17dc79c8 holds no grant for this handle`,
  expired: 'delegation request expired at 1767226020 (now 1767226100)',
  revoked: 'the grant to 0x70997970c51812dc3a010c7d01b50e0d17dc79c8 was revoked at 1767232800',
  not_found: `no handle ${EX.handle}`,
  unknown_key: 'no key demo2 in committee devnet',
  replayed: 'request id 0f1e2d3c4b5a69788796a5b4c3d2e1f0 was already used',
  payload_too_large: 'request body is larger than 1414144 bytes',
  rate_limited: `too many requests from ${EX.owner}; retry in 2 s`,
  insufficient_partials: '1 of 3 nodes answered, 2 needed (node 2: timeout; node 3: unavailable)',
  internal: 'internal error',
};

const EXAMPLE_DETAILS: Partial<Record<ErrorCode, Record<string, unknown>>> = {
  rate_limited: { retryAfterSeconds: 2 },
  insufficient_partials: {
    answered: 1,
    needed: 2,
    failures: [
      { nodeId: 2, code: 'timeout', message: 'no answer within 3000 ms' },
      { nodeId: 3, code: 'unavailable', message: 'connection refused' },
    ],
  },
};

const STATUS_TEXT: Record<number, string> = {
  400: 'Malformed request',
  403: 'Not authorized',
  404: 'Not found',
  409: 'Conflict',
  413: 'Request body too large',
  422: 'Unprocessable',
  429: 'Rate limited',
  500: 'Internal error',
  503: 'Unavailable',
  504: 'Timeout',
};

/** Error responses by status, each listing the codes this route can answer with. */
function errorResponses(byStatus: Partial<Record<number, ErrorCode[]>>, notes: Partial<Record<number, string>> = {}): Record<string, Schema> {
  const out: Record<string, Schema> = {};
  for (const [statusText, codes] of Object.entries(byStatus)) {
    const status = Number(statusText);
    if (codes === undefined || codes.length === 0) continue;
    for (const code of codes) {
      if (ERROR_CODES[code] !== status) throw new Error(`openapi: error code ${code} maps to HTTP ${ERROR_CODES[code]}, not ${status}`);
    }
    const first = codes[0]!;
    const details = EXAMPLE_DETAILS[first];
    const note = notes[status];
    out[statusText] = {
      description: `${STATUS_TEXT[status] ?? 'Error'}: ${codes.map((c) => `\`${c}\``).join(', ')}.${note === undefined ? '' : ` ${note}`}`,
      content: {
        'application/json': {
          schema: ref('Error'),
          example: { error: { code: first, message: EXAMPLE_MESSAGES[first] ?? first, ...(details === undefined ? {} : { details }) } },
        },
      },
    };
  }
  return out;
}

const json = (schema: Schema, example?: unknown): Schema => ({ 'application/json': { schema, ...(example === undefined ? {} : { example }) } });
const jsonResponse = (description: string, schema: Schema, example?: unknown): Schema => ({ description, content: json(schema, example) });
const jsonBody = (description: string, schema: Schema, example: unknown): Schema => ({ description, required: true, content: json(schema, example) });

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

// -----------------------------------------------------------------------------------------
// Schemas

function schemas(): Record<string, Schema> {
  const handleFields: Record<string, Schema> = {
    handle: ref('Handle'),
    keyId: ref('KeyId'),
    K: withDescription('CompressedPoint', 'The ECIES ephemeral public key k·G.'),
    nonce: ref('Nonce'),
    ciphertextHash: withDescription('Bytes32', 'SHA-256 of ciphertext ‖ tag.'),
    owner: withDescription('Address', 'The owner who encrypted or registered the handle; only they can grant and revoke.'),
    kProof: ref('EphemeralKeyProof'),
    createdAt: { type: 'string', format: 'date-time', description: 'When the gateway first stored the handle (ISO 8601, UTC).' },
  };
  const ciphertext = {
    ...ref('Base64'),
    minLength: Math.ceil(TAG_LENGTH / 3) * 4,
    description: `AES-256-GCM ciphertext ‖ ${TAG_LENGTH}-byte tag, standard padded base64 (at least the tag; at most maxPlaintextBytes + ${TAG_LENGTH} bytes).`,
  };

  return {
    // --- primitives ---------------------------------------------------------------------
    KeyId: {
      type: 'string',
      pattern: KEY_ID_PATTERN,
      minLength: 1,
      maxLength: 64,
      description: 'Names a DKG key: 1-64 characters of a-z, 0-9, ".", "_", "-", starting with a letter or digit, no "..".',
      examples: [EX.key.keyId],
    },
    Address: {
      type: 'string',
      pattern: `^0x[0-9a-fA-F]{${ADDRESS_LENGTH * 2}}$`,
      description: '20-byte Ethereum address, 0x + 40 hex digits. All-lower or all-upper case as is; mixed case must carry a valid EIP-55 checksum. The gateway answers in lower case.',
      examples: [EX.owner],
    },
    Handle: { ...hexBytes(HANDLE_LENGTH, 'A handle: SHA-256 commitment to keyId, K, nonce, SHA-256(ciphertext) and owner (core/handle.ts).'), examples: [EX.handle] },
    Bytes32: hexBytes(32, '32 bytes (a SHA-256 digest), 0x + 64 lower-case hex digits.'),
    RequestId: hexBytes(REQUEST_ID_LENGTH, 'A random 16-byte request id, 0x + 32 hex digits. Each may be used once within its validity window.'),
    Nonce: hexBytes(NONCE_LENGTH, 'The 12-byte AES-GCM nonce, 0x + 24 hex digits.'),
    EphemeralKeyProof: {
      ...hexBytes(
        EPHEMERAL_PROOF_LENGTH,
        'Binds K to the handle: a Schnorr proof c ‖ s (64 bytes, 0x + 128 hex digits) that whoever made the handle knows the ECIES ephemeral secret k with K = k·G, its challenge binding keyId, K, nonce, SHA-256(ciphertext) and owner (core/sealed-handle.ts). The handle alone does not stop anyone from copying another handle\'s K, nonce and ciphertext into a new handle they own and asking the nodes for K·sk, which would decrypt the original; only whoever ran the encryption knows k, and the proof cannot be moved to another owner, key or ciphertext. The gateway and every node refuse a handle whose proof does not verify (403 `unauthorized`). The gateway makes it for POST /v1/encrypt; clients that encrypt locally make it themselves for POST /v1/handles.',
      ),
      examples: [EX.kProof],
    },
    CompressedPoint: {
      type: 'string',
      pattern: `^0x0[23][0-9a-f]{${(COMPRESSED_POINT_LENGTH - 1) * 2}}$`,
      description: 'A secp256k1 point, 33-byte compressed SEC1, 0x + 66 hex digits.',
    },
    Signature: {
      type: 'string',
      pattern: `^0x[0-9a-f]{${(SIGNATURE_LENGTH - 1) * 2}}(?:1b|1c)$`,
      description: 'Ethereum signature r ‖ s ‖ v, 65 bytes, 0x + 130 hex digits; low s, v ∈ {27, 28} (0x1b, 0x1c).',
    },
    Timestamp: { type: 'integer', minimum: 0, maximum: MAX_TIMESTAMP, description: 'Unix time in whole seconds (JSON integer).' },
    RsaSpki: {
      type: 'string',
      pattern: '^(?:[0-9a-f]{2})+$',
      minLength: 2,
      maxLength: MAX_SPKI_BYTES * 2,
      description:
        'DER SubjectPublicKeyInfo of the requester\'s RSA-OAEP key (2048..4096-bit modulus, exponent 65537, canonical DER), as hex WITHOUT a 0x prefix (spec). At most 1024 bytes. Nodes wrap their partials to it with RSA-OAEP (SHA-256, MGF1-SHA-256, empty label). In the EIP-712 message it is the `bytes` value of these DER bytes (wallet libraries take it as 0x-hex).',
    },
    Base64: { type: 'string', pattern: BASE64_PATTERN, contentEncoding: 'base64', description: 'Standard base64 with padding (RFC 4648 §4), no whitespace.' },
    NodeId: { type: 'integer', minimum: 1, maximum: MAX_PARTICIPANT_ID, description: 'A committee member id (its Shamir x-coordinate).' },
    ErrorCode: { type: 'string', enum: Object.keys(ERROR_CODES), description: 'Stable error code (core/errors.ts); clients switch on it, never on the message.' },

    // --- signed messages ----------------------------------------------------------------
    EncryptRequest: signedMessage(
      ENCRYPT_STRUCT,
      'The owner\'s signed request to have the gateway encrypt a plaintext to a key and store the result as a handle the owner owns.',
      {
        keyId: ref('KeyId'),
        owner: ref('Address'),
        plaintextHash: withDescription('Bytes32', 'SHA-256 of the plaintext bytes.'),
        notBefore: ref('Timestamp'),
        notAfter: withDescription('Timestamp', `Later than notBefore, at most ${MAX_VALIDITY_SECONDS} s after it.`),
        requestId: ref('RequestId'),
      },
      EX.encryptRequest,
    ),
    RegisterHandle: signedMessage(
      REGISTER_STRUCT,
      'The owner\'s signature over a handle they computed for a ciphertext they encrypted themselves.',
      { handle: ref('Handle'), keyId: ref('KeyId'), owner: ref('Address') },
      EX.registration,
    ),
    Grant: signedMessage(
      GRANT_STRUCT,
      'The owner lets `grantee` decrypt the handle until `notAfter`. A later grant (greater issuedAt) to the same grantee replaces an earlier one.',
      {
        handle: ref('Handle'),
        grantee: ref('Address'),
        notAfter: withDescription('Timestamp', 'The grant is void after this time (plus clock skew).'),
        issuedAt: withDescription('Timestamp', 'A revocation with revokedAt ≥ issuedAt cancels this grant.'),
      },
      EX.grant,
    ),
    Revocation: signedMessage(
      REVOCATION_STRUCT,
      'The owner cancels every grant to `grantee` on the handle issued at or before `revokedAt`.',
      { handle: ref('Handle'), grantee: ref('Address'), revokedAt: ref('Timestamp') },
      EX.revocation,
    ),
    Delegation: signedMessage(
      DELEGATION_STRUCT,
      'The requester (the owner, or a grantee) asks the nodes for their partial decryptions of the handle, wrapped to the requester\'s RSA key.',
      {
        handle: ref('Handle'),
        keyId: withDescription('KeyId', 'Must be the key the handle belongs to.'),
        requester: ref('Address'),
        rsaSpki: ref('RsaSpki'),
        notBefore: ref('Timestamp'),
        notAfter: withDescription('Timestamp', `Later than notBefore, at most ${MAX_VALIDITY_SECONDS} s after it.`),
        requestId: withDescription('RequestId', 'Nodes keep a replay cache: a request id is answered once.'),
      },
      EX.delegation,
    ),

    // --- request bodies -----------------------------------------------------------------
    EncryptBody: object(
      {
        request: ref('EncryptRequest'),
        plaintext: { ...ref('Base64'), description: 'The plaintext, standard padded base64; at most maxPlaintextBytes (default 1 MiB) decoded.' },
      },
      { description: 'POST /v1/encrypt body.', examples: [{ request: EX.encryptRequest, plaintext: EX.plaintext }] },
    ),
    RegisterHandleBody: object(
      {
        registration: ref('RegisterHandle'),
        K: withDescription('CompressedPoint', 'The ECIES ephemeral public key k·G (on the curve, not the identity).'),
        nonce: ref('Nonce'),
        ciphertext,
        kProof: withDescription('EphemeralKeyProof', 'The proof of k for K, made with the k the client encrypted with, over this handle\'s fields (owner = registration.owner).'),
      },
      {
        description: 'POST /v1/handles body: a ciphertext the owner encrypted client-side, with the signed registration of its handle and the proof that binds its K to it.',
        examples: [{ registration: EX.registration, K: EX.K, nonce: EX.nonce, ciphertext: EX.ciphertext, kProof: EX.kProof }],
      },
    ),
    DelegateBody: object(
      {
        delegation: ref('Delegation'),
        exclude: { type: 'array', items: ref('NodeId'), maxItems: MAX_EXCLUDE, description: 'Node ids not to ask (say, nodes whose partials failed verification last time).' },
      },
      { optional: ['exclude'], description: 'POST /v1/handles/{handle}/delegate body.', examples: [{ delegation: EX.delegation, exclude: [2] }] },
    ),

    // --- responses ----------------------------------------------------------------------
    Health: object(
      {
        status: { type: 'string', enum: ['ready', 'not_ready'], description: '"ready" when at least t committee members are connected.' },
        committeeId: { type: 'string', pattern: COMMITTEE_ID_PATTERN },
        t: { type: 'integer', minimum: 1, maximum: MAX_PARTICIPANT_ID },
        n: { type: 'integer', minimum: 1, maximum: MAX_PARTICIPANT_ID },
        nodesConnected: { type: 'array', items: ref('NodeId'), description: 'Ids of the members the gateway is connected to.' },
        keys: { type: 'array', items: ref('KeyId'), description: 'Key ids the gateway has verified and publishes.' },
      },
      { description: 'Gateway readiness.' },
    ),
    CommitteeMember: object(
      {
        id: ref('NodeId'),
        peerId: { type: 'string', pattern: '^12D3KooW[1-9A-HJ-NP-Za-km-z]{44}$', description: 'libp2p Ed25519 peer id.' },
        publicKey: hexBytes(32, 'The member\'s raw Ed25519 public key, 0x + 64 hex digits; it signs the DKG result.'),
      },
      { description: 'A committee member, from the committee file.' },
    ),
    PublishedKey: object(
      {
        keyId: ref('KeyId'),
        publicKey: withDescription('CompressedPoint', 'The group public key PK = sk·G; encrypt to this.'),
        publicKeySpki: {
          type: 'string',
          pattern: `^${SECP256K1_SPKI_PREFIX}04[0-9a-f]{128}$`,
          description: 'The group public key as DER SubjectPublicKeyInfo (id-ecPublicKey, secp256k1, uncompressed point), hex WITHOUT 0x.',
        },
        t: { type: 'integer', minimum: 1, maximum: MAX_PARTICIPANT_ID, description: 'Threshold: partials of any t members decrypt.' },
        n: { type: 'integer', minimum: 1, maximum: MAX_PARTICIPANT_ID },
        committeeId: { type: 'string', pattern: COMMITTEE_ID_PATTERN },
        verificationShares: {
          type: 'object',
          propertyNames: { pattern: '^[1-9][0-9]{0,4}$' },
          additionalProperties: ref('CompressedPoint'),
          description: 'Member id (decimal) → Y_i = share_i·G, for every member; clients check each partial\'s DLEQ proof against it.',
        },
        qualified: { type: 'array', items: ref('NodeId'), description: 'Dealers whose contributions form the key.' },
        sessionId: hexBytes(SESSION_ID_LENGTH, 'The DKG session id.'),
        transcriptHash: hexBytes(32, 'Hash of the DKG transcript (covered by the members\' signatures).'),
        signatures: {
          type: 'object',
          propertyNames: { pattern: '^[1-9][0-9]{0,4}$' },
          additionalProperties: hexBytes(64, 'Ed25519 signature.'),
          description: 'Member id → Ed25519 signature (RFC 8032, strict) over the domain-separated SHA-256 digest of the whole result: key id, committee id, session id, t, n, member ids and `members[].publicKey`, qualified, group key, every verification share, transcript hash (core/dkg/context.ts dkgResultDigest). At least t verify; the gateway publishes a key only when t members hold the same result.',
        },
        members: { type: 'array', items: ref('CommitteeMember') },
      },
      { description: 'A key the committee holds: the public DKG result, verified by the gateway, and the committee it belongs to. Clients can verify it themselves.', examples: [EX.key] },
    ),
    KeyList: object({ keys: { type: 'array', items: ref('PublishedKey') } }),
    HandleStored: object(
      { ...handleFields, created: { type: 'boolean', description: 'false when the gateway already held this handle (it is left unchanged).' } },
      { description: 'A stored handle.', examples: [{ ...EXAMPLE_HANDLE_FIELDS, created: true }] },
    ),
    HandleRecord: object(
      { ...handleFields, ciphertext: { ...ciphertext, description: 'ciphertext ‖ tag, standard padded base64.' } },
      { description: 'A handle with its ciphertext. Handles and ciphertexts are public: only t nodes together can decrypt.' },
    ),
    ListedGrant: object(
      {
        handle: ref('Handle'),
        grantee: ref('Address'),
        notAfter: ref('Timestamp'),
        issuedAt: ref('Timestamp'),
        signature: ref('Signature'),
        status: { type: 'string', enum: ['active', 'revoked', 'expired'], description: 'As the gateway sees it now; nodes decide on their own. Signatures are not checked again here: a grant stored in signature format version 1 is listed but refused when used (`legacy_signature`).' },
      },
      { description: 'A stored grant (the signed Grant fields) with its current status.' },
    ),
    GrantList: object(
      { handle: ref('Handle'), grants: { type: 'array', items: ref('ListedGrant'), description: 'The latest grant per grantee, sorted by grantee, with its status (revoked grants are listed too; expired ones are dropped from the store).' } },
      { description: 'Grants the gateway holds for a handle.' },
    ),
    GrantStored: object(
      { grant: ref('Grant'), stored: { type: 'boolean', description: 'false when the gateway already held a grant to this grantee issued at the same time or later.' } },
      { description: 'The outcome of storing a grant.' },
    ),
    NodeFailure: object(
      {
        nodeId: ref('NodeId'),
        code: ref('ErrorCode'),
        message: { type: 'string' },
        retryAfterSeconds: { type: 'integer', minimum: 0, description: 'With `rate_limited`: when this node expects to answer the requester again.' },
      },
      { description: 'A node that refused or failed to answer, with its error code (`timeout`, `unavailable` for transport failures).', optional: ['retryAfterSeconds'] },
    ),
    RevocationResult: object(
      {
        revocation: ref('Revocation'),
        acknowledgedBy: { type: 'array', items: ref('NodeId'), description: 'Nodes that stored the revocation (or already held it), ascending.' },
        needed: { type: 'integer', minimum: 1, description: 'n − t + 1: with that many nodes holding it, fewer than t nodes can still honour the grant.' },
        effective: { type: 'boolean', description: 'acknowledgedBy.length ≥ needed (HTTP 200); otherwise HTTP 202 and the caller should retry.' },
        failures: { type: 'array', items: ref('NodeFailure') },
      },
      { description: 'The outcome of broadcasting a revocation to the committee.' },
    ),
    PartialAnswer: object(
      {
        nodeId: ref('NodeId'),
        wrapped: {
          type: 'string',
          pattern: `^0x(?:[0-9a-f]{2}){1,${MAX_RSA_CIPHERTEXT_BYTES}}$`,
          description: 'RSA-OAEP (SHA-256) encryption, to the delegation\'s rsaSpki, of the 33-byte compressed partial P_i = share_i·K.',
        },
        proof: hexBytes(DLEQ_PROOF_LENGTH, 'DLEQ (Chaum-Pedersen) proof c ‖ s that log_G(Y_i) = log_K(P_i), bound to keyId, nodeId, K and requestId.'),
      },
      { description: 'One node\'s partial decryption (core/node-wire.ts partialAnswerToJson).' },
    ),
    DelegationResult: object(
      {
        ...handleFields,
        ciphertext: { ...ciphertext, description: 'ciphertext ‖ tag, standard padded base64.' },
        t: { type: 'integer', minimum: 1, maximum: MAX_PARTICIPANT_ID, description: 'The key\'s threshold; exactly t partials follow.' },
        requestId: ref('RequestId'),
        partials: { type: 'array', items: ref('PartialAnswer'), description: 'Exactly t partials from distinct nodes. The client unwraps each, verifies its proof against the key\'s verification share, combines them (Lagrange at 0) into K·sk and decrypts.' },
        failures: { type: 'array', items: ref('NodeFailure'), description: 'Nodes that refused or failed along the way (the gateway asked others instead).' },
      },
      { description: 'Everything a requester needs to decrypt locally. The gateway never sees the plaintext or any unwrapped partial.' },
    ),
    Error: object(
      {
        error: object(
          {
            code: ref('ErrorCode'),
            message: { type: 'string', description: 'Human-readable; never quotes secret material.' },
            details: { type: 'object', description: 'Public context, e.g. `retryAfterSeconds` (rate_limited) or `answered`, `needed`, `failures` (insufficient_partials).' },
          },
          { optional: ['details'] },
        ),
      },
      {
        description: 'Every error: `{ "error": { "code", "message", "details"? } }`. The HTTP status follows from the code: ' +
          Object.entries(ERROR_CODES).map(([c, s]) => `${c} ${s}`).join(', ') + '.',
        examples: [{ error: { code: 'not_found', message: EXAMPLE_MESSAGES.not_found } }],
      },
    ),
  };
}

// -----------------------------------------------------------------------------------------
// Paths

function paths(): Record<string, Schema> {
  const handleParam = { $ref: '#/components/parameters/handle' };
  const keyIdParam = { $ref: '#/components/parameters/keyId' };
  const granteeParam = { $ref: '#/components/parameters/grantee' };
  const storedHandle = (verb: string): Record<string, Schema> => ({
    '201': jsonResponse(`${verb}: the handle is new.`, ref('HandleStored'), { ...EXAMPLE_HANDLE_FIELDS, created: true }),
    '200': jsonResponse('The gateway already held this handle; it is returned unchanged (`created: false`).', ref('HandleStored'), { ...EXAMPLE_HANDLE_FIELDS, created: false }),
  });

  return {
    '/openapi.json': {
      get: {
        operationId: 'getOpenApiDocument',
        tags: ['meta'],
        summary: 'This OpenAPI document',
        responses: { '200': jsonResponse('The OpenAPI 3.1 document of the gateway API.', { type: 'object' }) },
      },
    },
    '/health': {
      get: {
        operationId: 'getHealth',
        tags: ['meta'],
        summary: 'Readiness: at least t committee members connected',
        responses: {
          '200': jsonResponse('Ready.', ref('Health'), { status: 'ready', committeeId: EX.key.committeeId, t: 2, n: 3, nodesConnected: [1, 2, 3], keys: [EX.key.keyId] }),
          '503': jsonResponse('Not ready: fewer than t members connected. The body is a Health object, not an Error.', ref('Health'), {
            status: 'not_ready',
            committeeId: EX.key.committeeId,
            t: 2,
            n: 3,
            nodesConnected: [2],
            keys: [EX.key.keyId],
          }),
        },
      },
    },
    '/metrics': {
      get: {
        operationId: 'getMetrics',
        tags: ['meta'],
        summary: 'Prometheus metrics',
        description: 'Charged to the client address\'s token bucket like the API: scrape from an address of its own, or at most a few times a second.',
        responses: {
          '200': {
            description: 'Prometheus text exposition format (`text/plain; version=0.0.4; charset=utf-8`).',
            content: {
              'text/plain': {
                schema: { type: 'string' },
                example: '# HELP tkms_gateway_delegations_total Delegation requests by outcome\n# TYPE tkms_gateway_delegations_total counter\ntkms_gateway_delegations_total{outcome="ok"} 42\n',
              },
            },
          },
          ...errorResponses({ 429: ['rate_limited'] }, { 429: IP_RATE_NOTE }),
        },
      },
    },
    '/v1/keys': {
      get: {
        operationId: 'listKeys',
        tags: ['keys'],
        summary: 'List the keys the committee holds',
        description: 'Asks the nodes for their public DKG results (at most once a second) and lists those that verify and that at least t members hold identically (a key id for which members hold different valid results of one session is withdrawn; a valid result of another session for a published key is ignored), sorted by key id.',
        responses: { '200': jsonResponse('The published keys.', ref('KeyList'), { keys: [EX.key] }), ...errorResponses({ 429: ['rate_limited'], 500: ['internal'] }, { 429: IP_RATE_NOTE }) },
      },
    },
    '/v1/keys/{keyId}': {
      parameters: [keyIdParam],
      get: {
        operationId: 'getKey',
        tags: ['keys'],
        summary: 'One key: group public key, verification shares, DKG result signatures',
        responses: {
          '200': jsonResponse('The key.', ref('PublishedKey'), EX.key),
          ...errorResponses({ 400: ['bad_key_id'], 404: ['unknown_key'], 429: ['rate_limited'], 500: ['internal'] }, { 429: IP_RATE_NOTE }),
        },
      },
    },
    '/v1/encrypt': {
      post: {
        operationId: 'encrypt',
        tags: ['handles'],
        summary: 'Encrypt a plaintext to a key and store it as a handle',
        description:
          'The gateway checks the owner\'s signed EncryptRequest (window, SHA-256 of the plaintext, signature, unused request id), ECIES-encrypts the plaintext to the key, proves knowledge of the ephemeral secret for the new handle (`kProof`) and stores the ciphertext under its handle, owned by `request.owner`. The gateway sees this plaintext; encrypt client-side and use POST /v1/handles to keep it from the gateway. Rate limited per owner.',
        requestBody: jsonBody('The signed request and the plaintext.', ref('EncryptBody'), { request: EX.encryptRequest, plaintext: EX.plaintext }),
        responses: {
          ...storedHandle('Encrypted and stored'),
          ...errorResponses(
            {
              400: [...MALFORMED, 'bad_key_id'],
              403: ['unauthorized', 'legacy_signature', 'expired'],
              404: ['unknown_key'],
              409: ['replayed'],
              413: ['payload_too_large'],
              429: ['rate_limited'],
              500: ['internal'],
              503: ['unavailable'],
            },
            {
              400: `Also a validity window longer than ${MAX_VALIDITY_SECONDS} s.`,
              403: 'Bad signature, plaintextHash mismatch, or outside the validity window.',
              413: BODY_LIMIT_NOTE,
              429: `${RATE_LIMIT_NOTE} ${HANDLE_QUOTA_NOTE}`,
              503: `${BODY_BUDGET_NOTE} ${HANDLE_STORE_NOTE}`,
            },
          ),
        },
      },
    },
    '/v1/handles': {
      post: {
        operationId: 'registerHandle',
        tags: ['handles'],
        summary: 'Store a ciphertext encrypted client-side, with the owner\'s signed registration',
        description:
          'The gateway recomputes the handle from keyId, K, nonce, SHA-256(ciphertext) and owner, checks that `kProof` proves knowledge of k for K over exactly these fields, checks the owner\'s RegisterHandle signature and that the key exists, and stores the ciphertext. Idempotent. Rate limited per owner.',
        requestBody: jsonBody('Registration, ECIES envelope, ciphertext and the proof binding K to the handle.', ref('RegisterHandleBody'), {
          registration: EX.registration,
          K: EX.K,
          nonce: EX.nonce,
          ciphertext: EX.ciphertext,
          kProof: EX.kProof,
        }),
        responses: {
          ...storedHandle('Registered and stored'),
          ...errorResponses(
            {
              400: [...MALFORMED, 'bad_point', 'bad_key_id'],
              403: ['unauthorized', 'legacy_signature'],
              404: ['unknown_key'],
              413: ['payload_too_large'],
              429: ['rate_limited'],
              500: ['internal'],
              503: ['unavailable'],
            },
            {
              403: 'The handle does not commit to these fields, `kProof` does not verify for them, or the registration is not signed by its owner.',
              413: BODY_LIMIT_NOTE,
              429: `${RATE_LIMIT_NOTE} ${HANDLE_QUOTA_NOTE}`,
              503: `${BODY_BUDGET_NOTE} ${HANDLE_STORE_NOTE}`,
            },
          ),
        },
      },
    },
    '/v1/handles/{handle}': {
      parameters: [handleParam],
      get: {
        operationId: 'getHandle',
        tags: ['handles'],
        summary: 'A handle\'s metadata and ciphertext',
        responses: {
          '200': jsonResponse('The handle.', ref('HandleRecord'), { ...EXAMPLE_HANDLE_FIELDS, ciphertext: EX.ciphertext }),
          ...errorResponses(
            { 400: ['bad_hex', 'bad_length'], 404: ['not_found'], 429: ['rate_limited'], 500: ['internal'], 503: ['unavailable'] },
            { 429: `${IP_RATE_NOTE} Also too many unread answer bytes for the address (config \`httpLimits.maxResponseBytesInFlightPerIp\`).`, 503: RESPONSE_BUDGET_NOTE },
          ),
        },
      },
    },
    '/v1/handles/{handle}/grants': {
      parameters: [handleParam],
      get: {
        operationId: 'listGrants',
        tags: ['grants'],
        summary: 'The grants the gateway holds for a handle',
        responses: {
          '200': jsonResponse('The grants.', ref('GrantList'), { handle: EX.handle, grants: [{ ...EX.grant, status: 'active' }] }),
          ...errorResponses(
            { 400: ['bad_hex', 'bad_length'], 404: ['not_found'], 429: ['rate_limited'], 500: ['internal'], 503: ['unavailable'] },
            { 429: `${IP_RATE_NOTE} Also too many unread answer bytes for the address (config \`httpLimits.maxResponseBytesInFlightPerIp\`; a listing is charged 400 bytes a grant plus 64 KiB).`, 503: RESPONSE_BUDGET_NOTE },
          ),
        },
      },
      post: {
        operationId: 'putGrant',
        tags: ['grants'],
        summary: 'Store an owner-signed grant',
        description:
          'The body is the signed Grant itself. `grant.handle` must be the handle in the URL and the grant must be signed by the handle\'s owner. A grant valid for longer than `maxGrantLifetimeSeconds` (notAfter − issuedAt) or issued later than now + clock skew is refused (`bad_request`); nodes refuse those too. The gateway keeps the latest grant (greatest issuedAt) per grantee until it expires (notAfter + clock skew) and attaches it to the grantee\'s delegation requests; nodes verify it again. It keeps at most `grants.perOwner` live grants per handle owner (more are refused with `rate_limited` until some expire) and `grants.max` in all: when full, an owner holding fewer than the owner holding the most still gets in (that owner\'s oldest grant is dropped), any other gets `unavailable`. Rate limited per handle owner.',
        requestBody: jsonBody('The signed grant.', ref('Grant'), EX.grant),
        responses: {
          '201': jsonResponse('Stored.', ref('GrantStored'), { grant: EX.grant, stored: true }),
          '200': jsonResponse('Valid, but the gateway already holds a grant to this grantee issued at the same time or later; not stored.', ref('GrantStored'), { grant: EX.grant, stored: false }),
          ...errorResponses(
            { 400: MALFORMED, 403: ['unauthorized', 'legacy_signature'], 404: ['not_found'], 413: ['payload_too_large'], 429: ['rate_limited'], 500: ['internal'], 503: ['unavailable'] },
            { 400: '`bad_request` also when grant.handle differs from the URL.', 403: 'Not signed by the handle\'s owner (for this deployment).', 429: `${RATE_LIMIT_NOTE} Also past the owner\'s live grants (config \`grants.perOwner\`), without \`retryAfterSeconds\`.`, 503: `${BODY_BUDGET_NOTE} Or: ${STORE_FULL_NOTE('grants')} Or \`details.reason\` \`disk_reserve\`: free disk is under half of \`handles.minFreeDiskBytes\`; the rest is kept for revocations.` },
          ),
        },
      },
    },
    '/v1/handles/{handle}/grants/{grantee}': {
      parameters: [handleParam, granteeParam],
      delete: {
        operationId: 'revokeGrant',
        tags: ['grants'],
        summary: 'Revoke a grant: store an owner-signed revocation and push it to every node',
        description:
          'The body (required, even though this is DELETE) is the signed Revocation; its handle and grantee must match the URL. The gateway stores it, then sends it to every committee member. The revocation is effective once n − t + 1 nodes hold it: then fewer than t nodes could still answer for the grant. Nodes also gossip revocations among themselves, so a 202 usually becomes effective later; re-sending the same revocation is safe. A node refuses it past the owner\'s quota of live revocations (`rate_limited`); this shows in `failures`. A full store (a node\'s or the gateway\'s) never refuses a revocation: it folds an older one into a "revoked up to T" watermark that keeps it in force (docs/operators.md, "Revocations"). The gateway keeps each revocation until revokedAt + `maxGrantLifetimeSeconds` + clock skew, within the same per-owner bound (`revocations.perOwner`: `rate_limited`), and sends nothing to the nodes when it refuses. Rate limited per handle owner.',
        requestBody: jsonBody('The signed revocation.', ref('Revocation'), EX.revocation),
        responses: {
          '200': jsonResponse('Effective: at least n − t + 1 nodes acknowledged.', ref('RevocationResult'), {
            revocation: EX.revocation,
            acknowledgedBy: [1, 2, 3],
            needed: 2,
            effective: true,
            failures: [],
          }),
          '202': jsonResponse('Stored by the gateway but acknowledged by fewer than n − t + 1 nodes: not yet effective. Retry.', ref('RevocationResult'), {
            revocation: EX.revocation,
            acknowledgedBy: [1],
            needed: 2,
            effective: false,
            failures: [
              { nodeId: 2, code: 'timeout', message: 'no answer within 3000 ms' },
              { nodeId: 3, code: 'unavailable', message: 'connection refused' },
            ],
          }),
          ...errorResponses(
            { 400: MALFORMED, 403: ['unauthorized', 'legacy_signature'], 404: ['not_found'], 413: ['payload_too_large'], 429: ['rate_limited'], 500: ['internal'], 503: ['unavailable'] },
            { 400: '`bad_request` also when the revocation\'s handle or grantee differs from the URL.', 403: 'Not signed by the handle\'s owner (for this deployment).', 429: `${RATE_LIMIT_NOTE} Also past the owner\'s live revocations at the gateway (config \`revocations.perOwner\`), without \`retryAfterSeconds\`.`, 503: BODY_BUDGET_NOTE },
          ),
        },
      },
    },
    '/v1/handles/{handle}/delegate': {
      parameters: [handleParam],
      post: {
        operationId: 'delegate',
        tags: ['decryption'],
        summary: 'Get t partial decryptions of a handle, wrapped to the requester\'s RSA key',
        description:
          'The requester signs a Delegation for the handle. The gateway checks the chain owner → grant → requester (signature, validity window, key id, handle commitment, K binding, grant, revocations it knows of), attaches the stored grant, and asks exactly t nodes for partials (the fastest healthy ones), replacing nodes that fail and hedging to one more when an answer is late for that node (its mean latency plus four deviations, at most `hedgeDelayMs`). Every node checks the whole chain again, plus its own revocations and replay cache. When fewer than t nodes answer and they all refused for one reason (unauthorized, legacy_signature, expired, replayed, revoked, unknown_key, bad_rsa_key, rate_limited), that error is returned; otherwise `insufficient_partials`. A grant the gateway stored in signature format version 1 answers `legacy_signature`: the owner grants again. Rate limited per requester, at the gateway and at every node; when the nodes refuse for their limits the answer is 429 with `details.retryAfterSeconds` (when enough of them take requests again) and a `Retry-After` header.',
        requestBody: jsonBody('The signed delegation and, optionally, nodes to avoid.', ref('DelegateBody'), { delegation: EX.delegation }),
        responses: {
          '200': jsonResponse('t wrapped partials with their proofs, and the ciphertext.', ref('DelegationResult'), {
            ...EXAMPLE_HANDLE_FIELDS,
            ciphertext: EX.ciphertext,
            t: 2,
            requestId: EX.delegation.requestId,
            partials: EX.partials,
            failures: [],
          }),
          ...errorResponses(
            {
              400: [...MALFORMED, 'bad_key_id', 'bad_rsa_key'],
              403: ['unauthorized', 'legacy_signature', 'expired', 'revoked'],
              404: ['not_found', 'unknown_key'],
              409: ['replayed'],
              413: ['payload_too_large'],
              429: ['rate_limited'],
              503: ['insufficient_partials', 'unavailable'],
              500: ['internal'],
            },
            {
              400: `Also a validity window longer than ${MAX_VALIDITY_SECONDS} s, an \`exclude\` that is not an array of at most ${MAX_EXCLUDE} node ids, or \`delegation.handle\` differing from the URL; \`bad_rsa_key\` when the nodes reject rsaSpki.`,
              403: 'No valid grant, a bad signature, a key id or handle mismatch, a stored kProof that does not verify, an expired window or grant, or a revoked grant.',
              409: 'The nodes have already answered this requestId.',
              429: `${RATE_LIMIT_NOTE} Also when the nodes refused for their own per-requester limits; then \`details\` has \`answered\`, \`needed\` and the per-node \`failures\` too.`,
              503: `Fewer than t nodes answered; \`details\` has \`answered\`, \`needed\` and the per-node \`failures\`. \`unavailable\`: ${BODY_BUDGET_NOTE}`,
            },
          ),
        },
      },
    },
  };
}

function parameters(): Record<string, Schema> {
  return {
    keyId: { name: 'keyId', in: 'path', required: true, description: 'The key id.', schema: ref('KeyId'), example: EX.key.keyId },
    handle: { name: 'handle', in: 'path', required: true, description: 'The handle, 0x + 64 hex digits.', schema: ref('Handle'), example: EX.handle },
    grantee: { name: 'grantee', in: 'path', required: true, description: 'The grantee\'s address.', schema: ref('Address'), example: EX.grantee },
  };
}

const DESCRIPTION = `HTTP JSON API of the tkms gateway: threshold (t-of-n) secp256k1 ECIES encryption, with decryption delegated through the nodes of a committee.

**Trust.** The gateway is not trusted for confidentiality. It checks every request as a node will (so bad requests fail early), but each node re-checks the requester's signed delegation, the handle commitment and the proof binding its K to it (\`kProof\`), the owner's grant and the revocations it knows of before it computes a partial. Clients verify each partial's DLEQ proof against the key's verification shares.

**Authentication.** There are no API keys or sessions: every state-changing request carries an EIP-712 signature by an Ethereum account. Domain \`${EIP712_DOMAIN_TEXT}\` (type \`${EIP712_DOMAIN_TYPE}\`). ${EIP712_DEPLOYMENT_NOTE} Struct types: ${[ENCRYPT_STRUCT, REGISTER_STRUCT, GRANT_STRUCT, REVOCATION_STRUCT, DELEGATION_STRUCT].map((s) => `\`${encodeType(s)}\``).join('; ')}.

**Encodings.** Bytes are 0x-prefixed lower-case hex (addresses may carry an EIP-55 checksum; the schemas' patterns give the canonical form the gateway answers in), except \`rsaSpki\` and \`publicKeySpki\`, which are hex without 0x. Plaintexts and ciphertexts are standard padded base64. Timestamps in signed messages are unix seconds (JSON integers); \`createdAt\` is ISO 8601. Request bodies must be JSON objects with exactly the documented fields.

**Errors.** Every error is \`{ "error": { "code", "message", "details"? } }\`; the status follows from the code. An unknown path answers 404 \`not_found\`; a known path with another method answers 400 \`bad_request\`.`;

function build(): Record<string, unknown> {
  return {
    openapi: '3.1.0',
    info: {
      title: 'tkms gateway API',
      version: '1.0.0',
      summary: 'Threshold key management: encrypt to a committee key, grant, revoke, and delegate decryption.',
      description: DESCRIPTION,
    },
    tags: [
      { name: 'meta', description: 'The document itself, health and metrics.' },
      { name: 'keys', description: 'Keys the committee generated by DKG.' },
      { name: 'handles', description: 'Ciphertexts stored under handles.' },
      { name: 'grants', description: 'Owner-signed grants and revocations.' },
      { name: 'decryption', description: 'Delegated threshold decryption.' },
    ],
    security: [],
    paths: paths(),
    components: { schemas: schemas(), parameters: parameters() },
  };
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

let cached: Record<string, unknown> | undefined;

/** The gateway's OpenAPI 3.1 document, built on first use and shared (frozen) afterwards. */
export function buildOpenApiDocument(): Record<string, unknown> {
  cached ??= deepFreeze(build());
  return cached;
}
