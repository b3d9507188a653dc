import { MESSAGE_EXAMPLES, type ErrorCode } from '../core/index.ts';

/**
 * One consistent, real data set of examples (a 2-of-3 devnet key "demo", owner = Hardhat
 * account #0, grantee = account #1, "hello, tkms" sealed to the key with core's sealToHandle).
 * The signatures, the handle commitment, the K-binding proof (kProof) and the DKG transcript
 * signatures all verify, and the two partials (wrapped to the delegation's RSA key) carry
 * valid DLEQ proofs for this K and requestId and combine to decrypt the ciphertext.
 * test/unit/gateway-openapi.test.ts checks all of that; the route declarations use these as
 * their schema examples, so the OpenAPI document and docs/api.md show them.
 */
export const EXAMPLE_CREATED_AT = '2026-01-01T00:00:05.123Z';
export const EX = {
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
    epoch: 0,
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
  encryptRequest: MESSAGE_EXAMPLES.encryptRequest,
  registration: MESSAGE_EXAMPLES.registerHandle,
  grant: MESSAGE_EXAMPLES.grant,
  revocation: MESSAGE_EXAMPLES.revocation,
  delegation: MESSAGE_EXAMPLES.delegation,
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

/**
 * Two signed changes of the managed key "demo" (the example DKG key), signed by its admin (Hardhat
 * account #0) for the example committee: its create, then a disable whose `previous` is the create's
 * digest. test/unit/gateway-key-registry.test.ts applies them to a KeyBook and checks the views below.
 */
const KEY_ADMIN = '0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266';
const CREATE_DIGEST = '0xac3330787728d338ecec3fe4c31bd65d0b730aa74832ff4fa9abcda6428542b6';
export const EXAMPLE_KEY_CHANGES = {
  create: {
    keyId: 'demo',
    sequence: 1,
    previous: `0x${'00'.repeat(32)}`,
    action: 'create',
    body: '{"origin":{"type":"dkg"},"description":"Payroll exports","admins":["0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266"],"aliases":["alias/payroll"],"tags":{"team":"finance"}}',
    issuedAt: 1767225600,
    admin: KEY_ADMIN,
    signature: '0x9efd7ab03357dfb729834e4ff46cfe4512c22c302de56743977a7b3fa4cd8fd0475702e4fdd50b30a6fcef278f17b02a31c2c9db7bf582eb67efb87d38f950a01b',
  },
  disable: {
    keyId: 'demo',
    sequence: 2,
    previous: CREATE_DIGEST,
    action: 'disable',
    body: '{}',
    issuedAt: 1767229200,
    admin: KEY_ADMIN,
    signature: '0xfb58427f825d525721bde6a0a507feb3f3ae62fdd3c4b076c10121d5812857b24dd7f71d6b2fcd0569576392e646239b35d771d3698592ddd06effc5a3cd7ed11c',
  },
} as const;

/** "demo" as the gateway describes it after each change (version 1's material is the example DKG key). */
const createdView = {
  keyId: 'demo',
  spec: 'ECC_SECG_P256K1',
  usage: 'ENCRYPT_DECRYPT',
  origin: { type: 'dkg' },
  description: 'Payroll exports',
  aliases: ['alias/payroll'],
  tags: { team: 'finance' },
  admins: [KEY_ADMIN],
  policy: {},
  rotationPeriodDays: null,
  state: 'Enabled',
  deletionDate: null,
  versions: [{ version: 1, materialKeyId: 'demo', createdAt: 1767225600, deletionDate: null, state: 'Enabled', publicKey: EX.key.publicKey }],
  currentVersion: 1,
  createdAt: 1767225600,
  creator: KEY_ADMIN,
  sequence: 1,
  head: CREATE_DIGEST,
};
export const EXAMPLE_KEY_VIEWS = {
  created: createdView,
  disabled: { ...createdView, state: 'Disabled', sequence: 2, head: '0x84e4fb42087aa5fc821cd1041803fb45679d78183d8ccae3ee888fa49ffb1847' },
};

/** The devnet committee file at epoch 0: the key's members, on loopback. */
export const EXAMPLE_COMMITTEE = {
  committeeId: EX.key.committeeId,
  epoch: 0,
  t: EX.key.t,
  members: EX.key.members.map((m) => ({ id: m.id, peerId: m.peerId, multiaddrs: [`/ip4/127.0.0.1/tcp/${9000 + m.id}`] })),
};

export const EXAMPLE_HANDLE_FIELDS = {
  handle: EX.handle,
  keyId: EX.key.keyId,
  K: EX.K,
  nonce: EX.nonce,
  ciphertextHash: EX.ciphertextHash,
  owner: EX.owner,
  kProof: EX.kProof,
  createdAt: EXAMPLE_CREATED_AT,
};

export const EXAMPLE_MESSAGES: Partial<Record<ErrorCode, string>> = {
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

export const EXAMPLE_DETAILS: Partial<Record<ErrorCode, Record<string, unknown>>> = {
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

