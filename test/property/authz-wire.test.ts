import assert from 'node:assert/strict';
import fc from 'fast-check';
import * as signedDeclarations from '../../core/messages.ts';
import * as nodeDeclarations from '../../core/node-messages.ts';
import type { WireFieldKind, WireFields } from '../../core/schema.ts';
import {
  AclPageBody,
  AclRevokeBody,
  AclStoredBody,
  AclSyncBody,
  DelegationMessage,
  EncryptRequestMessage,
  ErrorReplyBody,
  GrantMessage,
  HandleDescriptorMessage,
  KeysReplyOkBody,
  KeysRequestBody,
  PartialAnswerBody,
  PartialBatchReplyOkBody,
  PartialBatchRequestBody,
  PartialReplyOkBody,
  PartialRequestBody,
  RegisterHandleMessage,
  RevocationEnvelopeBody,
  RevocationMessage,
  WireErrorBody,
  type AclReply,
  type AclRequest,
  decodeAclReply,
  decodeAclRequest,
  decodeBase64,
  decodeKeysReply,
  decodeKeysRequest,
  decodePartialBatchReply,
  decodePartialBatchRequest,
  decodePartialReply,
  decodePartialRequest,
  type Delegation,
  encodeAclReply,
  encodeAclRequest,
  encodeBase64,
  type EncryptRequest,
  encodeHex,
  encodeKeysReply,
  encodeKeysRequest,
  encodePartialBatchReply,
  encodePartialBatchRequest,
  encodePartialReply,
  encodePartialRequest,
  type ErrorCode,
  type Grant,
  type HandleDescriptor,
  isTkmsError,
  MAX_NODE_FRAME_BYTES,
  MAX_PARTIAL_BATCH,
  MAX_RETRY_AFTER_SECONDS,
  type PartialAnswer,
  partialAnswerToJson,
  partialRequestJson,
  type PartialReply,
  type PartialRequest,
  parsePartialAnswer,
  type RegisterHandle,
  type Revocation,
  type RevocationEnvelope,
  REVOCATION_PAGE_SIZE,
  TkmsError,
  toChecksumAddress,
} from '../../core/index.ts';
import {
  ACL_PAGE_WIRE,
  ACL_REVOKE_WIRE,
  ACL_STORED_WIRE,
  ACL_SYNC_WIRE,
  DELEGATION_WIRE,
  ENCRYPT_REQUEST_WIRE,
  ERROR_REPLY_WIRE,
  GRANT_WIRE,
  HANDLE_DESCRIPTOR_WIRE,
  KEYS_REPLY_OK_WIRE,
  KEYS_REQUEST_WIRE,
  PARTIAL_ANSWER_WIRE,
  PARTIAL_BATCH_REPLY_OK_WIRE,
  PARTIAL_BATCH_REQUEST_WIRE,
  PARTIAL_REPLY_OK_WIRE,
  PARTIAL_REQUEST_WIRE,
  REGISTER_HANDLE_WIRE,
  REVOCATION_ENVELOPE_WIRE,
  REVOCATION_WIRE,
  TABLE_MAX_TIMESTAMP,
  WIRE_ERROR_WIRE,
  type WireKind,
  type WireMessage,
} from '../support/wire-table.ts';

/**
 * Every decoder of the authz messages and node frames: (a) arbitrary input is a TkmsError or
 * a value, never another exception; (b) any single invalid mutation of a valid message is a
 * TkmsError; (c) valid random messages round-trip. Valid and invalid values come from the
 * hand-written table (test/support/wire-table.ts), never from the declarations under test, and
 * every declaration must match its table entry exactly.
 */

const RUNS = 300;
const MAX_TIMESTAMP = TABLE_MAX_TIMESTAMP;
const enc = new TextEncoder();
const frame = (v: unknown): Uint8Array => enc.encode(JSON.stringify(v));

/** A throw must be a TkmsError (and a client-side one: never 'internal'). */
function typedOrValue<T>(fn: () => T, label = ''): T | undefined {
  try {
    return fn();
  } catch (e) {
    assert.ok(isTkmsError(e), `${label}: expected TkmsError, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    assert.notEqual(e.code, 'internal', `${label}: ${e.message}`);
    return undefined;
  }
}

/** Refused with a TkmsError; with `codes`, with one of them (today's codes for that field's kind). */
function rejectedTyped(fn: () => unknown, label = '', codes?: readonly ErrorCode[]): void {
  let caught: unknown;
  let value: unknown;
  try {
    value = fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught !== undefined, `${label}: expected a TkmsError, but it decoded to ${safeStringify(value)}`);
  assert.ok(isTkmsError(caught), `${label}: expected TkmsError, got ${caught instanceof Error ? `${caught.name}: ${caught.message}` : String(caught)}`);
  assert.ok(caught.httpStatus === 400 || caught.code === 'payload_too_large', `${label}: unexpected code ${caught.code}`);
  if (codes !== undefined) assert.ok(codes.includes(caught.code), `${label}: refused with ${caught.code}, expected ${codes.join(' or ')} (${caught.message})`);
}

function safeStringify(v: unknown): string {
  try {
    return JSON.stringify(v, (_k, x: unknown) => (x instanceof Uint8Array ? encodeHex(x) : typeof x === 'bigint' ? `${x}n` : x))?.slice(0, 300) ?? String(v);
  } catch {
    return String(v);
  }
}

// ---------------------------------------------------------------------------------------
// Valid random messages.

// fast-check 4 may build records with a null prototype; decoders return plain objects.
const rec = <T,>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }, opts: { requiredKeys?: [] } = {}): fc.Arbitrary<T> =>
  fc.record(model, { ...opts, noNullPrototype: true }) as unknown as fc.Arbitrary<T>;
const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
const keyIdArb = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,63}$/).filter((s) => !s.includes('..'));
const tsArb = fc.oneof(fc.integer({ min: 0, max: MAX_TIMESTAMP }), fc.constantFrom(0, MAX_TIMESTAMP));
/** A valid decoded value of one field, by the kind the table says it is. */
function validArb(k: WireKind): fc.Arbitrary<unknown> {
  switch (k.kind) {
    case 'hex':
      return bytes(k.length);
    case 'hexUpTo':
      // Mostly short, sometimes exactly the longest allowed, or half of it (an RSA-2048 wrap of 512 max).
      return fc.oneof({ weight: 9, arbitrary: fc.uint8Array({ maxLength: Math.min(k.maxLength, 512) }) }, { weight: 1, arbitrary: bytes(k.maxLength) }, { weight: 1, arbitrary: bytes(k.maxLength >> 1) });
    case 'address':
      return bytes(20);
    case 'keyId':
      return keyIdArb;
    case 'unixSeconds':
      return tsArb;
    case 'integer':
      return fc.oneof(fc.integer({ min: k.min, max: k.max }), fc.constantFrom(k.min, k.max));
    case 'base64':
      return fc.uint8Array({ maxLength: Math.min(k.maxLength, 300) });
    case 'boolean':
      return fc.boolean();
    case 'enum':
      return fc.constantFrom(...k.values);
    case 'text':
      return fc.string({ maxLength: Math.min(k.maxLength, 200), unit: 'binary' });
    case 'literal':
      return fc.constant(k.value);
    case 'object':
      return arbOf(k.message);
    case 'objectOrNull':
      return fc.option(arbOf(k.message), { nil: undefined });
    case 'orNull':
      return fc.option(validArb(k.field), { nil: null });
    case 'array':
      return fc.array(arbOf(k.message), { minLength: k.minItems, maxLength: Math.min(k.maxItems, 4) });
    case 'openArray':
      return k.items === undefined ? fc.array(fc.jsonValue({ maxDepth: 3 }), { maxLength: 5 }) : fc.array(arbOf(k.items), { minLength: k.minItems, maxLength: Math.min(k.maxItems, 3) });
  }
}

/** A valid decoded value of a message of the table: every field by its kind; implied constants left out, optional ones sometimes. */
function arbOf(message: WireMessage): fc.Arbitrary<any> {
  const entries = Object.entries(message.fields).filter(([, f]) => f.presence !== 'implied');
  const model = Object.fromEntries(entries.map(([name, f]) => [name, validArb(f.want)]));
  const requiredKeys = entries.filter(([, f]) => f.presence === 'required').map(([name]) => name);
  return fc.record(model, { requiredKeys, noNullPrototype: true });
}

// kProof: the 64-byte proof c ‖ s binding K to the handle (core/sealed-handle.ts); the decoders check its shape only.
const descriptorArb: fc.Arbitrary<HandleDescriptor> = arbOf(HANDLE_DESCRIPTOR_WIRE);
const delegationArb: fc.Arbitrary<Delegation> = arbOf(DELEGATION_WIRE);
const grantArb: fc.Arbitrary<Grant> = arbOf(GRANT_WIRE);
const revocationArb: fc.Arbitrary<Revocation> = arbOf(REVOCATION_WIRE);
const encryptArb: fc.Arbitrary<EncryptRequest> = arbOf(ENCRYPT_REQUEST_WIRE);
const registerArb: fc.Arbitrary<RegisterHandle> = arbOf(REGISTER_HANDLE_WIRE);
const envelopeArb: fc.Arbitrary<RevocationEnvelope> = arbOf(REVOCATION_ENVELOPE_WIRE);
const answerArb: fc.Arbitrary<PartialAnswer> = arbOf(PARTIAL_ANSWER_WIRE);
const wireErrorArb = arbOf(WIRE_ERROR_WIRE).map((e) => ({ ok: false as const, ...e }) as PartialReply & { ok: false });
const offsetArb = validArb(ACL_SYNC_WIRE.fields.offset!.want) as fc.Arbitrary<number>;

const partialRequestArb: fc.Arbitrary<PartialRequest> = arbOf(PARTIAL_REQUEST_WIRE);
const partialReplyArb: fc.Arbitrary<PartialReply> = fc.oneof(arbOf(PARTIAL_REPLY_OK_WIRE), wireErrorArb);
const aclRequestArb: fc.Arbitrary<AclRequest> = fc.oneof(arbOf(ACL_REVOKE_WIRE), arbOf(ACL_SYNC_WIRE));
const aclReplyArb: fc.Arbitrary<AclReply> = fc.oneof(arbOf(ACL_STORED_WIRE), arbOf(ACL_PAGE_WIRE), wireErrorArb);

// ---------------------------------------------------------------------------------------
// Invalid values, by field kind. Each arbitrary yields only values the field must refuse.

const HEXISH = /^(0[xX])?[0-9a-fA-F]*$/;
const notHexish = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }).filter((s) => !HEXISH.test(s));
const nonString = fc.oneof(fc.constant(null), fc.boolean(), fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), fc.constant([]), fc.constant({}), fc.array(fc.string(), { minLength: 1, maxLength: 2 }), fc.dictionary(fc.string(), fc.string(), { minKeys: 1, maxKeys: 2 }));
const nonNumber = fc.oneof(fc.constant(null), fc.boolean(), fc.string({ maxLength: 12 }), fc.constantFrom('1', '0', '1e3', ''), fc.constant([]), fc.constant({}), fc.constant([1]));
const BAD_CHARS = ['g', 'G', 'z', ' ', '\n', '\t', '\u0000', 'é', '０', '٠', '💥', '-', '+', '.'];

function insertAt(s: string, at: number, piece: string): string {
  const i = at % (s.length + 1);
  return s.slice(0, i) + piece + s.slice(i);
}

/** Hex of exactly `n` bytes: wrong lengths, odd digit counts, non-hex characters, unicode, wrong types. */
function badExactHex(n: number, opts: { requirePrefix?: boolean } = {}): fc.Arbitrary<unknown> {
  const arbs: fc.Arbitrary<unknown>[] = [
    nonString,
    notHexish,
    fc.uint8Array({ maxLength: n + 8 }).filter((b) => b.length !== n).map(encodeHex),
    fc.constant(`0x${'00'.repeat(n + 5000)}`),
    bytes(n).map((b) => `${encodeHex(b)}0`),
    fc.tuple(bytes(n), fc.nat(), fc.constantFrom(...BAD_CHARS)).map(([b, at, c]) => `0x${insertAt(encodeHex(b).slice(2), at, c)}`),
    fc.tuple(bytes(n), fc.nat(2 * n - 1)).map(([b, at]) => {
      // Replace one digit with a non-hex one: right length, wrong alphabet.
      const h = encodeHex(b).slice(2);
      return `0x${h.slice(0, at)}g${h.slice(at + 1)}`;
    }),
    fc.constantFrom('', '0x', '0x0', 'x', '0x 00'),
  ];
  if (opts.requirePrefix) arbs.push(bytes(n).map((b) => encodeHex(b).slice(2)));
  return fc.oneof(...arbs);
}

/** Variable-length hex up to `max` bytes. */
function badBoundedHex(max: number, opts: { forbidPrefix?: boolean } = {}): fc.Arbitrary<unknown> {
  const arbs: fc.Arbitrary<unknown>[] = [
    nonString,
    notHexish,
    bytes(max + 1).map((b) => encodeHex(b).slice(opts.forbidPrefix ? 2 : 0)),
    fc.uint8Array({ maxLength: 40 }).map((b) => `${encodeHex(b).slice(opts.forbidPrefix ? 2 : 0)}0`),
    fc.tuple(fc.uint8Array({ maxLength: 40 }), fc.nat(), fc.constantFrom(...BAD_CHARS)).map(([b, at, c]) => insertAt(encodeHex(b).slice(2), at, c)),
  ];
  if (opts.forbidPrefix) arbs.push(fc.uint8Array({ maxLength: 40 }).map(encodeHex));
  return fc.oneof(...arbs);
}

/** A valid address spelled in mixed case with a broken EIP-55 checksum. */
const badChecksum = bytes(20)
  .map((b) => {
    const good = toChecksumAddress(b);
    const i = [...good].findIndex((c, j) => j >= 2 && /[a-fA-F]/.test(c));
    if (i < 0) return undefined;
    const c = good[i]!;
    const flipped = good.slice(0, i) + (c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase()) + good.slice(i + 1);
    const body = flipped.slice(2);
    // Still mixed case after the flip (otherwise it is a valid all-lower/all-upper spelling).
    return body !== body.toLowerCase() && body !== body.toUpperCase() ? flipped : undefined;
  })
  .filter((s): s is string => s !== undefined);

const badAddress = fc.oneof(badExactHex(20, { requirePrefix: true }), badChecksum, bytes(20).map((b) => `0X${encodeHex(b).slice(2)}`));
const badKeyId = fc.oneof(
  nonString,
  fc.constantFrom('', 'A', 'aB', 'a'.repeat(65), 'a..b', '.a', '-a', '_a', 'a/b', 'a b', 'ké', 'a\u0000', '💥', 'a\n', '..'),
  fc.string({ unit: 'binary', maxLength: 70 }).filter((s) => !/^[a-z0-9][a-z0-9._-]{0,63}$/.test(s) || s.includes('..')),
);
const badTimestamp = fc.oneof(
  nonNumber,
  fc.integer({ min: -(2 ** 40), max: -1 }),
  fc.double({ min: -1e6, max: 1e12, noNaN: true, noDefaultInfinity: true }).filter((x) => !Number.isInteger(x)),
  fc.integer({ min: MAX_TIMESTAMP + 1, max: Number.MAX_SAFE_INTEGER }),
  fc.constantFrom(2 ** 53, 2 ** 64, 1e21, 1e300, -0.5, 0.5, MAX_TIMESTAMP + 0.5),
);
const notObject = fc.oneof(fc.constant(null), fc.boolean(), fc.integer(), fc.string({ maxLength: 10 }), fc.array(fc.jsonValue({ maxDepth: 1 }), { maxLength: 3 }));
const notObjectNorNull = notObject.filter((v) => v !== null);
/** Every string constant of the frames (variant names like "revoke", "page"): a literal field must refuse its siblings' values too. */
const LITERALS = [
  ...new Set(
    [ACL_REVOKE_WIRE, ACL_SYNC_WIRE, ACL_STORED_WIRE, ACL_PAGE_WIRE].flatMap((m) => Object.values(m.fields).flatMap((f) => (f.want.kind === 'literal' && typeof f.want.value === 'string' ? [f.want.value] : []))),
  ),
];
const notOfType = (values: readonly unknown[]) => fc.oneof(fc.constantFrom(0, 1, 2, -1, 1.5, '1', 'true', 'false', true, false, null, [1], [], {}, '', ...LITERALS), fc.jsonValue({ maxDepth: 1 })).filter((v) => !values.includes(v));
const badEnum = (values: readonly string[]) =>
  fc.oneof(nonString, fc.constantFrom('', 'nope', 'toString', '__proto__', 'constructor', 'hasOwnProperty', ...values.map((v) => v.toUpperCase()), ...values.map((v) => `${v} `)), fc.string({ maxLength: 20 })).filter((v) => !values.includes(v as string));
const badInteger = (min: number, max: number) =>
  fc.oneof(
    nonNumber,
    fc.constantFrom(min - 1, max + 1, min + 0.5, 1.5, -0.5, 2 ** 53, 1e300),
    fc.integer({ min: min - 2 ** 40, max: min - 1 }),
    max < Number.MAX_SAFE_INTEGER ? fc.integer({ min: max + 1, max: Math.min(max + 2 ** 40, Number.MAX_SAFE_INTEGER) }) : fc.constant(max + 2),
  ).filter((v) => !(typeof v === 'number' && Number.isSafeInteger(v) && v >= min && v <= max));
const badArray = (minItems: number, maxItems: number, withItems: boolean): fc.Arbitrary<unknown> =>
  fc.oneof(
    notObject.filter((v) => !Array.isArray(v)),
    fc.constant({}),
    fc.constant(Array.from({ length: maxItems + 1 }, () => null)),
    ...(minItems > 0 ? [fc.constant([])] : []),
    ...(withItems ? [fc.array(notObject, { minLength: Math.max(1, minItems), maxLength: 3 })] : []),
  );

// ---------------------------------------------------------------------------------------
// Shapes: which fields each JSON object has and what each field must refuse.

type Spec =
  | { leaf: fc.Arbitrary<unknown>; codes: readonly ErrorCode[] }
  | { fields: Record<string, Spec>; optional: ReadonlySet<string>; invalid: fc.Arbitrary<unknown>; nullable?: boolean }
  | { items: Spec; invalid: fc.Arbitrary<unknown> };

/** A field with no fields of its own: what it must refuse, and with which codes. */
const leaf = (a: fc.Arbitrary<unknown>, codes: readonly ErrorCode[] = ['bad_request']): Spec => ({ leaf: a, codes });
/** Today's codes by kind: hex is bad_hex or bad_length, addresses bad_address, key ids bad_key_id, anything else bad_request. */
const HEX_CODES: readonly ErrorCode[] = ['bad_hex', 'bad_length'];

/** What one field must refuse, by the kind the table says it is. */
function fieldSpec(k: WireKind): Spec {
  switch (k.kind) {
    case 'hex':
      return leaf(badExactHex(k.length, { requirePrefix: k.prefix === 'required' }), HEX_CODES);
    case 'hexUpTo':
      return leaf(badBoundedHex(k.maxLength, { forbidPrefix: k.prefix === 'forbidden' }), HEX_CODES);
    case 'address':
      return leaf(badAddress, ['bad_address']);
    case 'keyId':
      return leaf(badKeyId, ['bad_key_id']);
    case 'unixSeconds':
      return leaf(badTimestamp);
    case 'integer':
      return leaf(badInteger(k.min, k.max));
    case 'base64':
      return leaf(fc.oneof(nonString, fc.constantFrom('A', 'AB==', ' AAAA', 'AA\n==')));
    case 'boolean':
      return leaf(notOfType([true, false]));
    case 'enum':
      return leaf(badEnum(k.values));
    case 'text':
      return leaf(fc.oneof(nonString, fc.constant('x'.repeat(k.maxLength + 1))));
    case 'literal':
      return leaf(notOfType([k.value]));
    case 'object':
      return specOf(k.message);
    case 'objectOrNull':
      return { ...(specOf(k.message) as Extract<Spec, { fields: unknown }>), invalid: notObjectNorNull, nullable: true };
    case 'orNull': {
      const inner = fieldSpec(k.field);
      return 'leaf' in inner ? leaf(inner.leaf.filter((v) => v !== null), inner.codes) : { ...inner, invalid: inner.invalid.filter((v) => v !== null) };
    }
    case 'array':
      return { items: specOf(k.message), invalid: badArray(k.minItems, k.maxItems, true) };
    case 'openArray':
      return k.items === undefined ? leaf(badArray(k.minItems, k.maxItems, false)) : { items: specOf(k.items), invalid: badArray(k.minItems, k.maxItems, true) };
  }
}

/** Which fields a message of the table has and what each must refuse; `extra` adds refusals the frame's context makes (a reply count). */
function specOf(message: WireMessage, extra: Record<string, fc.Arbitrary<unknown>> = {}): Spec {
  const fields: Record<string, Spec> = {};
  const optional = new Set<string>();
  for (const [name, f] of Object.entries(message.fields)) {
    if (f.presence === 'optional') optional.add(name);
    const spec = fieldSpec(f.want);
    const more = extra[name];
    fields[name] = more === undefined ? spec : 'leaf' in spec ? leaf(fc.oneof(spec.leaf, more), spec.codes) : { ...spec, invalid: fc.oneof(spec.invalid, more) };
  }
  return { fields, optional, invalid: notObject };
}

const DESCRIPTOR = specOf(HANDLE_DESCRIPTOR_WIRE);
const DELEGATION = specOf(DELEGATION_WIRE);
const GRANT = specOf(GRANT_WIRE);
const REVOCATION = specOf(REVOCATION_WIRE);
const ENCRYPT = specOf(ENCRYPT_REQUEST_WIRE);
const REGISTER = specOf(REGISTER_HANDLE_WIRE);
const ANSWER = specOf(PARTIAL_ANSWER_WIRE);
const ERROR_REPLY = specOf(ERROR_REPLY_WIRE);
const PARTIAL_REQUEST = specOf(PARTIAL_REQUEST_WIRE);
const PARTIAL_REPLY_OK = specOf(PARTIAL_REPLY_OK_WIRE);
const ACL_REVOKE = specOf(ACL_REVOKE_WIRE);
const ACL_SYNC = specOf(ACL_SYNC_WIRE);
const ACL_STORED = specOf(ACL_STORED_WIRE);
const ACL_PAGE = specOf(ACL_PAGE_WIRE);
const PARTIAL_BATCH_REQUEST = specOf(PARTIAL_BATCH_REQUEST_WIRE);
// Replies are checked against the number of requests the batch held: two, in these tests.
const PARTIAL_BATCH_REPLY_OK = specOf(PARTIAL_BATCH_REPLY_OK_WIRE, { replies: fc.constantFrom([], [null], [1, 2, 3]) });
const KEYS_REQUEST = specOf(KEYS_REQUEST_WIRE);
const KEYS_REPLY = specOf(KEYS_REPLY_OK_WIRE);

type Path = (string | number)[];
type Site = { kind: 'replace'; path: Path; arb: fc.Arbitrary<unknown>; codes: readonly ErrorCode[] } | { kind: 'missing'; path: Path; field: string } | { kind: 'extra'; path: Path; known: string[] };

/** Every place one mutation can go, given the concrete valid JSON (a null grant has no fields to mutate). */
function sites(spec: Spec, value: unknown, path: Path = []): Site[] {
  const out: Site[] = [];
  if ('leaf' in spec) return out;
  if ('items' in spec) {
    if (Array.isArray(value) && value.length > 0) {
      const s = spec.items;
      if (!('leaf' in s)) out.push({ kind: 'replace', path: [...path, 0], arb: s.invalid, codes: ['bad_request'] }, ...sites(s, value[0], [...path, 0]));
    }
    return out;
  }
  if (value === null || value === undefined) return out;
  const known = Object.keys(spec.fields);
  out.push({ kind: 'extra', path, known });
  for (const f of known) {
    // An optional field may be left out; when it is, replacing it adds it with a value it must refuse.
    if (!spec.optional.has(f)) out.push({ kind: 'missing', path, field: f });
    const child = spec.fields[f]!;
    out.push({ kind: 'replace', path: [...path, f], arb: 'leaf' in child ? child.leaf : child.invalid, codes: 'leaf' in child ? child.codes : ['bad_request'] });
    out.push(...sites(child, (value as Record<string, unknown>)[f], [...path, f]));
  }
  return out;
}

function setOwn(target: Record<string, unknown> | unknown[], key: string | number, value: unknown): void {
  Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
}

function at(root: unknown, path: Path): Record<string, unknown> {
  let cur: unknown = root;
  for (const k of path) cur = (cur as Record<string | number, unknown>)[k];
  return cur as Record<string, unknown>;
}

/** A mutated deep copy of `json` and a description of the mutation. */
function mutations(spec: Spec, json: unknown): fc.Arbitrary<{ mutated: unknown; what: string; codes: readonly ErrorCode[] }> {
  const all = sites(spec, json);
  return fc.constantFrom(...all).chain((site) => {
    const copy = (): unknown => JSON.parse(JSON.stringify(json));
    switch (site.kind) {
      case 'missing':
        return fc.constant(null).map(() => {
          const c = copy();
          delete at(c, site.path)[site.field];
          return { mutated: c, what: `missing ${[...site.path, site.field].join('.')}`, codes: ['bad_request'] };
        });
      case 'extra':
        return fc.tuple(fc.oneof(fc.string(), fc.constantFrom('__proto__', 'constructor', 'toString', 'V', ' ')).filter((k) => !site.known.includes(k)), fc.jsonValue({ maxDepth: 2 })).map(([k, v]) => {
          const c = copy();
          setOwn(at(c, site.path), k, v);
          return { mutated: c, what: `extra ${[...site.path, k].join('.')} = ${safeStringify(v)}`, codes: ['bad_request'] };
        });
      case 'replace':
        return site.arb.map((v) => {
          const c = copy();
          const parentPath = site.path.slice(0, -1);
          setOwn(at(c, parentPath), site.path[site.path.length - 1]!, v);
          return { mutated: c, what: `${site.path.join('.')} = ${safeStringify(v)}`, codes: site.codes };
        });
    }
  });
}

/** Property (b): every single mutation of a valid message is a TkmsError. */
function assertMutationsRejected<T>(base: fc.Arbitrary<T>, toJson: (x: T) => unknown, spec: Spec, decode: (json: unknown) => unknown, numRuns = RUNS): void {
  fc.assert(
    fc.property(
      base.chain((x) => {
        const json = JSON.parse(JSON.stringify(toJson(x))) as unknown;
        return mutations(spec, json);
      }),
      ({ mutated, what, codes }) => rejectedTyped(() => decode(mutated), what, codes),
    ),
    { numRuns },
  );
}

/** Property (a) for JSON-level parsers, plus: a valid message with one leaf replaced by any JSON value stays typed. */
function assertArbitraryJsonTyped(parse: (v: unknown) => unknown, numRuns = RUNS): void {
  fc.assert(fc.property(fc.jsonValue(), (v) => void typedOrValue(() => parse(v), safeStringify(v))), { numRuns });
  fc.assert(fc.property(fc.anything({ withNullPrototype: true, withObjectString: true, withBoxedValues: true }), (v) => void typedOrValue(() => parse(v))), { numRuns });
}

function assertArbitraryBytesTyped(decode: (b: Uint8Array) => unknown, numRuns = RUNS): void {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (b) => void typedOrValue(() => decode(b), encodeHex(b))), { numRuns });
  fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 200 }), (s) => void typedOrValue(() => decode(enc.encode(s)), JSON.stringify(s))), { numRuns });
  fc.assert(fc.property(fc.jsonValue(), (v) => void typedOrValue(() => decode(frame(v)), safeStringify(v))), { numRuns });
  // Objects with the right keys and random values reach the field checks.
  fc.assert(
    fc.property(
      rec(
        { v: fc.jsonValue({ maxDepth: 1 }), ok: fc.jsonValue({ maxDepth: 1 }), type: fc.constantFrom('revoke', 'sync', 'stored', 'page', 'x'), error: fc.jsonValue({ maxDepth: 2 }), items: fc.jsonValue({ maxDepth: 2 }), keys: fc.jsonValue({ maxDepth: 2 }) },
        { requiredKeys: [] },
      ),
      (o) => void typedOrValue(() => decode(frame(o)), safeStringify(o)),
    ),
    { numRuns },
  );
  // Non-bytes input.
  fc.assert(fc.property(fc.anything().filter((v) => !(v instanceof Uint8Array)), (v) => rejectedTyped(() => decode(v as Uint8Array))), { numRuns: 100 });
}

/** Any single leaf of a valid message replaced by an arbitrary JSON value: typed or a value. */
function assertLeafFuzzTyped<T>(base: fc.Arbitrary<T>, toJson: (x: T) => unknown, spec: Spec, decode: (json: unknown) => unknown, numRuns = RUNS): void {
  fc.assert(
    fc.property(
      base.chain((x) => {
        const json = JSON.parse(JSON.stringify(toJson(x))) as unknown;
        const replaceSites = sites(spec, json).filter((s) => s.kind === 'replace');
        return fc.tuple(fc.constant(json), fc.constantFrom(...replaceSites), fc.jsonValue({ maxDepth: 2 }));
      }),
      ([json, site, v]) => {
        const c = JSON.parse(JSON.stringify(json)) as unknown;
        setOwn(at(c, site.path.slice(0, -1)), site.path[site.path.length - 1]!, v);
        typedOrValue(() => decode(c), `${site.path.join('.')} = ${safeStringify(v)}`);
      },
    ),
    { numRuns },
  );
}

const viaBytes = (decode: (b: Uint8Array) => unknown) => (json: unknown) => decode(frame(json));

// ---------------------------------------------------------------------------------------
// Declarations against the table: the same fields in the same order, the same presence, the
// same kinds with the same bounds, nested messages compared in full.

type Shape = [name: string, presence: string, kind: unknown][];
/** What a declaration is, as far as the table speaks of it. */
type Declaration = { readonly fields: WireFields };

function declaredShape(codec: Declaration): Shape {
  return Object.entries(codec.fields).map(([name, f]) => {
    const flags = f as { optional?: true; implied?: true };
    return [name, flags.implied === true ? 'implied' : flags.optional === true ? 'optional' : 'required', declaredKind(f.kind)];
  });
}

function declaredKind(k: WireFieldKind): unknown {
  switch (k.kind) {
    case 'object':
    case 'objectOrNull':
      return { kind: k.kind, message: declaredShape(k.codec) };
    case 'orNull':
      return { kind: k.kind, field: declaredKind(k.field.kind) };
    case 'array':
      return { kind: k.kind, minItems: k.minItems, maxItems: k.maxItems, message: declaredShape(k.codec) };
    case 'openArray':
      return { kind: k.kind, minItems: k.minItems, maxItems: k.maxItems, items: k.items === undefined ? undefined : declaredShape(k.items) };
    case 'enum':
      return { kind: k.kind, values: [...k.values].sort() };
    default:
      return { ...k };
  }
}

function tableShape(message: WireMessage): Shape {
  return Object.entries(message.fields).map(([name, f]) => [name, f.presence, tableKind(f.want)]);
}

function tableKind(k: WireKind): unknown {
  switch (k.kind) {
    case 'object':
    case 'objectOrNull':
      return { kind: k.kind, message: tableShape(k.message) };
    case 'orNull':
      return { kind: k.kind, field: tableKind(k.field) };
    case 'array':
      return { kind: k.kind, minItems: k.minItems, maxItems: k.maxItems, message: tableShape(k.message) };
    case 'openArray':
      return { kind: k.kind, minItems: k.minItems, maxItems: k.maxItems, items: k.items === undefined ? undefined : tableShape(k.items) };
    case 'enum':
      return { kind: k.kind, values: [...k.values].sort() };
    default:
      return { ...k };
  }
}

const DECLARED: [name: string, codec: Declaration, table: WireMessage][] = [
  ['HandleDescriptorMessage', HandleDescriptorMessage, HANDLE_DESCRIPTOR_WIRE],
  ['DelegationMessage', DelegationMessage, DELEGATION_WIRE],
  ['GrantMessage', GrantMessage, GRANT_WIRE],
  ['RevocationMessage', RevocationMessage, REVOCATION_WIRE],
  ['EncryptRequestMessage', EncryptRequestMessage, ENCRYPT_REQUEST_WIRE],
  ['RegisterHandleMessage', RegisterHandleMessage, REGISTER_HANDLE_WIRE],
  ['WireErrorBody', WireErrorBody, WIRE_ERROR_WIRE],
  ['ErrorReplyBody', ErrorReplyBody, ERROR_REPLY_WIRE],
  ['PartialRequestBody', PartialRequestBody, PARTIAL_REQUEST_WIRE],
  ['PartialBatchRequestBody', PartialBatchRequestBody, PARTIAL_BATCH_REQUEST_WIRE],
  ['PartialAnswerBody', PartialAnswerBody, PARTIAL_ANSWER_WIRE],
  ['PartialReplyOkBody', PartialReplyOkBody, PARTIAL_REPLY_OK_WIRE],
  ['PartialBatchReplyOkBody', PartialBatchReplyOkBody, PARTIAL_BATCH_REPLY_OK_WIRE],
  ['RevocationEnvelopeBody', RevocationEnvelopeBody, REVOCATION_ENVELOPE_WIRE],
  ['AclRevokeBody', AclRevokeBody, ACL_REVOKE_WIRE],
  ['AclSyncBody', AclSyncBody, ACL_SYNC_WIRE],
  ['AclStoredBody', AclStoredBody, ACL_STORED_WIRE],
  ['AclPageBody', AclPageBody, ACL_PAGE_WIRE],
  ['KeysRequestBody', KeysRequestBody, KEYS_REQUEST_WIRE],
  ['KeysReplyOkBody', KeysReplyOkBody, KEYS_REPLY_OK_WIRE],
];

// ---------------------------------------------------------------------------------------

describe('authz messages and node frames (property)', function () {
  this.timeout(60_000);

  describe('declarations against the hand-written table (test/support/wire-table.ts)', () => {
    for (const [name, codec, table] of DECLARED) {
      it(`${name} is exactly the ${table.name} of the table: fields, order, presence, kinds and bounds`, () => {
        assert.deepStrictEqual(declaredShape(codec), tableShape(table), `${name} differs from the table`);
      });
    }

    it('every message declaration of core/messages.ts and core/node-messages.ts has its table entry', () => {
      const isCodec = (v: unknown): boolean =>
        typeof v === 'object' && v !== null && typeof (v as { decode?: unknown }).decode === 'function' && typeof (v as { fields?: unknown }).fields === 'object';
      const exported = [...Object.entries(signedDeclarations), ...Object.entries(nodeDeclarations)].filter(([, v]) => isCodec(v));
      assert.ok(exported.length >= DECLARED.length);
      const covered = new Set<unknown>(DECLARED.map(([, codec]) => codec));
      for (const [name, codec] of exported) assert.ok(covered.has(codec), `${name} has no entry in the table`);
    });
  });

  const jsonParsers: { name: string; parse: (v: unknown) => unknown; arb: fc.Arbitrary<any>; toJson: (x: any) => unknown; spec: Spec }[] = [
    { name: 'DelegationMessage.decode', parse: DelegationMessage.decode, arb: delegationArb, toJson: DelegationMessage.encode, spec: DELEGATION },
    { name: 'GrantMessage.decode', parse: GrantMessage.decode, arb: grantArb, toJson: GrantMessage.encode, spec: GRANT },
    { name: 'RevocationMessage.decode', parse: RevocationMessage.decode, arb: revocationArb, toJson: RevocationMessage.encode, spec: REVOCATION },
    { name: 'EncryptRequestMessage.decode', parse: EncryptRequestMessage.decode, arb: encryptArb, toJson: EncryptRequestMessage.encode, spec: ENCRYPT },
    { name: 'RegisterHandleMessage.decode', parse: RegisterHandleMessage.decode, arb: registerArb, toJson: RegisterHandleMessage.encode, spec: REGISTER },
    { name: 'HandleDescriptorMessage.decode', parse: HandleDescriptorMessage.decode, arb: descriptorArb, toJson: HandleDescriptorMessage.encode, spec: DESCRIPTOR },
    { name: 'parsePartialAnswer', parse: (v) => parsePartialAnswer(v), arb: answerArb, toJson: partialAnswerToJson, spec: ANSWER },
  ];

  for (const p of jsonParsers) {
    describe(p.name, () => {
      it('(a) arbitrary values are a TkmsError or a message', () => {
        assertArbitraryJsonTyped(p.parse);
        assertLeafFuzzTyped(p.arb, p.toJson, p.spec, p.parse);
      });

      it('(b) one invalid mutation of a valid message (type, length, hex, extra/missing field, range) is a TkmsError', () => {
        assertMutationsRejected(p.arb, p.toJson, p.spec, p.parse, 500);
      });

      it('(c) valid random messages round-trip, directly and through JSON text', () => {
        fc.assert(
          fc.property(p.arb, (x) => {
            assert.deepStrictEqual(p.parse(p.toJson(x)), x);
            assert.deepStrictEqual(p.parse(JSON.parse(JSON.stringify(p.toJson(x)))), x);
          }),
          { numRuns: RUNS },
        );
      });
    });
  }

  const frames: {
    name: string;
    decode: (b: Uint8Array) => unknown;
    cases: { label: string; arb: fc.Arbitrary<any>; encode: (x: any) => Uint8Array; spec: Spec; expected?: (x: any) => unknown }[];
  }[] = [
    {
      name: 'decodePartialRequest',
      decode: decodePartialRequest,
      cases: [{ label: 'request', arb: partialRequestArb, encode: encodePartialRequest, spec: PARTIAL_REQUEST }],
    },
    {
      name: 'decodePartialReply',
      decode: decodePartialReply,
      cases: [
        { label: 'answer', arb: answerArb.map((a) => ({ ok: true as const, ...a })), encode: encodePartialReply, spec: PARTIAL_REPLY_OK },
        { label: 'error', arb: wireErrorArb, encode: encodePartialReply, spec: ERROR_REPLY },
      ],
    },
    {
      name: 'decodePartialBatchRequest',
      // A malformed item comes back as its error in its place; here any error is thrown, so every mutation must be caught.
      decode: (b: Uint8Array) => {
        const items = decodePartialBatchRequest(b);
        for (const item of items) if (item instanceof TkmsError) throw item;
        return items;
      },
      cases: [{ label: 'batch', arb: fc.array(partialRequestArb, { minLength: 1, maxLength: 3 }), encode: encodePartialBatchRequest, spec: PARTIAL_BATCH_REQUEST }],
    },
    {
      name: 'decodePartialBatchReply',
      decode: (b: Uint8Array) => decodePartialBatchReply(b, 2),
      cases: [
        {
          label: 'replies',
          arb: fc.array(answerArb.map((a) => ({ ok: true as const, ...a })), { minLength: 2, maxLength: 2 }).map((replies) => ({ ok: true as const, replies })),
          encode: encodePartialBatchReply,
          spec: PARTIAL_BATCH_REPLY_OK,
        },
        { label: 'error', arb: wireErrorArb, encode: encodePartialBatchReply, spec: ERROR_REPLY },
      ],
    },
    {
      name: 'decodeAclRequest',
      decode: decodeAclRequest,
      cases: [
        { label: 'revoke', arb: envelopeArb.map((item) => ({ type: 'revoke' as const, item })), encode: encodeAclRequest, spec: ACL_REVOKE },
        { label: 'sync', arb: offsetArb.map((offset) => ({ type: 'sync' as const, offset })), encode: encodeAclRequest, spec: ACL_SYNC },
      ],
    },
    {
      name: 'decodeAclReply',
      decode: decodeAclReply,
      cases: [
        { label: 'stored', arb: fc.boolean().map((stored) => ({ ok: true as const, type: 'stored' as const, stored })), encode: encodeAclReply, spec: ACL_STORED },
        {
          label: 'page',
          arb: rec({ ok: fc.constant(true as const), type: fc.constant('page' as const), items: fc.array(envelopeArb, { minLength: 1, maxLength: 3 }), next: fc.option(offsetArb, { nil: null }) }),
          encode: encodeAclReply,
          spec: ACL_PAGE,
        },
        { label: 'error', arb: wireErrorArb, encode: encodeAclReply, spec: ERROR_REPLY },
      ],
    },
    {
      name: 'decodeKeysRequest',
      decode: decodeKeysRequest,
      cases: [
        { label: 'request', arb: fc.constant(0), encode: () => encodeKeysRequest(), spec: KEYS_REQUEST, expected: () => ({ handoversFrom: 0 }) },
        { label: 'paged request', arb: fc.integer({ min: 0, max: 0xffff_ffff }), encode: (from: number) => encodeKeysRequest(from), spec: KEYS_REQUEST, expected: (from: number) => ({ handoversFrom: from }) },
      ],
    },
    {
      name: 'decodeKeysReply',
      decode: decodeKeysReply,
      cases: [
        { label: 'keys', arb: fc.array(fc.jsonValue({ maxDepth: 3 }), { maxLength: 5 }).map((keys) => ({ ok: true as const, keys })), encode: encodeKeysReply, spec: KEYS_REPLY, expected: (x) => JSON.parse(JSON.stringify(x)) },
        { label: 'error', arb: wireErrorArb, encode: encodeKeysReply, spec: ERROR_REPLY },
      ],
    },
  ];

  for (const f of frames) {
    describe(f.name, () => {
      it('(a) arbitrary bytes, strings, JSON values and non-bytes are a TkmsError or a frame', () => {
        assertArbitraryBytesTyped(f.decode);
        for (const c of f.cases) {
          const decode = viaBytes(f.decode);
          fc.assert(fc.property(c.arb, fc.nat(), fc.integer({ min: 1, max: 255 }), (x, pos, mask) => {
            // Random byte flips of a valid frame.
            const b = Uint8Array.from(c.encode(x));
            if (b.length > 0) b[pos % b.length]! ^= mask;
            typedOrValue(() => f.decode(b), `${c.label} flipped at ${pos % b.length}`);
          }), { numRuns: RUNS });
          fc.assert(fc.property(c.arb, fc.nat(), (x, cut) => {
            const b = c.encode(x);
            typedOrValue(() => f.decode(b.subarray(0, cut % (b.length + 1))), `${c.label} truncated`);
          }), { numRuns: 100 });
          const cSpec = c.spec;
          assertLeafFuzzTyped(c.arb, (x) => JSON.parse(new TextDecoder().decode(c.encode(x))), cSpec, decode, 200);
        }
      });

      it('(b) one invalid mutation of a valid frame is a TkmsError', () => {
        for (const c of f.cases) {
          assertMutationsRejected(c.arb, (x) => JSON.parse(new TextDecoder().decode(c.encode(x))), c.spec, viaBytes(f.decode), 300);
        }
      });

      it('(c) valid random frames round-trip through encode → decode', () => {
        for (const c of f.cases) {
          fc.assert(
            fc.property(c.arb, (x) => {
              assert.deepStrictEqual(f.decode(c.encode(x)), c.expected ? c.expected(x) : x);
            }),
            { numRuns: RUNS },
          );
        }
      });

      it('frames over the size limit are payload_too_large; invalid UTF-8 is bad_request', () => {
        const big = new Uint8Array(MAX_NODE_FRAME_BYTES + 1).fill(0x20);
        assert.throws(() => f.decode(big), (e: unknown) => isTkmsError(e, 'payload_too_large'));
        assert.throws(() => f.decode(Uint8Array.of(0x7b, 0xff, 0x7d)), (e: unknown) => isTkmsError(e, 'bad_request'));
        assert.throws(() => f.decode(new Uint8Array(0)), (e: unknown) => isTkmsError(e, 'bad_request'));
      });
    });
  }

  describe('frame specifics', () => {
    it('partial request: a null grant decodes as undefined; the owner path round-trips without one', () => {
      fc.assert(
        fc.property(partialRequestArb, (r) => {
          const decoded = decodePartialRequest(encodePartialRequest({ ...r, grant: undefined }));
          assert.equal(decoded.grant, undefined);
        }),
        { numRuns: 50 },
      );
    });

    it('acl requests and replies: every variant round-trips', () => {
      fc.assert(fc.property(aclRequestArb, (r) => assert.deepStrictEqual(decodeAclRequest(encodeAclRequest(r)), r)), { numRuns: 200 });
      fc.assert(fc.property(aclReplyArb, (r) => assert.deepStrictEqual(decodeAclReply(encodeAclReply(r)), r)), { numRuns: 200 });
      fc.assert(fc.property(partialReplyArb, (r) => assert.deepStrictEqual(decodePartialReply(encodePartialReply(r)), r)), { numRuns: 200 });
    });

    it('an error\'s retryAfterSeconds must be an integer from 0 to a day; anything else is bad_request', () => {
      const frame = (retry: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify({ ok: false, error: { code: 'rate_limited', message: 'slow down', retryAfterSeconds: retry } }));
      assert.deepStrictEqual(decodePartialReply(frame(7)), { ok: false, code: 'rate_limited', message: 'slow down', retryAfterSeconds: 7 });
      const bad = fc.oneof(
        fc.integer({ max: -1 }),
        fc.integer({ min: MAX_RETRY_AFTER_SECONDS + 1 }),
        fc.double({ noNaN: true }).filter((d) => !Number.isInteger(d)),
        fc.constant(Number.MAX_SAFE_INTEGER + 2),
        nonString.filter((v) => typeof v !== 'number'),
        fc.string(),
      );
      fc.assert(fc.property(bad, (retry) => rejectedTyped(() => decodePartialReply(frame(retry)), `retryAfterSeconds = ${safeStringify(retry)}`)), { numRuns: 300 });
    });

    it('partial batches: a bad item is its own error and the rest decode; mixed replies round-trip; sizes are bounded', () => {
      fc.assert(
        fc.property(fc.array(partialRequestArb, { minLength: 2, maxLength: 4 }), fc.nat(), fc.jsonValue({ maxDepth: 2 }), (items, at, junk) => {
          const json = JSON.parse(new TextDecoder().decode(encodePartialBatchRequest(items))) as { requests: unknown[] };
          const bad = at % items.length;
          json.requests[bad] = typeof junk === 'object' && junk !== null && !Array.isArray(junk) ? { ...junk, v: 2 } : junk;
          const decoded = decodePartialBatchRequest(new TextEncoder().encode(JSON.stringify(json)));
          assert.equal(decoded.length, items.length);
          decoded.forEach((d, i) => {
            if (i === bad) assert.ok(isTkmsError(d, 'bad_request'), `item ${i}: ${safeStringify(d)}`);
            else assert.deepStrictEqual(d, items[i]);
          });
        }),
        { numRuns: 100 },
      );
      fc.assert(
        fc.property(fc.array(partialReplyArb, { minLength: 1, maxLength: 5 }), (replies) => {
          assert.deepStrictEqual(decodePartialBatchReply(encodePartialBatchReply({ ok: true, replies }), replies.length), { ok: true, replies });
          rejectedTyped(() => decodePartialBatchReply(encodePartialBatchReply({ ok: true, replies }), replies.length + 1), 'one reply short');
        }),
        { numRuns: 100 },
      );
      const one = fc.sample(partialRequestArb, 1)[0]!;
      assert.equal(decodePartialBatchRequest(encodePartialBatchRequest(Array(MAX_PARTIAL_BATCH).fill(one))).length, MAX_PARTIAL_BATCH);
      assert.throws(() => encodePartialBatchRequest(Array(MAX_PARTIAL_BATCH + 1).fill(one)), (e: unknown) => isTkmsError(e, 'bad_request'));
      assert.throws(() => encodePartialBatchRequest([]), (e: unknown) => isTkmsError(e, 'bad_request'));
      // The JSON text the gateway builds frames from is exactly what the single-request protocol carries.
      assert.deepStrictEqual(new TextEncoder().encode(partialRequestJson(one)), encodePartialRequest(one));
    });

    it('a page of exactly REVOCATION_PAGE_SIZE items is accepted', () => {
      const [item] = fc.sample(envelopeArb, { numRuns: 1, seed: 7 });
      const items = Array.from({ length: REVOCATION_PAGE_SIZE }, () => item!);
      const decoded = decodeAclReply(encodeAclReply({ ok: true, type: 'page', items, next: 0 }));
      assert.ok(decoded.ok && decoded.type === 'page' && decoded.items.length === REVOCATION_PAGE_SIZE);
    });
  });

  describe('decodeBase64', () => {
    const isBad = (fn: () => unknown, code: ErrorCode = 'bad_request') => assert.throws(fn, (e: unknown) => isTkmsError(e, code));

    it('round trip for random bytes, and agrees with Buffer', () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
          const s = encodeBase64(b);
          assert.equal(s, Buffer.from(b).toString('base64'));
          assert.deepStrictEqual(decodeBase64(s), b);
        }),
        { numRuns: 500 },
      );
      // Larger than one 0x8000 chunk of the encoder.
      const big = new Uint8Array(100_003).map((_, i) => (i * 7919) & 0xff);
      assert.deepStrictEqual(decodeBase64(encodeBase64(big)), big);
    });

    it('random strings and values are a TkmsError or the canonical encoding of what they decode to', () => {
      fc.assert(
        fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), fc.string({ unit: fc.constantFrom(...'ABab01+/=-_ \n'), maxLength: 24 })), (s) => {
          const out = typedOrValue(() => decodeBase64(s), JSON.stringify(s));
          if (out !== undefined) assert.equal(encodeBase64(out), s);
        }),
        { numRuns: 1000 },
      );
      fc.assert(fc.property(fc.anything().filter((v) => typeof v !== 'string'), (v) => isBad(() => decodeBase64(v))), { numRuns: 200 });
    });

    it('rejects whitespace anywhere, missing padding, extra padding, URL alphabet (bad_request)', () => {
      fc.assert(
        fc.property(fc.uint8Array({ minLength: 1, maxLength: 60 }), fc.nat(), fc.constantFrom(' ', '\n', '\r', '\t', '\r\n'), (b, pos, ws) => {
          const s = encodeBase64(b);
          isBad(() => decodeBase64(insertAt(s, pos, ws)));
          if (s.endsWith('=')) isBad(() => decodeBase64(s.replace(/=+$/, '')));
          isBad(() => decodeBase64(`${s}=`));
          isBad(() => decodeBase64(`${s}====`));
          const url = s.replace(/\+/g, '-').replace(/\//g, '_');
          if (url !== s) isBad(() => decodeBase64(url));
        }),
        { numRuns: 300 },
      );
      for (const s of ['A', 'AA', 'AAA', 'A===', '====', '=AAA', 'AA=A', 'AA==AA==', 'AAAA ', ' AAAA', 'AA\u00a0=', 'ＡＡＡＡ']) isBad(() => decodeBase64(s));
    });

    it('rejects non-zero padding bits, e.g. "AB==" (bad_request)', () => {
      assert.deepStrictEqual(decodeBase64('AA=='), Uint8Array.of(0));
      isBad(() => decodeBase64('AB=='));
      isBad(() => decodeBase64('AAB='));
      const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
      fc.assert(
        fc.property(fc.uint8Array({ minLength: 1, maxLength: 60 }).filter((b) => b.length % 3 !== 0), fc.integer({ min: 1, max: 15 }), (b, delta) => {
          const s = encodeBase64(b);
          const pad = s.endsWith('==') ? 2 : 1;
          const i = s.length - pad - 1;
          const unusedBits = pad === 2 ? 4 : 2;
          const v = ALPHABET.indexOf(s[i]!);
          assert.equal(v & ((1 << unusedBits) - 1), 0);
          const mask = (1 << unusedBits) - 1;
          const padBits = delta & mask || 1;
          // Same data bits, non-zero padding bits: atob would decode it to the same bytes.
          const mutated = s.slice(0, i) + ALPHABET[v | padBits]! + s.slice(i + 1);
          assert.deepStrictEqual(new Uint8Array(Buffer.from(mutated, 'base64')), b);
          isBad(() => decodeBase64(mutated));
        }),
        { numRuns: 300 },
      );
    });

    it('maxLength: strings beyond 4·⌈max/3⌉ characters are payload_too_large before decoding', () => {
      fc.assert(
        fc.property(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 1, max: 50 }), (max, extra) => {
          const limitChars = Math.ceil(max / 3) * 4;
          isBad(() => decodeBase64('A'.repeat(limitChars + extra), { maxLength: max }), 'payload_too_large');
          assert.equal(decodeBase64(encodeBase64(new Uint8Array(max)), { maxLength: max }).length, max);
        }),
        { numRuns: 200 },
      );
      // The cap applies before the alphabet check: a huge invalid string is still payload_too_large.
      isBad(() => decodeBase64('!'.repeat(1_000_000), { maxLength: 10 }), 'payload_too_large');
    });

    // 4·⌈max/3⌉ characters decode to up to max + 2 bytes: the decoded length is checked too.
    it('maxLength is exact — max + 1 and max + 2 bytes are refused', () => {
      for (const max of [1, 4, 1024 * 1024]) {
        for (const over of [1, 2]) isBad(() => decodeBase64(encodeBase64(new Uint8Array(max + over)), { maxLength: max }), 'payload_too_large');
      }
    });
  });
});
