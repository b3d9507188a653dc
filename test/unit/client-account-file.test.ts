import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, lstat, readdir, readFile, stat, symlink, truncate, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { encryptKeystoreJson, Wallet } from 'ethers';
import { encodeHex, isTkmsError } from '../../core/index.ts';
import { generateAccount } from '../../client/account.ts';
import { readAccountFile, writeAccountFile } from '../../client/account-file.ts';
import { DEFAULT_SCRYPT, decryptKeystore, encryptKeystore, READ_LIMITS } from '../../client/keystore-v3.ts';
import { writePlaintextFile } from '../../client/cli-commands.ts';
import { MAX_PLAINTEXT_BYTES } from '../../core/index.ts';
import { UsageError } from '../../scripts/cli/command.ts';
import { promptHidden, type PromptInput } from '../../scripts/cli/password.ts';
import { runTkmsCli } from '../../scripts/cli/program.ts';
import { captureCli } from '../deploy/cli-capture.ts';
import { makeTempDir, removeDir, TKMS_BIN, waitFor } from '../support/processes.ts';

/** `tkms …args` in a child process, under a shell prelude (e.g. a ulimit), with `input` on its stdin. */
function spawnTkms(prelude: string, args: string[], input?: Uint8Array): Promise<{ code: number | null; stderr: string }> {
  const child = spawn('/bin/sh', ['-c', `${prelude}; exec "$0" "$@"`, process.execPath, TKMS_BIN, ...args], { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  // The child may stop reading (that is the point of one test): its early close is expected.
  child.stdin.on('error', () => undefined);
  child.stdin.end(input);
  return new Promise((resolve) => child.once('close', (code) => resolve({ code, stderr })));
}

/** A stand-in terminal for promptHidden: a stream that says it is a TTY and accepts raw mode. */
function fakeTerminal(): PassThrough & PromptInput {
  return Object.assign(new PassThrough(), { isTTY: true as const, setRawMode: () => undefined }) as unknown as PassThrough & PromptInput;
}

/** Resolves with the settled value, or rejects after `ms` if `p` never settles (a hang fails the test, not mocha's timeout). */
function settlesWithin<T>(p: Promise<T>, ms: number): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`still waiting after ${ms} ms`)), ms).unref())]);
}

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

    it('account new whose write fails part-way (file size limit) leaves no file, so a retry works', async () => {
      const passwordFile = join(dir, 'password');
      const out = join(dir, 'efbig.json');
      // ulimit -f 0: every write to a regular file fails with EFBIG (Node ignores SIGXFSZ).
      const r = await spawnTkms('ulimit -f 0', ['account', 'new', '--out', out, '--password-file', passwordFile]);
      assert.equal(r.code, 1, r.stderr);
      await assert.rejects(lstat(out), /ENOENT/, 'no truncated account file is left behind');
      assert.deepEqual((await readdir(dir)).filter((f) => f.includes('efbig')), [], 'nor its temp file');
      assert.match(r.stderr, /error \[internal\]: cannot create .*EFBIG/);
      const retry = await captureCli(() => runTkmsCli(['account', 'new', '--out', out, '--password-file', passwordFile]));
      assert.equal(retry.code, 0, retry.stderr);
      assert.equal((await decryptKeystore(await readFile(out, 'utf8'), PASSWORD)).address, /^address: (0x[0-9a-f]{40})$/m.exec(retry.stdout)?.[1]);
    });

    it('decrypt --out --force replaces a world-readable file with a 0600 one; without --force nothing is replaced', async () => {
      const out = join(dir, 'replaced.out');
      await writeFile(out, 'old, world-readable');
      await chmod(out, 0o644);
      await assert.rejects(writePlaintextFile(out, new TextEncoder().encode('secret'), false), expectCode('conflict'));
      assert.equal(await readFile(out, 'utf8'), 'old, world-readable');
      await writePlaintextFile(out, new TextEncoder().encode('secret'), true);
      assert.equal(await readFile(out, 'utf8'), 'secret');
      assert.equal((await stat(out)).mode & 0o777, 0o600);
      // A symlink at --out is replaced itself (with --force) or refused, never written through.
      const target = join(dir, 'link-target');
      await writeFile(target, 'target stays');
      const viaLink = join(dir, 'via-link.out');
      await symlink(target, viaLink);
      await assert.rejects(writePlaintextFile(viaLink, new TextEncoder().encode('secret'), false), expectCode('conflict'));
      const dangling = join(dir, 'dangling.out');
      await symlink(join(dir, 'nowhere'), dangling);
      await assert.rejects(writePlaintextFile(dangling, new TextEncoder().encode('secret'), false), expectCode('conflict'));
      await assert.rejects(lstat(join(dir, 'nowhere')), /ENOENT/);
      await writePlaintextFile(viaLink, new TextEncoder().encode('secret'), true);
      assert.ok((await lstat(viaLink)).isFile());
      assert.equal(await readFile(target, 'utf8'), 'target stays');
      assert.deepEqual((await readdir(dir)).filter((f) => f.includes('.tmp-')), [], 'no temp file is left behind');
    });

    it('encrypt refuses a plaintext over the gateway maximum as soon as it has read that much, before the account is opened', async () => {
      const big = join(dir, 'big.bin');
      await writeFile(big, '');
      await truncate(big, MAX_PLAINTEXT_BYTES + 1);
      const noAccount = join(dir, 'no-such-account.json');
      const fromFile = await captureCli(() => runTkmsCli(['encrypt', '--account', noAccount, '--key', 'default', '--in', big, '--gateway', 'http://127.0.0.1:1']));
      assert.equal(fromFile.code, 1);
      assert.match(fromFile.stderr, new RegExp(`^tkms encrypt: error \\[bad_request\\]: .*big\\.bin is larger than ${MAX_PLAINTEXT_BYTES} bytes`));
      // Exactly the maximum is not refused for its size (the missing account is what stops it).
      await truncate(big, MAX_PLAINTEXT_BYTES);
      const atMax = await captureCli(() => runTkmsCli(['encrypt', '--account', noAccount, '--key', 'default', '--in', big, '--gateway', 'http://127.0.0.1:1']));
      assert.match(atMax.stderr, /cannot read account file/);
      const fromStdin = await spawnTkms('true', ['encrypt', '--account', noAccount, '--key', 'default', '--in', '-', '--gateway', 'http://127.0.0.1:1'], new Uint8Array(8 * 1024 * 1024));
      assert.equal(fromStdin.code, 1, fromStdin.stderr);
      assert.match(fromStdin.stderr, new RegExp(`error \\[bad_request\\]: standard input is larger than ${MAX_PLAINTEXT_BYTES} bytes`));
    });

    it('the password prompt fails with a usage error when standard input ends or is not a terminal, instead of waiting forever', async () => {
      const endsLater = fakeTerminal();
      const asked = promptHidden('password: ', endsLater);
      endsLater.end();
      await assert.rejects(settlesWithin(asked, 5000), (e: unknown) => e instanceof UsageError && /standard input ended/.test(e.message));
      const alreadyEnded = fakeTerminal();
      alreadyEnded.resume();
      alreadyEnded.end();
      await new Promise((resolve) => alreadyEnded.once('end', resolve));
      await assert.rejects(settlesWithin(promptHidden('password: ', alreadyEnded), 5000), (e: unknown) => e instanceof UsageError && /standard input ended/.test(e.message));
      const notTerminal = Object.assign(new PassThrough(), { isTTY: false }) as unknown as PromptInput;
      await assert.rejects(settlesWithin(promptHidden('password: ', notTerminal), 5000), (e: unknown) => e instanceof UsageError && /not a terminal/.test(e.message));
      const answered = fakeTerminal();
      const typed = promptHidden('password: ', answered);
      answered.write('pw\x7fW\r');
      assert.equal(await settlesWithin(typed, 5000), 'pW');
    });

    it('encrypt --in - on a terminal asks the password first (not echoed), then reads the plaintext typed there', async function () {
      // util-linux script(1) gives the command a pseudo-terminal as standard input.
      if (!existsSync('/usr/bin/script')) this.skip();
      const file = join(dir, 'terminal.json');
      await writeAccountFile(file, generateAccount(), PASSWORD, FAST);
      const quote = (a: string): string => `'${a.replace(/'/g, `'\\''`)}'`;
      const command = [process.execPath, TKMS_BIN, 'encrypt', '--account', file, '--key', 'default', '--in', '-', '--gateway', 'http://127.0.0.1:1'].map(quote).join(' ');
      const env = { ...process.env };
      delete env.TKMS_ACCOUNT_PASSWORD_FILE;
      const child = spawn('/usr/bin/script', ['-qec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'], env });
      let screen = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (screen += d));
      const exited = new Promise<number | null>((resolve) => child.once('close', resolve));
      try {
        await waitFor('the password prompt', () => (/password for .*terminal\.json: /.test(screen) ? true : undefined), { timeoutMs: 30_000 });
        child.stdin.write(`${PASSWORD}\r`);
        await waitFor('the plaintext prompt', () => (/end it with Ctrl-D/.test(screen) ? true : undefined), { timeoutMs: 30_000 });
        child.stdin.write('typed at the terminal\n\u0004');
        // The plaintext was read: what stops the command now is the gateway that is not there.
        assert.equal(await exited, 1, screen);
        assert.match(screen, /tkms encrypt: error \[unavailable\]/);
        assert.doesNotMatch(screen, /cannot ask for a password|standard input ended/);
        assert.ok(!screen.includes(PASSWORD), 'the password is not echoed');
      } finally {
        child.kill('SIGKILL');
      }
    });

    it('warns about a TKMS_* variable that looks like a misspelt client variable', async () => {
      process.env.TKMS_GATEWAY_ULR = 'http://127.0.0.1:1';
      let r;
      try {
        r = await captureCli(() => runTkmsCli(['decrypt', '--account', join(dir, 'no-such-account.json'), '--handle', `0x${'00'.repeat(32)}`, '--gateway', 'http://127.0.0.1:1']));
      } finally {
        delete process.env.TKMS_GATEWAY_ULR;
      }
      assert.match(r.stderr, /^tkms decrypt: warning: environment variable TKMS_GATEWAY_ULR is not used by tkms; did you mean TKMS_GATEWAY_URL\?/m);
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
