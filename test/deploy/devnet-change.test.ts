import assert from 'node:assert/strict';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Devnet } from '../../deploy/devnet.ts';
import { loadCommitteeFile } from '../../net/committee.ts';
import { loadIdentityFile } from '../../node/identity.ts';
import { makeTempDir, removeDir } from '../support/processes.ts';

/**
 * `tkms devnet` with another n or t on an existing directory plans a committee change: new
 * identities and ports for joining nodes (their config names the next committee file), the next
 * committee file (epoch + 1, same id), remembered in devnet.json so a restart resumes it. Only
 * the planning is checked here (no process starts); the change itself runs against real nodes.
 */
describe('devnet: another n or t on an existing directory plans a committee change', function () {
  this.timeout(60_000);
  let dir: string;

  beforeEach(async () => {
    dir = await makeTempDir('tkms-devnet-change');
    // Lays out a 3-of-5 devnet (identities, committee, configs) without starting it.
    await (await Devnet.prepare({ dir, n: 5, t: 3, gatewayPort: 0 })).stop();
  });

  afterEach(() => removeDir(dir));

  const layout = async () => JSON.parse(await readFile(join(dir, 'devnet.json'), 'utf8'));
  const nodeConfig = async (id: number) => JSON.parse(await readFile(join(dir, `node${id}`, 'config.json'), 'utf8'));

  it('3-of-5 → 4-of-7: two new nodes with their own identity and ports, configured with the committee of epoch 1', async () => {
    const before = await loadCommitteeFile(join(dir, 'committee.json'));
    const net = await Devnet.prepare({ dir, n: 7, t: 4, gatewayPort: 0 });
    await net.stop();
    const l = await layout();
    assert.deepEqual([l.n, l.t, l.change.n, l.change.t, l.change.toEpoch, l.change.removed], [5, 3, 7, 4, 1, []]);
    assert.deepEqual(l.change.added.map((m: { id: number }) => m.id), [6, 7]);
    assert.deepEqual(net.nodes.map((n) => n.id), [1, 2, 3, 4, 5, 6, 7], 'the joining nodes are started with the others');
    const next = await loadCommitteeFile(join(dir, 'committee-epoch1.json'));
    assert.deepEqual([next.committeeId, next.epoch, next.t, next.members.length], [before.committeeId, 1, 4, 7]);
    for (const m of before.members) assert.equal(next.members.find((x) => x.id === m.id)?.peerId, m.peerId, `member ${m.id} stays`);
    const ports = new Set(l.nodes.concat(l.change.added).flatMap((m: { p2pPort: number; httpPort: number; adminPort: number }) => [m.p2pPort, m.httpPort, m.adminPort]));
    assert.equal(ports.size, 21, 'every port differs');
    for (const id of [6, 7]) {
      assert.equal((await nodeConfig(id)).committeeFile, '../committee-epoch1.json');
      assert.equal(next.members.find((x) => x.id === id)?.peerId, (await loadIdentityFile(join(dir, `node${id}`, 'identity.json'))).peerId);
    }
    for (const id of [1, 5]) assert.equal((await nodeConfig(id)).committeeFile, '../committee.json', 'current members keep their committee file');
    // committee.json, the file clients pin, is still epoch 0.
    assert.equal((await loadCommitteeFile(join(dir, 'committee.json'))).epoch, 0);
    assert.equal(net.epoch, 0);

    // A restart without --n/--t resumes the same change; another target is refused until it is done.
    const again = await Devnet.prepare({ dir, gatewayPort: 0 });
    await again.stop();
    assert.deepEqual((await layout()).change, l.change);
    await assert.rejects(Devnet.prepare({ dir, n: 9, t: 4, gatewayPort: 0 }), /is moving from 3-of-5 to 4-of-7 \(epoch 1\); re-run without --n\/--t to finish that first/);
  });

  it('shrinking removes the highest ids; t alone is a reshare of the same members', async () => {
    await (await Devnet.prepare({ dir, n: 4, t: 3, gatewayPort: 0 })).stop();
    const l = await layout();
    assert.deepEqual([l.change.n, l.change.t, l.change.removed, l.change.added], [4, 3, [5], []]);
    assert.deepEqual((await loadCommitteeFile(join(dir, 'committee-epoch1.json'))).members.map((m) => m.id), [1, 2, 3, 4]);

    const other = await makeTempDir('tkms-devnet-change-t');
    try {
      await (await Devnet.prepare({ dir: other, n: 5, t: 3, gatewayPort: 0 })).stop();
      await (await Devnet.prepare({ dir: other, t: 4, gatewayPort: 0 })).stop();
      const change = JSON.parse(await readFile(join(other, 'devnet.json'), 'utf8')).change;
      assert.deepEqual([change.n, change.t, change.added, change.removed], [5, 4, [], []]);
    } finally {
      await removeDir(other);
    }
  });

  it('the same n and t is no change; t above n is refused', async () => {
    await (await Devnet.prepare({ dir, n: 5, t: 3, gatewayPort: 0 })).stop();
    assert.equal((await layout()).change, undefined);
    await assert.rejects(stat(join(dir, 'committee-epoch1.json')));
    await assert.rejects(Devnet.prepare({ dir, n: 4, t: 5, gatewayPort: 0 }), /1 ≤ t ≤ n ≤ 64/);
  });
});
