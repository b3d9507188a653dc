import { readFileSync, writeFileSync } from 'node:fs';
import { STATUS_CODES } from 'node:http';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { encodeType, ERROR_CODES } from '../core/index.ts';
import { SIGNED_STRUCTS } from '../gateway/api-schemas.ts';
import { buildOpenApiDocument } from '../gateway/openapi.ts';

/**
 * docs/api.md from the gateway's OpenAPI document: the hand-written prose of
 * docs/api-header.md (its `<!-- generated: … -->` markers filled in), then the errors, every
 * endpoint and every type, as the document has them. `tsx scripts/gen-api-docs.ts` writes the
 * file; `--check` fails when the committed one is stale (test/unit/gateway-openapi.test.ts too).
 */
type Json = Record<string, unknown>;

const HEADER = fileURLToPath(new URL('../docs/api-header.md', import.meta.url));
const OUTPUT = fileURLToPath(new URL('../docs/api.md', import.meta.url));
const METHODS = ['get', 'post', 'put', 'patch', 'delete'];

/** What the error table adds about some codes: where a reader meets them, or what comes with them. */
const CODE_NOTES: Record<string, string> = {
  insecure_transport: 'client side only',
  rate_limited: '`details.retryAfterSeconds`, also sent as a `Retry-After` header',
  response_too_large: 'client side only: the gateway\'s answer passed the client\'s bound',
  method_not_allowed: 'with an `Allow` header listing the methods the path takes',
};
/** Who signs each message. */
const SIGNER: Record<string, string> = { Delegation: 'requester' };

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const refName = (s: Json): string | undefined => (typeof s.$ref === 'string' ? s.$ref.slice(s.$ref.lastIndexOf('/') + 1) : undefined);
const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/\n+/g, ' ');

/** JSON with arrays of scalars and small flat objects on one line, as people write it. */
function pretty(value: unknown, indent = ''): string {
  const inner = `${indent}  `;
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    if (value.every((v) => !isObject(v) && !Array.isArray(v))) return `[${value.map((v) => JSON.stringify(v)).join(', ')}]`;
    return `[\n${value.map((v) => inner + pretty(v, inner)).join(',\n')}\n${indent}]`;
  }
  if (isObject(value)) {
    const entries = Object.entries(value);
    if (entries.length === 0) return '{}';
    const flat = `{ ${entries.map(([k, v]) => `${JSON.stringify(k)}: ${JSON.stringify(v)}`).join(', ')} }`;
    if (indent.length >= 4 && entries.every(([, v]) => !isObject(v) && !Array.isArray(v)) && flat.length <= 100) return flat;
    return `{\n${entries.map(([k, v]) => `${inner}${JSON.stringify(k)}: ${pretty(v, inner)}`).join(',\n')}\n${indent}}`;
  }
  return JSON.stringify(value);
}

function block(example: unknown, type: string): string {
  if (typeof example === 'string' && type !== 'application/json') return `\`\`\`text\n${example.replace(/\n$/, '')}\n\`\`\``;
  return `\`\`\`json\n${pretty(example)}\n\`\`\``;
}

function typeOf(schema: Json): string {
  const name = refName(schema);
  if (name !== undefined) return `\`${name}\``;
  if (schema.type === 'array' && isObject(schema.items)) return `array of ${typeOf(schema.items)}`;
  if (typeof schema.format === 'string') return `${String(schema.type)} (${schema.format})`;
  return String(schema.type ?? 'any');
}

function constraint(schema: Json): string {
  const parts: string[] = [];
  if (typeof schema.pattern === 'string') parts.push(`pattern \`${schema.pattern}\``);
  if (typeof schema.maxLength === 'number') parts.push(`length ≤ ${schema.maxLength}`);
  if (typeof schema.minimum === 'number' && typeof schema.maximum === 'number') parts.push(`${schema.minimum}..${schema.maximum}`);
  if (Array.isArray(schema.enum)) parts.push(schema.enum.length > 8 ? 'see core/errors.ts' : schema.enum.map((v) => `\`${String(v)}\``).join(', '));
  return parts.join('; ');
}

function fieldTable(schema: Json): string {
  const required = new Set((schema.required as string[] | undefined) ?? []);
  const rows = Object.entries(schema.properties as Json).map(([name, raw]) => {
    const s = raw as Json;
    const notes = typeof s.description === 'string' && (refName(s) !== undefined || s.type !== undefined) ? s.description : '';
    return `| \`${name}\` | ${typeOf(s)} | ${required.has(name) ? 'yes' : 'no'} | ${cell(notes)} |`;
  });
  return ['| Field | Type | Required | Notes |', '|---|---|---|---|', ...rows].join('\n');
}

function routeTable(doc: Json): string {
  const rows: string[] = [];
  for (const [path, item] of Object.entries(doc.paths as Json)) {
    for (const m of METHODS) {
      const op = (item as Json)[m];
      if (isObject(op)) rows.push(`| \`${m.toUpperCase()} ${path}\` | ${cell(String(op.summary))} |`);
    }
  }
  return ['| Method and path | Purpose |', '|---|---|', ...rows].join('\n');
}

function signedTypes(): string {
  const rows = SIGNED_STRUCTS.map((s) => `| \`${s.name}\` | ${SIGNER[s.name] ?? 'owner'} | \`${encodeType(s)}\` |`);
  return ['The five struct types (`core/authz.ts`):', '', '| Primary type | Signed by | Type string |', '|---|---|---|', ...rows].join('\n');
}

function errorsSection(doc: Json): string {
  const byStatus = new Map<number, string[]>();
  for (const [code, status] of Object.entries(ERROR_CODES)) byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  const rows = [...byStatus.entries()]
    .sort(([a], [b]) => a - b)
    .map(([status, codes]) => `| ${status} | ${codes.map((c) => `\`${c}\`${CODE_NOTES[c] === undefined ? '' : ` (${CODE_NOTES[c]})`}`).join(', ')} |`);
  const delegate = ((doc.paths as Json)['/v1/handles/{handle}/delegate'] as Json).post as Json;
  const example = (((delegate.responses as Json)['503'] as Json).content as Json)['application/json'] as Json;
  return [
    '## Errors',
    '',
    'Every error has the body',
    '',
    block(example.example, 'application/json'),
    '',
    'with `details` only where there is public context to give. Clients switch on `code`, never',
    'on `message`. The HTTP status follows from the code (`core/errors.ts`):',
    '',
    '| Status | Codes |',
    '|---|---|',
    ...rows,
    '',
    'The gateway\'s routes answer with the subset listed under each endpoint. An unknown path is',
    '`404 not_found`; a known path with another method is `405 method_not_allowed`; a request body',
    'that is not `application/json` is `415 unsupported_media_type`. `GET /health` answers `503`',
    'with its own `Health` body, not an `Error`.',
  ].join('\n');
}

function endpoint(method: string, path: string, op: Json): string {
  const out = [`### ${method.toUpperCase()} ${path}`, '', `${String(op.summary)}.`];
  if (typeof op.description === 'string') out.push('', op.description);
  if (isObject(op.requestBody)) {
    const media = (op.requestBody.content as Json)['application/json'] as Json;
    out.push('', `**Request body** (${typeOf(media.schema as Json)}):`, '', block(media.example, 'application/json'));
  }
  const responses = Object.entries(op.responses as Json).sort(([a], [b]) => Number(a) - Number(b));
  const errors: string[] = [];
  for (const [status, raw] of responses) {
    const r = raw as Json;
    const [type, media] = Object.entries((r.content as Json | undefined) ?? {})[0] ?? [];
    const m = (media ?? {}) as Json;
    const schema = isObject(m.schema) ? m.schema : undefined;
    if (Number(status) >= 400 && schema !== undefined && refName(schema) === 'Error') {
      errors.push(`| ${status} | ${cell(String(r.description).replace(/^[^:]*: /, ''))} |`);
      continue;
    }
    const named = schema !== undefined && refName(schema) !== undefined ? ` (${typeOf(schema)})` : '';
    out.push('', `**${status} ${STATUS_CODES[Number(status)] ?? ''}** — ${String(r.description)}${named}`);
    if (m.example !== undefined) out.push('', block(m.example, String(type)));
  }
  if (errors.length > 0) out.push('', '**Errors** (`Error` body):', '', '| Status | Codes and cases |', '|---|---|', ...errors);
  return out.join('\n');
}

function typesSection(doc: Json): string {
  const schemas = (doc.components as Json).schemas as Record<string, Json>;
  const scalars = Object.entries(schemas).filter(([, s]) => s.type !== 'object');
  const out = [
    '## Types',
    '',
    'The schemas of `components.schemas`. Every object is closed (`additionalProperties: false`). Patterns give the form the gateway takes and answers in.',
    '',
    '| Type | JSON | Constraint | Meaning |',
    '|---|---|---|---|',
    ...scalars.map(([name, s]) => `| \`${name}\` | ${String(s.type)} | ${cell(constraint(s))} | ${cell(String(s.description ?? ''))} |`),
  ];
  for (const [name, s] of Object.entries(schemas)) {
    if (s.type !== 'object') continue;
    const description = String(s.description ?? '');
    const what = s['x-eip712'] === undefined ? description : `${description.split('\n\n')[0]} Signed: see [Signing](#signing).`;
    out.push('', `### ${name}`, '');
    if (what !== '') out.push(what, '');
    out.push(isObject(s.properties) ? fieldTable(s) : `An object: ${constraint(s) || 'see the description'}.`);
  }
  return out.join('\n');
}

/** docs/api.md for `doc`, around the hand-written `header`. */
export function renderApiDocs(doc: Json = buildOpenApiDocument(), header: string = readFileSync(HEADER, 'utf8')): string {
  const endpoints: string[] = [];
  for (const [path, item] of Object.entries(doc.paths as Json)) {
    for (const m of METHODS) if (isObject((item as Json)[m])) endpoints.push(endpoint(m, path, (item as Json)[m] as Json));
  }
  const intro = header.replace('<!-- generated: route table -->', routeTable(doc)).replace('<!-- generated: signed types -->', signedTypes());
  const generated = [
    '<!-- Generated by scripts/gen-api-docs.ts (npm run docs:api) from the OpenAPI document and docs/api-header.md: edit those, not this file. -->',
    '',
    intro.trimEnd(),
    '',
    errorsSection(doc),
    '',
    '## Endpoints',
    '',
    endpoints.join('\n\n'),
    '',
    typesSection(doc),
  ];
  return `${generated.join('\n')}\n`;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const text = renderApiDocs();
  if (process.argv.includes('--check')) {
    if (readFileSync(OUTPUT, 'utf8') !== text) {
      process.stderr.write('docs/api.md is stale: run npm run docs:api\n');
      process.exit(1);
    }
  } else writeFileSync(OUTPUT, text);
}
