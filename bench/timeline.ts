import type { NodeCluster } from '../test/support/processes.ts';

/**
 * Each step of the ceremony across the nodes, in ms after the admin POST (`postedAt`, epoch ms):
 * first, median and last node to get there, from the runners' debug line 'ceremony timeline'.
 */
export async function printTimeline(cluster: NodeCluster, postedAt: number): Promise<void> {
  // The last node logs its timeline as it commits; its stdout may reach us a little later.
  await new Promise((r) => setTimeout(r, 500));
  const at = new Map<string, number[]>();
  const extra: string[] = [];
  for (const node of cluster.nodes) {
    const line = node.process?.logLines().filter((l) => l.msg === 'ceremony timeline (ms after the approval)').at(-1);
    if (line === undefined) continue;
    const startedAt = line.startedAt as number;
    for (const [what, ms] of Object.entries(line.ms as Record<string, number>)) at.set(what, [...(at.get(what) ?? []), startedAt + ms - postedAt]);
    at.set('approved', [...(at.get('approved') ?? []), startedAt - postedAt]);
    extra.push(`node ${node.id}: engine ${line.engineMs as number} ms (slowest step ${line.slowestStepMs as number} ms), received ${JSON.stringify(line.received)}`);
  }
  const rows = [...at].map(([what, xs]) => ({ what, xs: xs.sort((a, b) => a - b) })).sort((a, b) => a.xs[Math.floor(a.xs.length / 2)]! - b.xs[Math.floor(b.xs.length / 2)]!);
  console.log('    step                 nodes  first ms  median ms  last ms   (after the admin POST)');
  for (const { what, xs } of rows) console.log(`    ${what.padEnd(21)}${String(xs.length).padEnd(7)}${String(xs[0]).padEnd(10)}${String(xs[Math.floor(xs.length / 2)]).padEnd(11)}${xs[xs.length - 1]}`);
  for (const e of extra) console.log(`    ${e}`);
}

