import { encodeHex } from '../core/bytes.ts';
import { parseReshareProposal, proposalDigest, reshareProposalToJson } from '../core/ceremony/proposal.ts';
import type { ReshareProposal } from '../core/ceremony/types.ts';
import { committeeToJson, MAX_EPOCH } from '../core/committee.ts';
import { TkmsError } from '../core/errors.ts';
import { assertKeyId } from '../core/identifiers.ts';
import { libp2pCommitteeDecoders, parseCommittee, type Committee } from '../net/committee.ts';

/**
 * A committee change as operators prepare it: the next committee file (epoch + 1) from the
 * current one and a few edits, and the proposal file every operator approves on its own node.
 * `tkms committee next|propose-reshare` and the devnet both build them here, so what the devnet
 * does is what an operator does by hand.
 */

export interface NewMember {
  id: number;
  peerId: string;
  multiaddrs: string[];
}

export interface CommitteeEdits {
  add?: readonly NewMember[];
  remove?: readonly number[];
  t?: number;
  /** A number sets the committee's refresh schedule, null removes it, absent keeps it. */
  refreshIntervalSeconds?: number | null;
}

function fail(message: string): never {
  throw new TkmsError('bad_request', message);
}

/** The committee of the next epoch: `from` with the edits applied, checked like any committee file. */
export function nextCommittee(from: Committee, edits: CommitteeEdits): Committee {
  if (from.epoch >= MAX_EPOCH) fail(`committee ${from.committeeId} is at the last epoch (${MAX_EPOCH})`);
  const remove = new Set(edits.remove ?? []);
  for (const id of remove) if (!from.members.some((m) => m.id === id)) fail(`member ${id} is not in committee ${from.committeeId} (epoch ${from.epoch}); nothing to remove`);
  for (const m of edits.add ?? []) {
    const present = from.members.find((x) => x.id === m.id);
    if (present !== undefined && !remove.has(m.id)) fail(`member id ${m.id} is already in the committee: give a new member an id never used before`);
    if (present !== undefined) fail(`member id ${m.id} is removed here: a new member must not reuse it (ids are Shamir x-coordinates)`);
  }
  const members = [
    ...from.members.filter((m) => !remove.has(m.id)).map((m) => ({ id: m.id, peerId: m.peerId, multiaddrs: [...m.multiaddrs] })),
    ...(edits.add ?? []).map((m) => ({ id: m.id, peerId: m.peerId, multiaddrs: [...m.multiaddrs] })),
  ].sort((a, b) => a.id - b.id);
  if (members.length === 0) fail('the next committee would have no members');
  const t = edits.t ?? from.t;
  if (t > members.length) fail(`t = ${t} but the next committee has ${members.length} members: give --t`);
  const refresh = edits.refreshIntervalSeconds === undefined ? from.refreshIntervalSeconds : (edits.refreshIntervalSeconds ?? undefined);
  return parseCommittee({
    committeeId: from.committeeId,
    epoch: from.epoch + 1,
    t,
    members,
    ...(refresh !== undefined ? { refreshIntervalSeconds: refresh } : {}),
  });
}

/** What a change does, for operators to read before approving it. */
export interface ChangeSummary {
  kind: 'refresh' | 'reshare';
  committeeId: string;
  fromEpoch: number;
  toEpoch: number;
  from: { n: number; t: number };
  to: { n: number; t: number };
  added: number[];
  removed: number[];
  /** Members kept whose addresses differ in the new file (a reshare also carries address changes). */
  readdressed: number[];
}

export function summarizeChange(from: Committee, to: Committee): ChangeSummary {
  const ids = (c: Committee) => new Set(c.members.map((m) => m.id));
  const fromIds = ids(from);
  const toIds = ids(to);
  const sameKey = (id: number) => from.members.find((m) => m.id === id)!.peerId === to.members.find((m) => m.id === id)!.peerId;
  // A kept id with a new peer id is a different member under the same id: counted as removed and added.
  const kept = [...fromIds].filter((id) => toIds.has(id) && sameKey(id));
  const added = [...toIds].filter((id) => !kept.includes(id));
  const removed = [...fromIds].filter((id) => !kept.includes(id));
  const readdressed = kept.filter((id) => from.members.find((m) => m.id === id)!.multiaddrs.join('\n') !== to.members.find((m) => m.id === id)!.multiaddrs.join('\n'));
  const refresh = added.length === 0 && removed.length === 0 && from.t === to.t;
  return {
    kind: refresh ? 'refresh' : 'reshare',
    committeeId: from.committeeId,
    fromEpoch: from.epoch,
    toEpoch: to.epoch,
    from: { n: from.members.length, t: from.t },
    to: { n: to.members.length, t: to.t },
    added,
    removed,
    readdressed,
  };
}

/** One line per fact: what an operator compares with what the proposer announced. */
export function describeChange(s: ChangeSummary): string[] {
  const list = (ids: number[]) => (ids.length === 0 ? 'none' : ids.join(', '));
  return [
    `kind:        ${s.kind}${s.kind === 'refresh' ? ' (same members and t: new shares of the same keys)' : ''}`,
    `committee:   ${s.committeeId}, epoch ${s.fromEpoch} → ${s.toEpoch}`,
    `threshold:   ${s.from.t} of ${s.from.n} → ${s.to.t} of ${s.to.n}`,
    `added:       ${list(s.added)}`,
    `removed:     ${list(s.removed)}`,
    ...(s.readdressed.length === 0 ? [] : [`new address: ${list(s.readdressed)}`]),
  ];
}

/** Sorted, without repeats; each a valid key id. */
export function normalizeKeyIds(keyIds: readonly string[]): string[] {
  for (const k of keyIds) {
    try {
      assertKeyId(k);
    } catch {
      fail(`"${k}" is not a key id`);
    }
  }
  return [...new Set(keyIds)].sort();
}

/**
 * The proposal to move from `fromJson` to `toJson` (both committee file JSON). A `to` file without
 * an epoch gets from.epoch + 1; one with an epoch must have that one. Checked exactly as nodes will
 * check it (parseReshareProposal).
 */
export function buildProposal(fromJson: unknown, toJson: unknown, keyIds: readonly string[]): ReshareProposal {
  const from = parseCommittee(fromJson);
  if (typeof toJson !== 'object' || toJson === null || Array.isArray(toJson)) fail('the new committee file must be a JSON object');
  const to = parseCommittee({ epoch: from.epoch + 1, ...(toJson as Record<string, unknown>) });
  if (to.committeeId !== from.committeeId) {
    fail(`the new committee's id is ${to.committeeId}, the current one's ${from.committeeId}: a reshare keeps the committee id (signatures are bound to it)`);
  }
  if (to.epoch !== from.epoch + 1) fail(`the new committee file says epoch ${to.epoch}; it must be the current epoch + 1 = ${from.epoch + 1}`);
  const ids = normalizeKeyIds(keyIds);
  if (ids.length === 0) fail('no keys to reshare: the committee holds none (run a DKG first), or give --keys');
  return parseReshareProposal(reshareProposalToJson({ from, to, keyIds: ids }), libp2pCommitteeDecoders);
}

/** The proposal id as nodes name it: 0x and 64 hex digits. */
export function proposalIdHex(p: ReshareProposal): string {
  return encodeHex(proposalDigest(p));
}

/** A proposal id typed with or without 0x, in any case, as nodes spell it (0x, lower case). */
export function canonicalProposalId(id: string): string {
  return `0x${id.toLowerCase().replace(/^0x/, '')}`;
}

export function sameProposalId(a: string, b: string): boolean {
  return canonicalProposalId(a) === canonicalProposalId(b);
}

/** The proposal file's text (what `tkms node approve` sends). */
export function proposalFileText(p: ReshareProposal): string {
  return `${JSON.stringify(reshareProposalToJson(p), null, 2)}\n`;
}

/** A committee file's text, epoch included. */
export function committeeFileText(c: Committee): string {
  return `${JSON.stringify(committeeToJson(c), null, 2)}\n`;
}
