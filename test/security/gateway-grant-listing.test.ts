import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { GatewayConfig } from '../../gateway/config.ts';
import { gatewayRoutes, grantsResponseBytes, type GatewayContext } from '../../gateway/api.ts';
import { createGatewayMetrics } from '../../gateway/metrics.ts';
import { GatewayStore, type StoredHandle } from '../../gateway/store.ts';
import { closeServer, startHttpServer } from '../../net/http.ts';
import { DEFAULT_HTTP_LIMITS } from '../../net/http-limits.ts';
import { createLogger } from '../../runtime/logger.ts';
import { RateLimiter } from '../../runtime/rate-limit.ts';
import { makeTempDir, removeDir } from '../support/processes.ts';
import { getFrom, rawConnection, sleep, type RawConnection } from '../support/http-attack.ts';

/**
 * GET /v1/handles/{handle}/grants of a handle with the most grants one owner may hold, left
 * unread. The gateway's real routes, HTTP listener and store (a real directory, filled directly:
 * ten thousand signed grants through the API would take the owner's rate limit hours), over real
 * sockets; the listing route reaches neither the nodes nor the key directory.
 */
const GRANTS = 10_000;
const MiB = 1024 * 1024;

describe('security: grant listings left unread (gateway routes, real HTTP server and store)', function () {
  this.timeout(60_000);
  let dir: string | undefined;
  let store: GatewayStore | undefined;
  let server: Server | undefined;
  let url = '';
  const handle = `0x${'ab'.repeat(32)}`;
  const open: RawConnection[] = [];
  const bound = grantsResponseBytes(GRANTS);

  before(async () => {
    dir = await makeTempDir('tkms-sec-grantlist');
    store = await GatewayStore.open(dir, { limits: { grants: { perOwner: GRANTS, max: GRANTS } } });
    const ct = new Uint8Array(64).fill(7);
    const meta: StoredHandle = {
      handle,
      keyId: 'default',
      K: `0x02${'11'.repeat(32)}`,
      nonce: `0x${'22'.repeat(12)}`,
      ciphertextHash: `0x${createHash('sha256').update(ct).digest('hex')}`,
      owner: `0x${'33'.repeat(20)}`,
      kProof: `0x${'44'.repeat(64)}`,
      createdAt: 1_700_000_000_000,
    };
    await store.putHandle(meta, ct);
    const now = Math.floor(Date.now() / 1000);
    // Real grants' sizes: a 20-byte grantee and a 65-byte signature, in hex.
    for (let i = 0; i < GRANTS; i += 1_000) {
      await Promise.all(
        Array.from({ length: 1_000 }, (_, j) =>
          store!.putGrant({ handle, grantee: `0x${(i + j).toString(16).padStart(40, '0')}`, notAfter: now + 3600, issuedAt: now, signature: `0x${'5'.repeat(130)}` }),
        ),
      );
    }
    const ctx = {
      config: { clockSkewSeconds: 60 } as GatewayConfig,
      store,
      limiter: new RateLimiter(1_000_000, 1_000_000),
      ipLimiter: new RateLimiter(1_000_000, 1_000_000),
      metrics: createGatewayMetrics(),
    } as unknown as GatewayContext;
    // One listing fits an address's share, two do not; two addresses' fit the total, three do not.
    const limits = { ...DEFAULT_HTTP_LIMITS, maxResponseBytesInFlightPerIp: Math.floor(1.5 * bound), maxResponseBytesInFlight: Math.floor(2.5 * bound), responseTimeoutMs: 30_000 };
    server = await startHttpServer('127.0.0.1', 0, gatewayRoutes(ctx), createLogger('silent'), 'test', { limits });
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    for (const c of open.splice(0)) c.socket.destroy();
    if (server) await closeServer(server);
    await store?.close();
    await removeDir(dir);
  });

  /** A connection that pipelines `n` listings and never reads: the kernel's buffers take some, one stays in the gateway. */
  const neverReads = (from: string, n: number): RawConnection => {
    const c = rawConnection(url, from);
    c.socket.pause();
    c.socket.once('connect', () => c.socket.write(`GET /v1/handles/${handle}/grants HTTP/1.1\r\nhost: gateway\r\n\r\n`.repeat(n)));
    open.push(c);
    return c;
  };

  /** GETs the listing from `from` until it is refused (or 15 s pass): the stuck answer reserves its bytes once built. */
  const refusedFrom = async (from: string): Promise<{ status: number; body: string }> => {
    const started = Date.now();
    let last = await getFrom(url, `/v1/handles/${handle}/grants`, from);
    while (last.status === 200 && Date.now() - started < 15_000) {
      await sleep(250);
      last = await getFrom(url, `/v1/handles/${handle}/grants`, from);
    }
    return last;
  };

  describe('attack: listings of a handle with 10,000 grants pipelined on sockets that never read', () => {
    it('charges each listing before building it: an address past its share gets 429, the gateway past its total 503; read answers are whole', async () => {
      const whole = await getFrom(url, `/v1/handles/${handle}/grants`, '127.0.0.40');
      assert.equal(whole.status, 200);
      assert.equal((JSON.parse(whole.body) as { grants: unknown[] }).grants.length, GRANTS);
      assert.ok(whole.body.length <= bound, `the listing is ${whole.body.length} bytes, more than the ${bound} charged for it`);
      process.stdout.write(`      a listing of ${GRANTS} grants: ${(whole.body.length / MiB).toFixed(2)} MiB, charged ${(bound / MiB).toFixed(2)} MiB\n`);

      neverReads('127.0.0.41', 4);
      const perIp = await refusedFrom('127.0.0.41');
      assert.equal(perIp.status, 429, perIp.body.slice(0, 300));
      assert.match(perIp.body, /response_bytes_in_flight_per_ip/);

      // A second address's stuck listing fills the gateway's total: a third address is refused too.
      neverReads('127.0.0.42', 4);
      const total = await refusedFrom('127.0.0.43');
      assert.equal(total.status, 503, total.body.slice(0, 300));
      assert.match(total.body, /response_bytes_in_flight"/);

      // Closing the unread sockets frees their bytes.
      for (const c of open.splice(0)) c.socket.destroy();
      await sleep(200);
      assert.equal((await getFrom(url, `/v1/handles/${handle}/grants`, '127.0.0.43')).status, 200);
    });
  });
});
