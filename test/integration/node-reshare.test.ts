import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateAccount, type Account } from '../../client/index.ts';
import {
  ACL_PROTOCOL,
  decodeAclReply,
  decodeHex,
  decodePoint,
  encodeAclRequest,
  signGrant,
  signRevocation,
  type Grant,
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
import { sealToHandle, type SealedHandle } from '../../core/sealed-handle.ts';
import { expectedCommittee } from '../../core/committee.ts';
import { parseDkgPublicResult, verifyDkgPublicResult } from '../../core/dkg/index.ts';
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
 * decryption through the gateway) lives elsewhere; this is the happy path, the control plane's
 * refusal of a proposal sent over libp2p, and the node acting as a member of the committee served:
 * revocations made before reach the members joining, a DKG runs among the new committee at epoch 1
 * (and the next refresh moves its key), and a member restarted with its first committee file
 * serves the latest epoch under its current id.
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
  let betaGroupKey: string | undefined;
  // A handle of alpha, a grant its owner revoked before the reshare, and one still in force.
  const owner = generateAccount();
  const revokedGrantee = generateAccount();
  const liveGrantee = generateAccount();
  let sealed: SealedHandle;
  let revokedGrant: Grant;
  let liveGrant: Grant;
  let rsaSpki: Uint8Array;

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

  /** A partial request for the handle, by `who` with its grant, answered by member `id` of the epoch-1 committee numbering. */
  async function askPartial(id: number, who: Account, grant: Grant) {
    const now = Math.floor(Date.now() / 1000);
    const delegation = signDelegation(
      who.secretKey,
      { handle: sealed.handle, keyId: 'alpha', requester: who.addressBytes, rsaSpki, notBefore: now - 5, notAfter: now + 300, requestId: newRequestId() },
      { committeeId: 'test-committee' },
    );
    const descriptor = { keyId: 'alpha', K: sealed.K, nonce: sealed.nonce, ciphertextHash: sealed.ciphertextHash, owner: owner.addressBytes, kProof: sealed.kProof };
    return decodePartialReply(await p2p!.request(id, PARTIAL_PROTOCOL, encodePartialRequest({ delegation, descriptor, grant })));
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
      config.reshare = { ...config.reshare, phaseTimeoutMs: PHASE_MS };
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
    rsaSpki = decodeHex((await generateRsaKeyPair()).publicKey.spkiHex);
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

  it('an owner revokes a grant before the reshare: the members of epoch 0 take it (the members joining are not members yet)', async () => {
    sealed = await sealToHandle({ publicKey: decodePoint(groupPublicKey), keyId: 'alpha', owner: owner.addressBytes, plaintext: new TextEncoder().encode('revoked before the reshare') });
    const now = Math.floor(Date.now() / 1000);
    const deployment = { committeeId: 'test-committee' };
    revokedGrant = signGrant(owner.secretKey, { handle: sealed.handle, grantee: revokedGrantee.addressBytes, notAfter: now + 600, issuedAt: now - 30 }, deployment);
    liveGrant = signGrant(owner.secretKey, { handle: sealed.handle, grantee: liveGrantee.addressBytes, notAfter: now + 600, issuedAt: now - 30 }, deployment);
    const revocation = signRevocation(owner.secretKey, { handle: sealed.handle, grantee: revokedGrantee.addressBytes, revokedAt: now - 1 }, deployment);
    const descriptor = { keyId: 'alpha', K: sealed.K, nonce: sealed.nonce, ciphertextHash: sealed.ciphertextHash, owner: owner.addressBytes, kProof: sealed.kProof };
    // Pushed to node 3 as member 2 does when it floods; node 3 floods it to the other members of epoch 0.
    const member2 = await loadIdentityFile(join(cluster!.node(2).dir, 'identity.json'));
    const client = await P2pClient.start(from, member2.privateKey);
    try {
      const reply = decodeAclReply(await client.request(3, ACL_PROTOCOL, encodeAclRequest({ type: 'revoke', item: { descriptor, revocation } })));
      assert.ok(reply.ok && reply.type === 'stored' && reply.stored, JSON.stringify(reply));
    } finally {
      await client.stop();
    }
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

  it('the members that joined synced the revocations before serving: the grant revoked before the reshare is refused (revoked) at each, a live one is served at epoch 1', async () => {
    // Nodes 6, 7, 8 are members 5, 6, 7 of epoch 1.
    for (const id of [5, 6, 7]) {
      const refused = await askPartial(id, revokedGrantee, revokedGrant);
      assert.equal(!refused.ok && refused.code, 'revoked', `member ${id}: ${refused.ok ? 'issued a partial' : JSON.stringify(refused)}`);
    }
    const served = await askPartial(5, liveGrantee, liveGrant);
    assert.ok(served.ok, served.ok ? '' : JSON.stringify(served));
    assert.equal(served.ok && served.epoch, 1);
    const health = (await getJson(`${cluster!.node(6).httpUrl}/health`)).json;
    assert.equal(health.selfId, 5);
    assert.equal(health.epoch, 1);
    assert.equal(health.n, 7);
  });

  it('a DKG proposed on a member that joined runs among the seven at epoch 1 (result.epoch = 1, verifies against the epoch-1 committee); the member that left refuses one', async () => {
    const res = await postJson(`${cluster!.node(6).adminUrl}/admin/dkg`, { keyId: 'beta' });
    assert.equal(res.status, 202, JSON.stringify(res.json));
    for (const id of NEW_NODES) {
      await waitFor(`node ${id} holds beta`, async () => ((await getJson(`${cluster!.node(id).adminUrl}/admin/dkg/beta`)).json.status === 'done' ? true : undefined), { timeoutMs: 90_000 });
    }
    const result = parseDkgPublicResult((await getJson(`${cluster!.node(6).adminUrl}/admin/dkg/beta`)).json.result);
    assert.equal(result.epoch, 1);
    assert.equal(result.t, 4);
    assert.equal(result.n, 7);
    verifyDkgPublicResult(result, expectedCommittee(parseCommittee(committee1)));
    assert.throws(() => verifyDkgPublicResult(result, expectedCommittee(from)));
    const left = await postJson(`${cluster!.node(1).adminUrl}/admin/dkg`, { keyId: 'gamma' });
    assert.equal(left.status, 403, JSON.stringify(left.json));
    assert.equal(left.json.error.code, 'unauthorized');
    // Served at once: the keys protocol of every new member lists it.
    for (const id of [1, 5, 7]) assert.ok((await keysOf(p2p!, id)).keys.some((k) => (k as { keyId: string }).keyId === 'beta'), `member ${id} lists beta`);
    betaGroupKey = result.groupPublicKey;
  });

  it('POST /admin/refresh on one member refreshes the new committee: same key, new Y_i, epoch 2', async () => {
    const before = verifyHandover((await keysOf(p2p!, 1)).handovers![0], from);
    const started = Date.now();
    const res = await postJson(`${cluster!.node(4).adminUrl}/admin/refresh`, {});
    assert.equal(res.status, 202, JSON.stringify(res.json));
    assert.equal(res.json.kind, 'refresh');
    const durations = await waitDone(NEW_NODES, res.json.proposalId);
    console.log(`      refresh 4-of-7 (2 keys): ${Math.min(...durations)}..${Math.max(...durations)} ms per node, ${Date.now() - started} ms wall`);
    const keys = await keysOf(p2p!, 5);
    assert.equal(keys.epoch, 2);
    assert.equal(keys.handovers?.length, 2);
    const refreshed = verifyHandover(keys.handovers![1], before.to);
    assert.ok(refreshed.refresh);
    assert.equal(encodeHex(refreshed.keys[0]!.groupPublicKey), groupPublicKey);
    for (const [id, y] of before.keys[0]!.verificationShares) assert.notEqual(encodeHex(refreshed.keys[0]!.verificationShares.get(id)!), encodeHex(y), `Y_${id} changed`);
    // The key the DKG made at epoch 1 is moved too, its group key unchanged.
    assert.deepEqual(refreshed.keys.map((k) => k.keyId), ['alpha', 'beta']);
    assert.equal(encodeHex(refreshed.keys[1]!.groupPublicKey), betaGroupKey);
  });

  it('a member killed and restarted with its first committee file serves epoch 2 under its current id, connected to the members of epoch 2', async () => {
    // Node 3: member 3 of epoch 0 (its committee file), member 2 since epoch 1.
    await cluster!.node(3).process!.stop('SIGKILL');
    await cluster!.start(3);
    const health = await waitFor(
      'node 3 back, connected to the six other members of epoch 2',
      async () => {
        const h = (await getJson(`${cluster!.node(3).httpUrl}/health`)).json;
        return h.peersConnected === 6 ? h : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 250 },
    );
    assert.equal(health.selfId, 2);
    assert.equal(health.epoch, 2);
    assert.equal(health.n, 7);
    assert.equal(health.t, 4);
    assert.deepEqual(health.peers, [1, 3, 4, 5, 6, 7]);
    const status = (await getJson(`${cluster!.node(3).adminUrl}/admin/status`)).json;
    assert.deepEqual(status.epoch, { epoch: 2, n: 7, t: 4 });
    assert.equal(status.selfId, 2);
    assert.equal(status.peers.connected, 6);
    const served = await waitFor('node 3 answers a partial at epoch 2', async () => {
      const r = await askPartial(2, liveGrantee, liveGrant);
      return r.ok ? r : undefined;
    });
    assert.equal(served.ok && served.epoch, 2);
    assert.equal(served.ok && served.nodeId, 2);
    const refused = await askPartial(2, revokedGrantee, revokedGrant);
    assert.equal(!refused.ok && refused.code, 'revoked');
  });
});
