import { TkmsError } from '../core/errors.ts';
import type { ReshareStatus } from '../node/epoch-types.ts';
import { sameProposalId } from './committee-change.ts';
import { getJson } from './devnet-loopback.ts';

/**
 * Driving a committee change through nodes' admin APIs (node/epoch-types.ts), for the devnet
 * (where one operator runs every node), the reshare benchmark and integration tests. Operators do
 * the same by hand with `tkms node approve` and `tkms node status`.
 */

export interface AdminAnswer {
  status: number;
  json: any;
}

async function call(url: string, init: RequestInit = {}): Promise<AdminAnswer> {
  const { status, json } = await getJson(url, init, 10_000);
  return { status, json };
}

function post(url: string, body: unknown): Promise<AdminAnswer> {
  return call(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
}

function refusal(what: string, answer: AdminAnswer): TkmsError {
  const error = (answer.json as { error?: { code?: string; message?: string } } | undefined)?.error;
  return new TkmsError('bad_request', `${what}: HTTP ${answer.status} ${error?.code ?? ''} ${error?.message ?? JSON.stringify(answer.json)}`.trim());
}

/** What GET /admin/reshare answers. */
export interface ReshareOverview {
  epoch: number;
  handovers: number;
  proposals: ReshareStatus[];
}

/**
 * Whether a node has committed a handover to `epoch` (or later). Its epoch alone does not say so:
 * a member joining is started with the next committee's file and reports that epoch, holding no
 * certificate, until the handover commits.
 */
export function pastHandover(o: ReshareOverview, epoch: number): boolean {
  return o.epoch >= epoch && o.handovers > 0;
}

/** POST /admin/reshare/approve with the proposal file's JSON; the node's answer (proposalId, kind, status). */
export async function approveProposal(adminUrl: string, proposalJson: unknown): Promise<{ proposalId: string; kind: string; status: string }> {
  const answer = await post(`${adminUrl}/admin/reshare/approve`, proposalJson);
  if (answer.status !== 202 && answer.status !== 200) throw refusal(`approval at ${adminUrl}`, answer);
  return answer.json;
}

/**
 * Every operator's approval, joining members first: a joining member reads the keys' public data
 * from the committee it joins before its ceremony starts, and one whose hello comes after the
 * dealers dealt gets no share (it gets one at the next refresh). So the joining members approve
 * and get past "preparing" before the current members approve and deal.
 */
export async function approveEverywhere(
  nodes: readonly { id: number; adminUrl: string }[],
  proposalJson: unknown,
  joiningIds: readonly number[],
  opts: { timeoutMs?: number } = {},
): Promise<void> {
  const joining = nodes.filter((n) => joiningIds.includes(n.id));
  const staying = nodes.filter((n) => !joiningIds.includes(n.id));
  const approved = await Promise.all(joining.map(async (n) => ({ node: n, answer: await approveProposal(n.adminUrl, proposalJson) })));
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  for (const { node, answer } of approved) {
    for (;;) {
      const mine = (await reshareOverview(node.adminUrl)).proposals.find((p) => sameProposalId(p.proposalId, answer.proposalId));
      if (mine !== undefined && mine.phase !== 'preparing') break;
      if (Date.now() > deadline) throw new TkmsError('timeout', `node ${node.id} did not start the ceremony of ${answer.proposalId} (still preparing: it reads the keys from the current members)`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  await Promise.all(staying.map((n) => approveProposal(n.adminUrl, proposalJson)));
}

/** POST /admin/refresh: one member starts a refresh of its committee. */
export async function startRefresh(adminUrl: string): Promise<{ proposalId: string; kind: string; status: string }> {
  const answer = await post(`${adminUrl}/admin/refresh`, {});
  if (answer.status !== 202 && answer.status !== 200) throw refusal(`refresh at ${adminUrl}`, answer);
  return answer.json;
}

export async function reshareOverview(adminUrl: string): Promise<ReshareOverview> {
  const answer = await call(`${adminUrl}/admin/reshare`);
  if (answer.status !== 200) throw refusal(`GET ${adminUrl}/admin/reshare`, answer);
  return answer.json;
}

/**
 * Resolves once every node committed the handover to `epoch`, with when each got there (ms after the call); rejects
 * as soon as one reports the proposal failed, or after `timeoutMs`. A node that does not answer
 * (restarting) is asked again.
 */
export async function waitForEpoch(
  nodes: readonly { id: number; adminUrl: string }[],
  epoch: number,
  opts: { proposalId?: string; timeoutMs?: number; intervalMs?: number; onReached?: (id: number, ms: number) => void } = {},
): Promise<Map<number, number>> {
  const started = performance.now();
  const deadline = Date.now() + (opts.timeoutMs ?? 120_000);
  const reached = new Map<number, number>();
  const last = new Map<number, string>();
  while (reached.size < nodes.length) {
    await Promise.all(
      nodes
        .filter((n) => !reached.has(n.id))
        .map(async (n) => {
          let o: ReshareOverview;
          try {
            o = await reshareOverview(n.adminUrl);
          } catch (e) {
            last.set(n.id, e instanceof Error ? e.message : 'no answer');
            return;
          }
          if (pastHandover(o, epoch)) {
            const ms = Math.round(performance.now() - started);
            reached.set(n.id, ms);
            opts.onReached?.(n.id, ms);
            return;
          }
          const mine = o.proposals.filter((p) => p.toEpoch === epoch && (opts.proposalId === undefined || sameProposalId(p.proposalId, opts.proposalId)));
          const failed = mine.find((p) => p.status === 'failed');
          if (failed !== undefined) throw new TkmsError('reshare_failed', `node ${n.id}: the ${failed.kind} to epoch ${epoch} failed: ${failed.failureReason ?? 'no reason given'}`);
          last.set(n.id, `epoch ${o.epoch}; ${mine.map((p) => `${p.status} (${p.phase})`).join(', ') || 'no proposal for that epoch'}`);
        }),
    );
    if (reached.size === nodes.length) break;
    if (Date.now() > deadline) {
      const waiting = nodes.filter((n) => !reached.has(n.id)).map((n) => `node ${n.id}: ${last.get(n.id) ?? 'not asked'}`);
      throw new TkmsError('timeout', `epoch ${epoch} not reached after ${opts.timeoutMs ?? 120_000} ms: ${waiting.join('; ')}`);
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 100));
  }
  return reached;
}
