import assert from 'node:assert/strict';
import { mkdtemp, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateAccount } from '../../client/account.ts';
import { writeAccountFile } from '../../client/account-file.ts';
import { MAX_PSBT_FILE_BYTES, outText, psbtFromFile, signatureText } from '../../client/sign-cli-commands.ts';
import { isTkmsError } from '../../core/errors.ts';
import { MAX_PSBT_BYTES } from '../../core/signing/psbt.ts';
import { MAX_RAW_MESSAGE_BYTES } from '../../core/signing/sign-request.ts';
import { captureCli } from '../deploy/cli-capture.ts';
import { buildPsbt, HOT } from '../support/psbt-fixtures.ts';

/**
 * `tkms sign` up to the request: which message it takes, and the bounds it keeps before it reads a
 * file whole, asks for the account's password or reaches a gateway. Signing itself is
 * test/integration/sign-cli.test.ts.
 */
describe('cli: tkms sign (options and message files)', function () {
  this.timeout(60_000);
  let dir: string;
  /** A real account, and a gateway where nothing listens: a message that passes every check fails only there. */
  let signed: string[];
  /** An account file that does not exist: a check that fails with this proves the account was never opened. */
  let noAccount: string[];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tkms-sign-cli-'));
    await writeFile(join(dir, 'pw'), 'sign-cli-test\n');
    await writeAccountFile(join(dir, 'alice.json'), generateAccount(), 'sign-cli-test', { n: 1024, r: 8, p: 1 });
    signed = ['--account', join(dir, 'alice.json'), '--password-file', join(dir, 'pw'), '--gateway', 'http://127.0.0.1:1', '--key', 'btc'];
    noAccount = ['--account', join(dir, 'missing.json'), '--gateway', 'http://127.0.0.1:1', '--key', 'btc'];
  });
  after(() => rm(dir, { recursive: true, force: true }));

  const tkms = async (...argv: string[]) => {
    const { runTkmsCli } = await import('../../scripts/cli/program.ts');
    return captureCli(() => runTkmsCli(['sign', ...argv]));
  };
  const file = async (name: string, content: Uint8Array | string): Promise<string> => {
    await writeFile(join(dir, name), content);
    return join(dir, name);
  };
  /** A file of `size` bytes that takes no space (and would take long to read whole). */
  const sparse = async (name: string, size: number): Promise<string> => {
    await writeFile(join(dir, name), '');
    await truncate(join(dir, name), size);
    return join(dir, name);
  };
  const gatewayReached = (r: { code: number; stderr: string }, what: string): void => {
    assert.equal(r.code, 1, what);
    assert.match(r.stderr, /^tkms sign: error \[unavailable\]/, `${what}: ${r.stderr}`);
  };

  it('takes exactly one message source; usage errors exit 2 before the account is opened', async () => {
    const msg = await file('m.bin', 'hello');
    const cases: [string[], RegExp][] = [
      [[], /give exactly one of --message-file, --message or --psbt/],
      [['--message-file', msg, '--message', 'x'], /option '--message-file <file>' cannot be used with option '--message <text>'/],
      [['--message', 'x', '--psbt', msg], /option '--message <text>' cannot be used with option '--psbt <file>'/],
      [['--psbt', msg, '--message-file', msg], /option '--message-file <file>' cannot be used with option '--psbt <file>'|option '--psbt <file>' cannot be used with option '--message-file <file>'/],
    ];
    for (const [argv, pattern] of cases) {
      const r = await tkms(...noAccount, ...argv);
      assert.equal(r.code, 2, `${argv.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, pattern);
      assert.equal(r.stdout, '');
    }
    const noKey = await tkms('--account', 'a.json', '--message', 'x');
    assert.equal(noKey.code, 2);
    assert.match(noKey.stderr, /--key is required/);
  });

  it(`a raw message is 1 to ${MAX_RAW_MESSAGE_BYTES} bytes: larger files are refused by their size, unsized streams after the bound`, async () => {
    // At the bound: read, signed by the account, sent (and the gateway is not there).
    gatewayReached(await tkms(...signed, '--message-file', await file('max.bin', new Uint8Array(MAX_RAW_MESSAGE_BYTES).fill(0xff))), 'a message of the largest size');
    gatewayReached(await tkms(...signed, '--message', 'é'.repeat(MAX_RAW_MESSAGE_BYTES / 2)), 'a text of the largest size');
    const refusals: [string[], RegExp][] = [
      [['--message-file', await sparse('over.bin', MAX_RAW_MESSAGE_BYTES + 1)], /error \[bad_request\]: \S+over\.bin is larger than 65536 bytes, the most a key signs/],
      // A terabyte: refused by its size, never read.
      [['--message-file', await sparse('huge.bin', 2 ** 40)], /error \[bad_request\]: \S+huge\.bin is larger than 65536 bytes/],
      // A device without a size and without an end: the read stops one byte past the bound.
      [['--message-file', '/dev/zero'], /error \[bad_request\]: \/dev\/zero is larger than 65536 bytes/],
      [['--message', 'é'.repeat(MAX_RAW_MESSAGE_BYTES / 2) + 'x'], /error \[bad_request\]: --message is larger than 65536 bytes/],
      [['--message-file', await file('empty.bin', '')], /error \[bad_request\]: \S+empty\.bin is empty: a message to sign is 1 to 65536 bytes/],
      [['--message', ''], /error \[bad_request\]: --message is empty/],
      [['--message-file', join(dir, 'absent.bin')], /error \[bad_request\]: cannot read \S+absent\.bin: ENOENT/],
      [['--message-file', dir], /error \[bad_request\]: cannot read \S+: EISDIR/],
    ];
    for (const [argv, pattern] of refusals) {
      const r = await tkms(...noAccount, ...argv);
      assert.equal(r.code, 1, `${argv.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, pattern);
    }
  });

  it('a PSBT file is binary or base64 text; either is bounded before it is read whole', async () => {
    const psbt = buildPsbt([{ amount: 50_000n }], [{ script: HOT.script, amount: 40_000n }]);
    const base64 = Buffer.from(psbt).toString('base64');
    const wrapped = `${base64.match(/.{1,64}/g)!.join('\r\n')}\r\n`;
    for (const [name, content] of [
      ['binary', psbt],
      ['base64', base64],
      ['base64 with a final line break', `${base64}\n`],
      ['base64 wrapped at 64 columns, CRLF', wrapped],
    ] as const) {
      assert.deepEqual(psbtFromFile(typeof content === 'string' ? new TextEncoder().encode(content) : content), psbt, name);
      gatewayReached(await tkms(...signed, '--psbt', await file('p.psbt', content)), name);
    }
    const refusals: [string, Uint8Array | string | number, RegExp][] = [
      ['text', 'not a psbt at all', /is neither a binary PSBT \(it starts with "psbt" 0xff\) nor base64 text/],
      ['binary junk', Uint8Array.of(0x00, 0xff, 0x10, 0x80), /is neither a binary PSBT/],
      ['base64 of something else', Buffer.from('hello world, not a psbt').toString('base64'), /is base64 but not of a PSBT/],
      ['empty', '', /is empty/],
      ['a binary PSBT over the bound', (() => {
        const big = new Uint8Array(MAX_PSBT_BYTES + 1);
        big.set(psbt.subarray(0, 5));
        return big;
      })(), new RegExp(`holds a PSBT of ${MAX_PSBT_BYTES + 1} bytes; at most ${MAX_PSBT_BYTES} are signed`)],
      ['base64 over the bound', 'A'.repeat(Math.ceil(MAX_PSBT_BYTES / 3) * 4 + 4), /characters of base64; a PSBT of at most 262144 bytes is at most 349528/],
      ['a file over the bound', MAX_PSBT_FILE_BYTES + 1, new RegExp(`is larger than ${MAX_PSBT_FILE_BYTES} bytes: a PSBT is at most ${MAX_PSBT_BYTES} bytes`)],
      ['a terabyte', 2 ** 40, /is larger than/],
    ];
    for (const [name, content, pattern] of refusals) {
      const path = typeof content === 'number' ? await sparse('bad.psbt', content) : await file('bad.psbt', content);
      const r = await tkms(...noAccount, '--psbt', path);
      assert.equal(r.code, 1, `${name}: ${r.stderr}`);
      assert.match(r.stderr, /^tkms sign: error \[bad_psbt\]: /, name);
      assert.match(r.stderr, pattern, name);
    }
    const unsized = await tkms(...noAccount, '--psbt', '/dev/zero');
    assert.match(unsized.stderr, /error \[bad_psbt\]: \/dev\/zero is larger than/);
  });

  it('--out is checked before anything is signed: an existing file needs --force', async () => {
    const out = await file('sig.hex', 'keep me');
    const r = await tkms(...noAccount, '--message', 'x', '--out', out);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /error \[conflict\]: \S+sig\.hex already exists; give --force to replace it/);
    gatewayReached(await tkms(...signed, '--message', 'x', '--out', out, '--force'), '--force');
  });

  it('prints a PSBT signature per input, the blamed members, the finalised PSBT and the transaction; --out gets the transaction', () => {
    const result = {
      keyId: 'hot.v2',
      algorithm: 'BIP340_SCHNORR_TAPROOT',
      publicKey: `0x${'ab'.repeat(32)}`,
      signatures: [`0x${'01'.repeat(64)}`, `0x${'02'.repeat(64)}`],
      signers: [1, 3, 5],
      blamed: [2],
      inputs: [0, 2],
      psbt: 'cHNidP8BAA==',
      transaction: '0x0200aa',
    };
    assert.equal(
      signatureText(result, 'tx.hex'),
      [
        'key          hot, version 2',
        'algorithm    BIP340_SCHNORR_TAPROOT',
        `public key   0x${'ab'.repeat(32)}`,
        `signature    input 0: 0x${'01'.repeat(64)}`,
        `signature    input 2: 0x${'02'.repeat(64)}`,
        'signers      members 1, 3, 5',
        'blamed       members 2 (sent a bad share and were replaced)',
        'psbt         cHNidP8BAA==',
        'transaction  0x0200aa',
        'written      tx.hex (the signed transaction, hex)',
      ].join('\n'),
    );
    assert.equal(outText(result), '0200aa\n');
    const { inputs: _i, psbt: _p, transaction: _t, ...raw } = result;
    assert.equal(outText({ ...raw, signatures: [raw.signatures[0]!] }), `${'01'.repeat(64)}\n`);
  });

  it('psbtFromFile throws only bad_psbt', () => {
    for (const content of ['====', 'cHNidP8', '\u00ff\u00fe', ' \n\t']) {
      assert.throws(() => psbtFromFile(Buffer.from(content, 'latin1')), (e: unknown) => isTkmsError(e) && e.code === 'bad_psbt', JSON.stringify(content));
    }
  });
});
