import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateAccount, type Account } from '../../client/account.ts';
import {
  DelegationMessage,
  encodeHex,
  GrantMessage,
  publicKeyFromSecret,
  randomBytes,
  randomScalar,
  sealToHandle,
  signDelegation,
  signGrant,
  utf8ToBytes,
  TkmsError,
  type GrantSource,
  type PartialRequest,
} from '../../core/index.ts';
import type { ChainAcl, OnChainGrant, OnChainGrantQuery } from '../../chain/chain-acl.ts';
import { gatewayRoutes, type GatewayContext } from '../../gateway/api.ts';
import type { GatewayConfig } from '../../gateway/config.ts';
import { createGatewayMetrics } from '../../gateway/metrics.ts';
import type { FanOutOptions, FanOutResult } from '../../gateway/node-pool.ts';
import { GatewayStore } from '../../gateway/store.ts';
import { closeServer, startHttpServer } from '../../net/http.ts';
import { createLogger } from '../../runtime/logger.ts';
import { RateLimiter } from '../../runtime/rate-limit.ts';
import { makeTempDir, removeDir } from '../support/processes.ts';

/**
 * The gateway's routes with the on-chain ACL on: its real routes, HTTP listener and store, a fake
 * ChainAcl and a fake node pool that records the partial requests it would fan out.
 */
const COMMITTEE = { committeeId: 'committee-a', t: 1, members: [{ id: 1, peerId: 'p1', multiaddrs: [] }] };
const HEAD = 100;
const CONFIRMATIONS = 2;

class FakeChain implements ChainAcl {
  readonly asked: OnChainGrantQuery[] = [];
  granted = true;
  listed: OnChainGrant[] = [];
  async start(): Promise<void> {}
  async stop(): Promise<void> {}
  async head(): Promise<{ block: number; ageSeconds: number }> {
    return { block: HEAD, ageSeconds: 1 };
  }
  async isGrantedAt(query: OnChainGrantQuery): Promise<boolean> {
    this.asked.push(query);
    return this.granted;
  }
  listFails = false;
  truncated = false;
  async listGrants(_handle: Uint8Array, _owner: Uint8Array, limit: number): Promise<{ block: number; grants: OnChainGrant[]; truncated: boolean }> {
    if (this.listFails) throw new TkmsError('unavailable', 'every RPC provider is down');
    return { block: HEAD, grants: this.listed.slice(0, limit), truncated: this.truncated };
  }
}

describe('on-chain ACL at the gateway routes (fake chain and node pool)', function () {
  this.timeout(60_000);
  let owner: Account;
  let grantee: Account;
  let rsaSpki: Uint8Array;
  let handle = '';
  let dir: string | undefined;
  let store: GatewayStore | undefined;
  const servers: Server[] = [];
  const limiter = new RateLimiter(1_000_000, 1_000_000);

  before(async () => {
    owner = generateAccount();
    grantee = generateAccount();
    rsaSpki = new Uint8Array(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'der' }));
    dir = await makeTempDir('tkms-chain-gateway');
    store = await GatewayStore.open(dir);
    const sealed = await sealToHandle({ publicKey: publicKeyFromSecret(randomScalar()), keyId: 'k1', owner: owner.addressBytes, plaintext: utf8ToBytes('gateway') });
    handle = encodeHex(sealed.handle);
    await store.putHandle(
      { handle, keyId: 'k1', K: encodeHex(sealed.K), nonce: encodeHex(sealed.nonce), ciphertextHash: encodeHex(sealed.ciphertextHash), owner: encodeHex(owner.addressBytes), kProof: encodeHex(sealed.kProof), createdAt: Date.now() },
      sealed.ciphertext,
    );
    // A signed grant stored while the deployment was in mode signed.
    const now = Math.floor(Date.now() / 1000);
    const g = GrantMessage.encode(signGrant(owner.secretKey, { handle: sealed.handle, grantee: grantee.addressBytes, notAfter: now + 3600, issuedAt: now - 60 }, COMMITTEE));
    await store.putGrant({ handle, grantee: g.grantee as string, notAfter: g.notAfter as number, issuedAt: g.issuedAt as number, signature: g.signature as string });
  });

  after(async () => {
    for (const s of servers) await closeServer(s);
    await store?.close();
    await removeDir(dir);
  });

  /** A gateway in `mode`; its pool records each fan-out and answers that node 1 cannot read its chain. */
  async function gateway(mode: GrantSource, chain?: FakeChain, opts: { withoutChainConfig?: true; fromBlock?: number } = {}): Promise<{ url: string; fanned: PartialRequest[] }> {
    const fanned: PartialRequest[] = [];
    const pool = {
      committee: COMMITTEE,
      connectedMembers: () => [1],
      requestPartials: async (request: PartialRequest, _opts: FanOutOptions): Promise<FanOutResult> => {
        fanned.push(request);
        return { answers: [], failures: [{ nodeId: 1, code: 'unavailable', message: 'rpc down' }], asked: [1], refusedBy: [1] };
      },
    };
    const config = { clockSkewSeconds: 30, maxGrantLifetimeSeconds: 90 * 86_400, partialTimeoutMs: 1000, hedgeDelayMs: 0, acl: { mode, ...(mode === 'signed' || opts.withoutChainConfig ? {} : { chain: { confirmations: CONFIRMATIONS, fromBlock: opts.fromBlock ?? 0 } }) } } as unknown as GatewayConfig;
    const ctx = {
      config,
      store,
      keys: { get: async () => ({ result: { t: 1 }, t: 1, epoch: 0 }) },
      pool,
      limiter,
      ipLimiter: new RateLimiter(1_000_000, 1_000_000),
      metrics: createGatewayMetrics(),
      ...(chain ? { chainAcl: chain } : {}),
    } as unknown as GatewayContext;
    const server = await startHttpServer('127.0.0.1', 0, gatewayRoutes(ctx), createLogger('silent'), 'test');
    servers.push(server);
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, fanned };
  }

  function delegateBody(by: Account, signer: Account = by): string {
    const now = Math.floor(Date.now() / 1000);
    const d = signDelegation(signer.secretKey, { handle: Uint8Array.from(Buffer.from(handle.slice(2), 'hex')), keyId: 'k1', requester: by.addressBytes, rsaSpki, notBefore: now - 60, notAfter: now + 600, requestId: randomBytes(16) }, COMMITTEE);
    return JSON.stringify({ delegation: DelegationMessage.encode(d) });
  }

  const post = (url: string, path: string, body: string) => fetch(`${url}${path}`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
  const errorOf = async (res: Response): Promise<{ status: number; code: string; message: string }> => {
    const json = (await res.json()) as { error: { code: string; message: string } };
    return { status: res.status, code: json.error.code, message: json.error.message };
  };

  it('mode chain: delegate checks the chain at head − confirmations, sends that block and no signed grant to the nodes', async () => {
    const chain = new FakeChain();
    const { url, fanned } = await gateway('chain', chain);
    const res = await post(url, `/v1/handles/${handle}/delegate`, delegateBody(grantee));
    // Every node said it cannot read its chain: the answer is that code, 503.
    assert.deepEqual((({ status, code }) => ({ status, code }))(await errorOf(res)), { status: 503, code: 'unavailable' });
    assert.equal(chain.asked.length, 1);
    assert.equal(chain.asked[0]!.block, HEAD - CONFIRMATIONS);
    assert.deepEqual(chain.asked[0]!.owner, owner.addressBytes);
    assert.equal(fanned.length, 1);
    assert.equal(fanned[0]!.aclBlock, HEAD - CONFIRMATIONS);
    assert.equal(fanned[0]!.grant, undefined, 'the stored signed grant is not sent');
  });

  it('a contract younger than confirmations blocks: unavailable (503, retry), no lookup and no fan-out; B is never moved to the deployment block', async () => {
    const chain = new FakeChain();
    const { url, fanned } = await gateway('chain', chain, { fromBlock: HEAD - CONFIRMATIONS + 1 });
    const refused = await errorOf(await post(url, `/v1/handles/${handle}/delegate`, delegateBody(grantee)));
    assert.equal(refused.status, 503);
    assert.equal(refused.code, 'unavailable');
    assert.match(refused.message, /fewer than 2 confirmations/);
    assert.equal(chain.asked.length, 0);
    assert.equal(fanned.length, 0);
    const { url: ready } = await gateway('chain', chain, { fromBlock: HEAD - CONFIRMATIONS });
    await post(ready, `/v1/handles/${handle}/delegate`, delegateBody(grantee));
    assert.equal(chain.asked[0]!.block, HEAD - CONFIRMATIONS);
  });

  it('a listing stopped at a bound says so (chainTruncated)', async () => {
    const chain = new FakeChain();
    chain.truncated = true;
    const { url } = await gateway('chain', chain);
    const json = (await (await fetch(`${url}/v1/handles/${handle}/grants`)).json()) as { chainTruncated?: boolean };
    assert.equal(json.chainTruncated, true);
    chain.truncated = false;
    const whole = (await (await fetch(`${url}/v1/handles/${handle}/grants`)).json()) as { chainTruncated?: boolean };
    assert.equal(whole.chainTruncated, undefined);
  });

  it('mode chain: no grant on chain fails fast (403 unauthorized), the nodes are not asked', async () => {
    const chain = new FakeChain();
    chain.granted = false;
    const { url, fanned } = await gateway('chain', chain);
    const err = await errorOf(await post(url, `/v1/handles/${handle}/delegate`, delegateBody(grantee)));
    assert.equal(err.status, 403);
    assert.equal(err.code, 'unauthorized');
    assert.match(err.message, new RegExp(`at block ${HEAD - CONFIRMATIONS}`));
    assert.equal(fanned.length, 0);
  });

  it('a forged delegation never reaches the chain', async () => {
    const chain = new FakeChain();
    const { url, fanned } = await gateway('chain', chain);
    const err = await errorOf(await post(url, `/v1/handles/${handle}/delegate`, delegateBody(grantee, generateAccount())));
    assert.equal(err.code, 'unauthorized');
    assert.equal(chain.asked.length, 0);
    assert.equal(fanned.length, 0);
  });

  it('mode either: a valid stored signed grant suffices (no lookup), and the block is still named for the nodes', async () => {
    const chain = new FakeChain();
    chain.granted = false;
    const { url, fanned } = await gateway('either', chain);
    await post(url, `/v1/handles/${handle}/delegate`, delegateBody(grantee));
    assert.equal(chain.asked.length, 0);
    assert.equal(fanned.length, 1);
    assert.ok(fanned[0]!.grant !== undefined);
    assert.equal(fanned[0]!.aclBlock, HEAD - CONFIRMATIONS);
  });

  it('mode signed: no block is named, the signed grant is sent as today', async () => {
    const { url, fanned } = await gateway('signed');
    await post(url, `/v1/handles/${handle}/delegate`, delegateBody(grantee));
    assert.equal(fanned.length, 1);
    assert.equal(fanned[0]!.aclBlock, undefined);
    assert.ok(fanned[0]!.grant !== undefined);
  });

  it('mode chain: PUT of a signed grant is refused with 403 signed_grants_refused', async () => {
    const { url } = await gateway('chain', new FakeChain());
    const now = Math.floor(Date.now() / 1000);
    const grant = signGrant(owner.secretKey, { handle: Uint8Array.from(Buffer.from(handle.slice(2), 'hex')), grantee: generateAccount().addressBytes, notAfter: now + 3600, issuedAt: now }, COMMITTEE);
    const err = await errorOf(await post(url, `/v1/handles/${handle}/grants`, JSON.stringify(GrantMessage.encode(grant))));
    assert.equal(err.status, 403);
    assert.equal(err.code, 'signed_grants_refused');
    assert.match(err.message, /acl\.mode = chain/);
  });

  it('GET …/grants: on-chain grants beside signed ones (mode either), chain only (mode chain), as today (mode signed)', async () => {
    const chain = new FakeChain();
    chain.listed = [{ grantee: grantee.addressBytes, notAfter: 2_000_000_000, live: true }];
    const list = async (url: string) => ((await (await fetch(`${url}/v1/handles/${handle}/grants`)).json()) as { grants: Record<string, unknown>[] }).grants;
    const either = await list((await gateway('either', chain)).url);
    assert.deepEqual(either.map((g) => g.source), ['signed', 'chain']);
    assert.deepEqual(either[1], { source: 'chain', handle, grantee: encodeHex(grantee.addressBytes), notAfter: 2_000_000_000, live: true, block: HEAD });
    assert.deepEqual((await list((await gateway('chain', chain)).url)).map((g) => g.source), ['chain']);
    const signed = await list((await gateway('signed')).url);
    assert.equal(signed.length, 1);
    assert.equal('source' in signed[0]!, false);
  });

  it('GET …/grants with the chain unreadable: 200 with the signed grants and chainUnavailable, not a 503', async () => {
    const chain = new FakeChain();
    chain.listFails = true;
    const res = await fetch(`${(await gateway('either', chain)).url}/v1/handles/${handle}/grants`);
    assert.equal(res.status, 200);
    const json = (await res.json()) as { grants: Record<string, unknown>[]; chainUnavailable?: { code: string; message: string } };
    assert.deepEqual(json.grants.map((g) => g.source), ['signed']);
    assert.deepEqual(json.chainUnavailable, { code: 'unavailable', message: 'every RPC provider is down' });
    const readable = (await (await fetch(`${(await gateway('either', new FakeChain())).url}/v1/handles/${handle}/grants`)).json()) as Record<string, unknown>;
    assert.equal('chainUnavailable' in readable, false);
  });

  it('a context in mode chain without acl.chain is an internal error, never a read at the head', async () => {
    const { url } = await gateway('chain', new FakeChain(), { withoutChainConfig: true });
    const res = await post(url, `/v1/handles/${handle}/delegate`, delegateBody(grantee));
    assert.deepEqual((({ status, code }) => ({ status, code }))(await errorOf(res)), { status: 500, code: 'internal' });
  });
});
