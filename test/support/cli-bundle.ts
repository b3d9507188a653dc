import { renameSync } from 'node:fs';
import { join } from 'node:path';
import { buildSync } from 'esbuild';
import { REPO_ROOT, useTkmsBin } from './processes.ts';

/**
 * Loaded by `npm test` (.mocharc.json "require"): the tkms processes the tests spawn through
 * test/support/processes.ts (clusters, their gateways, `runTkms`) run the CLI's sources bundled
 * once into one ES module, instead of bin/tkms.js compiling them file by file through tsx's loader.
 * Same sources, same node_modules; a node reaches /health on about half the CPU (3.1 s → 1.5 s
 * measured), and the suite starts hundreds of them. Devnets (deploy/devnet.ts) and single-file
 * runs (--no-config) still spawn bin/tkms.js, so the shipped entry point stays under test.
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
