import { encodeType, ERROR_CODES, type ErrorCode } from '../core/index.ts';
import { EXAMPLE_DETAILS, EXAMPLE_MESSAGES } from './api-examples.ts';
import { API_ROUTES, pathParamNames, TAGS, type ApiResponse, type ApiRoute } from './api-routes.ts';
import { componentName, components, EIP712_DOMAIN, PathParams, refinement, SIGNED_STRUCTS } from './api-schemas.ts';

/**
 * The OpenAPI 3.1 document of the gateway's HTTP API, generated from the route declarations
 * (gateway/api-routes.ts) and their schemas (gateway/api-schemas.ts); served at
 * GET /openapi.json and rendered for humans in docs/api.md by scripts/gen-api-docs.ts.
 * Pure data: no I/O, built once.
 */
type Json = Record<string, unknown>;

const ref = (name: string): Json => ({ $ref: `#/components/schemas/${name}` });

/** A schema as the document shows it: registered schemas become `$ref`s, collected in `used`. */
function toDoc(schema: unknown, used: Set<string>, root = false): unknown {
  if (Array.isArray(schema)) return schema.map((s) => toDoc(s, used));
  if (typeof schema !== 'object' || schema === null) return schema;
  const refined = refinement(schema);
  if (refined !== undefined) {
    const name = componentName(refined.base);
    if (name !== undefined) {
      used.add(name);
      return { ...ref(name), description: refined.description };
    }
  }
  const name = componentName(schema);
  if (name !== undefined && !root) {
    used.add(name);
    return ref(name);
  }
  const out: Json = {};
  for (const [k, v] of Object.entries(schema)) {
    // Values under these keywords are data (examples, enums, the EIP-712 types), not schemas.
    out[k] = k === 'examples' || k === 'enum' || k === 'x-eip712' || k === 'required' ? v : k === 'properties' ? mapValues(v as Json, used) : toDoc(v, used);
  }
  return out;
}

function mapValues(o: Json, used: Set<string>): Json {
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, toDoc(v, used)]));
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Malformed request',
  403: 'Not authorized',
  404: 'Not found',
  409: 'Conflict',
  410: 'Gone',
  413: 'Request body too large',
  422: 'Unprocessable',
  429: 'Rate limited',
  500: 'Internal error',
  503: 'Unavailable',
  504: 'Timeout',
};

/** Error responses by status, each listing the codes this route can answer with. */
function errorResponses(route: ApiRoute, used: Set<string>): Record<string, Json> {
  const out: Record<string, Json> = {};
  for (const [statusText, codes] of Object.entries(route.errors ?? {})) {
    const status = Number(statusText);
    if (codes === undefined || codes.length === 0) continue;
    for (const code of codes) {
      if (ERROR_CODES[code] !== status) throw new Error(`openapi: ${route.path}: error code ${code} maps to HTTP ${ERROR_CODES[code]}, not ${status}`);
    }
    const first: ErrorCode = codes[0]!;
    const details = EXAMPLE_DETAILS[first];
    const note = route.errorNotes?.[status];
    used.add('Error');
    out[statusText] = {
      description: `${STATUS_TEXT[status] ?? 'Error'}: ${codes.map((c) => `\`${c}\``).join(', ')}.${note === undefined ? '' : ` ${note}`}`,
      content: { 'application/json': { schema: ref('Error'), example: { error: { code: first, message: EXAMPLE_MESSAGES[first] ?? first, ...(details === undefined ? {} : { details }) } } } },
    };
  }
  return out;
}

function response(r: ApiResponse, used: Set<string>): Json {
  const media: Json = { ...(r.schema === undefined ? {} : { schema: toDoc(r.schema, used) }), ...(r.example === undefined ? {} : { example: r.example }) };
  return { description: r.description, content: { [r.contentType ?? 'application/json']: media } };
}

function operation(route: ApiRoute, used: Set<string>): Json {
  return {
    operationId: route.operationId,
    tags: [route.tag],
    summary: route.summary,
    ...(route.description === undefined ? {} : { description: route.description }),
    ...(route.query === undefined
      ? {}
      : {
          parameters: Object.entries(route.query).map(([name, q]) => ({
            name,
            in: 'query',
            required: false,
            description: q.description,
            schema: q.type === 'string' ? { type: 'string', pattern: q.pattern, maxLength: q.maxLength } : { type: 'integer', minimum: q.minimum, maximum: q.maximum },
            example: q.example,
          })),
        }),
    ...(route.body === undefined
      ? {}
      : { requestBody: { description: route.body.description, required: true, content: { 'application/json': { schema: toDoc(route.body.schema, used), example: route.body.example } } } }),
    responses: {
      ...Object.fromEntries(Object.entries(route.responses).map(([status, r]) => [status, response(r, used)])),
      ...errorResponses(route, used),
    },
  };
}

function paths(used: Set<string>): Json {
  const out: Record<string, Json> = {};
  for (const route of API_ROUTES) {
    const item = (out[route.path] ??= {});
    const names = pathParamNames(route.path);
    if (names.length > 0) {
      item.parameters = names.map((name) => {
        const p = PathParams[name];
        return { name, in: 'path', required: true, description: p.description, schema: toDoc(p.schema, used), example: p.example };
      });
    }
    item[route.method.toLowerCase()] = operation(route, used);
  }
  return out;
}

/** Components reachable from the paths, in declaration order. */
function schemas(used: Set<string>): Json {
  const done = new Map<string, unknown>();
  for (let pending = [...used]; pending.length > 0; pending = [...used].filter((n) => !done.has(n))) {
    for (const name of pending) done.set(name, toDoc(components().get(name), used, true));
  }
  return Object.fromEntries([...components().keys()].filter((n) => done.has(n)).map((n) => [n, done.get(n)]));
}

const DESCRIPTION = `HTTP JSON API of the tkms gateway: threshold (t-of-n) secp256k1 ECIES encryption, with decryption delegated through the nodes of a committee.

**Trust.** The gateway is not trusted for confidentiality. It checks every request as a node will (so bad requests fail early), but each node re-checks the requester's signed delegation, the handle commitment and the proof binding its K to it (\`kProof\`), the owner's grant and the revocations it knows of before it computes a partial. Clients verify each partial's DLEQ proof against the key's verification shares.

**Authentication.** There are no API keys or sessions: every state-changing request carries an EIP-712 signature by an Ethereum account. ${EIP712_DOMAIN} Struct types: ${SIGNED_STRUCTS.map((s) => `\`${encodeType(s)}\``).join('; ')}.

**Encodings.** Bytes are 0x-prefixed lower-case hex (addresses may carry an EIP-55 checksum), except \`rsaSpki\` and \`publicKeySpki\`, which are hex without 0x. Plaintexts and ciphertexts are standard padded base64. Timestamps in signed messages are unix seconds (JSON integers); \`createdAt\` is ISO 8601. Request bodies must be JSON objects (\`content-type: application/json\`) with exactly the documented fields, each in the form its schema gives.

**Errors.** Every error is \`{ "error": { "code", "message", "details"? } }\`; the status follows from the code. An unknown path answers 404 \`not_found\`; a known path with another method answers 405 \`method_not_allowed\` with an \`Allow\` header; a body that is not \`application/json\` answers 415 \`unsupported_media_type\`.

**Base path.** A gateway configured with \`basePath\` (say \`/tkms\`) serves every route under it as well, so \`https://app.example/tkms/\` works as a base URL.`;

function build(): Json {
  const used = new Set<string>();
  const builtPaths = paths(used);
  return {
    openapi: '3.1.0',
    info: {
      title: 'tkms gateway API',
      version: '1.0.0',
      summary: 'Threshold key management: encrypt to a committee key, grant, revoke, and delegate decryption.',
      description: DESCRIPTION,
    },
    tags: Object.entries(TAGS).map(([name, description]) => ({ name, description })),
    security: [],
    paths: builtPaths,
    components: { schemas: schemas(used) },
  };
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

let cached: Json | undefined;

/** The gateway's OpenAPI 3.1 document, built on first use and shared (frozen) afterwards. */
export function buildOpenApiDocument(): Json {
  cached ??= deepFreeze(build());
  return cached;
}
