import type { Point } from '../../core/curve.ts';
import { encodeSignMessage, signMessageHash, SignRequestMessage, signSignRequest } from '../../core/signing/sign-request.ts';
import { KeyChangeMessage, signKeyChange } from '../../core/keys/key-change.ts';
import assert from 'node:assert/strict';
import { sha256 } from '@noble/hashes/sha2.js';
import fc from 'fast-check';
import { generateAccount, TkmsClient, type Account } from '../../client/index.ts';
import {
  assertKeyId,
  decodeHandle,
  decodeHex,
  DelegationMessage,
  encodeBase64,
  encodeHex,
  EncryptRequestMessage,
  generateRsaKeyPair,
  GrantMessage,
  newRequestId,
  RegisterHandleMessage,
  RevocationMessage,
  sealToHandle,
  signDelegation,
  signEncryptRequest,
  signGrant,
  signRegisterHandle,
  signRevocation,
} from '../../core/index.ts';
import { ERROR_CODES } from '../../core/errors.ts';
import { Devnet, getJson } from '../../deploy/devnet.ts';
import { buildOpenApiDocument } from '../../gateway/openapi.ts';
import { bytesSecret, findSecrets, nodeSecrets, readLogFiles, textSecret } from '../support/log-secrets.ts';
import { makeTempDir, removeDir, waitFor } from '../support/processes.ts';
import { bodyArb, checkHttpAnswer, httpBody, httpOutcome, oddSegment, oddValue, pathSegment, rawHttp, rawTcp, Tally, type HttpAnswer } from './support.ts';

/**
 * Input fuzzing of every HTTP route, against real processes: a devnet of 3 nodes (t = 2) and its
 * gateway. Every gateway route of the OpenAPI document, and the node's HTTP and admin listeners,
 * get mutated valid bodies (fields replaced by wrong types, huge numbers, unicode, bad hex and
 * base64, deleted or added), truncated and random bodies, oversized bodies, and path parameters
 * with odd characters (raw and percent-encoded). Every answer must come within 5 s, never be a
 * 5xx, and be the typed error `{error:{code,message}}` whenever it is an error. Afterwards every
 * process is still up and a real decryption still works.
 */
const nowS = (): number => Math.floor(Date.now() / 1000);
const RUNS = { body: 100, param: 50, fixed: 8, misc: 60 };

describe('fuzz: HTTP routes of the gateway and the nodes (real devnet: 3 nodes, t = 2)', function () {
  this.timeout(120_000);
  let dir: string | undefined;
  let devnet: Devnet | undefined;
  const tally = new Tally();
  let alice: Account;
  let bob: Account;
  let handle = '';
  const plaintext = `fuzz plaintext ${Math.random()}`;
  const valid: Record<string, unknown> = {};

  before(async function () {
    this.timeout(120_000);
    dir = await makeTempDir('tkms-fuzz-http');
    const unlimited = { perMinute: 10_000_000, burst: 10_000_000 };
    devnet = await Devnet.start({
      dir,
      n: 3,
      t: 2,
      gatewayPort: 0,
      nodeConfig: { 1: { partialRateLimit: unlimited }, 2: { partialRateLimit: unlimited }, 3: { partialRateLimit: unlimited } },
      gatewayConfig: { rateLimit: unlimited, maxPlaintextBytes: 4096 },
    });
    [alice, bob] = [generateAccount(), generateAccount()];
    const aliceClient = new TkmsClient({ gatewayUrl: devnet.gatewayUrl, account: alice, trustedMemberKeys: await devnet.memberKeys() });
    handle = (await aliceClient.encrypt(new TextEncoder().encode(plaintext), { keyId: devnet.keyId })).handle;
    await aliceClient.grant(handle, bob.address);
    const key = await aliceClient.getKey(devnet.keyId);
    const rsa = await generateRsaKeyPair();
    const carol = generateAccount();
    const text = new TextEncoder().encode('fuzz');
    valid.encrypt = {
      request: EncryptRequestMessage.encode(signEncryptRequest(alice.secretKey, { keyId: devnet.keyId, owner: alice.addressBytes, plaintextHash: sha256(text), notBefore: nowS(), notAfter: nowS() + 600, requestId: newRequestId() }, devnet.deployment)),
      plaintext: encodeBase64(text),
    };
    const sealed = await sealToHandle({ publicKey: key.publicKey as Point, keyId: devnet.keyId, owner: alice.addressBytes, plaintext: text });
    valid.handles = {
      registration: RegisterHandleMessage.encode(signRegisterHandle(alice.secretKey, { handle: sealed.handle, keyId: devnet.keyId, owner: alice.addressBytes }, devnet.deployment)),
      K: encodeHex(sealed.K),
      nonce: encodeHex(sealed.nonce),
      ciphertext: encodeBase64(sealed.ciphertext),
      kProof: encodeHex(sealed.kProof),
    };
    valid.grant = GrantMessage.encode(signGrant(alice.secretKey, { handle: decodeHandle(handle), grantee: carol.addressBytes, notAfter: nowS() + 600, issuedAt: nowS() }, devnet.deployment));
    valid.revocation = RevocationMessage.encode(signRevocation(alice.secretKey, { handle: decodeHandle(handle), grantee: carol.addressBytes, revokedAt: nowS() }, devnet.deployment));
    valid.delegate = {
      delegation: DelegationMessage.encode(
        signDelegation(bob.secretKey, { handle: decodeHandle(handle), keyId: devnet.keyId, requester: bob.addressBytes, rsaSpki: decodeHex(rsa.publicKey.spkiHex), notBefore: nowS(), notAfter: nowS() + 600, requestId: newRequestId() }, devnet.deployment),
      ),
      exclude: [3],
    };
    valid.carol = carol.address;
    // A managed key to change (devnets let anyone create one), and a valid next change to mutate.
    await aliceClient.keys.create({ keyId: 'fuzz-key', origin: { type: 'derived', root: devnet.keyId, path: 'fuzz' } });
    const fuzzKey = await aliceClient.keys.describe('fuzz-key');
    const next = (keyId: string, sequence: number, previous: string, action: 'create' | 'disable', body: object) =>
      KeyChangeMessage.encode(signKeyChange(alice.secretKey, { keyId, sequence, previous: decodeHex(previous), action, body: JSON.stringify(body), issuedAt: nowS(), admin: alice.addressBytes }, devnet!.deployment));
    valid.createKey = { change: next('fuzz-new', 1, `0x${'00'.repeat(32)}`, 'create', { origin: { type: 'derived', root: devnet.keyId, path: 'fuzz/new' }, admins: [alice.address] }) };
    valid.keyChange = { change: next('fuzz-key', fuzzKey.sequence + 1, fuzzKey.head, 'disable', {}) };
    // A signing key and a valid request to sign with it, to mutate.
    await aliceClient.keys.create({ keyId: 'fuzz-signer', spec: 'ECC_SECG_P256K1', usage: 'SIGN_VERIFY', policy: { sign: { raw: true } } });
    await waitFor('fuzz-signer published', async () => ((await aliceClient.keys.describe('fuzz-signer')).versions[0]?.signing === undefined ? undefined : true), { timeoutMs: 60_000 });
    const message = { kind: 'raw' as const, data: new TextEncoder().encode('fuzz') };
    const signRequest = signSignRequest(
      alice.secretKey,
      { keyId: 'fuzz-signer', messageKind: 'raw', messageHash: signMessageHash(message), requester: alice.addressBytes, notBefore: nowS() - 5, notAfter: nowS() + 3000, requestId: newRequestId() },
      devnet.deployment,
    );
    valid.sign = { request: SignRequestMessage.encode(signRequest), message: encodeSignMessage(message) };
  });

  after(async function () {
    this.timeout(60_000);
    console.log(tally.table('target'));
    await devnet?.stop();
    if (dir !== undefined && devnet !== undefined) {
      // Every log the run produced: no password, share, identity key, account key or plaintext.
      const { needles } = await nodeSecrets(dir);
      for (const a of [alice, bob]) needles.push(bytesSecret(`account ${a.address}`, a.secretKey));
      needles.push(textSecret('plaintext', plaintext));
      assert.deepEqual(findSecrets(await readLogFiles(dir), needles), []);
    }
    await removeDir(dir);
  });

  /** A handle-like path parameter: odd strings, or the real handle slightly off. */
  const handleParam = (): fc.Arbitrary<string> =>
    fc.oneof(
      oddSegment,
      fc.constant(handle),
      fc.constant(handle.toUpperCase()),
      fc.constant(handle.slice(2)),
      fc.nat(63).map((i) => `${handle.slice(0, 2 + i)}${handle[2 + i] === '0' ? '1' : '0'}${handle.slice(3 + i)}`),
      fc.nat(66).map((i) => handle.slice(0, i)),
    );

  async function send(target: string, method: string, path: string, body?: Buffer, opts: { allow503?: boolean } = {}): Promise<HttpAnswer> {
    const answer = await rawHttp(target.startsWith('node') ? nodeBase(target) : devnet!.gatewayUrl, method, path, body);
    const a = checkHttpAnswer(`${method} ${path.slice(0, 120)} ${body === undefined ? '' : body.subarray(0, 120).toString('latin1')}`, answer, { method, ...opts });
    tally.add(`${target.startsWith('node') ? target.split(' ')[0] : 'gateway'} ${method} ${routeName(target)}`, httpOutcome(a));
    return a;
  }
  const nodeBase = (target: string): string => (target.startsWith('node-admin') ? devnet!.node(1).adminUrl : devnet!.node(1).httpUrl);
  const routeName = (target: string): string => target.replace(/^node(-admin|-http)? /, '');

  it('covers every route of the OpenAPI document', () => {
    const methods = ['get', 'post', 'put', 'delete', 'patch', 'head', 'options'];
    const documented = Object.entries(buildOpenApiDocument().paths as Record<string, Record<string, unknown>>).flatMap(([p, ops]) =>
      Object.keys(ops)
        .filter((m) => methods.includes(m))
        .map((m) => `${m.toUpperCase()} ${p}`),
    );
    const fuzzed = [
      'GET /openapi.json',
      'GET /health',
      'GET /metrics',
      'GET /v1/keys',
      'GET /v1/keys/{keyId}',
      'GET /v1/committee',
      'POST /v1/encrypt',
      'POST /v1/handles',
      'GET /v1/handles/{handle}',
      'GET /v1/handles/{handle}/grants',
      'POST /v1/handles/{handle}/grants',
      'DELETE /v1/handles/{handle}/grants/{grantee}',
      'POST /v1/handles/{handle}/delegate',
      'POST /v1/keys',
      'POST /v1/keys/{keyId}/changes',
      'GET /v1/keys/{keyId}/changes',
      'GET /v1/keys/{keyId}/policy',
      'POST /v1/keys/{keyId}/sign',
    ];
    assert.deepEqual([...documented].sort(), [...fuzzed].sort(), 'a route was added or removed: fuzz it here');
  });

  it('gateway: fixed GET routes with odd query strings and suffixes', async () => {
    // /v1/committee reads `since`: odd query strings reach its parser (400 or the first page, never a 5xx).
    for (const route of ['/openapi.json', '/health', '/metrics', '/v1/keys', '/v1/committee']) {
      await fc.assert(
        fc.asyncProperty(oddSegment, fc.boolean(), async (q, raw) => {
          await send(route, 'GET', `${route}?${pathSegment(q, raw)}`);
        }),
        { numRuns: RUNS.fixed, endOnFailure: true },
      );
    }
  });

  it('gateway: GET routes with odd path parameters', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(oddSegment, fc.constant('default'), fc.constant('nope')), fc.boolean(), async (p, raw) => {
        await send('/v1/keys/{keyId}', 'GET', `/v1/keys/${pathSegment(p, raw)}`);
      }),
      { numRuns: RUNS.param, endOnFailure: true },
    );
    for (const suffix of ['', '/grants']) {
      await fc.assert(
        fc.asyncProperty(handleParam(), fc.boolean(), async (h, raw) => {
          await send(`/v1/handles/{handle}${suffix}`, 'GET', `/v1/handles/${pathSegment(h, raw)}${suffix}`);
        }),
        { numRuns: RUNS.param, endOnFailure: true },
      );
    }
  });

  it('gateway: POST /v1/encrypt and POST /v1/handles with mutated, truncated, random and oversized bodies', async () => {
    for (const [route, template] of [
      ['/v1/encrypt', valid.encrypt],
      ['/v1/handles', valid.handles],
    ] as const) {
      await fc.assert(
        fc.asyncProperty(bodyArb(template), async (body) => {
          await send(route, 'POST', route, body);
        }),
        { numRuns: RUNS.body, endOnFailure: true },
      );
      const big = await send(route, 'POST', route, Buffer.from(JSON.stringify({ ...(template as object), plaintext: 'A'.repeat(64 * 1024) })));
      assert.equal(big.status, 413);
    }
  });

  it('gateway: grants, revocations and delegations with odd path parameters and bodies', async () => {
    const routes: [string, string, (h: string, raw: boolean, g: string) => string, unknown][] = [
      ['/v1/handles/{handle}/grants', 'POST', (h, raw) => `/v1/handles/${pathSegment(h, raw)}/grants`, valid.grant],
      ['/v1/handles/{handle}/grants/{grantee}', 'DELETE', (h, raw, g) => `/v1/handles/${pathSegment(h, raw)}/grants/${pathSegment(g, raw)}`, valid.revocation],
      ['/v1/handles/{handle}/delegate', 'POST', (h, raw) => `/v1/handles/${pathSegment(h, raw)}/delegate`, valid.delegate],
    ];
    const grantee = fc.oneof(oddSegment, fc.constant(valid.carol as string), fc.constant((valid.carol as string).toUpperCase()), fc.constant(`0x${(valid.carol as string).slice(2).replace(/[a-f]/, (c) => c.toUpperCase())}`));
    for (const [route, method, path, template] of routes) {
      await fc.assert(
        fc.asyncProperty(fc.oneof({ weight: 3, arbitrary: fc.constant(handle) }, { weight: 1, arbitrary: handleParam() }), fc.boolean(), grantee, bodyArb(template), async (h, raw, g, body) => {
          const p = path(h, raw, route.includes('{grantee}') && g !== (valid.carol as string) && Math.random() < 0.5 ? g : (valid.carol as string));
          await send(route, method, p, body);
        }),
        { numRuns: RUNS.body, endOnFailure: true },
      );
      const big = await send(route, method, path(handle, false, valid.carol as string), Buffer.from(JSON.stringify({ x: 'A'.repeat(64 * 1024) })));
      assert.equal(big.status, 413);
    }
  });

  it('gateway: managed keys: odd key ids and aliases, mutated, truncated, random and oversized key changes', async () => {
    const keyParam = fc.oneof(oddSegment, fc.constant('fuzz-key'), fc.constant('alias%2Fnone'), fc.constant('nope'));
    for (const suffix of ['/changes', '/policy']) {
      await fc.assert(
        fc.asyncProperty(keyParam, fc.boolean(), fc.oneof(fc.constant(""), oddSegment.map((q) => `?after=${encodeURIComponent(q)}`)), async (k, raw, q) => {
          await send(`/v1/keys/{keyId}${suffix}`, 'GET', `/v1/keys/${pathSegment(k, raw)}${suffix}${q}`);
        }),
        { numRuns: RUNS.param, endOnFailure: true },
      );
    }
    const routes: [string, (k: string, raw: boolean) => string, unknown][] = [
      ['/v1/keys', () => '/v1/keys', valid.createKey],
      ['/v1/keys/{keyId}/changes', (k, raw) => `/v1/keys/${pathSegment(k, raw)}/changes`, valid.keyChange],
      ['/v1/keys/{keyId}/sign', (k, raw) => `/v1/keys/${pathSegment(k === 'fuzz-key' ? 'fuzz-signer' : k, raw)}/sign`, valid.sign],
    ];
    for (const [route, path, template] of routes) {
      await fc.assert(
        fc.asyncProperty(fc.oneof({ weight: 3, arbitrary: fc.constant('fuzz-key') }, { weight: 1, arbitrary: keyParam }), fc.boolean(), bodyArb(template), async (k, raw, body) => {
          await send(route, 'POST', path(k, raw), body);
        }),
        { numRuns: RUNS.body, endOnFailure: true },
      );
      const big = await send(route, 'POST', path('fuzz-key', false), Buffer.from(JSON.stringify({ x: 'A'.repeat(64 * 1024) })));
      assert.equal(big.status, 413);
    }
  });

  it('gateway: a target starting with "//" is a path, not another host (it used to be a 500, or routed by its tail)', async () => {
    for (const target of ['//evil.example/health', '//%E3%89%8C/x', '//', '///v1/keys']) {
      const a = await send('"//" targets', 'GET', target);
      assert.equal(a.status, 404, `${target}: ${a.body}`);
    }
  });

  it('gateway: unknown paths and methods', async () => {
    const known = ['/openapi.json', '/health', '/metrics', '/v1/keys', '/v1/keys/default', '/v1/encrypt', '/v1/handles', `/v1/handles/${handle}`, `/v1/handles/${handle}/grants`, `/v1/handles/${handle}/delegate`];
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('GET', 'POST', 'DELETE', 'PUT', 'PATCH', 'OPTIONS', 'HEAD'),
        fc.oneof(fc.constantFrom(...known), fc.array(oddSegment, { minLength: 1, maxLength: 4 }).map((segs) => `/${segs.map((s) => pathSegment(s, true)).join('/')}`)),
        fc.option(fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)), { nil: undefined }),
        async (method, path, body) => {
          await send('unknown path or method', method, path, body);
        },
      ),
      { numRuns: RUNS.misc, endOnFailure: true },
    );
  });

  it('node HTTP and admin listeners: routes, odd parameters, bodies, unknown paths and methods', async () => {
    const existing = devnet!.keyId;
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('/health', '/metrics'), fc.constantFrom('GET', 'POST', 'DELETE', 'PUT', 'OPTIONS'), oddSegment, async (route, method, q) => {
        await send(`node-http ${method === 'GET' ? route : `${route} (other methods)`}`, method, `${route}?${pathSegment(q, true)}`, method === 'GET' ? undefined : Buffer.from('{}'));
      }),
      { numRuns: RUNS.param, endOnFailure: true },
    );
    await fc.assert(
      fc.asyncProperty(fc.oneof(oddSegment, fc.constant(existing), fc.constant('unknown-key')), fc.boolean(), async (k, raw) => {
        await send('node-admin /admin/dkg/{keyId}', 'GET', `/admin/dkg/${pathSegment(k, raw)}`);
      }),
      { numRuns: RUNS.param, endOnFailure: true },
    );
    // POST /admin/dkg starts a real DKG for any new valid key id: those bodies are left out
    // (the existing key id stays in: 409 conflict).
    const startsDkg = (body: Buffer): boolean => {
      try {
        const v = JSON.parse(body.toString('utf8')) as { keyId?: unknown };
        if (typeof v !== 'object' || v === null || Object.keys(v).length !== 1 || v.keyId === existing) return false;
        assertKeyId(v.keyId);
        return true;
      } catch {
        return false;
      }
    };
    await fc.assert(
      fc.asyncProperty(
        bodyArb({ keyId: existing }).filter((b) => !startsDkg(b)),
        async (body) => {
          await send('node-admin /admin/dkg', 'POST', '/admin/dkg', body);
        },
      ),
      { numRuns: RUNS.body, endOnFailure: true },
    );
    await fc.assert(
      fc.asyncProperty(oddValue.filter((v) => v !== existing && (() => { try { assertKeyId(v); return false; } catch { return true; } })()), async (keyId) => {
        await send('node-admin /admin/dkg', 'POST', '/admin/dkg', Buffer.from(JSON.stringify({ keyId })));
      }),
      { numRuns: RUNS.param, endOnFailure: true },
    );
    // Past the admin listener's body bound (1 MiB: a reshare proposal file is the largest admin body).
    const big = await send('node-admin /admin/dkg', 'POST', '/admin/dkg', Buffer.from(JSON.stringify({ keyId: 'x'.repeat(1100 * 1024) })));
    assert.equal(big.status, 413);
    for (const base of ['node-http', 'node-admin']) {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom('GET', 'POST', 'DELETE', 'PUT', 'PATCH', 'OPTIONS', 'HEAD'),
          fc.oneof(fc.constantFrom('/health', '/metrics', '/admin/keys', '/admin/dkg', `/admin/dkg/${existing}`), fc.array(oddSegment, { minLength: 1, maxLength: 4 }).map((segs) => `/${segs.map((s) => pathSegment(s, true)).join('/')}`)),
          async (method, path) => {
            await send(`${base} unknown path or method`, method, path, method === 'GET' || method === 'HEAD' ? undefined : Buffer.from('{}'));
          },
        ),
        { numRuns: RUNS.misc / 2, endOnFailure: true },
      );
    }
  });

  it('malformed HTTP at the parser level gets a typed 4xx (or a closed connection), never a 5xx or a hang', async () => {
    const cases: [string, Buffer][] = [
      ['garbage request line', Buffer.from('GARBAGE\r\n\r\n')],
      ['binary noise', Buffer.from(Array.from({ length: 256 }, (_, i) => (i * 37) % 256))],
      ['bad content-length', Buffer.from('POST /v1/encrypt HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n{}')],
      ['two content-lengths', Buffer.from('POST /v1/encrypt HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}')],
      ['bad chunked body', Buffer.from('POST /v1/encrypt HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n')],
      ['NUL in the path', Buffer.from('GET /v1/keys/\u0000 HTTP/1.1\r\nHost: x\r\n\r\n', 'latin1')],
      ['space in the path', Buffer.from('GET /v1/keys/a b HTTP/1.1\r\nHost: x\r\n\r\n')],
      ['100 kB request target', Buffer.from(`GET /${'a'.repeat(100_000)} HTTP/1.1\r\nHost: x\r\n\r\n`)],
      ['header overflow', Buffer.from(`GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`)],
      ['HTTP/2 preface', Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')],
      ['truncated body', Buffer.from('POST /v1/handles HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{"registration"')],
      ['unknown HTTP version', Buffer.from('GET /health HTTP/9.9\r\nHost: x\r\n\r\n')],
    ];
    const bases: [string, string][] = [
      ['gateway', devnet!.gatewayUrl],
      ['node-http', devnet!.node(2).httpUrl],
      ['node-admin', devnet!.node(2).adminUrl],
    ];
    for (const [label, base] of bases) {
      for (const [name, bytes] of cases) {
        const r = await rawTcp(base, bytes);
        assert.notEqual(r.status, 'timeout', `${label} ${name}: no answer and no close within 5 s`);
        if (typeof r.status === 'number') {
          assert.ok(r.status >= 400 && r.status < 500, `${label} ${name}: HTTP ${r.status}`);
          const body = httpBody(r.text);
          assert.match(r.text, /content-type: application\/json/i, `${label} ${name}: ${r.text.slice(0, 200)}`);
          const code = (JSON.parse(body) as { error: { code: keyof typeof ERROR_CODES } }).error.code;
          assert.equal(ERROR_CODES[code], r.status, `${label} ${name}: ${code} with HTTP ${r.status}`);
          tally.add(`${label} raw HTTP (parser level)`, `${r.status} ${code}`);
        } else tally.add(`${label} raw HTTP (parser level)`, r.status);
      }
    }
  });

  it('afterwards every process is up and serving: health, and a real decryption', async () => {
    const net = devnet!;
    for (const node of net.nodes) {
      assert.equal(node.process?.exitCode, null, `node ${node.id} exited`);
      assert.equal(node.process?.signalCode, null, `node ${node.id} was killed`);
      assert.equal((await getJson(`${node.httpUrl}/health`)).status, 200, `node ${node.id} health`);
    }
    assert.equal(net.gatewayProcess?.exitCode, null, 'gateway exited');
    assert.equal((await getJson(`${net.gatewayUrl}/health`)).status, 200, 'gateway health');
    const bobClient = new TkmsClient({ gatewayUrl: net.gatewayUrl, account: bob, trustedMemberKeys: await net.memberKeys() });
    assert.equal(new TextDecoder().decode((await bobClient.decrypt(handle)).plaintext), plaintext);
    console.log(`      ${tally.total()} HTTP inputs in total`);
  });
});
