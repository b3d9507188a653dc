import { fileURLToPath } from 'node:url';
import { makeDkgScenario, simulateDkg } from '../test/unit/ceremony-dkg-harness.ts';
import { makeScenario, simulate } from '../test/unit/ceremony-harness.ts';

/**
 * CPU one member spends in the ceremony engine (core/ceremony), all members in one process on the
 * simulated network: the floor under a real-process DKG or refresh on few cores, where n members'
 * CPU adds up. DKG with t = ⌊n/2⌋ + 1; refresh of n members with t = ⌊2n/3⌋ + 1 (as bench/reshare.ts).
 * Run alone: `npx tsx bench/ceremony-cpu.ts [16 32]`.
 */
export interface CeremonyCpuRow {
  kind: 'dkg' | 'refresh';
  n: number;
  t: number;
  wallMs: number;
  cpuMsPerMember: number;
}

function measure(kind: CeremonyCpuRow['kind'], n: number, t: number, run: () => { outcomes: unknown[] }): CeremonyCpuRow {
  const cpu = process.cpuUsage();
  const start = performance.now();
  const { outcomes } = run();
  const wallMs = performance.now() - start;
  const used = process.cpuUsage(cpu);
  if (outcomes.some((o) => o === undefined)) throw new Error(`in-memory ${kind} n=${n}: a member has no outcome`);
  return { kind, n, t, wallMs: Math.round(wallMs), cpuMsPerMember: Math.round((used.user + used.system) / 1000 / n) };
}

export function benchCeremonyCpu(sizes: readonly number[]): CeremonyCpuRow[] {
  const rows: CeremonyCpuRow[] = [];
  for (const n of sizes) {
    const tDkg = Math.floor(n / 2) + 1;
    rows.push(measure('dkg', n, tDkg, () => simulateDkg(makeDkgScenario({ n, t: tDkg }))));
    const t = Math.floor((2 * n) / 3) + 1;
    const stay = Array.from({ length: n }, (_, i) => [i + 1, i + 1] as [number, number]);
    rows.push(measure('refresh', n, t, () => simulate(makeScenario({ n, t, nTo: n, tTo: t, stay }))));
  }
  return rows;
}

export function printCeremonyCpu(rows: readonly CeremonyCpuRow[]): void {
  console.log('\nceremony engine CPU, all members in one process (simulated network)');
  for (const r of rows) console.log(`  ${r.kind.padEnd(7)} n=${String(r.n).padStart(2)} t=${String(r.t).padStart(2)}: ${String(r.cpuMsPerMember).padStart(5)} ms CPU per member (${r.wallMs} ms wall for all)`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await import('../core/index.ts');
  const sizes = process.argv.slice(2).map(Number).filter((x) => x > 0);
  printCeremonyCpu(benchCeremonyCpu(sizes.length > 0 ? sizes : [16, 32]));
}
