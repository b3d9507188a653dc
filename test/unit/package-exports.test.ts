import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { build } from 'esbuild';

/**
 * The package as an application installs it: `npm run build`, then `tkms/client` and `tkms/core`
 * imported by plain Node (no tsx) pick the Node platform by package.json condition, with no
 * setup call; a browser bundle of the same import picks the browser one.
 */
const run = promisify(execFile);
const REPO = fileURLToPath(new URL('../../', import.meta.url));

const PROBE = `
import { TkmsClient, fromEip1193 } from 'tkms/client';
import { curveBackend, platformName } from 'tkms/core';
let unexported = 'exported';
try { await import('tkms/net/committee.js'); } catch (e) { unexported = e.code; }
console.log(JSON.stringify({ platformName, backend: curveBackend().name, client: typeof TkmsClient, wallet: typeof fromEip1193, unexported }));
`;

describe('package: exports map and platform conditions', function () {
  this.timeout(180_000);
  let app: string;

  before(async () => {
    await run('npm', ['run', 'build'], { cwd: REPO });
    app = await mkdtemp(join(tmpdir(), 'tkms-app-'));
    await mkdir(join(app, 'node_modules'));
    await symlink(REPO, join(app, 'node_modules', 'tkms'), 'dir');
  });
  after(async () => {
    if (app) await rm(app, { recursive: true, force: true });
  });

  it('builds JavaScript and type declarations for both entry points', () => {
    for (const f of ['dist/client/index.js', 'dist/client/index.d.ts', 'dist/core/index.js', 'dist/core/index.d.ts', 'dist/core/platform/node.js', 'dist/core/platform/browser.js', 'dist/package.json']) {
      assert.ok(existsSync(join(REPO, f)), f);
    }
  });

  it('plain Node imports tkms/client with libsecp256k1 in place; TKMS_CURVE_BACKEND=noble still forces noble', async () => {
    const probe = async (env: Record<string, string>) => {
      const { stdout } = await run(process.execPath, ['--input-type=module', '-e', PROBE], { cwd: app, env: { PATH: process.env.PATH ?? '', ...env } });
      return JSON.parse(stdout) as Record<string, string>;
    };
    assert.deepEqual(await probe({}), { platformName: 'node', backend: 'libsecp256k1', client: 'function', wallet: 'function', unexported: 'ERR_PACKAGE_PATH_NOT_EXPORTED' });
    assert.equal((await probe({ TKMS_CURVE_BACKEND: 'noble' })).backend, 'noble');
  });

  it('a browser bundle of tkms/client gets the browser platform and no Node module', async () => {
    const result = await build({
      stdin: { contents: "import { TkmsClient } from 'tkms/client'; globalThis.TkmsClient = TkmsClient;", resolveDir: app, loader: 'js' },
      bundle: true,
      platform: 'browser',
      format: 'esm',
      write: false,
      logLevel: 'silent',
      metafile: true,
    });
    const inputs = Object.keys(result.metafile.inputs);
    assert.ok(inputs.some((p) => p.endsWith('dist/core/platform/browser.js')), inputs.join('\n'));
    assert.deepEqual(inputs.filter((p) => p.startsWith('node:') || /platform\/node|node-crypto|curve-native|sodium|libp2p/.test(p)), []);
  });
});
