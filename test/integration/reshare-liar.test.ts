import assert from 'node:assert/strict';
import { generateAccount } from '../../client/index.ts';
import { generateRsaKeyPair } from '../../core/index.ts';
import { P2pClient } from '../support/p2p-client.ts';
import { decode, encode, handleDescriptor, ownerPartial, partialMatches, postJson, range, ReshareNet } from '../support/reshare.ts';

/**
 * A refresh of a 3-of-5 committee (real node and gateway processes) in which node 1 deals wrong
 * sub-shares to nodes 2 and 4 (testFaults.ceremony.badSubShareTo, TKMS_ENABLE_TEST_FAULTS=1): the
 * members it lied to complain, every member names it disqualified, the honest dealers carry the
 * key, and the members it lied to serve partials of the new epoch.
 */
const KEY = 'alpha';

describe('reshare with real processes: a dealer that deals wrong sub-shares is disqualified', function () {
  this.timeout(120_000);
  const LIAR = 1;
  const VICTIMS = [2, 4];
  let net: ReshareNet;

  before(async () => {
    net = await ReshareNet.prepare({ prefix: 'tkms-reshare-liar', nodes: 5, n: 5, t: 3, phaseMs: 1_500, faults: { [LIAR]: { ceremony: { badSubShareTo: VICTIMS } } } });
    await net.startWithKeys([KEY]);
    await net.startGateway(KEY);
  });

  after(async () => {
    await net?.stop();
  });

  it('a refresh completes without it, the key unchanged, and the members it lied to serve partials of the new epoch', async () => {
    const owner = generateAccount();
    const client = await net.client(owner, 0);
    const { handle } = await client.encrypt(encode('dealt around a liar'), { keyId: KEY });
    const before = await client.getKey(KEY);
    const res = await postJson(`${net.cluster.node(3).adminUrl}/admin/refresh`, {});
    assert.equal(res.status, 202, JSON.stringify(res.json));
    const done = await net.waitDone(range(1, 5), res.json.proposalId);
    await net.writeRefreshed(1);
    for (const [i, s] of done.entries()) assert.deepEqual(Object.keys(s.disqualified ?? {}), [`from:${LIAR}`], `node ${i + 1}: ${JSON.stringify(s)}`);
    // The gateway follows on its own refresh (at most once a second): under a loaded machine it may still serve epoch 0 here.
    await net.waitGatewayEpoch(1);
    const key = await (await net.client(owner, 0)).getKey(KEY);
    assert.equal(key.epoch, 1);
    assert.equal(key.publicKeyHex, before.publicKeyHex);
    const p2p = await P2pClient.start(net.committee(1));
    try {
      const rsa = await generateRsaKeyPair();
      const descriptor = await handleDescriptor(net.gatewayUrl, handle);
      for (const id of range(1, 5)) {
        const part = await ownerPartial(p2p, id, owner, rsa, handle, descriptor);
        assert.equal(part.epoch, 1, `node ${id}`);
        assert.ok(partialMatches(part, KEY, descriptor.K, key.verificationShares.get(id)!), `node ${id}'s partial verifies at epoch 1`);
      }
    } finally {
      await p2p.stop();
    }
    assert.equal(decode((await client.decrypt(handle, { avoidNodes: [1, 3] })).plaintext), 'dealt around a liar');
  });
});
