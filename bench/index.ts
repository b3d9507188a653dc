import '../core/polyfills.ts';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchCore } from './core.ts';

const quick = process.argv.includes('--quick');
const here = dirname(fileURLToPath(import.meta.url));

const started = new Date().toISOString();
const core = await benchCore({ minMs: quick ? 200 : 1000 });

const resultsDir = join(here, 'results');
mkdirSync(resultsDir, { recursive: true });
const out = join(resultsDir, 'latest.json');
writeFileSync(
  out,
  JSON.stringify({ started, node: process.version, platform: `${process.platform}-${process.arch}`, core }, null, 2) + '\n',
);
console.log(`\nresults written to ${out}`);
