import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTempDir, removeDir, runTkms } from '../support/processes.ts';

describe('tkms CLI: node and dkg commands', function () {
  this.timeout(60_000);
  let dir: string | undefined;

  before(async () => {
    dir = await makeTempDir('tkms-node-cli');
  });
  after(async () => {
    await removeDir(dir);
  });

  const baseConfig = () => ({
    listen: '/ip4/127.0.0.1/tcp/4999',
    http: '127.0.0.1:4998',
    admin: '127.0.0.1:4997',
    identityFile: 'identity.json',
    keystoreDir: 'keystore',
    committeeFile: 'committee.json',
  });

  it('prints help for every command', async () => {
    const runs = await Promise.all([
      runTkms(['--help']),
      runTkms(['node', '--help']),
      runTkms(['node', 'init', '--help']),
      runTkms(['node', 'start', '--help']),
      runTkms(['dkg', '--help']),
      runTkms(['dkg', 'start', '--help']),
    ]);
    for (const r of runs) {
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /Usage: tkms/);
    }
    // The config fields and their environment variables are part of "node start --help".
    assert.match(runs[3]!.stdout, /TKMS_KEYSTORE_PASSWORD/);
    const unknown = await runTkms(['frobnicate']);
    assert.equal(unknown.code, 2);
    assert.match(unknown.stderr, /unknown command/);
  });

  it('node init writes a 0600 identity, prints peer id and multiaddr, and refuses to overwrite', async () => {
    const cfg = join(dir!, 'config.json');
    await writeFile(cfg, JSON.stringify(baseConfig()));
    const first = await runTkms(['node', 'init', '--config', cfg]);
    assert.equal(first.code, 0, first.stderr);
    const peerId = /peer id:\s+(12D3Koo\w+)/.exec(first.stdout)?.[1];
    assert.ok(peerId !== undefined, first.stdout);
    assert.match(first.stdout, new RegExp(`multiaddr: /ip4/127.0.0.1/tcp/4999/p2p/${peerId}`));
    const identityPath = join(dir!, 'identity.json');
    assert.equal((await stat(identityPath)).mode & 0o777, 0o600);
    const before = await readFile(identityPath, 'utf8');
    const second = await runTkms(['node', 'init', '--config', cfg]);
    assert.equal(second.code, 1);
    assert.match(second.stderr, /already exists/);
    assert.equal(await readFile(identityPath, 'utf8'), before);
  });

  it('node start rejects a bad config with one message per mistake, and testFaults without the env switch', async () => {
    const cfg = join(dir!, 'bad.json');
    await writeFile(cfg, JSON.stringify({ ...baseConfig(), http: 'nope', admin: '0.0.0.0:1', keystoreDir: 7, color: 'blue' }));
    const r = await runTkms(['node', 'start', '--config', cfg]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /unknown field "color"/);
    assert.match(r.stderr, /http must be/);
    assert.match(r.stderr, /admin must listen on a loopback address/);
    assert.match(r.stderr, /keystoreDir must be/);
    const faulty = join(dir!, 'faulty.json');
    await writeFile(faulty, JSON.stringify({ ...baseConfig(), testFaults: { silent: true } }));
    const f = await runTkms(['node', 'start', '--config', faulty], { env: { TKMS_ENABLE_TEST_FAULTS: '' } });
    assert.equal(f.code, 1);
    assert.match(f.stderr, /TKMS_ENABLE_TEST_FAULTS=1/);
    const missing = await runTkms(['node', 'start']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--config is required/);
  });

  it('dkg start reports an unreachable admin endpoint', async () => {
    const r = await runTkms(['dkg', 'start', '--key', 'k1', '--admin', 'http://127.0.0.1:1']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /cannot reach the admin endpoint/);
  });
});
