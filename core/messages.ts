import type { Static } from 'typebox';
import { COMPRESSED_POINT_LENGTH } from './curve.ts';
import { NONCE_LENGTH } from './ecies.ts';
import { SIGNATURE_LENGTH, type Eip712Struct, type Eip712Value } from './eip712.ts';
import { TkmsError } from './errors.ts';
import { CIPHERTEXT_HASH_LENGTH, HANDLE_LENGTH } from './handle.ts';
import { REQUEST_ID_LENGTH } from './identifiers.ts';
import { MAX_SPKI_BYTES } from './rsa.ts';
import { addressField, hexBytesField, hexBytesUpToField, keyIdField, messageCodec, unixSecondsField, type DecodedFields, type WireFields, type MessageCodec, type MessageDoc } from './schema.ts';
import { EPHEMERAL_PROOF_LENGTH } from './sealed-handle.ts';

/**
 * Every signed message of tkms, declared once. From each declaration come its TypeScript type,
 * its compiled validator and JSON codec (wire hex ↔ bytes), its EIP-712 struct and typed-data
 * message, and the JSON Schema the gateway's routes and OpenAPI document are built from.
 *
 * The examples are one consistent, verified data set (gateway/api-examples.ts documents how it was
 * made: a 2-of-3 devnet key "demo" of committee "devnet", owner Hardhat account #0, grantee
 * account #1): every signature verifies, so an example is also a working request.
 */

const EX = {
  keyId: 'demo',
  handle: '0x3d2d9b4303fce8d972dc9d23e4c81c9034a0e2e8f2bc959d3aa16a4d44543302',
  K: '0x03d5d775ecc71deb332f6e74fcab23c6eb05a15a794112d80dd42668ee4ee3acea',
  nonce: '0xabe92201ab0eb11592812f01',
  ciphertextHash: '0x78cde0abd0cce51c886c675f3a34e164af29218484273517107e36834d93ee73',
  kProof: '0xb4d1ba1cb1501885bd9c3cdcf5d8d15fca0c8d0c0bb94d1179651911b415d9a474d2b6a7c11acf1d5a6a0ba9f2ab0c0390e66b4d1aa3325a9722410f33692b18',
  owner: '0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266',
  grantee: '0x70997970c51812dc3a010c7d01b50e0d17dc79c8',
} as const;

/** The verified example messages, one per declaration (wire JSON). */
export const MESSAGE_EXAMPLES = {
  handleDescriptor: { keyId: EX.keyId, K: EX.K, nonce: EX.nonce, ciphertextHash: EX.ciphertextHash, owner: EX.owner, kProof: EX.kProof },
  encryptRequest: {
    keyId: EX.keyId,
    owner: EX.owner,
    plaintextHash: '0x3170fe9ba13901926ce6770eecfec139f9a49d8a13ad7648cf597c0345081391',
    notBefore: 1767225600,
    notAfter: 1767225900,
    requestId: '0x0f1e2d3c4b5a69788796a5b4c3d2e1f0',
    signature: '0x0818a02659eec8516accbe32ee55cf3370c1b45612167d5222e7d04482d8fc5965a1674504e06947ca5fa1f8a26fc5cb2d1a6d6b4afe616bf13b326997b9c0ca1b',
  },
  registerHandle: {
    handle: EX.handle,
    keyId: EX.keyId,
    owner: EX.owner,
    signature: '0x81f74ac90e07377dd7ab951b5f901687f6503536614686d3d51c531c219cc3b1554f05b9dc990f279d785dc9b3c72ad0c59e7851a3d4b0a75f9a9676dc46cf271b',
  },
  grant: {
    handle: EX.handle,
    grantee: EX.grantee,
    notAfter: 1769817600,
    issuedAt: 1767225660,
    signature: '0xe65cb544a139cb8a77265b6d30427dbc03169c6bab630d64f2707ba16c251212542dcec08a48c92f11f26c470dc58fc5b35dee52ddc3ec98fb342c0fd827a0511b',
  },
  revocation: {
    handle: EX.handle,
    grantee: EX.grantee,
    revokedAt: 1767232800,
    signature: '0xb9cac648a1a9e1bfe6baea4674ef8d043b2608f2033de3f9d6b9f6792b43f3c67c466e14b862d8c6f05ed39aebc7f516d050cbf9d7113773fc87cb16704b74401b',
  },
  delegation: {
    handle: EX.handle,
    keyId: EX.keyId,
    requester: EX.grantee,
    rsaSpki:
      '30820122300d06092a864886f70d01010105000382010f003082010a0282010100d0dee7429571780b6603ab4d1aed5b71d1c43d52f23402f937a3cf7ff48fc22304b6d1ca533cf962423837cd4749b692f0da2fff8756ce5386ac4113d5a182df30e0e9c363b428e71139668a2ac0d8deb86aacf5b783ea5399eb090197e07d1b3cb87ca6b4cf6e47925e509e9fdef8d6b95fa3c84ea7a8a5d966ab46a5b5c87b8b7aecdfc32f5f54485422780a6bd0ba2a8042faa192d4e616d7bd5e76b56785d454d93f1175ca0c80e171ea94959fd8e261459cfa53a02067d13eb30429a67731a9e5c964309ab62b31028392a74c74f9ed1da60855af7bebff65b365ba6f22c98ac5e3f2a49283e14ffece293c7da14d5f20bc83a126c358bbbe4b502c033b0203010001',
    notBefore: 1767225720,
    notAfter: 1767226020,
    requestId: '0xa1b2c3d4e5f60718293a4b5c6d7e8f90',
    signature: '0xa276e932233adec7daf77999448c79f868ea06fd35b00e15c516c816ddc83f903471761484a9614fdd96cf61fa2e43a0008f9d698f05f934750cd5d6b8a768c81b',
  },
} as const;

// ---------------------------------------------------------------------------------------
// Fields that recur.

const handle = (description = 'The handle: SHA-256 commitment to key id, K, nonce, ciphertext hash and owner (core/handle.ts).') =>
  hexBytesField(HANDLE_LENGTH, { eip712: 'bytes32', description, example: EX.handle });
const keyIdOf = (description = 'Id of the threshold key: 1-64 characters of a-z, 0-9, ".", "_" or "-", starting with a letter or digit, no "..".') =>
  keyIdField({ description, example: EX.keyId });
const requestId = () =>
  hexBytesField(REQUEST_ID_LENGTH, { eip712: 'bytes16', description: '16 random bytes naming this request; each is accepted once (replay protection).', example: '0xa1b2c3d4e5f60718293a4b5c6d7e8f90' });

/** 65-byte r ‖ s ‖ v, low-s, v ∈ {27, 28}; whether it verifies is the signature check's decision, not the decoder's. */
export const signatureField = hexBytesField(SIGNATURE_LENGTH, {
  prefix: 'required',
  description: 'EIP-712 signature r ‖ s ‖ v (65 bytes, 0x-prefixed hex), low-s, v ∈ {27, 28}, over every other field of the message.',
  example: MESSAGE_EXAMPLES.grant.signature,
});

// ---------------------------------------------------------------------------------------
// Signed messages: a message codec plus its EIP-712 struct.

export type SignedFields<F extends WireFields> = F & { signature: typeof signatureField };

export interface SignedCodec<F extends WireFields> extends MessageCodec<SignedFields<F>> {
  /** The EIP-712 struct: every field but the signature, in declaration order. */
  readonly struct: Eip712Struct;
  /** The EIP-712 message of a (signed or unsigned) value: exactly the struct's fields. */
  readonly typedData: (value: DecodedFields<F>) => Record<string, Eip712Value>;
}

export function signedCodec<F extends WireFields>(structName: string, what: string, fields: F, doc: MessageDoc): SignedCodec<F> {
  const struct: Eip712Struct = {
    name: structName,
    fields: Object.entries(fields).map(([name, f]) => {
      if (f.eip712 === undefined) throw new TkmsError('internal', `${structName}.${name} has no EIP-712 type`);
      return { name, type: f.eip712 };
    }),
  };
  const names = struct.fields.map((f) => f.name);
  return {
    ...messageCodec<SignedFields<F>>(what, { ...fields, signature: signatureField }, doc),
    struct,
    typedData: (value) => {
      const out: Record<string, Eip712Value> = {};
      const v = value as Record<string, Eip712Value>;
      for (const name of names) out[name] = v[name]!;
      return out;
    },
  };
}

// ---------------------------------------------------------------------------------------
// The declarations.

/** What a node needs to recompute a handle (everything but the ciphertext) and to know its K is bound to it. */
export const HandleDescriptorMessage = messageCodec(
  'handle descriptor',
  {
    keyId: keyIdOf(),
    K: hexBytesField(COMPRESSED_POINT_LENGTH, { description: 'The ephemeral point K = k·G of the handle, compressed SEC1 (33 bytes).', example: EX.K }),
    nonce: hexBytesField(NONCE_LENGTH, { description: 'AES-GCM nonce of the ciphertext (12 bytes).', example: EX.nonce }),
    ciphertextHash: hexBytesField(CIPHERTEXT_HASH_LENGTH, { description: 'SHA-256 of ciphertext ‖ tag.', example: EX.ciphertextHash }),
    owner: addressField({ description: 'The handle\'s owner, an Ethereum address.', example: EX.owner }),
    kProof: hexBytesField(EPHEMERAL_PROOF_LENGTH, { description: 'Proof of knowledge of k = log_G(K), bound to the other fields (core/sealed-handle.ts), 64 bytes c ‖ s.', example: EX.kProof }),
  },
  { description: 'Everything a node needs to recompute a handle but the ciphertext, whose hash stands for it.', examples: [MESSAGE_EXAMPLES.handleDescriptor] },
);

export const DelegationMessage = signedCodec(
  'Delegation',
  'delegation',
  {
    handle: handle('The handle to decrypt.'),
    keyId: keyIdOf('The key the handle belongs to.'),
    requester: addressField({ description: 'Who asks to decrypt: the owner, or a grantee. Signs this message.', example: EX.grantee }),
    rsaSpki: hexBytesUpToField(MAX_SPKI_BYTES, {
      eip712: 'bytes',
      prefix: 'forbidden',
      description: `DER SubjectPublicKeyInfo of the requester's RSA-OAEP key (2048-4096 bits), hex WITHOUT 0x, at most ${MAX_SPKI_BYTES} bytes: nodes wrap their partials to it.`,
      example: MESSAGE_EXAMPLES.delegation.rsaSpki,
    }),
    notBefore: unixSecondsField({ description: 'Start of the validity window (unix seconds).', example: MESSAGE_EXAMPLES.delegation.notBefore }),
    notAfter: unixSecondsField({ description: 'End of the validity window (unix seconds), at most one hour after notBefore.', example: MESSAGE_EXAMPLES.delegation.notAfter }),
    requestId: requestId(),
  },
  { description: 'A request to decrypt a handle, signed by its requester and checked by every node.', examples: [MESSAGE_EXAMPLES.delegation] },
);

export const GrantMessage = signedCodec(
  'Grant',
  'grant',
  {
    handle: handle('The handle the grant is for.'),
    grantee: addressField({ description: 'Who may decrypt the handle.', example: EX.grantee }),
    notAfter: unixSecondsField({ description: 'The grant holds until then (unix seconds).', example: MESSAGE_EXAMPLES.grant.notAfter }),
    issuedAt: unixSecondsField({ description: 'When the owner issued it (unix seconds); a revocation dated at or after it cancels it.', example: MESSAGE_EXAMPLES.grant.issuedAt }),
  },
  { description: 'The owner of a handle lets a grantee decrypt it until notAfter.', examples: [MESSAGE_EXAMPLES.grant] },
);

export const RevocationMessage = signedCodec(
  'Revocation',
  'revocation',
  {
    handle: handle('The handle whose grant is revoked.'),
    grantee: addressField({ description: 'Whose grant is revoked.', example: EX.grantee }),
    revokedAt: unixSecondsField({ description: 'Cancels every grant to the grantee issued at or before this time (unix seconds).', example: MESSAGE_EXAMPLES.revocation.revokedAt }),
  },
  { description: 'The owner of a handle cancels the grants to a grantee issued at or before revokedAt.', examples: [MESSAGE_EXAMPLES.revocation] },
);

export const EncryptRequestMessage = signedCodec(
  'EncryptRequest',
  'encrypt request',
  {
    keyId: keyIdOf('The key to encrypt to.'),
    owner: addressField({ description: 'The owner of the handle to be made. Signs this message.', example: EX.owner }),
    plaintextHash: hexBytesField(32, { eip712: 'bytes32', description: 'SHA-256 of the plaintext.', example: MESSAGE_EXAMPLES.encryptRequest.plaintextHash }),
    notBefore: unixSecondsField({ description: 'Start of the validity window (unix seconds).', example: MESSAGE_EXAMPLES.encryptRequest.notBefore }),
    notAfter: unixSecondsField({ description: 'End of the validity window (unix seconds), at most one hour after notBefore.', example: MESSAGE_EXAMPLES.encryptRequest.notAfter }),
    requestId: requestId(),
  },
  { description: 'An owner asks the gateway to encrypt a plaintext to a key and register the handle as theirs.', examples: [MESSAGE_EXAMPLES.encryptRequest] },
);

export const RegisterHandleMessage = signedCodec(
  'RegisterHandle',
  'handle registration',
  {
    handle: handle('The handle, sealed locally by its owner.'),
    keyId: keyIdOf('The key the handle was sealed to.'),
    owner: addressField({ description: 'The owner the handle commits to. Signs this message.', example: EX.owner }),
  },
  { description: 'An owner registers a handle sealed locally (the gateway never saw the plaintext).', examples: [MESSAGE_EXAMPLES.registerHandle] },
);

// ---------------------------------------------------------------------------------------
// JSON wire schemas, for route schemas and OpenAPI components (plain JSON Schema objects).

export const HandleDescriptorJson = HandleDescriptorMessage.schema;
export const DelegationJson = DelegationMessage.schema;
export const GrantJson = GrantMessage.schema;
export const RevocationJson = RevocationMessage.schema;
export const EncryptRequestJson = EncryptRequestMessage.schema;
export const RegisterHandleJson = RegisterHandleMessage.schema;

export type HandleDescriptorJson = Static<typeof HandleDescriptorJson>;
export type DelegationJson = Static<typeof DelegationJson>;
export type GrantJson = Static<typeof GrantJson>;
export type RevocationJson = Static<typeof RevocationJson>;
export type EncryptRequestJson = Static<typeof EncryptRequestJson>;
export type RegisterHandleJson = Static<typeof RegisterHandleJson>;
