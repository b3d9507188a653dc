import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeAccountFile } from '../../client/account-file.ts';
import { keyChangeSigner } from '../../core/keys/key-change.ts';
import { captureCli } from '../deploy/cli-capture.ts';
import { alice, bob, DEPLOYMENT, FakeGateway } from '../support/fake-key-gateway.ts';

/**
 * `tkms key …` in this process against a fake gateway on loopback that keeps a real KeyBook: each
 * command signs what core accepts, prints text or one line of JSON, and fails with the code.
 */
describe('cli: tkms key', function () {
  this.timeout(60_000);
  let dir: string;
  let gw: FakeGateway;
  let server: { url: string; close: () => Promise<void> };
  let signed: string[];
  let read: string[];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tkms-key-cli-'));
    await writeFile(join(dir, 'pw'), 'key-cli-test\n');
    // Cheap scrypt: this test is about the key commands, not the keystore.
    await writeAccountFile(join(dir, 'alice.json'), alice, 'key-cli-test', { n: 1024, r: 8, p: 1 });
    await writeAccountFile(join(dir, 'bob.json'), bob, 'key-cli-test', { n: 1024, r: 8, p: 1 });
  });
  beforeEach(async () => {
    gw = new FakeGateway();
    server = await gw.listen();
    signed = ['--account', join(dir, 'alice.json'), '--password-file', join(dir, 'pw'), '--gateway', server.url];
    read = ['--gateway', server.url];
  });
  afterEach(() => server.close());
  after(() => rm(dir, { recursive: true, force: true }));

  // Imported, not required: the commands' implementations are imported lazily, and an error class
  // they throw must be the one the command tree checks (mocha may load this file through require).
  const tkms = async (...argv: string[]) => {
    const { runTkmsCli } = await import('../../scripts/cli/program.ts');
    return captureCli(() => runTkmsCli(argv));
  };

  it('create, then every change command, each signed by the account as core requires', async () => {
    await writeFile(join(dir, 'policy.json'), JSON.stringify({ allowedOperations: ['decrypt'] }));
    const created = await tkms('key', 'create', ...signed, '--key-id', 'payroll', '--description', 'payroll exports', '--tag', 'team=finance', '--alias', 'alias/payroll', '--policy-file', join(dir, 'policy.json'));
    assert.equal(created.code, 0, created.stderr);
    assert.match(created.stdout, /^create of key payroll: change 1, acknowledged by nodes 1, 2, 3 \(effective\)\n$/);
    const steps: string[][] = [
      ['update-description', '--description', 'new words'],
      ['create-alias', '--alias', 'alias/salaries'],
      ['rename-alias', '--from', 'alias/salaries', '--to', 'alias/wages'],
      ['delete-alias', '--alias', 'alias/wages'],
      ['tag', '--tag', 'env=prod', '--tag', 'empty='],
      ['untag', '--tag', 'empty'],
      ['disable'],
      ['enable'],
      ['rotate'],
      ['schedule-deletion', '--days', '7', '--key-version', '1'],
      ['cancel-deletion', '--key-version', '1'],
      ['schedule-deletion', '--seconds', '3600'],
      ['cancel-deletion'],
      ['enable'],
      ['put-policy', '--file', join(dir, 'policy.json')],
      ['update-admins', '--admin', alice.address, '--admin', bob.address],
    ];
    for (const [command, ...options] of steps) {
      // By alias for one of them: the change still names the key id.
      const r = await tkms('key', command!, command === 'disable' ? 'alias/payroll' : 'payroll', ...signed, ...options);
      assert.equal(r.code, 0, `${command}: ${r.stderr}`);
    }
    const changes = gw.changesPosted();
    assert.deepEqual(
      changes.map((c) => c.action),
      ['create', 'updateDescription', 'createAlias', 'renameAlias', 'deleteAlias', 'tag', 'untag', 'disable', 'enable', 'rotate', 'scheduleDeletion', 'cancelDeletion', 'scheduleDeletion', 'cancelDeletion', 'enable', 'putPolicy', 'updateAdmins'],
    );
    for (const c of changes) assert.equal(keyChangeSigner(c, DEPLOYMENT), alice.address);
    const described = JSON.parse((await tkms('key', 'describe', 'payroll', ...read, '--json')).stdout) as Record<string, unknown>;
    assert.deepEqual(described.tags, { team: 'finance', env: 'prod' });
    assert.equal(described.currentVersion, 2);
    assert.deepEqual(described.admins, [alice.address, bob.address].sort());
    // Bob, now an admin, sets the state.
    const byBob = await tkms('key', 'disable', 'payroll', '--account', join(dir, 'bob.json'), '--password-file', join(dir, 'pw'), '--gateway', server.url, '--json');
    assert.equal(byBob.code, 0, byBob.stderr);
    assert.equal((JSON.parse(byBob.stdout) as { key: { state: string } }).key.state, 'Disabled');
  });

  it('describe, list, history and get-policy read without an account; text by default, JSON with --json', async () => {
    await tkms('key', 'create', ...signed, '--key-id', 'payroll', '--tag', 'team=finance', '--alias', 'alias/payroll');
    await tkms('key', 'create', ...signed, '--key-id', 'user-1', '--derived-from', 'root', '--path', 'users/1');
    await tkms('key', 'disable', 'user-1', ...signed);
    const text = await tkms('key', 'describe', 'alias/payroll', ...read);
    assert.equal(text.code, 0, text.stderr);
    for (const line of [/^key {10}payroll$/m, /^state {8}Enabled$/m, /^aliases {6}alias\/payroll$/m, /^tags {9}team=finance$/m, new RegExp(`^admins {7}${alice.address}$`, 'm'), /^ {2}v1 \(current\): Enabled, created .*, material payroll$/m]) {
      assert.match(text.stdout, line);
    }
    assert.match((await tkms('key', 'describe', 'user-1', ...read)).stdout, /^origin {7}derived from root, path users\/1$/m);
    const listed = await tkms('key', 'list', ...read, '--state', 'Disabled', '--json');
    assert.deepEqual((JSON.parse(listed.stdout) as { keyId: string }[]).map((k) => k.keyId), ['user-1']);
    assert.match((await tkms('key', 'list', ...read)).stdout, /^payroll {2}Enabled {2}v1 {2}alias\/payroll {2}team=finance$/m);
    const history = await tkms('key', 'history', 'user-1', ...read);
    assert.match(history.stdout, new RegExp(`^ {3}1 {2}\\S+ {2}create +by ${alice.address} {2}\\{`, 'm'));
    assert.match(history.stdout, /^ {3}2 {2}\S+ {2}disable/m);
    assert.equal((JSON.parse((await tkms('key', 'history', 'user-1', ...read, '--json')).stdout) as unknown[]).length, 2);
    assert.equal((await tkms('key', 'get-policy', 'payroll', ...read)).stdout, '{}\n');
  });

  it('errors print their code and message and exit non-zero; usage errors exit 2 before any password is read', async () => {
    await tkms('key', 'create', ...signed, '--key-id', 'payroll', '--alias', 'alias/payroll');
    const taken = await tkms('key', 'create', ...signed, '--key-id', 'other', '--alias', 'alias/payroll');
    assert.equal(taken.code, 1);
    assert.match(taken.stderr, /^tkms key create: error \[alias_taken\]: alias alias\/payroll already names key payroll\n$/);
    const notAdmin = await tkms('key', 'disable', 'payroll', '--account', join(dir, 'bob.json'), '--password-file', join(dir, 'pw'), '--gateway', server.url);
    assert.equal(notAdmin.code, 1);
    assert.match(notAdmin.stderr, /error \[not_key_admin\]/);
    const unknown = await tkms('key', 'describe', 'nothing', ...read);
    assert.equal(unknown.code, 1);
    assert.match(unknown.stderr, /^tkms key describe: error \[unknown_key\]/);
    const badWindow = await tkms('key', 'schedule-deletion', 'payroll', ...signed, '--days', '99');
    assert.equal(badWindow.code, 1);
    assert.match(badWindow.stderr, /error \[bad_request\]: the body of a scheduleDeletion change is not valid/);
    const usage: [string[], RegExp][] = [
      [['key', 'set-rotation', 'payroll', ...signed], /give exactly one of --days <n> or --off/],
      [['key', 'tag', 'payroll', ...signed, '--tag', 'novalue'], /--tag must be key=value/],
      [['key', 'create', ...signed, '--key-id', 'x', '--derived-from', 'root'], /needs both --derived-from <root> and --path <path>/],
      [['key', 'schedule-deletion', 'payroll', ...signed, '--days', '7', '--seconds', '5'], /cannot be used with option/],
      [['key', 'disable', ...signed], /missing required argument 'key'/],
    ];
    for (const [argv, pattern] of usage) {
      const r = await tkms(...argv);
      assert.equal(r.code, 2, `${argv.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, pattern);
    }
    // Only the alias clash reached the gateway: the rest failed before anything was signed or sent.
    assert.deepEqual(gw.changesPosted().map((c) => c.keyId), ['payroll', 'other']);
  });

  it('create takes the key spec and usage, from the values core declares', async () => {
    const r = await tkms('key', 'create', ...signed, '--key-id', 'release', '--spec', 'ECC_NIST_EDWARDS25519', '--usage', 'SIGN_VERIFY');
    assert.equal(r.code, 0, r.stderr);
    const described = JSON.parse((await tkms('key', 'describe', 'release', ...read, '--json')).stdout) as Record<string, unknown>;
    assert.deepEqual([described.spec, described.usage], ['ECC_NIST_EDWARDS25519', 'SIGN_VERIFY']);
    assert.match((await tkms('key', 'describe', 'release', ...read)).stdout, /^spec {9}ECC_NIST_EDWARDS25519, SIGN_VERIFY$/m);
    // Core refuses an Ed25519 key that would decrypt; the command sends what it is given.
    const refused = await tkms('key', 'create', ...signed, '--key-id', 'mixed', '--spec', 'ECC_NIST_EDWARDS25519', '--usage', 'ENCRYPT_DECRYPT');
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /error \[key_change_invalid\]: key mixed: spec ECC_NIST_EDWARDS25519 serves SIGN_VERIFY only/);
    const bad = await tkms('key', 'create', ...signed, '--key-id', 'x', '--usage', 'WRAP');
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /Allowed choices are ENCRYPT_DECRYPT, SIGN_VERIFY/);
    assert.deepEqual(gw.changesPosted().map((c) => c.keyId), ['release', 'mixed']);
  });

  it('a change fewer nodes than needed applied exits 1 and says so', async () => {
    await tkms('key', 'create', ...signed, '--key-id', 'payroll');
    gw.pending = 100;
    const r = await tkms('key', 'disable', 'payroll', ...signed);
    assert.equal(r.code, 1);
    assert.match(r.stdout, /NOT yet effective: 3 needed/);
  });
});
