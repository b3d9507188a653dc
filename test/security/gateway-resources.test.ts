import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { generateAccount, TkmsClient, type Account } from '../../client/index.ts';
import { isTkmsError } from '../../core/index.ts';
import { Devnet } from '../../deploy/devnet.ts';
import { makeTempDir, removeDir } from '../support/processes.ts';
import { getFrom, metricValue, rawConnection, rssBytes, sleep, type RawConnection } from '../support/http-attack.ts';

/**
 * What a client can make the real gateway hold after its request is read: answers it does not
 * read (pipelined or not), and handles on disk. A devnet of 3 nodes (t = 2) whose gateway gets
 * small limits through the environment, so the same file runs against a gateway that predates
 * them (it then shows what the attacks did).
 */
const MiB = 1024 * 1024;
const LIMITS = {
  // A per-address share of one largest answer (the gateway raises any smaller value to that).
  TKMS_GATEWAY_MAX_RESPONSE_BYTES_IN_FLIGHT_PER_IP: '1',
  TKMS_GATEWAY_RESPONSE_TIMEOUT_MS: '3000',
  TKMS_GATEWAY_MAX_PIPELINED_REQUESTS: '4',
  TKMS_GATEWAY_HANDLES_PER_OWNER: '3',
  TKMS_GATEWAY_HANDLE_BYTES_PER_OWNER: String(2.5 * MiB),
  TKMS_GATEWAY_HANDLE_BYTES_MAX: String(7 * MiB),
  // Per account 10 at once, 1 a second; per address ten times that.
  TKMS_GATEWAY_RATE_PER_MINUTE: '60',
  TKMS_GATEWAY_RATE_BURST: '10',
};
const BIG = 1_000_000;

describe('security: what a client can make the gateway hold (devnet: 3 nodes, t = 2)', function () {
  this.timeout(180_000);
  let dir: string | undefined;
  let devnet: Devnet | undefined;
  let alice: Account;
  let big: string;
  const open: RawConnection[] = [];

  const clientFor = async (a: Account): Promise<TkmsClient> => new TkmsClient({ gatewayUrl: devnet!.gatewayUrl, account: a, trustedMemberKeys: await devnet!.memberKeys() });
  /** Scraped from an address of its own: /metrics is limited per address like the API. */
  const metrics = async (): Promise<string> => (await getFrom(devnet!.gatewayUrl, '/metrics', '127.0.0.250')).body;
  const refusedFor = async (reason: string): Promise<number> => metricValue(await metrics(), 'tkms_gateway_http_refused_total', `{reason="${reason}"}`);
  const pipelined = (n: number): string => `GET /v1/handles/${big} HTTP/1.1\r\nhost: gateway\r\n\r\n`.repeat(n);
  /** A connection that sends `first` and never reads what comes back. */
  const neverReads = (from: string, first: string): RawConnection => {
    const c = rawConnection(devnet!.gatewayUrl, from);
    c.socket.pause();
    c.socket.once('connect', () => c.socket.write(first));
    open.push(c);
    return c;
  };

  before(async function () {
    dir = await makeTempDir('tkms-sec-gwres');
    const saved = Object.fromEntries(Object.keys(LIMITS).map((k) => [k, process.env[k]]));
    Object.assign(process.env, LIMITS);
    try {
      devnet = await Devnet.start({ dir, n: 3, t: 2, gatewayPort: 0 });
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
    alice = generateAccount();
    ({ handle: big } = await (await clientFor(alice)).encrypt(randomBytes(BIG), { keyId: devnet.keyId }));
  });

  afterEach(() => {
    for (const c of open.splice(0)) c.socket.destroy();
  });

  after(async function () {
    for (const c of open.splice(0)) c.socket.destroy();
    await devnet?.stop();
    await removeDir(dir);
  });

  describe('attack: hundreds of pipelined GETs of a large handle on a socket that never reads', () => {
    it('answers one request per socket at a time and closes the socket; memory stays bounded and others are served', async () => {
      const pid = devnet!.gatewayProcess!.pid!;
      const before = rssBytes(pid);
      let peak = before;
      const sampler = setInterval(() => {
        peak = Math.max(peak, rssBytes(pid));
      }, 50);
      let closedAfter: number | undefined;
      try {
        const attack = neverReads('127.0.0.20', pipelined(300));
        await sleep(1_000);
        // Another client is served meanwhile, the whole handle.
        const other = await getFrom(devnet!.gatewayUrl, `/v1/handles/${big}`, '127.0.0.21');
        assert.equal(other.status, 200, other.body.slice(0, 300));
        assert.ok((JSON.parse(other.body) as { ciphertext: string }).ciphertext.length > (BIG * 4) / 3);
        closedAfter = await Promise.race([attack.closed, sleep(20_000).then(() => undefined)]);
        await sleep(500);
      } finally {
        clearInterval(sampler);
      }
      const growth = peak - before;
      process.stdout.write(`      gateway RSS ${(before / MiB).toFixed(1)} MiB before, peak ${(peak / MiB).toFixed(1)} MiB (+${(growth / MiB).toFixed(1)} MiB) under 300 pipelined GETs of a 1 MB handle; socket closed after ${closedAfter ?? 'never (20 s)'} ms\n`);
      assert.ok(closedAfter !== undefined, 'the gateway kept the never-reading socket open');
      assert.ok(growth < 48 * MiB, `gateway RSS grew by ${(growth / MiB).toFixed(1)} MiB`);
      assert.ok((await refusedFor('pipelined_requests')) >= 1, 'the refusal is counted');
    });
  });

  describe('attack: large answers left unread to hold the gateway\'s memory and connection slots', () => {
    it('an address past its share of unread answer bytes is refused (429); the unread answer is cut after the response timeout, then the address is served again', async () => {
      const timeoutsBefore = await refusedFor('response_timeout');
      // Within the pipelining bound (one answered, four waiting): the kernel's socket buffers take some answers, one stays in the gateway.
      const slow = neverReads('127.0.0.30', pipelined(5));
      await sleep(1_500);
      const refused = await getFrom(devnet!.gatewayUrl, `/v1/handles/${big}`, '127.0.0.30');
      assert.equal(refused.status, 429, refused.body.slice(0, 300));
      assert.match(refused.body, /"code":"rate_limited"/);
      assert.match(refused.body, /response_bytes_in_flight_per_ip/);
      // Another address has its own share.
      assert.equal((await getFrom(devnet!.gatewayUrl, `/v1/handles/${big}`, '127.0.0.31')).status, 200);
      // The gateway cuts the connection once the stuck answer has not been flushed for 3 s.
      const started = Date.now();
      while ((await refusedFor('response_timeout')) === timeoutsBefore && Date.now() - started < 20_000) await sleep(250);
      assert.ok((await refusedFor('response_timeout')) > timeoutsBefore, 'the gateway never cut the unread answer');
      // Reading now gets what the kernel held, then the close.
      slow.socket.resume();
      const closedAfter = await Promise.race([slow.closed, sleep(10_000).then(() => undefined)]);
      assert.ok(closedAfter !== undefined && closedAfter >= 2_500, `the unread answer's socket closed after ${closedAfter} ms (response timeout 3 s)`);
      assert.equal((await getFrom(devnet!.gatewayUrl, `/v1/handles/${big}`, '127.0.0.30')).status, 200, 'the share is released with the socket');
    });
  });

  describe('attack: free accounts filling the gateway\'s disk with handles', () => {
    it('refuses handles past the per-owner count (429) and bytes (429) and past the store budget (503); grants and revocations are still accepted', async () => {
      const tiny = new TextEncoder().encode('x');
      // Three handles per owner.
      const carol = await clientFor(generateAccount());
      for (let i = 0; i < 3; i++) await carol.encrypt(tiny, { keyId: devnet!.keyId });
      const fourth = await carol.encrypt(tiny, { keyId: devnet!.keyId }).then(() => undefined, (e: unknown) => e);
      assert.ok(isTkmsError(fourth, 'rate_limited') && fourth.details?.reason === 'handles_per_owner', `got ${String(fourth)}`);
      // 2.5 MiB per owner: two 1 MB handles fit, a third does not.
      const dave = await clientFor(generateAccount());
      for (let i = 0; i < 2; i++) await dave.encrypt(randomBytes(BIG), { keyId: devnet!.keyId });
      const third = await dave.encrypt(randomBytes(BIG), { keyId: devnet!.keyId }).then(() => undefined, (e: unknown) => e);
      assert.ok(isTkmsError(third, 'rate_limited') && third.details?.reason === 'handle_bytes_per_owner', `got ${String(third)}`);

      // Alice granted bob her handle before the store filled.
      const bob = generateAccount();
      const aliceClient = await clientFor(alice);
      await aliceClient.grant(big, bob.address);
      // Fresh accounts, one 1 MB handle each, until the 7 MiB budget refuses: the sybil flood.
      let full: unknown;
      let stored = 0;
      for (let i = 0; i < 10 && full === undefined; i++) {
        await (await clientFor(generateAccount())).encrypt(randomBytes(BIG), { keyId: devnet!.keyId }).then(
          () => stored++,
          (e: unknown) => (full = e),
        );
      }
      assert.ok(isTkmsError(full, 'unavailable') && full.details?.reason === 'store_full', `got ${String(full)} after ${stored} more handles`);
      // 1 + 2 MB stored before, and at most 7 MiB in all.
      assert.ok(stored >= 2 && stored <= 4, `${stored} handles stored before the budget refused`);
      // Stored handles are still served.
      assert.equal((await getFrom(devnet!.gatewayUrl, `/v1/handles/${big}`, '127.0.0.41')).status, 200);
      // Grants and revocations still go through: alice can still cut bob off.
      await aliceClient.grant(big, generateAccount().address);
      const revoked = await aliceClient.revoke(big, bob.address);
      assert.equal(revoked.effective, true);
      await assert.rejects((await clientFor(bob)).decrypt(big), (e: unknown) => isTkmsError(e, 'revoked') || isTkmsError(e, 'unauthorized'));
    });
  });

  describe('attack: scraping /metrics on the public port as fast as possible', () => {
    it('/metrics is limited per address like the API (429); /health stays free', async () => {
      const statuses: number[] = [];
      for (let i = 0; i < 160 && !statuses.includes(429); i++) statuses.push((await getFrom(devnet!.gatewayUrl, '/metrics', '127.0.0.40')).status);
      assert.ok(statuses.includes(429), `no 429 in ${statuses.length} scrapes`);
      assert.equal((await getFrom(devnet!.gatewayUrl, '/health', '127.0.0.40')).status, 200);
    });
  });
});
