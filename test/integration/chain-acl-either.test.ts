import assert from 'node:assert/strict';
import { generateAccount, TkmsClient, type Account } from '../../client/index.ts';
import { isTkmsError } from '../../core/index.ts';
import { Devnet } from '../../deploy/devnet.ts';
import { ChainFixture } from '../support/chain-evm.ts';
import { gatewayAclConfig, nodeAclConfig, waitHeadsAt, type ChainAclTiming } from '../support/chain-devnet.ts';
import { ownedHandle, type OwnedHandle } from '../support/devnet-requests.ts';
import { makeTempDir, removeDir } from '../support/processes.ts';

/**
 * acl.mode "either" end to end (3 nodes, t = 2, one anvil): a valid owner-signed grant or an
 * on-chain grant lets the grantee decrypt; each kind is revoked in its own place, and a grant of
 * one kind still counts after the other kind was revoked.
 */
const TIMING: ChainAclTiming = { confirmations: 1, maxBlockLag: 6, aheadWaitMs: 800, pollIntervalMs: 200, rpcTimeoutMs: 1_000 };

describe('integration: on-chain ACL in mode either (anvil, 3 nodes, t = 2)', function () {
  this.timeout(120_000);
  let dir: string | undefined;
  let chain: ChainFixture | undefined;
  let devnet: Devnet | undefined;
  const alice = generateAccount();
  const bob = generateAccount();
  const clients = new Map<Account, TkmsClient>();
  const client = (a: Account): TkmsClient => clients.get(a)!;

  before(async function () {
    this.timeout(180_000);
    dir = await makeTempDir('tkms-chain-either');
    chain = await ChainFixture.start();
    await chain.mine(TIMING.confirmations);
    const nodeConfig = Object.fromEntries([1, 2, 3].map((id) => [id, { acl: nodeAclConfig('either', chain!, chain!.url, TIMING) }]));
    devnet = await Devnet.start({ dir, n: 3, t: 2, gatewayPort: 0, logLevel: 'warn', nodeConfig, gatewayConfig: { acl: gatewayAclConfig('either', chain, chain.url, TIMING) } });
    const pinned = await devnet.pinned();
    for (const a of [alice, bob]) clients.set(a, new TkmsClient({ gatewayUrl: devnet.gatewayUrl, account: a, ...pinned }));
  });

  after(async () => {
    await devnet?.stop();
    await chain?.stop();
    await removeDir(dir);
  });

  /** Mines `confirmations` blocks and waits until the gateway and every node have read the new head. */
  async function confirm(): Promise<void> {
    const head = await chain!.mine(TIMING.confirmations);
    await waitHeadsAt(head, { gatewayUrl: devnet!.gatewayUrl, nodeUrls: [1, 2, 3].map((id) => devnet!.node(id).httpUrl) });
  }

  async function bobDecrypts(h: OwnedHandle): Promise<string> {
    try {
      const r = await client(bob).decrypt(h.handle);
      return new TextDecoder().decode(r.plaintext);
    } catch (e) {
      assert.ok(isTkmsError(e), `expected a TkmsError, got ${String(e)}`);
      return `refused: ${e.code}: ${e.message}`;
    }
  }

  it('a signed grant alone, an on-chain grant alone, and neither (the refusal names both kinds)', async () => {
    const signedOnly = await ownedHandle(client(alice), devnet!.keyId, 'signed only');
    await client(alice).grant(signedOnly.handle, bob.address);
    assert.equal(await bobDecrypts(signedOnly), 'signed only');

    const chainOnly = await ownedHandle(client(alice), devnet!.keyId, 'chain only');
    await chain!.grant(alice, chainOnly.handle, bob.address);
    await confirm();
    assert.equal(await bobDecrypts(chainOnly), 'chain only');

    const neither = await ownedHandle(client(alice), devnet!.keyId, 'neither');
    const refusal = await bobDecrypts(neither);
    assert.match(refusal, /^refused: unauthorized: /);
    assert.match(refusal, /signed grant/);
    assert.match(refusal, /on-chain grant/);
  });

  it('each kind is revoked in its own place: a signed revocation leaves the on-chain grant working, and the on-chain revocation then ends access', async () => {
    const h = await ownedHandle(client(alice), devnet!.keyId, 'both kinds');
    await client(alice).grant(h.handle, bob.address);
    await chain!.grant(alice, h.handle, bob.address);
    await confirm();
    assert.equal(await bobDecrypts(h), 'both kinds');

    const revoked = await client(alice).revoke(h.handle, bob.address);
    assert.equal(revoked.effective, true);
    // The signed grant is revoked everywhere, but the on-chain grant still counts.
    assert.equal(await bobDecrypts(h), 'both kinds');

    await chain!.revoke(alice, h.handle, bob.address);
    await confirm();
    const refusal = await bobDecrypts(h);
    assert.match(refusal, /^refused: (unauthorized|revoked): /);
    assert.match(refusal, /on-chain grant/);
  });

  it('an on-chain revocation leaves a valid signed grant working', async () => {
    const h = await ownedHandle(client(alice), devnet!.keyId, 'signed survives');
    await chain!.grant(alice, h.handle, bob.address);
    await client(alice).grant(h.handle, bob.address);
    await chain!.revoke(alice, h.handle, bob.address);
    await confirm();
    assert.equal(await bobDecrypts(h), 'signed survives');
  });
});
