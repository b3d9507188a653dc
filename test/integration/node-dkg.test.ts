import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodePoint, G, interpolateSecret, type ScalarShare } from '../../core/index.ts';
import { Keystore } from '../../node/keystore.ts';
import { CLUSTER_PASSWORD, getJson, makeTempDir, NodeCluster, removeDir, runTkms, waitFor } from '../support/processes.ts';

const N = 5;
const T = 3;
const ALL = [1, 2, 3, 4, 5];

async function dkgOutcome(cluster: NodeCluster, id: number, keyId: string): Promise<any> {
  return waitFor(
    `DKG outcome of ${keyId} on node ${id}`,
    async () => {
      const res = await getJson(`${cluster.node(id).adminUrl}/admin/dkg/${keyId}`);
      return res.status === 200 && res.json.status !== 'running' ? res.json : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 200 },
  );
}

describe('node daemon: DKG over libp2p with 5 real processes (t = 3)', function () {
  this.timeout(180_000);
  let root: string | undefined;
  let cluster: NodeCluster | undefined;
  const results = new Map<number, any>();

  before(async () => {
    root = await makeTempDir('tkms-node-dkg');
    cluster = await NodeCluster.prepare({ n: N, t: T, rootDir: root, phaseTimeoutMs: 4_000 });
    await cluster.startAll();
    await cluster.waitHealthy(ALL);
  });

  after(async () => {
    await cluster?.stopAll();
    await removeDir(root);
  });

  it('reports ready on /health once it sees t − 1 peers, and serves Prometheus metrics', async () => {
    const health = await getJson(`${cluster!.node(1).httpUrl}/health`);
    assert.equal(health.status, 200);
    assert.equal(health.json.status, 'ready');
    assert.ok(health.json.peersConnected >= T - 1);
    assert.deepEqual(health.json.keys, []);
    const res = await fetch(`${cluster!.node(1).httpUrl}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
    const text = await res.text();
    assert.match(text, /^# TYPE tkms_peers_connected gauge$/m);
    assert.match(text, /^tkms_peers_connected [1-9]/m);
    assert.match(text, /^# TYPE tkms_node_process_cpu_user_seconds_total counter$/m);
  });

  it('`tkms dkg start` runs a DKG; every node ends with the same public result', async () => {
    const started = Date.now();
    const out = await runTkms(['dkg', 'start', '--key', 'alpha', '--admin', cluster!.node(1).adminUrl, '--json'], { timeoutMs: 90_000 });
    assert.equal(out.code, 0, `tkms dkg start failed: ${out.stderr}`);
    const outcome = JSON.parse(out.stdout);
    assert.equal(outcome.status, 'done');
    console.log(`      DKG n=${N} t=${T} on loopback: ${outcome.durationMs} ms on the proposer, ${Date.now() - started} ms CLI wall time`);
    for (const id of ALL) results.set(id, (await dkgOutcome(cluster!, id, 'alpha')).result);
    const first = results.get(1);
    assert.equal(first.t, T);
    assert.equal(first.n, N);
    assert.deepEqual(first.qualified, ALL);
    assert.deepEqual(Object.keys(first.verificationShares).sort(), ALL.map(String));
    for (const id of ALL) {
      const r = results.get(id);
      assert.equal(r.groupPublicKey, first.groupPublicKey, `node ${id} group key`);
      assert.deepEqual(r.verificationShares, first.verificationShares, `node ${id} verification shares`);
      assert.equal(r.transcriptHash, first.transcriptHash, `node ${id} transcript hash`);
    }
    const keys = await getJson(`${cluster!.node(3).adminUrl}/admin/keys`);
    assert.deepEqual(keys.json.keys.map((k: { keyId: string }) => k.keyId), ['alpha']);
    const health = await getJson(`${cluster!.node(2).httpUrl}/health`);
    assert.deepEqual(health.json.keys, ['alpha']);
    // Every member sent its dealing to each other member at least once; a vote goes first to the proposal's author alone.
    const metrics = await (await fetch(`${cluster!.node(2).httpUrl}/metrics`)).text();
    const sent = (kind: string) => Number(new RegExp(`^tkms_ceremony_frames_sent_total\\{ceremony="dkg",kind="${kind}",cause="first"\\} (\\d+)$`, 'm').exec(metrics)?.[1] ?? 0);
    assert.ok(sent('dealing') >= N - 1, `dealing frames sent: ${sent('dealing')}`);
    assert.ok(sent('hello') >= N - 1, `hello frames sent: ${sent('hello')}`);
  });

  it('the shares in the keystores interpolate to the discrete log of the group key', async () => {
    const shares: ScalarShare[] = [];
    for (const id of ALL) {
      const keystore = await Keystore.open(cluster!.node(id).keystoreDir, CLUSTER_PASSWORD);
      const stored = await keystore.load('alpha');
      assert.equal(stored.publicResult.groupPublicKey, results.get(1).groupPublicKey);
      const y = decodePoint(results.get(1).verificationShares[String(id)]);
      assert.ok(G.multiply(stored.share).equals(y), `share of node ${id} matches Y_${id}`);
      shares.push({ id, value: stored.share });
    }
    const groupKey = decodePoint(results.get(1).groupPublicKey);
    const secretA = interpolateSecret(shares.slice(0, T));
    const secretB = interpolateSecret(shares.slice(N - T));
    assert.equal(secretA, secretB);
    assert.ok(G.multiply(secretA).equals(groupKey), 'G·secret equals the group public key');
    assert.ok(!G.multiply(interpolateSecret(shares.slice(0, T - 1))).equals(groupKey), 't − 1 shares do not give the key');
  });

  it('refuses a second DKG for an existing key id', async () => {
    const res = await getJson(`${cluster!.node(2).adminUrl}/admin/dkg`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ keyId: 'alpha' }),
    });
    assert.equal(res.status, 409);
    assert.equal(res.json.error.code, 'conflict');
    const out = await runTkms(['dkg', 'start', '--key', 'alpha', '--admin', cluster!.node(4).adminUrl], { timeoutMs: 30_000 });
    assert.notEqual(out.code, 0);
    assert.match(out.stderr, /already exists/);
    const bad = await getJson(`${cluster!.node(2).adminUrl}/admin/dkg`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ keyId: '../etc' }) });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.code, 'bad_key_id');
    const extra = await getJson(`${cluster!.node(2).adminUrl}/admin/dkg`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ keyId: 'beta', t: 1 }) });
    assert.equal(extra.status, 400);
    assert.equal(extra.json.error.code, 'bad_request');
    // The admin API takes JSON only, like the gateway's.
    const text = await getJson(`${cluster!.node(2).adminUrl}/admin/dkg`, { method: 'POST', body: JSON.stringify({ keyId: 'beta' }) });
    assert.equal(text.status, 415);
    assert.equal(text.json.error.code, 'unsupported_media_type');
  });

  it('after kill -9 and restart a node loads its share and reports the same public key', async () => {
    const exit = await cluster!.node(3).process!.stop('SIGKILL');
    assert.equal(exit.signal, 'SIGKILL');
    await cluster!.start(3);
    await cluster!.waitHealthy([3]);
    const keys = await getJson(`${cluster!.node(3).adminUrl}/admin/keys`);
    assert.equal(keys.status, 200);
    assert.equal(keys.json.keys[0].groupPublicKey, results.get(1).groupPublicKey);
    assert.deepEqual(keys.json.keys[0].verificationShares, results.get(1).verificationShares);
    // The others redial the restarted node.
    await waitFor('node 1 to reconnect to node 3', async () => ((await getJson(`${cluster!.node(1).httpUrl}/health`)).json.peers.includes(3) ? true : undefined), {
      timeoutMs: 20_000,
    });
    // No log line of any node carries the share.
    const keystore = await Keystore.open(cluster!.node(3).keystoreDir, CLUSTER_PASSWORD);
    const shareHex = (await keystore.load('alpha')).share.toString(16);
    for (const node of cluster!.nodes) {
      assert.ok(!node.process!.stdout.includes(shareHex), `node ${node.id} logs must not contain a share`);
      assert.ok(!node.process!.stdout.includes(CLUSTER_PASSWORD), `node ${node.id} logs must not contain the password`);
    }
  });

  it('a wrong keystore password or a corrupt keystore makes the daemon exit non-zero with a clear message', async () => {
    await cluster!.node(5).process!.stop('SIGTERM');
    const wrong = await cluster!.start(5, { TKMS_KEYSTORE_PASSWORD: 'not-the-password' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(wrong instanceof Error, 'the node must not start with a wrong password');
    const proc = cluster!.node(5).process!;
    const exit = await proc.exited;
    assert.notEqual(exit.code, 0);
    assert.match(proc.stderr, /keystore_locked/);
    assert.match(proc.stderr, /password/i);

    await writeFile(join(cluster!.node(5).keystoreDir, 'keystore.json'), '{"garbage": true}');
    await cluster!.start(5).catch(() => undefined);
    const corrupt = cluster!.node(5).process!;
    assert.notEqual((await corrupt.exited).code, 0);
    assert.match(corrupt.stderr, /keystore_corrupt/);
  });
});
