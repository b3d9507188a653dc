import { TkmsError } from '../errors.ts';
import { encodeErrorReply, encodeJsonFrame, parseObject, parseReply, type WireError } from '../node-wire.ts';
import { arrayField, booleanField, hexBytesField, impliedField, integerField, literalField, messageCodec, nestedField, orNullField, textField } from '../schema.ts';
import { KeyChangeMessage, type KeyChange } from './key-change.ts';
import { destructionReceiptCodec, type DestructionReceipt } from './destruction-receipt.ts';
import { KEY_LIMITS } from './key-model.ts';

/**
 * /tkms/key-changes/1: signed key changes reach every member, as revocations do (node/acl.ts): the
 * gateway sends a change to every member, a member that applies a new one passes it on, and a member
 * that is behind pulls what it lacks (a key's history from a sequence, or everything from a cursor).
 * Nothing here is trusted for what it says: every change carries its admin's signature and its place
 * in the key's history, and is applied only in order (core/keys/key-apply.ts).
 */
export const KEY_CHANGES_PROTOCOL = '/tkms/key-changes/1';
/** Changes per page; a page also stops once its changes' bodies pass KEY_CHANGE_PAGE_BYTES. */
export const KEY_CHANGE_PAGE_SIZE = 256;
/** Well under the node frame bound (1 MiB), whatever the changes' bodies. */
export const KEY_CHANGE_PAGE_BYTES = 512 * 1024;

const version = () => impliedField(1, { description: 'Frame format version.', refusal: 'unsupported version' });
const okTrue = () => literalField(true, { description: 'The request was served.', refusal: 'ok must be a boolean' });
const cursor = (description: string) => integerField(0, Number.MAX_SAFE_INTEGER, { description, refusal: 'must be a non-negative integer' });
const type = <V extends string>(value: V, description: string) => literalField(value, { description, refusal: `type must be "${value}"` });

export const KeyChangeSubmitBody = messageCodec(
  'key change request',
  { v: version(), type: type('change', 'Apply and pass on a signed key change.'), change: nestedField(KeyChangeMessage) },
  { description: 'A key change to apply.', qualified: true },
);
export const KeyChangeSyncBody = messageCodec(
  'key change request',
  { v: version(), type: type('sync', 'Send a page of every change held, in the order applied here.'), after: cursor('Send changes applied after this many (0 = from the first).') },
  { description: 'Ask for a page of all key changes.', qualified: true },
);
export const KeyChangeHistoryBody = messageCodec(
  'key change request',
  {
    v: version(),
    type: type('history', 'Send a page of one key\'s changes.'),
    keyId: textField(64, { description: 'The managed key.' }),
    after: cursor('Send the changes after this sequence number.'),
  },
  { description: 'Ask for one key\'s changes after a sequence number.', qualified: true },
);
export const KeyReceiptsRequestBody = messageCodec(
  'key change request',
  { v: version(), type: type('receipts', 'Send the destruction receipts this node signed for a key.'), keyId: textField(64, { description: 'The managed key.' }) },
  { description: 'Ask for a key\'s destruction receipts.', qualified: true },
);
export const KeyChangeAppliedBody = messageCodec(
  'key change reply',
  {
    ok: okTrue(),
    type: type('applied', 'The change is applied here (now or before).'),
    keyId: textField(64, { description: 'The key.' }),
    sequence: cursor('The key\'s sequence here after the change.'),
    head: hexBytesField(32, { description: 'The digest of the key\'s last change here.' }),
    known: booleanField({ description: 'True when this node had applied it already.' }),
  },
  { description: 'A key change was applied.', qualified: true },
);
export const KeyChangePageBody = messageCodec(
  'key change reply',
  {
    ok: okTrue(),
    type: type('page', 'A page of key changes.'),
    changes: arrayField(KeyChangeMessage, { maxItems: KEY_CHANGE_PAGE_SIZE, description: 'Signed changes, in the order they apply.' }),
    next: orNullField(cursor('Where the next page starts, or null after the last.')),
  },
  { description: 'A page of key changes.', qualified: true },
);

export const KeyReceiptsBody = messageCodec(
  'key change reply',
  {
    ok: okTrue(),
    type: type('receipts', 'The destruction receipts this node signed for the key, one per version erased.'),
    receipts: arrayField(destructionReceiptCodec, { maxItems: KEY_LIMITS.maxVersions, description: 'Signed receipts (core/keys/destruction-receipt.ts), checked by the receiver.' }),
  },
  { description: 'A node\'s destruction receipts for one key.', qualified: true },
);

export type KeyChangeRequest =
  | { type: 'change'; change: KeyChange }
  | { type: 'sync'; after: number }
  | { type: 'history'; keyId: string; after: number }
  | { type: 'receipts'; keyId: string };
export type KeyChangeReply =
  | { ok: true; type: 'applied'; keyId: string; sequence: number; head: Uint8Array; known: boolean }
  | { ok: true; type: 'page'; changes: KeyChange[]; next: number | null }
  | { ok: true; type: 'receipts'; receipts: DestructionReceipt[] }
  | ({ ok: false } & WireError);

export function encodeKeyChangeRequest(r: KeyChangeRequest): Uint8Array {
  if (r.type === 'change') return encodeJsonFrame(KeyChangeSubmitBody.encode(r));
  if (r.type === 'sync') return encodeJsonFrame(KeyChangeSyncBody.encode(r));
  if (r.type === 'receipts') return encodeJsonFrame(KeyReceiptsRequestBody.encode(r));
  return encodeJsonFrame(KeyChangeHistoryBody.encode(r));
}

export function decodeKeyChangeRequest(bytes: Uint8Array): KeyChangeRequest {
  const obj = parseObject(bytes, 'key change request');
  if (obj.type === 'change') return KeyChangeSubmitBody.decode(obj);
  if (obj.type === 'sync') return KeyChangeSyncBody.decode(obj);
  if (obj.type === 'history') return KeyChangeHistoryBody.decode(obj);
  if (obj.type === 'receipts') return KeyReceiptsRequestBody.decode(obj);
  throw new TkmsError('bad_request', 'key change request: type must be "change", "sync", "history" or "receipts"');
}

export function encodeKeyChangeReply(r: KeyChangeReply): Uint8Array {
  if (!r.ok) return encodeErrorReply(r);
  if (r.type === 'receipts') return encodeJsonFrame(KeyReceiptsBody.encode(r));
  return encodeJsonFrame(r.type === 'applied' ? KeyChangeAppliedBody.encode(r) : KeyChangePageBody.encode(r));
}

export function decodeKeyChangeReply(bytes: Uint8Array): KeyChangeReply {
  return parseReply(parseObject(bytes, 'key change reply'), 'key change reply', (obj): KeyChangeReply => {
    if (obj.type === 'applied') return KeyChangeAppliedBody.decode(obj);
    if (obj.type === 'page') return KeyChangePageBody.decode(obj);
    if (obj.type === 'receipts') return KeyReceiptsBody.decode(obj);
    throw new TkmsError('bad_request', 'key change reply: type must be "applied", "page" or "receipts"');
  });
}
