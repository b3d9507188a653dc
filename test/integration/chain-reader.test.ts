import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createPublicClient, createTestClient, createWalletClient, http, toHex, type Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { pino } from 'pino';
import { TKMS_ACL_ABI } from '../../chain/acl-artifact.ts';
import { createChainAclReader, type ChainAclReaderOptions } from '../../chain/acl-reader.ts';
import { ANVIL_DEV_PRIVATE_KEY, startAnvil, type AnvilChain } from '../../chain/anvil.ts';
import type { ChainAcl, ChainMetricsSink } from '../../chain/chain-acl.ts';
import { deployAcl } from '../../chain/deploy.ts';
import { isTkmsError } from '../../core/index.ts';
import { startRpcProxy, type RpcProxy } from '../support/rpc-proxy.ts';
import type { Logger } from '../../runtime/logger.ts';
import { expectRefusal } from '../support/refusal.ts';

/**
 * The on-chain ACL reader against a real anvil, through proxies that can fail or lie, so quorum,
 * timeouts, the head policy, the cache and reorganisations are exercised on real JSON-RPC.
 */
const owner = privateKeyToAccount(ANVIL_DEV_PRIVATE_KEY);
const ownerBytes = Uint8Array.from(Buffer.from(owner.address.slice(2), 'hex'));
const TIMEOUT_MS = 400;

function randomHandle(): Uint8Array {
  return new Uint8Array(randomBytes(32));
}
function randomAddressBytes(): Uint8Array {
  return new Uint8Array(randomBytes(20));
}

/** A logger whose JSON lines the test reads back. */
function capturedLog(): { log: Logger; logLines: string[] } {
  const logLines: string[] = [];
  return { log: pino({ level: 'info' }, { write: (line: string) => void logLines.push(line) }), logLines };
}

describe('on-chain ACL reader (anvil + RPC proxies)', function () {
  this.timeout(60_000);
  let anvil: AnvilChain;
  let contract: Hex;
  let p1: RpcProxy;
  let p2: RpcProxy;
  let wallet: ReturnType<typeof createWalletClient>;
  let testClient: ReturnType<typeof createTestClient>;
  let publicClient: ReturnType<typeof createPublicClient>;
  const readers: ChainAcl[] = [];

  before(async () => {
    anvil = await startAnvil();
    contract = (await deployAcl(anvil.url, ANVIL_DEV_PRIVATE_KEY)).address;
    p1 = await startRpcProxy(anvil.url);
    p2 = await startRpcProxy(anvil.url);
    const transport = http(anvil.url, { retryCount: 0 });
    wallet = createWalletClient({ account: owner, transport });
    testClient = createTestClient({ mode: 'anvil', transport });
    publicClient = createPublicClient({ transport });
  });

  afterEach(async () => {
    await p1.setMode('pass');
    await p2.setMode('pass');
    await Promise.all(readers.splice(0).map((r) => r.stop()));
  });

  after(async () => {
    await Promise.all([p1?.close(), p2?.close()]);
    await anvil?.stop();
  });

  function options(overrides: Partial<ChainAclReaderOptions> = {}): ChainAclReaderOptions {
    return { chainId: anvil.chainId, contract, rpcUrls: [p1.url, p2.url], rpcTimeoutMs: TIMEOUT_MS, pollIntervalMs: 100, maxHeadAgeSeconds: 120, maxBlockLag: 32, aheadWaitMs: 500, ...overrides };
  }

  async function started(overrides: Partial<ChainAclReaderOptions> = {}): Promise<ChainAcl> {
    const reader = createChainAclReader(options(overrides));
    readers.push(reader);
    await reader.start();
    return reader;
  }

  /** Sends owner's grant and returns the block it was mined in. */
  async function grant(handle: Uint8Array, grantee: Uint8Array, notAfter = Math.floor(Date.now() / 1000) + 3600): Promise<number> {
    const hash = await wallet.writeContract({ address: contract, abi: TKMS_ACL_ABI, functionName: 'grant', args: [toHex(handle), toHex(grantee), BigInt(notAfter)], chain: null, account: owner });
    const receipt = await publicClient.waitForTransactionReceipt({ hash, pollingInterval: 20 });
    assert.equal(receipt.status, 'success');
    return Number(receipt.blockNumber);
  }

  async function chainHead(): Promise<number> {
    return Number(await publicClient.getBlockNumber({ cacheTime: 0 }));
  }

  async function readerReaches(reader: ChainAcl, block: number): Promise<void> {
    const deadline = Date.now() + 5_000;
    while ((await reader.head()).block < block) {
      assert.ok(Date.now() < deadline, `reader head did not reach ${block}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  it('answers isGranted at exactly the named block, from both providers, and caches the answer', async () => {
    const calls: string[] = [];
    const cache: boolean[] = [];
    const heads: number[] = [];
    const metrics: ChainMetricsSink = { call: (m, o) => calls.push(`${m}:${o}`), head: (block) => heads.push(block), cache: (hit) => cache.push(hit) };
    const reader = await started({ metrics });
    const handle = randomHandle();
    const grantee = randomAddressBytes();
    const block = await grant(handle, grantee);
    await readerReaches(reader, block);
    const query = { handle, owner: ownerBytes, grantee, block };

    p1.resetCounts();
    p2.resetCounts();
    let t = performance.now();
    assert.equal(await reader.isGrantedAt(query), true);
    const coldMs = performance.now() - t;
    assert.equal(p1.counts()['eth_call'], 1);
    assert.equal(p2.counts()['eth_call'], 1);
    assert.equal(await reader.isGrantedAt({ ...query, block: block - 1 }), false, 'the block before the grant');
    assert.equal(await reader.isGrantedAt({ ...query, grantee: randomAddressBytes() }), false, 'another grantee');
    assert.equal(await reader.isGrantedAt({ ...query, owner: randomAddressBytes() }), false, 'another owner');

    p1.resetCounts();
    p2.resetCounts();
    t = performance.now();
    assert.equal(await reader.isGrantedAt(query), true);
    const cachedMs = performance.now() - t;
    assert.equal(p1.counts()['eth_call'] ?? 0, 0, 'a cached answer makes no RPC call');
    assert.equal(p2.counts()['eth_call'] ?? 0, 0);
    assert.deepEqual(cache.slice(-1), [true]);
    assert.ok(calls.includes('eth_call:ok') && calls.includes('eth_getBlockByNumber:ok') && calls.includes('eth_chainId:ok'), 'every call reported');
    assert.ok(heads.includes(block), 'head updates reported');
    // Medians over distinct questions, first asked (two eth_calls each) and then asked again (cache).
    const others = Array.from({ length: 50 }, randomAddressBytes);
    const timed = async (grantees: Uint8Array[]): Promise<number> => {
      const ms: number[] = [];
      for (const g of grantees) {
        const start = performance.now();
        await reader.isGrantedAt({ ...query, grantee: g });
        ms.push(performance.now() - start);
      }
      return ms.sort((x, y) => x - y)[ms.length >> 1]!;
    };
    const coldMedian = await timed(others);
    const cachedMedian = await timed(others);
    assert.ok(cachedMedian < coldMedian, 'the cache answers faster than the RPC');
    // Head past B: each question is asked at B and at the head, in parallel.
    await testClient.mine({ blocks: 1 });
    await readerReaches(reader, block + 1);
    const more = Array.from({ length: 50 }, randomAddressBytes);
    p1.resetCounts();
    const coldBoth = await timed(more);
    assert.equal(p1.counts()['eth_call'], 100, 'two calls per question: at B and at the head');
    const cachedBoth = await timed(more);
    assert.equal(p1.counts()['eth_call'], 100, 'both answers cached');
    console.log(`      lookup latency: first ${coldMs.toFixed(2)} ms, cached ${cachedMs.toFixed(3)} ms; median of 50 (2 providers): head = B cold ${coldMedian.toFixed(2)} ms, cached ${cachedMedian.toFixed(3)} ms; head past B cold ${coldBoth.toFixed(2)} ms, cached ${cachedBoth.toFixed(3)} ms`);
  });

  it('refuses (unavailable) when one of two providers lies with quorum 2, and when a provider is down, hangs or answers garbage', async () => {
    const reader = await started();
    const handle = randomHandle();
    const block = await chainHead();
    await readerReaches(reader, block);
    const query = { handle, owner: ownerBytes, grantee: randomAddressBytes(), block };

    await p2.setMode('lie');
    const lie = await expectRefusal(reader.isGrantedAt(query), 'unavailable');
    assert.match(lie.message, /disagree/);
    assert.match(lie.message, /rpc\[1\] said true/);
    assert.doesNotMatch(lie.message, /127\.0\.0\.1/, 'names providers as rpc[i] only: hosts are for logs');

    await p2.setMode('down');
    let t = Date.now();
    await expectRefusal(reader.isGrantedAt({ ...query, grantee: randomAddressBytes() }), 'unavailable');
    assert.ok(Date.now() - t < TIMEOUT_MS + 1_000);

    await p2.setMode('hang');
    t = Date.now();
    const hang = await expectRefusal(reader.isGrantedAt({ ...query, grantee: randomAddressBytes() }), 'unavailable');
    const waited = Date.now() - t;
    assert.match(hang.message, /timeout/);
    assert.ok(waited >= TIMEOUT_MS - 50 && waited < TIMEOUT_MS + 1_000, `hang refused after ${waited} ms`);

    await p2.setMode('malformed');
    await expectRefusal(reader.isGrantedAt({ ...query, grantee: randomAddressBytes() }), 'unavailable');

    await p2.setMode('pass');
    assert.equal(await reader.isGrantedAt({ ...query, grantee: randomAddressBytes() }), false, 'answers again once the provider is back');
  });

  it('with quorum 1 of 2, a down provider is tolerated but a lying one still voids the answer', async () => {
    const reader = await started({ quorum: 1 });
    const block = await chainHead();
    await readerReaches(reader, block);
    const query = { handle: randomHandle(), owner: ownerBytes, grantee: randomAddressBytes(), block };
    await p2.setMode('down');
    assert.equal(await reader.isGrantedAt(query), false);
    await p2.setMode('lie');
    await expectRefusal(reader.isGrantedAt({ ...query, grantee: randomAddressBytes() }), 'unavailable');
  });

  it('start() refuses a wrong chain id, an address without code, a contract of another version, and a provider that does not answer', async () => {
    // Any letter case is the same address: a broken EIP-55 checksum is not a reason to refuse.
    const recased = `0x${[...contract.slice(2)].map((c, i) => (i % 2 === 0 ? c.toUpperCase() : c.toLowerCase())).join('')}`;
    await started({ contract: recased });
    await expectRefusal(createChainAclReader(options({ chainId: anvil.chainId + 1 })).start(), 'chain_mismatch');
    await expectRefusal(createChainAclReader(options({ contract: toHex(randomAddressBytes()) })).start(), 'chain_mismatch');
    // A contract whose every call returns uint256 2: code exists, VERSION() answers, but not 1.
    const runtime = '600260005260206000f3';
    const hash = await wallet.deployContract({ abi: [], bytecode: `0x600a600c600039600a6000f3${runtime}`, chain: null, account: owner });
    const other = (await publicClient.waitForTransactionReceipt({ hash, pollingInterval: 20 })).contractAddress!;
    const version = await expectRefusal(createChainAclReader(options({ contract: other })).start(), 'chain_mismatch');
    assert.match(version.message, /version 2/);
    await p2.setMode('down');
    await expectRefusal(createChainAclReader(options()).start(), 'unavailable');
    await p2.setMode('hang');
    const t = Date.now();
    await expectRefusal(createChainAclReader(options()).start(), 'unavailable');
    assert.ok(Date.now() - t < TIMEOUT_MS * 3 + 1_000);
  });

  it('refuses (unavailable) while the head is older than maxHeadAgeSeconds', async () => {
    await testClient.mine({ blocks: 1 });
    // Block timestamps are whole seconds, so a fresh head can already be ~1 s old: allow 2.
    const reader = await started({ maxHeadAgeSeconds: 2 });
    const block = await chainHead();
    const query = { handle: randomHandle(), owner: ownerBytes, grantee: randomAddressBytes(), block };
    assert.equal(await reader.isGrantedAt(query), false);
    await new Promise((r) => setTimeout(r, 3_200)); // no block mined: the head ages past 2 s
    const stale = await expectRefusal(reader.isGrantedAt({ ...query, grantee: randomAddressBytes() }), 'unavailable');
    assert.match(stale.message, /old/);
    await testClient.mine({ blocks: 1 });
    await readerReaches(reader, block + 1);
    assert.equal(await reader.isGrantedAt({ ...query, grantee: randomAddressBytes() }), false, 'a fresh block ends the refusal');
  });

  it('refuses a block more than maxBlockLag behind the head; refuses one far ahead at once, one a little ahead after aheadWaitMs; waits for one that arrives in time', async () => {
    const reader = await started({ maxBlockLag: 2, aheadWaitMs: 300 });
    await testClient.mine({ blocks: 5 });
    const head = await chainHead();
    await readerReaches(reader, head);
    const query = { handle: randomHandle(), owner: ownerBytes, grantee: randomAddressBytes() };
    assert.equal(await reader.isGrantedAt({ ...query, block: head - 2 }), false, 'exactly maxBlockLag behind is fine');
    await expectRefusal(reader.isGrantedAt({ ...query, block: head - 3 }), 'acl_block_too_old');
    let t = Date.now();
    await expectRefusal(reader.isGrantedAt({ ...query, block: head + 2 }), 'acl_block_ahead');
    assert.ok(Date.now() - t >= 250, 'waited before refusing a block a little ahead');
    t = Date.now();
    const far = await expectRefusal(reader.isGrantedAt({ ...query, block: head + 1_000_000 }), 'acl_block_ahead');
    assert.ok(Date.now() - t < 200, `a block far ahead is refused at once (${Date.now() - t} ms)`);
    assert.match(far.message, /more than 3 blocks ahead/);

    const patient = await started({ maxBlockLag: 2, aheadWaitMs: 3_000 });
    t = Date.now();
    const answer = patient.isGrantedAt({ ...query, block: head + 1 });
    setTimeout(() => void testClient.mine({ blocks: 1 }), 300);
    assert.equal(await answer, false);
    assert.ok(Date.now() - t < 2_000, 'answered soon after the block arrived');
  });

  it('requests waiting for a block ahead have a share of maxInFlight (a quarter): a flood of them is refused at once, and lookups keep the rest', async () => {
    const reader = await started({ aheadWaitMs: 2_000, maxInFlight: 8 });
    const head = await chainHead();
    await readerReaches(reader, head);
    const t = Date.now();
    const waits = Array.from({ length: 40 }, () => reader.isGrantedAt({ handle: randomHandle(), owner: ownerBytes, grantee: randomAddressBytes(), block: head + 2 }).then(
      (granted) => String(granted),
      (error: unknown) => (isTkmsError(error) ? error.code : String(error)),
    ));
    await new Promise((r) => setTimeout(r, 200));
    // Two requests wait (8 / 4); a lookup at the head is still served meanwhile.
    assert.equal(await reader.isGrantedAt({ handle: randomHandle(), owner: ownerBytes, grantee: randomAddressBytes(), block: head }), false);
    await testClient.mine({ blocks: 2 });
    const codes = await Promise.all(waits);
    assert.equal(codes.filter((c) => c === 'acl_block_ahead').length, 38, `38 refused at once: ${codes}`);
    assert.equal(codes.filter((c) => c === 'false').length, 2, 'the 2 admitted waited and were answered');
    assert.ok(Date.now() - t < 1_500, 'nobody waited out aheadWaitMs');
  });

  it('a grant counts only if it still holds at the head: a block from before a revocation, inside maxBlockLag, is refused once the head passed the revocation', async () => {
    const reader = await started({ maxBlockLag: 32 });
    const handle = randomHandle();
    const grantee = randomAddressBytes();
    const granted = await grant(handle, grantee);
    await readerReaches(reader, granted);
    const query = { handle, owner: ownerBytes, grantee, block: granted };
    assert.equal(await reader.isGrantedAt(query), true, 'granted at B and at the head');

    const hash = await wallet.writeContract({ address: contract, abi: TKMS_ACL_ABI, functionName: 'revoke', args: [toHex(handle), toHex(grantee)], chain: null, account: owner });
    const revoked = Number((await publicClient.waitForTransactionReceipt({ hash, pollingInterval: 20 })).blockNumber);
    await readerReaches(reader, revoked);
    assert.ok(revoked - granted <= 32, 'B is inside the lag window');
    assert.equal(await reader.isGrantedAt(query), false, 'B before the revocation no longer grants once the head reached it');
    assert.equal(await reader.isGrantedAt({ ...query, block: revoked }), false);
  });

  it('one provider stuck at an old head cannot hold the head back: within a few blocks it is tolerated, beyond that every lookup is refused', async () => {
    const { log, logLines } = capturedLog();
    const reader = await started({ log });
    const stuckAt = await chainHead();
    await readerReaches(reader, stuckAt);
    await p2.setMode('stale-head');
    await testClient.mine({ blocks: 2 });
    await new Promise((r) => setTimeout(r, 300));
    const query = { handle: randomHandle(), owner: ownerBytes, grantee: randomAddressBytes(), block: stuckAt };
    assert.equal(await reader.isGrantedAt(query), false, 'two blocks apart: ordinary lag');
    assert.equal((await reader.head()).block, stuckAt, 'the head is the block both providers reached');

    await testClient.mine({ blocks: 8 });
    await new Promise((r) => setTimeout(r, 300));
    const refused = await expectRefusal(reader.isGrantedAt({ ...query, grantee: randomAddressBytes() }), 'unavailable');
    assert.match(refused.message, new RegExp(`reports head ${stuckAt + 10}`));
    assert.doesNotMatch(refused.message, /127\.0\.0\.1/);
    assert.ok(!logLines.some((l) => /chain reorganisation seen/.test(l)), 'a provider behind is not taken for a reorg');

    await p2.setMode('pass');
    await readerReaches(reader, stuckAt + 10);
    assert.equal(await reader.isGrantedAt({ ...query, block: stuckAt + 10, grantee: randomAddressBytes() }), false, 'answers again once the provider catches up');
  });

  it('a provider reporting a lower head at a block never adopted does not move the head back (a revocation stays in force)', async () => {
    const { log, logLines } = capturedLog();
    const reader = await started({ log });
    const start = await chainHead();
    await readerReaches(reader, start);
    // Three blocks at once: the reader adopts start + 3 and never sees start + 1.
    await testClient.mine({ blocks: 3 });
    await readerReaches(reader, start + 3);
    const query = { handle: randomHandle(), owner: ownerBytes, grantee: randomAddressBytes(), block: start + 3 };
    assert.equal(await reader.isGrantedAt(query), false);
    await p2.setMode('stale-head', { staleHead: start + 1 });
    await new Promise((r) => setTimeout(r, 400));
    assert.equal((await reader.head()).block, start + 3, 'the head stayed where both providers had been');
    assert.ok(!logLines.some((l) => /cache dropped/.test(l)), 'a lower report is not taken for a reorg');
    // The cached answer at the held head survived: asking again costs no call.
    p1.resetCounts();
    assert.equal(await reader.isGrantedAt(query), false);
    assert.equal(p1.counts().eth_call ?? 0, 0, 'answered from the cache');
  });

  it('drops cached answers when the chain reorganises: a grant undone by a reorg is not granted at the same block number', async () => {
    const { log, logLines } = capturedLog();
    const reader = await started({ log });
    const handle = randomHandle();
    const grantee = randomAddressBytes();
    const snapshot = await testClient.snapshot();
    const block = await grant(handle, grantee);
    await testClient.mine({ blocks: 1 });
    await readerReaches(reader, block + 1);
    const query = { handle, owner: ownerBytes, grantee, block };
    assert.equal(await reader.isGrantedAt(query), true);
    assert.equal(await testClient.revert({ id: snapshot }), undefined);
    await testClient.mine({ blocks: 3 });
    await readerReaches(reader, block + 2);
    assert.equal(await reader.isGrantedAt(query), false, 'the cached "granted" was dropped with the old chain');
    assert.ok(logLines.some((l) => /chain reorganisation seen/.test(l)), 'the reorg is logged');
  });

  it('a reorganisation to a shorter branch drops the cached answers at once, before the chain regrows', async () => {
    const { log, logLines } = capturedLog();
    const reader = await started({ log });
    const handle = randomHandle();
    const grantee = randomAddressBytes();
    const snapshot = await testClient.snapshot();
    const block = await grant(handle, grantee);
    await testClient.mine({ blocks: 2 });
    await readerReaches(reader, block + 2);
    const query = { handle, owner: ownerBytes, grantee, block };
    assert.equal(await reader.isGrantedAt(query), true, 'granted and cached');
    await testClient.revert({ id: snapshot });
    // One block on the new branch: it reaches the grant's height, but not the height the reader holds.
    await testClient.mine({ blocks: 1 });
    assert.ok((await chainHead()) >= block && (await chainHead()) < block + 2);
    await new Promise((r) => setTimeout(r, 400));
    const answer = await reader.isGrantedAt(query).then(String, (e: unknown) => (isTkmsError(e) ? e.code : String(e)));
    assert.notEqual(answer, 'true', 'the cached "granted" of the abandoned branch was not served');
    assert.ok(logLines.some((l) => /is gone \(a shorter branch\)/.test(l)), 'the dropped cache is logged');
  });

  it('a lookup asked after a reorg does not join one still running from before it', async () => {
    const reader = await started();
    const handle = randomHandle();
    const grantee = randomAddressBytes();
    const snapshot = await testClient.snapshot();
    const granted = await grant(handle, grantee);
    await testClient.mine({ blocks: 2 });
    await readerReaches(reader, granted + 2);
    // B = the head, so one lookup only: the one a request after the reorg could wrongly join.
    const query = { handle, owner: ownerBytes, grantee, block: granted + 2 };
    await p2.setMode('hang-calls');
    const before = reader.isGrantedAt(query).then(
      (answer) => String(answer),
      (error: unknown) => (isTkmsError(error) ? error.code : String(error)),
    );
    await testClient.revert({ id: snapshot });
    await testClient.mine({ blocks: 3 }); // the same height, other blocks
    await new Promise((r) => setTimeout(r, 300)); // a few polls: the reorg is seen
    await p2.setMode('pass');
    assert.equal(await reader.isGrantedAt(query), false, 'asked afresh on the new chain: the grant is gone');
    assert.equal(await before, 'unavailable', 'the lookup from before the reorg ended on its own');
  });

  it('a flood of concurrent lookups stays within the in-flight bound, and identical lookups share one RPC call', async () => {
    const reader = await started({ maxInFlight: 8 });
    const block = await chainHead();
    await readerReaches(reader, block);
    const handle = randomHandle();
    const grantees = Array.from({ length: 4 }, randomAddressBytes);

    p1.resetCounts();
    const shared = await Promise.allSettled(Array.from({ length: 400 }, (_, i) => reader.isGrantedAt({ handle, owner: ownerBytes, grantee: grantees[i % grantees.length]!, block })));
    assert.deepEqual(shared.filter((r) => r.status !== 'fulfilled' || r.value !== false).map((r) => (r.status === 'rejected' ? String(r.reason) : r.value)).slice(0, 3), []);
    assert.equal(p1.counts()['eth_call'], 4, '400 lookups of 4 distinct questions: 4 calls');

    await p2.setMode('hang');
    p1.resetCounts();
    const fresh = Array.from({ length: 40 }, randomAddressBytes); // none cached
    const flood = await Promise.allSettled(fresh.map((grantee) => reader.isGrantedAt({ handle, owner: ownerBytes, grantee, block })));
    assert.ok(flood.every((r) => r.status === 'rejected' && isTkmsError(r.reason) && r.reason.code === 'unavailable'));
    assert.ok((p1.counts()['eth_call'] ?? 0) <= 8, `at most 8 lookups reached the RPC, saw ${p1.counts()['eth_call']}`);
    const tooMany = flood.filter((r) => r.status === 'rejected' && /already waiting/.test((r.reason as Error).message)).length;
    assert.equal(tooMany, 32, 'the rest were refused at once');
  });

  it('lists grants from Granted events, newest first, revoked ones with live = false, with their state at the head', async () => {
    const reader = await started({ fromBlock: 0 });
    const handle = randomHandle();
    const [a, b, c] = [randomAddressBytes(), randomAddressBytes(), randomAddressBytes()];
    await grant(handle, a);
    await grant(handle, b);
    const hash = await wallet.writeContract({ address: contract, abi: TKMS_ACL_ABI, functionName: 'revoke', args: [toHex(handle), toHex(b)], chain: null, account: owner });
    await publicClient.waitForTransactionReceipt({ hash, pollingInterval: 20 });
    const last = await grant(handle, c);
    await readerReaches(reader, last);
    const listing = await reader.listGrants(handle, ownerBytes, 10);
    assert.ok(listing.block >= last);
    assert.deepEqual(
      listing.grants.map((g) => [toHex(g.grantee), g.live, g.notAfter === 0]),
      [
        [toHex(c), true, false],
        [toHex(b), false, true],
        [toHex(a), true, false],
      ],
    );
    assert.equal(listing.truncated, false);
    const one = await reader.listGrants(handle, ownerBytes, 1);
    assert.deepEqual([one.grants.length, one.truncated], [1, true], 'bounded by limit, and says so');
    assert.deepEqual(await reader.listGrants(randomHandle(), ownerBytes, 10), { block: listing.block, grants: [], truncated: false });

    p1.resetCounts();
    await reader.listGrants(handle, ownerBytes, 10);
    assert.equal(p1.counts()['eth_getLogs'] ?? 0, 0, 'a listing at the same head is cached');
  });

  it('reads events newest first in block windows back to fromBlock, and stops, truncated, after maxLogWindows windows', async () => {
    const fromBlock = await chainHead();
    const reader = await started({ fromBlock, logWindowBlocks: 100, maxLogWindows: 5 });
    const handle = randomHandle();
    const old = randomAddressBytes();
    await grant(handle, old);
    await testClient.mine({ blocks: 250 });
    const recent = randomAddressBytes();
    const last = await grant(handle, recent);
    await readerReaches(reader, last);
    p1.resetCounts();
    const listing = await reader.listGrants(handle, ownerBytes, 10);
    assert.deepEqual(listing.grants.map((g) => toHex(g.grantee)), [toHex(recent), toHex(old)]);
    assert.equal(listing.truncated, false);
    assert.equal(p1.counts()['eth_getLogs'], Math.ceil((last - fromBlock + 1) / 100), 'one getLogs per window');

    await testClient.mine({ blocks: 500 });
    await readerReaches(reader, last + 500);
    p1.resetCounts();
    const capped = await reader.listGrants(handle, ownerBytes, 10);
    assert.deepEqual([capped.grants.length, capped.truncated], [0, true], 'the grants are older than 5 windows');
    assert.equal(p1.counts()['eth_getLogs'], 5);
  });

  it('listings have their own small concurrency limit: they cannot starve lookups', async () => {
    const reader = await started({ maxInFlight: 4, maxListingsInFlight: 1, fromBlock: 0 });
    const block = await chainHead();
    await readerReaches(reader, block);
    await p2.setMode('hang-logs');
    const listings = Array.from({ length: 20 }, () => reader.listGrants(randomHandle(), ownerBytes, 10).then(
      () => 'listed',
      (error: unknown) => (isTkmsError(error) ? `${error.code}: ${error.message}` : String(error)),
    ));
    const t = performance.now();
    assert.equal(await reader.isGrantedAt({ handle: randomHandle(), owner: ownerBytes, grantee: randomAddressBytes(), block }), false, 'a lookup is answered while listings hang');
    const lookupMs = performance.now() - t;
    const outcomes = await Promise.all(listings);
    assert.equal(outcomes.filter((o) => /already running/.test(o)).length, 19, 'all but one listing refused at once');
    assert.ok(lookupMs < TIMEOUT_MS, `the lookup did not wait for the listings (${lookupMs.toFixed(1)} ms)`);
  });
});
