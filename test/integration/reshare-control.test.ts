import assert from 'node:assert/strict';
import { generateAccount, type TkmsClient } from '../../client/index.ts';
import { randomBytes } from '../../core/index.ts';
import { proposalDigest } from '../../core/ceremony/proposal.ts';
import { API_ROUTES } from '../../gateway/api-routes.ts';
import { parseCommittee } from '../../net/committee.ts';
import { loadIdentityFile } from '../../node/identity.ts';
import { CEREMONY_PROTOCOL, decodeCeremonyReply, encodeCeremonyFrame } from '../../node/reshare-wire.ts';
import { P2pClient } from '../support/p2p-client.ts';
import { getJson } from '../support/processes.ts';
import { decode, encode, range, ReshareNet } from '../support/reshare.ts';

/**
 * The control plane with real processes: only each node's operator (its loopback admin API) starts
 * a committee change. The gateway has no route for one, and its libp2p peer cannot open a ceremony
 * stream; a member's proposal over libp2p is refused. A reshare needs t approving leaving members:
 * with fewer nothing moves (and decrypts keep working); approving on the rest completes it with the
 * key unchanged.
 */
const KEY = 'alpha';

describe('reshare control plane with real processes: operators only, t approvals', function () {
  this.timeout(180_000);
  let net: ReshareNet;
  let client: TkmsClient;
  let groupKey: string;
  let handle: string;

  before(async () => {
    net = await ReshareNet.prepare({
      prefix: 'tkms-reshare-control',
      nodes: 6,
      n: 5,
      t: 3,
      phaseMs: 1_500,
    });
    groupKey = (await net.startWithKeys([KEY])).get(KEY)!;
    await net.startGateway(KEY);
    client = await net.client(generateAccount(), 0);
    handle = (await client.encrypt(encode('before any change'), { keyId: KEY })).handle;
    await net.writeCommittee(1, range(1, 6), 3);
  });

  after(async () => {
    await net?.stop();
  });

  it('the gateway has no route that changes the committee, and answers 404 to the admin ones', async () => {
    const changing = API_ROUTES.filter((r) => /reshare|refresh|approve|admin|ceremony|proposal/i.test(r.path));
    assert.deepEqual(changing.map((r) => `${r.method} ${r.path}`), []);
    const proposal = net.proposal(1, [KEY]);
    for (const path of ['/admin/reshare/approve', '/admin/refresh', '/v1/reshare', '/v1/committee']) {
      const res = await fetch(`${net.gatewayUrl}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(proposal) });
      assert.ok(res.status === 404 || res.status === 405, `POST ${path}: ${res.status}`);
      await res.body?.cancel();
    }
    for (const id of range(1, 5)) {
      const list = await net.reshareList(id);
      assert.equal(list.epoch, 0);
      assert.deepEqual(list.proposals, []);
    }
  });

  it('a ceremony stream from the gateway peer is refused; a member\'s proposal over libp2p gets not_approved; nothing changes', async () => {
    const from = net.committee(0);
    const proposal = net.proposal(1, [KEY]);
    const proposalId = proposalDigest({ from, to: parseCommittee(proposal.to), keyIds: [KEY] });
    const frames = [
      encodeCeremonyFrame({ type: 'refresh', proposalId, payload: encode(JSON.stringify(proposal)) }),
      encodeCeremonyFrame({ type: 'payload', proposalId, payload: randomBytes(64) }),
    ];
    const gateway = await P2pClient.start(from, (await loadIdentityFile(net.gatewayIdentityFile)).privateKey);
    try {
      for (const frame of frames) await assert.rejects(gateway.request(3, CEREMONY_PROTOCOL, frame), 'the gateway peer cannot open a ceremony stream');
    } finally {
      await gateway.stop();
    }
    const member = await P2pClient.start(from, (await loadIdentityFile(`${net.cluster.node(4).dir}/identity.json`)).privateKey);
    try {
      const reply = decodeCeremonyReply(await member.request(3, CEREMONY_PROTOCOL, frames[0]!));
      assert.equal(!reply.ok && reply.code, 'not_approved');
    } finally {
      await member.stop();
    }
    for (const id of range(1, 5)) {
      const list = await net.reshareList(id);
      assert.equal(list.epoch, 0);
      assert.deepEqual(list.proposals, []);
    }
    assert.equal(decode((await client.decrypt(handle)).plaintext), 'before any change');
  });

  let proposalId: string;

  it('with t − 1 leaving members approving (and the joining one), no handover: the committee stays at epoch 0 and decrypts keep working', async () => {
    const proposal = net.proposal(1, [KEY]);
    await net.startJoining([6], 1);
    proposalId = await net.approve(proposal, [1, 3], [6]);
    // Well past the dealing deadline of the members that approved: two dealings, t = 3 needed.
    const waitUntil = Date.now() + 3 * net.options.phaseMs + 1_000;
    let decrypts = 0;
    while (Date.now() < waitUntil) {
      assert.equal(decode((await client.decrypt(handle)).plaintext), 'before any change');
      decrypts++;
      await new Promise((r) => setTimeout(r, 300));
    }
    assert.ok(decrypts > 0);
    for (const id of range(1, 6)) {
      assert.equal((await net.reshareList(id)).epoch, id === 6 ? 1 : 0, `node ${id} epoch`);
      const p = await net.proposalOn(id, proposalId);
      if ([2, 4, 5].includes(id)) assert.equal(p, undefined, `node ${id} never approved`);
      else assert.notEqual(p?.status, 'done', `node ${id}: ${JSON.stringify(p)}`);
    }
    const keys6 = (await getJson(`${net.cluster.node(6).adminUrl}/admin/keys`)).json.keys as unknown[];
    assert.equal(keys6.length, 0, 'the joining member holds no key yet');
    assert.equal((await (await net.client(generateAccount(), 0)).getKey(KEY)).epoch, 0);
  });

  // Was skipped (issue 16): the joining member's hello never reached 2, 4 and 5, which refused its
  // streams before their operators approved, and the engine did not re-send hellos; every dealer
  // waits for every hello, so nobody dealt. test/integration/reshare-scenarios.md.
  it('approving on the remaining leaving members completes the same proposal, the key unchanged', async () => {
    const proposal = net.proposal(1, [KEY]);
    const started = Date.now();
    for (const id of [2, 4, 5]) await net.approveOn(id, proposal);
    await net.waitDone(range(1, 6), proposalId);
    console.log(`      reshare 3-of-5 → 3-of-6 after the late approvals: ${Date.now() - started} ms`);
    // The gateway follows on its own refresh (at most once a second): on a loaded machine it may still serve epoch 0 here.
    await net.waitGatewayEpoch(1);
    const key = await (await net.client(generateAccount(), 0)).getKey(KEY);
    assert.equal(key.epoch, 1);
    assert.equal(key.publicKeyHex.replace(/^0x/, ''), groupKey.replace(/^0x/, ''));
    assert.equal(decode((await client.decrypt(handle)).plaintext), 'before any change');
    const through = await client.decrypt(handle, { avoidNodes: [2, 3, 4] });
    assert.deepEqual([...through.usedNodeIds].sort(), [1, 5, 6]);
  });
});
