import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { Type, type StaticDecode, type TObject, type TProperties, type TSchema } from 'typebox';
import { Compile } from 'typebox/schema';
import { TkmsError } from '../core/errors.ts';
import { envBool, envInt, envList, envString, type Env } from './env.ts';
import { parseHostPort, type HostPort } from '../net/http-address.ts';

/**
 * A component's config is one TypeBox object schema. Besides its JSON shape, bounds and default,
 * each field carries these JSON Schema extension keywords, which the parser, `--help` and the
 * operators' guide all read, so a field is described in exactly one place.
 */
export interface FieldNotes {
  /** One line or two for --help. */
  description: string;
  /** More for the operators' guide only. */
  details?: string;
  /** The environment variable that overrides the field (the operator's last word). */
  env?: string;
  /** What the number counts, for messages and docs ("milliseconds"). */
  unit?: string;
  /** A path, resolved against the config file's directory. */
  path?: boolean;
  /** The end of "<field> must be …" when the shape alone would not tell the operator what to write. */
  mustBe?: string;
  /** The default in words, when it is computed (from another field, or at run time). */
  defaultText?: string;
  /** One problem line for the whole object, naming its shape, rather than one per member. */
  reportWhole?: boolean;
}

/**
 * Thrown by a field's decode step (a TypeBox codec) for a value of the right shape that is still
 * wrong: "{path}" in a line becomes the field's name; a line without it is prefixed by the name;
 * no line at all means "<field> must be <what the field says it must be>".
 */
export class FieldProblem extends Error {
  readonly lines: string[];
  constructor(...lines: string[]) {
    super(lines.join('; '));
    this.lines = lines;
  }
}

/** Field builders: each declares the JSON shape, bounds, default and notes of one field. */
export const field = {
  integer: (minimum: number, maximum: number, defaultValue: number, notes: FieldNotes) =>
    Type.Integer({ minimum, maximum, default: defaultValue, ...notes }),
  boolean: (defaultValue: boolean, notes: FieldNotes) => Type.Boolean({ default: defaultValue, ...notes }),
  /** A required path. */
  path: (notes: FieldNotes) => Type.String({ minLength: 1, maxLength: 4096, pattern: '^[^\\u0000]*$', ...notes, path: true, mustBe: 'a non-empty path string' }),
  oneOf: <const V extends string[]>(values: readonly [...V], defaultValue: V[number], notes: FieldNotes) =>
    Type.Enum(values, { default: defaultValue, ...notes, mustBe: notes.mustBe ?? `one of ${values.join(', ')}` }),
  /** "host:port" or "[v6]:port" of a listener. */
  hostPort: (notes: FieldNotes & { mustBe: string }) =>
    Type.Decode(Type.String({ maxLength: 300, ...notes }), (text): HostPort => {
      const hostPort = parseHostPort(text);
      if (hostPort === undefined) throw new FieldProblem();
      return hostPort;
    }),
  group: <P extends TProperties>(properties: P, notes: FieldNotes) => Type.Object(properties, { ...notes }),
};

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export const logLevelField = (env: string) => field.oneOf(LOG_LEVELS, 'info', { description: 'log verbosity', env });

/** What the builders above put in a schema, as the readers below and the docs see it. */
export type Notes = Partial<FieldNotes> & { default?: unknown; minimum?: number; maximum?: number; maxItems?: number; type?: string; anyOf?: TSchema[]; properties?: TProperties; items?: TSchema };

export const notesOf = (schema: TSchema): Notes => schema as Notes;
export const isObjectSchema = (schema: TSchema): schema is TObject => notesOf(schema).type === 'object' && notesOf(schema).properties !== undefined;
export const isOptional = (schema: TSchema): boolean => (schema as Record<string, unknown>)['~optional'] === true;
const codecOf = (schema: TSchema): ((value: unknown) => unknown) | undefined =>
  ((schema as Record<string, unknown>)['~codec'] as { decode?: (value: unknown) => unknown } | undefined)?.decode;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const validators = new WeakMap<TSchema, { Check(value: unknown): boolean }>();
function check(schema: TSchema, value: unknown): boolean {
  let validator = validators.get(schema);
  if (validator === undefined) validators.set(schema, (validator = Compile(schema)));
  return validator.Check(value);
}

/** "an integer in 1..64", "true or false", … from the schema, unless the field words it itself. */
export function mustBe(schema: TSchema): string {
  const n = notesOf(schema);
  if (n.mustBe !== undefined) return n.mustBe;
  if (n.type === 'integer') return `an integer in ${n.minimum}..${n.maximum}${n.unit ? ` (${n.unit})` : ''}`;
  if (n.type === 'boolean') return 'true or false';
  if (isObjectSchema(schema)) {
    const members = Object.entries(schema.properties);
    if (n.reportWhole) return `{ ${members.map(([k, s]) => `"${k}": ${notesOf(s).minimum}..${notesOf(s).maximum}`).join(', ')} }`;
    return `an object { ${members.map(([k]) => k).join(', ')} }`;
  }
  return `a value of JSON type ${n.type ?? 'any'}`;
}

/** Every field with an environment variable, by its dotted path. */
export function envFields(schema: TObject, prefix = ''): { path: string; env: string; schema: TSchema }[] {
  const out: { path: string; env: string; schema: TSchema }[] = [];
  for (const [key, s] of Object.entries(schema.properties)) {
    const path = prefix + key;
    if (isObjectSchema(s)) out.push(...envFields(s, `${path}.`));
    const env = notesOf(s).env;
    if (env !== undefined) out.push({ path, env, schema: s });
  }
  return out;
}

/** The variable's value as the field's type: numbers and booleans parsed, lists split at commas. */
function readEnv(env: Env, name: string, schema: TSchema): { value?: unknown; problem?: string } {
  const n = notesOf(schema);
  if (n.type === 'integer') return envInt(env, name, n.minimum!, n.maximum!, n.unit);
  if (n.type === 'boolean') return envBool(env, name);
  const list = listShape(schema);
  if (list !== undefined) return envList(env, name, list.maxItems ?? 64);
  return { value: envString(env, name) };
}

/** The array shape of a field that takes a list (a comma-separated list in its variable). */
export function listShape(schema: TSchema): Notes | undefined {
  const n = notesOf(schema);
  return n.type === 'array' ? n : n.anyOf?.map(notesOf).find((s) => s.type === 'array');
}

/** The object at `keys` under `root`, each level copied (or created) so the caller's file is left alone. */
function copiedObjectAt(root: Record<string, unknown>, keys: string[]): Record<string, unknown> | undefined {
  let at = root;
  for (const key of keys) {
    const next = at[key];
    if (next !== undefined && !isPlainObject(next)) return undefined;
    at = at[key] = { ...(next ?? {}) };
  }
  return at;
}

export interface ParsedConfig<S extends TObject> {
  /** The decoded config; fields with problems are missing, so use it only when `problems` is empty. */
  value: StaticDecode<S>;
  problems: string[];
  /** " (set by environment variable X)" when a variable set the field (by dotted path), else "": for cross-field messages. */
  origin(path: string): string;
}

/**
 * Reads a config object against its schema: the environment's variables first replace what the
 * file says, then every field is checked (TypeBox's compiled validator), given its default, resolved
 * (paths) and decoded. Every mistake is one line naming the field, and the variable if one set it;
 * values are never echoed, since some variables sit next to secrets.
 */
export function parseDeclaredConfig<S extends TObject>(schema: S, file: Record<string, unknown>, baseDir: string, env: Env): ParsedConfig<S> {
  const problems: string[] = [];
  const fromEnv = new Map<string, string>();
  const origin = (path: string): string => {
    const name = fromEnv.get(path);
    return name === undefined ? '' : ` (set by environment variable ${name})`;
  };
  const raw: Record<string, unknown> = { ...file };
  for (const { path, env: name, schema: s } of envFields(schema)) {
    const r = readEnv(env, name, s);
    if (r.problem !== undefined) problems.push(r.problem);
    if (r.value === undefined) continue;
    const keys = path.split('.');
    const parent = copiedObjectAt(raw, keys.slice(0, -1));
    // A malformed file value stays as it is, so its own mistake is still reported.
    if (parent === undefined) continue;
    parent[keys.at(-1)!] = r.value;
    fromEnv.set(path, name);
  }

  const readValue = (s: TSchema, v: unknown, path: string, out: string[]): unknown => {
    const n = notesOf(s);
    if (v === undefined) {
      // An optional group (acl.chain) stays absent unless the file or a variable sets one of its fields.
      if (isObjectSchema(s) && !isOptional(s)) v = {};
      else if ('default' in n) return structuredClone(n.default);
      else if (isOptional(s)) return undefined;
      else {
        const what = n.path ? 'a path, relative to the config file' : mustBe(s);
        out.push(`${path} is required (${what}${n.env ? `; or set ${n.env}` : ''})`);
        return undefined;
      }
    }
    let value: unknown;
    if (isObjectSchema(s)) {
      if (!isPlainObject(v)) {
        out.push(`${path} must be ${mustBe(s)}${origin(path)}`);
        return undefined;
      }
      const inner: string[] = [];
      value = readObject(s, v, `${path}.`, inner, `${path} has an unknown field`);
      if (inner.length > 0) {
        out.push(...(n.reportWhole ? [`${path} must be ${mustBe(s)}`] : inner));
        return undefined;
      }
    } else {
      if (!check(s, v)) {
        out.push(`${path} must be ${mustBe(s)}${origin(path)}`);
        return undefined;
      }
      value = n.path && !isAbsolute(v as string) ? resolve(baseDir, v as string) : v;
    }
    const decode = codecOf(s);
    if (decode === undefined) return value;
    try {
      return decode(value);
    } catch (e) {
      if (!(e instanceof FieldProblem)) throw e;
      if (e.lines.length === 0) out.push(`${path} must be ${mustBe(s)}${origin(path)}`);
      for (const line of e.lines) out.push(`${line.includes('{path}') ? line.replaceAll('{path}', path) : `${path} ${line}`}${origin(path)}`);
      return undefined;
    }
  };
  const readObject = (s: TObject, v: Record<string, unknown>, prefix: string, out: string[], unknownText: string): Record<string, unknown> => {
    for (const key of Object.keys(v)) if (!Object.hasOwn(s.properties, key)) out.push(`${unknownText} "${key}"`);
    const result: Record<string, unknown> = {};
    for (const [key, child] of Object.entries(s.properties)) {
      const decoded = readValue(child, v[key], prefix + key, out);
      if (decoded !== undefined) result[key] = decoded;
    }
    return result;
  };
  const value = readObject(schema, raw, '', problems, 'unknown field') as StaticDecode<S>;
  return { value, problems, origin };
}

/**
 * A config file's JSON and the directory its relative paths resolve against. `what` names the file
 * in errors ("gateway config"); JSON.parse names the position of a mistake, never quoting more than
 * a character.
 */
export async function readConfigFile(file: string, what: string): Promise<{ json: unknown; baseDir: string }> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new TkmsError('bad_request', `cannot read ${what} file ${file}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  try {
    return { json: JSON.parse(text), baseDir: dirname(resolve(file)) };
  } catch (e) {
    throw new TkmsError('bad_request', `${what} file ${file} is not valid JSON (${e instanceof Error ? e.message : 'parse error'})`);
  }
}
