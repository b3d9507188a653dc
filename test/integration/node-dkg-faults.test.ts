import assert from 'node:assert/strict';
import { getJson, makeTempDir, NodeCluster, removeDir, runTkms, waitFor } from '../support/processes.ts';

/**
 * Misbehaving members (test faults, enabled per process with TKMS_ENABLE_TEST_FAULTS=1):
 * node 4 stays silent after the proposal, node 5 seals a bad sub-share to node 1. Node 1's public
 * complaint (its pair key with a DLEQ proof) lets every member open the sub-share and see it is bad.
 * Scenarios: test/integration/dkg-scenarios.md.
 */
describe('node daemon: DKG with faulty and missing members (5 processes, t = 3)', function () {
  this.timeout(180_000);
  let root: string | undefined;
  let cluster: NodeCluster | undefined;

  before(async () => {
    root = await makeTempDir('tkms-node-faults');
    cluster = await NodeCluster.prepare({
      n: 5,
      t: 3,
      rootDir: root,
      // φ: the abort below waits out every attempt (2φ + 3φ·n).
      phaseTimeoutMs: 2_000,
      faults: { 4: { silent: true }, 5: { badSubShareTo: [1] } },
    });
    await cluster.startAll();
    await cluster.waitHealthy([1, 2, 3, 4, 5]);
  });

  after(async () => {
    await cluster?.stopAll();
    await removeDir(root);
  });

  it('warns loudly when test faults are enabled', () => {
    for (const id of [4, 5]) assert.match(cluster!.node(id).process!.stdout, /TEST FAULTS ENABLED/);
    assert.doesNotMatch(cluster!.node(1).process!.stdout, /TEST FAULTS ENABLED/);
  });

  it('disqualifies the bad sub-share dealer on its victim’s public complaint, goes on without the silent member, and completes', async () => {
    const out = await runTkms(['dkg', 'start', '--key', 'faulty', '--admin', cluster!.node(2).adminUrl, '--json'], { timeoutMs: 90_000 });
    assert.equal(out.code, 0, `tkms dkg start failed: ${out.stderr}`);
    const results = [];
    for (const id of [1, 2, 3]) {
      const status = await waitFor(
        `outcome on node ${id}`,
        async () => {
          const res = await getJson(`${cluster!.node(id).adminUrl}/admin/dkg/faulty`);
          return res.status === 200 && res.json.status !== 'running' ? res.json : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 200 },
      );
      assert.equal(status.status, 'done', `node ${id}: ${status.abortReason}`);
      assert.ok('5' in status.disqualified, `node ${id} disqualified the bad dealer: ${JSON.stringify(status.disqualified)}`);
      assert.ok(!('1' in status.disqualified) && !('2' in status.disqualified) && !('3' in status.disqualified));
      results.push(status.result);
    }
    const qualified: number[] = results[0].qualified;
    assert.ok(!qualified.includes(5), 'the bad dealer is not in the qualified set');
    assert.ok(!qualified.includes(4), 'the silent member is not in the qualified set');
    assert.deepEqual(qualified, [1, 2, 3]);
    for (const r of results) {
      assert.equal(r.groupPublicKey, results[0].groupPublicKey);
      assert.equal(r.transcriptHash, results[0].transcriptHash);
    }
  });

  it('with only t − 1 live members no vote quorum forms: the DKG aborts with a clear reason, and /health is 503', async () => {
    await Promise.all([3, 4, 5].map((id) => cluster!.node(id).process!.stop('SIGTERM')));
    await waitFor('node 1 to notice the others left', async () => ((await getJson(`${cluster!.node(1).httpUrl}/health`)).status === 503 ? true : undefined), {
      timeoutMs: 20_000,
    });
    const health = await getJson(`${cluster!.node(1).httpUrl}/health`);
    assert.equal(health.json.status, 'not_ready');
    assert.deepEqual(health.json.peers, [2]);
    const out = await runTkms(['dkg', 'start', '--key', 'lonely', '--admin', cluster!.node(1).adminUrl], { timeoutMs: 90_000 });
    assert.equal(out.code, 1, `expected an abort, got: ${out.stdout} ${out.stderr}`);
    assert.match(out.stderr, /aborted/);
    const status = await getJson(`${cluster!.node(1).adminUrl}/admin/dkg/lonely`);
    assert.equal(status.json.status, 'aborted');
    assert.match(status.json.abortReason, /no certificate/i);
    console.log(`      abort reason: ${status.json.abortReason}`);
    const metrics = await (await fetch(`${cluster!.node(1).httpUrl}/metrics`)).text();
    assert.match(metrics, /^tkms_dkg_sessions_total\{outcome="aborted"\} 1$/m);
    assert.match(metrics, /^tkms_dkg_sessions_total\{outcome="done"\} 1$/m);
  });
});
