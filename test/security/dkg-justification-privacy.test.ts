import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Libp2p } from 'libp2p';
import { bytesToNumberBE } from '@noble/curves/utils.js';
import { bytesToHex } from '../../core/bytes.ts';
import { CURVE_ORDER, decodePoint, G, mod, type Point } from '../../core/curve.ts';
import { interpolateSecret } from '../../core/shamir.ts';
import { ceremonyMessageKind, decodeCeremonyMessage, type CeremonyShape } from '../../core/ceremony/codec.ts';
import { commitmentAt } from '../../core/ceremony/dealing.ts';
import { loadCommitteeFile } from '../../net/committee.ts';
import { createLogger } from '../../runtime/logger.ts';
import { createHost, serveFrames } from '../../net/p2p.ts';
import { DKG_PROTOCOL, decodeDkgFrame, MAX_DKG_FRAME_BYTES } from '../../node/dkg-wire.ts';
import { encodeCeremonyReply } from '../../node/reshare-wire.ts';
import { loadIdentityFile } from '../../node/identity.ts';
import { Keystore } from '../../node/keystore.ts';
import { CLUSTER_PASSWORD, getJson, makeTempDir, NodeCluster, removeDir, waitFor } from '../support/processes.ts';

/**
 * Finding 10(a): under the DKG before the ceremony framework, a complaint about a missing share made
 * the dealer publish that share, and an observer added up the shares of a member that complained
 * against every dealer to its final share. Now every sub-share travels sealed inside its dealer's
 * signed dealing, and a complaint reveals the complainer's pair key K = e·D with a DLEQ proof, so
 * the sub-share it opens is public only when the complaint holds (the dealer is out, the value is
 * worthless). This test looks, in every byte of every distinct message an observer member gets, for
 * any sub-share addressed to a member that complains against every other dealer.
 * The other scenarios of this file (bad sealed answers, false evidence, a member with no shares
 * whose sealed answers added up) attacked phases that no longer exist: test/integration/dkg-scenarios.md.
 */
const N = 5;
const T = 3;
const COMPLAINER = 4;
const OBSERVER = 5;
const SHAPE: CeremonyShape = { family: 'dkg', n: N, t: T, nTo: N, tTo: T, keys: 1, maxAttempts: N };

/** Distinct messages of the kinds that carry anything not public by construction (proposals and certificates only copy them). */
function ownMessages(payloads: readonly Uint8Array[]): Uint8Array[] {
  const byHex = new Map<string, Uint8Array>();
  for (const p of payloads) if (['dealing', 'complaint', 'hello'].includes(ceremonyMessageKind(p)?.kind ?? '')) byHex.set(bytesToHex(p), p);
  return [...byHex.values()];
}

/** g_d(x)·G for every dealer whose dealing is among the payloads. */
function subShareImages(payloads: readonly Uint8Array[], x: number): Map<number, Point> {
  const images = new Map<number, Point>();
  for (const payload of payloads) {
    if (ceremonyMessageKind(payload)?.kind !== 'dealing') continue;
    const body = decodeCeremonyMessage(payload, SHAPE).body;
    if (body.kind === 'dealing') images.set(body.author, commitmentAt(body.keys[0]!.commitments.map((c) => decodePoint(c)), x)!);
  }
  return images;
}

/** Every (dealer, sub-share) whose sub-share for member x appears in the clear, at any offset, in any payload. */
function subSharesInTheClear(payloads: readonly Uint8Array[], images: ReadonlyMap<number, Point>): Map<number, bigint> {
  const found = new Map<number, bigint>();
  const byImage = new Map([...images].map(([dealer, p]) => [bytesToHex(p.toBytes(true)), dealer]));
  const seen = new Set<string>();
  for (const payload of payloads) {
    for (let i = 0; i + 32 <= payload.length; i++) {
      const window = payload.subarray(i, i + 32);
      const key = bytesToHex(window);
      if (seen.has(key)) continue;
      seen.add(key);
      const v = bytesToNumberBE(window);
      if (v === 0n || v >= CURVE_ORDER) continue;
      const dealer = byImage.get(bytesToHex(G.multiplyUnsafe(v).toBytes(true)));
      if (dealer !== undefined) found.set(dealer, v);
    }
  }
  return found;
}

/** Member OBSERVER's identity, served by this test process: it records every DKG payload and takes part in nothing. */
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
        return encodeCeremonyReply({ ok: true });
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
      phaseTimeoutMs: 2_000,
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

  it('real nodes: the false complaints frame no dealer, the DKG completes, and no message carries a sub-share for the complainer', async () => {
    const c = cluster!;
    assert.match(c.node(COMPLAINER).process!.stdout, /TEST FAULTS ENABLED/);
    const statuses = await runKey('complainer');
    const result = statuses.get(1).result;
    for (const id of [1, 2, 3, 4]) {
      const s = statuses.get(id);
      assert.equal(s.status, 'done', `node ${id}: ${s.abortReason}`);
      assert.equal(s.result.transcriptHash, result.transcriptHash, `node ${id} agrees`);
    }
    // The complaints did not hold: no accused dealer lost its place (the observer dealt nothing).
    for (const dealer of [1, 2, 3]) assert.ok(result.qualified.includes(dealer), `dealer ${dealer} is in: ${JSON.stringify(result.qualified)}`);

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

    // What the observer (member 5) saw: the complaints went to everyone ...
    const payloads = ownMessages(observer!.payloads);
    const complaints = payloads.filter((p) => ceremonyMessageKind(p)?.kind === 'complaint');
    assert.ok(complaints.length >= 3, `the observer saw ${complaints.length} complaints`);
    // ... yet no sub-share addressed to the complainer appears in the clear anywhere.
    const images = subShareImages(payloads, COMPLAINER);
    for (const dealer of [1, 2, 3]) assert.ok(images.has(dealer), `the observer holds dealer ${dealer}'s dealing`);
    const revealed = subSharesInTheClear(payloads, images);
    assert.deepEqual([...revealed.keys()], [], `the observer read the complainer's sub-shares from dealers ${[...revealed.keys()].join(', ')} in ${payloads.length} messages`);
    assert.notEqual([...revealed.values()].reduce((a, b) => mod(a + b), 0n), shares.get(COMPLAINER));
  });
});
