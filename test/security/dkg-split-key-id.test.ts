import assert from 'node:assert/strict';
import { join } from 'node:path';
import { randomBytes } from '../../core/index.ts';
import { loadCommitteeFile, type Committee } from '../../net/committee.ts';
import { DKG_PROTOCOL, encodeDkgFrame } from '../../node/dkg-wire.ts';
import { decodeCeremonyReply } from '../../node/reshare-wire.ts';
import { loadIdentityFile } from '../../node/identity.ts';
import { P2pClient } from '../support/p2p-client.ts';
import { getJson, makeTempDir, NodeCluster, removeDir, waitFor } from '../support/processes.ts';

/**
 * Finding 10(b): a member proposes a DKG for one key id to only some members and another session
 * for the same key id to the others; or two members race. Before certificates each half of a
 * 2-of-5 committee could finish on its own. Now a result needs a vote quorum (4 of 5 here) and each
 * member votes once per key id: halves cannot certify, and of two sessions at most one can.
 * Real node processes 1-4; member 5 is the attacker (a libp2p host with member 5's identity), so
 * every honest DKG here needs all four. Scenarios: test/integration/dkg-scenarios.md.
 */
const KEY_ID = 'split-me';

async function outcome(cluster: NodeCluster, id: number, keyId: string): Promise<any> {
  return waitFor(`DKG outcome of ${keyId} on node ${id}`, async () => {
    const s = await getJson(`${cluster.node(id).adminUrl}/admin/dkg/${keyId}`);
    return s.status === 200 && s.json.status !== 'running' ? s.json : undefined;
  }, { timeoutMs: 120_000, intervalMs: 250 });
}

describe('attack: split a key id by proposing two DKG sessions for it to different members', function () {
  this.timeout(240_000);
  let root: string | undefined;
  let cluster: NodeCluster | undefined;
  let attacker: P2pClient | undefined;
  let committee: Committee;

  before(async () => {
    root = await makeTempDir('tkms-split');
    cluster = await NodeCluster.prepare({ n: 5, t: 2, rootDir: root, phaseTimeoutMs: 1_000 });
    await cluster.startAll([1, 2, 3, 4]);
    await cluster.waitHealthy([1, 2, 3, 4]);
    committee = await loadCommitteeFile(join(root, 'committee.json'));
    attacker = await P2pClient.start(committee, (await loadIdentityFile(join(cluster.node(5).dir, 'identity.json'))).privateKey);
  });

  after(async () => {
    await attacker?.stop();
    await cluster?.stopAll();
    await removeDir(root);
  });

  const proposal = (keyId: string) => encodeDkgFrame({ type: 'proposal', keyId, sessionId: randomBytes(16), committeeId: committee.committeeId, epoch: 0, t: 2, proposer: 5 });
  const ask = async (id: number, frame: Uint8Array) => {
    const reply = decodeCeremonyReply(await attacker!.request(id, DKG_PROTOCOL, frame));
    return reply.ok ? 'ok' : reply.code;
  };

  it('neither half certifies a key: nothing is stored, and the key id is not blocked', async () => {
    const a = proposal(KEY_ID);
    const b = proposal(KEY_ID);
    for (const id of [1, 2]) assert.equal(await ask(id, a), 'ok', `member ${id} accepted session A`);
    for (const id of [3, 4]) assert.equal(await ask(id, b), 'ok', `member ${id} accepted session B`);
    const outcomes = await Promise.all([1, 2, 3, 4].map((id) => outcome(cluster!, id, KEY_ID)));
    for (const [i, o] of outcomes.entries()) {
      assert.equal(o.status, 'aborted', `node ${i + 1} stored a key of a half: ${JSON.stringify(o.result)}`);
      assert.match(o.abortReason, /no certificate/, `node ${i + 1}: ${o.abortReason}`);
    }
    for (const id of [1, 2, 3, 4]) assert.deepEqual((await getJson(`${cluster!.node(id).adminUrl}/admin/keys`)).json.keys, [], `node ${id} holds nothing`);

    // No half locked a proposal, so nobody voted: an honest DKG of the key id runs, while the
    // attacker keeps proposing rival sessions for it (each refused: one runs, and votes are one per key id).
    const post = await getJson(`${cluster!.node(1).adminUrl}/admin/dkg`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ keyId: KEY_ID }) });
    assert.equal(post.status, 202, JSON.stringify(post.json));
    await Promise.all([1, 2, 3, 4].map((id) => waitFor(`node ${id} running the honest DKG`, async () => ((await getJson(`${cluster!.node(id).adminUrl}/admin/dkg/${KEY_ID}`)).json.proposer === 1 ? true : undefined), { timeoutMs: 30_000, intervalMs: 50 })));
    for (let i = 0; i < 5; i++) {
      const rival = proposal(KEY_ID);
      for (const id of [1, 2, 3, 4]) assert.equal(await ask(id, rival), 'conflict', `member ${id} refuses a rival session`);
    }
    const honest = await Promise.all([1, 2, 3, 4].map((id) => outcome(cluster!, id, KEY_ID)));
    for (const [i, o] of honest.entries()) assert.equal(o.status, 'done', `node ${i + 1}: ${o.abortReason}`);
    assert.equal(new Set(honest.map((o) => o.result.groupPublicKey)).size, 1);
  });

  it('two members racing proposals for one key id never leave members holding different keys for it', async () => {
    const keyId = 'raced';
    const post = (id: number) =>
      getJson(`${cluster!.node(id).adminUrl}/admin/dkg`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ keyId }) });
    await Promise.all([post(1), post(3)]);
    const outcomes = await Promise.all([1, 2, 3, 4].map((id) => outcome(cluster!, id, keyId)));
    const stored = new Set(outcomes.filter((o) => o.status === 'done').map((o) => o.result.groupPublicKey));
    assert.ok(stored.size <= 1, `members hold ${stored.size} different keys for one key id`);
    // Every abort is the race's: a proposer the others refused, or a session without a vote quorum.
    for (const [i, o] of outcomes.entries()) {
      if (o.status === 'done') continue;
      const lostRace = [1, 3].includes(i + 1) && Object.keys(o.refusals).length > 0;
      assert.ok(lostRace || /no certificate/.test(o.abortReason), `node ${i + 1}: ${o.abortReason} ${JSON.stringify(o.refusals)}`);
    }
    console.log(`      race: ${outcomes.map((o, i) => `node ${i + 1} ${o.status} (session ${String(o.sessionId).slice(0, 10)})`).join(', ')}`);
  });
});
