import assert from 'node:assert/strict';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { generateAccount, TkmsClient, type Account, type KeyView } from '../../client/index.ts';
import { Devnet } from '../../deploy/devnet.ts';
import { makeTempDir, removeDir, waitFor } from '../support/processes.ts';
import { expectRefusal } from '../support/refusal.ts';
import { postJson } from '../support/reshare.ts';
import { getJson } from '../../deploy/devnet-loopback.ts';

/**
 * Managed keys through the whole system on a real devnet (5 node processes, t = 3, a gateway):
 * created, named, tagged, disabled, rotated and deleted through the HTTP API with the client
 * library, every change signed by the key's admin. The test committee allows short deletion windows
 * (keys.allowShortDeletionWindow), so a deletion ends in seconds.
 */
const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const read = (b: Uint8Array): string => new TextDecoder().decode(b);

describe('integration: managed keys through the API (devnet: 5 nodes, t = 3, gateway, client)', function () {
  this.timeout(240_000);
  let dir: string;
  let devnet: Devnet;
  let alice: TkmsClient;
  let bob: TkmsClient;
  const handles: Record<string, string> = {};

  before(async () => {
    dir = await makeTempDir('tkms-keys-api');
    devnet = await Devnet.start({ dir, n: 5, t: 3, gatewayPort: 0, logLevel: 'info', keys: { creators: 'open', allowShortDeletionWindow: true } });
    const pinned = await devnet.pinned();
    const client = (account: Account): TkmsClient => new TkmsClient({ gatewayUrl: devnet.gatewayUrl, account, ...pinned });
    [alice, bob] = [client(generateAccount()), client(generateAccount())];
  });

  after(async () => {
    await devnet?.stop();
    await removeDir(dir);
  });

  /** Waits until the gateway publishes the DKG result of `version` (the committee ran its DKG). */
  async function ready(keyId: string, version: number): Promise<KeyView> {
    return waitFor(`version ${version} of ${keyId} published`, async () => {
      const view = await alice.keys.describe(keyId);
      return view.versions.find((v) => v.version === version)?.publicKey === undefined ? undefined : view;
    }, { timeoutMs: 60_000 });
  }

  /** The key file of `materialId` in each node's keystore: true while it is there. */
  async function keyFiles(materialId: string): Promise<boolean[]> {
    return Promise.all(devnet.nodes.map((n) => access(join(devnet.dir, `node${n.id}`, 'keystore', `${materialId}.key.json`)).then(() => true, () => false)));
  }

  it('creates a DKG key and a derived key through the API, and decrypts with both', async () => {
    const created = await alice.keys.create({ keyId: 'app', description: 'application secrets', tags: { env: 'prod' }, aliases: ['alias/app'] });
    assert.equal(created.effective, true);
    assert.equal(created.key.state, 'Enabled');
    const view = await ready('app', 1);
    assert.equal(view.versions[0]!.materialKeyId, 'app');
    assert.deepEqual(await keyFiles('app'), [true, true, true, true, true]);

    const h = await alice.encrypt(text('v1 secret'), { keyId: 'alias/app' });
    assert.equal(h.keyId, 'app');
    handles.v1 = h.handle;
    assert.equal(read((await alice.decrypt(h.handle)).plaintext), 'v1 secret');

    const derived = await alice.keys.create({ keyId: 'user-7', origin: { type: 'derived', root: devnet.keyId, path: 'users/7' } });
    assert.equal(derived.effective, true);
    const hd = await alice.encryptLocally(text('for user 7'), { keyId: 'user-7' });
    assert.equal(read((await alice.decrypt(hd.handle)).plaintext), 'for user 7');
  });

  it('aliases and tags round trip and filter the listing', async () => {
    await alice.keys.tag('app', { team: 'payments' });
    await alice.keys.renameAlias('app', 'alias/app', 'alias/app-main');
    assert.deepEqual((await alice.keys.list({ tag: 'team=payments' })).map((k) => k.keyId), ['app']);
    assert.deepEqual((await alice.keys.list({ tag: 'team=other' })).map((k) => k.keyId), []);
    assert.deepEqual((await alice.keys.list({ alias: 'alias/app-main' })).map((k) => k.keyId), ['app']);
    assert.deepEqual((await alice.keys.list({ state: 'Enabled' })).map((k) => k.keyId), ['app', 'user-7']);
    const view = await alice.keys.describe('alias/app-main');
    assert.deepEqual([view.keyId, view.aliases, view.tags], ['app', ['alias/app-main'], { env: 'prod', team: 'payments' }]);
    await alice.keys.untag('app', ['env']);
    assert.deepEqual((await alice.keys.describe('app')).tags, { team: 'payments' });
    await expectRefusal(alice.keys.describe('alias/app'), 'unknown_key');
    // An alias another key holds.
    await expectRefusal(alice.keys.createAlias('user-7', 'alias/app-main'), 'alias_taken');
  });

  it('a change signed by someone who is not an admin is refused', async () => {
    await expectRefusal(bob.keys.disable('app'), 'not_key_admin');
    assert.equal((await alice.keys.describe('app')).state, 'Enabled');
  });

  it('a disabled key is refused by the client, the gateway and every node, and works again once enabled', async () => {
    const disabled = await alice.keys.disable('app');
    assert.equal(disabled.effective, true);
    await expectRefusal(alice.encrypt(text('x'), { keyId: 'app' }), 'key_disabled');
    await expectRefusal(alice.encryptLocally(text('x'), { keyId: 'app' }), 'key_disabled');
    await expectRefusal(alice.decrypt(handles.v1!), 'key_disabled');
    await alice.keys.enable('app');
    assert.equal(read((await alice.decrypt(handles.v1!)).plaintext), 'v1 secret');
  });

  it('rotation: new encryptions use version 2, version-1 handles still decrypt, and destroying version 1 leaves version 2 working', async () => {
    await alice.keys.rotate('app');
    const view = await ready('app', 2);
    assert.equal(view.currentVersion, 2);
    const h2 = await alice.encrypt(text('v2 secret'), { keyId: 'app' });
    assert.equal(h2.keyId, 'app.v2');
    assert.equal(read((await alice.decrypt(handles.v1!)).plaintext), 'v1 secret');
    assert.equal(read((await alice.decrypt(h2.handle)).plaintext), 'v2 secret');

    await expectRefusal(alice.keys.scheduleDeletion('app', { pendingWindowSeconds: 60, version: 2 }), 'key_change_invalid');
    await alice.keys.scheduleDeletion('app', { pendingWindowSeconds: 2, version: 1 });
    await expectRefusal(alice.decrypt(handles.v1!), 'key_pending_deletion');
    const gone = await waitFor('n − t + 1 receipts for version 1', async () => {
      const v1 = (await alice.keys.describe('app')).destruction?.find((x) => x.version === 1);
      return v1?.confirmedBy.length === 5 ? v1 : undefined;
    }, { timeoutMs: 30_000 });
    // Counted by the client itself, against the member keys of the committee it pinned.
    assert.deepEqual([gone.verified, gone.destroyed, gone.needed], [true, true, 3]);
    assert.deepEqual(await keyFiles('app'), [false, false, false, false, false]);
    await expectRefusal(alice.decrypt(handles.v1!), 'key_destroyed');
    assert.equal(read((await alice.decrypt(h2.handle)).plaintext), 'v2 secret');
    assert.deepEqual(await keyFiles('app.v2'), [true, true, true, true, true]);
  });

  it('deleting a key: a cancel before the end restores it Disabled; a short window destroys it at every node', async () => {
    await alice.keys.create({ keyId: 'temp' });
    await ready('temp', 1);
    const h = await alice.encrypt(text('short-lived'), { keyId: 'temp' });
    await alice.keys.scheduleDeletion('temp', { pendingWindowSeconds: 600 });
    assert.equal((await alice.keys.describe('temp')).state, 'PendingDeletion');
    await expectRefusal(alice.decrypt(h.handle), 'key_pending_deletion');
    await alice.keys.cancelDeletion('temp');
    assert.equal((await alice.keys.describe('temp')).state, 'Disabled');
    await expectRefusal(alice.decrypt(h.handle), 'key_disabled');
    await alice.keys.enable('temp');
    assert.equal(read((await alice.decrypt(h.handle)).plaintext), 'short-lived');

    await alice.keys.scheduleDeletion('temp', { pendingWindowSeconds: 2 });
    const gone = await waitFor('n − t + 1 receipts for temp', async () => {
      const d = await alice.keys.describe('temp');
      return d.destruction?.[0]?.confirmedBy.length === 5 ? d : undefined;
    }, { timeoutMs: 30_000 });
    assert.equal(gone.state, 'Destroyed');
    assert.deepEqual(await keyFiles('temp'), [false, false, false, false, false]);
    await expectRefusal(alice.decrypt(h.handle), 'key_destroyed');
    await expectRefusal(alice.keys.enable('temp'), 'key_destroyed');
  });

  it('a refresh after a key was destroyed moves the committee\'s other keys and leaves the destroyed one behind', async () => {
    const res = await postJson(`${devnet.nodes[0]!.adminUrl}/admin/refresh`, {});
    assert.equal(res.status, 202, JSON.stringify(res.json));
    const proposalId = res.json.proposalId as string;
    for (const node of devnet.nodes) {
      const status = await waitFor(`node ${node.id} refreshed`, async () => {
        const list = (await getJson(`${node.adminUrl}/admin/reshare`)).json as { proposals: { proposalId: string; status: string; failureReason?: string }[] };
        const p = list.proposals.find((x) => x.proposalId === proposalId);
        return p !== undefined && (p.status === 'done' || p.status === 'failed') ? p : undefined;
      }, { timeoutMs: 120_000, intervalMs: 250 });
      assert.equal(status.status, 'done', `node ${node.id}: ${status.failureReason}`);
    }
    // The version that lives on, and the root of the derived key, decrypt at the new epoch.
    const h2 = await alice.encrypt(text('after the refresh'), { keyId: 'app' });
    assert.equal(h2.keyId, 'app.v2');
    assert.equal(read((await alice.decrypt(h2.handle)).plaintext), 'after the refresh');
    const hd = await alice.encryptLocally(text('derived, after the refresh'), { keyId: 'user-7' });
    assert.equal(read((await alice.decrypt(hd.handle)).plaintext), 'derived, after the refresh');
  });
});
