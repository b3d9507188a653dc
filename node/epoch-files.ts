import { TkmsError, decodeHex, encodeHex, equalBytes, utf8ToBytes } from '../core/index.ts';
import type { CommitteeDecoders, CommitteeMembership } from '../core/committee.ts';
import { parseReshareProposal, proposalDigest, reshareProposalToJson } from '../core/ceremony/proposal.ts';
import type { StoredApproval } from './epoch-types.ts';
import { canonicalJson, isPlainObject } from './keystore-format.ts';

/**
 * Names and records of the epoch store's files beside the keystore's (node/epoch-store.ts):
 * `handover.e<fromEpoch>.json` (a committed certificate), `approval.<seq>.json` (one operator
 * decision; a later seq supersedes an earlier one of the same proposal) and `vote.<proposal>.json`
 * (the vote lock). Parsers are strict and every failure is keystore_corrupt: these files are only
 * ever written by this node, so a loose one was edited.
 */

export const MAX_APPROVALS = 64;
/** Vote files kept at most: the approvals' plus as many again for votes whose approval was pruned meanwhile. */
export const MAX_VOTES = 2 * MAX_APPROVALS;
export const MAX_VOTE_BYTES = 4096;
/** A vote record: the vote in hex plus the proposal id. */
export const MAX_VOTE_FILE_BYTES = 2 * MAX_VOTE_BYTES + 256;
/** A proposal carries two committee files of at most 256 members each. */
export const MAX_APPROVAL_FILE_BYTES = 1024 * 1024;
/** A certificate: up to 256 keys × 256 verification shares plus the arriving committee file. */
export const MAX_HANDOVER_FILE_BYTES = 8 * 1024 * 1024;
const MAX_SEQ = Number.MAX_SAFE_INTEGER;
export const MAX_MEMBERSHIP_FILE_BYTES = 64 * 1024;

const HANDOVER_NAME = /^handover\.e(0|[1-9][0-9]{0,9})\.json$/;
const APPROVAL_NAME = /^approval\.(0|[1-9][0-9]{0,15})\.json$/;
const VOTE_NAME = /^vote\.([0-9a-f]{64})\.json$/;
const PROPOSAL_ID = /^0x[0-9a-f]{64}$/;

function corrupt(what: string, message: string): TkmsError {
  return new TkmsError('keystore_corrupt', `${what}: ${message}`);
}

/** Proposal ids in the store are 0x + 64 lower-case hex: encodeHex(proposalDigest(proposal)). */
export function assertProposalId(value: unknown): asserts value is string {
  if (typeof value !== 'string' || !PROPOSAL_ID.test(value)) throw new TkmsError('bad_request', 'proposalId must be 0x followed by 64 lower-case hex digits');
}

export function handoverFileName(fromEpoch: number): string {
  return `handover.e${fromEpoch}.json`;
}

export function parseHandoverFileName(name: string): number | undefined {
  const match = HANDOVER_NAME.exec(name);
  if (match === null) return undefined;
  const epoch = Number(match[1]);
  return epoch < 0xffff_ffff ? epoch : undefined;
}

export function approvalFileName(seq: number): string {
  return `approval.${seq}.json`;
}

export function parseApprovalFileName(name: string): number | undefined {
  const match = APPROVAL_NAME.exec(name);
  if (match === null) return undefined;
  const seq = Number(match[1]);
  return Number.isSafeInteger(seq) && seq <= MAX_SEQ ? seq : undefined;
}

export function voteFileName(proposalId: string): string {
  assertProposalId(proposalId);
  return `vote.${proposalId.slice(2)}.json`;
}

export function parseVoteFileName(name: string): string | undefined {
  const match = VOTE_NAME.exec(name);
  return match === null ? undefined : `0x${match[1]!}`;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function parseJson(bytes: Uint8Array, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(bytes));
  } catch {
    throw corrupt(what, 'not UTF-8 JSON');
  }
  if (!isPlainObject(value)) throw corrupt(what, 'not a JSON object');
  return value;
}

function exactFields(obj: Record<string, unknown>, fields: readonly string[], what: string): void {
  const keys = Object.keys(obj);
  if (keys.length !== fields.length || fields.some((f) => !(f in obj))) throw corrupt(what, `expected exactly the fields ${fields.join(', ')}`);
}

export interface ApprovalRecord {
  seq: number;
  approval: StoredApproval;
}

export function serializeApprovalRecord(record: ApprovalRecord): Uint8Array {
  const { seq, approval } = record;
  const json = { v: 1, seq, proposalId: approval.proposalId, proposal: reshareProposalToJson(approval.proposal), status: approval.status, approvedAt: approval.approvedAt };
  return utf8ToBytes(`${JSON.stringify(json)}\n`);
}

/** An approval record; its proposal id must be the proposal's digest and its seq the file name's. */
export function parseApprovalRecord(bytes: Uint8Array, expectedSeq: number, decoders?: CommitteeDecoders): ApprovalRecord {
  const what = `approval record ${expectedSeq}`;
  if (bytes.length > MAX_APPROVAL_FILE_BYTES) throw corrupt(what, 'too large');
  const obj = parseJson(bytes, what);
  exactFields(obj, ['v', 'seq', 'proposalId', 'proposal', 'status', 'approvedAt'], what);
  if (obj.v !== 1) throw corrupt(what, 'v must be 1');
  if (obj.seq !== expectedSeq) throw corrupt(what, 'seq does not match the file name');
  if (typeof obj.proposalId !== 'string' || !PROPOSAL_ID.test(obj.proposalId)) throw corrupt(what, 'proposalId is not a proposal id');
  if (obj.status !== 'approved' && obj.status !== 'cancelled') throw corrupt(what, 'status must be approved or cancelled');
  if (typeof obj.approvedAt !== 'string' || obj.approvedAt.length > 64 || Number.isNaN(Date.parse(obj.approvedAt))) throw corrupt(what, 'approvedAt must be an ISO time');
  let proposal;
  try {
    proposal = parseReshareProposal(obj.proposal, decoders);
  } catch {
    throw corrupt(what, 'proposal is not a valid reshare proposal');
  }
  if (encodeHex(proposalDigest(proposal)) !== obj.proposalId) throw corrupt(what, 'proposalId is not the proposal digest');
  return { seq: expectedSeq, approval: { proposalId: obj.proposalId, proposal, status: obj.status, approvedAt: obj.approvedAt } };
}

export function serializeVoteRecord(proposalId: string, vote: Uint8Array): Uint8Array {
  return utf8ToBytes(`${JSON.stringify({ v: 1, proposalId, vote: encodeHex(vote) })}\n`);
}

/** A vote record; its proposal id must be the file name's. */
export function parseVoteRecord(bytes: Uint8Array, expectedProposalId: string): Uint8Array {
  const what = `vote record ${expectedProposalId.slice(0, 18)}`;
  if (bytes.length > 2 * MAX_VOTE_BYTES + 256) throw corrupt(what, 'too large');
  const obj = parseJson(bytes, what);
  exactFields(obj, ['v', 'proposalId', 'vote'], what);
  if (obj.v !== 1) throw corrupt(what, 'v must be 1');
  if (obj.proposalId !== expectedProposalId) throw corrupt(what, 'proposalId does not match the file name');
  let vote: Uint8Array;
  try {
    vote = decodeHex(obj.vote, { name: 'vote', maxLength: MAX_VOTE_BYTES });
  } catch {
    throw corrupt(what, `vote must be at most ${MAX_VOTE_BYTES} bytes of hex`);
  }
  if (vote.length === 0 || encodeHex(vote) !== obj.vote) throw corrupt(what, 'vote must be non-empty 0x lower-case hex');
  return vote;
}

export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && equalBytes(a, b);
}

// ---------------------------------------------------------------------------
// The committee a joining member's first certificate leaves: it holds no file of that committee,
// so the commit stores its membership (ids, keys, t) to verify that certificate again on open.

const MEMBERSHIP_NAME = /^membership\.e(0|[1-9][0-9]{0,9})\.json$/;

export function membershipFileName(epoch: number): string {
  return `membership.e${epoch}.json`;
}

export function parseMembershipFileName(name: string): number | undefined {
  const match = MEMBERSHIP_NAME.exec(name);
  if (match === null) return undefined;
  const epoch = Number(match[1]);
  return epoch <= 0xffff_ffff ? epoch : undefined;
}

export function serializeMembership(m: CommitteeMembership): Uint8Array {
  const json = { v: 1, committeeId: m.committeeId, epoch: m.epoch, t: m.t, members: m.members.map((x) => ({ id: x.id, publicKey: encodeHex(x.publicKey) })) };
  return utf8ToBytes(`${JSON.stringify(json)}\n`);
}

export function parseMembership(bytes: Uint8Array, expectedEpoch: number): CommitteeMembership {
  const what = `membership record for epoch ${expectedEpoch}`;
  if (bytes.length > MAX_MEMBERSHIP_FILE_BYTES) throw corrupt(what, 'too large');
  const obj = parseJson(bytes, what);
  exactFields(obj, ['v', 'committeeId', 'epoch', 't', 'members'], what);
  if (obj.v !== 1) throw corrupt(what, 'v must be 1');
  if (obj.epoch !== expectedEpoch) throw corrupt(what, 'epoch does not match the file name');
  if (typeof obj.committeeId !== 'string' || obj.committeeId.length === 0 || obj.committeeId.length > 64) throw corrupt(what, 'committeeId must be a committee id');
  if (!Array.isArray(obj.members) || obj.members.length === 0 || obj.members.length > 256) throw corrupt(what, 'members must list 1..256 members');
  const members = obj.members.map((m: unknown) => {
    if (!isPlainObject(m)) throw corrupt(what, 'a member must be an object');
    exactFields(m, ['id', 'publicKey'], what);
    if (!Number.isSafeInteger(m.id) || (m.id as number) < 1 || (m.id as number) > 65_535) throw corrupt(what, 'a member id must be in 1..65535');
    let publicKey: Uint8Array;
    try {
      publicKey = decodeHex(m.publicKey, { length: 32, name: 'publicKey' });
    } catch {
      throw corrupt(what, 'a member key must be 32 bytes of hex');
    }
    return { id: m.id as number, publicKey };
  });
  for (let i = 1; i < members.length; i++) if (!(members[i - 1]!.id < members[i]!.id)) throw corrupt(what, 'members must be sorted by id without repeats');
  if (!Number.isSafeInteger(obj.t) || (obj.t as number) < 1 || (obj.t as number) > members.length) throw corrupt(what, 't must be in 1..members');
  return { committeeId: obj.committeeId, epoch: expectedEpoch, t: obj.t as number, members };
}

// ---------------------------------------------------------------------------
// A moved key's origin: the DKG public result it was made with (signed by the committee of its
// epoch), kept public when the commit erases the DKG-time share, so the node can still publish it
// with the certificates that moved it (a verifier pinned earlier checks both).

export const ORIGIN_SUFFIX = '.origin.json';
export const MAX_ORIGIN_FILE_BYTES = 1024 * 1024;

export function originFileName(keyId: string): string {
  return `${keyId}${ORIGIN_SUFFIX}`;
}

export function serializeOrigin(publicResult: Record<string, unknown>): Uint8Array {
  return utf8ToBytes(`${canonicalJson(publicResult)}\n`);
}

/** An origin file's result: a JSON object naming `keyId` (the rest is checked against the certified key by the store). */
export function parseOrigin(bytes: Uint8Array, keyId: string): Record<string, unknown> {
  const what = `origin of ${keyId}`;
  if (bytes.length > MAX_ORIGIN_FILE_BYTES) throw corrupt(what, 'too large');
  const obj = parseJson(bytes, what);
  if (obj['keyId'] !== keyId) throw corrupt(what, 'keyId does not match the file name');
  return obj;
}
