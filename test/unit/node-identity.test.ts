import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ed25519 } from '@noble/curves/ed25519.js';
import { isTkmsError } from '../../core/index.ts';
import { parseCommittee } from '../../net/committee.ts';
import { loadConfig, resolveKeystorePassword } from '../../node/config.ts';
import { createIdentityFile, loadIdentityFile } from '../../node/identity.ts';
import { ceremonyIdentity } from '../../node/ceremony-identity.ts';
import { verifyMemberSignature } from '../../core/dkg/index.ts';
import { makeTempDir, removeDir } from '../support/processes.ts';

describe('node identity and config files', () => {
  let dir: string | undefined;
  beforeEach(async () => {
    dir = await makeTempDir('tkms-node-identity');
  });
  afterEach(async () => {
    await removeDir(dir);
  });

  it('creates an identity with mode 0600, reloads it, and refuses to overwrite it', async () => {
    const path = join(dir!, 'sub', 'identity.json');
    const created = await createIdentityFile(path);
    assert.match(created.peerId, /^12D3Koo/);
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    const loaded = await loadIdentityFile(path);
    assert.equal(loaded.peerId, created.peerId);
    const before = await readFile(path, 'utf8');
    await assert.rejects(createIdentityFile(path), (e) => isTkmsError(e, 'conflict'));
    assert.equal(await readFile(path, 'utf8'), before);
  });

  it('rejects a damaged or swapped identity file with a clear error', async () => {
    const path = join(dir!, 'identity.json');
    await createIdentityFile(path);
    const obj = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
    await writeFile(path, JSON.stringify({ ...obj, peerId: '12D3KooWSomethingElse' }));
    await assert.rejects(loadIdentityFile(path), (e) => isTkmsError(e, 'bad_request') && /does not match/.test(e.message));
    await writeFile(path, 'not json');
    await assert.rejects(loadIdentityFile(path), (e) => isTkmsError(e, 'bad_request') && /not JSON/.test(e.message));
    await assert.rejects(loadIdentityFile(join(dir!, 'missing.json')), /tkms node init/);
  });

  it('member identity (ceremonies, DKG): a member signature verifies only for that member and message', async () => {
    const a = await createIdentityFile(join(dir!, 'a.json'));
    const b = await createIdentityFile(join(dir!, 'b.json'));
    const committee = parseCommittee({
      committeeId: 'c',
      t: 1,
      members: [
        { id: 1, peerId: a.peerId, multiaddrs: ['/ip4/127.0.0.1/tcp/1'] },
        { id: 2, peerId: b.peerId, multiaddrs: ['/ip4/127.0.0.1/tcp/2'] },
      ],
    });
    const ia = ceremonyIdentity(a);
    const keyOf = (id: number) => committee.members.find((m) => m.id === id)!.publicKey;
    assert.deepEqual(ia.publicKey, keyOf(1));
    const msg = new TextEncoder().encode('transcript');
    const sig = ia.sign(msg);
    assert.equal(verifyMemberSignature(keyOf(1), msg, sig), true);
    assert.equal(verifyMemberSignature(keyOf(2), msg, sig), false);
    assert.equal(verifyMemberSignature(keyOf(1), new TextEncoder().encode('transcripT'), sig), false);
    assert.equal(verifyMemberSignature(keyOf(1), msg, sig.subarray(1)), false);
    // Standard Ed25519: noble verifies it against the public key inside the peer id.
    const prefixed = new Uint8Array([...new TextEncoder().encode('tkms/dkg-identity/v1\0'), ...msg]);
    assert.equal(ed25519.verify(sig, prefixed, committee.members[0]!.publicKey), true);
    assert.deepEqual(sig, ed25519.sign(prefixed, a.privateKey.raw.subarray(0, 32)));
  });

  it('loads a config with relative paths and resolves the keystore password (env first, then file)', async () => {
    const cfgPath = join(dir!, 'config.json');
    await writeFile(join(dir!, 'pw.txt'), 'from-file\n');
    await writeFile(
      cfgPath,
      JSON.stringify({
        listen: '/ip4/127.0.0.1/tcp/0',
        http: '127.0.0.1:0',
        admin: '127.0.0.1:0',
        identityFile: 'id.json',
        keystoreDir: 'ks',
        committeeFile: 'committee.json',
        keystorePasswordFile: 'pw.txt',
      }),
    );
    const config = await loadConfig(cfgPath, {});
    assert.equal(config.keystoreDir, join(dir!, 'ks'));
    assert.equal(await resolveKeystorePassword(config, {}), 'from-file');
    assert.equal(await resolveKeystorePassword(config, { TKMS_KEYSTORE_PASSWORD: 'env' }), 'env');
    const overridden = await loadConfig(cfgPath, { TKMS_KEYSTORE_DIR: '/var/lib/tkms', TKMS_DKG_PHASE_TIMEOUT_MS: '2500' });
    assert.equal(overridden.keystoreDir, '/var/lib/tkms');
    assert.equal(overridden.dkgPhaseTimeoutMs, 2500);
    await writeFile(cfgPath, '{ nope');
    await assert.rejects(loadConfig(cfgPath, {}), (e) => isTkmsError(e, 'bad_request') && /not valid JSON/.test(e.message));
  });
});
