import assert from 'node:assert/strict';
import { rm } from 'node:fs/promises';
import { generateAccount, type TkmsClient } from '../../client/index.ts';
import { generateRsaKeyPair } from '../../core/index.ts';
import { P2pClient } from '../support/p2p-client.ts';
import { waitFor } from '../support/processes.ts';
import { decode, encode, handleDescriptor, ownerPartial, partialMatches, ReshareNet } from '../support/reshare.ts';

/**
 * A node lost without a backup (kill -9, keystore deleted) is replaced by resharing among the
 * four members left and a fresh node (same t), with real node and gateway processes and the
 * client library in process:
 *   - a loop of decrypts through the gateway runs from before the first approval until every
 *     member committed, and none fails;
 *   - handles made before decrypt afterwards, and the replacement serves partials.
 */
const KEY = 'alpha';
const LOST = 5;
const FRESH = 6;

describe('reshare with real processes: replace a node lost without a backup, under decrypt load', function () {
  this.timeout(180_000);
  let net: ReshareNet;
  let owner: ReturnType<typeof generateAccount>;
  let client: TkmsClient;
  let groupKey: string;
  const handles: { handle: string; text: string }[] = [];

  before(async () => {
    net = await ReshareNet.prepare({
      prefix: 'tkms-reshare-replace',
      nodes: 6,
      n: 5,
      t: 3,
      phaseMs: 1_500,
    });
    groupKey = (await net.startWithKeys([KEY])).get(KEY)!;
    // The load is one account decrypting without pause: above the gateway's default per-account limit.
    await net.startGateway(KEY, { rateLimit: { perMinute: 1_000_000, burst: 100_000 } });
    owner = generateAccount();
    client = await net.client(owner, 0);
    for (let i = 0; i < 4; i++) {
      const text = `before the loss #${i}`;
      handles.push({ handle: (await client.encrypt(encode(text), { keyId: KEY })).handle, text });
    }
  });

  after(async () => {
    await net?.stop();
  });

  it('node 5 is killed and its keystore deleted; 1..4 + a fresh node reshare (t = 3) while decrypts run: 0 failures, the key unchanged', async () => {
    await net.cluster.node(LOST).process!.stop('SIGKILL');
    await rm(net.cluster.node(LOST).keystoreDir, { recursive: true, force: true });
    await net.writeCommittee(1, [1, 2, 3, 4, FRESH], 3);
    await net.startJoining([FRESH], 1);

    // The load: one client (pinned at epoch 0) decrypting the handles in turn, without pause.
    let stop = false;
    let ok = 0;
    const failed: string[] = [];
    const load = (async () => {
      for (let i = 0; !stop; i++) {
        const h = handles[i % handles.length]!;
        try {
          assert.equal(decode((await client.decrypt(h.handle)).plaintext), h.text);
          ok++;
        } catch (e) {
          failed.push(e instanceof Error ? e.message : String(e));
        }
      }
    })();
    await waitFor('decrypts running', () => (ok >= 3 ? true : undefined), { timeoutMs: 30_000, intervalMs: 50 });
    const beforeApproval = ok;

    const started = Date.now();
    const proposalId = await net.approve(net.proposal(1, [KEY]), [1, 2, 3, 4], [FRESH]);
    const done = await net.waitDone([1, 2, 3, 4, FRESH], proposalId);
    await net.waitEpoch([1, 2, 3, 4, FRESH], 1);
    const reshareMs = Date.now() - started;
    const duringReshare = ok - beforeApproval;
    // A little past the commit, so decrypts straddle the handover.
    await new Promise((r) => setTimeout(r, 1_500));
    stop = true;
    await load;
    console.log(`      replacement reshare: ${reshareMs} ms; decrypts: ${ok + failed.length} (${beforeApproval} before the approvals, ${duringReshare} during the reshare), failed: ${failed.length}`);
    assert.deepEqual(failed, []);
    assert.ok(beforeApproval > 0 && duringReshare > 0, 'decrypts ran before and during the reshare');

    for (const s of done) assert.deepEqual(s.disqualified, {}, JSON.stringify(s));
    const key = await (await net.client(owner, 0)).getKey(KEY);
    assert.equal(key.epoch, 1);
    assert.equal(key.t, 3);
    assert.deepEqual([...key.verificationShares.keys()].sort(), [1, 2, 3, 4, FRESH]);
    assert.equal(key.publicKeyHex.replace(/^0x/, ''), groupKey.replace(/^0x/, ''));
  });

  it('handles made before the loss decrypt through the new committee, and the replacement serves partials', async () => {
    const fresh = await net.client(owner, 0);
    for (const h of handles) assert.equal(decode((await fresh.decrypt(h.handle)).plaintext), h.text);
    const through = await fresh.decrypt(handles[0]!.handle, { avoidNodes: [1, 2] });
    assert.ok(through.usedNodeIds.includes(FRESH), `used ${through.usedNodeIds}`);
    assert.equal(decode(through.plaintext), handles[0]!.text);
    // Node 6's own partial verifies against its Y_6 (and node 2, whom the liar dealt a bad sub-share, too).
    const p2p = await P2pClient.start(net.committee(1));
    try {
      const rsa = await generateRsaKeyPair();
      const descriptor = await handleDescriptor(net.gatewayUrl, handles[1]!.handle);
      const key = await fresh.getKey(KEY);
      for (const id of [FRESH, 2]) {
        const part = await ownerPartial(p2p, id, owner, rsa, handles[1]!.handle, descriptor);
        assert.equal(part.epoch, 1);
        assert.ok(partialMatches(part, KEY, descriptor.K, key.verificationShares.get(id)!), `node ${id}'s partial verifies`);
      }
    } finally {
      await p2p.stop();
    }
  });
});
