import { assertKeyId, concatBytes, encodeHex, TkmsError, utf8ToBytes } from '../core/index.ts';
import { ByteReader } from '../core/byte-reader.ts';
import { MAX_MEMBERS } from '../core/committee.ts';
import { maxAttempts, maxMessageSize } from '../core/ceremony/index.ts';
import { assertCommitteeId } from '../core/dkg/result.ts';
import { decodeDkgPublicResult, encodeDkgPublicResult, type DkgPublicResult } from '../core/dkg/index.ts';

/**
 * Frames of /tkms/dkg/2, the DKG on the ceremony framework (core/ceremony, DkgCeremony). One
 * stream carries one request frame and one reply frame (the reply is /tkms/ceremony/2's), so a
 * delivered reply is an acknowledgement the sender retries on. /tkms/dkg/1 (DkgSession's rounds)
 * is no longer spoken: a node that still speaks it finds no handler, and a version-1 frame (JSON,
 * so its first byte is "{") sent here is refused as an unsupported version.
 *
 * Binary, as the ceremony messages they carry (a JSON base64 field of megabytes costs a regular
 * expression over the whole string before decoding):
 * `version(1) = 2 ‖ type(1) ‖ keyIdLength(1) ‖ keyId ‖ sessionId(16) ‖ body`, integers big-endian:
 * - proposal (1): committeeIdLength(1) ‖ committeeId ‖ epoch(u32) ‖ t(u16) ‖ proposer(u16): a member
 *   proposes a DKG of a key id to the committee it serves;
 * - payload (2): one ceremony message (signed inside) of the session named by key id and session id;
 * - result (3): a held DkgPublicResult in canonical JSON with the signatures this node knows (the
 *   exchange on connect, which re-signs results stored before v2 signatures).
 */
export const DKG_PROTOCOL = '/tkms/dkg/2';
export const DKG_WIRE_VERSION = 2;
export const SESSION_ID_LENGTH = 16;
/**
 * One ceremony message. The largest is a certificate: a proposal of up to n whole dealings (a DKG
 * proposes every eligible dealer), each with n sealed sub-shares, n receiver keys with their hello
 * signatures and t commitments, plus n votes. Derived from the codec's own bound at the largest
 * committee (n = t = MAX_MEMBERS), so no DKG a committee file allows has a message past it (~11 MB).
 */
export const MAX_DKG_PAYLOAD_BYTES = maxMessageSize({ family: 'dkg', n: MAX_MEMBERS, t: MAX_MEMBERS, nTo: MAX_MEMBERS, tTo: MAX_MEMBERS, keys: 1, maxAttempts: maxAttempts(MAX_MEMBERS) }, 'certificate');
/** A DkgPublicResult of 256 members is about 55 KiB. */
export const MAX_DKG_RESULT_BYTES = 256 * 1024;
const MAX_HEADER_BYTES = 3 + 64 + SESSION_ID_LENGTH;
/** The largest frame: checked before a frame is read any further. */
export const MAX_DKG_FRAME_BYTES = MAX_HEADER_BYTES + MAX_DKG_PAYLOAD_BYTES;

const TYPES = { proposal: 1, payload: 2, result: 3 } as const;

export interface DkgProposal {
  type: 'proposal';
  keyId: string;
  sessionId: Uint8Array;
  committeeId: string;
  epoch: number;
  t: number;
  proposer: number;
}

export interface DkgPayloadFrame {
  type: 'payload';
  keyId: string;
  sessionId: Uint8Array;
  payload: Uint8Array;
}

/** "This is the result I hold for this key id, with the member signatures I know." */
export interface DkgResultFrame {
  type: 'result';
  keyId: string;
  sessionId: Uint8Array;
  result: DkgPublicResult;
}

export type DkgFrame = DkgProposal | DkgPayloadFrame | DkgResultFrame;

const u16 = (v: number) => Uint8Array.of(v >> 8, v & 0xff);
const u32 = (v: number) => Uint8Array.of(v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff);
const short = (bytes: Uint8Array) => concatBytes(Uint8Array.of(bytes.length), bytes);

export function encodeDkgFrame(frame: DkgFrame): Uint8Array {
  const head = concatBytes(Uint8Array.of(DKG_WIRE_VERSION, TYPES[frame.type]), short(utf8ToBytes(frame.keyId)), frame.sessionId);
  if (frame.type === 'proposal') return concatBytes(head, short(utf8ToBytes(frame.committeeId)), u32(frame.epoch), u16(frame.t), u16(frame.proposer));
  return concatBytes(head, frame.type === 'result' ? encodeDkgPublicResult(frame.result) : frame.payload);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function text(r: ByteReader, field: string): string {
  const bytes = r.take(r.u8(`${field} length`), field);
  try {
    return utf8.decode(bytes);
  } catch {
    throw new TkmsError('bad_request', `dkg frame: ${field} is not UTF-8`);
  }
}

class FrameReader extends ByteReader {
  rest(): Uint8Array {
    return this.take(this.bytes.length - this.offset, 'body');
  }
}

/**
 * Strict: bounded before anything is read (payload_too_large past MAX_DKG_FRAME_BYTES), exact
 * lengths, a result bounded, canonical and for the key id and session the frame names.
 */
export function decodeDkgFrame(bytes: Uint8Array): DkgFrame {
  if (!(bytes instanceof Uint8Array)) throw new TkmsError('bad_request', 'dkg frame must be bytes');
  if (bytes.length > MAX_DKG_FRAME_BYTES) throw new TkmsError('payload_too_large', `dkg frame is larger than ${MAX_DKG_FRAME_BYTES} bytes`);
  const r = new FrameReader(bytes, 'dkg frame');
  if (r.u8('version') !== DKG_WIRE_VERSION) throw new TkmsError('bad_request', `dkg frame: unsupported version (this node speaks ${DKG_PROTOCOL})`);
  const type = r.u8('type');
  const keyId = text(r, 'keyId');
  assertKeyId(keyId);
  const sessionId = r.take(SESSION_ID_LENGTH, 'sessionId');
  if (type === TYPES.proposal) {
    const committeeId = text(r, 'committeeId');
    assertCommitteeId(committeeId);
    const epoch = r.u32('epoch');
    const t = r.u16('t');
    const proposer = r.u16('proposer');
    r.end();
    if (t < 1) throw new TkmsError('bad_request', 'dkg frame: t must be at least 1');
    if (proposer < 1) throw new TkmsError('bad_request', 'dkg frame: proposer must be a member id');
    return { type: 'proposal', keyId, sessionId, committeeId, epoch, t, proposer };
  }
  const body = r.rest();
  if (type === TYPES.payload) {
    if (body.length === 0) throw new TkmsError('bad_length', 'dkg frame: empty payload');
    return { type: 'payload', keyId, sessionId, payload: body };
  }
  if (type !== TYPES.result) throw new TkmsError('bad_request', 'dkg frame: type must be proposal (1), payload (2) or result (3)');
  if (body.length > MAX_DKG_RESULT_BYTES) throw new TkmsError('payload_too_large', `dkg frame: a result is at most ${MAX_DKG_RESULT_BYTES} bytes`);
  const result = decodeDkgPublicResult(body);
  if (result.keyId !== keyId || result.sessionId !== encodeHex(sessionId)) throw new TkmsError('bad_request', 'dkg frame: result is for another key id or session');
  return { type: 'result', keyId, sessionId, result };
}

/** Map key for routing: a session is named by its key id and session id. */
export function sessionKey(keyId: string, sessionId: Uint8Array): string {
  return `${keyId}/${encodeHex(sessionId)}`;
}
