// Named builders and the schema-only compiler, not `Type` and 'typebox/compile': a browser bundle
// of the client then carries about 20 kB (gzip) of typebox instead of 40.
import { Compile } from 'typebox/schema';
import {
  Array as ArrayType,
  Boolean as BooleanType,
  Enum,
  Integer,
  Literal,
  Null,
  Object as ObjectType,
  Optional,
  String as StringType,
  Union,
  Unknown,
  type Static,
  type TBoolean,
  type TInteger,
  type TObject,
  type TSchema,
  type TString,
} from 'typebox/type';
import { hexToBytes } from '@noble/hashes/utils.js';
import { decodeBase64, decodeHex, encodeBase64, encodeHex, bytesToHex } from './bytes.ts';
import type { Eip712FieldType } from './eip712.ts';
import { TkmsError } from './errors.ts';
import { requireExactFields } from './json-frame.ts';
import { ADDRESS_LENGTH, assertKeyId, decodeAddress, KEY_ID_PATTERN, toChecksumAddress } from './identifiers.ts';

/**
 * Reusable field declarations for wire messages. One field says everything about itself once:
 * its JSON wire form (a plain JSON Schema with description and examples, for validators and
 * OpenAPI), its EIP-712 type when it is signed, and the codec between the wire form and the
 * decoded value (bytes as Uint8Array). Hex and base64 turn into bytes here and nowhere else.
 *
 * A compiled validator decides whether a message is acceptable; `explain` only runs on a value
 * the validator refused, to throw the same typed error (bad_hex, bad_length, bad_address, …)
 * the hand-written decoders always threw, so clients see unchanged codes and messages.
 */
export interface Field<J extends TSchema = TSchema, D = unknown> {
  readonly schema: J;
  /** The field's EIP-712 type, for fields of signed messages. */
  readonly eip712: Eip712FieldType | undefined;
  /** What the field is, with its parameters: for generated tests and docs (the schema says the same, less directly). */
  readonly kind: FieldKind;
  /** Throws this field's typed error for a value its schema refuses; returns for one it accepts. */
  readonly explain: (value: unknown, name: string) => void;
  /** A value the schema accepted → the decoded value, after the checks no JSON Schema can state. */
  readonly decode: (value: Static<J>, name: string) => D;
  readonly encode: (value: D) => Static<J>;
}

/** Any declared field, whatever its wire and decoded types. */
export type AnyField = Field<any, any>;

export type FieldKind =
  | { kind: 'hex'; length: number; prefix: 'optional' | 'required' | 'forbidden' }
  | { kind: 'hexUpTo'; maxLength: number; prefix: 'optional' | 'required' | 'forbidden' }
  | { kind: 'address' }
  | { kind: 'keyId' }
  | { kind: 'unixSeconds' }
  | { kind: 'integer'; min: number; max: number }
  | { kind: 'base64'; maxLength: number }
  | { kind: 'boolean' }
  | { kind: 'enum'; values: readonly string[] }
  | { kind: 'text'; maxLength: number }
  | { kind: 'literal'; value: string | number | boolean }
  | { kind: 'object'; codec: ObjectCodec<Fields> }
  /** An object or null; null decodes as undefined. */
  | { kind: 'objectOrNull'; codec: ObjectCodec<Fields> }
  | { kind: 'orNull'; field: AnyField }
  | { kind: 'array'; codec: ObjectCodec<Fields>; minItems: number; maxItems: number }
  /** Items left to the receiver; `items` names what they are when each is decoded on its own. */
  | { kind: 'openArray'; minItems: number; maxItems: number; items?: ObjectCodec<Fields> };

export type DecodedOf<F> = F extends Field<TSchema, infer D> ? D : never;
export type JsonOf<F> = F extends Field<infer J, unknown> ? Static<J> : never;

export interface FieldDoc {
  description: string;
  /** One example of the wire form, which its own schema accepts (test/unit/core-authz.test.ts). */
  example?: unknown;
}

/** Unix times are whole seconds; anything past year 10000 is a mistake, not a time. */
export const MAX_TIMESTAMP = 253_402_300_799;
export const BASE64_PATTERN = '^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$';

const Type = { Array: ArrayType, Boolean: BooleanType, Enum, Integer, Literal, Null, Object: ObjectType, Optional, String: StringType, Union, Unknown };

const docOf = (doc: FieldDoc): { description: string; examples?: unknown[] } =>
  doc.example === undefined ? { description: doc.description } : { description: doc.description, examples: [doc.example] };

const stripPrefix = (s: string): string => (s.charCodeAt(0) === 0x30 && (s.charCodeAt(1) === 0x78 || s.charCodeAt(1) === 0x58) ? s.slice(2) : s);

export interface HexFieldOptions extends FieldDoc {
  eip712?: Eip712FieldType;
  /**
   * 'optional' (the default): 0x or 0X may lead, as decodeHex has always allowed; 'required':
   * it must (signatures); 'forbidden': it must not (SPKI, as the spec writes it). The encoder
   * writes 0x except when forbidden.
   */
  prefix?: 'optional' | 'required' | 'forbidden';
}

const PREFIX_PATTERN = { optional: '(?:0[xX])?', required: '0[xX]', forbidden: '' } as const;

/** Exactly `length` bytes as hex. */
export function hexBytesField(length: number, opts: HexFieldOptions): Field<TString, Uint8Array> {
  const prefix = opts.prefix ?? 'optional';
  return {
    schema: Type.String({ pattern: `^${PREFIX_PATTERN[prefix]}[0-9a-fA-F]{${length * 2}}$`, ...docOf(opts) }),
    eip712: opts.eip712,
    kind: { kind: 'hex', length, prefix },
    explain: (value, name) => {
      if (prefix === 'required') {
        if (typeof value !== 'string') throw new TkmsError('bad_hex', `${name} must be a hex string`);
        if (!value.startsWith('0x') && !value.startsWith('0X')) throw new TkmsError('bad_hex', `${name} must start with 0x`);
        decodeHex(value, { name, length, maxLength: length });
        return;
      }
      decodeHex(value, { name, length, allowPrefix: prefix !== 'forbidden' });
    },
    decode: (value) => hexToBytes(stripPrefix(value)),
    encode: prefix === 'forbidden' ? bytesToHex : encodeHex,
  };
}

/** Up to `maxLength` bytes as hex (any even number of digits). */
export function hexBytesUpToField(maxLength: number, opts: HexFieldOptions): Field<TString, Uint8Array> {
  const prefix = opts.prefix ?? 'optional';
  return {
    // With a fixed prefix (or none) maxLength bounds the digits; an optional prefix needs the count in the pattern.
    schema: Type.String({
      pattern: `^${PREFIX_PATTERN[prefix]}(?:[0-9a-fA-F]{2})${prefix === 'optional' ? `{0,${maxLength}}` : '*'}$`,
      maxLength: 2 * maxLength + (prefix === 'forbidden' ? 0 : 2),
      ...docOf(opts),
    }),
    eip712: opts.eip712,
    kind: { kind: 'hexUpTo', maxLength, prefix },
    explain: (value, name) => void decodeHex(value, { name, maxLength, allowPrefix: prefix !== 'forbidden' }),
    decode: (value) => hexToBytes(stripPrefix(value)),
    encode: prefix === 'forbidden' ? bytesToHex : encodeHex,
  };
}

// Hex letters only: the schema has already allowed nothing else after the 0x.
const HAS_LOWER = /[a-f]/;
const HAS_UPPER = /[A-F]/;

/**
 * An Ethereum address, 0x + 40 hex digits. All-lower or all-upper case is taken as is; mixed
 * case must carry a valid EIP-55 checksum (a decode step: no schema can hash). Written lower-case.
 */
export function addressField(opts: FieldDoc): Field<TString, Uint8Array> {
  return {
    schema: Type.String({ pattern: `^0x[0-9a-fA-F]{${ADDRESS_LENGTH * 2}}$`, ...docOf(opts) }),
    eip712: 'address',
    kind: { kind: 'address' },
    explain: (value, name) => void decodeAddress(value, name),
    decode: (value, name) => {
      const bytes = hexToBytes(value.slice(2));
      if (HAS_LOWER.test(value) && HAS_UPPER.test(value) && toChecksumAddress(bytes) !== value) {
        throw new TkmsError('bad_address', `${name} has an invalid EIP-55 checksum`);
      }
      return bytes;
    },
    encode: encodeHex,
  };
}

/** A key id (core/identifiers.ts): the pattern states every rule, so decoding is the identity. */
export function keyIdField(opts: FieldDoc): Field<TString, string> {
  return {
    schema: Type.String({ pattern: KEY_ID_PATTERN, ...docOf(opts) }),
    eip712: 'string',
    kind: { kind: 'keyId' },
    explain: (value) => assertKeyId(value),
    decode: (value) => value,
    encode: (value) => value,
  };
}

/** Unix time in whole seconds, a JSON integer; signed as uint64. */
export function unixSecondsField(opts: FieldDoc): Field<TInteger, number> {
  return {
    schema: Type.Integer({ minimum: 0, maximum: MAX_TIMESTAMP, ...docOf(opts) }),
    eip712: 'uint64',
    kind: { kind: 'unixSeconds' },
    explain: (value, name) => {
      if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > MAX_TIMESTAMP) {
        throw new TkmsError('bad_request', `${name} must be a unix time in whole seconds`);
      }
    },
    decode: (value) => value,
    encode: (value) => value,
  };
}

/** A JSON integer in [min, max]; `refusal` completes the bad_request message, e.g. "must be an integer in 1..65535". */
export function integerField(min: number, max: number, opts: FieldDoc & { refusal: string }): Field<TInteger, number> {
  return {
    schema: Type.Integer({ minimum: min, maximum: max, ...docOf(opts) }),
    eip712: undefined,
    kind: { kind: 'integer', min, max },
    explain: (value, name) => {
      if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) throw new TkmsError('bad_request', `${name} ${opts.refusal}`);
    },
    decode: (value) => value,
    encode: (value) => value,
  };
}

/**
 * Standard padded base64 for bulk data, at most `maxLength` decoded bytes. Canonical padding
 * bits and the exact decoded bound are decode steps (core/bytes.ts decodeBase64).
 */
export function base64Field(maxLength: number, opts: FieldDoc): Field<TString, Uint8Array> {
  return {
    schema: Type.String({ pattern: BASE64_PATTERN, maxLength: Math.ceil(maxLength / 3) * 4, ...docOf(opts) }),
    eip712: undefined,
    kind: { kind: 'base64', maxLength },
    explain: (value, name) => void decodeBase64(value, { name, maxLength }),
    decode: (value, name) => decodeBase64(value, { name, maxLength }),
    encode: encodeBase64,
  };
}

// ---------------------------------------------------------------------------------------
// Objects made of fields: the codec every message declaration is.

export type Fields = Record<string, Field<TSchema, any>>;
type OptionalKeys<F extends Fields> = { [K in keyof F]: F[K] extends { optional: true } ? K : never }[keyof F];
type ImpliedKeys<F extends Fields> = { [K in keyof F]: F[K] extends { implied: true } ? K : never }[keyof F];
type RequiredKeys<F extends Fields> = Exclude<keyof F, OptionalKeys<F>>;
type Flat<T> = { -readonly [K in keyof T]: T[K] };
/** The decoded value: bytes as Uint8Array, optional fields optional, implied constants (a frame's `v`) left out. */
export type Decoded<F extends Fields> = Flat<{ [K in Exclude<RequiredKeys<F>, ImpliedKeys<F>>]: DecodedOf<F[K]> } & { [K in OptionalKeys<F>]?: DecodedOf<F[K]> }>;
export type Json<F extends Fields> = Flat<{ [K in RequiredKeys<F>]: JsonOf<F[K]> } & { [K in OptionalKeys<F>]?: JsonOf<F[K]> }>;
type SchemaOf<F extends Fields> = TObject<{ [K in keyof F]: F[K]['schema'] }>;

/** A field that may be left out (never null): absent on the wire is absent in the decoded value. */
export function optionalField<J extends TSchema, D>(field: Field<J, D>): Field<J, D> & { optional: true } {
  return { ...field, schema: Type.Optional(field.schema) as unknown as J, optional: true };
}

export interface ObjectDoc {
  description: string;
  examples?: unknown[];
  /** Error messages name fields `what.field` (node frames) instead of `field` (signed messages). */
  qualified?: boolean;
}

export interface ObjectCodec<F extends Fields> {
  /** How errors name the object, e.g. "delegation" in `delegation is missing the field "handle"`. */
  readonly what: string;
  readonly fields: F;
  /** The JSON wire form: a plain JSON Schema object, exact fields, no additional properties. */
  readonly schema: SchemaOf<F>;
  /** Wire JSON → decoded value; any refusal is a TkmsError with the field's code. `what` renames the object in errors. */
  readonly decode: (value: unknown, what?: string) => Decoded<F>;
  /** Like decode, for a value the compiled validator (or an enclosing one) has already accepted. */
  readonly decodeValid: (value: Json<F>) => Decoded<F>;
  readonly encode: (value: Decoded<F>) => Json<F>;
}

export function objectCodec<F extends Fields>(what: string, fields: F, doc: ObjectDoc): ObjectCodec<F> {
  const { qualified, ...schemaDoc } = doc;
  const list: FieldList = Object.keys(fields).map((name) => [name, fields[name]!] as const);
  const schema = Type.Object(Object.fromEntries(list.map(([n, f]) => [n, f.schema])), { additionalProperties: false, ...schemaDoc }) as unknown as SchemaOf<F>;
  const validator = Compile(schema);
  const decodeValid = specializedDecoder(list) as (value: Json<F>) => Decoded<F>;
  return {
    what,
    fields,
    schema,
    decode: (value, name = what) => {
      if (!validator.Check(value)) explain(value, name);
      return decodeValid(value as Json<F>);
    },
    decodeValid,
    encode: (value) => {
      const out: Record<string, unknown> = {};
      const decoded = value as Record<string, unknown>;
      for (const [name, field] of list) {
        const v = decoded[name];
        if (v !== undefined || field.optional !== true) out[name] = field.encode(v);
      }
      return out as Json<F>;
    },
  };

  function explain(value: unknown, name: string): never {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new TkmsError('bad_request', `${name} must be a JSON object`);
    const obj = value as Record<string, unknown>;
    requireExactFields(obj, name, list.filter(([n, f]) => f.optional !== true || n in obj).map(([n]) => n));
    for (const [n, field] of list) if (n in obj) field.explain(obj[n], qualified === true ? `${name}.${n}` : n);
    // Every field passed its own check, so the validator saw something no field explains
    // (an inherited property, say): still a refusal, in the validator's words.
    const first = validator.Errors(value)[1][0];
    throw new TkmsError('bad_request', `${name} is not valid${first === undefined ? '' : `: ${first.instancePath || '/'} ${first.message}`}`);
  }
}

type FieldList = readonly (readonly [string, Field<TSchema, unknown> & { optional?: true; implied?: true }])[];

/**
 * The decoder of one object type as straight-line code, `(json) => ({ a: decodeA(json.a, "a"), … })`:
 * on the partial-request path a loop over fields costs about as much as the checks themselves
 * (every field access and call is megamorphic). Where code generation is forbidden (a strict
 * Content-Security-Policy in a browser) the loop does the same work, as typebox's validators fall back too.
 */
function specializedDecoder(list: FieldList): (value: unknown) => unknown {
  const loop = (value: unknown): unknown => {
    const out: Record<string, unknown> = {};
    const json = value as Record<string, unknown>;
    for (const [name, field] of list) if (field.implied !== true && (field.optional !== true || json[name] !== undefined)) out[name] = field.decode(json[name] as never, name);
    return out;
  };
  try {
    const key = (name: string): string => JSON.stringify(name);
    const call = (name: string, i: number): string => `d${i}(json[${key(name)}], ${key(name)})`;
    const required = list.flatMap(([name, f], i) => (f.optional === true || f.implied === true ? [] : [`${key(name)}: ${call(name, i)}`]));
    const optional = list.flatMap(([name, f], i) => (f.optional === true ? [`if (json[${key(name)}] !== undefined) out[${key(name)}] = ${call(name, i)};`] : []));
    const body = optional.length === 0 ? `return (json) => ({ ${required.join(', ')} });` : `return (json) => { const out = { ${required.join(', ')} }; ${optional.join(' ')} return out; };`;
    const make = new Function(...list.map((_, i) => `d${i}`), body) as (...decoders: unknown[]) => (value: unknown) => unknown;
    return make(...list.map(([, field]) => field.decode));
  } catch {
    return loop;
  }
}

/**
 * A nested object, e.g. the delegation inside a partial request. Its errors name it as its codec
 * does ("handle descriptor …"), or, with `byFieldName`, by its path in the enclosing object.
 */
export function nestedField<F extends Fields>(codec: ObjectCodec<F>, opts: { byFieldName?: boolean } = {}): Field<SchemaOf<F>, Decoded<F>> {
  return {
    schema: codec.schema,
    eip712: undefined,
    kind: { kind: 'object', codec: codec as unknown as ObjectCodec<Fields> },
    explain: (value, name) => void codec.decode(value, opts.byFieldName === true ? name : codec.what),
    decode: (value) => codec.decodeValid(value as Json<F>),
    encode: (value) => codec.encode(value) as Static<SchemaOf<F>>,
  };
}

/** A nested object or JSON null, decoded as undefined (e.g. the grant of an owner's request). */
export function optionalNestedField<F extends Fields>(codec: ObjectCodec<F>): Field<TSchema, Decoded<F> | undefined> {
  return {
    schema: Type.Union([codec.schema, Type.Null()]),
    eip712: undefined,
    kind: { kind: 'objectOrNull', codec: codec as unknown as ObjectCodec<Fields> },
    explain: (value) => void (value === null ? undefined : codec.decode(value)),
    decode: (value) => (value === null ? undefined : codec.decodeValid(value as Json<F>)),
    encode: (value) => (value === undefined ? null : codec.encode(value)),
  };
}

/**
 * A constant the decoded value leaves out and the encoder writes, e.g. a frame's version `v: 1`;
 * anything else on the wire is refused with `refusal`.
 */
export function impliedField<V extends string | number | boolean>(value: V, opts: FieldDoc & { refusal: string }): Field<TSchema, V> & { implied: true } {
  return { ...literalField(value, opts), implied: true };
}

/** A constant that stays in the decoded value, e.g. the `ok: true` of a reply or the `type` of a variant. */
export function literalField<V extends string | number | boolean>(value: V, opts: FieldDoc & { refusal: string }): Field<TSchema, V> {
  return {
    schema: Type.Literal(value, docOf(opts)),
    eip712: undefined,
    kind: { kind: 'literal', value },
    explain: (v, name) => {
      if (v !== value) throw new TkmsError('bad_request', `${name}: ${opts.refusal}`);
    },
    decode: () => value,
    encode: () => value,
  };
}

/** A JSON boolean. */
export function booleanField(opts: FieldDoc): Field<TBoolean, boolean> {
  return {
    schema: Type.Boolean(docOf(opts)),
    eip712: undefined,
    kind: { kind: 'boolean' },
    explain: (value, name) => {
      if (typeof value !== 'boolean') throw new TkmsError('bad_request', `${name} must be a boolean`);
    },
    decode: (value) => value,
    encode: (value) => value,
  };
}

/** One of a fixed set of strings (e.g. the error codes). */
export function enumField<V extends string>(values: readonly V[], opts: FieldDoc & { refusal: string }): Field<TSchema, V> {
  const known = new Set<string>(values);
  return {
    schema: Type.Enum([...values], docOf(opts)),
    eip712: undefined,
    kind: { kind: 'enum', values },
    explain: (value, name) => {
      if (typeof value !== 'string' || !known.has(value)) throw new TkmsError('bad_request', `${name} ${opts.refusal}`);
    },
    decode: (value) => value as V,
    encode: (value) => value,
  };
}

/** A string of at most `maxLength` UTF-16 units (the schema's maxLength counts code points, so the decoder checks units too). */
export function textField(maxLength: number, opts: FieldDoc): Field<TString, string> {
  const refuse = (name: string): never => {
    throw new TkmsError('bad_request', `${name} must be a string of at most ${maxLength} characters`);
  };
  return {
    schema: Type.String({ maxLength, ...docOf(opts) }),
    eip712: undefined,
    kind: { kind: 'text', maxLength },
    explain: (value, name) => void (typeof value !== 'string' || value.length > maxLength ? refuse(name) : undefined),
    decode: (value, name) => (value.length > maxLength ? refuse(name) : value),
    encode: (value) => value,
  };
}

/** A field's value or JSON null (null decodes as null). */
export function orNullField<J extends TSchema, D>(field: Field<J, D>): Field<TSchema, D | null> {
  return {
    schema: Type.Union([field.schema, Type.Null()]),
    eip712: undefined,
    kind: { kind: 'orNull', field },
    explain: (value, name) => void (value === null ? undefined : field.explain(value, name)),
    decode: (value, name) => (value === null ? null : field.decode(value as Static<J>, name)),
    encode: (value) => (value === null ? null : field.encode(value)),
  };
}

export interface ArrayOptions extends FieldDoc {
  minItems?: number;
  maxItems: number;
}

function arrayRefusal(name: string, opts: ArrayOptions): never {
  const range = opts.minItems === undefined ? `at most ${opts.maxItems}` : `${opts.minItems} to ${opts.maxItems}`;
  throw new TkmsError('bad_request', `${name} must be an array of ${range}`);
}

/** An array of objects of one type; one bad item refuses the whole array. */
export function arrayField<F extends Fields>(codec: ObjectCodec<F>, opts: ArrayOptions): Field<TSchema, Decoded<F>[]> {
  const { minItems, maxItems, ...doc } = opts;
  return {
    schema: Type.Array(codec.schema, { ...(minItems === undefined ? {} : { minItems }), maxItems, ...docOf(doc) }),
    eip712: undefined,
    kind: { kind: 'array', codec: codec as unknown as ObjectCodec<Fields>, minItems: minItems ?? 0, maxItems },
    explain: (value, name) => {
      if (!Array.isArray(value) || value.length > maxItems || value.length < (minItems ?? 0)) arrayRefusal(name, opts);
      value.forEach((item, i) => codec.decode(item, `${name}[${i}]`));
    },
    decode: (value) => (value as Json<F>[]).map(codec.decodeValid),
    encode: (value) => value.map(codec.encode),
  };
}

/**
 * An array whose items the schema leaves open: either the receiver validates them elsewhere
 * (DKG results), or each item is decoded on its own so that one bad item does not sink the rest.
 */
export function openArrayField(opts: ArrayOptions & { items?: ObjectCodec<any> }): Field<TSchema, unknown[]> {
  const { minItems, maxItems, items, ...doc } = opts;
  return {
    schema: Type.Array(Type.Unknown(), { ...(minItems === undefined ? {} : { minItems }), maxItems, ...docOf(doc) }),
    eip712: undefined,
    kind: { kind: 'openArray', minItems: minItems ?? 0, maxItems, ...(items === undefined ? {} : { items: items as unknown as ObjectCodec<Fields> }) },
    explain: (value, name) => void (!Array.isArray(value) || value.length > maxItems || value.length < (minItems ?? 0) ? arrayRefusal(name, opts) : undefined),
    decode: (value) => value as unknown[],
    encode: (value) => value,
  };
}
