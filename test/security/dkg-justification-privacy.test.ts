import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Libp2p } from 'libp2p';
import { bytesToNumberBE } from '@noble/curves/utils.js';
import { bytesToHex } from '../../core/bytes.ts';
import { CURVE_ORDER, decodePoint, G, mod, type Point } from '../../core/curve.ts';
import { interpolateSecret } from '../../core/shamir.ts';
import { decodeDkgMessage } from '../../core/dkg/index.ts';
import { evaluateCommitments } from '../../core/dkg/frost.ts';
import { loadCommitteeFile } from '../../net/committee.ts';
import { createLogger } from '../../runtime/logger.ts';
import { createHost, serveFrames } from '../../net/p2p.ts';
import { DKG_PROTOCOL, decodeDkgFrame, encodeDkgReply, MAX_DKG_FRAME_BYTES } from '../../node/dkg-wire.ts';
import { loadIdentityFile } from '../../node/identity.ts';
import { Keystore } from '../../node/keystore.ts';
import { runDkg } from '../unit/dkg-harness.ts';
import { CLUSTER_PASSWORD, getJson, makeTempDir, NodeCluster, removeDir, waitFor } from '../support/processes.ts';

/**
 * Finding 10(a): a complaint about a missing share made the dealer publish that share to every
 * member. A member that complains against every dealer (a slow one that missed its shares, or one
 * that says so) had every dealer's share for it published, and an observer of the DKG messages —
 * any other member — added them up to its final share. Justifications are now sealed to a key
 * in the complainer's complaints message; these tests look, in every byte of every message an
 * observer gets, for any share addressed to the complainer.
 */
const N = 5;
const T = 3;
const COMPLAINER = 4;
const OBSERVER = 5;
const LIMITS = { t: T, n: N };
/** Message types (byte 1) that carry only public points, hashes and signatures: round 1, echo, confirm. */
const PUBLIC_ONLY_TYPES = new Set([1, 2, 6]);

/** f_d(x)·G for every dealer whose round-1 package is among the payloads. */
function shareImages(payloads: readonly Uint8Array[], x: number, limits: { t: number; n: number }): Map<number, Point> {
  const images = new Map<number, Point>();
  for (const payload of payloads) {
    if (payload[1] !== 1) continue;
    const m = decodeDkgMessage(payload, limits);
    if (m.kind === 'round1') images.set(m.dealer, evaluateCommitments(m.commitments, x));
  }
  return images;
}

/** Every (dealer, share) whose share for member x appears in the clear, at any offset, in any payload. */
function sharesInTheClear(payloads: readonly Uint8Array[], images: ReadonlyMap<number, Point>): Map<number, bigint> {
  const found = new Map<number, bigint>();
  const byImage = new Map([...images].map(([dealer, p]) => [bytesToHex(p.toBytes(true)), dealer]));
  const seen = new Set<string>();
  for (const payload of payloads) {
    if (PUBLIC_ONLY_TYPES.has(payload[1]!)) continue;
    for (let i = 0; i + 32 <= payload.length; i++) {
      const window = payload.subarray(i, i + 32);
      const key = bytesToHex(window);
      if (seen.has(key)) continue;
      seen.add(key);
      const v = bytesToNumberBE(window);
      if (v === 0n || v >= CURVE_ORDER) continue;
      const dealer = byImage.get(bytesToHex(G.multiply(v).toBytes(true)));
      if (dealer !== undefined) found.set(dealer, v);
    }
  }
  return found;
}

/** Member OBSERVER's identity, served by this test process: it records every DKG payload and deals nothing. */
class Observer {
  readonly payloads: Uint8Array[] = [];
  private constructor(private readonly libp2p: Libp2p) {}

  static async start(cluster: NodeCluster, root: string): Promise<Observer> {
    const node = cluster.node(OBSERVER);
    const identity = await loadIdentityFile(join(node.dir, 'identity.json'));
    const committee = await loadCommitteeFile(join(root, 'committee.json'));
    const libp2p = await createHost(identity, [`/ip4/127.0.0.1/tcp/${node.p2pPort}`], committee);
    await libp2p.start();
    const observer = new Observer(libp2p);
    await serveFrames(
      libp2p,
      DKG_PROTOCOL,
      async (_peer, body) => {
        const frame = decodeDkgFrame(body);
        if (frame.type === 'payload') observer.payloads.push(frame.payload);
        return encodeDkgReply({ ok: true });
      },
      { maxRequestBytes: MAX_DKG_FRAME_BYTES, timeoutMs: 10_000, log: createLogger('silent') },
    );
    return observer;
  }

  async stop(): Promise<void> {
    await this.libp2p.stop();
  }
}

describe('attack: a member complains against every dealer so that its whole final share is published', function () {
  this.timeout(180_000);
  let root: string | undefined;
  let cluster: NodeCluster | undefined;
  let observer: Observer | undefined;

  before(async () => {
    root = await makeTempDir('tkms-dkg-justification-privacy');
    cluster = await NodeCluster.prepare({
      n: N,
      t: T,
      rootDir: root,
      phaseTimeoutMs: 3_000,
      faults: { [COMPLAINER]: { falseComplaintAgainst: [1, 2, 3] } },
    });
    observer = await Observer.start(cluster, root);
    await cluster.startAll([1, 2, 3, 4]);
    await cluster.waitHealthy([1, 2, 3, 4]);
    await waitFor(
      'a full mesh with the observer',
      async () => ((await Promise.all([1, 2, 3, 4].map((id) => getJson(`${cluster!.node(id).httpUrl}/health`)))).every((h) => h.json.peersConnected === N - 1) ? true : undefined),
      { timeoutMs: 30_000 },
    );
  });

  after(async () => {
    await cluster?.stopAll();
    await observer?.stop();
    await removeDir(root);
  });

  /** Proposes a DKG on node 1 and returns every real node's final status. */
  async function runKey(keyId: string): Promise<Map<number, any>> {
    const c = cluster!;
    const res = await getJson(`${c.node(1).adminUrl}/admin/dkg`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ keyId }) });
    assert.equal(res.status, 202, JSON.stringify(res.json));
    const statuses = new Map<number, any>();
    for (const id of [1, 2, 3, 4]) {
      statuses.set(
        id,
        await waitFor(
          `DKG outcome on node ${id}`,
          async () => {
            const r = await getJson(`${c.node(id).adminUrl}/admin/dkg/${keyId}`);
            return r.status === 200 && r.json.status !== 'running' ? r.json : undefined;
          },
          { timeoutMs: 120_000, intervalMs: 200 },
        ),
      );
    }
    return statuses;
  }

  it('real nodes: every dealer answers, the DKG completes, and no message carries a share for the complainer', async () => {
    const c = cluster!;
    assert.match(c.node(COMPLAINER).process!.stdout, /TEST FAULTS ENABLED/);
    const statuses = await runKey('complainer');
    const result = statuses.get(1).result;
    for (const id of [1, 2, 3, 4]) {
      const s = statuses.get(id);
      assert.equal(s.status, 'done', `node ${id}: ${s.abortReason}`);
      assert.equal(s.result.transcriptHash, result.transcriptHash, `node ${id} agrees`);
    }
    // The complaints were answered: no dealer lost its place over them (the observer dealt nothing).
    assert.deepEqual(result.qualified, [1, 2, 3, 4]);

    // The complainer's share is correct: it matches Y_4 and interpolates with the others' to the group key.
    const shares = new Map<number, bigint>();
    for (const id of [1, 2, 3, 4]) {
      const keystore = await Keystore.open(c.node(id).keystoreDir, CLUSTER_PASSWORD);
      try {
        shares.set(id, (await keystore.load('complainer')).share);
      } finally {
        keystore.close();
      }
      assert.ok(G.multiply(shares.get(id)!).equals(decodePoint(result.verificationShares[String(id)])), `node ${id} share matches Y_${id}`);
    }
    const group = decodePoint(result.groupPublicKey);
    for (const ids of [[1, 2, 4], [2, 3, 4], [1, 3, 4]]) {
      assert.ok(G.multiply(interpolateSecret(ids.map((id) => ({ id, value: shares.get(id)! })))).equals(group), `shares of ${ids} interpolate to the group key`);
    }

    // What the observer (member 5) saw: the three answers went to everyone ...
    const payloads = observer!.payloads;
    const answers = payloads.filter((p) => p[1] === 5);
    assert.ok(answers.length >= 3, `the observer saw ${answers.length} justifications`);
    // ... yet no share addressed to the complainer appears in the clear anywhere.
    const images = shareImages(payloads, COMPLAINER, LIMITS);
    assert.deepEqual([...images.keys()].sort(), [1, 2, 3, 4]);
    const revealed = sharesInTheClear(payloads, images);
    assert.deepEqual([...revealed.keys()], [], `the observer read the complainer's shares from dealers ${[...revealed.keys()].join(', ')} in ${payloads.length} messages`);
    const sum = [...revealed.values()].reduce((a, b) => mod(a + b), 0n);
    assert.notEqual(sum, shares.get(COMPLAINER));
  });

  it('real nodes: a bad sealed answer is disqualified everywhere on the complainer’s evidence; false evidence leaves the honest dealer in', async () => {
    const c = cluster!;
    // Node 3 now sends node 1 no share and answers its complaint with one that does not match;
    // node 2 complains against the honest dealer 4 and publishes false evidence against its answer.
    const faults: Record<number, Record<string, unknown>> = { 2: { falseEvidenceAgainst: [4] }, 3: { badJustificationTo: [1] } };
    await Promise.all(
      Object.entries(faults).map(async ([id, f]) => {
        const node = c.node(Number(id));
        const config = JSON.parse(await readFile(node.configPath, 'utf8')) as Record<string, unknown>;
        await writeFile(node.configPath, JSON.stringify({ ...config, testFaults: f }, null, 2));
        await node.process!.stop('SIGTERM');
        await c.start(Number(id), { TKMS_ENABLE_TEST_FAULTS: '1' });
      }),
    );
    await waitFor(
      'a full mesh again',
      async () => ((await Promise.all([1, 2, 3, 4].map((id) => getJson(`${c.node(id).httpUrl}/health`)))).every((h) => h.json.peersConnected === N - 1) ? true : undefined),
      { timeoutMs: 30_000 },
    );
    const before = observer!.payloads.length;
    const statuses = await runKey('disputes');
    for (const id of [1, 2, 4]) {
      const s = statuses.get(id);
      assert.equal(s.status, 'done', `node ${id}: ${s.abortReason}`);
      assert.equal(s.result.transcriptHash, statuses.get(1).result.transcriptHash, `node ${id} agrees`);
      assert.match(s.disqualified['3'] ?? '', /answered the complaint of member 1 with a share that does not match/, `node ${id}: ${JSON.stringify(s.disqualified)}`);
      assert.ok(!('4' in s.disqualified), `node ${id} disqualified the honest dealer 4: ${s.disqualified['4']}`);
    }
    assert.deepEqual(statuses.get(1).result.qualified, [1, 2, 4]);
    // Both disputes went to every member, the observer included: node 1's evidence and node 2's.
    const evidenceFrom = observer!.payloads
      .slice(before)
      .filter((p) => p[1] === 7 && p[6] === 1)
      .map((p) => (p[2]! << 8) | p[3]!);
    assert.deepEqual([...new Set(evidenceFrom)].sort(), [1, 2]);
  });

  it('a member whose dealing is excluded and that got no share: what the others see never adds up to its final share', () => {
    // No share reaches member 5, so it complains against all four dealers; its own dealing is
    // excluded (here it signed two round-1 packages; a member whose package came too late is
    // excluded the same way), so its final share is exactly the sum of their shares for it.
    const run = runDkg({
      t: T,
      n: N,
      seed: 13,
      faults: { 5: { equivocateRound1: [1, 2, 3, 4] } },
      filter: (e) => !(e.to === 5 && e.payload[1] === 3),
    });
    const slow = run.sessions.get(5)!;
    assert.equal(slow.phase, 'done', slow.abortReason);
    const result = slow.result!;
    assert.deepEqual(result.qualified, [1, 2, 3, 4]);
    const share = slow.takeShare();
    assert.ok(G.multiply(share).equals(decodePoint(result.verificationShares['5']!)));
    for (const id of [1, 2, 3, 4]) assert.equal(run.sessions.get(id)!.result?.transcriptHash, result.transcriptHash, `member ${id} agrees`);

    // Everything delivered to members other than 5: the union of what the other members saw.
    const seenByOthers = run.delivered.filter((e) => e.to !== 5).map((e) => e.payload);
    assert.ok(seenByOthers.some((p) => p[1] === 5), 'the dealers answered in public');
    const images = shareImages(seenByOthers, 5, LIMITS);
    const revealed = sharesInTheClear(seenByOthers, images);
    assert.deepEqual([...revealed.keys()], [], `shares for member 5 from dealers ${[...revealed.keys()].join(', ')} were published`);
    assert.notEqual([...revealed.values()].reduce((a, b) => mod(a + b), 0n), share, 'the published shares add up to member 5’s final share');
  });
});
