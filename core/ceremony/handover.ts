import { sha256 } from '@noble/hashes/sha2.js';
import { decodeHex, encodeHex, lengthPrefixed, utf8ToBytes } from '../bytes.ts';
import { committeeDigest, committeeFileDigest, parseCommittee, sameMembership, type Committee, type CommitteeDecoders, type CommitteeMembership } from '../committee.ts';
import { decodePoint, encodePoint } from '../curve.ts';
import { assertSharesOnPolynomial } from '../dkg/shares-on-polynomial.ts';
import { groupOf } from '../group.ts';
import { verifyMemberSignature } from '../dkg/member-signatures.ts';
import { TkmsError } from '../errors.ts';
import { assertKeyId, keyIdBytes } from '../identifiers.ts';
import { requireExactFields } from '../json-frame.ts';
import { toleratedFaults, voteQuorum } from '../quorum.ts';

/**
 * The handover certificate: the signed result of a reshare or refresh. It names the committee
 * leaving (by digest, at its epoch), carries the committee arriving (the whole file, so a gateway
 * learns the new members and their addresses from it) and, for every key moved, the unchanged group
 * key with the new verification shares. Members of both committees sign the same digest: at least
 * `voteQuorum(from)` leaving members and `voteQuorum(to)` arriving ones: two certificates leaving one
 * epoch then share an honest leaving member, and a member votes for one handover per epoch it leaves
 * (node/reshare-approvals.ts), so an epoch is never left twice, whatever the arriving committees. A client or gateway pinned to the
 * committee at epoch e follows e → e+1 → e+2 by checking each certificate against the committee it
 * already trusts (`followHandovers`), never by the gateway's word.
 */

/** One key's public data at one committee epoch: from its DKG result or from a handover certificate. */
export interface KeyEpochData {
  keyId: string;
  epoch: number;
  t: number;
  /** Compressed 33-byte group key. */
  groupPublicKey: Uint8Array;
  /** Member id → compressed Y_i at this epoch, for every member of that epoch's committee. */
  verificationShares: Map<number, Uint8Array>;
  /** The key's group when not secp256k1 (its DKG result's `curve`); the points above are then 32-byte ed25519 encodings. */
  curve?: 'ed25519';
}

/** A handover certificate as JSON (wire, keystore, gateway answers). */
export interface HandoverCertificate {
  v: 1;
  committeeId: string;
  fromEpoch: number;
  /** 0x committeeDigest(from). */
  fromDigest: string;
  /** The arriving committee, as its committee file (committeeToJson). */
  to: Record<string, unknown>;
  /** Every key moved, sorted by key id. */
  keys: HandoverKey[];
  /** 0x SHA-256 of the certified dealings (see core/ceremony/README.md): which dealers, which polynomials. */
  transcriptHash: string;
  /** Member id (decimal) → 0x Ed25519 signature over handoverVoteMessage(digest), for members of `from` and of `to`. */
  signatures: { from: Record<string, string>; to: Record<string, string> };
}

export interface HandoverKey {
  keyId: string;
  /** The key's group when not secp256k1 (absent = secp256k1: certificates before Ed25519 keys keep their bytes and digest). */
  curve?: 'ed25519';
  /** 0x compressed group key: the same as before the handover. */
  groupPublicKey: string;
  /** Member id (decimal) → 0x compressed Y_i at the new epoch, for every member of `to`. */
  verificationShares: Record<string, string>;
}

export type UnsignedHandover = Omit<HandoverCertificate, 'signatures'>;

const DIGEST_DOMAIN = utf8ToBytes('tkms/handover/v1');
const VOTE_DOMAIN = utf8ToBytes('tkms/handover/v1/vote');
/** A ceremony moves at most this many keys (a dealing carries one polynomial per key). */
export const MAX_HANDOVER_KEYS = 256;
/** Longest certificate chain a client or gateway follows in one call. */
export const MAX_HANDOVER_CHAIN = 1024;

function fail(message: string): never {
  throw new TkmsError('bad_request', `handover certificate: ${message}`);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function u32(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value);
  return out;
}

/** Arriving members that must sign a handover, and votes an agreement needs (core/quorum.ts). */
export { toleratedFaults, voteQuorum };

/**
 * What both committees sign: SHA-256 over the committee id, the epoch left, the digest of the
 * committee left (membership only), the digest of the arriving committee's whole file (addresses too),
 * every key's group key and new Y_i, and the transcript hash. Recomputed from the fields handed in.
 */
export function handoverDigest(h: UnsignedHandover, from: CommitteeMembership, to: Committee): Uint8Array {
  return digestLeaving(h, committeeDigest(from), to);
}

/** handoverDigest with the left committee given by its digest (verifyArrival, which does not know that committee). */
function digestLeaving(h: UnsignedHandover, fromDigest: Uint8Array, to: Committee): Uint8Array {
  const fields: Uint8Array[] = [DIGEST_DOMAIN, utf8ToBytes(h.committeeId), u32(h.fromEpoch), fromDigest, committeeFileDigest(to), u32(h.keys.length)];
  for (const key of h.keys) {
    const ids = Object.keys(key.verificationShares).map(Number).sort((a, b) => a - b);
    // An ed25519 key adds its curve name as a field of its own (7 bytes where a secp256k1 key has its 33-byte group key), so no
    // digest of a secp256k1 key's entry equals one of an ed25519 key's, and a secp256k1 key's digest is what it was.
    if (key.curve !== undefined) fields.push(keyIdBytes(key.keyId), utf8ToBytes(key.curve), decodeHex(key.groupPublicKey), u32(ids.length));
    else fields.push(keyIdBytes(key.keyId), decodeHex(key.groupPublicKey), u32(ids.length));
    for (const id of ids) fields.push(u32(id), decodeHex(key.verificationShares[String(id)]));
  }
  fields.push(decodeHex(h.transcriptHash));
  return sha256(lengthPrefixed(...fields));
}

/** What a member signs to vote for (and vouch for) a handover. */
export function handoverVoteMessage(digest: Uint8Array): Uint8Array {
  return lengthPrefixed(VOTE_DOMAIN, digest);
}

function hexField(value: unknown, length: number, where: string): string {
  if (typeof value !== 'string') fail(`${where} must be a 0x hex string`);
  if (!value.startsWith('0x')) fail(`${where} must be 0x hex`);
  try {
    // Canonical (lower case): the parsed certificate compares its hex with encodeHex output.
    return encodeHex(decodeHex(value, { length, name: where }));
  } catch {
    fail(`${where} must be ${length} bytes of 0x hex`);
  }
}

function pointField(value: unknown, where: string, curve?: 'ed25519'): string {
  if (curve !== undefined) {
    const group = groupOf(curve);
    const hex = hexField(value, group.pointLength, where);
    try {
      group.decodePoint(hex, where);
    } catch {
      fail(`${where} is not a valid ${curve} point of the prime-order subgroup`);
    }
    return hex;
  }
  const hex = hexField(value, 33, where);
  try {
    decodePoint(hex, where);
  } catch {
    fail(`${where} is not a valid compressed secp256k1 point`);
  }
  return hex;
}

function signatureMap(value: unknown, where: string): Record<string, string> {
  if (!isPlainObject(value)) fail(`${where} must be an object`);
  const entries = Object.entries(value);
  if (entries.length > 256) fail(`${where} has more than 256 signatures`);
  const out: Record<string, string> = {};
  for (const [id, sig] of entries) {
    if (!/^[1-9][0-9]{0,4}$/.test(id) || Number(id) > 65_535) fail(`${where} key "${id.slice(0, 8)}" is not a member id`);
    out[id] = hexField(sig, 64, `${where}.${id}`);
  }
  return out;
}

/**
 * Strict structural parse of a certificate (JSON already decoded): exact fields, bounded sizes,
 * canonical hex, valid points, keys sorted without repeats. Proves nothing about signatures: see
 * verifyHandover. Throws TkmsError('bad_request') naming the field.
 */
export function parseHandoverCertificate(value: unknown): HandoverCertificate {
  if (!isPlainObject(value)) fail('must be a JSON object');
  requireExactFields(value, 'handover certificate', ['v', 'committeeId', 'fromEpoch', 'fromDigest', 'to', 'keys', 'transcriptHash', 'signatures']);
  if (value.v !== 1) fail('v must be 1');
  if (typeof value.committeeId !== 'string' || value.committeeId.length === 0 || value.committeeId.length > 64) fail('committeeId must be a committee id');
  if (!Number.isSafeInteger(value.fromEpoch) || (value.fromEpoch as number) < 0 || (value.fromEpoch as number) >= 0xffff_ffff) fail('fromEpoch must be an epoch');
  const fromDigest = hexField(value.fromDigest, 32, 'fromDigest');
  if (!isPlainObject(value.to)) fail('to must be a committee file object');
  // Shape only (the verifier parses it again with its own decoders): a malformed `to` is a bad certificate, found here.
  try {
    parseCommittee(value.to);
  } catch (e) {
    fail(`to is not a committee file: ${e instanceof TkmsError ? e.message : 'invalid'}`);
  }
  if (!Array.isArray(value.keys) || value.keys.length === 0 || value.keys.length > MAX_HANDOVER_KEYS) fail(`keys must list 1..${MAX_HANDOVER_KEYS} keys`);
  const keys: HandoverKey[] = value.keys.map((k: unknown, i: number) => {
    const where = `keys[${i}]`;
    if (!isPlainObject(k)) fail(`${where} must be an object`);
    requireExactFields(k, where, 'curve' in k ? ['keyId', 'curve', 'groupPublicKey', 'verificationShares'] : ['keyId', 'groupPublicKey', 'verificationShares']);
    // One spelling: secp256k1 is the field's absence.
    if ('curve' in k && k.curve !== 'ed25519') fail(`${where}.curve must be "ed25519" (absent for secp256k1)`);
    const curve = k.curve as 'ed25519' | undefined;
    try {
      assertKeyId(k.keyId);
    } catch {
      fail(`${where}.keyId is not a key id`);
    }
    if (!isPlainObject(k.verificationShares)) fail(`${where}.verificationShares must be an object`);
    const shares = Object.entries(k.verificationShares);
    if (shares.length === 0 || shares.length > 256) fail(`${where}.verificationShares must have 1..256 members`);
    const verificationShares: Record<string, string> = {};
    for (const [id, y] of shares) {
      if (!/^[1-9][0-9]{0,4}$/.test(id) || Number(id) > 65_535) fail(`${where}.verificationShares key "${id.slice(0, 8)}" is not a member id`);
      verificationShares[id] = pointField(y, `${where}.verificationShares.${id}`, curve);
    }
    return { keyId: k.keyId as string, ...(curve === undefined ? {} : { curve }), groupPublicKey: pointField(k.groupPublicKey, `${where}.groupPublicKey`, curve), verificationShares };
  });
  for (let i = 1; i < keys.length; i++) if (!(keys[i - 1]!.keyId < keys[i]!.keyId)) fail('keys must be sorted by key id without repeats');
  const transcriptHash = hexField(value.transcriptHash, 32, 'transcriptHash');
  if (!isPlainObject(value.signatures)) fail('signatures must be an object');
  requireExactFields(value.signatures, 'signatures', ['from', 'to']);
  const signatures = { from: signatureMap(value.signatures.from, 'signatures.from'), to: signatureMap(value.signatures.to, 'signatures.to') };
  return { v: 1, committeeId: value.committeeId, fromEpoch: value.fromEpoch as number, fromDigest, to: value.to, keys, transcriptHash, signatures };
}

export interface VerifiedHandover {
  /** The certificate with only the signatures that verify. */
  certificate: HandoverCertificate;
  from: CommitteeMembership;
  to: Committee;
  /** The keys at to.epoch, in the certificate's order. */
  keys: KeyEpochData[];
  /** True when `to` has the members and t of `from` (a refresh). */
  refresh: boolean;
}

function validSigners(signatures: Record<string, string>, committee: CommitteeMembership, message: Uint8Array): string[] {
  const valid: string[] = [];
  for (const [id, sig] of Object.entries(signatures)) {
    const member = committee.members.find((m) => m.id === Number(id));
    if (member !== undefined && verifyMemberSignature(member.publicKey, message, decodeHex(sig))) valid.push(id);
  }
  return valid;
}

/**
 * Checks a handover certificate against the committee the verifier already trusts (`from`, pinned or
 * reached by earlier certificates) and, when given, that committee's keys: the certificate leaves
 * exactly `from` at its epoch, arrives at epoch + 1 under the same committee id, moves every key
 * given with its group key unchanged, every key's new Y_i lie on one degree t′ − 1 polynomial
 * through the group key, and it carries ≥ voteQuorum(from) valid signatures of leaving members and
 * ≥ voteQuorum(to) of arriving ones over the digest recomputed here. Invalid signatures are dropped,
 * not fatal. Throws TkmsError: bad_request for a malformed certificate, stale_epoch for one that does
 * not leave `from`, dkg_failed for one that is inconsistent or under-signed.
 */
export function verifyHandover(
  value: unknown,
  from: CommitteeMembership,
  fromKeys?: ReadonlyMap<string, KeyEpochData>,
  decoders?: CommitteeDecoders,
): VerifiedHandover {
  const cert = parseHandoverCertificate(value);
  if (cert.committeeId !== from.committeeId) throw new TkmsError('dkg_failed', `handover certificate is for committee ${cert.committeeId}, not ${from.committeeId}`);
  if (cert.fromEpoch !== from.epoch) throw new TkmsError('stale_epoch', `handover certificate leaves epoch ${cert.fromEpoch}; the committee trusted here is at epoch ${from.epoch}`);
  if (cert.fromDigest !== encodeHex(committeeDigest(from))) throw new TkmsError('dkg_failed', `handover certificate leaves another committee than the one trusted at epoch ${from.epoch}`);
  const to = parseCommittee(cert.to, decoders);
  if (to.committeeId !== from.committeeId || to.epoch !== from.epoch + 1) {
    throw new TkmsError('dkg_failed', `handover certificate arrives at ${to.committeeId} epoch ${to.epoch}; expected ${from.committeeId} epoch ${from.epoch + 1}`);
  }
  if (fromKeys !== undefined) {
    // Keys made by a DKG at the epoch left are moved too (the verifier may not know them yet); none may be dropped.
    const moved = new Set(cert.keys.map((k) => k.keyId));
    const dropped = [...fromKeys.keys()].find((keyId) => !moved.has(keyId));
    if (dropped !== undefined) throw new TkmsError('dkg_failed', `handover certificate drops key ${dropped}`);
  }
  const keys = arrivingKeys(cert, to, fromKeys);
  const message = handoverVoteMessage(handoverDigest(cert, from, to));
  const fromValid = validSigners(cert.signatures.from, from, message);
  const toValid = validSigners(cert.signatures.to, to, message);
  const leavingQuorum = voteQuorum(from.members.length, from.t);
  if (fromValid.length < leavingQuorum) throw new TkmsError('dkg_failed', `handover certificate has ${fromValid.length} valid signatures of leaving members, needs ${leavingQuorum}`);
  const quorum = voteQuorum(to.members.length, to.t);
  if (toValid.length < quorum) throw new TkmsError('dkg_failed', `handover certificate has ${toValid.length} valid signatures of arriving members, needs ${quorum}`);
  const pick = (sigs: Record<string, string>, ids: string[]) => Object.fromEntries(ids.map((id) => [id, sigs[id]!]));
  const certificate = { ...cert, signatures: { from: pick(cert.signatures.from, fromValid), to: pick(cert.signatures.to, toValid) } };
  return { certificate, from, to, keys, refresh: sameMembership(from, to) };
}

/** The certificate's keys at to.epoch: Y_i for exactly the arriving members, on one polynomial through the (unchanged) group key. */
function arrivingKeys(cert: HandoverCertificate, to: Committee, fromKeys?: ReadonlyMap<string, KeyEpochData>): KeyEpochData[] {
  const memberIds = to.members.map((m) => String(m.id));
  return cert.keys.map((k) => {
    const ids = Object.keys(k.verificationShares);
    if (ids.length !== memberIds.length || memberIds.some((id) => k.verificationShares[id] === undefined)) {
      throw new TkmsError('dkg_failed', `handover key ${k.keyId}: verification shares are not exactly the arriving members'`);
    }
    const before = fromKeys?.get(k.keyId);
    if (before !== undefined && encodeHex(before.groupPublicKey) !== k.groupPublicKey) {
      throw new TkmsError('dkg_failed', `handover key ${k.keyId}: the group key changed`);
    }
    if (before !== undefined && before.curve !== k.curve) throw new TkmsError('dkg_failed', `handover key ${k.keyId}: the curve changed`);
    assertSharesOnPolynomial(to.t, k.verificationShares, k.groupPublicKey, groupOf(k.curve));
    return {
      keyId: k.keyId,
      epoch: to.epoch,
      t: to.t,
      groupPublicKey: decodeHex(k.groupPublicKey),
      verificationShares: new Map(ids.map((id) => [Number(id), decodeHex(k.verificationShares[id])])),
      ...(k.curve === undefined ? {} : { curve: k.curve }),
    };
  });
}

/**
 * Checks a certificate from the side it arrives at, for a verifier that trusts the arriving committee
 * but not the one left (a client that pinned the committee file of epoch e + 1 and uses a key made
 * earlier): `to` has exactly the trusted membership and epoch, every key's Y_i lie on one polynomial
 * through its group key, and at least voteQuorum(to) arriving members signed the digest (taken with
 * the certificate's fromDigest; the leaving members' signatures are not checked, their committee
 * being unknown here). The quorum is at least t of the trusted committee, so at least one honest
 * member vouches that the dealings matched the old verification shares: the group keys are the
 * keys' own. Throws like verifyHandover; returns the keys at the trusted epoch.
 */
export function verifyArrival(value: unknown, trusted: CommitteeMembership, decoders?: CommitteeDecoders): KeyEpochData[] {
  const cert = parseHandoverCertificate(value);
  const to = parseCommittee(cert.to, decoders);
  if (cert.committeeId !== trusted.committeeId || to.committeeId !== trusted.committeeId) throw new TkmsError('dkg_failed', `handover certificate is for committee ${cert.committeeId}, not ${trusted.committeeId}`);
  if (to.epoch !== trusted.epoch || cert.fromEpoch + 1 !== trusted.epoch) throw new TkmsError('stale_epoch', `handover certificate arrives at epoch ${to.epoch}; the committee trusted here is at epoch ${trusted.epoch}`);
  if (!sameMembership(to, trusted)) throw new TkmsError('dkg_failed', `handover certificate arrives at another committee than the one trusted at epoch ${trusted.epoch}`);
  const keys = arrivingKeys(cert, to);
  const message = handoverVoteMessage(digestLeaving(cert, decodeHex(cert.fromDigest), to));
  const valid = validSigners(cert.signatures.to, trusted, message);
  const quorum = voteQuorum(to.members.length, to.t);
  if (valid.length < quorum) throw new TkmsError('dkg_failed', `handover certificate has ${valid.length} valid signatures of arriving members, needs ${quorum}`);
  return keys;
}

export interface FollowedCommittee {
  /** The committee reached: the trusted one when no certificate applies, else the last certificate's `to` (a whole file). */
  committee: CommitteeMembership | Committee;
  /** Keys at committee.epoch (from the last certificate), or the keys given when no certificate applies. */
  keys: Map<string, KeyEpochData>;
  /** The certificates followed, oldest first. */
  chain: VerifiedHandover[];
}

/**
 * Follows certificates from a trusted committee: each one must leave the committee reached so far.
 * Certificates that leave an earlier epoch are skipped (a chain may start before the pin); a gap
 * stops the walk with stale_epoch. Of several certificates leaving one epoch, the first that
 * verifies is followed; none verifying throws the first one's error. Keys given for the starting epoch are checked to stay unchanged.
 */
export function followHandovers(
  trusted: CommitteeMembership,
  certificates: readonly unknown[],
  trustedKeys?: ReadonlyMap<string, KeyEpochData>,
  decoders?: CommitteeDecoders,
): FollowedCommittee {
  if (certificates.length > MAX_HANDOVER_CHAIN) fail(`a chain has at most ${MAX_HANDOVER_CHAIN} certificates`);
  let committee: CommitteeMembership | Committee = trusted;
  let keys = new Map(trustedKeys ?? []);
  const chain: VerifiedHandover[] = [];
  const parsed = certificates.map(parseHandoverCertificate).sort((a, b) => a.fromEpoch - b.fromEpoch);
  for (let i = 0; i < parsed.length; ) {
    const epoch = parsed[i]!.fromEpoch;
    let end = i;
    while (end < parsed.length && parsed[end]!.fromEpoch === epoch) end++;
    const candidates = parsed.slice(i, end);
    i = end;
    if (epoch < committee.epoch) continue;
    if (epoch > committee.epoch) throw new TkmsError('stale_epoch', `no handover certificate leaves epoch ${committee.epoch} (the next one leaves ${epoch})`);
    // Certificates gathered from several members may hold a forged one for the same epoch: the first that verifies is taken.
    let verified: VerifiedHandover | undefined;
    let firstError: unknown;
    for (const cert of candidates) {
      try {
        verified = verifyHandover(cert, committee, keys.size > 0 ? keys : undefined, decoders);
        break;
      } catch (e) {
        firstError ??= e;
      }
    }
    if (verified === undefined) throw firstError;
    chain.push(verified);
    committee = verified.to;
    keys = new Map(verified.keys.map((k) => [k.keyId, k]));
  }
  return { committee, keys, chain };
}

/** A key's epoch data as the JSON a certificate carries. */
export function handoverKeyJson(key: KeyEpochData): HandoverKey {
  const ids = [...key.verificationShares.keys()].sort((a, b) => a - b);
  return {
    keyId: key.keyId,
    ...(key.curve === undefined ? {} : { curve: key.curve }),
    groupPublicKey: encodeHex(key.groupPublicKey),
    verificationShares: Object.fromEntries(ids.map((id) => [String(id), encodeHex(key.verificationShares.get(id)!)])),
  };
}

/** A point as the hex a certificate carries (compressed). */
export function pointHex(point: Parameters<typeof encodePoint>[0]): string {
  return encodeHex(encodePoint(point));
}
