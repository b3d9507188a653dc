import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { Devnet } from '../../deploy/devnet.ts';
import type { PageFailure, PageResult, PageRun } from './page.ts';

/**
 * The client in a real headless Chromium, from a page on another origin than the gateway's, against
 * a real devnet whose gateway is mounted under /tkms/: pinned key check, encrypt, grant, decrypt as
 * the grantee through an injected wallet (eth_signTypedData_v4), encrypt locally. Also what a web developer sees when CORS blocks
 * the page, when the page is not a secure context, and when the gateway is down.
 */
const CHROMIUM_CANDIDATES = [process.env.TKMS_CHROMIUM, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].filter((p): p is string => !!p);
const chromium = CHROMIUM_CANDIDATES.find((p) => existsSync(p));
const OWNER_KEY = `0x${'a1'.repeat(32)}`;
const GRANTEE_KEY = `0x${'b2'.repeat(32)}`;
/** Not a secure context (not https, not loopback): Chromium maps the name to 127.0.0.1 itself. */
const INSECURE_HOST = 'tkms-page.test';
const DECRYPTS = 20;

const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url));

/** The client alone, as an application would ship it: minified, gzip size reported. */
async function clientBundleSize(): Promise<{ bytes: number; gzip: number }> {
  const result = await build({ entryPoints: [here('../../client/index.ts')], bundle: true, minify: true, platform: 'browser', format: 'esm', write: false, logLevel: 'silent' });
  const code = result.outputFiles[0]!.contents;
  return { bytes: code.length, gzip: gzipSync(code).length };
}

async function pageBundle(): Promise<string> {
  const result = await build({ entryPoints: [here('./page.ts')], bundle: true, platform: 'browser', format: 'esm', write: false, logLevel: 'silent', metafile: true });
  const inputs = Object.keys(result.metafile.inputs);
  // The platform switch is package.json's `browser` condition: no Node module and no libp2p code gets in.
  assert.ok(inputs.some((p) => p.endsWith('core/platform/browser.ts')), 'the browser platform module is the one bundled');
  const forbidden = inputs.filter((p) => p.startsWith('node:') || /libp2p|multiaddr|secp256k1\/|core\/platform\/node|core\/node-crypto|core\/curve-native/.test(p));
  assert.deepEqual(forbidden, [], 'Node-only inputs in the page bundle');
  return result.outputFiles[0]!.text;
}

async function servePage(script: string): Promise<Server> {
  const html = '<!doctype html><meta charset="utf-8"><title>tkms browser test</title><script type="module" src="/page.js"></script>';
  const server = createServer((req, res) => {
    if (req.url === '/page.js') res.writeHead(200, { 'content-type': 'text/javascript' }).end(script);
    else if (req.url === '/') res.writeHead(200, { 'content-type': 'text/html' }).end(html);
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return server;
}

async function openPage(browser: Browser, url: string): Promise<Page> {
  const page = await browser.newPage();
  await page.goto(url, { waitUntil: 'load' });
  await page.waitForFunction(() => 'tkmsBrowserTest' in globalThis, { timeout: 10_000 });
  return page;
}

/** The page's functions; page.evaluate sends the callback's source, so each names them in full. */
type PageApi = { tkmsBrowserTest: { run(cfg: PageRun): Promise<PageResult>; firstFailure(url: string, keyId: string, key: string): Promise<PageFailure | undefined> } };

describe('browser: the client in headless Chromium against a devnet', function () {
  this.timeout(240_000);
  let dir: string | undefined;
  let devnet: Devnet | undefined;
  let pageServer: Server | undefined;
  let browser: Browser | undefined;
  let pagePort = 0;

  before(async function () {
    if (chromium === undefined) {
      console.log(`    (skipped: no Chromium at ${CHROMIUM_CANDIDATES.join(', ')}; .ci/run installs Debian's chromium, or set TKMS_CHROMIUM)`);
      this.skip();
    }
    pageServer = await servePage(await pageBundle());
    pagePort = (pageServer.address() as AddressInfo).port;
    dir = await mkdtemp(join(tmpdir(), 'tkms-browser-'));
    const pageOrigin = `http://127.0.0.1:${pagePort}`;
    devnet = await Devnet.start({
      dir,
      n: 3,
      t: 2,
      gatewayPort: 0,
      fresh: true,
      logLevel: 'warn',
      // Mounted under a path, as behind an application's reverse proxy (https://app.example/tkms/).
      gatewayConfig: { cors: { allowedOrigins: [pageOrigin] }, basePath: '/tkms' },
    });
    browser = await puppeteer.launch({
      executablePath: chromium,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', `--host-resolver-rules=MAP ${INSECURE_HOST} 127.0.0.1`],
    });
  });

  after(async () => {
    await browser?.close().catch(() => undefined);
    await devnet?.stop();
    pageServer?.closeAllConnections();
    await new Promise((r) => (pageServer ? pageServer.close(r) : r(undefined)));
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('pins the committee, encrypts, grants, decrypts as the grantee with a wallet, encrypts locally', async () => {
    const page = await openPage(browser!, `http://127.0.0.1:${pagePort}/`);
    assert.notEqual(new URL(page.url()).origin, new URL(devnet!.gatewayUrl).origin, 'the page and the gateway are different origins');
    assert.match(devnet!.gatewayUrl, /\/tkms$/);
    const cfg: PageRun = {
      gatewayUrl: `${devnet!.gatewayUrl}/`,
      committeeJson: await readFile(join(dir!, 'committee.json'), 'utf8'),
      keyId: devnet!.keyId,
      ownerKey: OWNER_KEY,
      granteeKey: GRANTEE_KEY,
      decrypts: DECRYPTS,
    };
    const result = await page.evaluate((c) => (globalThis as unknown as PageApi).tkmsBrowserTest.run(c), cfg);
    assert.equal(result.pinned, true, 'the key verified against the pinned committee file');
    assert.equal(result.grantStored, true);
    assert.equal(result.decryptedByGrantee, 'from a web page');
    assert.equal(result.decryptedLocalHandle, 'sealed in the browser');
    // One delegation per decrypt, each signed in the wallet: 2 first decrypts + the timed ones.
    assert.equal(result.walletSignatures, 2 + DECRYPTS);
    const sorted = [...result.decryptMs].sort((a, b) => a - b);
    const p50 = sorted[Math.floor(sorted.length / 2)]!;
    const size = await clientBundleSize();
    console.log(`    browser decrypt p50 ${p50.toFixed(1)} ms over ${DECRYPTS} (min ${sorted[0]!.toFixed(1)}, max ${sorted.at(-1)!.toFixed(1)}); client bundle ${(size.bytes / 1024).toFixed(0)} KiB minified, ${(size.gzip / 1024).toFixed(0)} KiB gzip`);
    await page.close();
  });

  it('tells a web developer why: CORS (origin not allowed), no secure context, gateway down', async () => {
    // localhost is a secure context but another origin than 127.0.0.1, and not in the allowed list.
    const other = await openPage(browser!, `http://localhost:${pagePort}/`);
    const blocked = await other.evaluate((url, keyId, key) => (globalThis as unknown as PageApi).tkmsBrowserTest.firstFailure(url, keyId, key), devnet!.gatewayUrl, devnet!.keyId, OWNER_KEY);
    assert.equal(blocked?.code, 'unavailable', JSON.stringify(blocked));
    assert.equal(blocked?.reason, 'cors_blocked');
    assert.match(blocked!.message, new RegExp(`blocked the cross-origin request from http://localhost:${pagePort}.*allowed origins`));

    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const deadPort = (closed.address() as AddressInfo).port;
    await new Promise((r) => closed.close(r));
    const down = await other.evaluate((url, keyId, key) => (globalThis as unknown as PageApi).tkmsBrowserTest.firstFailure(url, keyId, key), `http://127.0.0.1:${deadPort}/tkms/`, devnet!.keyId, OWNER_KEY);
    assert.equal(down?.reason, 'unreachable', JSON.stringify(down));
    assert.match(down!.message, /is unreachable/);
    await other.close();

    const insecure = await openPage(browser!, `http://${INSECURE_HOST}:${pagePort}/`);
    const noCrypto = await insecure.evaluate((url, keyId, key) => (globalThis as unknown as PageApi).tkmsBrowserTest.firstFailure(url, keyId, key), devnet!.gatewayUrl, devnet!.keyId, OWNER_KEY);
    assert.equal(noCrypto?.code, 'insecure_transport', JSON.stringify(noCrypto));
    assert.equal(noCrypto?.reason, 'insecure_context');
    assert.match(noCrypto!.message, /needs https, or a page on localhost/);
    await insecure.close();
  });
});
