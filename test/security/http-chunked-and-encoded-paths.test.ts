import assert from 'node:assert/strict';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { closeServer, startHttpServer, type Route } from '../../net/http.ts';
import { DEFAULT_HTTP_LIMITS } from '../../net/http-limits.ts';
import { createLogger } from '../../runtime/logger.ts';
import { rawConnection, type RawOutcome } from '../support/http-attack.ts';

/**
 * Attacks on the HTTP layer itself (a real listener on loopback with the security limits on):
 * chunked bodies that cross a limit mid-stream, and percent-encoded paths that would reach a
 * route past a proxy rule written for its plain spelling. Design note: the first answered a 500
 * in fastify's own format (the failed read destroyed the request, and with it request.raw.socket,
 * which the error handler then read); before fastify, the same read was an unhandled rejection.
 */
const MAX_BODY = 64 * 1024;
const PER_IP = 96 * 1024;
const ROUTES: Route[] = [
  { method: 'GET', path: '/metrics', handler: () => ({ status: 200, json: { metrics: true } }) },
  { method: 'GET', path: '/v1/keys/{keyId}', handler: (_req, _url, _body, params) => ({ status: 200, json: { keyId: params.keyId } }) },
  { method: 'POST', path: '/v1/echo', handler: (_req, _url, body) => ({ status: 200, json: { body } }) },
];

function chunked(path: string, chunks: number, chunkBytes: number): string {
  const chunk = `${chunkBytes.toString(16)}\r\n${'a'.repeat(chunkBytes)}\r\n`;
  return `POST ${path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n${chunk.repeat(chunks)}`;
}
const get = (path: string): string => `GET ${path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`;
const errorOf = (o: RawOutcome): { code: string; message: string } => (JSON.parse(o.text.slice(o.text.indexOf('\r\n\r\n') + 4)) as { error: { code: string; message: string } }).error;

describe('security: chunked bodies past a limit, and percent-encoded paths', function () {
  this.timeout(30_000);
  let server: Server;
  let url: string;

  before(async () => {
    server = await startHttpServer('127.0.0.1', 0, ROUTES, createLogger('silent'), 'test', {
      maxBodyBytes: MAX_BODY,
      limits: { ...DEFAULT_HTTP_LIMITS, maxBodyBytesInFlightPerIp: PER_IP, bodyIdleTimeoutMs: 2_000, bodyTimeoutMs: 5_000 },
    });
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(async () => {
    await closeServer(server);
  });

  it('attack: a chunked body that grows past the body limit gets 413 payload_too_large in the JSON envelope, not a 500', async () => {
    const c = rawConnection(url, '127.0.0.1', chunked('/v1/echo', 2, MAX_BODY));
    const o = await c.outcome;
    c.socket.destroy();
    assert.equal(o.status, 413, o.text.slice(0, 300));
    assert.equal(errorOf(o).code, 'payload_too_large');
  });

  it("attack: chunked bodies that together cross one address's body budget mid-stream get 429 rate_limited, not a 500", async () => {
    // The first upload holds 60 KiB of the 96 KiB budget without finishing; the second crosses it while streaming.
    const holder = rawConnection(url, '127.0.0.21', chunked('/v1/echo', 1, 60 * 1024));
    await new Promise((r) => setTimeout(r, 300));
    const crosser = rawConnection(url, '127.0.0.21', chunked('/v1/echo', 1, 60 * 1024));
    const o = await crosser.outcome;
    holder.socket.destroy();
    crosser.socket.destroy();
    assert.equal(o.status, 429, o.text.slice(0, 300));
    assert.equal(errorOf(o).code, 'rate_limited');
  });

  it('attack: percent-encoded letters in a fixed path segment do not reach the route (a proxy rule on "/metrics" stays whole)', async () => {
    for (const path of ['/%6detrics', '/%6Detrics', '/v1/%6beys/a', '/v%31/keys/a']) {
      const c = rawConnection(url, '127.0.0.1', get(path));
      const o = await c.outcome;
      c.socket.destroy();
      assert.equal(o.status, 404, `${path}: ${o.text.slice(0, 200)}`);
      assert.equal(errorOf(o).code, 'not_found');
    }
  });

  it('an empty path parameter is no route (404), and parameters may still be percent-encoded', async () => {
    const empty = rawConnection(url, '127.0.0.1', get('/v1/keys/'));
    const e = await empty.outcome;
    empty.socket.destroy();
    assert.equal(e.status, 404, e.text.slice(0, 200));
    const plain = rawConnection(url, '127.0.0.1', get('/metrics'));
    assert.equal((await plain.outcome).status, 200);
    plain.socket.destroy();
    const encoded = rawConnection(url, '127.0.0.1', get('/v1/keys/%61bc'));
    const o = await encoded.outcome;
    encoded.socket.destroy();
    assert.equal(o.status, 200, o.text.slice(0, 200));
    assert.deepEqual(JSON.parse(o.text.slice(o.text.indexOf('\r\n\r\n') + 4)), { keyId: 'abc' });
  });
});
