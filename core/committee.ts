import { sha256 } from '@noble/hashes/sha2.js';
import { encodeHex, equalBytes, lengthPrefixed, utf8ToBytes } from './bytes.ts';
import { isAcceptableMemberKey } from './dkg/member-signatures.ts';
import type { ExpectedCommittee } from './dkg/result.ts';
import { TkmsError } from './errors.ts';
import { assertParticipantId, assertThreshold } from './shamir.ts';
import { base58btc } from 'multiformats/bases/base58';

/**
 * The committee file, like a drand group file: who the members are (id = Shamir x),
 * how to reach them, and the threshold. Every node of a committee loads the same file, and a
 * client pins its member keys. Pure parsing, no Node or libp2p module, so a web page can load
 * the file too; net/committee.ts adds libp2p's own peer-id and multiaddr decoders for servers.
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
  /**
   * Which generation of the committee this file describes: 0 for the committee that ran the first
   * DKG, +1 for each completed reshare or refresh (core/ceremony). Absent in a file means 0.
   */
  epoch: number;
  t: number;
  members: CommitteeMember[];
  /** Committee policy: members refresh their shares (same members, same t) this often; absent = only on demand. */
  refreshIntervalSeconds?: number;
}

/** Who a committee is, without how to reach it: what a client that pinned member keys knows. */
export interface CommitteeMembership {
  committeeId: string;
  epoch: number;
  t: number;
  /** Sorted by id. */
  members: readonly { id: number; publicKey: Uint8Array }[];
}

/** Largest committee epoch (u32: it is signed as four bytes). */
export const MAX_EPOCH = 0xffff_ffff;
/** Shortest refresh interval a committee file may ask for: a refresh costs every member a ceremony. */
export const MIN_REFRESH_INTERVAL_SECONDS = 60;

/** How a peer id and a multiaddr are read; servers pass libp2p's (net/committee.ts). */
export interface CommitteeDecoders {
  /** The peer id's public key, or a thrown error when the string is no peer id at all. */
  peerIdKey(peerId: string): { type: string; raw: Uint8Array } | undefined;
  /** The canonical multiaddr string; throws when malformed. `p2p` lists its /p2p/ peer ids. */
  multiaddr(value: string): { text: string; p2p: string[] };
}

/** What a committee id may be, as a JSON Schema pattern too (the gateway's answers declare it). */
export const COMMITTEE_ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$';
const COMMITTEE_ID = new RegExp(COMMITTEE_ID_PATTERN);
/** The largest committee a committee file may name; message and frame bounds are derived from it. */
export const MAX_MEMBERS = 256;
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

/**
 * The key inside a base58btc peer id (the `12D3Koo…` form libp2p prints): an identity multihash
 * (0x00, length) of the libp2p PublicKey protobuf (field 1 = key type, field 2 = key bytes).
 * RSA peer ids (a sha2-256 multihash, `Qm…`) carry no key. Peer ids are at most 128 characters
 * here, so the BigInt arithmetic stays small.
 */
function browserPeerIdKey(peerId: string): { type: string; raw: Uint8Array } | undefined {
  if (peerId[0] !== '1' && peerId[0] !== 'Q') throw new Error('not a base58btc peer id');
  const mh = base58btc.baseDecode(peerId);
  if (mh[0] === 0x12 && mh[1] === 0x20 && mh.length === 34) return undefined;
  if (mh[0] !== 0x00 || mh[1] !== mh.length - 2 || mh.length < 6) throw new Error('not an identity multihash');
  const types: Record<number, string> = { 0: 'RSA', 1: 'Ed25519', 2: 'secp256k1', 3: 'ECDSA' };
  const type = mh[2] === 0x08 ? types[mh[3]!] : undefined;
  if (type === undefined || mh[4] !== 0x12 || mh[5] !== mh.length - 6) throw new Error('not a libp2p public key');
  return { type, raw: mh.slice(6) };
}

/** Multiaddrs only matter to whoever dials them; a page checks their shape and the /p2p/ ids. */
function browserMultiaddr(value: string): { text: string; p2p: string[] } {
  const parts = value.split('/');
  if (parts[0] !== '' || parts.length < 3 || parts.slice(1).some((p) => p === '' || /\s/.test(p))) throw new Error('not a multiaddr');
  const p2p: string[] = [];
  parts.forEach((p, i) => {
    if (p === 'p2p' && i > 0) p2p.push(parts[i + 1] ?? '');
  });
  return { text: value, p2p };
}

/** The decoders a browser (or any runtime without libp2p) uses. */
export const pureCommitteeDecoders: CommitteeDecoders = { peerIdKey: browserPeerIdKey, multiaddr: browserMultiaddr };

/** Ed25519 public key of a peer id string; non-Ed25519 or malformed ids are refused. */
export function ed25519KeyFromPeerId(value: string, where: string, decoders: CommitteeDecoders = pureCommitteeDecoders): Uint8Array {
  let publicKey: { type: string; raw: Uint8Array } | undefined;
  try {
    publicKey = decoders.peerIdKey(value);
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

function parseMultiaddr(value: unknown, where: string, peerId: string, decoders: CommitteeDecoders): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > 256) fail(`${where} must be a multiaddr string`);
  let ma: { text: string; p2p: string[] };
  try {
    ma = decoders.multiaddr(value);
  } catch {
    fail(`${where} is not a valid multiaddr`);
  }
  if (ma.p2p.some((id) => id !== peerId)) fail(`${where} names a different peer id than the member`);
  return ma.text;
}

function parseMember(value: unknown, index: number, decoders: CommitteeDecoders): CommitteeMember {
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
  const publicKey = ed25519KeyFromPeerId(peerId, where, decoders);
  if (!Array.isArray(value.multiaddrs) || value.multiaddrs.length === 0 || value.multiaddrs.length > MAX_ADDRS) {
    fail(`${where}.multiaddrs must be a non-empty array of at most ${MAX_ADDRS} multiaddrs`);
  }
  const multiaddrs = value.multiaddrs.map((m, i) => parseMultiaddr(m, `${where}.multiaddrs[${i}]`, peerId, decoders));
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
export function parseCommittee(value: unknown, decoders: CommitteeDecoders = pureCommitteeDecoders): Committee {
  if (!isPlainObject(value)) fail('must be a JSON object');
  rejectUnknownFields(value, ['committeeId', 'epoch', 't', 'members', 'refreshIntervalSeconds'], 'the committee');
  if (typeof value.committeeId !== 'string' || !COMMITTEE_ID.test(value.committeeId)) {
    fail('committeeId must be 1-64 characters of A-Z, a-z, 0-9, ".", "_" or "-"');
  }
  if (!Array.isArray(value.members) || value.members.length === 0 || value.members.length > MAX_MEMBERS) {
    fail(`members must be a non-empty array of at most ${MAX_MEMBERS} members`);
  }
  const members = value.members.map((m, i) => parseMember(m, i, decoders));
  try {
    assertThreshold(value.t, members.length);
  } catch {
    fail(`t must be an integer in 1..${members.length} (the number of members)`);
  }
  const ids = new Set<number>();
  const keys = new Set<string>();
  for (const m of members) {
    if (ids.has(m.id)) fail(`member id ${m.id} appears twice`);
    // By key, not by peer-id text: two spellings of one key would let its holder count as two of the t signers.
    const key = encodeHex(m.publicKey);
    if (keys.has(key)) fail(`member ${m.id}'s peer id carries the same key as another member's`);
    ids.add(m.id);
    keys.add(key);
  }
  members.sort((a, b) => a.id - b.id);
  const epoch = value.epoch ?? 0;
  if (!Number.isSafeInteger(epoch) || (epoch as number) < 0 || (epoch as number) > MAX_EPOCH) fail(`epoch must be an integer in 0..${MAX_EPOCH}`);
  const committee: Committee = { committeeId: value.committeeId, epoch: epoch as number, t: value.t as number, members };
  if (value.refreshIntervalSeconds !== undefined) {
    const r = value.refreshIntervalSeconds;
    // At most u32: it is signed as four bytes (committeeFileDigest), so a larger value would sign as another.
    if (!Number.isSafeInteger(r) || (r as number) < MIN_REFRESH_INTERVAL_SECONDS || (r as number) > 0xffff_ffff) {
      fail(`refreshIntervalSeconds must be an integer from ${MIN_REFRESH_INTERVAL_SECONDS} to ${0xffff_ffff}`);
    }
    committee.refreshIntervalSeconds = r as number;
  }
  return committee;
}

/** The committee as its file's JSON (members sorted by id): what a proposal or a handover certificate carries. */
export function committeeToJson(c: Committee): Record<string, unknown> {
  return {
    committeeId: c.committeeId,
    epoch: c.epoch,
    t: c.t,
    members: c.members.map((m) => ({ id: m.id, peerId: m.peerId, multiaddrs: [...m.multiaddrs] })),
    ...(c.refreshIntervalSeconds !== undefined ? { refreshIntervalSeconds: c.refreshIntervalSeconds } : {}),
  };
}

const COMMITTEE_DIGEST_DOMAIN = utf8ToBytes('tkms/committee/v1');
const COMMITTEE_FILE_DIGEST_DOMAIN = utf8ToBytes('tkms/committee-file/v1');

/**
 * SHA-256 over who the committee is: id, epoch, t and each member's id and Ed25519 key. What a
 * handover certificate names the committee it leaves by, so a client that pinned only member keys,
 * t, the committee id and the epoch (pinnedClientOptions) can recompute it.
 */
export function committeeDigest(c: CommitteeMembership): Uint8Array {
  const fields: Uint8Array[] = [COMMITTEE_DIGEST_DOMAIN, utf8ToBytes(c.committeeId), u32(c.epoch), u32(c.t)];
  for (const m of c.members) fields.push(u32(m.id), m.publicKey);
  return sha256(lengthPrefixed(...fields));
}

/** committeeDigest plus everything else the file says (peer ids, addresses, policy): what a proposal and an arriving committee are signed as. */
export function committeeFileDigest(c: Committee): Uint8Array {
  const fields: Uint8Array[] = [COMMITTEE_FILE_DIGEST_DOMAIN, committeeDigest(c), u32(c.refreshIntervalSeconds ?? 0)];
  for (const m of c.members) fields.push(utf8ToBytes(m.peerId), utf8ToBytes(m.multiaddrs.join('\n')));
  return sha256(lengthPrefixed(...fields));
}

/** True when two committees have the same members (ids and keys) and the same t: a refresh, not a reshare. */
export function sameMembership(a: CommitteeMembership, b: CommitteeMembership): boolean {
  return (
    a.committeeId === b.committeeId &&
    a.t === b.t &&
    a.members.length === b.members.length &&
    a.members.every((m, i) => m.id === b.members[i]!.id && equalBytes(m.publicKey, b.members[i]!.publicKey))
  );
}

function u32(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value);
  return out;
}

/** Parses committee file text (JSON). */
export function parseCommitteeJson(text: string, decoders: CommitteeDecoders = pureCommitteeDecoders): Committee {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    fail('file is not valid JSON');
  }
  return parseCommittee(json, decoders);
}

/** Member id → 0x hex Ed25519 key: what a client pins (`trustedMemberKeys`). */
export function memberKeysHex(c: Committee): Record<number, string> {
  return Object.fromEntries(c.members.map((m) => [m.id, encodeHex(m.publicKey)]));
}

/** What a DKG result of this committee must match (verifyDkgPublicResult). */
export function expectedCommittee(c: Committee): ExpectedCommittee {
  return { committeeId: c.committeeId, t: c.t, memberKeys: new Map(c.members.map((m) => [m.id, m.publicKey])) };
}

/** The client options that pin this committee: member keys, threshold, committee id and epoch (the client follows later epochs from it). */
export function pinnedClientOptions(c: Committee): { trustedMemberKeys: Record<number, string>; trustedThreshold: number; committeeId: string; trustedEpoch: number } {
  return { trustedMemberKeys: memberKeysHex(c), trustedThreshold: c.t, committeeId: c.committeeId, trustedEpoch: c.epoch };
}
