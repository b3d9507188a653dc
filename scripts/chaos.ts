import '../core/polyfills.ts';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FAULT_KINDS, formatChaosReport, runChaos, type FaultKind } from '../test/chaos/driver.ts';

/**
 * `npm run chaos`: a 4-of-7 devnet under a steady decrypt load while nodes are killed,
 * restarted, paused and partitioned at random (never more than n − t at once); prints a summary
 * table and writes the full report to bench/results/chaos.json. Exit 1 when a decrypt failed,
 * an unauthorized one succeeded, or the network did not come back.
 *
 *   npm run chaos -- [--duration 120] [--concurrency 2] [--n 7 --t 4] [--seed N]
 *                    [--kinds kill,restart,pause,partition-blackhole,partition-reset]
 *                    [--out bench/results/chaos.json] [--keep-dir] [--quiet]
 */
const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function usage(message: string): never {
  process.stderr.write(`chaos: ${message}\nusage: npm run chaos -- [--duration s] [--concurrency k] [--n n --t t] [--seed s] [--kinds a,b] [--out file] [--keep-dir] [--quiet]\n`);
  process.exit(2);
}

function parseArgs(argv: string[]): Record<string, string | boolean> {
  const out: Record<string, string | boolean> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) usage(`unexpected argument ${a}`);
    const name = a.slice(2);
    if (name === 'keep-dir' || name === 'quiet') out[name] = true;
    else {
      const v = argv[++i];
      if (v === undefined) usage(`--${name} needs a value`);
      out[name] = v;
    }
  }
  return out;
}

function int(args: Record<string, string | boolean>, name: string, fallback: number, min: number, max: number): number {
  const v = args[name];
  if (v === undefined) return fallback;
  const x = Number(v);
  if (!Number.isInteger(x) || x < min || x > max) usage(`--${name} must be an integer in ${min}..${max}`);
  return x;
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const known = ['duration', 'concurrency', 'n', 't', 'seed', 'kinds', 'out', 'keep-dir', 'quiet'];
  for (const k of Object.keys(args)) if (!known.includes(k)) usage(`unknown option --${k}`);
  const n = int(args, 'n', 7, 2, 16);
  const t = int(args, 't', 4, 1, n);
  const kinds = typeof args.kinds === 'string' ? (args.kinds.split(',') as FaultKind[]) : [...FAULT_KINDS];
  for (const k of kinds) if (!FAULT_KINDS.includes(k)) usage(`unknown fault kind ${k} (known: ${FAULT_KINDS.join(', ')})`);
  const out = resolve(typeof args.out === 'string' ? args.out : join(REPO_ROOT, 'bench/results/chaos.json'));
  const dir = await mkdtemp(join(tmpdir(), 'tkms-chaos-'));
  const say = (line: string): void => {
    process.stdout.write(`${line}\n`);
  };
  say(`chaos: ${t}-of-${n} devnet in ${dir}`);
  let failed = true;
  try {
    const report = await runChaos({
      dir,
      n,
      t,
      durationMs: int(args, 'duration', 120, 5, 3600) * 1000,
      concurrency: int(args, 'concurrency', 2, 1, 32),
      ...(args.seed !== undefined ? { seed: int(args, 'seed', 0, 0, 2 ** 32 - 1) } : {}),
      kinds,
      log: args.quiet === true ? () => undefined : say,
    });
    const json = report;
    say('');
    say(formatChaosReport(json));
    await mkdir(dirname(out), { recursive: true });
    await writeFile(out, `${JSON.stringify({ ...json, generatedBy: 'npm run chaos', node: process.version }, null, 2)}\n`);
    say(`\nreport written to ${out}`);
    failed =
      json.decrypts.failed > 0 || json.unauthorized.leaked > 0 || !json.recovered || json.unexpectedExits.length > 0 || !json.finalDecryptOk || json.faults.errors.length > 0;
  } finally {
    if (args['keep-dir'] === true) say(`devnet directory kept: ${dir}`);
    else await rm(dir, { recursive: true, force: true });
  }
  process.exit(failed ? 1 : 0);
}

main().catch((e: unknown) => {
  process.stderr.write(`chaos: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
