import { assertKeyId, assertParticipantId, decodeHex, encodeHex, isErrorCode, TkmsError, type ErrorCode } from '../core/index.ts';
import { parseJsonFrame, requireExactFields } from '../core/json-frame.ts';
import { parseDkgPublicResult, type DkgPublicResult } from '../core/dkg/index.ts';

/**
 * Frames of the /tkms/dkg/1 protocol. One stream carries one request frame and one reply
 * frame, so a delivered reply is an acknowledgement the sender can retry on.
 * JSON, because the payloads are small and the frames are easy to inspect; decoding is strict.
 */
export const DKG_PROTOCOL = '/tkms/dkg/1';
export const SESSION_ID_LENGTH = 16;
/** Bound on one frame; a DKG message for n = 256 stays far below. */
export const MAX_DKG_FRAME_BYTES = 4 * 1024 * 1024;
const MAX_PAYLOAD_BYTES = 1024 * 1024;

export interface DkgProposal {
  type: 'proposal';
  keyId: string;
  sessionId: Uint8Array;
  t: number;
  committeeId: string;
  proposer: number;
}

export interface DkgPayloadFrame {
  type: 'payload';
  keyId: string;
  sessionId: Uint8Array;
  payload: Uint8Array;
}

/**
 * "This is the result I hold (or am about to store) for this key id, with the member signatures
 * I know." Sent before storing (so members notice a second session for one key id) and on
 * connect (members exchange signatures, which re-signs results stored before v2 signatures).
 */
export interface DkgResultFrame {
  type: 'result';
  keyId: string;
  sessionId: Uint8Array;
  result: DkgPublicResult;
}

export type DkgFrame = DkgProposal | DkgPayloadFrame | DkgResultFrame;

export type DkgReply = { ok: true } | { ok: false; code: ErrorCode; message: string };

const encoder = new TextEncoder();

function bad(message: string): never {
  throw new TkmsError('bad_request', `dkg frame: ${message}`);
}

function parseJsonObject(bytes: Uint8Array, what: string): Record<string, unknown> {
  return parseJsonFrame(bytes, `dkg ${what}`, MAX_DKG_FRAME_BYTES);
}

function exactFields(obj: Record<string, unknown>, fields: readonly string[]): void {
  requireExactFields(obj, 'dkg frame', fields);
}

export function encodeDkgFrame(frame: DkgFrame): Uint8Array {
  const common = { v: 1, type: frame.type, keyId: frame.keyId, sessionId: encodeHex(frame.sessionId) };
  const body =
    frame.type === 'proposal'
      ? { ...common, t: frame.t, committeeId: frame.committeeId, proposer: frame.proposer }
      : frame.type === 'result'
        ? { ...common, result: frame.result }
        : { ...common, payload: encodeHex(frame.payload) };
  return encoder.encode(JSON.stringify(body));
}

export function decodeDkgFrame(bytes: Uint8Array): DkgFrame {
  const obj = parseJsonObject(bytes, 'frame');
  if (obj.v !== 1) bad('unsupported version');
  if (obj.type === 'proposal') exactFields(obj, ['v', 'type', 'keyId', 'sessionId', 't', 'committeeId', 'proposer']);
  else if (obj.type === 'payload') exactFields(obj, ['v', 'type', 'keyId', 'sessionId', 'payload']);
  else if (obj.type === 'result') exactFields(obj, ['v', 'type', 'keyId', 'sessionId', 'result']);
  else bad('type must be "proposal", "payload" or "result"');
  assertKeyId(obj.keyId);
  const sessionId = decodeHex(obj.sessionId, { name: 'sessionId', length: SESSION_ID_LENGTH });
  if (obj.type === 'result') {
    const result = parseDkgPublicResult(obj.result);
    if (result.keyId !== obj.keyId || result.sessionId !== encodeHex(sessionId)) bad('result is for another key id or session');
    return { type: 'result', keyId: obj.keyId, sessionId, result };
  }
  if (obj.type === 'payload') {
    const payload = decodeHex(obj.payload, { name: 'payload', maxLength: MAX_PAYLOAD_BYTES });
    return { type: 'payload', keyId: obj.keyId, sessionId, payload };
  }
  if (typeof obj.t !== 'number' || !Number.isSafeInteger(obj.t) || obj.t < 1 || obj.t > 65_535) bad('t must be a positive integer');
  if (typeof obj.committeeId !== 'string' || obj.committeeId.length === 0 || obj.committeeId.length > 64) bad('committeeId must be a string');
  try {
    assertParticipantId(obj.proposer, 'proposer');
  } catch {
    bad('proposer must be a member id');
  }
  return { type: 'proposal', keyId: obj.keyId, sessionId, t: obj.t, committeeId: obj.committeeId, proposer: obj.proposer as number };
}

export function encodeDkgReply(reply: DkgReply): Uint8Array {
  return encoder.encode(JSON.stringify(reply.ok ? { ok: true } : { ok: false, error: { code: reply.code, message: reply.message } }));
}

export function decodeDkgReply(bytes: Uint8Array): DkgReply {
  const obj = parseJsonObject(bytes, 'reply');
  if (obj.ok === true) {
    exactFields(obj, ['ok']);
    return { ok: true };
  }
  if (obj.ok !== false) bad('reply.ok must be a boolean');
  exactFields(obj, ['ok', 'error']);
  const error = obj.error;
  if (typeof error !== 'object' || error === null || Array.isArray(error)) bad('reply.error must be an object');
  const { code, message } = error as Record<string, unknown>;
  if (!isErrorCode(code)) bad('reply.error.code is not a known error code');
  if (typeof message !== 'string' || message.length > 2000) bad('reply.error.message must be a short string');
  return { ok: false, code, message };
}

/** Map key for routing: a session is named by its key id and session id. */
export function sessionKey(keyId: string, sessionId: Uint8Array): string {
  return `${keyId}/${encodeHex(sessionId)}`;
}
