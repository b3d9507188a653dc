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
 *   /tkms/acl/1      a revocation to store and pass on, or a page of the revocations held
 *   /tkms/keys/1     the public DKG results of the keys the node holds
 * One JSON object per frame; decoding is strict (exact fields, bounded sizes).
 */
export const PARTIAL_PROTOCOL = '/tkms/partial/1';
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
}

function encodeErrorReply(e: WireError): Uint8Array {
  return json({ ok: false, error: { code: e.code, message: e.message } });
}

function parseErrorReply(obj: Record<string, unknown>, what: string): WireError {
  requireExactFields(obj, what, ['ok', 'error']);
  const error = obj.error;
  if (typeof error !== 'object' || error === null || Array.isArray(error)) bad(`${what}.error must be an object`);
  requireExactFields(error as Record<string, unknown>, `${what}.error`, ['code', 'message']);
  const { code, message } = error as Record<string, unknown>;
  if (!isErrorCode(code)) bad(`${what}.error.code is not a known error code`);
  if (typeof message !== 'string' || message.length > 2000) bad(`${what}.error.message must be a short string`);
  return { code, message };
}

// --- /tkms/partial/1 --------------------------------------------------------------------

export interface PartialRequest {
  delegation: Delegation;
  descriptor: HandleDescriptor;
  grant: Grant | undefined;
}

export function encodePartialRequest(r: PartialRequest): Uint8Array {
  return json({ v: 1, delegation: delegationToJson(r.delegation), descriptor: handleDescriptorToJson(r.descriptor), grant: r.grant === undefined ? null : grantToJson(r.grant) });
}

export function decodePartialRequest(bytes: Uint8Array): PartialRequest {
  const obj = parseObject(bytes, 'partial request');
  requireExactFields(obj, 'partial request', ['v', 'delegation', 'descriptor', 'grant']);
  if (obj.v !== 1) bad('partial request: unsupported version');
  return {
    delegation: parseDelegation(obj.delegation),
    descriptor: parseHandleDescriptor(obj.descriptor),
    grant: obj.grant === null ? undefined : parseGrant(obj.grant),
  };
}

export interface PartialAnswer {
  nodeId: number;
  /** RSA-OAEP ciphertext of the 33-byte P_i. */
  wrapped: Uint8Array;
  /** 64-byte DLEQ proof c ‖ s. */
  proof: Uint8Array;
}

export type PartialReply = ({ ok: true } & PartialAnswer) | ({ ok: false } & WireError);

export function encodePartialReply(r: PartialReply): Uint8Array {
  if (!r.ok) return encodeErrorReply(r);
  return json({ ok: true, ...partialAnswerToJson(r) });
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

export function decodePartialReply(bytes: Uint8Array): PartialReply {
  const obj = parseObject(bytes, 'partial reply');
  if (obj.ok === false) return { ok: false, ...parseErrorReply(obj, 'partial reply') };
  if (obj.ok !== true) bad('partial reply: ok must be a boolean');
  const { ok: _ok, ...rest } = obj;
  return { ok: true, ...parsePartialAnswer(rest, 'partial reply') };
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
