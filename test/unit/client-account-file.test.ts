import assert from 'node:assert/strict';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { encryptKeystoreJson, Wallet } from 'ethers';
import { encodeHex, isTkmsError } from '../../core/index.ts';
import { generateAccount } from '../../client/account.ts';
import { readAccountFile, writeAccountFile } from '../../client/account-file.ts';
import { DEFAULT_SCRYPT, decryptKeystore, encryptKeystore, READ_LIMITS } from '../../client/keystore-v3.ts';
import { runTkmsCli } from '../../scripts/cli/program.ts';
import { captureCli } from '../deploy/cli-capture.ts';
import { makeTempDir, removeDir } from '../support/processes.ts';

// Small N keeps these tests fast; one test each way uses the defaults (ethers' own).
const FAST = { n: 1024, r: 8, p: 1 };
const PASSWORD = 'correct horse battery staple';

function expectCode(code: string): (e: unknown) => boolean {
  return (e) => {
    assert.ok(isTkmsError(e), `expected a TkmsError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    assert.ok(!e.message.includes(PASSWORD), 'the password is never in an error');
    return true;
  };
}

describe('client: account files as Ethereum keystore v3', function () {
  this.timeout(60_000);
  let dir: string;
  before(async () => {
    dir = await makeTempDir('tkms-account');
  });
  after(async () => removeDir(dir));

  it('a keystore we write (default scrypt parameters) decrypts with ethers to the same key', async () => {
    const account = generateAccount();
    const keystore = await encryptKeystore(account, PASSWORD);
    assert.deepEqual(keystore.crypto.kdfparams, { ...keystore.crypto.kdfparams, n: DEFAULT_SCRYPT.n, r: 8, p: 1, dklen: 32 });
    const wallet = await Wallet.fromEncryptedJson(JSON.stringify(keystore), PASSWORD);
    assert.equal(wallet.privateKey, encodeHex(account.secretKey));
    assert.equal(wallet.address.toLowerCase(), account.address);
  });

  it('a keystore ethers writes loads with ours (default and light parameters)', async () => {
    const wallet = Wallet.createRandom();
    for (const json of [await wallet.encrypt(PASSWORD), await encryptKeystoreJson({ address: wallet.address, privateKey: wallet.privateKey }, PASSWORD, { scrypt: { N: 4096 } })]) {
      const account = await decryptKeystore(json, PASSWORD);
      assert.equal(encodeHex(account.secretKey), wallet.privateKey);
      assert.equal(account.address, wallet.address.toLowerCase());
    }
  });

  it('a wrong password is keystore_locked; a tampered file is keystore_corrupt or keystore_locked, never a wrong key', async () => {
    const account = generateAccount();
    const keystore = await encryptKeystore(account, PASSWORD, FAST);
    await assert.rejects(decryptKeystore(keystore, 'not the password'), expectCode('keystore_locked'));
    const flipped = structuredClone(keystore);
    flipped.crypto.ciphertext = `${flipped.crypto.ciphertext.slice(0, -1)}${flipped.crypto.ciphertext.endsWith('0') ? '1' : '0'}`;
    await assert.rejects(decryptKeystore(flipped, PASSWORD), expectCode('keystore_locked'));
    const otherAddress = { ...keystore, address: generateAccount().address.slice(2) };
    await assert.rejects(decryptKeystore(otherAddress, PASSWORD), expectCode('keystore_corrupt'));
    await assert.rejects(decryptKeystore({ ...keystore, crypto: { ...keystore.crypto, kdf: 'pbkdf2' } }, PASSWORD), expectCode('not_implemented'));
  });

  it('refuses absurd scrypt parameters before running scrypt', async () => {
    const keystore = await encryptKeystore(generateAccount(), PASSWORD, FAST);
    const withParams = (p: Record<string, unknown>) => ({ ...keystore, crypto: { ...keystore.crypto, kdfparams: { ...keystore.crypto.kdfparams, ...p } } });
    for (const params of [
      { n: 2 ** 30 },
      { n: READ_LIMITS.maxN * 2 },
      { n: 1000 },
      { r: 1_000_000 },
      { p: 2 ** 20 },
      { n: READ_LIMITS.maxN, r: 16 },
      { n: READ_LIMITS.maxN, r: 8, p: 2 },
      { n: -4 },
      { n: '1024' },
      { dklen: 64 },
    ]) {
      const started = performance.now();
      await assert.rejects(decryptKeystore(withParams(params), PASSWORD), expectCode('keystore_corrupt'), JSON.stringify(params));
      assert.ok(performance.now() - started < 200, `refused ${JSON.stringify(params)} without deriving a key`);
    }
  });

  it('writes mode 0600, never over an existing file; reads it back with the password asked once', async () => {
    const account = generateAccount();
    const file = join(dir, 'alice.json');
    await writeAccountFile(file, account, PASSWORD, FAST);
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    assert.ok(!(await readFile(file, 'utf8')).includes(encodeHex(account.secretKey).slice(2)), 'no plaintext secret in the file');
    await assert.rejects(writeAccountFile(file, generateAccount(), PASSWORD, FAST), expectCode('conflict'));
    let asked = 0;
    const warnings: string[] = [];
    const loaded = await readAccountFile(file, { password: async () => (asked++, PASSWORD), warn: (m) => warnings.push(m) });
    assert.equal(loaded.address, account.address);
    assert.equal(asked, 1);
    assert.deepEqual(warnings, []);
  });

  it('an old plaintext account file still loads, with a warning and without asking for a password', async () => {
    const account = generateAccount();
    const file = join(dir, 'legacy.json');
    await writeFile(file, JSON.stringify({ address: account.address, secretKey: encodeHex(account.secretKey) }), { mode: 0o600 });
    const warnings: string[] = [];
    const loaded = await readAccountFile(file, { password: async () => assert.fail('no password for a plaintext file'), warn: (m) => warnings.push(m) });
    assert.equal(loaded.address, account.address);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /not encrypted/);
    assert.ok(!warnings[0]!.includes(encodeHex(account.secretKey)));
  });

  describe('tkms account new / decrypt --out', () => {
    it('account new --out writes a keystore v3 file ethers opens, with the password from --password-file or its variable', async () => {
      const passwordFile = join(dir, 'password');
      await writeFile(passwordFile, `${PASSWORD}\n`);
      const out = join(dir, 'cli.json');
      const r = await captureCli(() => runTkmsCli(['account', 'new', '--out', out, '--password-file', passwordFile, '--json']));
      assert.equal(r.code, 0, r.stderr);
      const { address } = JSON.parse(r.stdout) as { address: string };
      const wallet = await Wallet.fromEncryptedJson(await readFile(out, 'utf8'), PASSWORD);
      assert.equal(wallet.address.toLowerCase(), address);
      const viaEnv = join(dir, 'env.json');
      process.env.TKMS_ACCOUNT_PASSWORD_FILE = passwordFile;
      let e;
      try {
        e = await captureCli(() => runTkmsCli(['account', 'new', '--out', viaEnv]));
      } finally {
        delete process.env.TKMS_ACCOUNT_PASSWORD_FILE;
      }
      assert.equal(e.code, 0, e.stderr);
      const printed = /^address: (0x[0-9a-f]{40})$/m.exec(e.stdout)?.[1];
      assert.equal((await decryptKeystore(await readFile(viaEnv, 'utf8'), PASSWORD)).address, printed);
      const again = await captureCli(() => runTkmsCli(['account', 'new', '--out', out, '--password-file', passwordFile]));
      assert.equal(again.code, 1);
      assert.match(again.stderr, /^tkms account new: error \[conflict\]: .*refusing to overwrite/);
    });

    it('without a password source and without a terminal, account new is a usage error', async function () {
      if (process.stdin.isTTY) this.skip();
      const r = await captureCli(() => runTkmsCli(['account', 'new', '--out', join(dir, 'nopw.json')]));
      assert.equal(r.code, 2);
      assert.match(r.stderr, /--password-file/);
      await assert.rejects(stat(join(dir, 'nopw.json')));
    });

    it('a command given the wrong password fails with keystore_locked (exit 1) before any request', async () => {
      const wrong = join(dir, 'wrong-password');
      await writeFile(wrong, 'not it\n');
      const r = await captureCli(() => runTkmsCli(['decrypt', '--account', join(dir, 'cli.json'), '--password-file', wrong, '--handle', `0x${'00'.repeat(32)}`, '--gateway', 'http://127.0.0.1:1']));
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^tkms decrypt: error \[keystore_locked\]: wrong account password/);
    });

    it('decrypt --out refuses an existing file without --force, before any request', async () => {
      const existing = join(dir, 'plaintext.out');
      await writeFile(existing, 'keep me');
      const r = await captureCli(() => runTkmsCli(['decrypt', '--account', join(dir, 'cli.json'), '--handle', `0x${'00'.repeat(32)}`, '--out', existing, '--gateway', 'http://127.0.0.1:1']));
      assert.equal(r.code, 1);
      assert.match(r.stderr, /^tkms decrypt: error \[conflict\]: .*already exists; give --force/);
      assert.equal(await readFile(existing, 'utf8'), 'keep me');
    });
  });
});
