import { readFile } from 'node:fs/promises';
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import { peerIdFromString } from '@libp2p/peer-id';
import { assertParticipantId, assertThreshold, encodeHex, TkmsError } from '../core/index.ts';
import { isAcceptableMemberKey } from '../core/dkg/member-signatures.ts';
import type { ExpectedCommittee } from '../core/dkg/result.ts';

/**
 * The committee file, like a drand group file: who the members are (id = Shamir x),
 * how to reach them, and the threshold. Every node of a committee loads the same file.
 */
export interface CommitteeMember {
  id: number;
  peerId: string;
  multiaddrs: string[];
  /** Raw Ed25519 public key (32 bytes) taken from the peer id: verifies DKG signatures. */
  publicKey: Uint8Array;
}

export interface Committee {
  committeeId: string;
  t: number;
  members: CommitteeMember[];
}

const COMMITTEE_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const MAX_MEMBERS = 256;
const MAX_ADDRS = 16;

function fail(message: string): never {
  throw new TkmsError('bad_request', `committee: ${message}`);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function rejectUnknownFields(obj: Record<string, unknown>, allowed: readonly string[], where: string): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) fail(`unknown field "${key}" in ${where}`);
  }
}

/** Ed25519 public key of a peer id string; non-Ed25519 or malformed ids are refused. */
export function ed25519KeyFromPeerId(value: string, where: string): Uint8Array {
  let publicKey: { type: string; raw: Uint8Array } | undefined;
  try {
    publicKey = peerIdFromString(value).publicKey;
  } catch {
    fail(`${where}.peerId is not a valid libp2p peer id`);
  }
  if (publicKey === undefined || publicKey.type !== 'Ed25519' || publicKey.raw.length !== 32) {
    fail(`${where}.peerId must be an Ed25519 peer id (12D3Koo…)`);
  }
  // A small-order (or non-canonical) key verifies signatures nobody made; no real node has one.
  if (!isAcceptableMemberKey(publicKey.raw)) fail(`${where}.peerId carries a small-order or non-canonical Ed25519 key, which cannot be a member key`);
  return publicKey.raw;
}

function parseMultiaddr(value: unknown, where: string, peerId: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 256) fail(`${where} must be a multiaddr string`);
  let ma: Multiaddr;
  try {
    ma = multiaddr(value);
  } catch {
    fail(`${where} is not a valid multiaddr`);
  }
  const p2p = ma.getComponents().filter((c) => c.name === 'p2p');
  if (p2p.some((c) => c.value !== peerId)) fail(`${where} names a different peer id than the member`);
  return ma.toString();
}

function parseMember(value: unknown, index: number): CommitteeMember {
  const where = `members[${index}]`;
  if (!isPlainObject(value)) fail(`${where} must be an object`);
  rejectUnknownFields(value, ['id', 'peerId', 'multiaddrs'], where);
  try {
    assertParticipantId(value.id, `${where}.id`);
  } catch {
    fail(`${where}.id must be an integer in 1..65535`);
  }
  if (typeof value.peerId !== 'string' || value.peerId.length === 0 || value.peerId.length > 128) {
    fail(`${where}.peerId must be a peer id string`);
  }
  const peerId = value.peerId;
  const publicKey = ed25519KeyFromPeerId(peerId, where);
  if (!Array.isArray(value.multiaddrs) || value.multiaddrs.length === 0 || value.multiaddrs.length > MAX_ADDRS) {
    fail(`${where}.multiaddrs must be a non-empty array of at most ${MAX_ADDRS} multiaddrs`);
  }
  const multiaddrs = value.multiaddrs.map((m, i) => parseMultiaddr(m, `${where}.multiaddrs[${i}]`, peerId));
  return { id: value.id as number, peerId, multiaddrs, publicKey };
}

/**
 * The committee id salts every signature the committee accepts (EIP-712 domain), so two
 * deployments with one id accept each other's grants and revocations. The shipped examples carry
 * ids containing "example": placeholders a node refuses to run with ("tkms committee new" makes
 * unique ones).
 */
export function refusePlaceholderCommitteeId(committeeId: string): void {
  if (/example/i.test(committeeId)) {
    fail(`committeeId "${committeeId}" is a placeholder from an example: give this deployment an id of its own (tkms committee new adds a random suffix)`);
  }
}

/** Strict parser: every mistake is a TkmsError('bad_request') naming the field. */
export function parseCommittee(value: unknown): Committee {
  if (!isPlainObject(value)) fail('must be a JSON object');
  rejectUnknownFields(value, ['committeeId', 't', 'members'], 'the committee');
  if (typeof value.committeeId !== 'string' || !COMMITTEE_ID.test(value.committeeId)) {
    fail('committeeId must be 1-64 characters of A-Z, a-z, 0-9, ".", "_" or "-"');
  }
  if (!Array.isArray(value.members) || value.members.length === 0 || value.members.length > MAX_MEMBERS) {
    fail(`members must be a non-empty array of at most ${MAX_MEMBERS} members`);
  }
  const members = value.members.map(parseMember);
  try {
    assertThreshold(value.t, members.length);
  } catch {
    fail(`t must be an integer in 1..${members.length} (the number of members)`);
  }
  const ids = new Set<number>();
  const peers = new Set<string>();
  for (const m of members) {
    if (ids.has(m.id)) fail(`member id ${m.id} appears twice`);
    if (peers.has(m.peerId)) fail(`peer id ${m.peerId} appears twice`);
    ids.add(m.id);
    peers.add(m.peerId);
  }
  members.sort((a, b) => a.id - b.id);
  return { committeeId: value.committeeId, t: value.t as number, members };
}

/** Parses committee file text (JSON). */
export function parseCommitteeJson(text: string): Committee {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    fail('file is not valid JSON');
  }
  return parseCommittee(json);
}

/** The JSON form written to disk (public keys are derived, not stored). */
/** Member id → 0x hex Ed25519 key: what a client pins (`trustedMemberKeys`). */
export function memberKeysHex(c: Committee): Record<number, string> {
  return Object.fromEntries(c.members.map((m) => [m.id, encodeHex(m.publicKey)]));
}

/** What a DKG result of this committee must match (verifyDkgPublicResult). */
export function expectedCommittee(c: Committee): ExpectedCommittee {
  return { committeeId: c.committeeId, t: c.t, memberKeys: new Map(c.members.map((m) => [m.id, m.publicKey])) };
}

/** The client options that pin this committee: member keys, threshold and committee id. */
export function pinnedClientOptions(c: Committee): { trustedMemberKeys: Record<number, string>; trustedThreshold: number; committeeId: string } {
  return { trustedMemberKeys: memberKeysHex(c), trustedThreshold: c.t, committeeId: c.committeeId };
}

/** Reads and validates a committee file; a missing or unreadable file is a clear bad_request. */
export async function loadCommitteeFile(path: string): Promise<Committee> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new TkmsError('bad_request', `cannot read committee file ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  return parseCommitteeJson(text);
}
