import '../core/polyfills.ts';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getJson, makeTempDir, NodeCluster, removeDir, waitFor } from '../test/support/processes.ts';
import { printTimeline } from './timeline.ts';

/**
 * DKG wall time on loopback with real node processes: for each n, start n daemons
 * (t = ⌊2n/3⌋ + 1), wait until every node sees all n − 1 peers, then time from the admin
 * POST until the LAST node stored its share (the time each node reports, read by a slow poll). Run alone: `npx tsx bench/dkg.ts [5 10 16] [--runs 2] [--timeline]`
 * (`--timeline`: when each step of the ceremony happened on the nodes, as bench/reshare.ts).
 */
const here = dirname(fileURLToPath(import.meta.url));

export interface DkgRow {
  n: number;
  t: number;
  run: number;
  wallMs: number;
  proposerMs: number;
}

export interface DkgSummary {
  n: number;
  t: number;
  runs: number;
  medianMs: number;
  minMs: number;
  maxMs: number;
}

export async function benchDkg(sizes: readonly number[], runs: number, opts: { timeline?: boolean } = {}): Promise<{ rows: DkgRow[]; summary: DkgSummary[] }> {
  const rows: DkgRow[] = [];
  for (const n of sizes) {
    const t = Math.floor((2 * n) / 3) + 1;
    const root = await makeTempDir(`tkms-bench-dkg-${n}`);
    let cluster: NodeCluster | undefined;
    try {
      const setupStart = performance.now();
      cluster = await NodeCluster.prepare({ n, t, rootDir: root, phaseTimeoutMs: 10_000, logLevel: opts.timeline === true ? 'debug' : 'warn' });
      // A few at a time: 32 processes starting at once on a busy 2-core machine miss the start timeout.
      for (let i = 0; i < n; i += 8) await Promise.all(cluster.nodes.slice(i, i + 8).map((node) => cluster!.start(node.id)));
      const ids = cluster.nodes.map((x) => x.id);
      await Promise.all(
        ids.map((id) =>
          waitFor(`node ${id} sees all peers`, async () => ((await getJson(`${cluster!.node(id).httpUrl}/health`)).json.peersConnected === n - 1 ? true : undefined), {
            timeoutMs: 180_000, // 32 processes reach a full mesh slowly on a busy 2-core machine
          }),
        ),
      );
      console.log(`n=${n} t=${t}: ${n} processes up and fully connected in ${Math.round(performance.now() - setupStart)} ms`);
      for (let run = 1; run <= runs; run++) {
        const keyId = `bench-${n}-${run}`;
        const proposer = cluster.node(((run - 1) % n) + 1);
        const postedAt = Date.now();
        const res = await getJson(`${proposer.adminUrl}/admin/dkg`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ keyId }) });
        if (res.status !== 202) throw new Error(`DKG start refused: ${JSON.stringify(res.json)}`);
        let proposerMs = 0;
        // When each node stored its share, by its own clock (this machine's): polling 32 nodes every
        // 50 ms and timing the last answer took a third of a core from the ceremony it timed, and
        // every 250 ms still 128 requests a second; the poll's period does not change the time
        // measured, only what measuring costs.
        const storedAt = await Promise.all(
          ids.map((id) =>
            waitFor(
              `node ${id} done`,
              async () => {
                const s = await getJson(`${cluster!.node(id).adminUrl}/admin/dkg/${keyId}`);
                if (s.json.status === 'aborted') throw new Error(`DKG aborted on node ${id}: ${s.json.abortReason}`);
                if (s.json.status !== 'done') return undefined;
                if (id === proposer.id) proposerMs = s.json.durationMs;
                return Date.parse(s.json.startedAt) + s.json.durationMs;
              },
              { timeoutMs: 120_000, intervalMs: 1_000 },
            ),
          ),
        );
        const wallMs = Math.max(...storedAt) - postedAt;
        rows.push({ n, t, run, wallMs: Math.round(wallMs), proposerMs });
        console.log(`  run ${run}: all ${n} nodes stored the key after ${Math.round(wallMs)} ms (proposer's session: ${proposerMs} ms)`);
        if (opts.timeline === true) await printTimeline(cluster, postedAt);
      }
    } finally {
      await cluster?.stopAll();
      await removeDir(root);
    }
  }
  const summary: DkgSummary[] = [];
  for (const n of sizes) {
    const r = rows.filter((x) => x.n === n).map((x) => x.wallMs).sort((a, b) => a - b);
    if (r.length === 0) continue;
    summary.push({ n, t: rows.find((x) => x.n === n)!.t, runs: r.length, medianMs: r[Math.floor(r.length / 2)]!, minMs: r[0]!, maxMs: r[r.length - 1]! });
  }
  return { rows, summary };
}

export function printDkg(summary: readonly DkgSummary[]): void {
  console.log('\nDKG wall time on loopback (real processes, POST → last node stored its share)');
  console.log('n   t   runs  median ms  min ms  max ms');
  for (const r of summary) {
    console.log(`${String(r.n).padEnd(4)}${String(r.t).padEnd(4)}${String(r.runs).padEnd(6)}${String(r.medianMs).padEnd(11)}${String(r.minMs).padEnd(8)}${r.maxMs}`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const args = process.argv.slice(2);
  const runsIdx = args.indexOf('--runs');
  const runs = runsIdx >= 0 ? Number(args[runsIdx + 1]) : 3;
  const sizes = args.filter((a, i) => /^\d+$/.test(a) && (runsIdx < 0 || i !== runsIdx + 1)).map(Number);
  if (sizes.length === 0) sizes.push(5, 10, 16);
  const { rows, summary } = await benchDkg(sizes, runs, { timeline: args.includes('--timeline') });
  printDkg(summary);
  const resultsDir = join(here, 'results');
  mkdirSync(resultsDir, { recursive: true });
  writeFileSync(join(resultsDir, 'dkg.json'), `${JSON.stringify({ date: new Date().toISOString(), node: process.version, rows, summary }, null, 2)}\n`);
}
