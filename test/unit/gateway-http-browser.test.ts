import assert from 'node:assert/strict';
import type { FastifyInstance } from 'fastify';
import { isTkmsError } from '../../core/index.ts';
import { gatewayRoutes, type GatewayContext } from '../../gateway/api.ts';
import { parseGatewayConfig } from '../../gateway/config.ts';
import { buildOpenApiDocument } from '../../gateway/openapi.ts';
import { buildHttpApp } from '../../net/http.ts';
import { createLogger } from '../../runtime/logger.ts';
import { RateLimiter } from '../../runtime/rate-limit.ts';

/**
 * What a web page needs from the gateway's HTTP layer: CORS for configured origins only (and
 * their preflight answered), every route under a base path too, and the protocol-level answers
 * (405 with Allow, 415 for a body that is not JSON, 404 for an unknown path) as typed errors.
 * The routes are the gateway's own; no handler that needs a committee runs here.
 */
const ORIGIN = 'https://app.example';
const HANDLE = `0x${'3d'.repeat(32)}`;

describe('gateway HTTP for browsers: CORS, base path, protocol errors', () => {
  let app: FastifyInstance;
  before(async () => {
    const ctx = { ipLimiter: new RateLimiter(1e6, 1e6), store: { getHandle: () => undefined } } as unknown as GatewayContext;
    app = await buildHttpApp(gatewayRoutes(ctx), createLogger('silent'), 'test', { basePath: '/tkms/', cors: { allowedOrigins: [ORIGIN] } });
  });
  after(() => app.close());

  const error = (body: string): { code: string; message: string } => (JSON.parse(body) as { error: { code: string; message: string } }).error;

  it('answers a preflight from an allowed origin with the methods and headers it takes, under the base path too', async () => {
    for (const url of ['/v1/encrypt', '/tkms/v1/handles/x/delegate']) {
      const r = await app.inject({ method: 'OPTIONS', url, headers: { origin: ORIGIN, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' } });
      assert.equal(r.statusCode, 204, url);
      assert.equal(r.headers['access-control-allow-origin'], ORIGIN);
      assert.equal(r.headers['access-control-allow-methods'], 'GET, POST, DELETE');
      assert.equal(r.headers['access-control-allow-headers'], 'content-type, accept');
      assert.equal(r.headers['access-control-allow-credentials'], undefined);
    }
  });

  it('gives CORS headers to allowed origins only, errors included', async () => {
    const allowed = await app.inject({ method: 'GET', url: `/v1/handles/${HANDLE}`, headers: { origin: ORIGIN } });
    assert.equal(allowed.statusCode, 404);
    assert.equal(allowed.headers['access-control-allow-origin'], ORIGIN);
    assert.match(String(allowed.headers['access-control-expose-headers']), /retry-after/);
    const other = await app.inject({ method: 'GET', url: `/v1/handles/${HANDLE}`, headers: { origin: 'https://evil.example' } });
    assert.equal(other.headers['access-control-allow-origin'], undefined);
    const preflight = await app.inject({ method: 'OPTIONS', url: '/v1/encrypt', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
    assert.equal(preflight.headers['access-control-allow-origin'], undefined);
  });

  it('without allowed origins sends no CORS headers, and OPTIONS is a method it does not take', async () => {
    const plain = await buildHttpApp(gatewayRoutes({ ipLimiter: new RateLimiter(1e6, 1e6) } as unknown as GatewayContext), createLogger('silent'), 'test');
    try {
      const r = await plain.inject({ method: 'OPTIONS', url: '/v1/encrypt', headers: { origin: ORIGIN, 'access-control-request-method': 'POST' } });
      assert.equal(r.statusCode, 405);
      assert.equal(r.headers['access-control-allow-origin'], undefined);
      assert.equal(error(r.body).code, 'method_not_allowed');
      assert.equal((await plain.inject({ method: 'GET', url: '/tkms/openapi.json' })).statusCode, 404);
    } finally {
      await plain.close();
    }
  });

  it('serves every route under the base path as at the root', async () => {
    const root = await app.inject({ method: 'GET', url: '/openapi.json' });
    const based = await app.inject({ method: 'GET', url: '/tkms/openapi.json' });
    assert.equal(based.statusCode, 200);
    assert.deepEqual(JSON.parse(based.body), JSON.parse(root.body));
    assert.deepEqual(JSON.parse(based.body), buildOpenApiDocument());
    // Path parameters are validated under it as at the root.
    const bad = await app.inject({ method: 'GET', url: '/tkms/v1/handles/0x1234' });
    assert.equal(bad.statusCode, 400);
    assert.equal(error(bad.body).code, 'bad_length');
    assert.equal((await app.inject({ method: 'GET', url: '/tkmsx/openapi.json' })).statusCode, 404);
    assert.equal((await app.inject({ method: 'PUT', url: '/tkms/v1/keys' })).headers.allow, 'GET, POST');
  });

  it('a known path with another method is 405 with Allow; an unknown path 404; both typed errors', async () => {
    const wrong = await app.inject({ method: 'GET', url: `/v1/handles/${HANDLE}/grants/0x${'70'.repeat(20)}` });
    assert.equal(wrong.statusCode, 405);
    assert.equal(wrong.headers.allow, 'DELETE');
    assert.equal(error(wrong.body).code, 'method_not_allowed');
    const both = await app.inject({ method: 'PUT', url: `/v1/handles/${HANDLE}/grants` });
    assert.equal(both.headers.allow, 'GET, POST');
    const unknown = await app.inject({ method: 'GET', url: '/v2/keys' });
    assert.equal(unknown.statusCode, 404);
    assert.equal(error(unknown.body).code, 'not_found');
    assert.match(String(unknown.headers['content-type']), /^application\/json/);
    // Without a route nothing reads the body: a 404 (or 405), not a JSON error about it.
    for (const [method, url, status] of [['POST', '/v2/keys', 404], ['PUT', '/v1/encrypt', 405]] as const) {
      const r = await app.inject({ method, url, payload: '{not json', headers: { 'content-type': 'application/json' } });
      assert.equal(r.statusCode, status, `${method} ${url}`);
      assert.equal(r.headers.connection, 'close');
    }
  });

  it('takes JSON bodies only (415 otherwise, with the body unread), strictly: no coercion, no stray fields', async () => {
    for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/jsonx']) {
      const r = await app.inject({ method: 'POST', url: '/v1/encrypt', payload: '{}', headers: { 'content-type': type } });
      assert.equal(r.statusCode, 415, type);
      assert.equal(error(r.body).code, 'unsupported_media_type');
      assert.equal(r.headers.connection, 'close');
    }
    const example = (buildOpenApiDocument().paths as Record<string, { post: { requestBody: { content: { 'application/json': { example: Record<string, unknown> } } } } }>)['/v1/handles/{handle}/delegate']!.post.requestBody.content['application/json'].example;
    const post = (body: unknown) => app.inject({ method: 'POST', url: `/v1/handles/${HANDLE}/delegate`, payload: JSON.stringify(body), headers: { 'content-type': 'application/json; charset=utf-8' } });
    const delegation = example.delegation as Record<string, unknown>;
    const cases: [unknown, string][] = [
      [{ ...example, extra: 1 }, 'bad_request'],
      [{ delegation: { ...delegation, notAfter: String(delegation.notAfter) } }, 'bad_request'],
      [{ delegation: { ...delegation, requester: '0x1234' } }, 'bad_address'],
      [{ delegation: { ...delegation, requestId: '0x00' } }, 'bad_length'],
      [{ delegation: { ...delegation, handle: 'zz' } }, 'bad_hex'],
      [{ delegation, exclude: ['1'] }, 'bad_request'],
      [[example], 'bad_request'],
    ];
    for (const [body, code] of cases) {
      const r = await post(body);
      assert.equal(r.statusCode, 400, JSON.stringify(body).slice(0, 80));
      assert.equal(error(r.body).code, code, `${JSON.stringify(body).slice(0, 80)}: ${r.body}`);
    }
  });

  it('every body is JSON only, on routes without a declared body schema too (415 otherwise)', async () => {
    const echo = await buildHttpApp([{ method: 'POST', path: '/admin/echo', handler: (_req, _url, body) => ({ status: 200, json: { body } }) }], createLogger('silent'), 'test');
    try {
      const text = await echo.inject({ method: 'POST', url: '/admin/echo', payload: '{"keyId":"a"}', headers: { 'content-type': 'text/plain;charset=UTF-8' } });
      assert.equal(text.statusCode, 415);
      assert.equal(JSON.parse(text.body).error.code, 'unsupported_media_type');
      const json = await echo.inject({ method: 'POST', url: '/admin/echo', payload: '{"keyId":"a"}', headers: { 'content-type': 'application/json' } });
      assert.equal(json.statusCode, 200);
      assert.deepEqual(JSON.parse(json.body), { body: { keyId: 'a' } });
    } finally {
      await echo.close();
    }
  });

  it('config: cors.allowedOrigins and basePath from the file or the environment; no wildcard, no non-origins', () => {
    const base = { listen: '127.0.0.1:8080', storeDir: 's', committeeFile: 'c.json' };
    const d = parseGatewayConfig(base, '/tmp');
    assert.deepEqual(d.cors, { allowedOrigins: [] });
    assert.equal(d.basePath, '/');
    const c = parseGatewayConfig({ ...base, cors: { allowedOrigins: [ORIGIN, 'http://localhost:5173'] }, basePath: '/tkms' }, '/tmp');
    assert.deepEqual(c.cors.allowedOrigins, [ORIGIN, 'http://localhost:5173']);
    assert.equal(c.basePath, '/tkms');
    const e = parseGatewayConfig(base, '/tmp', { TKMS_GATEWAY_CORS_ORIGINS: `${ORIGIN}, https://b.example`, TKMS_GATEWAY_BASE_PATH: '/a/b' });
    assert.deepEqual(e.cors.allowedOrigins, [ORIGIN, 'https://b.example']);
    assert.equal(e.basePath, '/a/b');
    assert.equal(parseGatewayConfig({ ...base, basePath: '/tkms/' }, '/tmp').basePath, '/tkms/', 'the trailing slash is optional');
    for (const bad of [{ cors: { allowedOrigins: ['*'] } }, { cors: { allowedOrigins: ['https://app.example/'] } }, { cors: { allowedOrigins: ['ftp://x.example'] } }, { cors: ORIGIN }, { basePath: 'tkms' }, { basePath: '/a?b' }, { basePath: '/..' }, { basePath: '/a/./b' }, { basePath: '/a//b' }, { basePath: '' }]) {
      assert.throws(() => parseGatewayConfig({ ...base, ...bad }, '/tmp'), (err: unknown) => isTkmsError(err, 'bad_request'), JSON.stringify(bad));
    }
  });
});
