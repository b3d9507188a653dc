import { decodeHex, encodeHex, utf8ToBytes } from '../bytes.ts';
import { groupOf, type Group } from '../group.ts';
import { TkmsError } from '../errors.ts';
import { MAX_EPOCH } from '../committee.ts';
import { assertKeyId } from '../identifiers.ts';
import { assertParticipantId, assertThreshold } from '../shamir.ts';
import { assertSharesOnPolynomial } from './shares-on-polynomial.ts';
import { confirmMessage, dkgResultDigest, legacyConfirmMessage } from './context.ts';
import { verifyMemberSignature } from './member-signatures.ts';
import { voteQuorum } from '../quorum.ts';
import type { DkgPublicResult } from './types.ts';

export const SESSION_ID_LENGTH = 16;
const TRANSCRIPT_HASH_LENGTH = 32;
/** A member signature in a result: bounded before it is checked (an Ed25519 signature is 64 bytes). */
const MAX_SIGNATURE_LENGTH = 512;
export const MAX_COMMITTEE_ID_LENGTH = 128;
/** Generous bound for n = 65535 members is ~10 MB; committees are far smaller, so cap the parser input. */
export const MAX_ENCODED_RESULT_LENGTH = 4 * 1024 * 1024;

const RESULT_KEYS = ['keyId', 'committeeId', 'sessionId', 't', 'n', 'groupPublicKey', 'verificationShares', 'qualified', 'transcriptHash', 'signatures'] as const;
/** Fields a result may leave out: `epoch` is absent at epoch 0, so results made before epochs keep their bytes and digest. */
const OPTIONAL_RESULT_KEYS = ['epoch', 'curve'] as const;

export function assertCommitteeId(value: unknown): asserts value is string {
  if (typeof value !== 'string' || value.length < 1 || value.length > MAX_COMMITTEE_ID_LENGTH || !/^[\x21-\x7e]+$/.test(value)) {
    throw new TkmsError('bad_request', `committee id must be 1-${MAX_COMMITTEE_ID_LENGTH} printable ASCII characters`);
  }
}

/** Canonical JSON: fixed key order, ids ascending (integer-like keys are ordered numerically by JS). */
export function encodeDkgPublicResult(r: DkgPublicResult): Uint8Array {
  const canonical = parseDkgPublicResult(r);
  return utf8ToBytes(JSON.stringify(canonical));
}

export function decodeDkgPublicResult(bytes: Uint8Array): DkgPublicResult {
  if (!(bytes instanceof Uint8Array)) throw new TkmsError('bad_request', 'DKG result must be bytes');
  if (bytes.length > MAX_ENCODED_RESULT_LENGTH) throw new TkmsError('payload_too_large', 'DKG result is too large');
  let text: string;
  let parsed: unknown;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    parsed = JSON.parse(text);
  } catch {
    throw new TkmsError('bad_request', 'DKG result is not valid UTF-8 JSON');
  }
  const result = parseDkgPublicResult(parsed);
  // One result, one encoding: signatures and hashes over results must not depend on spelling.
  if (JSON.stringify(result) !== text) throw new TkmsError('bad_request', 'DKG result is not in canonical form');
  return result;
}

function canonicalHex(value: unknown, name: string, length: number | undefined, maxLength?: number): string {
  const bytes = decodeHex(value, length === undefined ? { name, maxLength: maxLength ?? 0 } : { name, length });
  const hex = encodeHex(bytes);
  if (hex !== value) throw new TkmsError('bad_hex', `${name} must be lower-case 0x-prefixed hex`);
  return hex;
}

function canonicalPoint(value: unknown, name: string, group: Group): string {
  const hex = canonicalHex(value, name, group.pointLength);
  group.decodePoint(hex, name);
  return hex;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && Object.getPrototypeOf(value) === Object.prototype;
}

function memberKey(key: string, name: string): number {
  if (!/^[1-9][0-9]{0,4}$/.test(key)) throw new TkmsError('bad_request', `${name} keys must be member ids in decimal`);
  const id = Number(key);
  assertParticipantId(id, `${name} key`);
  return id;
}

/**
 * Validates a parsed JSON object (any key order) as a DKG public result and returns a fresh
 * object in canonical form; TkmsError if malformed.
 */
export function parseDkgPublicResult(value: unknown): DkgPublicResult {
  if (!isPlainObject(value)) throw new TkmsError('bad_request', 'DKG result must be a JSON object');
  const keys = Object.keys(value);
  for (const key of keys) if (!([...RESULT_KEYS, ...OPTIONAL_RESULT_KEYS] as readonly string[]).includes(key)) throw new TkmsError('bad_request', `DKG result has an unknown field "${key.slice(0, 40)}"`);
  for (const key of RESULT_KEYS) if (!(key in value)) throw new TkmsError('bad_request', `DKG result is missing "${key}"`);
  const v = value as Record<(typeof RESULT_KEYS)[number], unknown>;
  assertKeyId(v.keyId);
  assertCommitteeId(v.committeeId);
  const epoch = (value as { epoch?: unknown }).epoch;
  // One canonical form: epoch 0 is spelled by leaving the field out.
  if (epoch !== undefined && (!Number.isSafeInteger(epoch) || (epoch as number) < 1 || (epoch as number) > MAX_EPOCH)) {
    throw new TkmsError('bad_request', `epoch must be an integer in 1..${MAX_EPOCH} (absent at epoch 0)`);
  }
  const curve = (value as { curve?: unknown }).curve;
  // One canonical form: secp256k1 is spelled by leaving the field out.
  if (curve !== undefined && curve !== 'ed25519') throw new TkmsError('bad_request', 'curve must be "ed25519" (absent for secp256k1)');
  const group = groupOf(curve);
  const sessionId = canonicalHex(v.sessionId, 'sessionId', SESSION_ID_LENGTH);
  assertThreshold(v.t, v.n);
  const t = v.t;
  const n = v.n as number;
  const groupPublicKey = canonicalPoint(v.groupPublicKey, 'groupPublicKey', group);

  if (!isPlainObject(v.verificationShares)) throw new TkmsError('bad_request', 'verificationShares must be an object');
  const shareEntries = Object.entries(v.verificationShares);
  if (shareEntries.length !== n) throw new TkmsError('bad_request', `verificationShares must have one entry per member (n = ${n})`);
  const verificationShares: Record<string, string> = {};
  for (const [key, y] of shareEntries.map(([k, y]) => [memberKey(k, 'verificationShares'), y] as const).sort((a, b) => a[0] - b[0])) {
    verificationShares[String(key)] = canonicalPoint(y, `verificationShares[${key}]`, group);
  }

  if (!Array.isArray(v.qualified) || v.qualified.length < t || v.qualified.length > n) {
    throw new TkmsError('bad_request', `qualified must list between t = ${t} and n = ${n} dealer ids`);
  }
  const qualified: number[] = [];
  for (const id of v.qualified) {
    assertParticipantId(id, 'qualified id');
    if (qualified.length > 0 && id <= qualified[qualified.length - 1]!) throw new TkmsError('bad_request', 'qualified must be sorted and without duplicates');
    if (!(String(id) in verificationShares)) throw new TkmsError('bad_request', `qualified dealer ${id} is not a member`);
    qualified.push(id);
  }

  const transcriptHash = canonicalHex(v.transcriptHash, 'transcriptHash', TRANSCRIPT_HASH_LENGTH);

  if (!isPlainObject(v.signatures)) throw new TkmsError('bad_request', 'signatures must be an object');
  const signatures: Record<string, string> = {};
  const signatureEntries = Object.entries(v.signatures);
  if (signatureEntries.length > n) throw new TkmsError('bad_request', 'more signatures than members');
  for (const [key, sig] of signatureEntries.map(([k, s]) => [memberKey(k, 'signatures'), s] as const).sort((a, b) => a[0] - b[0])) {
    if (!(String(key) in verificationShares)) throw new TkmsError('bad_request', `signature from non-member ${key}`);
    const hex = canonicalHex(sig, `signatures[${key}]`, undefined, MAX_SIGNATURE_LENGTH);
    if (hex === '0x') throw new TkmsError('bad_length', `signatures[${key}] is empty`);
    signatures[String(key)] = hex;
  }
  return { keyId: v.keyId, committeeId: v.committeeId, ...(epoch === undefined ? {} : { epoch: epoch as number }), ...(curve === undefined ? {} : { curve }), sessionId, t, n, groupPublicKey, verificationShares, qualified, transcriptHash, signatures };
}

/** The result's fields without signatures; what every member signs (via dkgResultDigest). */
function unsigned(r: DkgPublicResult): Omit<DkgPublicResult, 'signatures'> {
  const { signatures: _signatures, ...rest } = r;
  return rest;
}

function assertSameMembers(result: DkgPublicResult, memberKeys: ReadonlyMap<number, Uint8Array>): void {
  const ids = Object.keys(result.verificationShares);
  if (memberKeys.size !== ids.length || ids.some((id) => !memberKeys.has(Number(id)))) {
    throw new TkmsError('dkg_failed', 'the result\'s members are not the committee\'s members');
  }
}

function assertConsistentShares(result: DkgPublicResult): void {
  assertSharesOnPolynomial(result.t, result.verificationShares, result.groupPublicKey, groupOf(result.curve));
}

/** The digest of a result as two parties compare it: equal digests = the same key, whoever signed. */
export function dkgPublicResultDigest(r: DkgPublicResult, memberKeys: ReadonlyMap<number, Uint8Array>): Uint8Array {
  return dkgResultDigest(unsigned(parseDkgPublicResult(r)), memberKeys);
}

/**
 * The committee a result must belong to, pinned by the verifier (the committee file), never read
 * from the result: a result signs its own t, n and committee id, so taking them from it would
 * let t' < t members sign a key they alone know.
 */
export interface ExpectedCommittee {
  committeeId: string;
  t: number;
  /** Member id → raw Ed25519 key; the ids are the member set, their count is n. */
  memberKeys: ReadonlyMap<number, Uint8Array>;
}

function assertExpectedCommittee(result: DkgPublicResult, expected: ExpectedCommittee): void {
  if (result.committeeId !== expected.committeeId) {
    throw new TkmsError('dkg_failed', `the result is for committee ${result.committeeId}, not ${expected.committeeId}`);
  }
  if (result.t !== expected.t || result.n !== expected.memberKeys.size) {
    throw new TkmsError('dkg_failed', `the result has t = ${result.t}, n = ${result.n}; the committee has t = ${expected.t}, n = ${expected.memberKeys.size}`);
  }
  assertSameMembers(result, expected.memberKeys);
}

/**
 * Checks a published DKG result without its transcript: it belongs to the expected committee
 * (same committee id, t, n and member ids), canonical structure, valid points,
 * all verification shares on one polynomial of degree < t whose value at 0 is the group key,
 * and at least voteQuorum(n, t) (≥ t) valid member signatures over the digest of the whole result (key id,
 * committee, session, t, n, member ids and the given member keys, qualified set, group key,
 * every Y_i, transcript hash), recomputed here from the fields handed in.
 *
 * Signatures that do not verify are dropped, not fatal: anyone relaying a result can add
 * junk, and that must not make a good result fail everywhere. Returns the result carrying
 * only the valid signatures. Throws TkmsError: bad_request (or a decoder code) for
 * malformed input, dkg_failed for a result of another committee shape, inconsistent or insufficiently signed.
 */
export function verifyDkgPublicResult(r: DkgPublicResult, expected: ExpectedCommittee): DkgPublicResult {
  const result = parseDkgPublicResult(r);
  assertExpectedCommittee(result, expected);
  assertConsistentShares(result);
  const memberKeys = expected.memberKeys;
  const message = confirmMessage(dkgResultDigest(unsigned(result), memberKeys));
  const valid = validSigners(result, memberKeys, message);
  // A vote quorum, not t: the DKG ceremony is safe because a result needs q votes and an honest
  // member votes once, but f liars can add their signatures to a result that an honest minority
  // voted for and certification passed by (votes split across attempts). With t such a result
  // would verify beside the certified one. Results of the old DKG gather q as members re-sign.
  const quorum = voteQuorum(result.n, result.t);
  if (valid.length < quorum) {
    throw new TkmsError('dkg_failed', `only ${valid.length} valid member signatures over the result, need ${quorum} (a vote quorum of n = ${result.n}, t = ${result.t})`);
  }
  return { ...result, signatures: Object.fromEntries(valid.map((id) => [String(id), result.signatures[String(id)]!])) };
}

function validSigners(result: DkgPublicResult, memberKeys: ReadonlyMap<number, Uint8Array>, message: Uint8Array): number[] {
  const valid: number[] = [];
  for (const [key, sig] of Object.entries(result.signatures)) {
    const id = Number(key);
    const publicKey = memberKeys.get(id);
    if (publicKey !== undefined && verifyMemberSignature(publicKey, message, decodeHex(sig))) valid.push(id);
  }
  return valid;
}

/**
 * Whether a stored result was confirmed by t members under the pre-v2 rule (signatures over the
 * transcript hash only). It does not vouch for the group key: a node accepts it only for the
 * result in its own keystore, as the starting point for re-signing (see the runner's upgrade).
 */
export function hasLegacyConfirmations(r: DkgPublicResult, expected: ExpectedCommittee): boolean {
  const result = parseDkgPublicResult(r);
  assertExpectedCommittee(result, expected);
  assertConsistentShares(result);
  const memberKeys = expected.memberKeys;
  const message = legacyConfirmMessage(result.keyId, result.committeeId, decodeHex(result.sessionId), decodeHex(result.transcriptHash));
  return validSigners(result, memberKeys, message).length >= result.t;
}
