import assert from 'node:assert/strict';
import { join } from 'node:path';
import { randomBytes } from '../../core/index.ts';
import { loadCommitteeFile } from '../../net/committee.ts';
import { DKG_PROTOCOL, decodeDkgReply, encodeDkgFrame } from '../../node/dkg-wire.ts';
import { loadIdentityFile } from '../../node/identity.ts';
import { P2pClient } from '../support/p2p-client.ts';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { parseCommittee, type Committee } from '../../net/committee.ts';
import { createLogger } from '../../runtime/logger.ts';
import { DkgRunner } from '../../node/dkg-runner.ts';
import { MAX_CLAIMS_PER_MEMBER } from '../../node/dkg-claims.ts';
import { DkgSession } from '../../core/dkg/index.ts';
import { dkgIdentity, type NodeIdentity } from '../../node/identity.ts';
import { Keystore } from '../../node/keystore.ts';
import { createNodeMetrics } from '../../node/metrics.ts';
import { getJson, makeTempDir, NodeCluster, removeDir, runTkms, waitFor } from '../support/processes.ts';

/**
 * Finding 10(b): a member proposes a DKG for one key id to only some members and another session
 * for the same key id to the others. In a 2-of-5 committee each half can finish on its own, so
 * before the fix members 1-2 stored one key and members 3-4 another under the same key id. Real
 * node processes 1-4; member 5 is the attacker (a libp2p host with member 5's identity).
 */
const KEY_ID = 'split-me';

describe('attack: split a key id by proposing two DKG sessions for it to different members', function () {
  this.timeout(180_000);
  let root: string | undefined;
  let cluster: NodeCluster | undefined;
  let attacker: P2pClient | undefined;
  let committee: Committee;
  let attackerIdentity: NodeIdentity;

  before(async () => {
    root = await makeTempDir('tkms-split');
    cluster = await NodeCluster.prepare({ n: 5, t: 2, rootDir: root, phaseTimeoutMs: 1_000 });
    await cluster.startAll([1, 2, 3, 4]);
    await cluster.waitHealthy([1, 2, 3, 4]);
    committee = await loadCommitteeFile(join(root, 'committee.json'));
    attackerIdentity = await loadIdentityFile(join(cluster.node(5).dir, 'identity.json'));
    attacker = await P2pClient.start(committee, attackerIdentity.privateKey);
  });

  after(async () => {
    await attacker?.stop();
    await cluster?.stopAll();
    await removeDir(root);
  });

  it('no member stores either session; each reports dkg_conflict in `tkms dkg status` and its metrics', async () => {
    const committeeId = 'test-committee';
    const propose = async (members: number[]) => {
      const frame = encodeDkgFrame({ type: 'proposal', keyId: KEY_ID, sessionId: randomBytes(16), t: 2, committeeId, proposer: 5 });
      for (const id of members) assert.equal(decodeDkgReply(await attacker!.request(id, DKG_PROTOCOL, frame)).ok, true, `member ${id} accepted`);
    };
    await Promise.all([propose([1, 2]), propose([3, 4])]);

    const outcomes = await Promise.all(
      [1, 2, 3, 4].map((id) =>
        waitFor(`DKG outcome on node ${id}`, async () => {
          const s = await getJson(`${cluster!.node(id).adminUrl}/admin/dkg/${KEY_ID}`);
          return s.status === 200 && s.json.status !== 'running' ? s.json : undefined;
        }, { timeoutMs: 120_000, intervalMs: 250 }),
      ),
    );
    const stored = outcomes.filter((o) => o.status === 'done').map((o) => o.result.groupPublicKey);
    assert.deepEqual(stored, [], `members stored keys for one key id: ${JSON.stringify(stored)}`);
    for (const [i, o] of outcomes.entries()) {
      assert.equal(o.errorCode, 'dkg_conflict', `node ${i + 1}: ${o.abortReason}`);
      assert.match(o.abortReason, /another DKG session|other session/);
    }
    for (const id of [1, 2, 3, 4]) {
      const keys = await getJson(`${cluster!.node(id).adminUrl}/admin/keys`);
      assert.deepEqual(keys.json.keys, [], `node ${id} holds nothing for the split key id`);
      const metrics = await (await fetch(`${cluster!.node(id).httpUrl}/metrics`)).text();
      assert.match(metrics, /^tkms_dkg_conflicts_total\{kind="refused_store"\} [1-9]/m, `node ${id} counts the conflict`);
    }
    const cli = await runTkms(['dkg', 'status', '--key', KEY_ID, '--admin', cluster!.node(1).adminUrl]);
    assert.equal(cli.code, 1, cli.stderr);
    assert.match(cli.stdout, /error code: +dkg_conflict/);
  });

  it('two members racing proposals for one key id never leave members holding different keys for it', async () => {
    const keyId = 'raced';
    const post = (id: number) =>
      getJson(`${cluster!.node(id).adminUrl}/admin/dkg`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ keyId }) });
    await Promise.all([post(1), post(3)]);
    const outcomes = await Promise.all(
      [1, 2, 3, 4].map((id) =>
        waitFor(`DKG outcome on node ${id}`, async () => {
          const s = await getJson(`${cluster!.node(id).adminUrl}/admin/dkg/${keyId}`);
          return s.status === 200 && s.json.status !== 'running' ? s.json : undefined;
        }, { timeoutMs: 120_000, intervalMs: 250 }),
      ),
    );
    const stored = new Set(outcomes.filter((o) => o.status === 'done').map((o) => o.result.groupPublicKey));
    assert.ok(stored.size <= 1, `members hold ${stored.size} different keys for one key id`);
    // Every abort must be explained by the race (a conflict detected, or a proposer the others refused),
    // not a failure that would make "nothing stored" pass vacuously.
    for (const [i, o] of outcomes.entries()) {
      if (o.status === 'done') continue;
      const lostRace = [1, 3].includes(i + 1) && Object.keys(o.refusals).length > 0;
      assert.ok(o.errorCode === 'dkg_conflict' || lostRace, `node ${i + 1}: ${o.abortReason} ${JSON.stringify(o.refusals)}`);
    }
  });

  describe('attack: block a key id by proposing random sessions for it, each with the proposer\'s own signed round-1 package, during an honest DKG', () => {
    it('the honest DKG still completes and every member stores the same key', async () => {
      const keyId = 'contested';
      const post = await getJson(`${cluster!.node(1).adminUrl}/admin/dkg`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ keyId }) });
      assert.equal(post.status, 202, JSON.stringify(post.json));
      // Member 5 takes no part, so every member waits out its deadlines: the DKG runs for seconds.
      await Promise.all(
        [1, 2, 3, 4].map((id) =>
          waitFor(`node ${id} running the DKG`, async () => {
            const s = await getJson(`${cluster!.node(id).adminUrl}/admin/dkg/${keyId}`);
            return s.status === 200 ? true : undefined;
          }, { timeoutMs: 30_000, intervalMs: 50 }),
        ),
      );
      const refusedWhileRunning = new Map<number, number>();
      for (let i = 0; i < 5; i++) {
        const sessionId = randomBytes(16);
        const rival = new DkgSession({ keyId, committeeId: committee.committeeId, sessionId, t: 2, memberIds: [1, 2, 3, 4, 5], selfId: 5 }, dkgIdentity(attackerIdentity, committee));
        const round1 = encodeDkgFrame({ type: 'payload', keyId, sessionId, payload: rival.start().find((m) => m.to === 'all')!.payload });
        const proposal = encodeDkgFrame({ type: 'proposal', keyId, sessionId, t: 2, committeeId: committee.committeeId, proposer: 5 });
        await Promise.all(
          [1, 2, 3, 4].map(async (id) => {
            const reply = decodeDkgReply(await attacker!.request(id, DKG_PROTOCOL, proposal));
            assert.equal(reply.ok ? 'ok' : reply.code, 'conflict', `member ${id} refuses the rival proposal`);
            if (!reply.ok && /already running/.test(reply.message)) refusedWhileRunning.set(id, (refusedWhileRunning.get(id) ?? 0) + 1);
            await attacker!.request(id, DKG_PROTOCOL, round1);
          }),
        );
      }
      const outcomes = await Promise.all(
        [1, 2, 3, 4].map((id) =>
          waitFor(`DKG outcome on node ${id}`, async () => {
            const s = await getJson(`${cluster!.node(id).adminUrl}/admin/dkg/${keyId}`);
            return s.status === 200 && s.json.status !== 'running' ? s.json : undefined;
          }, { timeoutMs: 120_000, intervalMs: 250 }),
        ),
      );
      for (const id of [1, 2, 3, 4]) assert.ok(refusedWhileRunning.get(id), `member ${id} was attacked while its DKG ran`);
      for (const [i, o] of outcomes.entries()) assert.equal(o.status, 'done', `node ${i + 1}: ${o.abortReason}`);
      assert.equal(new Set(outcomes.map((o) => o.result.groupPublicKey)).size, 1);
    });
  });
});

describe('attack: make a member remember unbounded session ids, or forget the others\' claims, by showing signed round-1 packages for many key ids', function () {
  this.timeout(60_000);
  let root: string | undefined;

  after(async () => {
    await removeDir(root);
  });

  it('one member\'s claims stay within its cap (1,024), the newest kept; another member\'s claim survives the flood', async () => {
    root = await makeTempDir('tkms-claims');
    const keys = await Promise.all([1, 2, 3].map(() => generateKeyPair('Ed25519')));
    const committee = parseCommittee({
      committeeId: 'claims',
      t: 2,
      members: keys.map((k, i) => ({ id: i + 1, peerId: peerIdFromPrivateKey(k).toString(), multiaddrs: [`/ip4/127.0.0.1/tcp/${10_000 + i}`] })),
    });
    const keystore = await Keystore.open(join(root, 'ks'), 'pw', { newKeystoreScrypt: { N: 2 ** 14, r: 8, p: 1 } });
    const runner = new DkgRunner({
      committee,
      selfId: 1,
      identity: dkgIdentity({ privateKey: keys[0]!, peerId: committee.members[0]!.peerId }, committee),
      keystore,
      log: createLogger('silent'),
      metrics: createNodeMetrics(),
      phaseTimeoutMs: 1_000,
      faults: undefined,
      transport: { send: async () => { throw new Error('unreachable'); } },
    });
    const claims = (runner as unknown as { claims: { size: number; has(keyId: string): boolean } }).claims;
    /** Member `from`'s own round-1 package of a session for keyId, as a payload frame: evidence of that session. */
    const showRound1 = async (from: number, keyId: string): Promise<void> => {
      const sessionId = randomBytes(16);
      const session = new DkgSession({ keyId, committeeId: 'claims', sessionId, t: 2, memberIds: [1, 2, 3], selfId: from }, dkgIdentity({ privateKey: keys[from - 1]!, peerId: committee.members[from - 1]!.peerId }, committee));
      const round1 = session.start().find((m) => m.to === 'all')!;
      // Buffered or refused as too many unknown sessions; the claim is recorded either way.
      await runner.answerFrame(from, encodeDkgFrame({ type: 'payload', keyId, sessionId, payload: round1.payload }));
    };
    await showRound1(3, 'victim');
    for (let i = 0; i < MAX_CLAIMS_PER_MEMBER + 100; i++) await showRound1(2, `flood-${i}`);
    assert.equal(claims.size, MAX_CLAIMS_PER_MEMBER + 1);
    assert.ok(claims.has(`flood-${MAX_CLAIMS_PER_MEMBER + 99}`) && !claims.has('flood-0'));
    assert.ok(claims.has('victim'), 'member 3\'s claim is not evicted by member 2\'s flood');
    runner.stop();
    keystore.close();
  });
});
