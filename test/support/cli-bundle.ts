import { renameSync } from 'node:fs';
import { join } from 'node:path';
import { buildSync } from 'esbuild';
import { useDevnetTkmsBin } from '../../deploy/devnet.ts';
import { REPO_ROOT, useTkmsBin } from './processes.ts';

/**
 * Loaded by `npm test` (.mocharc.json "require"): the tkms processes the tests spawn (clusters and
 * their gateways, `runTkms`, devnets started in the test process) run the CLI's sources bundled
 * once into one ES module, instead of bin/tkms.js compiling them file by file through tsx's loader.
 * Same sources, same node_modules; a node reaches /health on about half the CPU (3.1 s → 1.5 s
 * measured), and the suite starts hundreds of them. bin/tkms.js itself still runs: the devnets
 * `tkms devnet` starts (test/deploy), the TLS gateway of test/security/gateway-http.test.ts, and
 * every single-file run (--no-config).
 *
 * The bundle sits one directory below the repository root, as the sources do, so the paths they
 * derive from import.meta.url (package.json, native modules, the repository root) stay right.
 */
const dir = join(REPO_ROOT, '.test-cli');
const bin = join(dir, 'tkms.mjs');
// Written under a name of its own and renamed: two runs in one checkout never see half a file.
const partial = join(dir, `tkms.${process.pid}.mjs`);
buildSync({
  entryPoints: [join(REPO_ROOT, 'scripts/tkms.ts')],
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  packages: 'external',
  outfile: partial,
  logLevel: 'warning',
});
renameSync(partial, bin);
useTkmsBin(bin);
useDevnetTkmsBin(bin);
