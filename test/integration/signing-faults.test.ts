import assert from 'node:assert/strict';
import { testGateway } from '../support/gateway-pool.ts';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { schnorr } from '@noble/curves/secp256k1.js';
import { generateAccount, TkmsClient, type Account } from '../../client/index.ts';
import { decodeHex, encodeHex } from '../../core/index.ts';
import { Devnet } from '../../deploy/devnet.ts';
import { NodePool } from '../../gateway/node-pool.ts';
import { commitmentId } from '../../node/sign-nonces.ts';
import { makeTempDir, removeDir, waitFor } from '../support/processes.ts';
import { askShares, commitmentsOf, refusalCode, sessionOf, signRequestFor } from '../support/sign-direct.ts';

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

/**
 * Members that misbehave while signing (devnet: 5 nodes, t = 3): member 2 sends signature shares
 * that do not verify; member 5 stalls after it has durably spent a nonce and before its share
 * leaves, the moment a crash matters most.
 */
describe('integration: threshold signing with faulty members (devnet: 5 nodes, t = 3)', function () {
  this.timeout(300_000);
  let dir: string;
  let devnet: Devnet;
  let pool: NodePool;
  let alice: Account;
  let client: TkmsClient;

  before(async () => {
    dir = await makeTempDir('tkms-signing-faults');
    const gateway = await testGateway();
    devnet = await Devnet.start({
      dir,
      n: 5,
      t: 3,
      gatewayPort: 0,
      logLevel: 'info',
      keys: { creators: 'open' },
      extraGatewayPeerIds: [gateway.peerId],
      nodeConfig: { 2: { testFaults: { sign: 'bad_share' } }, 5: { testFaults: { sign: 'stall_after_spend' } } },
      // A member that stalls is replaced after this long.
      gatewayConfig: { partialTimeoutMs: 1000 },
    });
    pool = await gateway.connect(devnet);
    alice = generateAccount();
    client = new TkmsClient({ gatewayUrl: devnet.gatewayUrl, account: alice, ...(await devnet.pinned()) });
    await client.keys.create({ keyId: 'btc', spec: 'ECC_SECG_P256K1', usage: 'SIGN_VERIFY', policy: { sign: { raw: true } } });
    await waitFor('btc published', async () => ((await client.keys.describe('btc')).versions[0]?.publicKey === undefined ? undefined : true), { timeoutMs: 60_000 });
  });

  after(async () => {
    await pool?.stop().catch(() => undefined);
    await devnet?.stop();
    await removeDir(dir);
  });

  it('a member that sends a bad share is named and replaced, and the signature completes with another', async () => {
    // The gateway turns through the members, so member 2 is among the first three it asks within five signatures.
    let named = 0;
    for (let i = 0; i < 5; i++) {
      const message = text(`identifiable abort ${i}`);
      const result = await client.sign('btc', { data: message });
      assert.equal(schnorr.verify(decodeHex(result.signatures[0]!), message, decodeHex(result.publicKey)), true);
      assert.equal(result.signers.length, 3);
      assert.equal(result.signers.includes(2), false, 'member 2 never contributes to a signature');
      if (result.blamed.length > 0) {
        assert.deepEqual(result.blamed, [2]);
        named++;
      }
    }
    assert.ok(named >= 1, 'member 2 was asked, named and replaced at least once');
  });

  it('kill -9 of a member between spending a nonce and answering, then restart: the nonce never signs again', async () => {
    const message = { kind: 'raw' as const, data: text('crash test') };
    const request = signRequestFor(alice, 'btc', message, devnet.deployment);
    const signers = await sessionOf(pool, [5, 1, 3], 'btc');
    const [unused] = await commitmentsOf(pool, 5, 'btc', 1);
    const spentPath = join(devnet.node(5).dir, 'state', 'sign-nonces-spent.log');
    const id = commitmentId('btc', signers[0]!.commitments[0]!.hiding);

    // Member 5 spends the nonce, writes it down and stalls: the share never leaves.
    const first = askShares(pool, 5, request, message, signers, 2_000).then(
      () => assert.fail('member 5 answered while it should stall'),
      (e: unknown) => e,
    );
    await waitFor('member 5 recorded the nonce as spent', async () => ((await readFile(spentPath, 'utf8').catch(() => '')).includes(id) ? true : undefined), { timeoutMs: 10_000 });
    await devnet.killNode(5, 'SIGKILL');
    // What the caller saw: a timeout or a reset stream, never a share.
    assert.ok((await first) instanceof Error);

    // Back without the fault, from what is on its disk.
    const config = JSON.parse(await readFile(devnet.node(5).configPath, 'utf8')) as Record<string, unknown>;
    delete config.testFaults;
    await writeFile(devnet.node(5).configPath, JSON.stringify(config, null, 2));
    await devnet.startNode(5);
    await devnet.waitNodesHealthy([5]);
    await waitFor('test pool reconnected to member 5', () => (pool.connectedMembers().includes(5) ? true : undefined), { timeoutMs: 20_000 });

    // The same session again: refused, the nonce is spent (from the durable record, since memory is new).
    assert.equal(refusalCode(await askShares(pool, 5, request, message, signers)), 'nonce_spent');
    // A commitment made before the crash and never used: its nonce died with the process.
    const withUnused = [{ memberId: 5, commitments: [unused!] }, ...signers.slice(1)];
    assert.equal(refusalCode(await askShares(pool, 5, signRequestFor(alice, 'btc', message, devnet.deployment), message, withUnused)), 'nonce_unknown');
    // New commitments are new nonces.
    const fresh = await commitmentsOf(pool, 5, 'btc', 8);
    const before = new Set([signers[0]!.commitments[0]!.hiding, unused!.hiding].map(encodeHex));
    assert.equal(fresh.some((c) => before.has(encodeHex(c.hiding))), false);
    // And member 5 signs again, in a fresh session with them.
    const session = [{ memberId: 5, commitments: [fresh[0]!] }, ...(await sessionOf(pool, [1, 3], 'btc'))];
    const again = signRequestFor(alice, 'btc', message, devnet.deployment);
    const replies = await Promise.all([5, 1, 3].map((m) => askShares(pool, m, again, message, session)));
    assert.deepEqual(replies.map(refusalCode), [undefined, undefined, undefined]);
  });
});
