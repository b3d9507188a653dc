import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateAccount, TkmsClient, type Account, type DecryptResult } from '../../client/index.ts';
import { generateRsaKeyPair, isTkmsError } from '../../core/index.ts';
import { Devnet } from '../../deploy/devnet.ts';
import { parseCommitteeJson } from '../../net/committee.ts';
import { ChainFixture } from '../support/chain-evm.ts';
import { gatewayAclConfig, nodeAclConfig, waitHeadsAt, type ChainAclTiming } from '../support/chain-devnet.ts';
import { askNodeAt, askNodesAt, everyNode, signedGrantFor, type DirectAsker } from '../support/chain-requests.ts';
import { ownedHandle, type OwnedHandle } from '../support/devnet-requests.ts';
import { P2pClient } from '../support/p2p-client.ts';
import { makeTempDir, removeDir, waitFor } from '../support/processes.ts';
import { startRpcProxy, type RpcProxy } from '../support/rpc-proxy.ts';
import { MAX_AHEAD_BLOCKS } from '../../chain/acl-reader.ts';
import { expectRefusal } from '../support/refusal.ts';

/**
 * The on-chain ACL end to end: a real local EVM (anvil, blocks mined only when a test says so),
 * the TkmsAcl contract, and a devnet of 5 node processes (t = 3) and a gateway in mode "chain".
 * Every node reads the chain through its own JSON-RPC proxy, so a test can take one node's
 * provider down, make it hang, or make it lie. The gateway names B = head − 2 for every request;
 * tests that play a lying gateway send partial requests straight to the nodes with a B of their own.
 */
const TIMING: ChainAclTiming = { confirmations: 2, maxBlockLag: 6, aheadWaitMs: 800, pollIntervalMs: 200, rpcTimeoutMs: 1_000 };
const NODES = [1, 2, 3, 4, 5] as const;
// Rate limits would refuse the polling loops below; they are tested elsewhere.
const UNLIMITED = { perMinute: 10_000_000, burst: 100_000 };

const textOf = (r: DecryptResult): string => new TextDecoder().decode(r.plaintext);

describe('integration: on-chain ACL (anvil, 5 nodes, t = 3, mode chain, 2 confirmations)', function () {
  this.timeout(120_000);
  let dir: string | undefined;
  let chain: ChainFixture | undefined;
  const proxies = new Map<number, RpcProxy>();
  let devnet: Devnet | undefined;
  let p2p: P2pClient | undefined;
  let asker: DirectAsker;
  const alice = generateAccount();
  const bob = generateAccount();
  const carol = generateAccount();
  const clients = new Map<Account, TkmsClient>();
  const client = (a: Account): TkmsClient => clients.get(a)!;

  before(async function () {
    this.timeout(180_000);
    dir = await makeTempDir('tkms-chain-acl');
    chain = await ChainFixture.start();
    // As on a real chain, the contract is older than any block B the gateway names.
    await chain.mine(TIMING.confirmations);
    for (const id of NODES) proxies.set(id, await startRpcProxy(chain.url));
    const nodeConfig = Object.fromEntries(NODES.map((id) => [id, { acl: nodeAclConfig('chain', chain!, proxies.get(id)!.url, TIMING), partialRateLimit: UNLIMITED }]));
    devnet = await Devnet.start({
      dir,
      n: 5,
      t: 3,
      gatewayPort: 0,
      logLevel: 'info',
      nodeConfig,
      // The gateway reads the chain directly: its own provider, not one of the nodes'.
      gatewayConfig: { acl: gatewayAclConfig('chain', chain, chain.url, TIMING), rateLimit: UNLIMITED, partialTimeoutMs: 5_000 },
    });
    const committee = parseCommitteeJson(await readFile(join(devnet.dir, 'committee.json'), 'utf8'));
    p2p = await P2pClient.start(committee);
    asker = { p2p, deployment: devnet.deployment, keyId: devnet.keyId, rsa: await generateRsaKeyPair() };
    const pinned = await devnet.pinned();
    for (const a of [alice, bob, carol]) clients.set(a, new TkmsClient({ gatewayUrl: devnet.gatewayUrl, account: a, ...pinned }));
  });

  after(async () => {
    await p2p?.stop().catch(() => undefined);
    await devnet?.stop();
    await Promise.all([...proxies.values()].map((p) => p.close()));
    await chain?.stop();
    await removeDir(dir);
  });

  afterEach(async () => {
    for (const proxy of proxies.values()) await proxy.setMode('pass');
  });

  const nodeUrls = (ids: readonly number[] = NODES): string[] => ids.map((id) => devnet!.node(id).httpUrl);

  /** Waits until the gateway and the nodes (those whose provider answers) have read the chain's head. */
  async function settle(nodes: readonly number[] = NODES): Promise<number> {
    const head = await chain!.head();
    await waitHeadsAt(head, { gatewayUrl: devnet!.gatewayUrl, nodeUrls: nodeUrls(nodes) });
    return head;
  }

  /** The B an honest gateway names right now. */
  async function gatewayBlock(): Promise<number> {
    return (await chain!.head()) - TIMING.confirmations;
  }

  const handleOf = (text: string): Promise<OwnedHandle> => ownedHandle(client(alice), devnet!.keyId, text);

  /** Alice grants `grantee` on chain and the grant gets its confirmations; returns the grant's block. */
  async function grantConfirmed(h: OwnedHandle, grantee: Account, nodes: readonly number[] = NODES): Promise<number> {
    const tx = await chain!.grant(alice, h.handle, grantee.address);
    await chain!.mine(TIMING.confirmations);
    await settle(nodes);
    return tx.block;
  }

  /** The on-chain entries of GET /v1/handles/{h}/grants. */
  async function chainGrantsListed(h: OwnedHandle): Promise<{ grantee: string; live: boolean }[]> {
    const { json } = await client(alice).http.request<{ grants: { source?: string; grantee: string; live?: boolean }[] }>('GET', `/v1/handles/${h.handle}/grants`);
    return json.grants.filter((g) => g.source === 'chain').map((g) => ({ grantee: g.grantee, live: g.live! }));
  }

  const atEveryNode = (requester: Account, h: OwnedHandle, aclBlock: number, grant?: Parameters<typeof askNodeAt>[2]['grant']) =>
    askNodesAt(asker, NODES, { requester, handle: h, aclBlock, ...(grant ? { grant } : {}) });

  it('an on-chain grant lets the grantee decrypt once it has two confirmations, not before; nodes read exactly block B', async () => {
    const h = await handleOf('granted on chain');
    await expectRefusal(client(bob).decrypt(h.handle), 'unauthorized');

    const grant = await chain!.grant(alice, h.handle, bob.address);
    await settle();
    // The gateway's B is grant.block − 2: the grant is not there yet.
    await expectRefusal(client(bob).decrypt(h.handle), 'unauthorized');
    await chain!.mine(1);
    await settle();
    await expectRefusal(client(bob).decrypt(h.handle), 'unauthorized');
    // Every node answers for the block it is told, whatever its own head: before the grant no, from it on yes.
    assert.deepEqual(await atEveryNode(bob, h, grant.block - 1), everyNode(NODES, 'unauthorized'));
    assert.deepEqual(await atEveryNode(bob, h, grant.block), everyNode(NODES, 'ok'));

    await chain!.mine(1);
    await settle();
    const result = await client(bob).decrypt(h.handle);
    assert.equal(textOf(result), 'granted on chain');
    assert.equal(result.usedNodeIds.length, 3);
    assert.deepEqual(result.rejected, []);
    // The grant names bob only; the owner needs none.
    await expectRefusal(client(carol).decrypt(h.handle), 'unauthorized');
    assert.equal(textOf(await client(alice).decrypt(h.handle)), 'granted on chain');
    // The gateway lists the on-chain grant (from the Granted events) beside any signed ones.
    assert.deepEqual(await chainGrantsListed(h), [{ grantee: bob.address, live: true }]);
  });

  /**
   * One revocation, timed: from the receipt of the revoking transaction to the first refusal by
   * each node (asked directly in a loop at the B an honest gateway would name) and through the
   * gateway. `blockSeconds` undefined: the confirmation blocks are mined at once, so what is left
   * is the software's own delay (head polling, lookups); otherwise the chain mines on a clock.
   */
  async function timedRevocation(blockSeconds: number | undefined): Promise<{ h: OwnedHandle; block: number; nodes: number[]; gateway: number }> {
    const h = await handleOf('revoked on chain');
    await grantConfirmed(h, bob);
    assert.equal(textOf(await client(bob).decrypt(h.handle)), 'revoked on chain');
    if (blockSeconds !== undefined) await chain!.mineEvery(blockSeconds);
    try {
      const revocation = await chain!.revoke(alice, h.handle, bob.address);
      if (blockSeconds === undefined) await chain!.mine(TIMING.confirmations);
      const firstRefusal = async (where: string, probe: () => Promise<string>): Promise<number> =>
        waitFor(
          `${where} to refuse after the revocation`,
          async () => {
            const outcome = await probe();
            if (outcome === 'unauthorized') return performance.now() - revocation.receivedAt;
            // Before it refuses, a node either still answers for an older B or waits for its head to reach B.
            if (outcome !== 'ok' && outcome !== 'acl_block_ahead') throw new Error(`${where} answered ${outcome}`);
            return undefined;
          },
          { timeoutMs: 15_000, intervalMs: 10 },
        );
      const [gateway, ...nodes] = await Promise.all([
        firstRefusal('the gateway', () => client(bob).decrypt(h.handle).then(() => 'ok', (e: unknown) => (isTkmsError(e) ? e.code : String(e)))),
        ...NODES.map((id) => firstRefusal(`node ${id}`, async () => askNodeAt(asker, id, { requester: bob, handle: h, aclBlock: await gatewayBlock() }))),
      ]);
      return { h, block: revocation.block, nodes, gateway: gateway! };
    } finally {
      if (blockSeconds !== undefined) await chain!.mineEvery(undefined);
    }
  }

  it('a revocation binds every node from its block on; the delay from the revoking transaction to the first refusal is measured', async () => {
    const ms = (x: number): string => `${Math.round(x)}`;
    const report = (label: string, rounds: { nodes: number[]; gateway: number }[]): string =>
      `        ${label}: ${NODES.map((id, i) => `node ${id} ${rounds.map((r) => ms(r.nodes[i]!)).join('/')}`).join(', ')}; through the gateway ${rounds.map((r) => ms(r.gateway)).join('/')} ms`;
    const atOnce = [await timedRevocation(undefined), await timedRevocation(undefined), await timedRevocation(undefined)];
    const oneSecondBlocks = [await timedRevocation(1)];
    console.log(`      revocation delay, receipt of the revoking transaction → first refusal (B = head − ${TIMING.confirmations}, heads polled every ${TIMING.pollIntervalMs} ms):`);
    console.log(report('confirmation blocks mined at once, 3 rounds', atOnce));
    console.log(report('a block every second', oneSecondBlocks));
    const softwareBound = 3 * TIMING.pollIntervalMs + TIMING.aheadWaitMs + 1_000;
    for (const r of atOnce) for (const d of [r.gateway, ...r.nodes]) assert.ok(d < softwareBound, `revocation took ${ms(d)} ms to bind`);
    for (const r of oneSecondBlocks) for (const d of [r.gateway, ...r.nodes]) assert.ok(d < TIMING.confirmations * 1_000 + softwareBound, `revocation took ${ms(d)} ms to bind`);

    // At the revocation's block, and at the block before it too: the grant still holds there, but
    // every node also reads its own head, which is past the revocation.
    const { h, block } = oneSecondBlocks[0]!;
    await settle();
    assert.equal(await chain!.isGranted(h.handle, alice.address, bob.address, block - 1), true);
    assert.deepEqual(await atEveryNode(bob, h, block), everyNode(NODES, 'unauthorized'));
    assert.deepEqual(await atEveryNode(bob, h, block - 1), everyNode(NODES, 'unauthorized'));
    await expectRefusal(client(bob).decrypt(h.handle), 'unauthorized');
    // The listing shows the revoked grant as no longer live.
    assert.deepEqual(await chainGrantsListed(h), [{ grantee: bob.address, live: false }]);
  });

  it('revokeAll cancels every grant the owner made, on every handle, in one block', async () => {
    const [h1, h2] = [await handleOf('first of many'), await handleOf('second of many')];
    await chain!.grant(alice, h1.handle, bob.address);
    await grantConfirmed(h2, carol);
    assert.equal(textOf(await client(bob).decrypt(h1.handle)), 'first of many');
    assert.equal(textOf(await client(carol).decrypt(h2.handle)), 'second of many');
    const all = await chain!.revokeAll(alice);
    await chain!.mine(TIMING.confirmations);
    await settle();
    await expectRefusal(client(bob).decrypt(h1.handle), 'unauthorized');
    await expectRefusal(client(carol).decrypt(h2.handle), 'unauthorized');
    assert.deepEqual(await atEveryNode(carol, h2, all.block), everyNode(NODES, 'unauthorized'));
    // The grant held at the block before, but every node's head is past revokeAll.
    assert.equal(await chain!.isGranted(h2.handle, alice.address, carol.address, all.block - 1), true);
    assert.deepEqual(await atEveryNode(carol, h2, all.block - 1), everyNode(NODES, 'unauthorized'));
    // A grant made after revokeAll counts again (it carries the new epoch).
    await grantConfirmed(h1, bob);
    assert.equal(textOf(await client(bob).decrypt(h1.handle)), 'first of many');
  });

  it('a gateway (or a requester asking nodes directly) naming a block B from before a revocation is refused: inside maxBlockLag because each node also reads its own head, past it with acl_block_too_old; a B ahead of the chain is refused', async () => {
    const h = await handleOf('old blocks');
    await grantConfirmed(h, bob);
    const revocation = await chain!.revoke(alice, h.handle, bob.address);
    await chain!.mine(TIMING.confirmations);
    let head = await settle();
    // The grant holds at the block just before the revocation, inside maxBlockLag; but every node also
    // reads its own head, past the revocation, so naming an old block does not bring the grant back.
    assert.equal(await chain!.isGranted(h.handle, alice.address, bob.address, revocation.block - 1), true);
    assert.deepEqual(await atEveryNode(bob, h, revocation.block - 1), everyNode(NODES, 'unauthorized'));
    // Once the head is more than maxBlockLag past that block, no node accepts it.
    head = await chain!.mine(revocation.block - 1 + TIMING.maxBlockLag + 1 - head);
    await settle();
    assert.deepEqual(await atEveryNode(bob, h, revocation.block - 1), everyNode(NODES, 'acl_block_too_old'));
    // The oldest block still accepted is head − maxBlockLag, already past the revocation.
    assert.ok(head - TIMING.maxBlockLag >= revocation.block);
    assert.deepEqual(await atEveryNode(bob, h, head - TIMING.maxBlockLag), everyNode(NODES, 'unauthorized'));
    // A B a block or two past the head: each node waits aheadWaitMs for its provider, then refuses.
    const started = performance.now();
    assert.deepEqual(await atEveryNode(bob, h, head + 2), everyNode(NODES, 'acl_block_ahead'));
    assert.ok(performance.now() - started >= TIMING.aheadWaitMs - 50, 'a node refused a block just ahead without waiting for its provider');
    // Far ahead (more than MAX_AHEAD_BLOCKS): refused at once, so nobody ties a node up with waits.
    const farStarted = performance.now();
    assert.deepEqual(await atEveryNode(bob, h, head + MAX_AHEAD_BLOCKS + 10), everyNode(NODES, 'acl_block_ahead'));
    assert.ok(performance.now() - farStarted < TIMING.aheadWaitMs, 'a node waited for a block far ahead of its head');
    // A gateway that names no block at all (one configured for signed grants) gets nothing.
    assert.deepEqual(await askNodesAt(asker, NODES, { requester: bob, handle: h, aclBlock: undefined }), everyNode(NODES, 'bad_request'));
  });

  it('a grant undone by a chain reorganisation is refused, even when the new chain reaches the same height', async () => {
    const h = await handleOf('undone by a reorg');
    const snapshot = await chain!.snapshot();
    const grantBlock = await grantConfirmed(h, bob);
    const headBefore = await chain!.head();
    assert.equal(textOf(await client(bob).decrypt(h.handle)), 'undone by a reorg');
    // Every node now holds "granted" for (handle, alice, bob, grantBlock) in its cache.
    assert.deepEqual(await atEveryNode(bob, h, grantBlock), everyNode(NODES, 'ok'));

    await chain!.revert(snapshot);
    await chain!.mine(headBefore - (await chain!.head()));
    assert.equal(await chain!.head(), headBefore);
    assert.equal(await chain!.isGranted(h.handle, alice.address, bob.address, grantBlock), false);
    const reorgedAt = performance.now();
    await waitFor(
      'every node to drop the grant the reorganisation undid',
      async () => {
        const outcomes = await atEveryNode(bob, h, grantBlock);
        return NODES.every((id) => outcomes[id] === 'unauthorized') ? true : undefined;
      },
      { timeoutMs: 5_000, intervalMs: 50 },
    );
    console.log(`      nodes refused the reorganised-away grant ${Math.round(performance.now() - reorgedAt)} ms after the new blocks`);
    await waitFor(
      'the gateway to refuse the reorganised-away grant',
      async () => (await client(bob).decrypt(h.handle).then(() => 'ok', (e: unknown) => (isTkmsError(e) ? e.code : String(e)))) === 'unauthorized' || undefined,
      { timeoutMs: 5_000, intervalMs: 100 },
    );
    await chain!.mine(3);
    await settle();
    await expectRefusal(client(bob).decrypt(h.handle), 'unauthorized');
  });

  it('with the RPC down for n − t nodes decrypts still work, and those nodes, asked directly, fail closed with unavailable', async () => {
    await proxies.get(4)!.setMode('down');
    await proxies.get(5)!.setMode('down');
    const h = await handleOf('two providers down');
    const grantBlock = await grantConfirmed(h, bob, [1, 2, 3]);
    for (let i = 0; i < 3; i++) {
      const r = await client(bob).decrypt(h.handle);
      assert.equal(textOf(r), 'two providers down');
      assert.deepEqual([...r.usedNodeIds].sort(), [1, 2, 3]);
    }
    // Their providers went down before the grant's block: they cannot read the chain, which is "unavailable".
    assert.deepEqual(await askNodesAt(asker, [4, 5], { requester: bob, handle: h, aclBlock: grantBlock }), { 4: 'unavailable', 5: 'unavailable' });
  });

  it('with the RPC failing for n − t + 1 nodes (two down, one that never answers) the answer is an unavailable shortfall, and it recovers', async () => {
    const h = await handleOf('three providers down');
    await grantConfirmed(h, bob);
    // Every node has read the head that B names; then the lookups themselves fail.
    await proxies.get(3)!.setMode('hang');
    await proxies.get(4)!.setMode('down');
    await proxies.get(5)!.setMode('down');
    const err = await expectRefusal(client(bob).decrypt(h.handle), 'unavailable');
    assert.match(err.message, /2 of 5 nodes answered, 3 needed/);
    const failures = (err.details?.failures ?? []) as { nodeId: number; code: string }[];
    assert.deepEqual(failures.map((f) => f.nodeId).sort(), [3, 4, 5]);
    for (const f of failures) assert.equal(f.code, 'unavailable', JSON.stringify(f));

    for (const proxy of proxies.values()) await proxy.setMode('pass');
    await chain!.mine(1);
    await settle();
    assert.equal(textOf(await client(bob).decrypt(h.handle)), 'three providers down');
  });

  it('nodes whose RPC lies ("granted" to everything) cannot get anything decrypted that t honest nodes refuse', async () => {
    const h = await handleOf('not for carol');
    // n − t = 2 lying providers, the most the threshold is meant to survive.
    await proxies.get(1)!.setMode('lie');
    await proxies.get(2)!.setMode('lie');
    const block = await gatewayBlock();
    const outcomes = await atEveryNode(carol, h, block);
    assert.deepEqual(outcomes, { 1: 'ok', 2: 'ok', 3: 'unauthorized', 4: 'unauthorized', 5: 'unauthorized' });
    assert.ok(Object.values(outcomes).filter((o) => o === 'ok').length < devnet!.t, 'fewer than t partials: nothing to combine');
    await expectRefusal(client(carol).decrypt(h.handle), 'unauthorized');
    assert.equal(await chain!.isGranted(h.handle, alice.address, carol.address), false);
  });

  it('a node reads its chain only for a requester whose signature verified: a forged delegation costs no RPC call', async () => {
    const h = await handleOf('forged requests are free to refuse');
    await grantConfirmed(h, bob);
    for (const proxy of proxies.values()) proxy.resetCounts();
    // Carol signs a delegation naming bob, who does hold an on-chain grant.
    assert.deepEqual(await askNodesAt(asker, NODES, { requester: bob, forgedBy: carol, handle: h, aclBlock: await gatewayBlock() }), everyNode(NODES, 'unauthorized'));
    for (const id of NODES) assert.equal(proxies.get(id)!.counts().eth_call, undefined, `node ${id} called eth_call for a forged request`);
    // The same request signed by bob is served, and each node read the chain for it.
    assert.deepEqual(await askNodesAt(asker, NODES, { requester: bob, handle: h, aclBlock: await gatewayBlock() }), everyNode(NODES, 'ok'));
    for (const id of NODES) assert.ok((proxies.get(id)!.counts().eth_call ?? 0) >= 1, `node ${id} served without reading the chain`);
  });

  it('mode chain refuses signed grants, at the gateway and at every node asked directly', async () => {
    const h = await handleOf('signed grants do not count');
    await expectRefusal(client(alice).grant(h.handle, bob.address), 'signed_grants_refused');
    const signed = signedGrantFor(alice, h.handle, bob, devnet!.deployment);
    assert.deepEqual(await atEveryNode(bob, h, await gatewayBlock(), signed), everyNode(NODES, 'signed_grants_refused'));
    await expectRefusal(client(bob).decrypt(h.handle), 'unauthorized');
  });

  // Last: it moves the chain's clock forward for the rest of the run.
  it('an on-chain grant expires at its notAfter, by the timestamp of block B', async () => {
    const h = await handleOf('expires on chain');
    const notAfter = (await chain!.timestamp()) + 30;
    await chain!.grant(alice, h.handle, bob.address, BigInt(notAfter));
    await chain!.mine(TIMING.confirmations);
    await settle();
    assert.equal(textOf(await client(bob).decrypt(h.handle)), 'expires on chain');
    await chain!.increaseTime(45);
    const expiredAt = await chain!.mine(1);
    assert.equal(await chain!.isGranted(h.handle, alice.address, bob.address, expiredAt - 1), true);
    assert.equal(await chain!.isGranted(h.handle, alice.address, bob.address, expiredAt), false);
    await chain!.mine(TIMING.confirmations);
    await settle();
    await expectRefusal(client(bob).decrypt(h.handle), 'unauthorized');
    assert.deepEqual(await atEveryNode(bob, h, expiredAt), everyNode(NODES, 'unauthorized'));
    // Valid at the block before by that block's timestamp, expired at every node's head.
    assert.deepEqual(await atEveryNode(bob, h, expiredAt - 1), everyNode(NODES, 'unauthorized'));
    assert.deepEqual(await chainGrantsListed(h), [{ grantee: bob.address, live: false }]);
  });
});
