import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GatewayHttp } from '../../client/gateway-http.ts';
import { isTkmsError } from '../../core/index.ts';
import { isLoopbackHost } from '../../net/http-address.ts';

/** How the client's requests could leave the machine in the clear: redirects, and names that only look local. */

async function listen(handler: (req: IncomingMessage, body: string) => { status: number; headers?: Record<string, string>; body?: string }): Promise<Server> {
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => {
      const out = handler(req, Buffer.concat(chunks).toString('utf8'));
      res.writeHead(out.status, { 'content-type': 'application/json', ...(out.headers ?? {}) });
      res.end(out.body ?? '{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return server;
}

const portOf = (s: Server): number => (s.address() as AddressInfo).port;

describe('security: the client\'s transport', () => {
  describe('attack: a gateway (or a proxy) redirects a signed request to plain http://', () => {
    let gateway: Server | undefined;
    let sink: Server | undefined;
    let status = 307;
    const received: string[] = [];
    before(async () => {
      // The sink stands for the attacker's plain-http host: a followed redirect would reach it.
      sink = await listen((req, body) => {
        received.push(`${req.method} ${req.url} ${body}`);
        return { status: 200, body: '{"stolen":true}' };
      });
      gateway = await listen(() => ({ status, headers: { location: `http://127.0.0.1:${portOf(sink!)}/collect` } }));
    });
    after(async () => {
      for (const s of [gateway, sink]) {
        s?.closeAllConnections();
        await new Promise((r) => s?.close(r));
      }
    });

    for (const code of [307, 308]) {
      it(`the client fails with insecure_transport on a ${code} and sends the body nowhere else`, async () => {
        status = code;
        const http = new GatewayHttp({ baseUrl: `http://127.0.0.1:${portOf(gateway!)}`, timeoutMs: 5_000 });
        const err = await http.request('POST', '/v1/encrypt', { plaintext: 'c2VjcmV0' }).then(
          () => undefined,
          (e: unknown) => e,
        );
        assert.ok(isTkmsError(err, 'insecure_transport'), `got ${String(err)}`);
        assert.match((err as Error).message, /redirect/);
        assert.deepEqual(received, [], 'the redirect target received nothing');
      });
    }
  });

  describe('attack: a *.localhost name that resolves off the machine passes the http:// check', () => {
    it('only exactly localhost, 127.0.0.0/8 and ::1 count as loopback', () => {
      for (const h of ['localhost', 'LOCALHOST', '127.0.0.1', '127.255.0.9', '::1', '[::1]']) assert.equal(isLoopbackHost(h), true, h);
      for (const h of ['evil.localhost', 'a.b.localhost', 'localhost.', 'localhost.example', '128.0.0.1', '127.0.0.256', '::2', '0.0.0.0', '10.0.0.1']) {
        assert.equal(isLoopbackHost(h), false, h);
      }
      assert.throws(() => new GatewayHttp({ baseUrl: 'http://gateway.localhost:8080' }), (e: unknown) => isTkmsError(e, 'insecure_transport'));
      new GatewayHttp({ baseUrl: 'http://localhost:8080' });
    });
  });
  describe('a gateway mounted under a path, and one that is not there', () => {
    let gateway: Server | undefined;
    const seen: string[] = [];
    before(async () => {
      gateway = await listen((req) => {
        seen.push(`${req.method} ${req.url}`);
        return { status: 200, body: '{"ok":true}' };
      });
    });
    after(async () => {
      gateway?.closeAllConnections();
      await new Promise((r) => gateway?.close(r));
    });

    it('routes resolve under the base URL\'s path, with or without its final slash', async () => {
      for (const base of ['/tkms/', '/tkms', '/a/b/']) {
        seen.length = 0;
        const http = new GatewayHttp({ baseUrl: `http://127.0.0.1:${portOf(gateway!)}${base}?ignored=1#x`, timeoutMs: 5_000 });
        await http.request('GET', '/v1/keys/k1');
        await http.request('POST', 'v1/encrypt', {});
        const prefix = base.endsWith('/') ? base : `${base}/`;
        assert.deepEqual(seen, [`GET ${prefix}v1/keys/k1`, `POST ${prefix}v1/encrypt`]);
      }
      seen.length = 0;
      await new GatewayHttp({ baseUrl: `http://127.0.0.1:${portOf(gateway!)}` }).request('GET', '/health');
      assert.deepEqual(seen, ['GET /health']);
    });

    it('an unreachable gateway is told apart: unavailable, reason unreachable, with the URL', async () => {
      const closed = await listen(() => ({ status: 200 }));
      const port = portOf(closed);
      await new Promise((r) => closed.close(r));
      const err = await new GatewayHttp({ baseUrl: `http://127.0.0.1:${port}/tkms/`, timeoutMs: 5_000 }).request('GET', '/v1/keys/k1').then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(isTkmsError(err, 'unavailable'), `got ${String(err)}`);
      assert.equal(err.details?.reason, 'unreachable');
      assert.match(err.message, new RegExp(`127\\.0\\.0\\.1:${port}/tkms/ is unreachable`));
    });
  });
});
