import '../core/polyfills.ts';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { benchCore } from './core.ts';
import { benchEndToEnd } from './e2e.ts';

const quick = process.argv.includes('--quick');
const here = dirname(fileURLToPath(import.meta.url));

const started = new Date().toISOString();
const core = await benchCore({ minMs: quick ? 200 : 1000 });

console.log('\nend to end on a loopback devnet (5 node processes, t = 3, gateway, client; sequential)');
const e2e = [await benchEndToEnd({ n: 5, t: 3, decrypts: quick ? 50 : 200 }), await benchEndToEnd({ n: 1, t: 1, decrypts: quick ? 50 : 200 })];
for (const r of e2e) {
  console.log(
    `  ${r.t}-of-${r.n}: delegation p50 ${r.delegateMs.p50} ms, p99 ${r.delegateMs.p99} ms; client decrypt p50 ${r.decryptMs.p50} ms, p99 ${r.decryptMs.p99} ms (${r.decrypts} each)`,
  );
}
const [threshold, baseline] = e2e as [typeof e2e[0], typeof e2e[0]];
console.log(`  ratio 3-of-5 / 1-of-1 (p50): delegation ${(threshold.delegateMs.p50 / baseline.delegateMs.p50).toFixed(2)}×, decrypt ${(threshold.decryptMs.p50 / baseline.decryptMs.p50).toFixed(2)}×`);

const resultsDir = join(here, 'results');
mkdirSync(resultsDir, { recursive: true });
const out = join(resultsDir, 'latest.json');
writeFileSync(
  out,
  JSON.stringify({ started, node: process.version, platform: `${process.platform}-${process.arch}`, core, e2e }, null, 2) + '\n',
);
console.log(`\nresults written to ${out}`);
