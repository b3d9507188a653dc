import assert from 'node:assert/strict';
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';

/**
 * The client library must run in a browser: bundling it for the browser platform fails on
 * any Node-only import (node:fs, Buffer-only code paths behind node: modules, libp2p's TCP).
 */
describe('client: browser bundle', function () {
  this.timeout(60_000);

  it('bundles client/index.ts for the browser with no Node built-ins', async () => {
    const entry = fileURLToPath(new URL('../../client/index.ts', import.meta.url));
    const result = await build({ entryPoints: [entry], bundle: true, platform: 'browser', format: 'esm', write: false, logLevel: 'silent', metafile: true });
    assert.equal(result.errors.length, 0);
    const inputs = Object.keys(result.metafile.inputs);
    assert.ok(inputs.some((p) => p.endsWith('client/client.ts')));
    // package.json's `browser` condition picks the platform: noble and WebCrypto, no setup call, no addon.
    assert.ok(inputs.some((p) => p.endsWith('core/platform/browser.ts')), 'the browser platform module is bundled');
    assert.deepEqual(inputs.filter((p) => /core\/platform\/node|core\/node-crypto|core\/curve-native|secp256k1\/|multiaddr|libp2p/.test(p)), []);
    // Of multiformats, only its base58 codec (peer ids in the committee file) may come along.
    assert.deepEqual(inputs.filter((p) => /multiformats/.test(p) && !/multiformats\/dist\/src\/(bases\/(base|base58)|bytes|vendor\/base-x)\.js$/.test(p)), []);
    assert.ok(!inputs.some((p) => p.startsWith('node:') || p.includes('/libp2p/')), `unexpected inputs: ${inputs.filter((p) => p.includes('libp2p') || p.startsWith('node:')).join(', ')}`);
    const code = result.outputFiles[0]!.text;
    assert.ok(!/\brequire\(["']node:/.test(code) && !/from ["']node:/.test(code));
    assert.ok(!/\bBuffer\.from\b/.test(code), 'the browser path must not use Buffer');
  });
});
