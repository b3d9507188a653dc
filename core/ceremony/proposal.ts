import { sha256 } from '@noble/hashes/sha2.js';
import { equalBytes, lengthPrefixed, utf8ToBytes } from '../bytes.ts';
import { committeeFileDigest, committeeToJson, parseCommittee, sameMembership, type CommitteeDecoders } from '../committee.ts';
import { TkmsError } from '../errors.ts';
import { assertKeyId, keyIdBytes } from '../identifiers.ts';
import { requireExactFields } from '../json-frame.ts';
import { MAX_HANDOVER_KEYS } from './handover.ts';
import type { ReshareProposal } from './types.ts';

const PROPOSAL_DOMAIN = utf8ToBytes('tkms/reshare/v1/proposal');

function fail(message: string): never {
  throw new TkmsError('bad_request', `reshare proposal: ${message}`);
}

/**
 * A proposal file (`tkms committee propose-reshare` writes it, each operator approves it through its
 * own node's admin API): `{ "v": 1, "from": <committee file>, "to": <committee file>, "keyIds": [...] }`.
 * `to` keeps the committee id and has epoch from.epoch + 1; keyIds sorted, no repeats.
 */
export function parseReshareProposal(value: unknown, decoders?: CommitteeDecoders): ReshareProposal {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail('must be a JSON object');
  const obj = value as Record<string, unknown>;
  requireExactFields(obj, 'reshare proposal', ['v', 'from', 'to', 'keyIds']);
  if (obj.v !== 1) fail('v must be 1');
  const from = parseCommittee(obj.from, decoders);
  const to = parseCommittee(obj.to, decoders);
  if (to.committeeId !== from.committeeId) fail(`to.committeeId (${to.committeeId}) must be from.committeeId (${from.committeeId})`);
  if (to.epoch !== from.epoch + 1) fail(`to.epoch must be from.epoch + 1 = ${from.epoch + 1}`);
  if (!Array.isArray(obj.keyIds) || obj.keyIds.length === 0 || obj.keyIds.length > MAX_HANDOVER_KEYS) fail(`keyIds must list 1..${MAX_HANDOVER_KEYS} key ids`);
  const keyIds = obj.keyIds.map((k, i) => {
    try {
      assertKeyId(k);
    } catch {
      fail(`keyIds[${i}] is not a key id`);
    }
    return k as string;
  });
  for (let i = 1; i < keyIds.length; i++) if (!(keyIds[i - 1]! < keyIds[i]!)) fail('keyIds must be sorted without repeats');
  return { from, to, keyIds };
}

export function reshareProposalToJson(p: ReshareProposal): Record<string, unknown> {
  return { v: 1, from: committeeToJson(p.from), to: committeeToJson(p.to), keyIds: [...p.keyIds] };
}

/** The proposal id: SHA-256 over both committee files and the key ids. Every ceremony message and vote is bound to it. */
export function proposalDigest(p: ReshareProposal): Uint8Array {
  return sha256(lengthPrefixed(PROPOSAL_DOMAIN, committeeFileDigest(p.from), committeeFileDigest(p.to), ...p.keyIds.map(keyIdBytes)));
}

/**
 * A refresh keeps the committee file as it is but for the epoch (members, t, addresses, policy):
 * members may start one on their own schedule, without operators. Comparing members and t alone let
 * any member rewrite every address or the refresh policy through a "refresh" the others accepted.
 */
export function isRefresh(p: ReshareProposal): boolean {
  return sameMembership(p.from, p.to) && equalBytes(committeeFileDigest(p.to), committeeFileDigest({ ...p.from, epoch: p.from.epoch + 1 }));
}
