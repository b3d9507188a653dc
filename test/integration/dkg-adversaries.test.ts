import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { decodePoint, G, interpolateSecret, publicKeyFromSecret } from '../../core/index.ts';
import { Keystore } from '../../node/keystore.ts';
import { findSecrets, nodeSecrets, type LogText } from '../support/log-secrets.ts';
import { CLUSTER_PASSWORD, getJson, makeTempDir, NodeCluster, removeDir, waitFor, type ManagedProcess } from '../support/processes.ts';

/**
 * DKG adversaries end to end, with real node processes over libp2p (test faults, enabled per
 * process with TKMS_ENABLE_TEST_FAULTS=1). node-dkg-faults.test.ts already covers a silent member
 * and a bad sub-share to ONE member; this file adds, in one DKG of a 3-of-5 committee:
 *   - node 5 equivocates its dealing (signs two different dealings, each to part of the committee),
 *   - node 4 seals bad sub-shares to a subset (members 2 and 3),
 *   - node 3 falsely complains against the honest dealer 1 (its DLEQ proof cannot hold: K is fixed
 *     by E_3 and D_1, so it opens the sub-share dealer 1 sealed, which verifies),
 * and, in a second DKG with every member honest, a member (node 5) that said hello and dealt, then
 * disappears (SIGKILL) as the agreement starts.
 * In both, the DKG must complete with the honest dealers, and every honest member must agree:
 * same group key, same verification shares, same transcript hash, and shares that interpolate
 * to the group key. Scenarios: test/integration/dkg-scenarios.md.
 */
const N = 5;
const T = 3;

async function outcome(cluster: NodeCluster, id: number, keyId: string): Promise<any> {
  return waitFor(
    `DKG outcome of ${keyId} on node ${id}`,
    async () => {
      const res = await getJson(`${cluster.node(id).adminUrl}/admin/dkg/${keyId}`);
      return res.status === 200 && res.json.status !== 'running' ? res.json : undefined;
    },
    { timeoutMs: 90_000, intervalMs: 200 },
  );
}

async function propose(cluster: NodeCluster, id: number, keyId: string): Promise<void> {
  const res = await getJson(`${cluster.node(id).adminUrl}/admin/dkg`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ keyId }) });
  assert.equal(res.status, 202, JSON.stringify(res.json));
}

/** Same result everywhere, and the stored shares of any t of `ids` interpolate to the group key. */
async function assertAgreement(cluster: NodeCluster, ids: number[], keyId: string, statuses: Map<number, any>): Promise<void> {
  const first = statuses.get(ids[0]!).result;
  for (const id of ids) {
    const r = statuses.get(id).result;
    assert.equal(r.groupPublicKey, first.groupPublicKey, `node ${id} group key`);
    assert.equal(r.transcriptHash, first.transcriptHash, `node ${id} transcript hash`);
    assert.deepEqual(r.verificationShares, first.verificationShares, `node ${id} verification shares`);
    assert.deepEqual(r.qualified, first.qualified, `node ${id} qualified set`);
  }
  const shares: { id: number; value: bigint }[] = [];
  for (const id of ids) {
    const keystore = await Keystore.open(cluster.node(id).keystoreDir, CLUSTER_PASSWORD);
    try {
      const share = (await keystore.load(keyId)).share;
      assert.ok(publicKeyFromSecret(share).equals(decodePoint(first.verificationShares[String(id)])), `node ${id} share matches Y_${id}`);
      shares.push({ id, value: share });
    } finally {
      keystore.close();
    }
  }
  const group = decodePoint(first.groupPublicKey);
  for (let i = 0; i + T <= shares.length; i++) assert.ok(G.multiply(interpolateSecret(shares.slice(i, i + T))).equals(group), 'shares interpolate to the group key');
}

describe('DKG adversaries end to end (5 processes, t = 3)', function () {
  this.timeout(180_000);
  let root: string | undefined;
  let cluster: NodeCluster | undefined;
  /** Every process this file started, for the log check at the end. */
  const processes: ManagedProcess[] = [];

  before(async () => {
    root = await makeTempDir('tkms-dkg-adversaries');
    cluster = await NodeCluster.prepare({
      n: N,
      t: T,
      rootDir: root,
      phaseTimeoutMs: 2_000,
      logLevel: 'debug',
      faults: { 5: { equivocateDealing: true }, 4: { badSubShareTo: [2, 3] }, 3: { falseComplaintAgainst: [1] } },
    });
    await cluster.startAll();
    for (const node of cluster.nodes) processes.push(node.process!);
    await cluster.waitHealthy([1, 2, 3, 4, 5]);
    await waitFor('a full mesh', async () => ((await Promise.all(cluster!.nodes.map((n) => getJson(`${n.httpUrl}/health`)))).every((h) => h.json.peersConnected === N - 1) ? true : undefined), {
      timeoutMs: 30_000,
    });
  });

  after(async () => {
    await cluster?.stopAll();
    await removeDir(root);
  });

  it('an equivocating dealer and bad sub-shares to a subset are left out; a false complaint frames no one; honest members agree', async () => {
    const c = cluster!;
    for (const id of [3, 4, 5]) assert.match(c.node(id).process!.stdout, /TEST FAULTS ENABLED/);
    await propose(c, 1, 'adversaries');
    const statuses = new Map<number, any>();
    for (const id of [1, 2, 3, 4, 5]) statuses.set(id, await outcome(c, id, 'adversaries'));
    // Node 3 is faulty too (it is named for its false complaint; its own dealing is valid and may be agreed).
    const honest = [1, 2];
    for (const id of honest) {
      const s = statuses.get(id);
      assert.equal(s.status, 'done', `node ${id}: ${s.abortReason}`);
      assert.equal(s.share, true, `node ${id} holds a share`);
      // The false complaint against dealer 1 does not hold: dealer 1 stays, the complainer is named.
      assert.ok(!('1' in s.disqualified) && !('2' in s.disqualified), `node ${id} disqualified an honest dealer: ${JSON.stringify(s.disqualified)}`);
      assert.match(s.disqualified['3'] ?? '', /complained about a valid sub-share of 1/, `node ${id} names the false complaint: ${JSON.stringify(s.disqualified)}`);
      assert.match(s.disqualified['4'] ?? '', /does not match its commitments/, `node ${id} names the bad sub-shares: ${JSON.stringify(s.disqualified)}`);
    }
    const qualified: number[] = statuses.get(1).result.qualified;
    assert.ok(!qualified.includes(4), `the bad sub-share dealer is out: ${JSON.stringify(qualified)}`);
    for (const id of honest) assert.ok(qualified.includes(id), `honest dealer ${id} is in: ${JSON.stringify(qualified)}`);
    console.log(`      qualified ${JSON.stringify(qualified)}; node 1 saw ${JSON.stringify(statuses.get(1).disqualified)}`);
    const holders = [1, 2, 3, 4, 5].filter((id) => statuses.get(id).status === 'done' && statuses.get(id).share === true);
    assert.ok(holders.length >= T, `at least t members hold a share: ${JSON.stringify(holders)}`);
    await assertAgreement(c, holders, 'adversaries', statuses);
    // The faulty members see the same outcome when they complete at all (they are not trusted to).
    for (const id of [4, 5]) {
      const s = statuses.get(id);
      console.log(`      faulty node ${id}: ${s.status}${s.status === 'done' ? `, same key: ${s.result.groupPublicKey === statuses.get(1).result.groupPublicKey}` : ` (${s.abortReason})`}`);
    }
  });

  it('a member that dealt and then disappears as the agreement starts: the others complete and agree', async () => {
    const c = cluster!;
    // Everyone honest from here on: restart nodes 3, 4, 5 without test faults.
    for (const id of [3, 4, 5]) {
      const config = JSON.parse(await readFile(c.node(id).configPath, 'utf8')) as Record<string, unknown>;
      delete config.testFaults;
      await writeFile(c.node(id).configPath, JSON.stringify(config, null, 2));
      await c.node(id).process!.stop('SIGTERM');
      processes.push(await c.start(id));
      assert.doesNotMatch(c.node(id).process!.stdout, /TEST FAULTS ENABLED/);
    }
    await waitFor('a full mesh again', async () => ((await Promise.all(c.nodes.map((n) => getJson(`${n.httpUrl}/health`)))).every((h) => h.json.peersConnected === N - 1) ? true : undefined), {
      timeoutMs: 30_000,
    });

    // Node 5 is killed the moment node 1 (the proposer) logs entering the agreement: node 1 then
    // holds the dealings it proposes from, node 5's among them if it arrived; node 5 may have
    // echoed or voted, or not. Four members are a vote quorum of a 3-of-5 committee.
    const victim = c.node(5).process!;
    const proposer = c.node(1).process!;
    let killed = false;
    const watch = (chunk: string): void => {
      if (!killed && /"keyId":"vanish".*"to":"agreement"|"to":"agreement".*"keyId":"vanish"/.test(chunk)) {
        killed = true;
        victim.child.kill('SIGKILL');
      }
    };
    proposer.child.stdout!.on('data', watch);
    await propose(c, 1, 'vanish');
    await victim.exited;
    proposer.child.stdout!.off('data', watch);
    assert.ok(killed, 'node 5 was killed when node 1 reached the agreement');

    const alive = [1, 2, 3, 4];
    const statuses = new Map<number, any>();
    for (const id of alive) statuses.set(id, await outcome(c, id, 'vanish'));
    for (const id of alive) {
      const s = statuses.get(id);
      assert.equal(s.status, 'done', `node ${id}: ${s.abortReason}`);
      for (const honest of alive) assert.ok(!(String(honest) in s.disqualified), `node ${id} disqualified honest ${honest}: ${JSON.stringify(s.disqualified)}`);
    }
    const qualified: number[] = statuses.get(1).result.qualified;
    console.log(`      qualified ${JSON.stringify(qualified)} (node 5's dealing ${qualified.includes(5) ? 'in' : 'out'})`);
    for (const id of alive) assert.ok(qualified.includes(id), `dealer ${id} is in: ${JSON.stringify(qualified)}`);
    await assertAgreement(c, alive, 'vanish', statuses);
  });

  it('no share, password or identity key in any log line of these runs', async () => {
    await cluster!.stopAll();
    const logs: LogText[] = processes.map((p, i) => ({ name: `${p.name} (process ${i + 1})`, text: `${p.stdout}\n${p.stderr}` }));
    const { needles, shares } = await nodeSecrets(root!, CLUSTER_PASSWORD);
    assert.ok(shares >= 3, `expected at least the honest members' shares of the first key, found ${shares}`);
    assert.deepEqual(findSecrets(logs, needles), []);
    // The scanner itself finds a share written the way a careless log line would.
    const share = needles.find((n) => n.label.includes('share of'))!;
    assert.equal(findSecrets([{ name: 'control', text: `{"msg":"x","s":"0x${share.values[0]!.text.toUpperCase()}"}` }], needles).length, 1);
  });
});
