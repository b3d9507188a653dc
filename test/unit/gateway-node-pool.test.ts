import assert from 'node:assert/strict';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import type { Libp2p } from 'libp2p';
import {
  decodePartialBatchRequest,
  encodePartialBatchReply,
  encodePartialReply,
  PARTIAL_BATCH_PROTOCOL,
  PARTIAL_PROTOCOL,
  TkmsError,
  type PartialRequest,
} from '../../core/index.ts';
import { NodePool } from '../../gateway/node-pool.ts';
import { parseCommittee, type Committee } from '../../net/committee.ts';
import { createLogger } from '../../runtime/logger.ts';
import { createHost, serveFrames } from '../../net/p2p.ts';
import { freePorts, waitFor } from '../support/processes.ts';

/**
 * The gateway's node pool against two stand-in peers on loopback (real libp2p hosts, canned
 * answers): member 1 serves the batched protocol, member 2 only the single-request one, as a node
 * from before batching would. Every request is refused with `revoked`, which the pool reports as
 * a failure per node, so the test sees exactly which node answered what.
 */
const log = createLogger('silent');
const bytes = (n: number, fill: number): Uint8Array => new Uint8Array(n).fill(fill);
const request: PartialRequest = {
  delegation: {
    handle: bytes(32, 1),
    keyId: 'k1',
    requester: bytes(20, 2),
    rsaSpki: bytes(294, 3),
    notBefore: 1_700_000_000,
    notAfter: 1_700_000_300,
    requestId: bytes(16, 4),
    signature: bytes(65, 5),
  },
  descriptor: { keyId: 'k1', K: bytes(33, 2), nonce: bytes(12, 6), ciphertextHash: bytes(32, 7), owner: bytes(20, 8), kProof: bytes(64, 9) },
  grant: undefined,
};
const refusal = { ok: false as const, code: 'revoked' as const, message: 'revoked by the owner' };

describe('gateway node pool: batched partial requests', function () {
  this.timeout(30_000);
  const hosts: Libp2p[] = [];
  let pool: NodePool | undefined;
  let committee: Committee;
  const seen = { batchFrames: [] as number[], singleFrames: 0 };
  let failEverySecondSingle = false;

  before(async () => {
    const keys = await Promise.all([1, 2].map(() => generateKeyPair('Ed25519')));
    const ports = await freePorts(2);
    committee = parseCommittee({
      committeeId: 'pool-test',
      t: 1,
      members: keys.map((k, i) => ({ id: i + 1, peerId: peerIdFromPrivateKey(k).toString(), multiaddrs: [`/ip4/127.0.0.1/tcp/${ports[i]}`] })),
    });
    for (const [i, privateKey] of keys.entries()) {
      const host = await createHost({ privateKey }, [`/ip4/127.0.0.1/tcp/${ports[i]}`], committee);
      const opts = { maxRequestBytes: 1 << 20, timeoutMs: 5_000, log };
      await serveFrames(
        host,
        PARTIAL_PROTOCOL,
        async () => {
          seen.singleFrames++;
          if (failEverySecondSingle && seen.singleFrames % 2 === 0) throw new Error('stream dies');
          return encodePartialReply(refusal);
        },
        opts,
      );
      if (i === 0) {
        await serveFrames(
          host,
          PARTIAL_BATCH_PROTOCOL,
          async (_peer, body) => {
            const items = decodePartialBatchRequest(body);
            seen.batchFrames.push(items.length);
            // Give concurrent requests time to queue behind this frame.
            await new Promise((r) => setTimeout(r, 20));
            return encodePartialBatchReply({ ok: true, replies: items.map((item) => (item instanceof TkmsError ? { ok: false, code: item.code, message: item.message } : refusal)) });
          },
          opts,
        );
      }
      await host.start();
      hosts.push(host);
    }
    pool = await NodePool.start(committee, log);
    await waitFor('the pool to connect to both members', () => (pool!.connectedMembers().length === 2 ? true : undefined), { timeoutMs: 15_000 });
  });

  after(async () => {
    await pool?.stop();
    await Promise.all(hosts.map((h) => h.stop()));
  });

  const ask = (exclude: number[]) => pool!.requestPartials(request, { t: 1, exclude: new Set(exclude), timeoutMs: 5_000, hedgeDelayMs: 0 });

  it('concurrent requests to a busy node leave in fewer, fuller frames, each answered as its own', async () => {
    const results = await Promise.all(Array.from({ length: 12 }, () => ask([2])));
    for (const r of results) {
      assert.equal(r.answers.length, 0);
      assert.deepEqual(
        r.failures.map((f) => [f.nodeId, f.code]),
        [[1, 'revoked']],
      );
    }
    assert.equal(
      seen.batchFrames.reduce((a, b) => a + b, 0),
      12,
      `frames: ${seen.batchFrames.join(', ')}`,
    );
    assert.ok(seen.batchFrames.length < 12 && Math.max(...seen.batchFrames) > 1, `expected batching, frames: ${seen.batchFrames.join(', ')}`);
    assert.equal(seen.singleFrames, 0);
  });

  it('a node without the batched protocol gets one request per frame; one failed frame fails only its request', async () => {
    const before = seen.batchFrames.length;
    const first = await Promise.all(Array.from({ length: 4 }, () => ask([1])));
    for (const r of first) assert.deepEqual(r.failures.map((f) => [f.nodeId, f.code]), [[2, 'revoked']]);
    assert.equal(seen.singleFrames, 4);
    failEverySecondSingle = true;
    try {
      const mixed = await Promise.all(Array.from({ length: 6 }, () => ask([1])));
      const codes = mixed.map((r) => r.failures.map((f) => f.code).join(','));
      for (const r of mixed) assert.equal(r.failures.length, 1, 'each request got its own outcome');
      // Frames 5 to 10 reach member 2 and every second one dies: exactly three requests fail, and
      // only they (a shared fate would fail all five that queued behind the first).
      assert.deepEqual([...codes].sort(), ['revoked', 'revoked', 'revoked', 'unavailable', 'unavailable', 'unavailable'], codes.join(' / '));
    } finally {
      failEverySecondSingle = false;
    }
    assert.equal(seen.batchFrames.length, before, 'no batch frame reached member 1');
  });
});
