import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { GATEWAY_CONFIG_FIELDS_HELP } from '../../gateway/config.ts';
import { NODE_CONFIG_FIELDS_HELP } from '../../node/config.ts';
import { runTkmsCli } from '../../scripts/cli/program.ts';
import { REPO_ROOT, runTkms } from '../support/processes.ts';
import { captureCli } from './cli-capture.ts';

const tkms = (...argv: string[]) => captureCli(() => runTkmsCli(argv));

const KEY_SUBCOMMANDS = [
  'create',
  'list',
  'describe',
  'history',
  'get-policy',
  'update-description',
  'create-alias',
  'rename-alias',
  'delete-alias',
  'tag',
  'untag',
  'enable',
  'disable',
  'schedule-deletion',
  'cancel-deletion',
  'rotate',
  'set-rotation',
  'put-policy',
  'update-admins',
];

/** Every command answers --help (exit 0, a usage text on stdout) without doing anything else. */
const COMMANDS: string[][] = [
  ['node'],
  ...['init', 'start', 'check', 'status', 'approve', 'cancel-reshare', 'refresh', 'backup', 'restore'].map((sub) => ['node', sub]),
  ['dkg'],
  ...['start', 'status'].map((sub) => ['dkg', sub]),
  ['committee'],
  ...['new', 'show', 'next', 'propose-reshare'].map((sub) => ['committee', sub]),
  ['gateway'],
  ['gateway', 'start'],
  ['gateway', 'init'],
  ['devnet'],
  ['devnet', 'fund'],
  ['account'],
  ['account', 'new'],
  ['encrypt'],
  ['grant'],
  ['revoke'],
  ['revoke-all'],
  ['decrypt'],
  ['sign'],
  ['key'],
  ...KEY_SUBCOMMANDS.map((sub) => ['key', sub]),
];

describe('cli: --help on every command', function () {
  this.timeout(60_000);

  for (const argv of COMMANDS) {
    it(`tkms ${argv.join(' ')} --help`, async () => {
      const r = await tkms(...argv, '--help');
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, new RegExp(`^Usage: tkms ${argv.join(' ')}`, 'm'));
      assert.equal(r.stderr, '');
      // Help also wins when it comes after other options (even ones missing their value).
      const late = await tkms(...argv, '--json', '--help');
      assert.equal(late.stdout, r.stdout);
    });
  }

  it('every command shows examples', async () => {
    for (const argv of [[], ...COMMANDS]) {
      const r = await tkms(...argv, '--help');
      assert.match(r.stdout, /^Examples:\n {2}\$ tkms /m, argv.join(' '));
    }
  });

  it('node subcommands document their options', async () => {
    for (const [sub, flags] of [
      ['status', ['--admin', '--config', '--json']],
      ['backup', ['--out', '--config']],
      ['restore', ['--in', '--backup-password-file']],
      ['init', ['--if-missing']],
      ['approve', ['--admin', '--config', '--json', '<proposal>']],
      ['cancel-reshare', ['--admin', '--config', '<proposalId>']],
      ['refresh', ['--admin', '--config', '--json']],
    ] as const) {
      const r = await tkms('node', sub, '--help');
      for (const f of flags) assert.ok(r.stdout.includes(f), `node ${sub} --help mentions ${f}`);
    }
    const start = await tkms('node', 'start', '--help');
    for (const v of ['TKMS_LISTEN', 'TKMS_CLOCK_SKEW_SECONDS', 'TKMS_PARTIAL_RATE_PER_MINUTE', 'TKMS_ADMIN_ALLOW_REMOTE', 'TKMS_KEYSTORE_PASSWORD', 'TKMS_CONFIG']) assert.ok(start.stdout.includes(v), v);
    const gw = await tkms('gateway', 'start', '--help');
    for (const v of ['TKMS_GATEWAY_PARTIAL_TIMEOUT_MS', 'TKMS_GATEWAY_RATE_BURST', 'TKMS_GATEWAY_CONFIG']) assert.ok(gw.stdout.includes(v), v);
    // The field list is the one generated from each config schema, whole.
    assert.ok(start.stdout.includes(NODE_CONFIG_FIELDS_HELP), 'node start --help shows the generated config help');
    assert.ok(gw.stdout.includes(GATEWAY_CONFIG_FIELDS_HELP), 'gateway start --help shows the generated config help');
    // The group help points to where the config fields are.
    assert.match((await tkms('node', '--help')).stdout, /tkms node start --help/);
    assert.match((await tkms('gateway', '--help')).stdout, /tkms gateway start --help/);
  });

  it('options show their environment variable and default from the declaration', async () => {
    // Help wraps at the terminal width; compare with the wrapping undone.
    const flat = async (...argv: string[]) => (await tkms(...argv, '--help')).stdout.replace(/\s+/g, ' ');
    const enc = { stdout: await flat('encrypt') };
    assert.match(enc.stdout, /--gateway <url>[\s\S]*?\(default: "http:\/\/127\.0\.0\.1:8080", env: TKMS_GATEWAY_URL\)/);
    assert.match(enc.stdout, /--account <file>[\s\S]*?\(env: TKMS_ACCOUNT_FILE\) \[required\]/);
    assert.match(enc.stdout, /--key <keyId> the network key to encrypt to \[required\]/);
    assert.match(enc.stdout, /--password-file <file>[\s\S]*?\(env: TKMS_ACCOUNT_PASSWORD_FILE\)/);
    assert.match(await flat('grant'), /--days <n>[\s\S]*?\(default: 30\)/);
    assert.match(await flat('dkg', 'start'), /--timeout <seconds>[\s\S]*?\(default: 300\)/);
    // A key change's options are described by core's declaration of the change's body.
    assert.match(await flat('key', 'schedule-deletion'), /--days <n> days until the key \(or version\) is destroyed: 7-30, default 30 /);
    // Choices, too, and limits core declares.
    assert.match(await flat('key', 'create'), /--usage <usage> ENCRYPT_DECRYPT \(default for ECC_SECG_P256K1\) or SIGN_VERIFY [^)]*\) \(choices: "ENCRYPT_DECRYPT", "SIGN_VERIFY"\)/);
    assert.match(await flat('sign'), /--message-file <file> sign the bytes of this file as they are \(1 to 65536 bytes\)/);
  });

  it('usage errors exit 2 in one format, with a suggestion for near misses', async () => {
    const cases: [string[], RegExp][] = [
      [['frobnicate'], /^tkms: error \[usage\]: unknown command 'frobnicate'/],
      [['encrpyt'], /^tkms: error \[usage\]: unknown command 'encrpyt'\n\(Did you mean encrypt\?\)/],
      [['node', 'strat'], /^tkms node: error \[usage\]: unknown command 'strat'\n\(Did you mean start\?\)/],
      [['encrypt', '--account', 'a.json', '--key', 'k', '--txt', 'x'], /^tkms encrypt: error \[usage\]: unknown option '--txt'\n\(Did you mean --text\?\)/],
      [['encrypt', '--account', 'a.json'], /^tkms encrypt: error \[usage\]: --key is required/],
      [['decrypt', '--handle', '0x00'], /^tkms decrypt: error \[usage\]: --account is required \(or set TKMS_ACCOUNT_FILE\)/],
      [['grant', '--account', 'a.json', '--handle', 'h', '--to', 'x', '--days', '-1'], /^tkms grant: error \[usage\]: option '--days <n>' argument '-1' is invalid/],
      [['dkg', 'start', '--key', 'k', '--admin', 'ftp://x'], /^tkms dkg start: error \[usage\]: option '--admin <url>' argument 'ftp:\/\/x' is invalid/],
      [['encrypt', '--account', 'a.json', '--key', 'k', '--text', 'x', '--in', 'f'], /^tkms encrypt: error \[usage\]: option '--text <string>' cannot be used with option '--in <file>'/],
      [['key', 'create', '--account', 'a.json', '--key-id', 'k', '--spec', 'RSA_2048'], /^tkms key create: error \[usage\]: option '--spec <spec>' argument 'RSA_2048' is invalid\. Allowed choices are ECC_SECG_P256K1, ECC_NIST_EDWARDS25519/],
      [['sign', '--account', 'a.json', '--key', 'k'], /^tkms sign: error \[usage\]: give exactly one of --message-file, --message or --psbt/],
    ];
    for (const [argv, pattern] of cases) {
      const r = await tkms(...argv);
      assert.equal(r.code, 2, `${argv.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, pattern, argv.join(' '));
      assert.match(r.stderr, /\(see "tkms[^"]* --help"\)\n$/);
      assert.equal(r.stdout, '');
    }
    // "tkms help <command>" is the same as "tkms <command> --help".
    const viaHelp = await tkms('help', 'node');
    assert.equal(viaHelp.code, 0);
    assert.equal(viaHelp.stdout, (await tkms('node', '--help')).stdout);
    // A group without its subcommand shows its help and is a usage error too.
    const bare = await tkms('node');
    assert.equal(bare.code, 2);
    assert.match(bare.stderr, /^Usage: tkms node/m);
  });

  it('failures exit 1 in the same format, with the error code', async () => {
    const r = await tkms('committee', 'show', '--file', '/nonexistent/committee.json');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^tkms committee show: error \[[a-z_]+\]: /);
  });

  it('the command tree loads only declarations: implementations are imported when their command runs', () => {
    // The static (non-type) imports reachable from the tree; dynamic import() is not followed.
    const seen = new Set<string>();
    const packages = new Set<string>();
    const visit = (file: string): void => {
      if (seen.has(file)) return;
      seen.add(file);
      const source = readFileSync(join(REPO_ROOT, file), 'utf8');
      for (const m of source.matchAll(/^import (?!type )[^;]*?from '([^']+)';$/gms)) {
        const spec = m[1]!;
        if (spec.startsWith('.')) visit(relative(REPO_ROOT, join(REPO_ROOT, dirname(file), spec)));
        else packages.add(spec);
      }
    };
    visit('scripts/cli/program.ts');
    assert.deepEqual([...packages].sort(), ['commander', 'node:fs', 'node:path', 'node:url']);
    assert.deepEqual([...seen].sort(), [
      'client/cli.ts',
      'client/key-cli.ts',
      'core/errors.ts',
      'deploy/committee-cli.ts',
      'deploy/devnet-cli.ts',
      'gateway/cli.ts',
      'node/cli.ts',
      'runtime/version.ts',
      'scripts/cli/command.ts',
      'scripts/cli/program.ts',
    ]);
  });

  it('the real entry point lists every command group, prints the version and points to the operators guide', async () => {
    const r = await runTkms(['--help']);
    assert.equal(r.code, 0, r.stderr);
    for (const g of ['node', 'committee', 'dkg', 'gateway', 'devnet', 'account', 'encrypt', 'grant', 'revoke', 'decrypt', 'sign', 'key']) assert.match(r.stdout, new RegExp(`^  ${g} `, 'm'));
    assert.match(r.stdout, /docs\/operators\.md/);
    const v = await runTkms(['--version']);
    assert.equal(v.code, 0, v.stderr);
    assert.equal(v.stdout, `${(JSON.parse(await import('node:fs/promises').then((fs) => fs.readFile('package.json', 'utf8'))) as { version: string }).version}\n`);
  });
});
