import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ethers } from 'ethers';
import {
  assertKeyId,
  authorizeDelegation,
  decodeBase64,
  deriveHandle,
  EPHEMERAL_PROOF_LENGTH,
  decodeHex,
  DELEGATION_STRUCT,
  ENCRYPT_STRUCT,
  encodeType,
  ERROR_CODES,
  GRANT_STRUCT,
  parseDelegation,
  parseEncryptRequest,
  parseGrant,
  parseHandleDescriptor,
  parsePartialAnswer,
  parseRegisterHandle,
  parseRevocation,
  REGISTER_STRUCT,
  REVOCATION_STRUCT,
  committeeSalt,
  encodeHex,
  tkmsDomain,
  verifyEncryptRequest,
  verifyEphemeralKeyProof,
  verifyGrant,
  verifyRegisterHandle,
  verifyRevocation,
  type Eip712Struct,
  type HandleDescriptor,
} from '../../core/index.ts';
import { parseDkgPublicResult, verifyDkgPublicResult } from '../../core/dkg/index.ts';
import { gatewayRoutes, type GatewayContext } from '../../gateway/api.ts';
import { buildOpenApiDocument } from '../../gateway/openapi.ts';

/**
 * The OpenAPI document (gateway/openapi.ts) against the route table (gateway/api.ts), itself
 * ($refs, examples vs. schemas), the core codecs it describes, and docs/api.md.
 */

type Json = Record<string, unknown>;
const doc = buildOpenApiDocument() as Json;
const DOCS = readFileSync(fileURLToPath(new URL('../../docs/api.md', import.meta.url)), 'utf8');
const METHODS = ['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace'] as const;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function pointer(ref: string): unknown {
  assert.ok(ref.startsWith('#/'), `only local $refs are used: ${ref}`);
  let at: unknown = doc;
  for (const raw of ref.slice(2).split('/')) {
    const key = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (!isObject(at) || !Object.prototype.hasOwnProperty.call(at, key)) return undefined;
    at = at[key];
  }
  return at;
}

const deref = (v: unknown): Json => {
  let at = v;
  for (let i = 0; isObject(at) && typeof at.$ref === 'string' && i < 10; i++) at = pointer(at.$ref);
  assert.ok(isObject(at));
  return at;
};

function walk(v: unknown, visit: (node: Json, path: string) => void, path = '#'): void {
  if (Array.isArray(v)) v.forEach((x, i) => walk(x, visit, `${path}/${i}`));
  else if (isObject(v)) {
    visit(v, path);
    for (const [k, x] of Object.entries(v)) walk(x, visit, `${path}/${k}`);
  }
}

interface Operation {
  method: string;
  path: string;
  op: Json;
  params: Json[];
}

function operations(): Operation[] {
  const out: Operation[] = [];
  for (const [path, item] of Object.entries(doc.paths as Json)) {
    assert.ok(isObject(item));
    const shared = (item.parameters as unknown[] | undefined) ?? [];
    for (const method of METHODS) {
      const op = item[method];
      if (!isObject(op)) continue;
      const params = [...shared, ...((op.parameters as unknown[] | undefined) ?? [])].map(deref);
      out.push({ method: method.toUpperCase(), path, op, params });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// A small JSON Schema checker (ajv is not installed): exactly the keywords the document uses.
// Unknown keywords fail loudly, so nothing is silently skipped.

const ANNOTATIONS = new Set(['description', 'examples', 'example', 'title', 'format', 'contentEncoding', 'deprecated']);

function check(schema: unknown, value: unknown, at: string, errors: string[]): void {
  assert.ok(isObject(schema), `${at}: schema must be an object`);
  for (const k of Object.keys(schema)) {
    if (k.startsWith('x-') || ANNOTATIONS.has(k)) continue;
    if (
      ![
        '$ref',
        'type',
        'enum',
        'const',
        'pattern',
        'minLength',
        'maxLength',
        'minimum',
        'maximum',
        'properties',
        'required',
        'additionalProperties',
        'propertyNames',
        'items',
        'minItems',
        'maxItems',
      ].includes(k)
    ) {
      throw new Error(`${at}: the test's schema checker does not know the keyword "${k}"`);
    }
  }
  if (typeof schema.$ref === 'string') {
    const target = pointer(schema.$ref);
    assert.ok(target !== undefined, `unresolved ${schema.$ref}`);
    check(target, value, at, errors);
  }
  const type = schema.type as string | undefined;
  if (type !== undefined) {
    const ok =
      type === 'integer'
        ? Number.isSafeInteger(value)
        : type === 'number'
          ? typeof value === 'number'
          : type === 'array'
            ? Array.isArray(value)
            : type === 'object'
              ? isObject(value)
              : type === 'null'
                ? value === null
                : typeof value === type;
    if (!ok) {
      errors.push(`${at}: expected ${type}, got ${JSON.stringify(value)?.slice(0, 40)}`);
      return;
    }
  }
  if (Array.isArray(schema.enum) && !schema.enum.includes(value)) errors.push(`${at}: ${JSON.stringify(value)} is not one of the enum`);
  if ('const' in schema && schema.const !== value) errors.push(`${at}: must be ${JSON.stringify(schema.const)}`);
  if (typeof value === 'string') {
    if (typeof schema.pattern === 'string' && !new RegExp(schema.pattern, 'u').test(value)) errors.push(`${at}: "${value.slice(0, 40)}" does not match ${schema.pattern}`);
    const length = [...value].length;
    if (typeof schema.minLength === 'number' && length < schema.minLength) errors.push(`${at}: shorter than ${schema.minLength}`);
    if (typeof schema.maxLength === 'number' && length > schema.maxLength) errors.push(`${at}: longer than ${schema.maxLength}`);
  }
  if (typeof value === 'number') {
    if (typeof schema.minimum === 'number' && value < schema.minimum) errors.push(`${at}: below ${schema.minimum}`);
    if (typeof schema.maximum === 'number' && value > schema.maximum) errors.push(`${at}: above ${schema.maximum}`);
  }
  if (Array.isArray(value)) {
    if (typeof schema.minItems === 'number' && value.length < schema.minItems) errors.push(`${at}: fewer than ${schema.minItems} items`);
    if (typeof schema.maxItems === 'number' && value.length > schema.maxItems) errors.push(`${at}: more than ${schema.maxItems} items`);
    if (schema.items !== undefined) value.forEach((x, i) => check(schema.items, x, `${at}[${i}]`, errors));
  }
  if (isObject(value)) {
    const props = isObject(schema.properties) ? schema.properties : {};
    for (const r of (schema.required as string[] | undefined) ?? []) if (!(r in value)) errors.push(`${at}: missing "${r}"`);
    for (const [k, v] of Object.entries(value)) {
      if (isObject(schema.propertyNames)) check(schema.propertyNames, k, `${at} key "${k}"`, errors);
      if (k in props) check(props[k], v, `${at}.${k}`, errors);
      else if (schema.additionalProperties === false) errors.push(`${at}: unexpected field "${k}"`);
      else if (isObject(schema.additionalProperties)) check(schema.additionalProperties, v, `${at}.${k}`, errors);
    }
  }
}

function errorsOf(schema: unknown, value: unknown): string[] {
  const errors: string[] = [];
  check(schema, value, '$', errors);
  return errors;
}

const schemaRef = (name: string): Json => ({ $ref: `#/components/schemas/${name}` });
const mediaExample = (op: Json, status?: string): unknown => {
  const holder = status === undefined ? (op.requestBody as Json) : ((op.responses as Json)[status] as Json);
  return ((holder.content as Json)['application/json'] as Json).example;
};
const operation = (method: string, path: string): Json => {
  const found = operations().find((o) => o.method === method && o.path === path);
  assert.ok(found, `${method} ${path} is documented`);
  return found.op;
};

// ---------------------------------------------------------------------------------------

describe('gateway OpenAPI document', () => {
  it('is OpenAPI 3.1.x, built once, frozen and JSON-clean', () => {
    assert.match(String(doc.openapi), /^3\.1\.\d+$/);
    assert.equal(buildOpenApiDocument(), doc);
    assert.ok(Object.isFrozen(doc));
    assert.deepEqual(JSON.parse(JSON.stringify(doc)), doc);
    const ids = operations().map((o) => o.op.operationId);
    assert.equal(new Set(ids).size, ids.length, 'operationIds are unique');
    for (const o of operations()) assert.equal(typeof o.op.operationId, 'string', `${o.method} ${o.path} has an operationId`);
  });

  describe('(a) routes', () => {
    // Route construction only closes over ctx; no handler runs here except /openapi.json's.
    const routes = gatewayRoutes({} as GatewayContext);
    const norm = (p: string): string => p.replace(/\{[^}/]+\}/g, '{}');
    const templateParams = (p: string): string[] => [...p.matchAll(/\{([^}/]+)\}/g)].map((m) => m[1]!);

    it('every route in gateway/api.ts is documented, and nothing else is', () => {
      const fromCode = routes.map((r) => `${r.method} ${norm(r.path)}`).sort();
      const fromDoc = operations().map((o) => `${o.method} ${norm(o.path)}`).sort();
      assert.equal(new Set(fromCode).size, fromCode.length, 'no duplicate routes');
      assert.deepEqual(fromDoc, fromCode);
      // The router and OpenAPI share the {name} syntax: the templates match verbatim too.
      assert.deepEqual(operations().map((o) => `${o.method} ${o.path}`).sort(), routes.map((r) => `${r.method} ${r.path}`).sort());
    });

    it('declares exactly the path parameters of each template, as required path parameters', () => {
      for (const o of operations()) {
        const declared = o.params.filter((p) => p.in === 'path');
        assert.deepEqual(declared.map((p) => p.name).sort(), templateParams(o.path).sort(), `${o.method} ${o.path}`);
        for (const p of declared) {
          assert.equal(p.required, true);
          assert.ok(isObject(p.schema));
        }
      }
    });

    it('serves this very document at GET /openapi.json', async () => {
      const route = routes.find((r) => r.method === 'GET' && r.path === '/openapi.json');
      assert.ok(route);
      const result = await route.handler(undefined as never, new URL('http://localhost/openapi.json'), undefined, {});
      assert.equal(result.status, 200);
      assert.equal(result.json, doc);
    });

    it('documents a request body exactly for POST and DELETE, and errors with the Error schema', () => {
      for (const o of operations()) {
        assert.equal(o.op.requestBody !== undefined, o.method === 'POST' || o.method === 'DELETE', `${o.method} ${o.path} request body`);
        const responses = o.op.responses as Json;
        assert.ok(Object.keys(responses).some((s) => /^2\d\d$/.test(s)), `${o.method} ${o.path} has a success response`);
        for (const [status, raw] of Object.entries(responses)) {
          assert.match(status, /^[1-5]\d\d$/);
          const r = deref(raw);
          assert.equal(typeof r.description, 'string');
          if (Number(status) < 400 || o.path === '/health') continue;
          const media = (r.content as Json)['application/json'] as Json;
          assert.deepEqual(media.schema, schemaRef('Error'), `${o.method} ${o.path} ${status}`);
          const code = ((media.example as Json).error as Json).code as keyof typeof ERROR_CODES;
          assert.equal(ERROR_CODES[code], Number(status), `${o.method} ${o.path}: example code ${code} answers ${status}`);
          for (const listed of String(r.description).matchAll(/`([a-z_]+)`/g)) {
            if (listed[1]! in ERROR_CODES) assert.equal(ERROR_CODES[listed[1] as keyof typeof ERROR_CODES], Number(status), `${listed[1]} under ${status}`);
          }
        }
      }
    });

    it('lists the statuses the handlers can produce', () => {
      const statuses = (m: string, p: string): string[] => Object.keys(operation(m, p).responses as Json).sort();
      assert.deepEqual(statuses('DELETE', '/v1/handles/{handle}/grants/{grantee}'), ['200', '202', '400', '403', '404', '413', '429', '500', '503']);
      assert.deepEqual(statuses('POST', '/v1/handles/{handle}/delegate'), ['200', '400', '403', '404', '409', '413', '429', '500', '503']);
      assert.deepEqual(statuses('POST', '/v1/encrypt'), ['200', '201', '400', '403', '404', '409', '413', '429', '500', '503']);
      assert.deepEqual(statuses('GET', '/v1/handles/{handle}'), ['200', '400', '404', '429', '500', '503']);
      assert.deepEqual(statuses('GET', '/v1/handles/{handle}/grants'), ['200', '400', '404', '429', '500', '503']);
      assert.deepEqual(statuses('GET', '/metrics'), ['200', '429']);
      assert.deepEqual(statuses('GET', '/health'), ['200', '503']);
      const metrics = (operation('GET', '/metrics').responses as Json)['200'] as Json;
      assert.deepEqual(Object.keys(metrics.content as Json), ['text/plain']);
    });
  });

  describe('(b) references', () => {
    it('every $ref resolves', () => {
      let count = 0;
      walk(doc, (node, path) => {
        if (typeof node.$ref !== 'string') return;
        count++;
        assert.ok(pointer(node.$ref) !== undefined, `${path}: ${node.$ref} does not resolve`);
      });
      assert.ok(count > 50, `expected many $refs, found ${count}`);
    });

    it('every component is used', () => {
      const refs = new Set<string>();
      walk(doc, (node) => {
        if (typeof node.$ref === 'string') refs.add(node.$ref);
      });
      const components = doc.components as Json;
      for (const [kind, entries] of Object.entries(components)) {
        for (const name of Object.keys(entries as Json)) assert.ok(refs.has(`#/components/${kind}/${name}`), `#/components/${kind}/${name} is never referenced`);
      }
    });

    it('every object schema is closed and lists what it requires', () => {
      walk(doc.components, (node, path) => {
        if (node.type !== 'object' || !isObject(node.properties)) return;
        assert.equal(node.additionalProperties, false, `${path} has additionalProperties: false`);
        assert.ok(Array.isArray(node.required), `${path} has required`);
        for (const r of node.required as string[]) assert.ok(r in node.properties, `${path}: required "${r}" is a property`);
      });
    });
  });

  describe('(c) docs/api.md', () => {
    const mentioned = [...DOCS.matchAll(/\b(GET|POST|PUT|PATCH|DELETE)\s+(\/[A-Za-z0-9_./{}-]*)/g)].map((m) => `${m[1]} ${m[2]!.replace(/[.]+$/, '')}`);

    it('mentions only documented operations', () => {
      assert.ok(mentioned.length > 0);
      const documented = new Set(operations().map((o) => `${o.method} ${o.path}`));
      for (const m of mentioned) assert.ok(documented.has(m), `docs/api.md mentions ${m}, which the document does not have`);
    });

    it('documents every operation, under its own heading', () => {
      for (const o of operations()) {
        assert.ok(mentioned.includes(`${o.method} ${o.path}`), `docs/api.md never mentions ${o.method} ${o.path}`);
        assert.ok(DOCS.includes(`\n### ${o.method} ${o.path}\n`), `docs/api.md has a "### ${o.method} ${o.path}" section`);
      }
    });

    it('has the Signing and Authorization model sections, with the five type strings', () => {
      assert.match(DOCS, /^## Signing$/m);
      assert.match(DOCS, /^## Authorization model$/m);
      for (const s of [DELEGATION_STRUCT, GRANT_STRUCT, REVOCATION_STRUCT, ENCRYPT_STRUCT, REGISTER_STRUCT]) assert.ok(DOCS.includes(encodeType(s)), encodeType(s));
    });

    it('every JSON block parses, and the examples are the document\'s', () => {
      const blocks = [...DOCS.matchAll(/```json\n([\s\S]*?)\n```/g)].map((m) => JSON.parse(m[1]!) as unknown);
      assert.ok(blocks.length >= 12);
      const canon = (v: unknown): string => JSON.stringify(v);
      const inDocs = new Set(blocks.map(canon));
      for (const o of operations()) {
        if (o.op.requestBody !== undefined) assert.ok(inDocs.has(canon(mediaExample(o.op))), `docs/api.md shows the request example of ${o.method} ${o.path}`);
      }
      // ... and every block is one of the document's examples (so none is stale, e.g. lacks kProof).
      const examples = new Set<string>();
      walk(doc.paths, (node) => {
        if ('example' in node) examples.add(canon(node.example));
      });
      for (const b of blocks) assert.ok(examples.has(canon(b)), `docs/api.md block is not an example of the document: ${canon(b).slice(0, 120)}`);
    });
  });

  describe('(d) examples', () => {
    it('request body examples validate against their schemas', () => {
      let n = 0;
      for (const o of operations()) {
        if (o.op.requestBody === undefined) continue;
        const media = ((o.op.requestBody as Json).content as Json)['application/json'] as Json;
        assert.ok(media.example !== undefined, `${o.method} ${o.path} has a request example`);
        assert.deepEqual(errorsOf(media.schema, media.example), [], `${o.method} ${o.path}`);
        n++;
      }
      assert.equal(n, 5);
    });

    it('response, parameter and schema examples validate too', () => {
      for (const o of operations()) {
        for (const [status, raw] of Object.entries(o.op.responses as Json)) {
          for (const [type, media] of Object.entries((deref(raw).content as Json | undefined) ?? {})) {
            const m = media as Json;
            if (m.example === undefined) continue;
            assert.deepEqual(errorsOf(m.schema, m.example), [], `${o.method} ${o.path} ${status} ${type}`);
          }
        }
        for (const p of o.params) if (p.example !== undefined) assert.deepEqual(errorsOf(p.schema, p.example), [], `parameter ${String(p.name)}`);
      }
      walk(doc.components, (node, path) => {
        if (!Array.isArray(node.examples) || path.includes('/properties/')) return;
        for (const ex of node.examples) assert.deepEqual(errorsOf(node, ex), [], path);
      });
    });

    it('the checker rejects what the schemas forbid', () => {
      const body = mediaExample(operation('POST', '/v1/handles/{handle}/delegate')) as Json;
      const delegation = body.delegation as Json;
      const schema = schemaRef('DelegateBody');
      assert.deepEqual(errorsOf(schema, body), []);
      const bad = (mutate: (d: Json) => void): string[] => {
        const copy = structuredClone(body);
        mutate(copy);
        return errorsOf(schema, copy);
      };
      assert.notDeepEqual(bad((b) => ((b.delegation as Json).extra = 1)), []);
      assert.notDeepEqual(bad((b) => delete (b.delegation as Json).requestId), []);
      assert.notDeepEqual(bad((b) => ((b.delegation as Json).rsaSpki = `0x${String(delegation.rsaSpki)}`)), []);
      assert.notDeepEqual(bad((b) => ((b.delegation as Json).handle = String(delegation.handle).slice(2))), []);
      assert.notDeepEqual(bad((b) => ((b.delegation as Json).notAfter = 1.5)), []);
      assert.notDeepEqual(bad((b) => ((b.delegation as Json).notAfter = -1)), []);
      assert.notDeepEqual(bad((b) => ((b.delegation as Json).signature = `${String(delegation.signature).slice(0, -2)}00`)), []);
      assert.notDeepEqual(bad((b) => (b.exclude = [0])), []);
      assert.notDeepEqual(bad((b) => (b.exclude = 'all')), []);
      assert.notDeepEqual(errorsOf(schemaRef('KeyId'), 'a..b'), []);
      assert.notDeepEqual(errorsOf(schemaRef('Base64'), 'aGVsbG8'), []);
    });
  });

  describe('agreement with core', () => {
    const STRUCTS: [string, Eip712Struct][] = [
      ['Delegation', DELEGATION_STRUCT],
      ['Grant', GRANT_STRUCT],
      ['Revocation', REVOCATION_STRUCT],
      ['EncryptRequest', ENCRYPT_STRUCT],
      ['RegisterHandle', REGISTER_STRUCT],
    ];
    const schemasByName = (doc.components as Json).schemas as Json;
    // The examples are signed for the example key's committee.
    const EXAMPLE_DEPLOYMENT = { committeeId: String((mediaExample(operation('GET', '/v1/keys/{keyId}'), '200') as Json).committeeId) };

    it('each message schema has exactly the struct\'s fields plus signature, and names its type string and domain', () => {
      for (const [name, struct] of STRUCTS) {
        const s = schemasByName[name] as Json;
        const fields = [...struct.fields.map((f) => f.name), 'signature'];
        assert.deepEqual(Object.keys(s.properties as Json), fields, name);
        assert.deepEqual(s.required, fields, name);
        assert.equal(s.additionalProperties, false);
        assert.ok(String(s.description).includes(encodeType(struct)), `${name} description has ${encodeType(struct)}`);
        assert.ok(String(s.description).includes('{ "name": "tkms", "version": "2", "salt": keccak256("tkms/committee/" ‖ committeeId) }'));
        assert.ok(String(s.description).includes('No chainId'));
        assert.ok(String(s.description).includes('legacy_signature'));
        const ext = s['x-eip712'] as Json;
        const domain = tkmsDomain(EXAMPLE_DEPLOYMENT);
        assert.deepEqual(ext.domain, { name: domain.name, version: domain.version, salt: encodeHex(committeeSalt(EXAMPLE_DEPLOYMENT.committeeId)) });
        assert.deepEqual((ext.types as Json).EIP712Domain, [
          { name: 'name', type: 'string' },
          { name: 'version', type: 'string' },
          { name: 'salt', type: 'bytes32' },
        ]);
        assert.deepEqual((ext.types as Json)[name], struct.fields.map((f) => ({ name: f.name, type: f.type })));
      }
      assert.equal(tkmsDomain(EXAMPLE_DEPLOYMENT).chainId, undefined);
    });

    it('the limits mirrored from core agree with the parsers', () => {
      const grant = mediaExample(operation('POST', '/v1/handles/{handle}/grants')) as Json;
      const delegation = (mediaExample(operation('POST', '/v1/handles/{handle}/delegate')) as Json).delegation as Json;
      const timestamp = schemaRef('Timestamp');
      const max = deref(timestamp).maximum as number;
      assert.deepEqual(errorsOf(timestamp, max), []);
      parseGrant({ ...grant, notAfter: max });
      assert.notDeepEqual(errorsOf(timestamp, max + 1), []);
      assert.throws(() => parseGrant({ ...grant, notAfter: max + 1 }), { code: 'bad_request' });
      const spki = schemaRef('RsaSpki');
      const longest = 'ab'.repeat((deref(spki).maxLength as number) / 2);
      assert.deepEqual(errorsOf(spki, longest), []);
      parseDelegation({ ...delegation, rsaSpki: longest });
      assert.notDeepEqual(errorsOf(spki, `${longest}ab`), []);
      assert.throws(() => parseDelegation({ ...delegation, rsaSpki: `${longest}ab` }), { code: 'bad_length' });
      assert.throws(() => parseDelegation({ ...delegation, rsaSpki: `0x${String(delegation.rsaSpki)}` }), { code: 'bad_hex' });
      for (const id of ['demo', 'a', 'k.1_x-y', 'a'.repeat(64), 'a..b', '.a', 'A', 'a'.repeat(65), '']) {
        let parsed = true;
        try {
          assertKeyId(id);
        } catch {
          parsed = false;
        }
        assert.equal(errorsOf(schemaRef('KeyId'), id).length === 0, parsed, `key id "${id}"`);
      }
    });

    it('docs/api.md\'s status table is core/errors.ts\'s', () => {
      for (const [code, status] of Object.entries(ERROR_CODES)) {
        const row = DOCS.split('\n').find((l) => l.startsWith(`| ${status} | `) && l.includes(`\`${code}\``));
        assert.ok(row, `docs/api.md lists ${code} under ${status}`);
      }
    });

    // One consistent example set: the signatures, handle and DKG result are real.
    const handleExample = mediaExample(operation('GET', '/v1/handles/{handle}'), '200') as Json;
    const descriptor: HandleDescriptor = parseHandleDescriptor({
      keyId: handleExample.keyId,
      K: handleExample.K,
      nonce: handleExample.nonce,
      ciphertextHash: handleExample.ciphertextHash,
      owner: handleExample.owner,
      kProof: handleExample.kProof,
    });
    const encryptBody = mediaExample(operation('POST', '/v1/encrypt')) as Json;
    const registerBody = mediaExample(operation('POST', '/v1/handles')) as Json;
    const grantJson = mediaExample(operation('POST', '/v1/handles/{handle}/grants')) as Json;
    const revocationJson = mediaExample(operation('DELETE', '/v1/handles/{handle}/grants/{grantee}')) as Json;
    const delegationJson = (mediaExample(operation('POST', '/v1/handles/{handle}/delegate')) as Json).delegation as Json;

    it('the examples parse with the core codecs and their signatures verify', () => {
      const request = parseEncryptRequest(encryptBody.request);
      verifyEncryptRequest(request, decodeBase64(encryptBody.plaintext), { nowSeconds: request.notBefore + 1 }, EXAMPLE_DEPLOYMENT);
      const registration = parseRegisterHandle(registerBody.registration);
      const ciphertext = decodeBase64(registerBody.ciphertext);
      assert.equal(handleExample.ciphertext, registerBody.ciphertext);
      verifyRegisterHandle(registration, { ...descriptor, K: decodeHex(registerBody.K), nonce: decodeHex(registerBody.nonce), kProof: decodeHex(registerBody.kProof) }, EXAMPLE_DEPLOYMENT);
      assert.ok(ciphertext.length >= 16);
      const grant = parseGrant(grantJson);
      verifyGrant(grant, descriptor, EXAMPLE_DEPLOYMENT);
      verifyRevocation(parseRevocation(revocationJson), descriptor, EXAMPLE_DEPLOYMENT);
      const delegation = parseDelegation(delegationJson);
      const authorized = authorizeDelegation({ deployment: EXAMPLE_DEPLOYMENT, delegation, descriptor, grant, revokedAt: () => undefined, nowSeconds: delegation.notBefore + 1 });
      assert.equal(authorized.viaGrant, true);
      // ... and the example revocation (revokedAt ≥ issuedAt) does cancel the example grant.
      const revokedAt = parseRevocation(revocationJson).revokedAt;
      assert.throws(() => authorizeDelegation({ deployment: EXAMPLE_DEPLOYMENT, delegation, descriptor, grant, revokedAt: () => revokedAt, nowSeconds: delegation.notBefore + 1 }), { code: 'revoked' });
      const result = mediaExample(operation('POST', '/v1/handles/{handle}/delegate'), '200') as Json;
      for (const p of result.partials as unknown[]) parsePartialAnswer(p);
      assert.equal(result.requestId, delegationJson.requestId);
    });

    it('the example kProof binds the example K to the example handle, and only to it', () => {
      // The handle is the commitment to the registration body's fields, over the real ciphertext.
      const registration = parseRegisterHandle(registerBody.registration);
      const K = decodeHex(registerBody.K);
      const nonce = decodeHex(registerBody.nonce);
      const handle = deriveHandle({ keyId: registration.keyId, K, nonce, ciphertext: decodeBase64(registerBody.ciphertext), owner: registration.owner });
      assert.deepEqual(handle, registration.handle);
      assert.equal(registerBody.kProof, handleExample.kProof);
      assert.ok(verifyEphemeralKeyProof(descriptor, descriptor.kProof), 'the example kProof verifies');
      // Every handle-shaped example carries the same kProof.
      for (const [m, p, status] of [
        ['POST', '/v1/encrypt', '201'],
        ['POST', '/v1/handles', '200'],
        ['POST', '/v1/handles/{handle}/delegate', '200'],
      ] as const) {
        assert.equal((mediaExample(operation(m, p), status) as Json).kProof, handleExample.kProof, `${m} ${p} ${status}`);
      }
      // The K-copy attack on the example: the same K, nonce and ciphertext hash under another owner
      // (the grantee) make a correct commitment, but the proof does not carry over.
      const copy: HandleDescriptor = { ...descriptor, owner: decodeHex(delegationJson.requester) };
      assert.equal(verifyEphemeralKeyProof(copy, descriptor.kProof), false);
      const flipped = Uint8Array.from(descriptor.kProof);
      flipped[0]! ^= 1;
      assert.throws(() => verifyRegisterHandle(registration, { ...descriptor, kProof: flipped }, EXAMPLE_DEPLOYMENT), { code: 'unauthorized' });
    });

    it('kProof is in every handle schema, required in the POST /v1/handles body, and its pattern is the core length', () => {
      const proof = schemaRef('EphemeralKeyProof');
      assert.equal(deref(proof).pattern, `^0x[0-9a-f]{${EPHEMERAL_PROOF_LENGTH * 2}}$`);
      assert.deepEqual(errorsOf(proof, handleExample.kProof), []);
      assert.notDeepEqual(errorsOf(proof, String(handleExample.kProof).slice(0, -2)), []);
      assert.notDeepEqual(errorsOf(proof, String(handleExample.kProof).slice(2)), []);
      assert.notDeepEqual(errorsOf(proof, String(handleExample.kProof).toUpperCase().replace('0X', '0x')), []);
      for (const name of ['HandleStored', 'HandleRecord', 'DelegationResult', 'RegisterHandleBody']) {
        const s = schemasByName[name] as Json;
        assert.ok('kProof' in (s.properties as Json), `${name} has kProof`);
        assert.ok((s.required as string[]).includes('kProof'), `${name} requires kProof`);
      }
      // The body without kProof, or with a short one, is refused by the schema (as by gateway/api.ts).
      const { kProof: _proof, ...withoutProof } = registerBody;
      assert.notDeepEqual(errorsOf(schemaRef('RegisterHandleBody'), withoutProof), []);
      assert.notDeepEqual(errorsOf(schemaRef('RegisterHandleBody'), { ...registerBody, kProof: '0x00' }), []);
      assert.match(DOCS, /^- \*\*Binding K to the handle\.\*\*/m);
    });

    it('the example key is a DKG result that verifies against its members\' keys', () => {
      const key = mediaExample(operation('GET', '/v1/keys/{keyId}'), '200') as Json;
      // keyToJson publishes the DKG result's groupPublicKey as publicKey, plus the SPKI and members.
      const { publicKey, publicKeySpki: _spki, members, ...rest } = key;
      const result = parseDkgPublicResult({ ...rest, groupPublicKey: publicKey });
      const memberKeys = new Map((members as Json[]).map((m) => [m.id as number, decodeHex(m.publicKey)]));
      verifyDkgPublicResult(result, { committeeId: key.committeeId as string, t: key.t as number, memberKeys });
    });

    it('a standard EIP-712 implementation (ethers) recovers the signers from the documented types', () => {
      const cases: [Json, Json, string][] = [
        [schemasByName.EncryptRequest as Json, encryptBody.request as Json, String(handleExample.owner)],
        [schemasByName.RegisterHandle as Json, registerBody.registration as Json, String(handleExample.owner)],
        [schemasByName.Grant as Json, grantJson, String(handleExample.owner)],
        [schemasByName.Revocation as Json, revocationJson, String(handleExample.owner)],
        [schemasByName.Delegation as Json, delegationJson, String(delegationJson.requester)],
      ];
      for (const [schema, message, signer] of cases) {
        const ext = schema['x-eip712'] as Json;
        const { EIP712Domain: _domain, ...types } = ext.types as Record<string, { name: string; type: string }[]>;
        const { signature, ...fields } = message;
        // rsaSpki travels without 0x; as an EIP-712 `bytes` value it is the same bytes.
        const value = Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, k === 'rsaSpki' ? `0x${String(v)}` : v]));
        const recovered = ethers.verifyTypedData(ext.domain as ethers.TypedDataDomain, types, value, String(signature));
        assert.equal(recovered.toLowerCase(), signer, String(ext.primaryType));
      }
    });
  });
});
