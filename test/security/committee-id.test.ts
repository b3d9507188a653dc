import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { isTkmsError } from '../../core/index.ts';
import { runTkmsCli } from '../../scripts/cli/program.ts';
import { loadCommitteeFile } from '../../net/committee.ts';
import { parseConfig } from '../../node/config.ts';
import { startNode } from '../../node/daemon.ts';
import { captureCli } from '../deploy/cli-capture.ts';
import { makeTempDir, removeDir } from '../support/processes.ts';

/**
 * Attack: two deployments built from the same example share a committee id, and the id is the
 * salt of every signature's domain, so a grant or revocation signed for one is valid at the other.
 * The generator makes ids unique; the ids the examples ship are placeholders a node refuses.
 */
const SHIPPED = ['deploy/compose/committee.example.json', 'deploy/kubernetes/committee.json'];

describe('attack: deployments built from the shipped examples share a committee id', () => {
  let dir: string;
  let member = '';

  before(async () => {
    dir = await makeTempDir('tkms-sec-committee-id');
    member = `1=/ip4/10.0.0.1/tcp/9000/p2p/${peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()}`;
  });
  after(async () => removeDir(dir));

  const newCommittee = async (out: string, ...args: string[]) => captureCli(() => runTkmsCli(['committee', 'new', ...args, '--t', '1', '--member', member, '--out', join(dir, out)]));

  it('tkms committee new gives two deployments named alike different ids', async () => {
    const a = await newCommittee('a.json', '--id', 'acme-prod');
    const b = await newCommittee('b.json', '--id', 'acme-prod');
    assert.equal(a.code, 0, a.stderr);
    assert.equal(b.code, 0, b.stderr);
    const [ida, idb] = [(await loadCommitteeFile(join(dir, 'a.json'))).committeeId, (await loadCommitteeFile(join(dir, 'b.json'))).committeeId];
    assert.match(ida, /^acme-prod-[0-9a-f]{10}$/);
    assert.match(idb, /^acme-prod-[0-9a-f]{10}$/);
    assert.notEqual(ida, idb);
  });

  it('--exact-id keeps an existing committee\'s id (re-addressing its members)', async () => {
    const r = await newCommittee('exact.json', '--id', 'acme-prod-3f9c1a7be2', '--exact-id');
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await loadCommitteeFile(join(dir, 'exact.json'))).committeeId, 'acme-prod-3f9c1a7be2');
  });

  it('the generator refuses a placeholder id, even with --exact-id', async () => {
    for (const id of ['compose-example', 'k8s-example']) {
      const r = await newCommittee(`${id}.json`, '--id', id, '--exact-id');
      assert.equal(r.code, 1);
      assert.match(r.stderr, /placeholder/);
    }
  });

  it('a node refuses to start with the committee id of either shipped example', async () => {
    for (const shipped of SHIPPED) {
      const committee = JSON.parse(await readFile(shipped, 'utf8')) as { committeeId: string };
      assert.match(committee.committeeId, /example/i, `${shipped} ships an obvious placeholder id`);
      const file = join(dir, `shipped-${committee.committeeId}.json`);
      await writeFile(file, JSON.stringify(committee));
      const config = parseConfig({ listen: '/ip4/127.0.0.1/tcp/0', http: '127.0.0.1:0', admin: '127.0.0.1:0', committeeFile: file, identityFile: 'identity.json', keystoreDir: 'keystore', stateDir: 'state' }, { baseDir: dir, env: {} });
      await assert.rejects(startNode(config, {}), (e: unknown) => isTkmsError(e) && e.code === 'bad_request' && /placeholder/.test(e.message));
    }
  });
});
