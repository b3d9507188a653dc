import { DLEQ_PROOF_LENGTH } from './dleq.ts';
import { ERROR_CODES, type ErrorCode } from './errors.ts';
import { DelegationMessage, GrantMessage, HandleDescriptorMessage, RevocationMessage } from './messages.ts';
import {
  arrayField,
  booleanField,
  enumField,
  hexBytesField,
  hexBytesUpToField,
  impliedField,
  integerField,
  literalField,
  nestedField,
  messageCodec,
  openArrayField,
  optionalField,
  optionalNestedField,
  orNullField,
  textField,
} from './schema.ts';
import { MAX_PARTICIPANT_ID } from './shamir.ts';
import { MAX_EPOCH } from './committee.ts';
import { MAX_HANDOVER_CHAIN } from './ceremony/handover.ts';
import { decryptApprovalsField } from './keys/decrypt-approval.ts';

/**
 * The JSON bodies of the node protocols (core/node-wire.ts frames them), declared once like the
 * signed messages they carry (core/messages.ts): types, validators, codecs and JSON Schemas.
 */
export const MAX_PARTIAL_BATCH = 32;
export const MAX_RSA_CIPHERTEXT_BYTES = 512;
export const REVOCATION_PAGE_SIZE = 500;
/** Longest retry hint a node may send: a day, so a wrong clock or hostile node cannot park clients. */
export const MAX_RETRY_AFTER_SECONDS = 86_400;
const MAX_KEYS_PER_REPLY = 10_000;
const MAX_ERROR_MESSAGE = 2000;

// ---------------------------------------------------------------------------------------
// The bodies.

const version = () => impliedField(1, { description: 'Frame format version.', refusal: 'unsupported version' });
const okTrue = () => literalField(true, { description: 'The request was served.', refusal: 'ok must be a boolean' });
const offset = (description: string) => integerField(0, Number.MAX_SAFE_INTEGER, { description, refusal: 'must be a non-negative integer' });

export const WireErrorBody = messageCodec(
  'error',
  {
    code: enumField(Object.keys(ERROR_CODES) as ErrorCode[], { description: 'Stable error code (core/errors.ts).', refusal: 'is not a known error code' }),
    message: textField(MAX_ERROR_MESSAGE, { description: 'What went wrong, for people.' }),
    retryAfterSeconds: optionalField(
      integerField(0, MAX_RETRY_AFTER_SECONDS, { description: 'With rate_limited: when the node expects to answer again.', refusal: `must be an integer from 0 to ${MAX_RETRY_AFTER_SECONDS}` }),
    ),
  },
  { description: 'A refusal.', qualified: true },
);

/** `{ ok: false, error }`: the refusal of any request of any protocol. */
export const ErrorReplyBody = messageCodec(
  'error reply',
  { ok: literalField(false, { description: 'The request was refused.', refusal: 'ok must be false' }), error: nestedField(WireErrorBody, { byFieldName: true }) },
  { description: 'A refused request.', qualified: true },
);

export const PartialRequestBody = messageCodec(
  'partial request',
  {
    v: version(),
    delegation: nestedField(DelegationMessage),
    descriptor: nestedField(HandleDescriptorMessage),
    grant: optionalNestedField(GrantMessage),
    aclBlock: optionalField(
      integerField(0, Number.MAX_SAFE_INTEGER, {
        description: 'The block every node reads the on-chain ACL at (acl.mode chain or either), named by the gateway; absent from gateways that read no chain.',
        refusal: 'must be a non-negative integer',
      }),
    ),
    approvals: optionalField(decryptApprovalsField),
  },
  { description: 'A delegation, the descriptor of its handle, the grant it relies on (null when the requester owns the handle or holds an on-chain grant), the ACL block, and the approvers\' co-signatures a sensitive key\'s policy asks for.' },
);

export const PartialBatchRequestBody = messageCodec(
  'partial batch',
  { v: version(), requests: openArrayField({ minItems: 1, maxItems: MAX_PARTIAL_BATCH, items: PartialRequestBody, description: 'Partial requests, each decoded on its own: a bad one is refused in its own reply.' }) },
  { description: 'Several partial requests in one frame.' },
);

const answerFields = {
  nodeId: integerField(1, MAX_PARTICIPANT_ID, { description: 'The answering member.', refusal: `must be an integer in 1..${MAX_PARTICIPANT_ID}` }),
  wrapped: hexBytesUpToField(MAX_RSA_CIPHERTEXT_BYTES, { description: 'RSA-OAEP ciphertext of the 33-byte partial P_i, to the delegation\'s key.' }),
  proof: hexBytesField(DLEQ_PROOF_LENGTH, { description: '64-byte DLEQ proof c ‖ s that P_i = share_i·K.' }),
  epoch: optionalField(
    integerField(0, MAX_EPOCH, {
      description: 'The committee epoch of the share that answered (absent = 0): the client checks the proof against that epoch\'s Y_i.',
      refusal: `must be an integer in 0..${MAX_EPOCH}`,
    }),
  ),
};

export const PartialAnswerBody = messageCodec('partial', answerFields, { description: 'One node\'s partial decryption.', qualified: true });
export const PartialReplyOkBody = messageCodec('partial reply', { ok: okTrue(), ...answerFields }, { description: 'A served partial request.', qualified: true });

export const PartialBatchReplyOkBody = messageCodec(
  'partial batch reply',
  { ok: okTrue(), replies: openArrayField({ maxItems: MAX_PARTIAL_BATCH, items: PartialReplyOkBody, description: 'One reply per request, in order: a served one or an error reply.' }) },
  { description: 'The answers to a batch.', qualified: true },
);

export const RevocationEnvelopeBody = messageCodec(
  'revocation envelope',
  { descriptor: nestedField(HandleDescriptorMessage), revocation: nestedField(RevocationMessage) },
  { description: 'A revocation with the descriptor of its handle, so every node can check the owner signed it.' },
);

export const AclRevokeBody = messageCodec(
  'acl request',
  { v: version(), type: literalField('revoke', { description: 'Store and pass on a revocation.', refusal: 'type must be "revoke"' }), item: nestedField(RevocationEnvelopeBody) },
  { description: 'A revocation to store.', qualified: true },
);
export const AclSyncBody = messageCodec(
  'acl request',
  { v: version(), type: literalField('sync', { description: 'Send a page of the revocations held.', refusal: 'type must be "sync"' }), offset: offset('Where the page starts.') },
  { description: 'Ask for a page of revocations.', qualified: true },
);
export const AclStoredBody = messageCodec(
  'acl reply',
  { ok: okTrue(), type: literalField('stored', { description: 'Whether the revocation was new.', refusal: 'type must be "stored"' }), stored: booleanField({ description: 'True when the node did not hold it yet.' }) },
  { description: 'A revocation was accepted.', qualified: true },
);
export const AclPageBody = messageCodec(
  'acl reply',
  {
    ok: okTrue(),
    type: literalField('page', { description: 'A page of revocations.', refusal: 'type must be "page"' }),
    items: arrayField(RevocationEnvelopeBody, { maxItems: REVOCATION_PAGE_SIZE, description: 'The revocations held, from the requested offset.' }),
    next: orNullField(offset('The offset of the next page, or null after the last.')),
  },
  { description: 'A page of the revocations a node holds.', qualified: true },
);

/** Handover certificates in one keys reply: a page, so the reply stays far under the frame bound whatever the number of epochs. */
export const MAX_HANDOVERS_PER_REPLY = 16;
/** Encoded bytes of the certificates in one keys reply (under MAX_NODE_FRAME_BYTES, leaving room for the keys). */
export const MAX_HANDOVER_REPLY_BYTES = 768 * 1024;

export const KeysRequestBody = messageCodec(
  'keys request',
  {
    v: version(),
    handoversFrom: optionalField(
      integerField(0, MAX_EPOCH, { description: 'Send the handover certificates leaving this epoch and later (absent = 0), a page at a time.', refusal: `must be an integer in 0..${MAX_EPOCH}` }),
    ),
  },
  { description: 'Ask for the public DKG results of the keys held.', qualified: true },
);
export const KeysReplyOkBody = messageCodec(
  'keys reply',
  {
    ok: okTrue(),
    keys: openArrayField({ maxItems: MAX_KEYS_PER_REPLY, description: 'DKG public results, validated by the receiver (core/dkg).' }),
    epoch: optionalField(integerField(0, MAX_EPOCH, { description: 'The committee epoch the node serves (absent = 0).', refusal: `must be an integer in 0..${MAX_EPOCH}` })),
    handovers: optionalField(
      openArrayField({
        maxItems: MAX_HANDOVER_CHAIN,
        description: `Handover certificates leaving the requested epoch (handoversFrom) and later, oldest first, at most ${MAX_HANDOVERS_PER_REPLY} (older nodes sent every one from epoch 0), checked by the receiver (core/ceremony/handover.ts). Absent at epoch 0.`,
      }),
    ),
  },
  { description: 'The public DKG results of the keys a node holds.', qualified: true },
);
