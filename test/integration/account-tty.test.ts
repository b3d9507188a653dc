import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decryptKeystore } from '../../client/keystore-v3.ts';
import { makeTempDir, removeDir, TKMS_BIN, waitFor } from '../support/processes.ts';

/**
 * `tkms account new` on a terminal asks for the password twice without echoing it. util-linux
 * `script` gives the CLI a real pseudo-terminal; the test is skipped where it is missing.
 */
describe('tkms account new on a terminal', function () {
  this.timeout(60_000);
  let dir: string | undefined;
  before(async function () {
    if (spawnSync('script', ['--version']).status !== 0) this.skip();
    dir = await makeTempDir('tkms-account-tty');
  });
  after(async () => removeDir(dir));

  async function onTerminal(args: string[], answers: { prompt: RegExp; type: string }[]): Promise<{ code: number | null; output: string }> {
    const command = [process.execPath, TKMS_BIN, ...args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ');
    const child = spawn('script', ['-qec', command, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (output += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (output += d));
    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    let seen = 0;
    for (const { prompt, type } of answers) {
      // Typed only once the prompt is shown: by then the terminal is in no-echo mode.
      await waitFor(`prompt ${prompt}`, () => (prompt.test(output.slice(seen)) ? true : undefined), { timeoutMs: 30_000 });
      seen = output.length;
      child.stdin.write(`${type}\r`);
    }
    const code = await exited;
    return { code, output };
  }

  it('asks twice, echoes nothing, and writes a keystore that opens with that password', async () => {
    const file = join(dir!, 'alice.json');
    const password = 'typed on a terminal';
    const r = await onTerminal(['account', 'new', '--out', file], [
      { prompt: /password for .*alice\.json: /, type: password },
      { prompt: /repeat the password: /, type: password },
    ]);
    assert.equal(r.code, 0, r.output);
    assert.ok(!r.output.includes(password), 'the password is not echoed');
    const { address } = await decryptKeystore(await readFile(file, 'utf8'), password);
    assert.ok(r.output.includes(address));
  });

  it('refuses two different passwords (exit 2, no file)', async () => {
    const file = join(dir!, 'bob.json');
    const r = await onTerminal(['account', 'new', '--out', file], [
      { prompt: /password for/, type: 'one' },
      { prompt: /repeat the password: /, type: 'two' },
    ]);
    assert.equal(r.code, 2, r.output);
    assert.match(r.output, /the two passwords differ/);
    await assert.rejects(readFile(file));
  });
});
