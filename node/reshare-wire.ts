import { TkmsError, type ErrorCode } from '../core/index.ts';
import { parseJsonFrame } from '../core/json-frame.ts';
import { ErrorReplyBody } from '../core/node-messages.ts';
import { literalField, messageCodec } from '../core/schema.ts';

/**
 * Frames of /tkms/ceremony/2, the reshare and refresh ceremonies between the members of the
 * committee leaving and the one arriving. One stream carries one request frame and one reply
 * frame, so a delivered reply is an acknowledgement the sender retries on.
 *
 * Binary, as /tkms/dkg/2: `version(1) = 2 ‖ type(1) ‖ proposalId(32) ‖ payload`. A `payload` frame
 * (type 1) carries one ceremony message (signed inside; core/ceremony); a `refresh` frame (type 2)
 * carries a refresh proposal file (UTF-8 JSON), the only proposal a member accepts from a peer.
 * Version 1 was JSON with the payload in base64: a real-process profile of a 16-member refresh
 * spent most of its frame handling decoding and re-encoding base64 (the canonical check), and a
 * payload past ~4.5 MB overflowed the encoder's stack. A version-1 frame sent here (its first byte
 * is "{") is refused as an unsupported version.
 */
export const CEREMONY_PROTOCOL = '/tkms/ceremony/2';
export const CEREMONY_WIRE_VERSION = 2;
/**
 * One ceremony message: a proposal carries t whole dealings, each a polynomial per key (t′
 * commitments, n′ sealed sub-shares): 8 MiB covers tens of keys at n = 256, hundreds at small n.
 */
export const MAX_CEREMONY_PAYLOAD_BYTES = 8 * 1024 * 1024;
const HEADER_BYTES = 2 + 32;
/** The largest frame: checked before a frame is read any further. */
export const MAX_CEREMONY_FRAME_BYTES = HEADER_BYTES + MAX_CEREMONY_PAYLOAD_BYTES;
/** A refresh proposal is two committee files of at most 256 members and 256 key ids. */
export const MAX_REFRESH_PROPOSAL_BYTES = 256 * 1024;

const TYPES = { payload: 1, refresh: 2 } as const;

export interface CeremonyFrame {
  type: 'payload' | 'refresh';
  proposalId: Uint8Array;
  payload: Uint8Array;
}

export type CeremonyReply = { ok: true } | { ok: false; code: ErrorCode; message: string };

const CeremonyOkBody = messageCodec('ceremony reply', { ok: literalField(true, { description: 'The frame was taken.', refusal: 'ok must be a boolean' }) }, { description: 'A taken frame.', qualified: true });

const encoder = new TextEncoder();

export function encodeCeremonyFrame(frame: CeremonyFrame): Uint8Array {
  if (frame.proposalId.length !== 32) throw new TkmsError('bad_request', 'ceremony frame: proposalId must be 32 bytes');
  const out = new Uint8Array(HEADER_BYTES + frame.payload.length);
  out[0] = CEREMONY_WIRE_VERSION;
  out[1] = TYPES[frame.type];
  out.set(frame.proposalId, 2);
  out.set(frame.payload, HEADER_BYTES);
  return out;
}

/** Strict: bounded before anything is read (payload_too_large past MAX_CEREMONY_FRAME_BYTES), a known version and type, a refresh frame's proposal bounded too. */
export function decodeCeremonyFrame(bytes: Uint8Array): CeremonyFrame {
  if (!(bytes instanceof Uint8Array)) throw new TkmsError('bad_request', 'ceremony frame must be bytes');
  if (bytes.length > MAX_CEREMONY_FRAME_BYTES) throw new TkmsError('payload_too_large', `ceremony frame is larger than ${MAX_CEREMONY_FRAME_BYTES} bytes`);
  if (bytes.length < 1 || bytes[0] !== CEREMONY_WIRE_VERSION) throw new TkmsError('bad_request', `ceremony frame: unsupported version (this node speaks ${CEREMONY_PROTOCOL})`);
  if (bytes.length < HEADER_BYTES) throw new TkmsError('bad_length', 'ceremony frame: truncated header');
  const type = bytes[1] === TYPES.payload ? 'payload' : bytes[1] === TYPES.refresh ? 'refresh' : undefined;
  if (type === undefined) throw new TkmsError('bad_request', 'ceremony frame: type must be payload (1) or refresh (2)');
  const payload = bytes.slice(HEADER_BYTES);
  if (payload.length === 0) throw new TkmsError('bad_length', 'ceremony frame: empty payload');
  if (type === 'refresh' && payload.length > MAX_REFRESH_PROPOSAL_BYTES) {
    throw new TkmsError('payload_too_large', `ceremony frame: a refresh proposal is at most ${MAX_REFRESH_PROPOSAL_BYTES} bytes`);
  }
  return { type, proposalId: bytes.slice(2, HEADER_BYTES), payload };
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
