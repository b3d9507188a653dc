import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateAccount, type Account } from '../../client/account.ts';
import { DelegationMessage, encodeHex, publicKeyFromSecret, randomBytes, randomScalar, sealToHandle, signDelegation, utf8ToBytes, type PartialRequest } from '../../core/index.ts';
import { gatewayRoutes, type GatewayContext } from '../../gateway/api.ts';
import type { GatewayConfig } from '../../gateway/config.ts';
import { KeyDirectory, type KeySource } from '../../gateway/keys.ts';
import { createGatewayMetrics } from '../../gateway/metrics.ts';
import type { FanOutOptions, FanOutResult, KeysReport } from '../../gateway/node-pool.ts';
import { GatewayStore } from '../../gateway/store.ts';
import { closeServer, startHttpServer } from '../../net/http.ts';
import { createLogger } from '../../runtime/logger.ts';
import { RateLimiter } from '../../runtime/rate-limit.ts';
import { makeTempDir, removeDir } from '../support/processes.ts';
import { makeCommittee, makeMembers } from './handover-fixtures.ts';

/**
 * The delegate route when a member says the committee moved on (stale_epoch): the gateway's real
 * routes, HTTP listener and store, a fake key directory whose epoch the test moves and a fake pool
 * that answers each fan-out as the test scripts it.
 */
const COMMITTEE = { committeeId: 'committee-stale', epoch: 0, t: 2, members: [1, 2, 3].map((id) => ({ id, peerId: `p${id}`, multiaddrs: [] })) };
const bytes = (n: number, fill: number): Uint8Array => new Uint8Array(n).fill(fill);
const answer = (nodeId: number, epoch?: number) => ({ nodeId, wrapped: bytes(256, nodeId), proof: bytes(64, nodeId), ...(epoch === undefined ? {} : { epoch }) });

describe('gateway: a stale_epoch refusal refreshes the epoch and retries once', function () {
  this.timeout(60_000);
  let owner: Account;
  let rsaSpki: Uint8Array;
  let handle = '';
  let dir: string | undefined;
  let store: GatewayStore | undefined;
  const servers: Server[] = [];

  before(async () => {
    owner = generateAccount();
    rsaSpki = new Uint8Array(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'der' }));
    dir = await makeTempDir('tkms-stale-epoch');
    store = await GatewayStore.open(dir);
    const sealed = await sealToHandle({ publicKey: publicKeyFromSecret(randomScalar()), keyId: 'k1', owner: owner.addressBytes, plaintext: utf8ToBytes('epochs') });
    handle = encodeHex(sealed.handle);
    await store.putHandle(
      { handle, keyId: 'k1', K: encodeHex(sealed.K), nonce: encodeHex(sealed.nonce), ciphertextHash: encodeHex(sealed.ciphertextHash), owner: encodeHex(owner.addressBytes), kProof: encodeHex(sealed.kProof), createdAt: Date.now() },
      sealed.ciphertext,
    );
  });

  after(async () => {
    for (const s of servers) await closeServer(s);
    await store?.close();
    await removeDir(dir);
  });

  /** A gateway whose fan-outs `script` answers in turn; `moves` says whether refreshing the epoch reaches epoch 1. */
  async function gateway(script: ((opts: FanOutOptions) => FanOutResult)[], moves: boolean): Promise<{ url: string; fanned: FanOutOptions[]; refreshes: () => number }> {
    const fanned: FanOutOptions[] = [];
    let epoch = 0;
    let refreshes = 0;
    const pool = {
      committee: COMMITTEE,
      connectedMembers: () => [1, 2, 3],
      requestPartials: async (_request: PartialRequest, opts: FanOutOptions): Promise<FanOutResult> => {
        fanned.push({ ...opts, exclude: new Set(opts.exclude) });
        return script[fanned.length - 1]!(opts);
      },
    };
    const keys = {
      epochs: {
        get epoch() {
          return epoch;
        },
      },
      get: async () => ({ result: { t: 2 }, t: 2, epoch }),
      refreshEpoch: async () => {
        refreshes++;
        if (moves) epoch = 1;
      },
    };
    const config = { clockSkewSeconds: 30, maxGrantLifetimeSeconds: 86_400, partialTimeoutMs: 1000, hedgeDelayMs: 0, acl: { mode: 'signed' } } as unknown as GatewayConfig;
    const ctx = { config, store, keys, pool, limiter: new RateLimiter(1e6, 1e6), ipLimiter: new RateLimiter(1e6, 1e6), metrics: createGatewayMetrics() } as unknown as GatewayContext;
    const server = await startHttpServer('127.0.0.1', 0, gatewayRoutes(ctx), createLogger('silent'), 'test');
    servers.push(server);
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, fanned, refreshes: () => refreshes };
  }

  const delegate = async (url: string): Promise<{ status: number; json: Record<string, unknown> }> => {
    const now = Math.floor(Date.now() / 1000);
    const d = signDelegation(owner.secretKey, { handle: Uint8Array.from(Buffer.from(handle.slice(2), 'hex')), keyId: 'k1', requester: owner.addressBytes, rsaSpki, notBefore: now - 60, notAfter: now + 600, requestId: randomBytes(16) }, COMMITTEE);
    const res = await fetch(`${url}/v1/handles/${handle}/delegate`, { method: 'POST', body: JSON.stringify({ delegation: DelegationMessage.encode(d) }), headers: { 'content-type': 'application/json' } });
    return { status: res.status, json: (await res.json()) as Record<string, unknown> };
  };

  it('asks the new committee once, without the members that already answered, and passes each partial\'s epoch on', async () => {
    const { url, fanned, refreshes } = await gateway(
      [
        () => ({ answers: [answer(1)], failures: [{ nodeId: 2, code: 'stale_epoch', message: 'moved to epoch 1' }], asked: [1, 2], refusedBy: [2] }),
        () => ({ answers: [answer(2, 1), answer(3, 1)], failures: [], asked: [2, 3], refusedBy: [] }),
      ],
      true,
    );
    const { status, json } = await delegate(url);
    assert.equal(status, 200, JSON.stringify(json));
    assert.equal(refreshes(), 1);
    assert.equal(fanned.length, 2);
    assert.deepEqual([...fanned[1]!.exclude], [1], 'member 1 spent the request id at epoch 0');
    assert.equal(json.epoch, 1);
    assert.deepEqual((json.partials as { nodeId: number; epoch?: number }[]).map((p) => [p.nodeId, p.epoch]), [[2, 1], [3, 1]]);
    assert.deepEqual((json.failures as { code: string }[]).map((f) => f.code), ['stale_epoch']);
  });

  it('no retry when the refresh finds no later epoch (a member cannot make the gateway loop): the shortfall is answered', async () => {
    const stale = () => ({ answers: [], failures: [1, 2, 3].map((nodeId) => ({ nodeId, code: 'stale_epoch' as const, message: 'moved' })), asked: [1, 2, 3], refusedBy: [1, 2, 3] });
    const { url, fanned, refreshes } = await gateway([stale, stale], false);
    const { status, json } = await delegate(url);
    // The gateway cannot follow where its members went: retryable, like any shortfall.
    assert.equal(status, 503);
    assert.equal((json.error as { code: string }).code, 'insufficient_partials');
    assert.equal(fanned.length, 1);
    assert.equal(refreshes(), 1);
  });

  it('answers of mixed epochs: t of the current epoch are passed on, never a mix', async () => {
    const { url } = await gateway([() => ({ answers: [answer(1), answer(2, 1), answer(3, 1)], failures: [], asked: [1, 2, 3], refusedBy: [] })], true);
    // The directory is still at epoch 0 here: t answers of epoch 0 do not exist, so the t of epoch 1 go.
    const { status, json } = await delegate(url);
    assert.equal(status, 200);
    assert.deepEqual((json.partials as { nodeId: number; epoch?: number }[]).map((p) => [p.nodeId, p.epoch]), [[2, 1], [3, 1]]);
  });

  it('KeyDirectory.refreshEpoch asks the members at most once a second', async () => {
    const members = makeMembers([1, 2]);
    let fetches = 0;
    const pool: KeySource = {
      committee: makeCommittee('committee-stale', 0, 1, members),
      fetchKeys: async (): Promise<KeysReport[]> => {
        fetches++;
        return [];
      },
      retarget: async () => {},
    };
    const directory = new KeyDirectory(pool.committee, pool, createLogger('silent'));
    const seenAt = Date.now();
    await Promise.all([directory.refreshEpoch(seenAt), directory.refreshEpoch(seenAt)]);
    await directory.refreshEpoch(seenAt);
    assert.equal(fetches, 1);
  });

  // Scenario "shrink, gateway behind" (test/integration/reshare-scenarios.md): the read under way began
  // before the members committed; answering from it kept the gateway at the old epoch.
  it('KeyDirectory.refreshEpoch after a member answered at a later epoch: waits for the read under way, then reads again once its second is over', async () => {
    const members = makeMembers([1, 2]);
    const reads: { start: number; end: number }[] = [];
    let release: (() => void) | undefined;
    const pool: KeySource = {
      committee: makeCommittee('committee-stale', 0, 1, members),
      fetchKeys: async (): Promise<KeysReport[]> => {
        const read = { start: Date.now(), end: 0 };
        reads.push(read);
        if (reads.length === 1) await new Promise<void>((r) => (release = r));
        read.end = Date.now();
        return [];
      },
      retarget: async () => {},
    };
    const directory = new KeyDirectory(pool.committee, pool, createLogger('silent'));
    const periodic = directory.refresh();
    await new Promise((r) => setTimeout(r, 20));
    // A member answers at a later epoch while that read waits on the members.
    const hinted = directory.refreshEpoch(Date.now());
    await new Promise((r) => setTimeout(r, 20));
    release!();
    await Promise.all([periodic, hinted]);
    assert.equal(reads.length, 2, 'a read begun after the answer');
    assert.ok(reads[1]!.start - reads[0]!.end >= 990, `at most one read a second (${reads[1]!.start - reads[0]!.end} ms apart)`);
  });
});
