import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { buildProposal, proposalFileText, proposalIdHex, summarizeChange } from './committee-change.ts';
import type { DevnetNode } from './devnet.ts';
import type { Layout } from './devnet-layout.ts';
import { getJson, until } from './devnet-loopback.ts';
import { approveEverywhere, pastHandover, reshareOverview, waitForEpoch } from './reshare-driver.ts';

/**
 * Re-running a devnet with another n or t reshares its keys to a new committee: the change planned
 * in devnet.json (devnet-layout.ts planChange) is run here, once every process is up.
 */

/** What the change needs of the running devnet (deploy/devnet.ts). */
export interface ChangingDevnet {
  dir: string;
  /** Updated in place, and written to devnet.json, once the handover is done. */
  layout: Layout;
  /** The running nodes; those that left are taken out once stopped. */
  nodes: DevnetNode[];
  /** The epoch served before the change. */
  epoch: number;
  gatewayUrl: string;
  heldKeyIds(): Promise<string[]>;
  killNode(id: number, signal: NodeJS.Signals): Promise<void>;
  progress(line: string): void;
}

/**
 * Runs the planned change as its operators would: the proposal for every key the committee
 * holds, approved on every node (here one operator runs them all), then waits until every member
 * of the new committee serves the new epoch. Members that left are stopped and their directories
 * removed once they saw the handover. The gateway keeps its committee file and follows.
 */
export async function completeChange(host: ChangingDevnet): Promise<void> {
  const change = host.layout.change!;
  const dir = host.dir;
  const fromEpoch = host.epoch;
  const readJson = async (file: string): Promise<unknown> => JSON.parse(await readFile(join(dir, file), 'utf8'));
  const keyIds = await host.heldKeyIds();
  const proposal = buildProposal(await readJson(host.layout.committeeFile ?? 'committee.json'), await readJson(change.committeeFile), keyIds);
  await writeFile(join(dir, change.proposalFile), proposalFileText(proposal));
  const proposalId = proposalIdHex(proposal);
  const summary = summarizeChange(proposal.from, proposal.to);
  const list = (ids: number[]) => (ids.length === 0 ? 'none' : ids.join(', '));
  host.progress(
    `${summary.kind} to epoch ${change.toEpoch}: ${summary.from.t} of ${summary.from.n} → ${summary.to.t} of ${summary.to.n} (added: ${list(summary.added)}; removed: ${list(summary.removed)}), keys ${proposal.keyIds.join(', ')}`,
  );
  host.progress(`proposal ${proposalId} (${change.proposalFile}); approving it on every node`);
  const started = performance.now();
  const body = JSON.parse(proposalFileText(proposal)) as unknown;
  // A restart may find nodes already past the change: nothing left to approve there.
  const served = await Promise.all(host.nodes.map((node) => reshareOverview(node.adminUrl).catch(() => undefined)));
  const approving = host.nodes.filter((_, i) => served[i] === undefined || !pastHandover(served[i]!, change.toEpoch));
  await approveEverywhere(approving, body, change.added.map((m) => m.id));
  const arriving = host.nodes.filter((n) => !change.removed.includes(n.id));
  await waitForEpoch(arriving, change.toEpoch, { proposalId, timeoutMs: 300_000 });
  const doneMs = Math.round(performance.now() - started);
  const leaving = host.nodes.filter((n) => change.removed.includes(n.id));
  if (leaving.length > 0) {
    await waitForEpoch(leaving, change.toEpoch, { proposalId, timeoutMs: 30_000 }).catch((e: Error) => host.progress(`members that left did not all report the handover (${e.message}); stopping them anyway`));
    await Promise.all(leaving.map((n) => host.killNode(n.id, 'SIGTERM')));
    await Promise.all(leaving.map((n) => rm(n.dir, { recursive: true, force: true })));
  }
  const layoutPath = join(dir, 'devnet.json');
  const kept = host.layout.nodes.filter((m) => !change.removed.includes(m.id));
  host.layout.nodes = [...kept, ...change.added].sort((a, b) => a.id - b.id);
  host.layout.n = change.n;
  host.layout.t = change.t;
  host.layout.epoch = change.toEpoch;
  host.layout.committeeFile = change.committeeFile;
  host.layout.retiredIds = [...(host.layout.retiredIds ?? []), ...change.removed];
  delete host.layout.change;
  await writeFile(layoutPath, `${JSON.stringify(host.layout, null, 2)}\n`);
  host.nodes.splice(0, host.nodes.length, ...host.nodes.filter((n) => !change.removed.includes(n.id)));
  host.progress(
    `handover from epoch ${fromEpoch} to ${change.toEpoch} done in ${doneMs} ms (first approval → last member serving it)${leaving.length > 0 ? `; members ${list(change.removed)} stopped and removed` : ''}`,
  );
  await reportGatewayEpoch(host, change.toEpoch);
}

/** The gateway keeps its epoch-0 committee file and follows the certificates (GET /v1/committee): say when it got there. */
async function reportGatewayEpoch(host: ChangingDevnet, epoch: number): Promise<void> {
  const started = performance.now();
  try {
    await until(`the gateway to follow to epoch ${epoch}`, 60_000, async () => {
      const answer = await getJson(`${host.gatewayUrl}/v1/committee`);
      return answer.status === 200 && typeof answer.json.epoch === 'number' && answer.json.epoch >= epoch ? true : undefined;
    });
    host.progress(`the gateway follows: it serves epoch ${epoch} (${Math.round(performance.now() - started)} ms after the handover)`);
  } catch (e) {
    host.progress(`the gateway does not report epoch ${epoch} yet: ${(e as Error).message}`);
  }
}
