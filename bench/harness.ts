/**
 * Minimal side-by-side timer: every figure in one table comes from the same process and
 * run, so ratios between rows are meaningful even on a noisy machine.
 */
export interface Measurement {
  name: string;
  iterations: number;
  msPerOp: number;
  opsPerSec: number;
}

export interface MeasureOptions {
  /** Minimum wall time to spend measuring, in ms. */
  minMs?: number;
  /** Minimum number of timed iterations. */
  minIterations?: number;
  warmup?: number;
}

export async function measure(name: string, fn: () => unknown, opts: MeasureOptions = {}): Promise<Measurement> {
  const minMs = opts.minMs ?? 1000;
  const minIterations = opts.minIterations ?? 10;
  for (let i = 0; i < (opts.warmup ?? 3); i++) await fn();
  let iterations = 0;
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < minMs || iterations < minIterations) {
    await fn();
    iterations++;
    elapsed = performance.now() - start;
  }
  const msPerOp = elapsed / iterations;
  return { name, iterations, msPerOp, opsPerSec: 1000 / msPerOp };
}

export function printTable(title: string, rows: Measurement[], baseline?: string): void {
  const base = baseline === undefined ? undefined : rows.find((r) => r.name === baseline);
  console.log(`\n${title}`);
  const header = ['operation', 'ms/op', 'ops/s', 'iterations', base ? `× ${base.name}` : ''];
  const lines = rows.map((r) => [
    r.name,
    r.msPerOp.toFixed(3),
    r.opsPerSec.toFixed(0),
    String(r.iterations),
    base ? (r.msPerOp / base.msPerOp).toFixed(2) : '',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmt = (cols: string[]) => cols.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(fmt(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const l of lines) console.log(fmt(l));
}
