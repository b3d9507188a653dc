import assert from 'node:assert/strict';
import { readFile, rename, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { bytesToHex, encodeHex, encodeScalar, isTkmsError, randomBytes, randomScalar } from '../../core/index.ts';
import { DkgStateFiles } from '../../node/dkg-state.ts';
import { createIdentityFile, loadIdentityFile } from '../../node/identity.ts';
import { loadCommitteeFile } from '../../net/committee.ts';
import { Keystore } from '../../node/keystore.ts';
import { createBackup, openBackup, parseBackup, restoreBackup, writeBackupFile } from '../../node/keystore-backup.ts';
import { runTkmsCli } from '../../scripts/cli/program.ts';
import { ANVIL_DEV_PRIVATE_KEY, startAnvil } from '../../chain/anvil.ts';
import { deployAcl } from '../../chain/deploy.ts';
import { freePorts, getJson, makeTempDir, ManagedProcess, removeDir, runTkms, TKMS_BIN, waitFor } from '../support/processes.ts';
import { captureCli } from './cli-capture.ts';
import { keyAt, signedDkgResult } from '../unit/handover-fixtures.ts';

/**
 * Operations: encrypted keystore backup and restore (password rotation included), and
 * `tkms node init/check/status/backup/restore` against a real 1-of-1 node process (a restored node
 * keeps its vote locks).
 */
const PUBLIC = (keyId: string) => ({ keyId, note: 'test public result', t: 2, n: 3 });

async function expectCode(p: Promise<unknown>, code: string, message?: RegExp): Promise<void> {
  try {
    await p;
  } catch (e) {
    assert.ok(isTkmsError(e), `expected a TkmsError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (message) assert.match(e.message, message);
    return;
  }
  assert.fail(`expected ${code}`);
}

const exists = (p: string) => stat(p).then(() => true, () => false);

describe('operations: keystore backup and restore', function () {
  this.timeout(60_000);
  let dir: string;
  const shares = new Map<string, bigint>();
  let peerId: string;

  before(async () => {
    dir = await makeTempDir('tkms-backup');
    peerId = (await createIdentityFile(join(dir, 'node/identity.json'))).peerId;
    const ks = await Keystore.open(join(dir, 'node/keystore'), 'old password');
    for (const keyId of ['orders', 'payroll']) {
      const share = randomScalar();
      shares.set(keyId, share);
      await ks.save({ keyId, share, publicResult: PUBLIC(keyId) });
    }
    ks.close();
  });

  after(() => removeDir(dir));

  async function backupBytes(): Promise<Uint8Array> {
    return (await createBackup({ keystoreDir: join(dir, 'node/keystore'), dkgStateDir: join(dir, 'node/state/dkg'), password: 'old password', identityFile: join(dir, 'node/identity.json'), committeeId: 'c', memberId: 2 })).bytes;
  }

  it('a backup holds every key still encrypted, and opens with the password', async () => {
    const bytes = await backupBytes();
    const text = new TextDecoder().decode(bytes);
    for (const share of shares.values()) assert.ok(!text.includes(bytesToHex(encodeScalar(share))), 'no share in plaintext');
    const identityText = await readFile(join(dir, 'node/identity.json'), 'utf8');
    assert.ok(!text.includes((JSON.parse(identityText) as { privateKey: string }).privateKey), 'no identity key in plaintext');
    const parsed = parseBackup(bytes);
    assert.deepEqual(parsed.node, { peerId, committeeId: 'c', memberId: 2 });
    const opened = await openBackup(parsed, 'old password');
    assert.deepEqual(new Map(opened.keys.map((k) => [k.keyId, k.share])), shares);
    assert.equal(opened.identityText, identityText);
    await expectCode(openBackup(parsed, 'wrong'), 'keystore_locked');
  });

  it('is written atomically with mode 0600 and never replaces a file', async () => {
    const path = join(dir, 'backups/one.tkmsbak');
    await writeBackupFile(path, await backupBytes());
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    const before = await readFile(path);
    await expectCode(writeBackupFile(path, new Uint8Array([1, 2, 3])), 'conflict');
    assert.deepEqual(await readFile(path), before);
  });

  it('restore onto an empty machine with a new password: identity installed, keys re-encrypted (password rotation)', async () => {
    const file = join(dir, 'backups/rotate.tkmsbak');
    await writeBackupFile(file, await backupBytes());
    const target = join(dir, 'replacement');
    const result = await restoreBackup({
      backupFile: file,
      backupPassword: 'old password',
      keystoreDir: join(target, 'keystore'),
      dkgStateDir: join(target, 'state/dkg'),
      keystorePassword: 'new password',
      identityFile: join(target, 'identity.json'),
    });
    assert.deepEqual(result, { restored: ['orders', 'payroll'], identity: 'installed', peerId, ceremonySeed: 'none', backupVersion: 5, voteLocks: { dkgKeyIds: [], reshareProposalIds: [], approvalRecords: 0 }, dkgPublicResults: [] });
    assert.equal((await stat(join(target, 'identity.json'))).mode & 0o777, 0o600);
    assert.equal(await readFile(join(target, 'identity.json'), 'utf8'), await readFile(join(dir, 'node/identity.json'), 'utf8'));
    const ks = await Keystore.open(join(target, 'keystore'), 'new password');
    for (const [keyId, share] of shares) assert.equal((await ks.load(keyId)).share, share);
    ks.close();
    await expectCode(Keystore.open(join(target, 'keystore'), 'old password'), 'keystore_locked');
  });

  it('refuses, writing nothing: a wrong password, a tampered backup, another node, a key already present', async () => {
    const file = join(dir, 'backups/refusals.tkmsbak');
    const bytes = await backupBytes();
    await writeBackupFile(file, bytes);
    const target = join(dir, 'refused');
    const opts = { backupFile: file, backupPassword: 'old password', keystoreDir: join(target, 'keystore'), dkgStateDir: join(target, 'state/dkg'), keystorePassword: 'pw', identityFile: join(target, 'identity.json') };

    await expectCode(restoreBackup({ ...opts, backupPassword: 'nope' }), 'keystore_locked', /--backup-password-file/);
    // One flipped hex digit in a sealed share.
    const doc = JSON.parse(new TextDecoder().decode(bytes)) as { keys: { ciphertext: string }[] };
    const c = doc.keys[1]!.ciphertext;
    doc.keys[1]!.ciphertext = `${c.slice(0, 10)}${c[10] === '0' ? '1' : '0'}${c.slice(11)}`;
    const tampered = join(dir, 'backups/tampered.tkmsbak');
    await writeFile(tampered, JSON.stringify(doc));
    await expectCode(restoreBackup({ ...opts, backupFile: tampered }), 'keystore_corrupt');
    assert.equal(await exists(target), false, 'nothing was written');

    // Another node's identity in place.
    await createIdentityFile(join(target, 'identity.json'));
    await expectCode(restoreBackup(opts), 'conflict', /another node/);
    assert.equal(await exists(join(target, 'keystore')), false);

    // The target keystore exists under another password: refused before the identity is installed.
    const locked = join(dir, 'locked');
    (await Keystore.open(join(locked, 'keystore'), 'the target password')).close();
    await expectCode(restoreBackup({ ...opts, keystoreDir: join(locked, 'keystore'), identityFile: join(locked, 'identity.json') }), 'keystore_locked');
    assert.equal(await exists(join(locked, 'identity.json')), false);

    // The right node, but one key is already there: nothing is replaced, nothing added.
    const own = join(dir, 'own');
    await restoreBackup({ ...opts, keystoreDir: join(own, 'keystore'), identityFile: join(own, 'identity.json') });
    const before = await readFile(join(own, 'keystore', 'orders.key.json'));
    await expectCode(restoreBackup({ ...opts, keystoreDir: join(own, 'keystore'), identityFile: join(own, 'identity.json') }), 'conflict', /never overwrites/);
    assert.deepEqual(await readFile(join(own, 'keystore', 'orders.key.json')), before);
  });

  it('parseBackup: any JSON, or a valid backup with one field replaced, gives a backup or a typed error', async () => {
    const valid = JSON.parse(new TextDecoder().decode(await backupBytes())) as Record<string, unknown>;
    const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        try {
          parseBackup(enc(v));
          assert.fail('arbitrary JSON is not a backup');
        } catch (e) {
          assert.ok(isTkmsError(e, 'bad_request'), String(e));
        }
      }),
      { numRuns: 200 },
    );
    fc.assert(
      fc.property(fc.constantFrom(...Object.keys(valid), 'extra'), fc.constantFrom('keystore', 'node', 'identity'), fc.string({ maxLength: 8 }), fc.jsonValue(), (field, inner, innerKey, value) => {
        const a = structuredClone(valid);
        a[field] = value;
        const b = structuredClone(valid);
        (b[inner] as Record<string, unknown>)[innerKey] = value;
        for (const doc of [a, b]) {
          try {
            parseBackup(enc(doc));
          } catch (e) {
            assert.ok(isTkmsError(e, 'bad_request'), String(e));
          }
        }
      }),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        try {
          parseBackup(bytes);
        } catch (e) {
          assert.ok(isTkmsError(e, 'bad_request'));
        }
      }),
      { numRuns: 200 },
    );
  });
});

describe('operations: tkms node init/check/status/backup/restore on a running node', function () {
  this.timeout(60_000);
  let dir: string;
  let node: ManagedProcess | undefined;
  let config: string;
  let adminUrl: string;
  let httpUrl: string;
  // The in-process commands read these from process.env: make sure the caller's do not leak in.
  const saved = Object.fromEntries(['TKMS_KEYSTORE_PASSWORD', 'TKMS_CONFIG', 'TKMS_BACKUP_PASSWORD'].map((k) => [k, process.env[k]]));

  before(async () => {
    for (const k of Object.keys(saved)) delete process.env[k];
    dir = await makeTempDir('tkms-ops');
    const [p2p, http, admin] = await freePorts(3);
    httpUrl = `http://127.0.0.1:${http}`;
    adminUrl = `http://127.0.0.1:${admin}`;
    config = join(dir, 'node1/config.json');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(join(dir, 'node1'));
    await writeFile(
      config,
      JSON.stringify({ listen: `/ip4/127.0.0.1/tcp/${p2p}`, http: `127.0.0.1:${http}`, admin: `127.0.0.1:${admin}`, identityFile: 'identity.json', keystoreDir: 'keystore', committeeFile: '../committee.json', keystorePasswordFile: 'keystore-password' }),
    );
    await writeFile(join(dir, 'node1/keystore-password'), 'ops test password\n', { mode: 0o600 });
  });

  after(async () => {
    await node?.stop();
    await removeDir(dir);
    for (const [k, v] of Object.entries(saved)) if (v !== undefined) process.env[k] = v;
  });

  it('init (twice with --if-missing), committee new, check, start, status, DKG, status again', async () => {
    const env = { TKMS_KEYSTORE_PASSWORD: '' };
    const init = await runTkms(['node', 'init', '--config', config, '--json'], { env });
    assert.equal(init.code, 0, init.stderr);
    const { peerId, multiaddrs } = JSON.parse(init.stdout) as { peerId: string; multiaddrs: string[] };
    // The rest in this process (the CLI functions themselves): a process start costs seconds.
    const again = await captureCli(() => runTkmsCli(['node', 'init', '--config', config, '--if-missing', '--json']));
    const committee = await captureCli(() => runTkmsCli(['committee', 'new', '--id', 'ops', '--t', '1', '--member', `1=${multiaddrs[0]}`, '--out', join(dir, 'committee.json')]));
    assert.equal(again.code, 0, again.stderr);
    assert.equal((JSON.parse(again.stdout) as { peerId: string; created: boolean }).peerId, peerId);
    assert.equal((JSON.parse(again.stdout) as { created: boolean }).created, false);
    assert.equal(committee.code, 0, committee.stderr);
    assert.match(committee.stdout, /fingerprint: [0-9a-f]{64}/);
    const check = await captureCli(() => runTkmsCli(['node', 'check', '--config', config]));
    assert.equal(check.code, 0, check.stdout + check.stderr);
    assert.match(check.stdout, /identity: .* \(member 1\)/);

    node = new ManagedProcess('ops-node', [TKMS_BIN, 'node', 'start', '--config', config], { env });
    await waitFor('node ready', async () => ((await getJson(`${httpUrl}/health`)).status === 200 ? true : undefined), { timeoutMs: 30_000 });

    const status = await captureCli(() => runTkmsCli(['node', 'status', '--config', config, '--json']));
    assert.equal(status.code, 0, status.stderr);
    const s = JSON.parse(status.stdout) as Record<string, any>;
    assert.equal(s.peerId, peerId);
    assert.equal(s.selfId, 1);
    assert.match(s.committee.committeeId, /^ops-[0-9a-f]{10}$/);
    assert.match(s.committee.fingerprint, /^[0-9a-f]{64}$/);
    assert.match(committee.stdout, new RegExp(s.committee.fingerprint), 'node status and committee show agree on the fingerprint');
    assert.equal(s.version, JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')).version);
    assert.deepEqual(s.keys, []);
    assert.equal(s.lastDkg, null);

    const dkg = await getJson(`${adminUrl}/admin/dkg`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ keyId: 'ops-key' }) });
    assert.equal(dkg.status, 202);
    await waitFor('DKG done', async () => ((await getJson(`${adminUrl}/admin/dkg/ops-key`)).json.status === 'done' ? true : undefined), { timeoutMs: 20_000 });
    const human = await captureCli(() => runTkmsCli(['node', 'status', '--admin', adminUrl]));
    assert.equal(human.code, 0, human.stderr);
    assert.match(human.stdout, /member 1, peer id 12D3KooW/);
    assert.match(human.stdout, /ops-key: public key 0x0[23]/);
    assert.match(human.stdout, /last DKG: +ops-key, completed \S+ in \d+ ms/);
    assert.match(human.stdout, /DKG sessions since start: 1 done, 0 aborted/);
  });

  it('backup while running; restore refuses while running, then rotates the password once stopped', async () => {
    const out = join(dir, 'backup/node1.tkmsbak');
    const backup = await captureCli(() => runTkmsCli(['node', 'backup', '--config', config, '--out', out, '--json']));
    assert.equal(backup.code, 0, backup.stderr);
    assert.deepEqual((JSON.parse(backup.stdout) as { keys: string[] }).keys, ['ops-key']);
    const refused = await captureCli(() => runTkmsCli(['node', 'restore', '--config', config, '--in', out]));
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /stop the node before restoring/);

    await node!.stop();
    // Rotation: keystore aside, new password, restore with the old one, start again.
    await rename(join(dir, 'node1/keystore'), join(dir, 'node1/keystore.old'));
    await writeFile(join(dir, 'node1/old-password'), 'ops test password\n', { mode: 0o600 });
    await writeFile(join(dir, 'node1/keystore-password'), 'a brand new password\n', { mode: 0o600 });
    const restored = await captureCli(() => runTkmsCli(['node', 'restore', '--config', config, '--in', out, '--backup-password-file', join(dir, 'node1/old-password')]));
    assert.equal(restored.code, 0, restored.stderr);
    assert.match(restored.stdout, /restored: +ops-key/);
    const ks = await Keystore.open(join(dir, 'node1/keystore'), 'a brand new password');
    assert.deepEqual(ks.list(), ['ops-key']);
    ks.close();
  });

  it('check with acl.mode chain runs the chain checks of start: chain id, contract code and version, then the head', async () => {
    const anvil = await startAnvil();
    try {
      const { address } = await deployAcl(anvil.url, ANVIL_DEV_PRIVATE_KEY);
      const base = JSON.parse(await readFile(config, 'utf8')) as Record<string, unknown>;
      const withChain = async (name: string, chain: Record<string, unknown>) => {
        const file = join(dir, 'node1', name);
        await writeFile(file, JSON.stringify({ ...base, acl: { mode: 'chain', chain: { chainId: anvil.chainId, contract: address, rpcUrls: [anvil.url], ...chain } } }));
        return captureCli(() => runTkmsCli(['node', 'check', '--config', file]));
      };
      const ok = await withChain('chain-ok.json', {});
      assert.equal(ok.code, 0, ok.stdout + ok.stderr);
      assert.match(ok.stdout, new RegExp(`ok +chain acl: chain ${anvil.chainId}, contract ${address} \\(code and version ok\\), head block \\d+, \\d+ s old\\n`));
      const wrongChain = await withChain('chain-wrong-id.json', { chainId: 1 });
      assert.equal(wrongChain.code, 1);
      assert.match(wrongChain.stdout, /PROBLEM +chain acl: on-chain ACL \(acl\.chain, chain 1, contract 0x[0-9a-fA-F]{40}\): /);
      const noCode = await withChain('chain-no-code.json', { contract: '0x000000000000000000000000000000000000dEaD' });
      assert.equal(noCode.code, 1);
      assert.match(noCode.stdout, /PROBLEM +chain acl: /);
      const signed = join(dir, 'node1', 'signed-with-chain.json');
      await writeFile(signed, JSON.stringify({ ...base, acl: { mode: 'signed', chain: { chainId: anvil.chainId, contract: address, rpcUrls: [anvil.url] } } }));
      const ignored = await captureCli(() => runTkmsCli(['node', 'check', '--config', signed]));
      assert.equal(ignored.code, 0, ignored.stdout + ignored.stderr);
      assert.match(ignored.stdout, /ok +chain acl: acl\.chain is set but ignored \(acl\.mode is "signed"\)/);
    } finally {
      await anvil.stop();
    }
  });

  it('a node restored from a backup onto an empty machine takes part in no other DKG session of a key id it voted for, and knows the keys it holds no share of', async () => {
    // Stopped since the restore above. A vote cast in a DKG still in flight (a 1-of-1 DKG finishes at
    // once): written by the node's own DKG state files, as its runner does before sending one.
    const sid = encodeHex(randomBytes(16));
    const state = await DkgStateFiles.open(join(dir, 'node1/state/dkg'));
    await state.recordVote('pending-key', sid, randomBytes(64));
    // And a certified result it holds no share of (as when it missed the DKG's hello), stored as its runner stores one.
    const identity = await loadIdentityFile(join(dir, 'node1/identity.json'));
    const committee = await loadCommitteeFile(join(dir, 'committee.json'));
    const self = { id: 1, seed: identity.privateKey.raw.subarray(0, 32), publicKey: identity.privateKey.raw.subarray(32, 64), peerId: identity.peerId };
    const elsewhere = signedDkgResult(keyAt('elsewhere-key', randomScalar(), committee), committee, [self]);
    await state.savePublicOnly(elsewhere);
    const out = join(dir, 'backup/with-locks.tkmsbak');
    const backup = await captureCli(() => runTkmsCli(['node', 'backup', '--config', config, '--out', out, '--json']));
    assert.equal(backup.code, 0, backup.stderr);
    assert.deepEqual((JSON.parse(backup.stdout) as { keysWithoutShare: string[] }).keysWithoutShare, ['elsewhere-key']);
    // The machine is lost: keystore, state and identity.
    for (const name of ['keystore', 'state', 'identity.json']) await rename(join(dir, 'node1', name), join(dir, 'node1', `${name}.lost`));
    const restored = await captureCli(() => runTkmsCli(['node', 'restore', '--config', config, '--in', out]));
    assert.equal(restored.code, 0, restored.stderr);
    assert.match(restored.stdout, /vote locks: DKG votes for ops-key, pending-key; 0 reshare vote\(s\), 0 approval record\(s\)/);
    assert.match(restored.stdout, /keys held without a share: elsewhere-key\n/);

    node = new ManagedProcess('ops-node-restored', [TKMS_BIN, 'node', 'start', '--config', config], { env: { TKMS_KEYSTORE_PASSWORD: '' } });
    await waitFor('restored node ready', async () => ((await getJson(`${httpUrl}/health`)).status === 200 ? true : undefined), { timeoutMs: 30_000 });
    const post = (keyId: string) => getJson(`${adminUrl}/admin/dkg`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ keyId }) });
    const again = await post('pending-key');
    assert.equal(again.status, 409, JSON.stringify(again.json));
    assert.equal(again.json.error.code, 'conflict');
    assert.match(again.json.error.message, new RegExp(`voted in DKG session ${sid} of key id pending-key`));
    // A key id it never voted for: the restored node runs DKGs, the refusal above is the lock's.
    assert.equal((await post('fresh-key')).status, 202);
    await waitFor('DKG done', async () => ((await getJson(`${adminUrl}/admin/dkg/fresh-key`)).json.status === 'done' ? true : undefined), { timeoutMs: 20_000 });
    assert.equal((await getJson(`${adminUrl}/admin/dkg/pending-key`)).status, 404, 'no session of pending-key was started');
    const status = await captureCli(() => runTkmsCli(['node', 'status', '--config', config, '--json']));
    assert.equal(status.code, 0, status.stderr);
    const keys = (JSON.parse(status.stdout) as { keys: { keyId: string; publicKey: string }[] }).keys;
    assert.deepEqual(keys.find((k) => k.keyId === 'elsewhere-key')?.publicKey, elsewhere.groupPublicKey, 'the restored node knows the key it holds no share of');
    assert.equal((await post('elsewhere-key')).status, 409, 'and refuses a second DKG of it');
  });
});
