import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateAccount } from '../../client/index.ts';
import {
  decodeHex,
  decodeKeysReply,
  decodePartialReply,
  encodeHex,
  encodeKeysRequest,
  encodePartialRequest,
  generateRsaKeyPair,
  KEYS_PROTOCOL,
  newRequestId,
  PARTIAL_PROTOCOL,
  randomBytes,
  signDelegation,
} from '../../core/index.ts';
import { verifyHandover } from '../../core/ceremony/handover.ts';
import { proposalDigest } from '../../core/ceremony/proposal.ts';
import { loadCommitteeFile, parseCommittee, type Committee } from '../../net/committee.ts';
import { loadIdentityFile } from '../../node/identity.ts';
import { CEREMONY_PROTOCOL, decodeCeremonyReply, encodeCeremonyFrame } from '../../node/reshare-wire.ts';
import { P2pClient } from '../support/p2p-client.ts';
import { getJson, makeTempDir, NodeCluster, removeDir, runTkms, waitFor } from '../support/processes.ts';

/**
 * A committee change with real node processes on loopback: five members (t = 3) run a DKG, three
 * more nodes start with the new committee file, and the operators of all eight approve the
 * proposal 3-of-5 → 4-of-7 (node 1 leaves, nodes 2..8 become members 1..7) through their admin
 * APIs. Then the new committee refreshes on one member's word. The full suite (faults, restarts,
 * decryption through the gateway) lives elsewhere; this is the happy path and the control plane's
 * refusal of a proposal sent over libp2p.
 */
const OLD = [1, 2, 3, 4, 5];
const NEW_NODES = [2, 3, 4, 5, 6, 7, 8];
const ALL = [1, 2, 3, 4, 5, 6, 7, 8];
const PHASE_MS = 2_500;

async function postJson(url: string, body: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: await res.json() };
}

describe('node daemon: reshare 3-of-5 → 4-of-7 and a refresh, real processes', function () {
  this.timeout(300_000);
  let root: string | undefined;
  let cluster: NodeCluster | undefined;
  let p2p: P2pClient | undefined;
  let committee0: Record<string, unknown>;
  let committee1: Record<string, unknown>;
  let from: Committee;
  let groupPublicKey: string;

  const reshareList = async (id: number): Promise<any> => (await getJson(`${cluster!.node(id).adminUrl}/admin/reshare`)).json;

  async function waitDone(ids: number[], proposalId: string): Promise<number[]> {
    return Promise.all(
      ids.map(async (id) => {
        const s = await waitFor(
          `node ${id} ceremony ${proposalId.slice(0, 10)} finished`,
          async () => {
            const p = (await reshareList(id)).proposals.find((x: { proposalId: string }) => x.proposalId === proposalId);
            return p !== undefined && (p.status === 'done' || p.status === 'failed') ? p : undefined;
          },
          { timeoutMs: 120_000, intervalMs: 250 },
        );
        assert.equal(s.status, 'done', `node ${id}: ${s.failureReason}`);
        return s.durationMs as number;
      }),
    );
  }

  async function keysOf(client: P2pClient, id: number): Promise<{ keys: unknown[]; epoch?: number; handovers?: unknown[] }> {
    const reply = decodeKeysReply(await client.request(id, KEYS_PROTOCOL, encodeKeysRequest()));
    assert.ok(reply.ok);
    return reply as { keys: unknown[]; epoch?: number; handovers?: unknown[] };
  }

  before(async () => {
    root = await makeTempDir('tkms-node-reshare');
    cluster = await NodeCluster.prepare({ n: ALL.length, t: 3, rootDir: root, phaseTimeoutMs: 3_000 });
    const member = (node: number, id: number) => ({ id, peerId: cluster!.node(node).peerId, multiaddrs: [`/ip4/127.0.0.1/tcp/${cluster!.node(node).p2pPort}`] });
    committee0 = { committeeId: 'test-committee', epoch: 0, t: 3, members: OLD.map((n) => member(n, n)) };
    committee1 = { committeeId: 'test-committee', epoch: 1, t: 4, members: NEW_NODES.map((n, i) => member(n, i + 1)) };
    await writeFile(join(root, 'committee.json'), JSON.stringify(committee0, null, 2));
    await writeFile(join(root, 'committee-1.json'), JSON.stringify(committee1, null, 2));
    for (const id of ALL) {
      const config = JSON.parse(await readFile(cluster.node(id).configPath, 'utf8'));
      config.reshare = { phaseTimeoutMs: PHASE_MS };
      if (!OLD.includes(id)) config.committeeFile = '../committee-1.json';
      await writeFile(cluster.node(id).configPath, JSON.stringify(config, null, 2));
    }
    from = await loadCommitteeFile(join(root, 'committee.json'));
    await cluster.startAll(OLD);
    await cluster.waitHealthy(OLD);
    const out = await runTkms(['dkg', 'start', '--key', 'alpha', '--admin', cluster.node(1).adminUrl, '--json'], { timeoutMs: 90_000 });
    assert.equal(out.code, 0, `tkms dkg start failed: ${out.stderr}`);
    groupPublicKey = JSON.parse(out.stdout).result.groupPublicKey;
    for (const id of OLD) {
      await waitFor(`node ${id} holds alpha`, async () => ((await getJson(`${cluster!.node(id).adminUrl}/admin/dkg/alpha`)).json.status === 'done' ? true : undefined), { timeoutMs: 60_000 });
    }
    await cluster.startAll([6, 7, 8]);
  });

  after(async () => {
    await p2p?.stop();
    await cluster?.stopAll();
    await removeDir(root);
  });

  it('refuses a committee change sent by a member over libp2p (not_approved), and any ceremony stream from a non-member; nothing changes', async () => {
    const proposal = { v: 1, from: committee0, to: committee1, keyIds: ['alpha'] };
    const member2 = await loadIdentityFile(join(cluster!.node(2).dir, 'identity.json'));
    const client = await P2pClient.start(from, member2.privateKey);
    try {
      const frame = encodeCeremonyFrame({
        type: 'refresh',
        proposalId: proposalDigest({ from, to: parseCommittee(committee1), keyIds: ['alpha'] }),
        payload: new TextEncoder().encode(JSON.stringify(proposal)),
      });
      const reply = decodeCeremonyReply(await client.request(3, CEREMONY_PROTOCOL, frame));
      assert.equal(reply.ok, false);
      assert.equal(!reply.ok && reply.code, 'not_approved');
    } finally {
      await client.stop();
    }
    // Anyone else (a gateway, an outsider) cannot even open a ceremony stream.
    const outsider = await P2pClient.start(from);
    try {
      await assert.rejects(outsider.request(3, CEREMONY_PROTOCOL, encodeCeremonyFrame({ type: 'payload', proposalId: randomBytes(32), payload: randomBytes(16) })));
    } finally {
      await outsider.stop();
    }
    const list = await reshareList(3);
    assert.equal(list.epoch, 0);
    assert.deepEqual(list.proposals, []);
  });

  it('every operator approves; all eight finish, the group key stays, the new Y_i are on a 4-of-7 sharing', async () => {
    const proposal = { v: 1, from: committee0, to: committee1, keyIds: ['alpha'] };
    const started = Date.now();
    // The members joining first: they read the keys' public data from the committee leaving before
    // their ceremony starts, and a member whose hello comes after the dealers dealt gets no share.
    const joining = ALL.filter((id) => !OLD.includes(id));
    const approvals = await Promise.all(joining.map((id) => postJson(`${cluster!.node(id).adminUrl}/admin/reshare/approve`, proposal)));
    for (const id of joining) {
      await waitFor(`node ${id} ceremony started`, async () => ((await reshareList(id)).proposals[0]?.phase !== 'preparing' ? true : undefined), { timeoutMs: 30_000, intervalMs: 50 });
    }
    approvals.push(...(await Promise.all(OLD.map((id) => postJson(`${cluster!.node(id).adminUrl}/admin/reshare/approve`, proposal)))));
    for (const a of approvals) assert.equal(a.status, 202, JSON.stringify(a.json));
    const proposalId = approvals[0]!.json.proposalId as string;
    assert.equal(approvals[0]!.json.kind, 'reshare');
    assert.ok(approvals.every((a) => a.json.proposalId === proposalId));
    const durations = await waitDone(ALL, proposalId);
    console.log(`      reshare 3-of-5 → 4-of-7 (1 key): ${Math.min(...durations)}..${Math.max(...durations)} ms per node, ${Date.now() - started} ms wall`);

    p2p = await P2pClient.start(parseCommittee({ ...committee1, epoch: 0, members: [...(committee1.members as object[]), { id: 8, peerId: cluster!.node(1).peerId, multiaddrs: [`/ip4/127.0.0.1/tcp/${cluster!.node(1).p2pPort}`] }] }));
    const keys = await keysOf(p2p, 2);
    assert.equal(keys.epoch, 1);
    assert.equal(keys.handovers?.length, 1);
    const verified = verifyHandover(keys.handovers![0], from);
    assert.equal(verified.to.t, 4);
    assert.equal(verified.keys.length, 1);
    assert.equal(encodeHex(verified.keys[0]!.groupPublicKey), groupPublicKey);
    assert.deepEqual([...verified.keys[0]!.verificationShares.keys()].sort(), [1, 2, 3, 4, 5, 6, 7]);
    // Each member keeps the votes it gathered (at least the quorums); what they signed is one handover.
    const signed = (cert: unknown) => ({ ...(cert as Record<string, unknown>), signatures: null });
    for (const id of [1, 3, 7]) {
      const other: unknown[] = (await keysOf(p2p, id)).handovers ?? [];
      assert.equal(other.length, 1);
      assert.deepEqual(signed(verifyHandover(other[0], from).certificate), signed(verified.certificate), `new member ${id} holds the same handover`);
    }

    const status = (await getJson(`${cluster!.node(3).adminUrl}/admin/status`)).json;
    assert.deepEqual(status.epoch, { epoch: 1, n: 7, t: 4 });
    assert.equal(status.ceremony, null);
    const metrics = await (await fetch(`${cluster!.node(3).httpUrl}/metrics`)).text();
    assert.match(metrics, /^tkms_node_committee_epoch 1$/m);
    assert.match(metrics, /^tkms_reshare_ceremonies_total\{kind="reshare",outcome="done"\} 1$/m);
  });

  it('the member that left answers no partial (stale_epoch), the others still reach the request checks', async () => {
    const rsa = await generateRsaKeyPair();
    const requester = generateAccount();
    const now = Math.floor(Date.now() / 1000);
    const request = () =>
      encodePartialRequest({
        delegation: signDelegation(
          requester.secretKey,
          { handle: randomBytes(32), keyId: 'alpha', requester: requester.addressBytes, rsaSpki: decodeHex(rsa.publicKey.spkiHex), notBefore: now, notAfter: now + 300, requestId: newRequestId() },
          { committeeId: 'test-committee' },
        ),
        descriptor: { keyId: 'alpha', K: decodeHex(groupPublicKey), nonce: randomBytes(12), ciphertextHash: randomBytes(32), owner: requester.addressBytes, kProof: randomBytes(64) },
        grant: undefined,
      });
    const left = decodePartialReply(await p2p!.request(8, PARTIAL_PROTOCOL, request()));
    assert.equal(!left.ok && left.code, 'stale_epoch');
    assert.match(!left.ok ? left.message : '', /epoch 1/);
    const staying = decodePartialReply(await p2p!.request(2, PARTIAL_PROTOCOL, request()));
    assert.notEqual(!staying.ok && staying.code, 'stale_epoch');
    assert.notEqual(!staying.ok && staying.code, 'unknown_key');
  });

  it('POST /admin/refresh on one member refreshes the new committee: same key, new Y_i, epoch 2', async () => {
    const before = verifyHandover((await keysOf(p2p!, 1)).handovers![0], from);
    const started = Date.now();
    const res = await postJson(`${cluster!.node(4).adminUrl}/admin/refresh`, {});
    assert.equal(res.status, 202, JSON.stringify(res.json));
    assert.equal(res.json.kind, 'refresh');
    const durations = await waitDone(NEW_NODES, res.json.proposalId);
    console.log(`      refresh 4-of-7 (1 key): ${Math.min(...durations)}..${Math.max(...durations)} ms per node, ${Date.now() - started} ms wall`);
    const keys = await keysOf(p2p!, 5);
    assert.equal(keys.epoch, 2);
    assert.equal(keys.handovers?.length, 2);
    const refreshed = verifyHandover(keys.handovers![1], before.to);
    assert.ok(refreshed.refresh);
    assert.equal(encodeHex(refreshed.keys[0]!.groupPublicKey), groupPublicKey);
    for (const [id, y] of before.keys[0]!.verificationShares) assert.notEqual(encodeHex(refreshed.keys[0]!.verificationShares.get(id)!), encodeHex(y), `Y_${id} changed`);
  });
});
