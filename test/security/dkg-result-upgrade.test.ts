import assert from 'node:assert/strict';
import { chmod, cp, readFile, readdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateAccount, TkmsClient } from '../../client/index.ts';
import { hasLegacyConfirmations, parseDkgPublicResult, verifyDkgPublicResult } from '../../core/dkg/index.ts';
import { Devnet, freePorts, getJson } from '../../deploy/devnet.ts';
import { expectedCommittee, loadCommitteeFile, pinnedClientOptions } from '../../net/committee.ts';
import { Keystore } from '../../node/keystore.ts';
import { makeTempDir, REPO_ROOT, removeDir, waitFor } from '../support/processes.ts';

/**
 * Keys made before results were signed whole (70e9873: signatures over the transcript hash only)
 * keep working: today's nodes, started on keystores 70e9873 wrote (test/fixtures/keystore-70e9873),
 * re-sign their stored result, exchange signatures, store the upgraded result atomically, and the
 * gateway publishes it once t members hold it with v2 signatures. The fixture's keystores also
 * use scrypt N = 2^15, which must still open.
 */
const FIXTURE = join(REPO_ROOT, 'test/fixtures/keystore-70e9873');

interface Layout {
  gatewayPort: number;
  nodes: { id: number; p2pPort: number; httpPort: number; adminPort: number }[];
}

/** A private copy of the fixture on fresh ports (addresses are not part of what is signed). */
async function copyFixture(dir: string): Promise<void> {
  await cp(FIXTURE, dir, { recursive: true });
  const layoutPath = join(dir, 'devnet.json');
  const layout = JSON.parse(await readFile(layoutPath, 'utf8')) as Layout;
  const ports = await freePorts(layout.nodes.length * 3 + 1);
  layout.nodes.forEach((node, i) => {
    [node.p2pPort, node.httpPort, node.adminPort] = ports.slice(3 * i, 3 * i + 3) as [number, number, number];
  });
  layout.gatewayPort = ports[ports.length - 1]!;
  await writeFile(layoutPath, JSON.stringify(layout, null, 2));
  const committeePath = join(dir, 'committee.json');
  const committee = JSON.parse(await readFile(committeePath, 'utf8')) as { members: { id: number; multiaddrs: string[] }[] };
  for (const m of committee.members) m.multiaddrs = [`/ip4/127.0.0.1/tcp/${layout.nodes.find((n) => n.id === m.id)!.p2pPort}`];
  await writeFile(committeePath, JSON.stringify(committee, null, 2));
  // git keeps no modes; the node insists on private files.
  await chmod(dir, 0o700);
  for (const node of layout.nodes) {
    const nodeDir = join(dir, `node${node.id}`);
    await chmod(nodeDir, 0o700);
    await chmod(join(nodeDir, 'keystore'), 0o700);
    for (const f of await readdir(join(nodeDir, 'keystore'))) await chmod(join(nodeDir, 'keystore', f), 0o600);
    await chmod(join(nodeDir, 'identity.json'), 0o600);
  }
  await chmod(join(dir, 'keystore-password'), 0o600);
}

describe('attack: publish a pre-v2 DKG result whose signatures do not cover the key (upgrade from 70e9873 keystores)', function () {
  this.timeout(240_000);
  let root: string | undefined;
  let devnet: Devnet | undefined;

  before(async () => {
    root = await makeTempDir('tkms-upgrade');
    await copyFixture(join(root, 'devnet'));
  });

  after(async () => {
    await devnet?.stop();
    await removeDir(root);
  });

  it('the fixture holds a result only the old rule accepts', async () => {
    const dir = join(root!, 'devnet');
    const committee = await loadCommitteeFile(join(dir, 'committee.json'));
    const pinned = expectedCommittee(committee);
    const password = (await readFile(join(dir, 'keystore-password'), 'utf8')).trim();
    const keystore = await Keystore.open(join(dir, 'node1/keystore'), password);
    try {
      const stored = parseDkgPublicResult((await keystore.load('legacy')).publicResult);
      assert.equal(hasLegacyConfirmations(stored, pinned), true);
      assert.throws(() => verifyDkgPublicResult(stored, pinned), /valid member signatures/);
    } finally {
      keystore.close();
    }
  });

  it('today\'s nodes re-sign it among themselves; the gateway serves it with v2 signatures and it decrypts', async () => {
    const dir = join(root!, 'devnet');
    const expected = JSON.parse(await readFile(join(FIXTURE, 'expected.json'), 'utf8')) as { keyId: string; groupPublicKey: string; sessionId: string };
    // Devnet.start reuses the directory: no new DKG (the key is held), and it waits for GET /v1/keys/legacy.
    devnet = await Devnet.start({ dir, gatewayPort: 0, keyId: expected.keyId, logLevel: 'info' });
    const committee = await loadCommitteeFile(join(dir, 'committee.json'));
    const pinned = expectedCommittee(committee);

    const served = await getJson(`${devnet.gatewayUrl}/v1/keys/${expected.keyId}`);
    assert.equal(served.status, 200);
    assert.equal(served.json.publicKey, expected.groupPublicKey);
    assert.equal(served.json.sessionId, expected.sessionId);
    // `epoch` is the epoch the gateway serves; the result's own epoch is `resultEpoch` (absent at 0).
    const { publicKey, publicKeySpki: _spki, members: _members, epoch: _served, resultEpoch, ...rest } = served.json;
    const verified = verifyDkgPublicResult(parseDkgPublicResult({ ...rest, ...(resultEpoch === undefined ? {} : { epoch: resultEpoch }), groupPublicKey: publicKey }), pinned);
    assert.ok(Object.keys(verified.signatures).length >= 2);

    // Each node replaced its key file with the re-signed result (still encrypted, same share).
    const password = (await readFile(join(dir, 'keystore-password'), 'utf8')).trim();
    await waitFor(
      'every node to store the re-signed result',
      async () => {
        for (const id of [1, 2, 3]) {
          const keystore = await Keystore.open(join(dir, `node${id}/keystore`), password);
          try {
            verifyDkgPublicResult(parseDkgPublicResult((await keystore.load(expected.keyId)).publicResult), pinned);
          } catch {
            return undefined;
          } finally {
            keystore.close();
          }
        }
        return true;
      },
      { timeoutMs: 60_000, intervalMs: 500 },
    );

    // The old shares still decrypt: encrypt locally to the verified key, decrypt through the network.
    const alice = new TkmsClient({ gatewayUrl: devnet.gatewayUrl, account: generateAccount(), ...pinnedClientOptions(committee) });
    const info = await alice.encryptLocally(new TextEncoder().encode('kept across the upgrade'), { keyId: expected.keyId });
    assert.equal(new TextDecoder().decode((await alice.decrypt(info.handle)).plaintext), 'kept across the upgrade');

    // After a restart the node loads the upgraded result as valid and publishes it at once.
    await devnet.restartNode(1);
    // /admin/keys also lists keys still being re-signed, so check the loaded result itself, at once:
    // it must carry t valid v2 signatures straight from the keystore, not after another exchange.
    const loaded = await waitFor(
      'node 1 to load the key again',
      async () => ((await getJson(`${devnet!.node(1).adminUrl}/admin/keys`)).json.keys as { keyId: string }[] | undefined)?.find((k) => k.keyId === expected.keyId),
      { timeoutMs: 30_000 },
    );
    verifyDkgPublicResult(parseDkgPublicResult(loaded), pinned);
    // Logged once, by the first start on the old keystore; the restart found nothing to re-sign.
    const log = await readFile(join(dir, 'node1/node.log'), 'utf8');
    assert.equal(log.split('re-signing it with the other members').length - 1, 1);
    assert.equal(log.split('tkms node started').length - 1, 2);
  });
});
