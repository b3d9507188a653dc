import { MAX_EPOCH } from '../committee.ts';
import { TkmsError } from '../errors.ts';
import { encodeErrorReply, encodeJsonFrame, parseObject, parseReply, type WireError } from '../node-wire.ts';
import { arrayField, base64Field, hexBytesUpToField, impliedField, integerField, keyIdField, literalField, messageCodec, nestedField, optionalField, type DecodedFields } from '../schema.ts';
import { MAX_PSBT_BYTES } from './psbt.ts';
import { MAX_RAW_MESSAGE_BYTES, SignRequestMessage, type SignMessage, type SignRequest } from './sign-request.ts';

/**
 * /tkms/sign/1: the coordinator (a gateway) and each member.
 *
 * - `commit`: the member makes `count` fresh nonce pairs for a key, keeps them in memory and
 *   returns their commitments (FROST round one, done ahead of time in batches).
 * - `sign`: the member checks the signed request and the key's policy, spends its named
 *   commitment (durably, before anything leaves), and returns its signature shares (round two),
 *   one per message the request signs (a PSBT may sign several inputs).
 *
 * The coordinator is trusted for nothing: the request carries the requester's signature over the
 * message hash, and the member derives what it signs from the message itself.
 */
export const SIGN_PROTOCOL = '/tkms/sign/1';
/** Commitments one `commit` asks for. */
export const MAX_COMMITMENTS_PER_REQUEST = 64;
/** Messages one request signs (PSBT inputs the key owns). */
export const MAX_MESSAGES_PER_REQUEST = 32;
/** Signers one request names: FROST needs t, a committee has at most this many members. */
export const MAX_SIGNERS = 64;
const MAX_POINT_BYTES = 33;
const MEMBER_ID_MAX = 1000;

const version = () => impliedField(1, { description: 'Frame format version.', refusal: 'unsupported version' });
const type = <V extends string>(value: V, description: string) => literalField(value, { description, refusal: `type must be "${value}"` });
const okTrue = () => literalField(true, { description: 'The request was served.', refusal: 'ok must be a boolean' });
const memberId = (description: string) => integerField(1, MEMBER_ID_MAX, { description, refusal: `must be an integer from 1 to ${MEMBER_ID_MAX}` });
const point = (description: string) => hexBytesUpToField(MAX_POINT_BYTES, { description });

export const NonceCommitmentBody = messageCodec(
  'nonce commitment',
  { hiding: point('Hiding nonce commitment D = d·B (the suite\'s point encoding).'), binding: point('Binding nonce commitment E = e·B.') },
  { description: 'One FROST nonce commitment pair.' },
);
export type NonceCommitmentPair = DecodedFields<typeof NonceCommitmentBody.fields>;

export const SignerCommitmentsBody = messageCodec(
  'signer commitments',
  {
    memberId: memberId('The signer.'),
    commitments: arrayField(NonceCommitmentBody, { minItems: 1, maxItems: MAX_MESSAGES_PER_REQUEST, description: 'The signer\'s commitment for each message, in message order.' }),
  },
  { description: 'The commitments one signer contributes to a signing session.' },
);
export type SignerCommitments = DecodedFields<typeof SignerCommitmentsBody.fields>;

export const CommitRequestBody = messageCodec(
  'sign request frame',
  {
    v: version(),
    type: type('commit', 'Make fresh nonce commitments.'),
    keyId: keyIdField({ description: 'The key version (material id) the nonces are for.' }),
    count: integerField(1, MAX_COMMITMENTS_PER_REQUEST, { description: 'How many.', refusal: `must be an integer from 1 to ${MAX_COMMITMENTS_PER_REQUEST}` }),
  },
  { description: 'Ask a member for fresh nonce commitments.', qualified: true },
);

export const SignSharesRequestBody = messageCodec(
  'sign request frame',
  {
    v: version(),
    type: type('sign', 'Contribute signature shares.'),
    request: nestedField(SignRequestMessage),
    data: optionalField(hexBytesUpToField(MAX_RAW_MESSAGE_BYTES, { prefix: 'required', description: 'The raw message (messageKind raw).' })),
    psbt: optionalField(base64Field(MAX_PSBT_BYTES, { description: 'The PSBT (messageKind psbt).' })),
    signers: arrayField(SignerCommitmentsBody, { minItems: 1, maxItems: MAX_SIGNERS, description: 'Every signer of the session with its commitments (this member among them).' }),
    epoch: integerField(0, MAX_EPOCH, { description: 'The committee epoch whose verification shares the coordinator checks shares against: a member serving another refuses (stale_epoch).', refusal: `must be an integer from 0 to ${MAX_EPOCH}` }),
  },
  { description: 'Ask a member for its signature shares.', qualified: true },
);

export const CommitmentsReplyBody = messageCodec(
  'sign reply frame',
  {
    ok: okTrue(),
    type: type('commitments', 'Fresh nonce commitments, kept by the member until spent or discarded.'),
    memberId: memberId('The member that made them.'),
    commitments: arrayField(NonceCommitmentBody, { minItems: 1, maxItems: MAX_COMMITMENTS_PER_REQUEST, description: 'The commitments.' }),
  },
  { description: 'Fresh nonce commitments.', qualified: true },
);

export const ShareBody = messageCodec(
  'signature share',
  { share: hexBytesUpToField(64, { description: 'A FROST signature share z_i (32 bytes, the suite\'s scalar encoding); for a key with t = 1, the whole signature (64 bytes).' }) },
  { description: 'One signature share.' },
);

export const SharesReplyBody = messageCodec(
  'sign reply frame',
  {
    ok: okTrue(),
    type: type('shares', 'Signature shares, one per message in order.'),
    memberId: memberId('The member that signed.'),
    shares: arrayField(ShareBody, { minItems: 1, maxItems: MAX_MESSAGES_PER_REQUEST, description: 'The shares.' }),
  },
  { description: 'A member\'s signature shares.', qualified: true },
);

export type SignFrameRequest =
  | { type: 'commit'; keyId: string; count: number }
  | { type: 'sign'; request: SignRequest; message: SignMessage; signers: SignerCommitments[]; epoch: number };
export type SignFrameReply =
  | { ok: true; type: 'commitments'; memberId: number; commitments: NonceCommitmentPair[] }
  | { ok: true; type: 'shares'; memberId: number; shares: Uint8Array[] }
  | ({ ok: false } & WireError);

export function encodeSignFrameRequest(r: SignFrameRequest): Uint8Array {
  if (r.type === 'commit') return encodeJsonFrame(CommitRequestBody.encode(r));
  const message = r.message.kind === 'raw' ? { data: r.message.data } : { psbt: r.message.psbt };
  return encodeJsonFrame(SignSharesRequestBody.encode({ type: 'sign', request: r.request, signers: r.signers, epoch: r.epoch, ...message }));
}

export function decodeSignFrameRequest(bytes: Uint8Array): SignFrameRequest {
  const obj = parseObject(bytes, 'sign request frame');
  if (obj.type === 'commit') return CommitRequestBody.decode(obj);
  if (obj.type !== 'sign') throw new TkmsError('bad_request', 'sign request frame: type must be "commit" or "sign"');
  const f = SignSharesRequestBody.decode(obj);
  const kind = f.request.messageKind;
  if ((kind === 'raw') !== (f.data !== undefined) || (kind === 'psbt') !== (f.psbt !== undefined)) {
    throw new TkmsError('bad_request', `sign request frame: a ${kind} request carries ${kind === 'raw' ? 'data' : 'psbt'} and nothing else`);
  }
  if (f.data !== undefined && f.data.length === 0) throw new TkmsError('bad_request', 'sign request frame: data must not be empty');
  const message: SignMessage = f.data !== undefined ? { kind: 'raw', data: f.data } : { kind: 'psbt', psbt: f.psbt! };
  return { type: 'sign', request: f.request, message, signers: f.signers, epoch: f.epoch };
}

export function encodeSignFrameReply(r: SignFrameReply): Uint8Array {
  if (!r.ok) return encodeErrorReply(r);
  if (r.type === 'commitments') return encodeJsonFrame(CommitmentsReplyBody.encode(r));
  return encodeJsonFrame(SharesReplyBody.encode({ ...r, shares: r.shares.map((share) => ({ share })) }));
}

export function decodeSignFrameReply(bytes: Uint8Array): SignFrameReply {
  return parseReply(parseObject(bytes, 'sign reply frame'), 'sign reply frame', (obj): SignFrameReply => {
    if (obj.type === 'commitments') return CommitmentsReplyBody.decode(obj);
    if (obj.type === 'shares') {
      const r = SharesReplyBody.decode(obj);
      return { ...r, shares: r.shares.map((s) => s.share) };
    }
    throw new TkmsError('bad_request', 'sign reply frame: type must be "commitments" or "shares"');
  });
}
