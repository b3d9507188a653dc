import assert from 'node:assert/strict';
import { copyFile, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hkdf } from '@noble/hashes/hkdf.js';
import { sha256 } from '@noble/hashes/sha2.js';
import fc from 'fast-check';
import { encodeHex, isTkmsError, utf8ToBytes } from '../../core/index.ts';
import { ceremonySeed } from '../../node/ceremony-identity.ts';
import { createIdentityFile, loadIdentityFile } from '../../node/identity.ts';
import { createBackup, parseBackup, restoreBackup, writeBackupFile } from '../../node/keystore-backup.ts';
import { Keystore } from '../../node/keystore.ts';
import { CEREMONY_SEED_FILE_NAME, parseSealedSeed, parseSealedSeedBytes } from '../../node/keystore-seed.ts';

/**
 * The ceremony seed (every dealing polynomial, sealing and receiver key of a reshare derive from it)
 * lives sealed in the keystore: the identity file, which is plaintext, never yields it.
 */
const SCRYPT = { N: 2 ** 14, r: 8, p: 1 };

describe('ceremony seed: sealed in the keystore, not derived from the identity file', function () {
  this.timeout(60_000);
  const dirs: string[] = [];
  const open: Keystore[] = [];

  after(async () => {
    for (const k of open) k.close();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  async function tempDir(): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'tkms-seed-'));
    dirs.push(dir);
    return dir;
  }

  async function keystore(dir: string, password: string): Promise<Keystore> {
    const k = await Keystore.open(dir, password, { newKeystoreScrypt: SCRYPT });
    open.push(k);
    return k;
  }

  it('is stable across reopens, differs between keystores of one identity, and is no HKDF of the identity key', async () => {
    const identityFile = join(await tempDir(), 'identity.json');
    await createIdentityFile(identityFile);
    const identity = await loadIdentityFile(identityFile);
    const dirA = await tempDir();
    const dirB = await tempDir();
    const a = await ceremonySeed(await keystore(dirA, 'password one'));
    const b = await ceremonySeed(await keystore(dirB, 'password two'));
    assert.equal(a.length, 32);
    assert.notEqual(encodeHex(a), encodeHex(b), 'the same identity with two keystores gives two seeds');
    assert.equal(encodeHex(await ceremonySeed(await keystore(dirA, 'password one'))), encodeHex(a), 'a restarted node derives the same seed');
    // What the seed used to be (HKDF of the identity's Ed25519 seed) and anything else taken from the identity file alone.
    const raw = identity.privateKey.raw;
    const fromIdentity = [hkdf(sha256, raw.subarray(0, 32), undefined, utf8ToBytes('tkms/ceremony/v1/seed'), 32), raw.subarray(0, 32), raw.subarray(32, 64), sha256(raw)];
    for (const guess of fromIdentity) assert.notEqual(encodeHex(guess), encodeHex(a));
    // Nothing unencrypted holds it: not the identity file, not the seed file, not any file of the keystore.
    const seedHex = encodeHex(a).slice(2);
    assert.ok(!(await readFile(identityFile, 'utf8')).includes(seedHex));
    for (const name of await readdir(dirA)) assert.ok(!(await readFile(join(dirA, name))).toString('hex').includes(seedHex), `${name} holds the seed in clear`);
    assert.equal((await stat(join(dirA, CEREMONY_SEED_FILE_NAME))).mode & 0o777, 0o600);
  });

  it('is written once, never over: two racing first calls get the one seed; a wrong password opens nothing', async () => {
    const dir = await tempDir();
    const k1 = await keystore(dir, 'pw');
    const k2 = await keystore(dir, 'pw');
    const [x, y] = await Promise.all([ceremonySeed(k1), ceremonySeed(k2)]);
    assert.equal(encodeHex(x), encodeHex(y));
    await assert.rejects(Keystore.open(dir, 'not pw'), (e: unknown) => isTkmsError(e, 'keystore_locked'));
  });

  it('an edited seed file is keystore_corrupt; one without a header refuses to open as a fresh keystore', async () => {
    const dir = await tempDir();
    await ceremonySeed(await keystore(dir, 'pw'));
    const path = join(dir, CEREMONY_SEED_FILE_NAME);
    const sealed = JSON.parse(await readFile(path, 'utf8')) as Record<string, string>;
    const flipped = sealed['ciphertext']!.slice(0, -1) + (sealed['ciphertext']!.endsWith('0') ? '1' : '0');
    await rm(path);
    await writeFile(path, JSON.stringify({ ...sealed, ciphertext: flipped }));
    await assert.rejects(ceremonySeed(await keystore(dir, 'pw')), (e: unknown) => isTkmsError(e, 'keystore_corrupt'));
    const headerless = await tempDir();
    await copyFile(path, join(headerless, CEREMONY_SEED_FILE_NAME));
    await assert.rejects(Keystore.open(headerless, 'pw'), (e: unknown) => isTkmsError(e, 'keystore_corrupt'));
  });

  it('survives a backup and a restore under another password (a password rotation): the restored node derives the same seed', async () => {
    const identityFile = join(await tempDir(), 'identity.json');
    await createIdentityFile(identityFile);
    const dir = await tempDir();
    const seed = await ceremonySeed(await keystore(dir, 'old password'));
    const { bytes } = await createBackup({ keystoreDir: dir, dkgStateDir: `${dir}.dkg`, password: 'old password', identityFile });
    assert.ok(!new TextDecoder().decode(bytes).includes(encodeHex(seed).slice(2)), 'the backup holds it sealed only');
    assert.notEqual(parseBackup(bytes).ceremonySeed, null);
    const file = join(await tempDir(), 'node.tkmsbak');
    await writeBackupFile(file, bytes);
    const target = join(await tempDir(), 'keystore');
    const result = await restoreBackup({ backupFile: file, backupPassword: 'old password', keystoreDir: target, dkgStateDir: `${target}.dkg`, keystorePassword: 'new password', identityFile });
    assert.equal(result.ceremonySeed, 'installed');
    assert.equal(encodeHex(await ceremonySeed(await keystore(target, 'new password'))), encodeHex(seed));
    // The fields version 3 adds: anything else in their place is a typed bad_request, never a crash.
    const doc = JSON.parse(new TextDecoder().decode(bytes)) as Record<string, unknown>;
    fc.assert(
      fc.property(fc.constantFrom('ceremonySeed', 'origins'), fc.jsonValue({ maxDepth: 3 }), (field, value) => {
        try {
          parseBackup(new TextEncoder().encode(JSON.stringify({ ...doc, [field]: value })));
          return value === null || Array.isArray(value);
        } catch (e) {
          return isTkmsError(e, 'bad_request');
        }
      }),
    );
    // Restored again onto a keystore holding another seed: that one is kept, never replaced.
    const other = await tempDir();
    const otherSeed = await ceremonySeed(await keystore(other, 'new password'));
    const again = await restoreBackup({ backupFile: file, backupPassword: 'old password', keystoreDir: other, dkgStateDir: `${other}.dkg`, keystorePassword: 'new password', identityFile });
    assert.equal(again.ceremonySeed, 'kept');
    assert.equal(encodeHex(await ceremonySeed(await keystore(other, 'new password'))), encodeHex(otherSeed));
  });

  it('the sealed-seed parser refuses anything but the exact record (keystore_corrupt)', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        try {
          parseSealedSeed(value);
          return false;
        } catch (e) {
          return isTkmsError(e, 'keystore_corrupt');
        }
      }),
    );
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 256 }), (bytes) => {
        try {
          parseSealedSeedBytes(bytes);
          return false;
        } catch (e) {
          return isTkmsError(e, 'keystore_corrupt');
        }
      }),
    );
  });
});
