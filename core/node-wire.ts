import type { DecryptApproval } from './keys/decrypt-approval.ts';
import type { Delegation, Grant, HandleDescriptor, Revocation } from './authz.ts';
import { TkmsError } from './errors.ts';
import { parseJsonFrame } from './json-frame.ts';
import {
  AclPageBody,
  AclRevokeBody,
  AclStoredBody,
  AclSyncBody,
  ErrorReplyBody,
  KeysReplyOkBody,
  MAX_HANDOVER_REPLY_BYTES,
  MAX_HANDOVERS_PER_REPLY,
  KeysRequestBody,
  MAX_PARTIAL_BATCH,
  MAX_RETRY_AFTER_SECONDS,
  PartialAnswerBody,
  PartialBatchReplyOkBody,
  PartialBatchRequestBody,
  PartialReplyOkBody,
  PartialRequestBody,
  type WireErrorBody,
} from './node-messages.ts';
import type { DecodedFields } from './schema.ts';

/**
 * Frames of the request/reply protocols a node serves to the gateway (or anyone):
 *   /tkms/partial/1  a delegation → the node's wrapped partial and its DLEQ proof
 *   /tkms/partial-batch/1  up to MAX_PARTIAL_BATCH of those → as many answers, in order
 *   /tkms/acl/1      a revocation to store and pass on, or a page of the revocations held
 *   /tkms/keys/1     the public DKG results of the keys the node holds
 * One JSON object per frame, each body declared once in core/node-messages.ts: decoding is strict
 * (exact fields, bounded sizes) with the error codes of the signed messages (core/messages.ts).
 */
export const PARTIAL_PROTOCOL = '/tkms/partial/1';
/** Several partial requests in one frame, answered in one frame (the gateway's path under load). */
export const PARTIAL_BATCH_PROTOCOL = '/tkms/partial-batch/1';
export const ACL_PROTOCOL = '/tkms/acl/1';
export const KEYS_PROTOCOL = '/tkms/keys/1';
export const MAX_NODE_FRAME_BYTES = 1024 * 1024;

const encoder = new TextEncoder();

function bad(message: string): never {
  throw new TkmsError('bad_request', message);
}

export function parseObject(bytes: Uint8Array, what: string): Record<string, unknown> {
  return parseJsonFrame(bytes, what, MAX_NODE_FRAME_BYTES);
}

const json = (value: unknown): Uint8Array => encoder.encode(JSON.stringify(value));
export { json as encodeJsonFrame };

// --- errors, shared by every protocol ---------------------------------------------------

export type WireError = DecodedFields<typeof WireErrorBody.fields>;

function errorReplyToJson(e: WireError): unknown {
  return ErrorReplyBody.encode({ ok: false, error: { code: e.code, message: e.message, retryAfterSeconds: e.retryAfterSeconds } });
}

export function encodeErrorReply(e: WireError): Uint8Array {
  return json(errorReplyToJson(e));
}

function parseErrorReply(obj: unknown, what: string): { ok: false } & WireError {
  return { ok: false, ...ErrorReplyBody.decode(obj, what).error };
}

/** The wire form of a refusal: its retry hint travels with it when it has one. */
export function wireErrorOf(e: TkmsError): WireError {
  const retry = e.details?.retryAfterSeconds;
  const hint = typeof retry === 'number' && Number.isSafeInteger(retry) ? Math.min(Math.max(retry, 0), MAX_RETRY_AFTER_SECONDS) : undefined;
  return hint === undefined ? { code: e.code, message: e.message } : { code: e.code, message: e.message, retryAfterSeconds: hint };
}

/** Dispatches a reply on its `ok`: false is a refusal, true the body `ok`, anything else refused. */
export function parseReply<T>(obj: unknown, what: string, ok: (obj: Record<string, unknown>) => T): T | ({ ok: false } & WireError) {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) bad(`${what} must be an object`);
  const o = obj as Record<string, unknown>;
  if (o.ok === false) return parseErrorReply(o, what);
  if (o.ok !== true) bad(`${what}: ok must be a boolean`);
  return ok(o);
}

// --- /tkms/partial/1 --------------------------------------------------------------------

export interface PartialRequest {
  delegation: Delegation;
  descriptor: HandleDescriptor;
  grant: Grant | undefined;
  /** The block the on-chain ACL is read at (node-messages PartialRequestBody). */
  aclBlock?: number;
  /** Approvers' co-signatures, for a key whose policy marks it sensitive (core/keys/decrypt-approval.ts). */
  approvals?: DecryptApproval[];
}

/** The JSON text of one request, as both protocols carry it (the gateway encodes it once per fan-out). */
export function partialRequestJson(r: PartialRequest): string {
  return JSON.stringify(PartialRequestBody.encode(r));
}

export function encodePartialRequest(r: PartialRequest): Uint8Array {
  return encoder.encode(partialRequestJson(r));
}

export function decodePartialRequest(bytes: Uint8Array): PartialRequest {
  return PartialRequestBody.decode(parseObject(bytes, 'partial request'));
}

export function encodePartialBatchRequest(items: readonly PartialRequest[]): Uint8Array {
  return encodePartialBatchOfJson(items.map(partialRequestJson));
}

/** A batch frame from requests already in their JSON text (`partialRequestJson`). */
export function encodePartialBatchOfJson(requestJson: readonly string[]): Uint8Array {
  if (requestJson.length < 1 || requestJson.length > MAX_PARTIAL_BATCH) throw new TkmsError('bad_request', `a partial batch holds 1 to ${MAX_PARTIAL_BATCH} requests`);
  return encoder.encode(`{"v":1,"requests":[${requestJson.join(',')}]}`);
}

/**
 * A batch whose frame is malformed is refused whole (thrown); a malformed item is returned as its
 * TkmsError in its place, so one bad request does not sink the others in the frame.
 */
export function decodePartialBatchRequest(bytes: Uint8Array): (PartialRequest | TkmsError)[] {
  const { requests } = PartialBatchRequestBody.decode(parseObject(bytes, 'partial batch'));
  return requests.map((item, i) => {
    try {
      return PartialRequestBody.decode(item, `partial batch requests[${i}]`);
    } catch (e) {
      if (e instanceof TkmsError) return e;
      throw e;
    }
  });
}

export type PartialAnswer = DecodedFields<typeof PartialAnswerBody.fields>;

export type PartialReply = ({ ok: true } & PartialAnswer) | ({ ok: false } & WireError);

function partialReplyToJson(r: PartialReply): unknown {
  return r.ok ? PartialReplyOkBody.encode(r) : errorReplyToJson(r);
}

export function encodePartialReply(r: PartialReply): Uint8Array {
  return json(partialReplyToJson(r));
}

export function parsePartialAnswer(obj: unknown, what = 'partial'): PartialAnswer {
  return PartialAnswerBody.decode(obj, what);
}

export const partialAnswerToJson = PartialAnswerBody.encode;

const parsePartialReplyObject = (value: unknown, what: string): PartialReply => parseReply(value, what, (o) => PartialReplyOkBody.decode(o, what));

export function decodePartialReply(bytes: Uint8Array): PartialReply {
  return parsePartialReplyObject(parseObject(bytes, 'partial reply'), 'partial reply');
}

/** The answers to a batch, in request order; a refusal of the whole frame is one error. */
export type PartialBatchReply = { ok: true; replies: PartialReply[] } | ({ ok: false } & WireError);

export function encodePartialBatchReply(r: PartialBatchReply): Uint8Array {
  if (!r.ok) return encodeErrorReply(r);
  return json({ ok: true, replies: r.replies.map(partialReplyToJson) });
}

/** `expected`: how many requests the batch held; any other number of replies is refused. */
export function decodePartialBatchReply(bytes: Uint8Array, expected: number): PartialBatchReply {
  const what = 'partial batch reply';
  return parseReply(parseObject(bytes, what), what, (o) => {
    const { replies } = PartialBatchReplyOkBody.decode(o, what);
    if (replies.length !== expected) bad(`${what}: replies must be an array of ${expected}`);
    return { ok: true, replies: replies.map((r, i) => parsePartialReplyObject(r, `${what} replies[${i}]`)) };
  });
}

// --- /tkms/acl/1 ------------------------------------------------------------------------

/** A revocation travels with the handle descriptor, so every node can check the owner signed it. */
export interface RevocationEnvelope {
  descriptor: HandleDescriptor;
  revocation: Revocation;
}

export type AclRequest = { type: 'revoke'; item: RevocationEnvelope } | { type: 'sync'; offset: number };


export function encodeAclRequest(r: AclRequest): Uint8Array {
  return json(r.type === 'revoke' ? AclRevokeBody.encode(r) : AclSyncBody.encode(r));
}

export function decodeAclRequest(bytes: Uint8Array): AclRequest {
  const obj = parseObject(bytes, 'acl request');
  if (obj.type === 'revoke') return AclRevokeBody.decode(obj);
  if (obj.type === 'sync') return AclSyncBody.decode(obj);
  bad('acl request: type must be "revoke" or "sync"');
}

export type AclReply =
  | { ok: true; type: 'stored'; stored: boolean }
  | { ok: true; type: 'page'; items: RevocationEnvelope[]; next: number | null }
  | ({ ok: false } & WireError);

export function encodeAclReply(r: AclReply): Uint8Array {
  if (!r.ok) return encodeErrorReply(r);
  return json(r.type === 'stored' ? AclStoredBody.encode(r) : AclPageBody.encode(r));
}

export function decodeAclReply(bytes: Uint8Array): AclReply {
  return parseReply(parseObject(bytes, 'acl reply'), 'acl reply', (obj): AclReply => {
    if (obj.type === 'stored') return AclStoredBody.decode(obj);
    if (obj.type === 'page') return AclPageBody.decode(obj);
    bad('acl reply: type must be "stored" or "page"');
  });
}

// --- /tkms/keys/1 -----------------------------------------------------------------------

/** The reply carries DKG public results as JSON objects; the receiver validates them (core/dkg). */
export function encodeKeysRequest(handoversFrom = 0): Uint8Array {
  return json(KeysRequestBody.encode(handoversFrom > 0 ? { handoversFrom } : {}));
}

/** The epoch the requested handover certificates start at (0 when not given). */
export function decodeKeysRequest(bytes: Uint8Array): { handoversFrom: number } {
  return { handoversFrom: KeysRequestBody.decode(parseObject(bytes, 'keys request')).handoversFrom ?? 0 };
}

export type KeysReply = { ok: true; keys: unknown[]; epoch?: number; handovers?: unknown[] } | ({ ok: false } & WireError);

export function encodeKeysReply(r: KeysReply): Uint8Array {
  return r.ok ? json(KeysReplyOkBody.encode(r)) : encodeErrorReply(r);
}

export function decodeKeysReply(bytes: Uint8Array): KeysReply {
  return parseReply(parseObject(bytes, 'keys reply'), 'keys reply', (obj) => KeysReplyOkBody.decode(obj));
}

/**
 * The certificates a keys reply carries: those leaving `from` and later, oldest first, at most
 * MAX_HANDOVERS_PER_REPLY and MAX_HANDOVER_REPLY_BYTES of JSON, so the reply fits its frame however
 * many epochs passed (the receiver asks again from the epoch the page reached).
 */
export function handoverPage<T extends { fromEpoch: number }>(handovers: readonly T[], from: number): T[] {
  const page: T[] = [];
  let bytes = 0;
  for (const cert of handovers) {
    if (cert.fromEpoch < from) continue;
    bytes += JSON.stringify(cert).length;
    if (page.length === MAX_HANDOVERS_PER_REPLY || bytes > MAX_HANDOVER_REPLY_BYTES) break;
    page.push(cert);
  }
  return page;
}
