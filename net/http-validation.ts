import { Ajv, type ErrorObject } from 'ajv';
import formatsPlugin from 'ajv-formats';
import { TkmsError } from '../core/index.ts';

/**
 * The request validator: ajv (fastify's own), strict — no type coercion, no removal of unknown
 * fields, no defaults filled in — and its failures turned into the project's error codes.
 * A schema may carry an explainer (`explainWith`): the decode step of the value it describes,
 * run only when a request failed validation, root first, so the answer is the precise error
 * (`bad_hex`, `bad_length`, `bad_address`, …) the hand-written decoders always gave. A valid
 * request never runs one: the cost on the hot path is the compiled validator alone.
 */
export interface RequestSchema {
  body?: object;
  params?: object;
}

/** Throws the typed error for a value its schema refused (and returns for one it would take). */
export type Explain = (value: unknown, name: string) => void;
const EXPLAINERS = new WeakMap<object, Explain>();

export function explainWith<T extends object>(schema: T, explain: Explain): T {
  EXPLAINERS.set(schema, explain);
  return schema;
}
export function explainerOf(schema: object): Explain | undefined {
  return EXPLAINERS.get(schema);
}

/** Annotations the schemas carry for OpenAPI; validation ignores them. */
const ANNOTATIONS = ['x-eip712', 'example'];

export function createRequestValidator(): Ajv {
  const ajv = new Ajv({ coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: false, strict: true, keywords: ANNOTATIONS });
  formatsPlugin.default(ajv);
  return ajv;
}

/** A compiled validator in fastify's shape: true, or `{ error }` with the request's typed error. */
export function compileRequestValidator(ajv: Ajv, schema: object, part: string): (data: unknown) => true | { error: TkmsError } {
  const validate = ajv.compile(schema);
  return (data) => (validate(data) ? true : { error: requestError(schema, data, validate.errors ?? [], part) });
}

function segmentName(segments: readonly string[], i: number): string {
  const seg = segments[i]!;
  return /^\d+$/.test(seg) && i > 0 ? `${segments[i - 1]!}[]` : seg;
}

/** The first schema failure of a request as the error its decode step gives. */
export function requestError(root: object, data: unknown, errors: readonly ErrorObject[], part: string): TkmsError {
  const e = errors[0];
  if (e === undefined) return new TkmsError('bad_request', 'invalid request');
  const segments = e.instancePath
    .split('/')
    .slice(1)
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
  // From the root down: the outermost explainer (a signed message's codec) knows its fields best.
  let schema: Record<string, unknown> | undefined = root as Record<string, unknown>;
  let value: unknown = data;
  for (let i = 0; i <= segments.length && schema !== undefined; i++) {
    const explain = EXPLAINERS.get(schema);
    if (explain !== undefined) {
      try {
        explain(value, i === 0 ? part : segmentName(segments, i - 1));
      } catch (d) {
        if (d instanceof TkmsError) return d;
      }
    }
    if (i === segments.length) break;
    const seg = segments[i]!;
    const props = schema.properties as Record<string, Record<string, unknown>> | undefined;
    schema = props?.[seg] ?? (Array.isArray(value) ? (schema.items as Record<string, unknown> | undefined) : undefined);
    value = typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[seg] : undefined;
  }
  const at = where(part, e.instancePath);
  switch (e.keyword) {
    case 'required':
      return new TkmsError('bad_request', `missing field "${(e.params as { missingProperty: string }).missingProperty}"${e.instancePath === '' ? '' : ` in ${at}`}`);
    case 'additionalProperties':
      return new TkmsError('bad_request', `unexpected field "${(e.params as { additionalProperty: string }).additionalProperty}"${e.instancePath === '' ? '' : ` in ${at}`}`);
    case 'type':
      if (e.instancePath === '' && part === 'body') return new TkmsError('bad_request', 'request body must be a JSON object');
      return new TkmsError('bad_request', `${at} must be ${(e.params as { type: string }).type}`);
    default:
      return new TkmsError('bad_request', `${at} ${e.message ?? 'is invalid'}`);
  }
}

function where(part: string, instancePath: string): string {
  const path = instancePath
    .split('/')
    .filter((p) => p !== '')
    .map((p) => (/^\d+$/.test(p) ? `[${p}]` : `.${p}`))
    .join('');
  return part === 'body' ? (path === '' ? 'request body' : path.slice(1)) : `${part}${path}`;
}
