import {
  delegationToJson,
  grantToJson,
  handleDescriptorToJson,
  parseDelegation,
  parseGrant,
  parseHandleDescriptor,
  parseRevocation,
  revocationToJson,
  type Delegation,
  type Grant,
  type HandleDescriptor,
  type Revocation,
} from './authz.ts';
import { decodeHex, encodeHex } from './bytes.ts';
import { DLEQ_PROOF_LENGTH } from './dleq.ts';
import { isErrorCode, TkmsError, type ErrorCode } from './errors.ts';
import { expectObject, parseJsonFrame, requireExactFields } from './json-frame.ts';
import { assertParticipantId } from './shamir.ts';

/**
 * Frames of the request/reply protocols a node serves to the gateway (or anyone):
 *   /tkms/partial/1  a delegation → the node's wrapped partial and its DLEQ proof
 *   /tkms/partial-batch/1  up to MAX_PARTIAL_BATCH of those → as many answers, in order
 *   /tkms/acl/1      a revocation to store and pass on, or a page of the revocations held
 *   /tkms/keys/1     the public DKG results of the keys the node holds
 * One JSON object per frame; decoding is strict (exact fields, bounded sizes).
 */
export const PARTIAL_PROTOCOL = '/tkms/partial/1';
/** Several partial requests in one frame, answered in one frame (the gateway's path under load). */
export const PARTIAL_BATCH_PROTOCOL = '/tkms/partial-batch/1';
export const MAX_PARTIAL_BATCH = 32;
export const ACL_PROTOCOL = '/tkms/acl/1';
export const KEYS_PROTOCOL = '/tkms/keys/1';
export const MAX_NODE_FRAME_BYTES = 1024 * 1024;
export const MAX_RSA_CIPHERTEXT_BYTES = 512;
export const REVOCATION_PAGE_SIZE = 500;

const encoder = new TextEncoder();

function bad(message: string): never {
  throw new TkmsError('bad_request', message);
}

function parseObject(bytes: Uint8Array, what: string): Record<string, unknown> {
  return parseJsonFrame(bytes, what, MAX_NODE_FRAME_BYTES);
}

const json = (value: unknown): Uint8Array => encoder.encode(JSON.stringify(value));

// --- errors, shared by every protocol ---------------------------------------------------

export interface WireError {
  code: ErrorCode;
  message: string;
  /** With `rate_limited`: when the refusing node expects to answer again. */
  retryAfterSeconds?: number;
}

/** Longest retry hint a node may send: a day, so a wrong clock or hostile node cannot park clients. */
export const MAX_RETRY_AFTER_SECONDS = 86_400;

function errorReplyToJson(e: WireError): Record<string, unknown> {
  const error = e.retryAfterSeconds === undefined ? { code: e.code, message: e.message } : { code: e.code, message: e.message, retryAfterSeconds: e.retryAfterSeconds };
  return { ok: false, error };
}

function encodeErrorReply(e: WireError): Uint8Array {
  return json(errorReplyToJson(e));
}

function parseErrorReply(obj: Record<string, unknown>, what: string): WireError {
  requireExactFields(obj, what, ['ok', 'error']);
  const error = obj.error;
  if (typeof error !== 'object' || error === null || Array.isArray(error)) bad(`${what}.error must be an object`);
  const fields = error as Record<string, unknown>;
  requireExactFields(fields, `${what}.error`, 'retryAfterSeconds' in fields ? ['code', 'message', 'retryAfterSeconds'] : ['code', 'message']);
  const { code, message, retryAfterSeconds } = fields;
  if (!isErrorCode(code)) bad(`${what}.error.code is not a known error code`);
  if (typeof message !== 'string' || message.length > 2000) bad(`${what}.error.message must be a short string`);
  if (retryAfterSeconds === undefined) return { code, message };
  if (!Number.isSafeInteger(retryAfterSeconds) || (retryAfterSeconds as number) < 0 || (retryAfterSeconds as number) > MAX_RETRY_AFTER_SECONDS) {
    bad(`${what}.error.retryAfterSeconds must be an integer from 0 to ${MAX_RETRY_AFTER_SECONDS}`);
  }
  return { code, message, retryAfterSeconds: retryAfterSeconds as number };
}

/** The wire form of a refusal: its retry hint travels with it when it has one. */
export function wireErrorOf(e: TkmsError): WireError {
  const retry = e.details?.retryAfterSeconds;
  const hint = typeof retry === 'number' && Number.isSafeInteger(retry) ? Math.min(Math.max(retry, 0), MAX_RETRY_AFTER_SECONDS) : undefined;
  return hint === undefined ? { code: e.code, message: e.message } : { code: e.code, message: e.message, retryAfterSeconds: hint };
}

// --- /tkms/partial/1 --------------------------------------------------------------------

export interface PartialRequest {
  delegation: Delegation;
  descriptor: HandleDescriptor;
  grant: Grant | undefined;
}

function partialRequestToJson(r: PartialRequest): Record<string, unknown> {
  return { v: 1, delegation: delegationToJson(r.delegation), descriptor: handleDescriptorToJson(r.descriptor), grant: r.grant === undefined ? null : grantToJson(r.grant) };
}

function parsePartialRequestObject(value: unknown, what: string): PartialRequest {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) bad(`${what} must be an object`);
  const obj = value as Record<string, unknown>;
  requireExactFields(obj, what, ['v', 'delegation', 'descriptor', 'grant']);
  if (obj.v !== 1) bad(`${what}: unsupported version`);
  return {
    delegation: parseDelegation(obj.delegation),
    descriptor: parseHandleDescriptor(obj.descriptor),
    grant: obj.grant === null ? undefined : parseGrant(obj.grant),
  };
}

/** The JSON text of one request, as both protocols carry it (the gateway encodes it once per fan-out). */
export function partialRequestJson(r: PartialRequest): string {
  return JSON.stringify(partialRequestToJson(r));
}

export function encodePartialRequest(r: PartialRequest): Uint8Array {
  return encoder.encode(partialRequestJson(r));
}

export function decodePartialRequest(bytes: Uint8Array): PartialRequest {
  return parsePartialRequestObject(parseObject(bytes, 'partial request'), 'partial request');
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
  const obj = parseObject(bytes, 'partial batch');
  requireExactFields(obj, 'partial batch', ['v', 'requests']);
  if (obj.v !== 1) bad('partial batch: unsupported version');
  const items = obj.requests;
  if (!Array.isArray(items) || items.length < 1 || items.length > MAX_PARTIAL_BATCH) bad(`partial batch: requests must be an array of 1 to ${MAX_PARTIAL_BATCH}`);
  return items.map((item, i) => {
    try {
      return parsePartialRequestObject(item, `partial batch requests[${i}]`);
    } catch (e) {
      if (e instanceof TkmsError) return e;
      throw e;
    }
  });
}

export interface PartialAnswer {
  nodeId: number;
  /** RSA-OAEP ciphertext of the 33-byte P_i. */
  wrapped: Uint8Array;
  /** 64-byte DLEQ proof c ‖ s. */
  proof: Uint8Array;
}

export type PartialReply = ({ ok: true } & PartialAnswer) | ({ ok: false } & WireError);

function partialReplyToJson(r: PartialReply): Record<string, unknown> {
  return r.ok ? { ok: true, ...partialAnswerToJson(r) } : errorReplyToJson(r);
}

export function encodePartialReply(r: PartialReply): Uint8Array {
  return json(partialReplyToJson(r));
}

export function parsePartialAnswer(obj: unknown, what = 'partial'): PartialAnswer {
  const o = expectObject(obj, what, ['nodeId', 'wrapped', 'proof']);
  assertParticipantId(o.nodeId, `${what}.nodeId`);
  return {
    nodeId: o.nodeId,
    wrapped: decodeHex(o.wrapped, { name: `${what}.wrapped`, maxLength: MAX_RSA_CIPHERTEXT_BYTES }),
    proof: decodeHex(o.proof, { name: `${what}.proof`, length: DLEQ_PROOF_LENGTH }),
  };
}

export function partialAnswerToJson(a: PartialAnswer): Record<string, string | number> {
  return { nodeId: a.nodeId, wrapped: encodeHex(a.wrapped), proof: encodeHex(a.proof) };
}

function parsePartialReplyObject(value: unknown, what: string): PartialReply {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) bad(`${what} must be an object`);
  const obj = value as Record<string, unknown>;
  if (obj.ok === false) return { ok: false, ...parseErrorReply(obj, what) };
  if (obj.ok !== true) bad(`${what}: ok must be a boolean`);
  const { ok: _ok, ...rest } = obj;
  return { ok: true, ...parsePartialAnswer(rest, what) };
}

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
  const obj = parseObject(bytes, 'partial batch reply');
  if (obj.ok === false) return { ok: false, ...parseErrorReply(obj, 'partial batch reply') };
  if (obj.ok !== true) bad('partial batch reply: ok must be a boolean');
  requireExactFields(obj, 'partial batch reply', ['ok', 'replies']);
  const replies = obj.replies;
  if (!Array.isArray(replies) || replies.length !== expected) bad(`partial batch reply: replies must be an array of ${expected}`);
  return { ok: true, replies: replies.map((r, i) => parsePartialReplyObject(r, `partial batch reply replies[${i}]`)) };
}

// --- /tkms/acl/1 ------------------------------------------------------------------------

/** A revocation travels with the handle descriptor, so every node can check the owner signed it. */
export interface RevocationEnvelope {
  descriptor: HandleDescriptor;
  revocation: Revocation;
}

export type AclRequest = { type: 'revoke'; item: RevocationEnvelope } | { type: 'sync'; offset: number };

export function envelopeToJson(e: RevocationEnvelope): Record<string, unknown> {
  return { descriptor: handleDescriptorToJson(e.descriptor), revocation: revocationToJson(e.revocation) };
}

export function parseEnvelope(value: unknown): RevocationEnvelope {
  const o = expectObject(value, 'revocation envelope', ['descriptor', 'revocation']);
  return { descriptor: parseHandleDescriptor(o.descriptor), revocation: parseRevocation(o.revocation) };
}

export function encodeAclRequest(r: AclRequest): Uint8Array {
  return r.type === 'revoke' ? json({ v: 1, type: 'revoke', item: envelopeToJson(r.item) }) : json({ v: 1, type: 'sync', offset: r.offset });
}

export function decodeAclRequest(bytes: Uint8Array): AclRequest {
  const obj = parseObject(bytes, 'acl request');
  if (obj.type === 'revoke') {
    requireExactFields(obj, 'acl request', ['v', 'type', 'item']);
    if (obj.v !== 1) bad('acl request: unsupported version');
    return { type: 'revoke', item: parseEnvelope(obj.item) };
  }
  if (obj.type === 'sync') {
    requireExactFields(obj, 'acl request', ['v', 'type', 'offset']);
    if (obj.v !== 1) bad('acl request: unsupported version');
    if (typeof obj.offset !== 'number' || !Number.isSafeInteger(obj.offset) || obj.offset < 0) bad('acl request: offset must be a non-negative integer');
    return { type: 'sync', offset: obj.offset };
  }
  bad('acl request: type must be "revoke" or "sync"');
}

export type AclReply =
  | { ok: true; type: 'stored'; stored: boolean }
  | { ok: true; type: 'page'; items: RevocationEnvelope[]; next: number | null }
  | ({ ok: false } & WireError);

export function encodeAclReply(r: AclReply): Uint8Array {
  if (!r.ok) return encodeErrorReply(r);
  if (r.type === 'stored') return json({ ok: true, type: 'stored', stored: r.stored });
  return json({ ok: true, type: 'page', items: r.items.map(envelopeToJson), next: r.next });
}

export function decodeAclReply(bytes: Uint8Array): AclReply {
  const obj = parseObject(bytes, 'acl reply');
  if (obj.ok === false) return { ok: false, ...parseErrorReply(obj, 'acl reply') };
  if (obj.ok !== true) bad('acl reply: ok must be a boolean');
  if (obj.type === 'stored') {
    requireExactFields(obj, 'acl reply', ['ok', 'type', 'stored']);
    if (typeof obj.stored !== 'boolean') bad('acl reply: stored must be a boolean');
    return { ok: true, type: 'stored', stored: obj.stored };
  }
  if (obj.type === 'page') {
    requireExactFields(obj, 'acl reply', ['ok', 'type', 'items', 'next']);
    if (!Array.isArray(obj.items) || obj.items.length > REVOCATION_PAGE_SIZE) bad(`acl reply: items must be an array of at most ${REVOCATION_PAGE_SIZE}`);
    if (obj.next !== null && (typeof obj.next !== 'number' || !Number.isSafeInteger(obj.next) || obj.next < 0)) bad('acl reply: next must be null or an offset');
    return { ok: true, type: 'page', items: obj.items.map(parseEnvelope), next: obj.next as number | null };
  }
  bad('acl reply: type must be "stored" or "page"');
}

// --- /tkms/keys/1 -----------------------------------------------------------------------

/** The reply carries DKG public results as JSON objects; the receiver validates them (core/dkg). */
export function encodeKeysRequest(): Uint8Array {
  return json({ v: 1 });
}

export function decodeKeysRequest(bytes: Uint8Array): void {
  const obj = parseObject(bytes, 'keys request');
  requireExactFields(obj, 'keys request', ['v']);
  if (obj.v !== 1) bad('keys request: unsupported version');
}

export type KeysReply = { ok: true; keys: unknown[] } | ({ ok: false } & WireError);

export function encodeKeysReply(r: KeysReply): Uint8Array {
  return r.ok ? json({ ok: true, keys: r.keys }) : encodeErrorReply(r);
}

export function decodeKeysReply(bytes: Uint8Array): KeysReply {
  const obj = parseObject(bytes, 'keys reply');
  if (obj.ok === false) return { ok: false, ...parseErrorReply(obj, 'keys reply') };
  if (obj.ok !== true) bad('keys reply: ok must be a boolean');
  requireExactFields(obj, 'keys reply', ['ok', 'keys']);
  if (!Array.isArray(obj.keys) || obj.keys.length > 10_000) bad('keys reply: keys must be an array');
  return { ok: true, keys: obj.keys };
}
