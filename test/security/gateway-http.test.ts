import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import forge from 'node-forge';
import { generateAccount, TkmsClient, type Account } from '../../client/index.ts';
import { GatewayHttp } from '../../client/gateway-http.ts';
import { generateRsaKeyPair, isTkmsError, type RsaKeyPair } from '../../core/index.ts';
import { Devnet } from '../../deploy/devnet.ts';
import { freePorts, makeTempDir, ManagedProcess, removeDir, runTkms, waitFor } from '../support/processes.ts';
import { metricValue, postHead, rawConnection, rssBytes, sleep, type RawConnection, type RawOutcome } from '../support/http-attack.ts';

/**
 * Attacks on the gateway's HTTP side and on the client's, against real processes: a devnet of
 * 3 nodes (t = 2) whose gateway has small HTTP limits, and raw sockets from several loopback
 * source addresses (127.0.0.x), so per-address and global limits can be told apart.
 * The limits come through the environment, so the same file runs against a gateway that
 * predates them (it then shows what the attacks did).
 */
const MiB = 1024 * 1024;
const LIMITS = {
  TKMS_GATEWAY_MAX_CONNECTIONS: '96',
  TKMS_GATEWAY_MAX_CONNECTIONS_PER_IP: '24',
  TKMS_GATEWAY_MAX_BODY_BYTES_IN_FLIGHT: String(6 * MiB),
  TKMS_GATEWAY_MAX_BODY_BYTES_IN_FLIGHT_PER_IP: String(3 * MiB),
  TKMS_GATEWAY_HEADERS_TIMEOUT_MS: '2000',
  TKMS_GATEWAY_BODY_IDLE_TIMEOUT_MS: '2000',
  TKMS_GATEWAY_BODY_TIMEOUT_MS: '5000',
};
/** Per account; the per-address limit is ten times this: a burst of 60, refilled at one a second. */
const RATE = { perMinute: 6, burst: 6 };
const IP_BURST = RATE.burst * 10;

describe('security: the gateway\'s HTTP listener and the client\'s HTTP (devnet: 3 nodes, t = 2)', function () {
  this.timeout(120_000);
  let dir: string | undefined;
  let devnet: Devnet | undefined;
  let rsa: RsaKeyPair;
  const open: RawConnection[] = [];

  const clientFor = async (a: Account, extra: { rsaKey?: RsaKeyPair; fetch?: typeof fetch } = {}): Promise<TkmsClient> =>
    new TkmsClient({ gatewayUrl: devnet!.gatewayUrl, account: a, trustedMemberKeys: await devnet!.memberKeys(), rsaKey: extra.rsaKey ?? rsa, ...(extra.fetch ? { fetch: extra.fetch } : {}) });
  /** Scraped from an address of its own: /metrics is charged to the per-address limit like the API. */
  const metrics = async (): Promise<string> => {
    const u = new URL(devnet!.gatewayUrl);
    return new Promise((resolve, reject) => {
      const req = httpRequest({ host: u.hostname, port: u.port, path: '/metrics', localAddress: '127.0.0.250', agent: false }, (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString('utf8')));
        res.on('end', () => resolve(text));
      });
      req.on('error', reject);
      req.end();
    });
  };
  const refused = (text: string): number =>
    text
      .split('\n')
      .filter((l) => l.startsWith('tkms_gateway_http_refused_total{'))
      .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
  const gatewayPid = (): number => devnet!.gatewayProcess!.pid!;
  /** A legitimate client from 127.0.0.1 still gets its data encrypted and stored. */
  const servesLegitimately = async (): Promise<void> => {
    const c = await clientFor(generateAccount());
    const { handle } = await c.encrypt(new TextEncoder().encode('still served'), { keyId: devnet!.keyId });
    assert.match(handle, /^0x[0-9a-f]{64}$/);
  };
  const closeAll = (): void => {
    for (const c of open.splice(0)) c.socket.destroy();
  };

  before(async function () {
    this.timeout(120_000);
    dir = await makeTempDir('tkms-sec-gwhttp');
    const saved = Object.fromEntries(Object.keys(LIMITS).map((k) => [k, process.env[k]]));
    Object.assign(process.env, LIMITS);
    try {
      devnet = await Devnet.start({ dir, n: 3, t: 2, gatewayPort: 0, gatewayConfig: { rateLimit: RATE } });
    } finally {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
    rsa = await generateRsaKeyPair();
  });

  afterEach(closeAll);

  after(async function () {
    this.timeout(60_000);
    closeAll();
    await devnet?.stop();
    await removeDir(dir);
  });

  describe('attack: hundreds of unfinished uploads to exhaust the gateway\'s memory', () => {
    it('refuses them before reading their bodies (connection caps, body-bytes budget); memory stays bounded and others are served', async () => {
      const pid = gatewayPid();
      const before = rssBytes(pid);
      const refusedBefore = refused(await metrics());
      // 300 uploads from ten addresses, each declaring a maximal body and sending 1 MB of it, never the rest.
      const declared = 1_400_000;
      const part = Buffer.alloc(1_000_000, 0x61);
      for (let i = 0; i < 300; i++) {
        const c = rawConnection(devnet!.gatewayUrl, `127.0.0.${10 + (i % 10)}`, postHead('/v1/encrypt', declared));
        c.socket.once('connect', () => c.socket.write(part));
        open.push(c);
      }
      let peak = before;
      const sampler = setInterval(() => {
        peak = Math.max(peak, rssBytes(pid));
      }, 50);
      const answered: RawOutcome[] = [];
      try {
        // Refusals come at once; the few uploads admitted are cut by the body idle timeout.
        await Promise.race([Promise.all(open.map((c) => c.outcome.then((o) => answered.push(o)))), sleep(15_000)]);
      } finally {
        clearInterval(sampler);
      }
      const growth = peak - before;
      process.stdout.write(`      gateway RSS ${(before / MiB).toFixed(1)} MiB before, peak ${(peak / MiB).toFixed(1)} MiB (+${(growth / MiB).toFixed(1)} MiB) under 300 unfinished uploads\n`);
      // Six MiB in flight hold at most four such bodies: the gateway refused every other upload with its body unread.
      const refusedNow = refused(await metrics()) - refusedBefore;
      assert.ok(refusedNow >= 296, `the gateway counted ${refusedNow} refusals of 300 unfinished uploads`);
      // Each got a 429/503 JSON error, or (refused mid-upload) a closed connection; none was served.
      const statuses = answered.map((o) => o.status);
      assert.equal(answered.length, 300, 'every upload was answered or closed');
      assert.deepEqual(statuses.filter((s) => s !== 429 && s !== 503 && s !== 'closed'), []);
      assert.ok(statuses.filter((s) => s === 429 || s === 503).length >= 150, JSON.stringify(statuses));
      for (const o of answered.filter((a) => a.status === 429 || a.status === 503)) assert.match(o.text, /"error":\{"code":"(rate_limited|unavailable)"/);
      assert.ok(growth < 64 * MiB, `gateway RSS grew by ${(growth / MiB).toFixed(1)} MiB`);
      closeAll();
      await servesLegitimately();
    });

    it('one address cannot hold more body bytes than its share, and all addresses together not more than the total', async () => {
      const body = 1_400_000;
      // 3 MiB per address: the third concurrent maximal upload from one address is refused unread.
      const one = [0, 1, 2].map(() => rawConnection(devnet!.gatewayUrl, '127.0.0.90', postHead('/v1/encrypt', body)));
      open.push(...one);
      const third = await Promise.race([Promise.any(one.map((c) => c.outcome)), sleep(10_000).then(() => undefined)]);
      assert.equal(third?.status, 429);
      assert.match(third!.text, /"code":"rate_limited"/);
      assert.match(third!.text, /body_bytes_in_flight_per_ip/);
      closeAll();
      // The gateway releases a closed upload's reservation when it sees the close.
      await sleep(500);
      // 6 MiB in total: four maximal uploads from four addresses fit, the fifth (from a fifth address) does not.
      const many = [0, 1, 2, 3, 4].map((i) => rawConnection(devnet!.gatewayUrl, `127.0.0.${91 + i}`));
      open.push(...many);
      for (const c of many) {
        await new Promise<void>((r) => (c.socket.connecting ? c.socket.once('connect', () => r()) : r()));
        c.socket.write(postHead('/v1/encrypt', body));
        await sleep(100);
      }
      const fifth = await Promise.race([many[4]!.outcome, sleep(10_000).then(() => undefined)]);
      assert.equal(fifth?.status, 503);
      assert.match(fifth!.text, /"code":"unavailable"/);
      const firstFour = await Promise.race([Promise.any(many.slice(0, 4).map((c) => c.outcome)), sleep(500).then(() => 'pending' as const)]);
      assert.equal(firstFour, 'pending', 'the four uploads within the budget are still being read');
    });
  });

  describe('attack: slowloris headers/body', () => {
    it('a client that sends its headers a byte at a time is disconnected after the headers timeout', async () => {
      const c = rawConnection(devnet!.gatewayUrl, '127.0.0.50', 'GET /health HTTP/1.1\r\nhost: gateway\r\n');
      open.push(c);
      const drip = setInterval(() => c.socket.write('x-slow: 1\r\n'), 200);
      try {
        const closedAfter = await Promise.race([c.closed, sleep(15_000).then(() => undefined)]);
        assert.ok(closedAfter !== undefined, 'the connection is still open after 15 s');
        assert.ok(closedAfter >= 1_500, `closed after ${closedAfter} ms, before the 2 s headers timeout`);
        assert.equal((await c.outcome).status, 'closed', 'no answer to a request that never finished');
      } finally {
        clearInterval(drip);
      }
    });

    it('a body that stalls is cut after the idle timeout, and one that trickles after the body timeout', async () => {
      const before = metricValue(await metrics(), 'tkms_gateway_http_refused_total', '{reason="body_timeout"}');
      const stall = rawConnection(devnet!.gatewayUrl, '127.0.0.51', `${postHead('/v1/encrypt', 1000)}{"request":`);
      const trickle = rawConnection(devnet!.gatewayUrl, '127.0.0.52', `${postHead('/v1/encrypt', 1000)}{"request":`);
      open.push(stall, trickle);
      // One byte every 300 ms keeps the idle timeout away, never the total.
      const drip = setInterval(() => trickle.socket.write(' '), 300);
      try {
        const [stalled, trickled] = await Promise.all([stall, trickle].map((c) => Promise.race([c.closed, sleep(20_000).then(() => undefined)])));
        assert.ok(stalled !== undefined && stalled >= 1_500 && stalled < 15_000, `stalled body closed after ${stalled} ms (idle timeout 2 s)`);
        assert.ok(trickled !== undefined && trickled >= 4_500 && trickled < 20_000, `trickling body closed after ${trickled} ms (body timeout 5 s)`);
        assert.ok(trickled > stalled, 'the trickle outlived the idle timeout');
      } finally {
        clearInterval(drip);
      }
      assert.equal(metricValue(await metrics(), 'tkms_gateway_http_refused_total', '{reason="body_timeout"}') - before, 2);
    });
  });

  describe('attack: too many connections from one IP', () => {
    it('connections past the per-address cap are refused (429) while another address is served; past the total cap, 503', async () => {
      const mine = Array.from({ length: 30 }, () => rawConnection(devnet!.gatewayUrl, '127.0.0.70'));
      open.push(...mine);
      await Promise.all(mine.map((c) => new Promise((r) => c.socket.once('connect', r))));
      // Another address is served meanwhile.
      const other = rawConnection(devnet!.gatewayUrl, '127.0.0.71', 'GET /health HTTP/1.1\r\nhost: gateway\r\nconnection: close\r\n\r\n');
      open.push(other);
      assert.equal((await other.outcome).status, 200);
      const outcomes = await Promise.all(mine.map((c) => c.outcome));
      const tooMany = outcomes.filter((o) => o.status === 429);
      assert.equal(tooMany.length, 30 - 24, `statuses ${JSON.stringify(outcomes.map((o) => o.status))}`);
      for (const o of tooMany) assert.match(o.text, /"code":"rate_limited"/);
      closeAll();
      await sleep(300);

      // 160 connections from eight addresses (20 each, under the per-address cap): at most 96 are admitted.
      const all = Array.from({ length: 160 }, (_, i) => rawConnection(devnet!.gatewayUrl, `127.0.0.${80 + (i % 8)}`));
      open.push(...all);
      const results = await Promise.all(all.map((c) => c.outcome));
      const unavailable = results.filter((o) => o.status === 503);
      assert.ok(unavailable.length >= 160 - 96, `${unavailable.length} refused of 160`);
      assert.equal(results.filter((o) => o.status === 429).length, 0, 'no address passed its own cap');
      for (const o of unavailable) assert.match(o.text, /"code":"unavailable"/);
      closeAll();
      await sleep(300);
      await servesLegitimately();
    });
  });

  describe('attack: GET flood of large handles', () => {
    it('one address reading a 1 MiB handle over and over is limited (429 with Retry-After)', async () => {
      const owner = generateAccount();
      const c = await clientFor(owner);
      const { handle } = await c.encrypt(randomBytes(1_000_000), { keyId: devnet!.keyId });
      const url = new URL(`${devnet!.gatewayUrl}/v1/handles/${handle}`);
      const started = Date.now();
      const statuses: number[] = [];
      let lastRefusal: { retryAfter: string | undefined; body: string } | undefined;
      // Until the limit has refused ten, however slowly the reads go (each second earns one more).
      while (statuses.filter((s) => s === 429).length < 10 && statuses.length < IP_BURST + 300) {
        statuses.push(
          await new Promise<number>((resolve, reject) => {
            const req = httpRequest({ host: url.hostname, port: url.port, path: url.pathname, localAddress: '127.0.0.60', agent: false }, (res) => {
              let body = '';
              res.on('data', (d: Buffer) => {
                if (res.statusCode !== 200) body += d.toString('utf8');
              });
              res.on('end', () => {
                if (res.statusCode === 429) lastRefusal = { retryAfter: res.headers['retry-after'] as string | undefined, body };
                resolve(res.statusCode ?? 0);
              });
            });
            req.on('error', reject);
            req.end();
          }),
        );
      }
      const seconds = (Date.now() - started) / 1000;
      const served = statuses.filter((s) => s === 200).length;
      // A burst of 60, refilled at one a second.
      assert.ok(served <= IP_BURST + Math.ceil(seconds) + 1, `${served} of ${statuses.length} large reads served in ${seconds.toFixed(1)} s`);
      assert.ok(statuses.filter((s) => s === 429).length >= 10, `statuses: ${JSON.stringify(statuses)}`);
      assert.ok(lastRefusal !== undefined && /^\d+$/.test(lastRefusal.retryAfter ?? ''), 'Retry-After on the refusal');
      assert.match(lastRefusal.body, /"code":"rate_limited"/);
    });
  });

  describe('attack: a gateway answers with an endless body', () => {
    let evil: Server | undefined;
    let sent = 0;
    let mode: 'chunked' | 'declared' = 'chunked';
    before(async () => {
      evil = createServer((_req, res) => {
        if (mode === 'declared') {
          res.writeHead(200, { 'content-type': 'application/json', 'content-length': String(2 ** 40) });
          res.write('{');
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' });
        const chunk = Buffer.alloc(64 * 1024, 0x20);
        const pump = (): void => {
          while (!res.destroyed && res.write(chunk)) sent += chunk.length;
        };
        res.on('drain', pump);
        res.write('{"keys":[');
        pump();
      });
      await new Promise<void>((r) => evil!.listen(0, '127.0.0.1', r));
    });
    after(async () => {
      evil?.closeAllConnections();
      await new Promise((r) => evil?.close(r));
    });

    it('the client stops reading past its bound and fails with response_too_large', async () => {
      const base = `http://127.0.0.1:${(evil!.address() as AddressInfo).port}`;
      const http = new GatewayHttp({ baseUrl: base, timeoutMs: 10_000 });
      const err = await http.request('GET', '/v1/keys').then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(isTkmsError(err, 'response_too_large'), `got ${String(err)}`);
      // 8 MiB read, plus what sat in socket buffers when the client hung up.
      assert.ok(sent < 64 * MiB, `the evil gateway wrote ${sent} bytes before the client hung up`);
      mode = 'declared';
      const declared = await http.request('GET', '/v1/keys').then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(isTkmsError(declared, 'response_too_large'), `got ${String(declared)}`);
      // Through the client API too, with its own bound.
      const c = new TkmsClient({ gatewayUrl: base, account: generateAccount(), maxResponseBytes: 1024, timeoutMs: 10_000 });
      mode = 'chunked';
      await assert.rejects(c.getKey('default'), (e: unknown) => isTkmsError(e, 'response_too_large'));
    });
  });

  describe('attack: delegate with a huge/invalid RSA key and no valid signature', () => {
    it('the gateway refuses the delegation before it parses the key, and remembers keys it refused', async () => {
      const alice = generateAccount();
      const mallory = generateAccount();
      const { handle } = await (await clientFor(alice)).encrypt(new TextEncoder().encode('rsa order'), { keyId: devnet!.keyId });
      // A 7680-bit modulus (not a key we accept: at most 4096 bits) in a well-formed SPKI of under 1 KiB.
      const n = randomBytes(960);
      n[0]! |= 0x80;
      n[n.length - 1]! |= 1;
      const spki = createPublicKey({ key: { kty: 'RSA', n: n.toString('base64url'), e: 'AQAB' }, format: 'jwk' }).export({ type: 'spki', format: 'der' });
      const huge: RsaKeyPair = { publicKey: { key: rsa.publicKey.key, modulusBits: 7680, spkiHex: spki.toString('hex') }, privateKey: rsa.privateKey };
      const checks = async (outcome: string): Promise<number> => metricValue(await metrics(), 'tkms_gateway_requester_key_checks_total', `{outcome="${outcome}"}`);
      const refusedBefore = await checks('refused');

      // Mallory has no grant: refused as unauthorized, and the key is never looked at.
      await assert.rejects((await clientFor(mallory, { rsaKey: huge })).decrypt(handle), (e: unknown) => isTkmsError(e, 'unauthorized'));
      // A delegation naming alice with a broken signature: refused the same way.
      const tamper: typeof fetch = async (input, init) => {
        if (typeof init?.body === 'string' && String(input).endsWith('/delegate')) {
          const body = JSON.parse(init.body) as { delegation: { signature: string } };
          const sig = body.delegation.signature;
          body.delegation.signature = `${sig.slice(0, 10)}${sig[10] === '0' ? '1' : '0'}${sig.slice(11)}`;
          return fetch(input, { ...init, body: JSON.stringify(body) });
        }
        return fetch(input, init);
      };
      await assert.rejects((await clientFor(alice, { rsaKey: huge, fetch: tamper })).decrypt(handle), (e: unknown) => isTkmsError(e, 'unauthorized'));
      assert.equal(await checks('refused'), refusedBefore, 'no requester key was parsed for unauthorized delegations');

      // Alice is authorized: now the key is checked, refused, and remembered.
      const cachedBefore = await checks('refused_cached');
      await assert.rejects((await clientFor(alice, { rsaKey: huge })).decrypt(handle), (e: unknown) => isTkmsError(e, 'bad_rsa_key'));
      assert.equal(await checks('refused'), refusedBefore + 1);
      await assert.rejects((await clientFor(alice, { rsaKey: huge })).decrypt(handle), (e: unknown) => isTkmsError(e, 'bad_rsa_key'));
      assert.equal(await checks('refused'), refusedBefore + 1, 'the refused key is not parsed again');
      assert.equal(await checks('refused_cached'), cachedBefore + 1);
      // Her real key still works.
      const { plaintext } = await (await clientFor(alice)).decrypt(handle);
      assert.equal(new TextDecoder().decode(plaintext), 'rsa order');
    });
  });

  describe('attack: reading plaintexts and signed requests off the wire (no TLS)', () => {
    let tlsGateway: ManagedProcess | undefined;
    after(async () => {
      await tlsGateway?.stop();
    });

    it('the gateway serves HTTPS from the certificate and key in its config; the CLI round-trips through it', async () => {
      // A self-signed certificate for 127.0.0.1, made here.
      const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const cert = forge.pki.createCertificate();
      cert.publicKey = forge.pki.publicKeyFromPem(publicKey.export({ type: 'spki', format: 'pem' }) as string);
      cert.serialNumber = '01';
      cert.validity.notBefore = new Date(Date.now() - 60_000);
      cert.validity.notAfter = new Date(Date.now() + 86_400_000);
      const name = [{ name: 'commonName', value: 'tkms test gateway' }];
      cert.setSubject(name);
      cert.setIssuer(name);
      cert.setExtensions([
        { name: 'basicConstraints', cA: true },
        { name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] },
      ]);
      cert.sign(forge.pki.privateKeyFromPem(privateKey.export({ type: 'pkcs8', format: 'pem' }) as string), forge.md.sha256.create());
      const certFile = join(dir!, 'tls-cert.pem');
      const keyFile = join(dir!, 'tls-key.pem');
      await writeFile(certFile, forge.pki.certificateToPem(cert));
      await writeFile(keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }) as string, { mode: 0o600 });
      const [port] = await freePorts(1);
      const config = join(dir!, 'gateway-tls.json');
      await writeFile(config, JSON.stringify({ listen: `127.0.0.1:${port}`, storeDir: 'gateway-tls/store', committeeFile: 'committee.json', tlsCertFile: 'tls-cert.pem', tlsKeyFile: 'tls-key.pem' }));
      tlsGateway = new ManagedProcess('tls gateway', ['bin/tkms.js', 'gateway', 'start', '--config', config]);
      await waitFor('the HTTPS gateway', () => (tlsGateway!.stdout.includes('tkms gateway started') ? true : tlsGateway!.running ? undefined : Promise.reject(new Error(tlsGateway!.stderr))), { timeoutMs: 60_000 });
      const url = `https://127.0.0.1:${port}`;
      assert.ok(tlsGateway.stdout.includes(`"url":"${url}"`), 'the gateway says it serves https');

      const account = join(dir!, 'tls-account.json');
      const password = join(dir!, 'tls-account-password');
      await writeFile(password, 'test password\n');
      assert.equal((await runTkms(['account', 'new', '--out', account, '--password-file', password])).code, 0);
      const common = ['--gateway', url, '--account', account, '--password-file', password, '--committee', join(dir!, 'committee.json'), '--json'];
      const trusting = { env: { NODE_EXTRA_CA_CERTS: certFile } };
      const enc = await runTkms(['encrypt', '--key', devnet!.keyId, '--text', 'over tls', ...common], trusting);
      assert.equal(enc.code, 0, enc.stderr);
      const { handle } = JSON.parse(enc.stdout) as { handle: string };
      const dec = await runTkms(['decrypt', '--handle', handle, ...common], trusting);
      assert.equal(dec.code, 0, dec.stderr);
      assert.equal(Buffer.from((JSON.parse(dec.stdout) as { plaintext: string }).plaintext, 'base64').toString('utf8'), 'over tls');
      // Without the certificate trusted, the client does not talk to it; nor does the gateway speak plain HTTP there.
      const untrusted = await runTkms(['encrypt', '--key', devnet!.keyId, '--text', 'x', ...common]);
      assert.equal(untrusted.code, 1);
      assert.match(untrusted.stderr, /\[unavailable\]/);
      const plain = await fetch(`http://127.0.0.1:${port}/health`).then(
        (r) => r.status,
        () => 'refused',
      );
      assert.notEqual(plain, 200);
    });

    it('the CLI and the library refuse http:// to a non-loopback host unless told --insecure / insecure: true', async () => {
      const account = join(dir!, 'insecure-account.json');
      const password = join(dir!, 'insecure-account-password');
      await writeFile(password, 'test password\n');
      assert.equal((await runTkms(['account', 'new', '--out', account, '--password-file', password])).code, 0);
      // 192.0.2.0/24 is TEST-NET-1: never reachable, and no request is made anyway.
      const r = await runTkms(['encrypt', '--gateway', 'http://192.0.2.10:8080', '--account', account, '--password-file', password, '--key', 'default', '--text', 'secret']);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /\[insecure_transport\]/);
      assert.match(r.stderr, /--insecure/);
      assert.throws(() => new GatewayHttp({ baseUrl: 'http://gateway.example:8080' }), (e: unknown) => isTkmsError(e, 'insecure_transport'));
      assert.throws(() => new TkmsClient({ gatewayUrl: 'http://10.1.2.3', account: generateAccount() }), (e: unknown) => isTkmsError(e, 'insecure_transport'));
      // Explicitly allowed, or loopback, or https: accepted (constructors make no request).
      new GatewayHttp({ baseUrl: 'http://gateway.example:8080', insecure: true });
      new GatewayHttp({ baseUrl: 'http://127.0.0.1:8080' });
      new GatewayHttp({ baseUrl: 'http://[::1]:8080' });
      new GatewayHttp({ baseUrl: 'http://localhost:8080' });
      new GatewayHttp({ baseUrl: 'https://gateway.example' });
    });
  });
});
