import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Compile } from 'typebox/compile';
import { generateAccount, type Account } from '../../client/account.ts';
import {
  bytesToHex,
  curveBackend,
  decodePartialBatchReply,
  decodePartialReply,
  decodePartialRequest,
  encodePartialBatchRequest,
  encodePartialRequest,
  isTkmsError,
  partialRequestJson,
  publicKeyFromSecret,
  randomBytes,
  randomScalar,
  sealToHandle,
  signDelegation,
  signGrant,
  TkmsError,
  utf8ToBytes,
  type Delegation,
  type ErrorCode,
  type HandleDescriptor,
  type PartialRequest,
} from '../../core/index.ts';
import type { DkgPublicResult } from '../../core/dkg/index.ts';
import type { ChainAcl, OnChainGrantQuery } from '../../chain/chain-acl.ts';
import { parseConfig } from '../../node/config.ts';
import { createNodeMetrics } from '../../node/metrics.ts';
import { PartialService, ShareBook, type PartialAcl } from '../../node/partial.ts';
import { RevocationStore } from '../../node/revocations.ts';
import { SpentRequestIds } from '../../node/spent-request-ids.ts';
import { parseGatewayConfig } from '../../gateway/config.ts';
import { createGatewayMetrics } from '../../gateway/metrics.ts';
import { shortfallError } from '../../gateway/shortfall.ts';
import { GrantList } from '../../gateway/api-schemas.ts';
import { API_ROUTES } from '../../gateway/api-routes.ts';
import { createLogger } from '../../runtime/logger.ts';
import { RateLimiter } from '../../runtime/rate-limit.ts';
import { createChainMetrics } from '../../runtime/chain-metrics.ts';
import { Registry } from 'prom-client';

/**
 * The on-chain ACL wired into the node's partial service (with a fake ChainAcl that records every
 * lookup), the config checks, the gateway's shortfall codes and the grant listing's schema.
 */

const NOW = 1_700_000_000;
const DEPLOYMENT = { committeeId: 'committee-a' };
const KEY_ID = 'k1';
const BLOCK = 900;

/** A ChainAcl that answers isGrantedAt from `answer` and records what it was asked. */
class FakeChainAcl implements Pick<ChainAcl, 'isGrantedAt'> {
  readonly asked: OnChainGrantQuery[] = [];
  constructor(public answer: boolean | ErrorCode) {}
  async isGrantedAt(query: OnChainGrantQuery): Promise<boolean> {
    this.asked.push(query);
    if (typeof this.answer === 'string') throw new TkmsError(this.answer, `reader says ${this.answer}`);
    return this.answer;
  }
}

describe('on-chain ACL wiring', function () {
  this.timeout(60_000);
  let owner: Account;
  let grantee: Account;
  let descriptor: HandleDescriptor;
  let handle: Uint8Array;
  let rsaSpki: Uint8Array;
  let shares: ShareBook;
  const dirs: string[] = [];
  const closers: (() => Promise<void>)[] = [];

  before(async () => {
    owner = generateAccount();
    grantee = generateAccount();
    const networkSecret = randomScalar();
    const sealed = await sealToHandle({ publicKey: publicKeyFromSecret(networkSecret), keyId: KEY_ID, owner: owner.addressBytes, plaintext: utf8ToBytes('wired') });
    handle = sealed.handle;
    descriptor = { keyId: KEY_ID, K: sealed.K, nonce: sealed.nonce, ciphertextHash: sealed.ciphertextHash, owner: sealed.owner, kProof: sealed.kProof };
    rsaSpki = new Uint8Array(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'der' }));
    // One member's share (the partial's value does not matter here, only who gets one).
    const share = randomScalar();
    shares = new ShareBook(1);
    shares.add({ keyId: KEY_ID, verificationShares: { '1': bytesToHex(curveBackend().multiplyBaseSecret(share)) } } as unknown as DkgPublicResult, share);
  });

  after(async () => {
    for (const close of closers) await close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  async function service(acl: PartialAcl, limiter = new RateLimiter(60_000, 1_000)): Promise<PartialService> {
    const dir = mkdtempSync(join(tmpdir(), 'tkms-chain-wiring-'));
    dirs.push(dir);
    const spentIds = await SpentRequestIds.open(join(dir, 'replay.log'), 30, NOW);
    const { store: revocations } = await RevocationStore.open(join(dir, 'revocations.log'), DEPLOYMENT, {}, NOW);
    closers.push(async () => spentIds.close(), async () => revocations.close());
    return new PartialService({
      deployment: DEPLOYMENT,
      shares,
      spentIds,
      revocations,
      metrics: createNodeMetrics(),
      log: createLogger('silent'),
      clockSkewSeconds: 30,
      limiter,
      fault: undefined,
      now: () => NOW * 1000,
      acl,
    });
  }

  function delegation(by: Account = grantee, signer: Account = by): Delegation {
    return signDelegation(
      signer.secretKey,
      { handle, keyId: KEY_ID, requester: by.addressBytes, rsaSpki, notBefore: NOW - 60, notAfter: NOW + 600, requestId: randomBytes(16) },
      DEPLOYMENT,
    );
  }

  async function ask(svc: PartialService, request: PartialRequest): Promise<{ ok: true } | { ok: false; code: ErrorCode; message: string }> {
    const reply = decodePartialReply(await svc.answerFrame(encodePartialRequest(request)));
    return reply.ok ? { ok: true } : { ok: false, code: reply.code, message: reply.message };
  }

  describe('the partial request carries aclBlock', () => {
    it('round-trips, is optional (old gateways), and must be a non-negative safe integer', () => {
      const base = { delegation: delegation(), descriptor, grant: undefined };
      assert.equal(decodePartialRequest(encodePartialRequest({ ...base, aclBlock: BLOCK })).aclBlock, BLOCK);
      assert.equal(decodePartialRequest(encodePartialRequest(base)).aclBlock, undefined);
      assert.ok(!partialRequestJson(base).includes('aclBlock'), 'absent, not null, when no block is named');
      for (const bad of [-1, 1.5, '7', Number.MAX_SAFE_INTEGER + 1, null]) {
        const json = JSON.parse(partialRequestJson(base)) as Record<string, unknown>;
        json.aclBlock = bad;
        assert.throws(() => decodePartialRequest(new TextEncoder().encode(JSON.stringify(json))), (e: unknown) => isTkmsError(e, 'bad_request'), String(bad));
      }
    });
  });

  describe('the partial service', () => {
    it('mode chain: a grantee with an on-chain grant at B is served; the lookup names the handle\'s owner and B', async () => {
      const chain = new FakeChainAcl(true);
      const svc = await service({ mode: 'chain', chain });
      assert.deepEqual(await ask(svc, { delegation: delegation(), descriptor, grant: undefined, aclBlock: BLOCK }), { ok: true });
      assert.equal(chain.asked.length, 1);
      assert.deepEqual(chain.asked[0], { handle, owner: owner.addressBytes, grantee: grantee.addressBytes, block: BLOCK });
    });

    it('the owner is served without a lookup', async () => {
      const chain = new FakeChainAcl(false);
      const svc = await service({ mode: 'chain', chain });
      assert.deepEqual(await ask(svc, { delegation: delegation(owner), descriptor, grant: undefined }), { ok: true });
      assert.equal(chain.asked.length, 0);
    });

    it('never asks the chain before the requester\'s signature verified', async () => {
      const chain = new FakeChainAcl(true);
      const svc = await service({ mode: 'chain', chain });
      const forged = delegation(grantee, generateAccount());
      const reply = await ask(svc, { delegation: forged, descriptor, grant: undefined, aclBlock: BLOCK });
      assert.equal(reply.ok, false);
      assert.equal(!reply.ok && reply.code, 'unauthorized');
      assert.equal(chain.asked.length, 0);
    });

    it('never asks the chain when the rate limit refuses', async () => {
      const chain = new FakeChainAcl(true);
      const svc = await service({ mode: 'chain', chain }, new RateLimiter(1, 1));
      assert.deepEqual(await ask(svc, { delegation: delegation(), descriptor, grant: undefined, aclBlock: BLOCK }), { ok: true });
      const second = await ask(svc, { delegation: delegation(), descriptor, grant: undefined, aclBlock: BLOCK });
      assert.equal(!second.ok && second.code, 'rate_limited');
      assert.equal(chain.asked.length, 1, 'only the request within the limit was looked up');
    });

    it('aclBlock missing → bad_request, and the request id is not spent', async () => {
      const chain = new FakeChainAcl(true);
      const svc = await service({ mode: 'chain', chain });
      const d = delegation();
      const missing = await ask(svc, { delegation: d, descriptor, grant: undefined });
      assert.equal(!missing.ok && missing.code, 'bad_request');
      assert.match(!missing.ok ? missing.message : '', /aclBlock/);
      assert.equal(chain.asked.length, 0);
      assert.deepEqual(await ask(svc, { delegation: d, descriptor, grant: undefined, aclBlock: BLOCK }), { ok: true }, 'the same request id, with a block, is served');
    });

    it('no grant on chain → unauthorized naming B; the request id is spent only once one is found', async () => {
      const chain = new FakeChainAcl(false);
      const svc = await service({ mode: 'chain', chain });
      const d = delegation();
      const refused = await ask(svc, { delegation: d, descriptor, grant: undefined, aclBlock: BLOCK });
      assert.equal(!refused.ok && refused.code, 'unauthorized');
      assert.match(!refused.ok ? refused.message : '', new RegExp(`no on-chain grant .* at block ${BLOCK}`));
      chain.answer = true;
      assert.deepEqual(await ask(svc, { delegation: d, descriptor, grant: undefined, aclBlock: BLOCK }), { ok: true });
      const replay = await ask(svc, { delegation: d, descriptor, grant: undefined, aclBlock: BLOCK });
      assert.equal(!replay.ok && replay.code, 'replayed');
    });

    it('reader errors pass through with their codes', async () => {
      for (const code of ['unavailable', 'acl_block_too_old', 'acl_block_ahead'] as const) {
        const svc = await service({ mode: 'chain', chain: new FakeChainAcl(code) });
        const reply = await ask(svc, { delegation: delegation(), descriptor, grant: undefined, aclBlock: BLOCK });
        assert.equal(!reply.ok && reply.code, code);
      }
    });

    it('mode chain refuses a signed grant sent along (signed_grants_refused); mode either takes it without a lookup', async () => {
      const grant = signGrant(owner.secretKey, { handle, grantee: grantee.addressBytes, notAfter: NOW + 3600, issuedAt: NOW - 60 }, DEPLOYMENT);
      const chain = new FakeChainAcl(true);
      const strict = await service({ mode: 'chain', chain });
      const refused = await ask(strict, { delegation: delegation(), descriptor, grant, aclBlock: BLOCK });
      assert.equal(!refused.ok && refused.code, 'signed_grants_refused');
      const either = await service({ mode: 'either', chain });
      assert.deepEqual(await ask(either, { delegation: delegation(), descriptor, grant, aclBlock: BLOCK }), { ok: true });
      assert.equal(chain.asked.length, 0);
    });

    it('mode signed (the default) ignores aclBlock and never needs one', async () => {
      const grant = signGrant(owner.secretKey, { handle, grantee: grantee.addressBytes, notAfter: NOW + 3600, issuedAt: NOW - 60 }, DEPLOYMENT);
      const svc = await service({ mode: 'signed' });
      assert.deepEqual(await ask(svc, { delegation: delegation(), descriptor, grant }), { ok: true });
      assert.deepEqual(await ask(svc, { delegation: delegation(), descriptor, grant, aclBlock: BLOCK }), { ok: true });
      const none = await ask(svc, { delegation: delegation(), descriptor, grant: undefined, aclBlock: BLOCK });
      assert.equal(!none.ok && none.code, 'unauthorized');
    });

    it('a batch: each request looked up on its own', async () => {
      const chain = new FakeChainAcl(true);
      const svc = await service({ mode: 'chain', chain });
      const reply = decodePartialBatchReply(
        await svc.answerBatch(encodePartialBatchRequest([{ delegation: delegation(), descriptor, grant: undefined, aclBlock: BLOCK }, { delegation: delegation(), descriptor, grant: undefined }])),
        2,
      );
      assert.ok(reply.ok);
      assert.deepEqual(reply.replies.map((r) => (r.ok ? 'ok' : r.code)), ['ok', 'bad_request']);
      assert.equal(chain.asked.length, 1);
    });
  });

  describe('config', () => {
    const NODE = { listen: '/ip4/127.0.0.1/tcp/9000', http: '127.0.0.1:9100', admin: '127.0.0.1:9200', identityFile: 'id.json', keystoreDir: 'ks', committeeFile: 'c.json' };
    const GATEWAY = { listen: '127.0.0.1:8080', storeDir: 's', committeeFile: 'c.json' };
    const CHAIN = { chainId: 31337, contract: `0x${'ab'.repeat(20)}`, rpcUrls: ['http://127.0.0.1:8545', 'http://127.0.0.1:8546'] };
    const problems = (fn: () => unknown): string[] => {
      try {
        fn();
      } catch (e) {
        assert.ok(isTkmsError(e, 'bad_request'), String(e));
        return (e.details?.problems as string[] | undefined) ?? [e.message];
      }
      return [];
    };
    const parsers = {
      node: (acl: unknown) => parseConfig({ ...NODE, ...(acl === undefined ? {} : { acl }) }, { baseDir: '/tmp' }),
      gateway: (acl: unknown) => parseGatewayConfig({ ...GATEWAY, ...(acl === undefined ? {} : { acl }) }, '/tmp'),
    };

    for (const [name, parse] of Object.entries(parsers)) {
      it(`${name}: signed by default without a chain; chain and either need acl.chain; quorum at most the URLs`, () => {
        assert.equal(parse(undefined).acl.mode, 'signed');
        assert.deepEqual(problems(() => parse({ mode: 'signed' })), []);
        for (const mode of ['chain', 'either']) {
          assert.ok(problems(() => parse({ mode })).some((p) => p.includes('acl.chain is required')), mode);
          assert.deepEqual(problems(() => parse({ mode, chain: CHAIN })), [], `${mode} with a chain`);
        }
        assert.ok(problems(() => parse({ mode: 'chain', chain: { ...CHAIN, quorum: 3 } })).some((p) => p.includes('acl.chain.quorum (3) must be at most')));
        assert.deepEqual(problems(() => parse({ mode: 'chain', chain: { ...CHAIN, quorum: 2 } })), []);
      });
    }

    it('gateway: confirmations is a non-negative integer (default 2)', () => {
      assert.equal(parsers.gateway({ mode: 'chain', chain: CHAIN }).acl.chain?.confirmations, 2);
      assert.equal(parsers.gateway({ mode: 'chain', chain: { ...CHAIN, confirmations: 0 } }).acl.chain?.confirmations, 0);
      assert.ok(problems(() => parsers.gateway({ mode: 'chain', chain: { ...CHAIN, confirmations: -1 } })).length > 0);
    });
  });

  describe('metrics', () => {
    it('the node exposes tkms_chain_*, the gateway tkms_gateway_chain_*, fed by the reader\'s sink', async () => {
      for (const [metrics, prefix] of [
        [createNodeMetrics(), 'tkms_chain'],
        [createGatewayMetrics(), 'tkms_gateway_chain'],
      ] as const) {
        metrics.chain.sink.call('eth_call', 'ok', 0.02);
        metrics.chain.sink.call('eth_call', 'unavailable', 3);
        metrics.chain.sink.head(1234, 5);
        metrics.chain.sink.cache(true);
        metrics.chain.sink.cache(false);
        metrics.chain.sink.cache(true);
        const text = await metrics.registry.metrics();
        assert.match(text, new RegExp(`${prefix}_calls_total\\{method="eth_call",outcome="ok"\\} 1`));
        assert.match(text, new RegExp(`${prefix}_calls_total\\{method="eth_call",outcome="unavailable"\\} 1`));
        assert.match(text, new RegExp(`${prefix}_call_duration_seconds_count\\{method="eth_call"\\} 2`));
        assert.match(text, new RegExp(`${prefix}_head_block 1234`));
        assert.match(text, new RegExp(`${prefix}_head_age_seconds 5`));
        assert.match(text, new RegExp(`${prefix}_cache_lookups_total\\{result="hit"\\} 2`));
        assert.match(text, new RegExp(`${prefix}_cache_lookups_total\\{result="miss"\\} 1`));
      }
    });

    it('the head age is measured at scrape time: it keeps growing while no new head is read', async () => {
      let now = 1_000_000;
      const registry = new Registry();
      const metrics = createChainMetrics(registry, 'tkms_chain', () => now);
      metrics.sink.head(1234, 5);
      assert.match(await registry.metrics(), /tkms_chain_head_age_seconds 5\n/);
      now += 60_000;
      assert.match(await registry.metrics(), /tkms_chain_head_age_seconds 65\n/);
      metrics.sink.head(1240, 1);
      assert.match(await registry.metrics(), /tkms_chain_head_age_seconds 1\n/);
    });
  });

  describe('gateway shortfall', () => {
    const f = (nodeId: number, code: ErrorCode) => ({ nodeId, code, message: code });
    it('every failing node said unavailable itself → unavailable (503); acl_block_ahead likewise; mixed doubts → unavailable', () => {
      const unavailable = shortfallError({ answers: [], failures: [f(1, 'unavailable'), f(2, 'unavailable')], refusedBy: [1, 2] }, 2, 3);
      assert.equal(unavailable.code, 'unavailable');
      assert.equal(unavailable.httpStatus, 503);
      assert.match(unavailable.message, /cannot read the on-chain ACL/);
      const ahead = shortfallError({ answers: [], failures: [f(1, 'acl_block_ahead'), f(2, 'acl_block_ahead')], refusedBy: [1, 2] }, 2, 3);
      assert.equal(ahead.code, 'acl_block_ahead');
      assert.equal(ahead.httpStatus, 503);
      assert.equal(shortfallError({ answers: [], failures: [f(1, 'acl_block_ahead'), f(2, 'unavailable')], refusedBy: [1, 2] }, 2, 3).code, 'unavailable');
    });

    it('unavailable from the transport (a node not reached) or beside a timeout stays insufficient_partials', () => {
      assert.equal(shortfallError({ answers: [], failures: [f(1, 'unavailable'), f(2, 'unavailable')], refusedBy: [1] }, 2, 3).code, 'insufficient_partials');
      assert.equal(shortfallError({ answers: [], failures: [f(1, 'unavailable'), f(2, 'timeout')], refusedBy: [1] }, 2, 3).code, 'insufficient_partials');
    });

    it('acl_block_too_old and signed_grants_refused are shared refusals', () => {
      const old = shortfallError({ answers: [], failures: [f(1, 'acl_block_too_old'), f(2, 'acl_block_too_old')], refusedBy: [1, 2] }, 2, 3);
      assert.equal(old.code, 'acl_block_too_old');
      assert.equal(old.httpStatus, 409);
      const signed = shortfallError({ answers: [], failures: [f(1, 'signed_grants_refused')], refusedBy: [1] }, 2, 3);
      assert.equal(signed.code, 'signed_grants_refused');
      assert.equal(signed.httpStatus, 403);
    });
  });

  describe('GET /v1/handles/{handle}/grants', () => {
    const check = Compile(GrantList);
    const signedEntry = { handle: `0x${'11'.repeat(32)}`, grantee: `0x${'22'.repeat(20)}`, notAfter: NOW + 60, issuedAt: NOW, signature: `0x${'33'.repeat(64)}1b`, status: 'active' };
    const chainEntry = { source: 'chain', handle: `0x${'11'.repeat(32)}`, grantee: `0x${'22'.repeat(20)}`, notAfter: NOW + 60, live: true, block: 77 };

    it('lists signed grants as before, with source "signed" beside the chain, and on-chain grants', () => {
      assert.ok(check.Check({ handle: signedEntry.handle, grants: [signedEntry] }), 'mode signed: as today');
      assert.ok(check.Check({ handle: signedEntry.handle, grants: [{ ...signedEntry, source: 'signed' }, chainEntry] }));
    });

    it('an on-chain entry has exactly source, handle, grantee, notAfter, live and block', () => {
      for (const bad of [
        { ...chainEntry, live: 'yes' },
        { ...chainEntry, block: -1 },
        { ...chainEntry, signature: signedEntry.signature },
        { ...chainEntry, source: 'signed' },
        (({ block: _b, ...rest }) => rest)(chainEntry),
      ]) {
        assert.ok(!check.Check({ handle: signedEntry.handle, grants: [bad] }), JSON.stringify(bad));
      }
    });

    it('the route declares the listing, and the refusals of the on-chain ACL', () => {
      const route = (id: string) => API_ROUTES.find((r) => r.operationId === id)!;
      assert.equal(route('listGrants').responses[200]?.schema, GrantList);
      assert.ok(route('putGrant').errors?.[403]?.includes('signed_grants_refused'));
      const delegate = route('delegate').errors!;
      assert.ok(delegate[403]?.includes('signed_grants_refused'));
      assert.ok(delegate[409]?.includes('acl_block_too_old'));
      assert.ok(delegate[503]?.includes('acl_block_ahead'));
    });
  });
});
