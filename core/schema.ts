import { Type, type Static, type TObject, type TSchema } from 'typebox';
import { Compile } from 'typebox/compile';
import { hexToBytes } from '@noble/hashes/utils.js';
import { decodeBase64, decodeHex, encodeBase64, encodeHex, bytesToHex } from './bytes.ts';
import type { Eip712FieldType } from './eip712.ts';
import { TkmsError } from './errors.ts';
import { expectObject } from './json-frame.ts';
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
  /** Throws this field's typed error for a value its schema refuses; returns for one it accepts. */
  readonly explain: (value: unknown, name: string) => void;
  /** A value the schema accepted → the decoded value, after the checks no JSON Schema can state. */
  readonly decode: (value: Static<J>, name: string) => D;
  readonly encode: (value: D) => Static<J>;
}

export type DecodedOf<F> = F extends Field<TSchema, infer D> ? D : never;
export type JsonOf<F> = F extends Field<infer J, unknown> ? Static<J> : never;

export interface FieldDoc {
  description: string;
  /** One example of the wire form; every example decodes (test/property/authz-wire.test.ts). */
  example?: unknown;
}

/** Unix times are whole seconds; anything past year 10000 is a mistake, not a time. */
export const MAX_TIMESTAMP = 253_402_300_799;
export const BASE64_PATTERN = '^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$';

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
export function hexBytesField(length: number, opts: HexFieldOptions): Field<ReturnType<typeof Type.String>, Uint8Array> {
  const prefix = opts.prefix ?? 'optional';
  return {
    schema: Type.String({ pattern: `^${PREFIX_PATTERN[prefix]}[0-9a-fA-F]{${length * 2}}$`, ...docOf(opts) }),
    eip712: opts.eip712,
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
export function hexBytesUpToField(maxLength: number, opts: HexFieldOptions): Field<ReturnType<typeof Type.String>, Uint8Array> {
  const prefix = opts.prefix ?? 'optional';
  return {
    // With a fixed prefix (or none) maxLength bounds the digits; an optional prefix needs the count in the pattern.
    schema: Type.String({
      pattern: `^${PREFIX_PATTERN[prefix]}(?:[0-9a-fA-F]{2})${prefix === 'optional' ? `{0,${maxLength}}` : '*'}$`,
      maxLength: 2 * maxLength + (prefix === 'forbidden' ? 0 : 2),
      ...docOf(opts),
    }),
    eip712: opts.eip712,
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
export function addressField(opts: FieldDoc): Field<ReturnType<typeof Type.String>, Uint8Array> {
  return {
    schema: Type.String({ pattern: `^0x[0-9a-fA-F]{${ADDRESS_LENGTH * 2}}$`, ...docOf(opts) }),
    eip712: 'address',
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
export function keyIdField(opts: FieldDoc): Field<ReturnType<typeof Type.String>, string> {
  return {
    schema: Type.String({ pattern: KEY_ID_PATTERN, ...docOf(opts) }),
    eip712: 'string',
    explain: (value) => assertKeyId(value),
    decode: (value) => value,
    encode: (value) => value,
  };
}

/** Unix time in whole seconds, a JSON integer; signed as uint64. */
export function unixSecondsField(opts: FieldDoc): Field<ReturnType<typeof Type.Integer>, number> {
  return {
    schema: Type.Integer({ minimum: 0, maximum: MAX_TIMESTAMP, ...docOf(opts) }),
    eip712: 'uint64',
    explain: (value, name) => {
      if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > MAX_TIMESTAMP) {
        throw new TkmsError('bad_request', `${name} must be a unix time in whole seconds`);
      }
    },
    decode: (value) => value,
    encode: (value) => value,
  };
}

/** A JSON integer in [min, max]; `message` is the refusal (bad_request), e.g. "must be an integer in 1..65535". */
export function integerField(min: number, max: number, opts: FieldDoc & { refusal: string }): Field<ReturnType<typeof Type.Integer>, number> {
  return {
    schema: Type.Integer({ minimum: min, maximum: max, ...docOf(opts) }),
    eip712: undefined,
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
export function base64Field(maxLength: number, opts: FieldDoc): Field<ReturnType<typeof Type.String>, Uint8Array> {
  return {
    schema: Type.String({ pattern: BASE64_PATTERN, maxLength: Math.ceil(maxLength / 3) * 4, ...docOf(opts) }),
    eip712: undefined,
    explain: (value, name) => void decodeBase64(value, { name, maxLength }),
    decode: (value, name) => decodeBase64(value, { name, maxLength }),
    encode: encodeBase64,
  };
}

// ---------------------------------------------------------------------------------------
// Objects made of fields: the message codec every declaration in core/messages.ts is.

export type Fields = Record<string, Field<TSchema, any>>;
export type Decoded<F extends Fields> = { -readonly [K in keyof F]: DecodedOf<F[K]> };
export type Json<F extends Fields> = { -readonly [K in keyof F]: JsonOf<F[K]> };
type SchemaOf<F extends Fields> = TObject<{ [K in keyof F]: F[K]['schema'] }>;

export interface ObjectDoc {
  description: string;
  examples?: unknown[];
}

export interface ObjectCodec<F extends Fields> {
  /** How errors name the object, e.g. "delegation" in `delegation is missing the field "handle"`. */
  readonly what: string;
  readonly fields: F;
  /** The JSON wire form: a plain JSON Schema object, exact fields, no additional properties. */
  readonly schema: SchemaOf<F>;
  /** Wire JSON → decoded value; any refusal is a TkmsError with the field's code. */
  readonly decode: (value: unknown) => Decoded<F>;
  /** Like decode, for a value the compiled validator (or an enclosing one) has already accepted. */
  readonly decodeValid: (value: Json<F>) => Decoded<F>;
  readonly encode: (value: Decoded<F>) => Json<F>;
}

export function objectCodec<F extends Fields>(what: string, fields: F, doc: ObjectDoc): ObjectCodec<F> {
  const names = Object.keys(fields);
  const list = names.map((name) => [name, fields[name]!] as const);
  const schema = Type.Object(Object.fromEntries(list.map(([n, f]) => [n, f.schema])), { additionalProperties: false, ...doc }) as unknown as SchemaOf<F>;
  const validator = Compile(schema);
  const decodeValid = specializedDecoder(list) as (value: Json<F>) => Decoded<F>;
  return {
    what,
    fields,
    schema,
    decode: (value) => {
      if (!validator.Check(value)) explain(value);
      return decodeValid(value as Json<F>);
    },
    decodeValid,
    encode: (value) => {
      const out: Record<string, unknown> = {};
      const decoded = value as Record<string, unknown>;
      for (const [name, field] of list) out[name] = field.encode(decoded[name]);
      return out as Json<F>;
    },
  };

  function explain(value: unknown): never {
    const obj = expectObject(value, what, names);
    for (const [name, field] of list) field.explain(obj[name], name);
    // Every field passed its own check, so the validator saw something no field explains
    // (an inherited property, say): still a refusal, in the validator's words.
    const first = validator.Errors(value)[0];
    throw new TkmsError('bad_request', `${what} is not valid${first === undefined ? '' : `: ${first.instancePath || '/'} ${first.message}`}`);
  }
}

type FieldList = readonly (readonly [string, Field<TSchema, unknown>])[];

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
    for (const [name, field] of list) out[name] = field.decode(json[name] as never, name);
    return out;
  };
  try {
    const entries = list.map(([name], i) => `${JSON.stringify(name)}: d${i}(json[${JSON.stringify(name)}], ${JSON.stringify(name)})`);
    const make = new Function(...list.map((_, i) => `d${i}`), `return (json) => ({ ${entries.join(', ')} });`) as (...decoders: unknown[]) => (value: unknown) => unknown;
    return make(...list.map(([, field]) => field.decode));
  } catch {
    return loop;
  }
}

/** A nested object, e.g. the delegation inside a partial request. */
export function nestedField<F extends Fields>(codec: ObjectCodec<F>): Field<SchemaOf<F>, Decoded<F>> {
  return { schema: codec.schema, eip712: undefined, explain: (value) => void codec.decode(value), decode: (value) => codec.decodeValid(value as Json<F>), encode: (value) => codec.encode(value) as Static<SchemaOf<F>> };
}

/** A nested object or JSON null, decoded as undefined (e.g. the grant of an owner's request). */
export function optionalNestedField<F extends Fields>(codec: ObjectCodec<F>): Field<TSchema, Decoded<F> | undefined> {
  return {
    schema: Type.Union([codec.schema, Type.Null()]),
    eip712: undefined,
    explain: (value) => void (value === null ? undefined : codec.decode(value)),
    decode: (value) => (value === null ? undefined : codec.decodeValid(value as Json<F>)),
    encode: (value) => (value === undefined ? null : codec.encode(value)),
  };
}

/** A constant, e.g. the frame version `v: 1`; anything else is refused with `refusal`. */
export function literalField<V extends string | number | boolean>(value: V, opts: FieldDoc & { refusal: string }): Field<TSchema, V> {
  return {
    schema: Type.Literal(value, docOf(opts)),
    eip712: undefined,
    explain: (v, name) => {
      if (v !== value) throw new TkmsError('bad_request', `${name}: ${opts.refusal}`);
    },
    decode: () => value,
    encode: () => value,
  };
}
