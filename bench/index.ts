import '../core/polyfills.ts';
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { curveSelection, setCurveBackend } from '../core/index.ts';
import { installNodeCryptoPaths } from '../core/node-crypto.ts';
import { benchBackends, benchCore } from './core.ts';
import { benchCeremonyCpu, printCeremonyCpu } from './ceremony-cpu.ts';
import { benchDkg, printDkg } from './dkg.ts';
import { benchReshare, printReshare } from './reshare.ts';
import { benchAclRows } from './acl-access.ts';
import { benchEndToEnd, printE2eRow, type E2eResult } from './e2e.ts';
import { benchNodeService } from './node-service.ts';
import { benchDerivedKeyCreation, benchKeyChecks } from './keys.ts';
import { benchKeyDkg, printKeyDkg } from './key-dkg.ts';
import { benchSigning, printSigning } from './signing.ts';

/**
 * `npm run bench`: every figure of the performance issue from one run on this machine, printed
 * side by side and written to bench/results/latest.json. `--quick` shortens every section
 * (and skips n = 32 in the DKG and the refresh) for a smoke run.
 */
const quick = process.argv.includes('--quick');
const here = dirname(fileURLToPath(import.meta.url));
const started = new Date().toISOString();

const core = await benchCore({ minMs: quick ? 200 : 1000 });

console.log('\nnode request path in one process (real PartialService: checks, spent-id log, proof, RSA wrap; grantee with a grant)');
const service = await benchNodeService(benchBackends(), { requests: quick ? 500 : 3000 });
for (const r of service) {
  console.log(
    `  [${r.backend}] ${r.msPerPartial} ms/partial sequential; ${r.concurrentPartialsPerSecond} partials/s with 64 in flight; ` +
      `CPU ${r.cpuMsPerPartial} ms/partial = ${r.partialsPerCoreSecond} partials/s per core; client decrypt CPU (t = 3) ${r.clientDecryptMs} ms`,
  );
}

// Beside the request path: what a managed key's checks add to each partial (node/partial.ts).
const keyChecks = benchKeyChecks({ checks: quick ? 20_000 : 200_000 });
const slowest = Math.max(...service.map((r) => r.cpuMsPerPartial));
console.log(
  `  managed key checks per partial: ${keyChecks.usPerCheck} µs with a typical policy (allow-list of 10, a time window, a daily limit), ` +
    `${keyChecks.usPerStateCheck} µs state only (target ≤ 50 µs; ${((keyChecks.usPerCheck / 1000 / slowest) * 100).toFixed(2)}% of the costliest row's CPU per partial)`,
);

// The sections above compare backends and leave noble and WebCrypto in place: back to what
// importing the package picked in Node (core/platform/node.ts), as a client application has.
setCurveBackend(curveSelection.backend);
installNodeCryptoPaths();
const e2eOpts = { decrypts: quick ? 50 : 200, concurrency: 16, seconds: quick ? 3 : 10 };
console.log(`\nend to end on a loopback devnet (every process on this ${cpus().length}-core machine)`);
const e2e: E2eResult[] = [];
for (const [n, t] of [[5, 3], [10, 7], [1, 1]] as const) {
  const r = await benchEndToEnd({ n, t, ...e2eOpts });
  e2e.push(r);
  printE2eRow(r);
}
const baseline = e2e.find((r) => r.n === 1)!;
const ratios = e2e
  .filter((r) => r.n !== 1)
  .map((r) => ({
    config: `${r.t}-of-${r.n}`,
    delegationP50: Number((r.delegateMs.p50 / baseline.delegateMs.p50).toFixed(2)),
    decryptP50: Number((r.decryptMs.p50 / baseline.decryptMs.p50).toFixed(2)),
    throughput: Number((r.throughput.decryptsPerSecond / baseline.throughput.decryptsPerSecond).toFixed(2)),
  }));
for (const x of ratios) {
  console.log(`  ${x.config} / 1-of-1: delegation p50 ${x.delegationP50}×, decrypt p50 ${x.decryptP50}×, throughput ${x.throughput}×`);
}

const acl = await benchAclRows(e2eOpts);

console.log('\nmanaged keys: 10,000 derived keys created in one key change log (every check, signature and fsync), and creation on a devnet');
const derivedKeys = await benchDerivedKeyCreation({ keys: quick ? 1_000 : 10_000 });
console.log(
  `  ${derivedKeys.keys} derived keys: ${derivedKeys.seconds} s (${derivedKeys.keysPerSecond} keys/s); the checks alone ${derivedKeys.checksOnlySeconds} s; reopening the log ${derivedKeys.reopenSeconds} s`,
);
const keyDkg = await benchKeyDkg({ n: 5, t: 3, runs: quick ? 1 : 5 });
printKeyDkg(keyDkg);

console.log('\nthreshold signing (FROST) on a loopback devnet: POST /v1/keys/{id}/sign as a client sees it, 3-of-5 beside 1-of-1');
const signingOpts = { sequential: quick ? 50 : 300, concurrency: 16, seconds: quick ? 3 : 10 };
const signing = [...(await benchSigning({ n: 5, t: 3, ...signingOpts })), ...(await benchSigning({ n: 1, t: 1, ...signingOpts }))];
printSigning(signing);

const dkg = await benchDkg(quick ? [5, 10, 16] : [5, 10, 16, 32], quick ? 1 : 3);
console.log('\ncommittee changes: refresh of n members holding one key (t = ⌊2n/3⌋ + 1), and one reshare 3-of-5 → 4-of-7');
const reshare = await benchReshare(quick ? [5, 16] : [5, 16, 32], { runs: quick ? 1 : 3, grow: true });
const ceremonyCpu = benchCeremonyCpu(quick ? [16] : [16, 32]);
printDkg(dkg.summary);
printReshare(reshare);
printCeremonyCpu(ceremonyCpu);

const resultsDir = join(here, 'results');
mkdirSync(resultsDir, { recursive: true });
const out = join(resultsDir, 'latest.json');
writeFileSync(
  out,
  `${JSON.stringify({ started, quick, node: process.version, platform: `${process.platform}-${process.arch}`, cpus: cpus().length, core, service, keyChecks, e2e, ratios, acl, derivedKeys, keyDkg, signing, dkg, reshare, ceremonyCpu }, null, 2)}\n`,
);
console.log(`\nresults written to ${out}`);
