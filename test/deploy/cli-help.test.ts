import assert from 'node:assert/strict';
import { runClientCommand } from '../../client/cli.ts';
import { runCommitteeCommand } from '../../deploy/committee-cli.ts';
import { runDevnetCommand } from '../../deploy/devnet-cli.ts';
import { runGatewayCommand } from '../../gateway/cli.ts';
import { runDkgCommand, runNodeCommand } from '../../node/cli.ts';
import { runTkms } from '../support/processes.ts';
import { captureCli } from './cli-capture.ts';

/** Every command answers --help (exit 0, a usage text on stdout) without doing anything else. */
const COMMANDS: [string, () => Promise<number>][] = [
  ['node', () => runNodeCommand(['--help'])],
  ...['init', 'start', 'check', 'status', 'backup', 'restore'].map((sub): [string, () => Promise<number>] => [`node ${sub}`, () => runNodeCommand([sub, '--help'])]),
  ['dkg', () => runDkgCommand(['--help'])],
  ...['start', 'status'].map((sub): [string, () => Promise<number>] => [`dkg ${sub}`, () => runDkgCommand([sub, '--help'])]),
  ['committee', () => runCommitteeCommand(['--help'])],
  ...['new', 'show'].map((sub): [string, () => Promise<number>] => [`committee ${sub}`, () => runCommitteeCommand([sub, '--help'])]),
  ['gateway', () => runGatewayCommand(['--help'])],
  ['gateway start', () => runGatewayCommand(['start', '--help'])],
  ['devnet', () => runDevnetCommand(['--help'])],
  ...['account', 'encrypt', 'grant', 'revoke', 'decrypt'].map((name): [string, () => Promise<number>] => [name, () => runClientCommand(name, [name === 'account' ? 'new' : '--key', '--help'])]),
];

describe('cli: --help on every command', function () {
  this.timeout(60_000);

  for (const [name, run] of COMMANDS) {
    it(`tkms ${name} --help`, async () => {
      const r = await captureCli(run);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^Usage/m);
      assert.equal(r.stderr, '');
    });
  }

  it('node subcommands document their options', async () => {
    for (const [sub, flags] of [
      ['status', ['--admin', '--config', '--json']],
      ['backup', ['--out', '--config']],
      ['restore', ['--in', '--backup-password-file']],
      ['init', ['--if-missing']],
    ] as const) {
      const r = await captureCli(() => runNodeCommand([sub, '--help']));
      for (const f of flags) assert.ok(r.stdout.includes(f), `node ${sub} --help mentions ${f}`);
    }
    const all = await captureCli(() => runNodeCommand(['--help']));
    for (const v of ['TKMS_LISTEN', 'TKMS_CLOCK_SKEW_SECONDS', 'TKMS_PARTIAL_RATE_PER_MINUTE', 'TKMS_ADMIN_ALLOW_REMOTE', 'TKMS_KEYSTORE_PASSWORD', 'TKMS_CONFIG']) assert.ok(all.stdout.includes(v), v);
    const gw = await captureCli(() => runGatewayCommand(['--help']));
    for (const v of ['TKMS_GATEWAY_PARTIAL_TIMEOUT_MS', 'TKMS_GATEWAY_RATE_BURST', 'TKMS_GATEWAY_CONFIG']) assert.ok(gw.stdout.includes(v), v);
  });

  it('the real entry point lists every command group and points to the operators guide', async () => {
    const r = await runTkms(['--help']);
    assert.equal(r.code, 0, r.stderr);
    for (const g of ['node', 'committee', 'dkg', 'gateway', 'devnet', 'account', 'encrypt', 'grant', 'revoke', 'decrypt']) assert.match(r.stdout, new RegExp(`^  ${g} `, 'm'));
    assert.match(r.stdout, /docs\/operators\.md/);
  });
});
