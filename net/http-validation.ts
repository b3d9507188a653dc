import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import formatsPlugin from 'ajv-formats';
import { assertKeyId, decodeAddress, decodeBase64, decodeHex, decodePoint, decodeSignature, TkmsError } from '../core/index.ts';
import { assertParticipantId } from '../core/shamir.ts';

/**
 * The request validator: ajv (fastify's own), strict — no type coercion, no removal of unknown
 * fields, no defaults filled in — and its errors turned into the project's error codes.
 * A field schema may name its decode step (`x-decode`); when the field fails its schema, that
 * step runs on the value and its precise error (`bad_hex`, `bad_length`, `bad_address`, …) is
 * the answer, as it was when handlers decoded by hand. A valid request never runs it twice:
 * the cost on the hot path is the compiled validator alone.
 */
export interface RequestSchema {
  body?: object;
  params?: object;
}

/** The decode step a field schema names, run only when the field fails its schema. */
export type DecodeHint =
  | { kind: 'hex'; length?: number; maxLength?: number; allowPrefix?: boolean }
  | { kind: 'point'; length: number }
  | { kind: 'address' }
  | { kind: 'keyId' }
  | { kind: 'signature' }
  | { kind: 'base64'; minBytes?: number }
  | { kind: 'nodeId' };

/** Annotations the schemas carry for OpenAPI and for error mapping; validation ignores them. */
const ANNOTATIONS = ['x-decode', 'x-eip712', 'example'];

export function createRequestValidator(): Ajv {
  const ajv = new Ajv({ coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: false, verbose: true, strict: true, keywords: ANNOTATIONS });
  formatsPlugin.default(ajv);
  return ajv;
}

/** A standalone compiled validator, for tests and tools that check documents against the route schemas. */
export function compileSchema(schema: object, ajv: Ajv = createRequestValidator()): ValidateFunction {
  return ajv.compile(schema);
}

function runDecode(hint: DecodeHint, value: unknown, name: string): void {
  switch (hint.kind) {
    case 'hex':
      decodeHex(value, { name, ...(hint.length === undefined ? {} : { length: hint.length }), ...(hint.maxLength === undefined ? {} : { maxLength: hint.maxLength }), ...(hint.allowPrefix === undefined ? {} : { allowPrefix: hint.allowPrefix }) });
      return;
    case 'point':
      decodePoint(decodeHex(value, { name, length: hint.length }), name);
      return;
    case 'address':
      decodeAddress(value, name);
      return;
    case 'keyId':
      assertKeyId(value);
      return;
    case 'signature':
      decodeSignature(value);
      return;
    case 'base64':
      if (decodeBase64(value, { name }).length < (hint.minBytes ?? 0)) throw new TkmsError('bad_length', `${name} must hold at least ${hint.minBytes} bytes`);
      return;
    case 'nodeId':
      assertParticipantId(value, name);
      return;
  }
}

function fieldName(instancePath: string): string {
  const parts = instancePath.split('/').filter((p) => p !== '');
  const last = parts.at(-1);
  if (last === undefined) return 'value';
  return /^\d+$/.test(last) && parts.length > 1 ? `${parts.at(-2)!}[]` : last.replace(/~1/g, '/').replace(/~0/g, '~');
}

function where(dataVar: string, instancePath: string): string {
  const path = instancePath
    .split('/')
    .filter((p) => p !== '')
    .map((p) => (/^\d+$/.test(p) ? `[${p}]` : `.${p}`))
    .join('');
  return dataVar === 'body' ? (path === '' ? 'request body' : path.slice(1)) : `${dataVar}${path}`;
}

/** The first schema failure of a request as the error its handler used to throw. */
export function validationError(errors: readonly ErrorObject[], dataVar: string): TkmsError {
  const e = errors[0];
  if (e === undefined) return new TkmsError('bad_request', 'invalid request');
  const hint = (e.parentSchema as { 'x-decode'?: DecodeHint } | undefined)?.['x-decode'];
  if (hint !== undefined) {
    try {
      runDecode(hint, e.data, fieldName(e.instancePath));
    } catch (d) {
      if (d instanceof TkmsError) return d;
    }
    // What the decode step takes but the schema does not is a non-canonical spelling (upper case, no 0x).
    if (hint.kind === 'hex' || hint.kind === 'signature' || hint.kind === 'point') return new TkmsError('bad_hex', `${fieldName(e.instancePath)} must be written as its schema gives (0x-prefixed lower-case hex unless documented otherwise)`);
  }
  const at = where(dataVar, e.instancePath);
  switch (e.keyword) {
    case 'required':
      return new TkmsError('bad_request', `missing field "${(e.params as { missingProperty: string }).missingProperty}"${e.instancePath === '' ? '' : ` in ${at}`}`);
    case 'additionalProperties':
      return new TkmsError('bad_request', `unexpected field "${(e.params as { additionalProperty: string }).additionalProperty}"${e.instancePath === '' ? '' : ` in ${at}`}`);
    case 'type':
      if (e.instancePath === '' && dataVar === 'body') return new TkmsError('bad_request', 'request body must be a JSON object');
      return new TkmsError('bad_request', `${at} must be ${(e.params as { type: string }).type}`);
    default:
      return new TkmsError('bad_request', `${at} ${e.message ?? 'is invalid'}`);
  }
}
