import assert from 'node:assert/strict';
import { join } from 'node:path';
import { generateAccount, TkmsClient, type Account } from '../../client/index.ts';
import { generateRsaKeyPair, type RsaKeyPair } from '../../core/index.ts';
import { Devnet } from '../../deploy/devnet.ts';
import { loadCommitteeFile } from '../../net/committee.ts';
import { askPartial, ownedHandle, type OwnedHandle } from '../support/devnet-requests.ts';
import { P2pClient } from '../support/p2p-client.ts';
import { makeTempDir, removeDir } from '../support/processes.ts';

/**
 * One account spends request ids as fast as it can, with valid requests on a handle it owns, to
 * fill a node's replay cache (every id is kept until its window closes) and make the node refuse
 * everyone. Real node processes (3, t = 2) with a small per-requester quota, so the attack takes
 * a handful of requests instead of a million.
 */
const QUOTA = 5;

describe('attack: one account fills the replay cache', function () {
  this.timeout(180_000);
  let dir: string | undefined;
  let devnet: Devnet | undefined;
  let p2p: P2pClient | undefined;
  let rsa: RsaKeyPair;

  const clientFor = async (a: Account): Promise<TkmsClient> => new TkmsClient({ gatewayUrl: devnet!.gatewayUrl, account: a, trustedMemberKeys: await devnet!.memberKeys(), rsaKey: rsa });

  const ownHandle = async (owner: Account, text: string): Promise<OwnedHandle> => ownedHandle(await clientFor(owner), devnet!.keyId, text);

  /** A valid partial request (fresh request id, window up to the maximum) straight to a node. */
  const ask = (node: number, owner: Account, h: OwnedHandle): Promise<string> =>
    askPartial({ p2p: p2p!, deployment: devnet!.deployment, keyId: devnet!.keyId, rsa, windowSeconds: 3_600 }, node, owner, h, undefined);

  before(async function () {
    this.timeout(180_000);
    dir = await makeTempDir('tkms-sec-replay');
    const config = { replayIdsPerRequester: QUOTA, partialRateLimit: { perMinute: 1_000_000, burst: 1_000_000 } };
    devnet = await Devnet.start({ dir, n: 3, t: 2, gatewayPort: 0, logLevel: 'warn', nodeConfig: { 1: config, 2: config, 3: config } });
    p2p = await P2pClient.start(await loadCommitteeFile(join(dir, 'committee.json')));
    rsa = await generateRsaKeyPair();
  });

  after(async function () {
    this.timeout(60_000);
    await p2p?.stop().catch(() => undefined);
    await devnet?.stop();
    await removeDir(dir);
  });

  it('the attacker is held to its own quota of live ids; another account still decrypts at every node', async () => {
    const [mallory, alice] = [generateAccount(), generateAccount()];
    const hm = await ownHandle(mallory, 'mallory\'s own');
    const ha = await ownHandle(alice, 'alice\'s own');
    // Mallory spends ids on node 1 with valid requests until the node stops taking them.
    const outcomes: string[] = [];
    for (let i = 0; i < QUOTA + 20; i++) outcomes.push(await ask(1, mallory, hm));
    assert.deepEqual(outcomes, [...Array(QUOTA).fill('ok'), ...Array(20).fill('rate_limited')]);
    // Alice is untouched at the same node, directly and through the gateway (which asks t = 2 nodes).
    assert.equal(await ask(1, alice, ha), 'ok');
    const decrypted = await (await clientFor(alice)).decrypt(ha.handle, { avoidNodes: [2] });
    assert.equal(new TextDecoder().decode(decrypted.plaintext), 'alice\'s own');
    assert.ok(decrypted.usedNodeIds.includes(1));
    // The refusal names the quota, not a full cache.
    const metrics = await (await fetch(`${devnet!.node(1).httpUrl}/metrics`)).text();
    assert.match(metrics, /^tkms_partial_requests_total\{outcome="rate_limited"\} 20$/m);
    assert.doesNotMatch(metrics, /^tkms_partial_requests_total\{outcome="unavailable"\} [1-9]/m);
    // Mallory's quota is per node: node 2 still serves it.
    assert.equal(await ask(2, mallory, hm), 'ok');
  });
});
