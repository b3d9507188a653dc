import { TkmsError, type ErrorCode } from '../core/index.ts';
import { parseJsonFrame } from '../core/json-frame.ts';
import { ErrorReplyBody } from '../core/node-messages.ts';
import { base64Field, enumField, hexBytesField, impliedField, literalField, messageCodec } from '../core/schema.ts';

/**
 * Frames of /tkms/ceremony/1, the reshare and refresh ceremonies between the members of the
 * committee leaving and the one arriving. One stream carries one request frame and one reply
 * frame (as /tkms/dkg/1), so a delivered reply is an acknowledgement the sender retries on.
 * `payload` frames carry one ceremony message (signed inside; core/ceremony); a `refresh` frame
 * carries a refresh proposal file (UTF-8 JSON), the only proposal a member accepts from a peer.
 */
export const CEREMONY_PROTOCOL = '/tkms/ceremony/1';
/**
 * One ceremony message: a proposal carries t whole dealings, each a polynomial per key (t′
 * commitments, n′ sealed sub-shares): 8 MiB covers tens of keys at n = 256, hundreds at small n.
 */
export const MAX_CEREMONY_PAYLOAD_BYTES = 8 * 1024 * 1024;
/** Base64 plus the frame's few fields. */
export const MAX_CEREMONY_FRAME_BYTES = Math.ceil(MAX_CEREMONY_PAYLOAD_BYTES / 3) * 4 + 1024;
/** A refresh proposal is two committee files of at most 256 members and 256 key ids. */
export const MAX_REFRESH_PROPOSAL_BYTES = 256 * 1024;

export const CeremonyFrameBody = messageCodec(
  'ceremony frame',
  {
    v: impliedField(1, { description: 'Frame format version.', refusal: 'unsupported version' }),
    type: enumField(['payload', 'refresh'] as const, { description: 'A ceremony message, or a refresh proposal file.', refusal: 'must be "payload" or "refresh"' }),
    proposalId: hexBytesField(32, { description: 'proposalDigest of the proposal the message belongs to.' }),
    payload: base64Field(MAX_CEREMONY_PAYLOAD_BYTES, { description: 'The signed ceremony message, or the refresh proposal file as UTF-8 JSON.' }),
  },
  { description: 'One message of a reshare or refresh ceremony.', qualified: true },
);

const CeremonyOkBody = messageCodec('ceremony reply', { ok: literalField(true, { description: 'The frame was taken.', refusal: 'ok must be a boolean' }) }, { description: 'A taken frame.', qualified: true });

export interface CeremonyFrame {
  type: 'payload' | 'refresh';
  proposalId: Uint8Array;
  payload: Uint8Array;
}

export type CeremonyReply = { ok: true } | { ok: false; code: ErrorCode; message: string };

const encoder = new TextEncoder();

export function encodeCeremonyFrame(frame: CeremonyFrame): Uint8Array {
  return encoder.encode(JSON.stringify(CeremonyFrameBody.encode(frame)));
}

/** Strict: exact fields, bounded sizes (payload_too_large past MAX_CEREMONY_FRAME_BYTES), a refresh frame's proposal bounded too. */
export function decodeCeremonyFrame(bytes: Uint8Array): CeremonyFrame {
  const frame = CeremonyFrameBody.decode(parseJsonFrame(bytes, 'ceremony frame', MAX_CEREMONY_FRAME_BYTES));
  if (frame.type === 'refresh' && frame.payload.length > MAX_REFRESH_PROPOSAL_BYTES) {
    throw new TkmsError('payload_too_large', `ceremony frame: a refresh proposal is at most ${MAX_REFRESH_PROPOSAL_BYTES} bytes`);
  }
  return frame;
}

export function encodeCeremonyReply(reply: CeremonyReply): Uint8Array {
  return encoder.encode(JSON.stringify(reply.ok ? CeremonyOkBody.encode({ ok: true }) : ErrorReplyBody.encode({ ok: false, error: { code: reply.code, message: reply.message.slice(0, 2000) } })));
}

export function decodeCeremonyReply(bytes: Uint8Array): CeremonyReply {
  const obj = parseJsonFrame(bytes, 'ceremony reply', 64 * 1024);
  if (obj.ok === true) {
    CeremonyOkBody.decode(obj);
    return { ok: true };
  }
  const { error } = ErrorReplyBody.decode(obj, 'ceremony reply');
  return { ok: false, code: error.code, message: error.message };
}
