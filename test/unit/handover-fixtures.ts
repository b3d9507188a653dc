/**
 * Test support: committees of real Ed25519 identities, keys on known polynomials, DKG results and
 * handover certificates signed the way members sign them (noble ed25519 over dkgSignedBytes).
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { publicKeyFromRaw } from '@libp2p/crypto/keys';
import { peerIdFromPublicKey } from '@libp2p/peer-id';
import { encodeHex, encodePoint, G, mod, randomScalar } from '../../core/index.ts';
import { committeeDigest, committeeToJson, parseCommittee, type Committee } from '../../core/committee.ts';
import { handoverDigest, handoverKeyJson, handoverVoteMessage, type HandoverCertificate, type KeyEpochData, type UnsignedHandover } from '../../core/ceremony/handover.ts';
import { confirmMessage, dkgResultDigest, dkgSignedBytes, parseDkgPublicResult, type DkgPublicResult } from '../../core/dkg/index.ts';

export interface TestMember {
  id: number;
  seed: Uint8Array;
  peerId: string;
  publicKey: Uint8Array;
}

export function makeMembers(ids: readonly number[]): TestMember[] {
  return ids.map((id) => {
    const seed = ed25519.utils.randomSecretKey();
    const publicKey = ed25519.getPublicKey(seed);
    return { id, seed, publicKey, peerId: peerIdFromPublicKey(publicKeyFromRaw(publicKey) as never).toString() };
  });
}

export function makeCommittee(committeeId: string, epoch: number, t: number, members: readonly TestMember[]): Committee {
  return parseCommittee({
    committeeId,
    epoch,
    t,
    members: members.map((m) => ({ id: m.id, peerId: m.peerId, multiaddrs: [`/ip4/127.0.0.1/tcp/${20_000 + m.id}/p2p/${m.peerId}`] })),
  });
}

/** The same committee at another epoch (a refresh reaches this). */
export function atEpoch(c: Committee, epoch: number): Committee {
  return parseCommittee({ ...committeeToJson(c), epoch });
}

function polynomialAt(coefficients: readonly bigint[], x: number): bigint {
  return coefficients.reduceRight((acc, c) => mod(acc * BigInt(x) + c), 0n);
}

function pointOf(scalar: bigint): Uint8Array {
  return encodePoint(G.multiply(scalar));
}

/** The members' secret shares of a key made by keyAt, by id (tests that compute partials read them). */
export const sharesOf = new WeakMap<KeyEpochData, Map<number, bigint>>();

/** A key's public data at `committee`'s epoch: the secret shared on a fresh polynomial of degree t − 1. */
export function keyAt(keyId: string, secret: bigint, committee: Committee): KeyEpochData {
  const coefficients = [secret, ...Array.from({ length: committee.t - 1 }, () => randomScalar())];
  const shares = new Map(committee.members.map((m) => [m.id, polynomialAt(coefficients, m.id)]));
  const data: KeyEpochData = {
    keyId,
    epoch: committee.epoch,
    t: committee.t,
    groupPublicKey: pointOf(secret),
    verificationShares: new Map([...shares].map(([id, s]) => [id, pointOf(s)])),
  };
  sharesOf.set(data, shares);
  return data;
}

export interface CertificateInput {
  from: Committee;
  to: Committee;
  /** Keys at to.epoch. */
  keys: readonly KeyEpochData[];
  fromSigners: readonly TestMember[];
  toSigners: readonly TestMember[];
  /** Edits the unsigned certificate before it is signed (to make a consistent but wrong certificate). */
  edit?: (unsigned: UnsignedHandover) => UnsignedHandover;
}

/** A certificate signed by the given members over the digest its own fields determine. */
export function signCertificate(input: CertificateInput): HandoverCertificate {
  let unsigned: UnsignedHandover = {
    v: 1,
    committeeId: input.from.committeeId,
    fromEpoch: input.from.epoch,
    fromDigest: encodeHex(committeeDigest(input.from)),
    to: committeeToJson(input.to),
    keys: [...input.keys].sort((a, b) => (a.keyId < b.keyId ? -1 : 1)).map(handoverKeyJson),
    transcriptHash: encodeHex(new Uint8Array(32).fill(7)),
  };
  if (input.edit) unsigned = input.edit(unsigned);
  const to = parseCommittee(unsigned.to);
  const message = dkgSignedBytes(handoverVoteMessage(handoverDigest(unsigned, input.from, to)));
  const sign = (signers: readonly TestMember[]) => Object.fromEntries(signers.map((m) => [String(m.id), encodeHex(ed25519.sign(message, m.seed))]));
  return { ...unsigned, signatures: { from: sign(input.fromSigners), to: sign(input.toSigners) } };
}

/** A DKG result of `committee` for the key, signed by `signers`; epoch present only when ≥ 1. */
export function signedDkgResult(key: KeyEpochData, committee: Committee, signers: readonly TestMember[]): DkgPublicResult {
  const memberKeys = new Map(committee.members.map((m) => [m.id, m.publicKey]));
  const ids = committee.members.map((m) => m.id);
  const unsigned = parseDkgPublicResult({
    keyId: key.keyId,
    committeeId: committee.committeeId,
    ...(committee.epoch > 0 ? { epoch: committee.epoch } : {}),
    sessionId: encodeHex(new Uint8Array(16).fill(key.keyId.length)),
    t: committee.t,
    n: ids.length,
    groupPublicKey: encodeHex(key.groupPublicKey),
    verificationShares: Object.fromEntries(ids.map((id) => [String(id), encodeHex(key.verificationShares.get(id)!)])),
    qualified: ids,
    transcriptHash: encodeHex(new Uint8Array(32).fill(3)),
    signatures: {},
  });
  const { signatures: _none, ...rest } = unsigned;
  const message = dkgSignedBytes(confirmMessage(dkgResultDigest(rest, memberKeys)));
  return parseDkgPublicResult({ ...unsigned, signatures: Object.fromEntries(signers.map((m) => [String(m.id), encodeHex(ed25519.sign(message, m.seed))])) });
}

/**
 * A chain: `committees[0]` at epoch 0 with the keys given by their secrets, then one certificate per
 * later committee, each signed by every member of both sides. Returns the keys at every epoch.
 */
export function makeChain(
  committees: readonly { committee: Committee; members: readonly TestMember[] }[],
  secrets: ReadonlyMap<string, bigint>,
): { certificates: HandoverCertificate[]; keysAt: Map<string, KeyEpochData>[] } {
  const keysAt: Map<string, KeyEpochData>[] = [new Map([...secrets].map(([keyId, s]) => [keyId, keyAt(keyId, s, committees[0]!.committee)]))];
  const certificates: HandoverCertificate[] = [];
  for (let i = 1; i < committees.length; i++) {
    const from = committees[i - 1]!;
    const to = committees[i]!;
    const keys = [...secrets].map(([keyId, s]) => keyAt(keyId, s, to.committee));
    keysAt.push(new Map(keys.map((k) => [k.keyId, k])));
    certificates.push(signCertificate({ from: from.committee, to: to.committee, keys, fromSigners: from.members, toSigners: to.members }));
  }
  return { certificates, keysAt };
}
