import { messageSha256 } from '../digest.ts';
import { assertPointBytes, curveBackend } from '../curve-backend.ts';
import { bytesToHex, concatBytes, lengthPrefixed, utf8ToBytes } from '../bytes.ts';
import { COMPRESSED_POINT_LENGTH, decodeScalar, encodeScalar, Point, SCALAR_LENGTH } from '../curve.ts';
import { groupOf, type Group, type GroupName, type GroupPoint } from '../group.ts';
import type { LruCache } from '../lru.ts';
import { decodeDleqProof, DLEQ_PROOF_LENGTH, encodeDleqProof, type DleqProof } from '../dleq.ts';
import { TkmsError } from '../errors.ts';
import { ByteReader } from '../byte-reader.ts';

/**
 * Binary wire format of the ceremony messages: `version(1) ‖ type(1) ‖ body ‖ signature(64)`,
 * integers big-endian, member ids u16. Every signature but a vote's covers
 * lengthPrefixed(SIGN_DOMAIN, ceremony id, everything before it), so a message of one proposal never
 * passes in another; a vote's signature is the certificate's own vote message (the handover vote, or
 * a DKG result confirmation), bound to the ceremony through the transcript hash. The decoder is
 * strict: the total size is checked against the largest message the ceremony's shape allows before
 * anything is parsed, counts are exact or bounded, points and scalars go through the core decoders,
 * no trailing bytes, and only TkmsError is thrown.
 *
 * Two families share the layout: reshare/refresh and the DKG. They differ in their type bytes and
 * signing domain (so a message of one is refused by the other before any signature check, and no
 * signature of one verifies in the other), in the DKG dealing's proof of knowledge of each constant
 * term, and in how many dealings a proposal carries (exactly t for a reshare, t..n for a DKG).
 */
export const CEREMONY_WIRE_VERSION = 1;
export const SIGNATURE_LENGTH = 64;
export const HASH_LENGTH = 32;
/** A dealing's BIP340 proof of knowledge: of d for D (reshare), of a_0 and d (DKG; see dealing.ts). */
export const KNOWLEDGE_PROOF_LENGTH = 64;

/** Which ceremony a message belongs to: the reshare/refresh of existing keys, or the DKG of a new one. */
export type CeremonyFamily = 'reshare' | 'dkg';

const SIGN_DOMAINS: Record<CeremonyFamily, Uint8Array> = {
  reshare: utf8ToBytes('tkms/ceremony/v1/message'),
  dkg: utf8ToBytes('tkms/ceremony/v1/dkg-message'),
};

export const CEREMONY_MESSAGE_TYPES = { hello: 1, dealing: 2, complaint: 3, proposal: 4, echo: 5, vote: 6, certificate: 7 } as const;
export type CeremonyMessageKind = keyof typeof CEREMONY_MESSAGE_TYPES;
/** The DKG's type bytes: the reshare's plus 0x10, so neither decoder takes the other's messages. */
export const DKG_CEREMONY_MESSAGE_TYPES = Object.fromEntries(Object.entries(CEREMONY_MESSAGE_TYPES).map(([k, v]) => [k, v + 0x10])) as Record<CeremonyMessageKind, number>;

const TYPES: Record<CeremonyFamily, Record<CeremonyMessageKind, number>> = { reshare: CEREMONY_MESSAGE_TYPES, dkg: DKG_CEREMONY_MESSAGE_TYPES };

/** The family and kind of a payload by its type byte (undefined for neither): how a runner routes a frame without decoding it. */
export function ceremonyMessageKind(payload: Uint8Array): { family: CeremonyFamily; kind: CeremonyMessageKind } | undefined {
  for (const family of ['reshare', 'dkg'] as const) {
    const kind = KIND_BY_TYPE[family].get(payload[1] ?? -1);
    if (kind !== undefined) return { family, kind };
  }
  return undefined;
}

/** The ceremony's shape: what bounds every count and size. */
export interface CeremonyShape {
  /** Absent = 'reshare' (the shape every reshare caller already builds). */
  family?: CeremonyFamily;
  /** |from| and from.t. */
  n: number;
  t: number;
  /** |to| and to.t. */
  nTo: number;
  tTo: number;
  /** Keys moved. */
  keys: number;
  /** Attempts a proposal may name (0..maxAttempts − 1). */
  maxAttempts: number;
  /**
   * The group of each key's shares (core/group.ts), aligned with the keys; absent (or an entry
   * absent) = secp256k1, the bytes of every ceremony before Ed25519 keys. Only the Feldman
   * commitments (and a DKG's proof for a_0) are in the key's group; hellos, sealing keys, sealed
   * sub-shares and complaints are secp256k1 for every key (dealing.ts).
   */
  keyGroups?: readonly (GroupName | undefined)[];
}

/** The group of key k of a ceremony. */
export function keyGroup(s: CeremonyShape, k: number): Group {
  return groupOf(s.keyGroups?.[k]);
}

/**
 * Whether key k's dealing carries a separate proof of knowledge of a_0 in the key's group: a DKG of
 * a key outside secp256k1, where a_0 and the sealing key d cannot share one BIP340 proof.
 */
export function hasConstantProof(s: CeremonyShape, k: number): boolean {
  return familyOf(s) === 'dkg' && keyGroup(s, k).name !== 'secp256k1';
}

export interface HelloMessage {
  kind: 'hello';
  author: number;
  receiverKey: Uint8Array;
}

/** One arriving member's slot in a dealing: the key it said hello with (and that hello's signature), or absent. */
export interface DealingRecipient {
  receiverKey: Uint8Array;
  helloSignature: Uint8Array;
}

export interface KeyDealing {
  /** t′ encoded Feldman commitments in the key's group, constant term first. */
  commitments: Uint8Array[];
  /** The same, decoded (set by the decoder; the math works on these, so no point is decompressed twice). */
  commitmentPoints?: GroupPoint[];
  ephemeralKey: Uint8Array;
  /**
   * BIP340. A reshare: the dealer knows d for ephemeralKey (its A_0 is checked against Y_j). A DKG:
   * the dealer knows a_0 for commitments[0] and d, in one proof under A_0 + c·D (dealing.ts).
   */
  proof: Uint8Array;
  /**
   * A DKG of a key outside secp256k1 (hasConstantProof): the proof of knowledge of a_0 in the key's
   * group (an Ed25519 signature under A_0 with a_0 as its secret scalar), while `proof` is BIP340 for d.
   */
  constantProof?: Uint8Array;
  /** One per present recipient, in recipient order. */
  ciphertexts: bigint[];
}

export interface DealingMessage {
  kind: 'dealing';
  author: number;
  /** Aligned with to.members (sorted by id); undefined where no hello arrived in time. */
  recipients: (DealingRecipient | undefined)[];
  keys: KeyDealing[];
}

export interface ComplaintMessage {
  kind: 'complaint';
  author: number;
  dealer: number;
  dealingHash: Uint8Array;
  keyIndex: number;
  pairKey: Uint8Array;
  proof: DleqProof;
}

export interface ProposalMessage {
  kind: 'proposal';
  author: number;
  attempt: number;
  /** Raw dealing messages, dealers ascending. */
  dealings: Uint8Array[];
}

export interface EchoMessage {
  kind: 'echo';
  author: number;
  attempt: number;
  proposalHash: Uint8Array;
}

export interface VoteMessage {
  kind: 'vote';
  /** The voter's id in `from` and in `to` (0 = not a member of that committee). */
  fromId: number;
  toId: number;
  /** handoverDigest of the proposal voted for: the signature is over handoverVoteMessage(digest). */
  digest: Uint8Array;
}

export interface CertificateMessage {
  kind: 'certificate';
  /** 0: the author is named by its `from` id, 1: by its `to` id. */
  authorRole: 0 | 1;
  author: number;
  proposal: Uint8Array;
  votes: Uint8Array[];
}

export type CeremonyBody = HelloMessage | DealingMessage | ComplaintMessage | ProposalMessage | EchoMessage | VoteMessage | CertificateMessage;

export interface DecodedCeremonyMessage {
  body: CeremonyBody;
  /** The bytes the signature covers (before SIGN_DOMAIN and the proposal id are added; a vote's: nothing). */
  signed: Uint8Array;
  signature: Uint8Array;
  raw: Uint8Array;
  /** SHA-256 of raw: the message's identity for dedup, caches and references. */
  hash: Uint8Array;
}

/** What an author signs for a message (all kinds but vote). */
export function signingBytes(proposalId: Uint8Array, signed: Uint8Array, family: CeremonyFamily = 'reshare'): Uint8Array {
  return lengthPrefixed(SIGN_DOMAINS[family], proposalId, signed);
}

const familyOf = (s: CeremonyShape): CeremonyFamily => s.family ?? 'reshare';

/**
 * How many dealings a proposal carries: a reshare exactly t (any t old shares fix the secret), a DKG
 * every eligible dealer, at least t′ (README "DKG").
 */
export function proposalDealerRange(s: CeremonyShape): { min: number; max: number } {
  return familyOf(s) === 'dkg' ? { min: s.tTo, max: s.n } : { min: s.t, max: s.t };
}

/** Distinct voters a certificate may carry: members of both committees for a reshare, the one committee for a DKG. */
function maxVoters(s: CeremonyShape): number {
  return familyOf(s) === 'dkg' ? s.n : s.n + s.nTo;
}

// ---- sizes (the decoder checks the total against these before parsing) ----

function keyDealingMaxSize(s: CeremonyShape, k: number): number {
  const constantProof = hasConstantProof(s, k) ? KNOWLEDGE_PROOF_LENGTH : 0;
  return s.tTo * keyGroup(s, k).pointLength + COMPRESSED_POINT_LENGTH + KNOWLEDGE_PROOF_LENGTH + constantProof + s.nTo * SCALAR_LENGTH;
}

function dealingMaxSize(s: CeremonyShape): number {
  const recipients = s.nTo * (1 + COMPRESSED_POINT_LENGTH + SIGNATURE_LENGTH);
  let keys = 0;
  for (let k = 0; k < s.keys; k++) keys += keyDealingMaxSize(s, k);
  return 2 + 2 + 2 + 2 + recipients + keys + SIGNATURE_LENGTH;
}

function proposalMaxSize(s: CeremonyShape): number {
  return 2 + 2 + 2 + 2 + proposalDealerRange(s).max * (4 + dealingMaxSize(s)) + SIGNATURE_LENGTH;
}

const VOTE_SIZE = 2 + 2 + 2 + HASH_LENGTH + SIGNATURE_LENGTH;

/** The largest message of each kind for this shape: the bound checked before parsing, and the unit of the inbox's byte budgets. */
export function maxMessageSize(s: CeremonyShape, kind: CeremonyMessageKind): number {
  switch (kind) {
    case 'hello':
      return 2 + 2 + COMPRESSED_POINT_LENGTH + SIGNATURE_LENGTH;
    case 'dealing':
      return dealingMaxSize(s);
    case 'complaint':
      return 2 + 2 + 2 + HASH_LENGTH + 2 + COMPRESSED_POINT_LENGTH + DLEQ_PROOF_LENGTH + SIGNATURE_LENGTH;
    case 'proposal':
      return proposalMaxSize(s);
    case 'echo':
      return 2 + 2 + 2 + HASH_LENGTH + SIGNATURE_LENGTH;
    case 'vote':
      return VOTE_SIZE;
    case 'certificate':
      return 2 + 1 + 2 + 4 + proposalMaxSize(s) + 2 + maxVoters(s) * (4 + VOTE_SIZE) + SIGNATURE_LENGTH;
  }
}

/** Decoded points by group and encoding: the same receiver keys and commitments recur in every dealing, relay and proposal. */
export type PointCache = LruCache<string, GroupPoint>;

/**
 * decodePoint's checks with the square root taken by the curve backend (libsecp256k1 where it loads):
 * a DKG member decompresses every dealer's commitments, n·t points, and noble's root dominated that.
 */
function decompressed(bytes: Uint8Array, field: string): Point {
  assertPointBytes(bytes, field);
  let point: Point;
  try {
    point = Point.fromBytes(curveBackend().decompress(bytes));
    point.assertValidity();
  } catch {
    throw new TkmsError('bad_point', `${field} is not a point on secp256k1`);
  }
  return point;
}

class Reader extends ByteReader {
  lastPoint: GroupPoint | undefined;
  constructor(bytes: Uint8Array, what: string, private readonly cache?: PointCache) {
    super(bytes, what);
  }
  /** A member id in 1..max (the committee's ids are checked by the caller against the committee). */
  id(field: string, allowZero = false): number {
    const id = this.u16(field);
    if ((id === 0 && !allowZero) || id > 65_535) throw new TkmsError('bad_request', `${this.what}: ${field} is not a member id`);
    return id;
  }
  bounded(field: string, min: number, max: number): number {
    const value = this.u16(field);
    if (value < min || value > max) throw new TkmsError('bad_length', `${this.what}: ${field} ${value} is outside ${min}..${max}`);
    return value;
  }
  blob(field: string, maxLength: number): Uint8Array {
    const length = this.u32(field);
    if (length > maxLength) throw new TkmsError('bad_length', `${this.what}: ${field} longer than ${maxLength} bytes`);
    return this.take(length, field);
  }
  /** A point only validated (the backend's check, no decompression): receiver, sealing and pair keys are used as bytes. */
  pointBytes(field: string): Uint8Array {
    const bytes = this.take(COMPRESSED_POINT_LENGTH, field);
    assertPointBytes(bytes, field);
    return bytes;
  }
  point(field: string, group: Group): Uint8Array {
    const bytes = this.take(group.pointLength, field);
    const key = this.cache === undefined ? '' : `${group.name}:${bytesToHex(bytes)}`;
    let point = this.cache?.get(key);
    if (point === undefined) {
      point = group.name === 'secp256k1' ? decompressed(bytes, field) : group.decodePoint(bytes, field);
      this.cache?.set(key, point);
    }
    this.lastPoint = point;
    return bytes;
  }
  scalar(field: string): bigint {
    return decodeScalar(this.take(SCALAR_LENGTH, field), { name: field, allowZero: true });
  }
  consumed(): Uint8Array {
    return this.bytes.slice(0, this.offset);
  }
}

class Writer {
  private readonly parts: Uint8Array[] = [];
  u8(value: number): this {
    this.parts.push(Uint8Array.of(value & 0xff));
    return this;
  }
  u16(value: number): this {
    if (!Number.isInteger(value) || value < 0 || value > 0xffff) throw new TkmsError('bad_request', 'u16 field out of range');
    this.parts.push(Uint8Array.of(value >>> 8, value & 0xff));
    return this;
  }
  bytes(value: Uint8Array, length?: number): this {
    if (length !== undefined && value.length !== length) throw new TkmsError('bad_length', `field must be ${length} bytes`);
    this.parts.push(value);
    return this;
  }
  blob(value: Uint8Array): this {
    const len = new Uint8Array(4);
    new DataView(len.buffer).setUint32(0, value.length, false);
    this.parts.push(len, value);
    return this;
  }
  done(): Uint8Array {
    return concatBytes(...this.parts);
  }
}

function header(kind: CeremonyMessageKind, family: CeremonyFamily): Writer {
  return new Writer().u8(CEREMONY_WIRE_VERSION).u8(TYPES[family][kind]);
}

/** The unsigned prefix of a message (what its signature covers, with the ceremony id). */
export function encodeUnsigned(body: CeremonyBody, family: CeremonyFamily = 'reshare'): Uint8Array {
  const w = header(body.kind, family);
  switch (body.kind) {
    case 'hello':
      return w.u16(body.author).bytes(body.receiverKey, COMPRESSED_POINT_LENGTH).done();
    case 'dealing': {
      w.u16(body.author).u16(body.recipients.length).u16(body.keys.length);
      for (const r of body.recipients) {
        if (r === undefined) w.u8(0);
        else w.u8(1).bytes(r.receiverKey, COMPRESSED_POINT_LENGTH).bytes(r.helloSignature, SIGNATURE_LENGTH);
      }
      const present = body.recipients.filter((r) => r !== undefined).length;
      for (const k of body.keys) {
        // The shape, not the encoder, bounds the lengths per group: the decoder refuses a mismatch.
        for (const c of k.commitments) w.bytes(c);
        w.bytes(k.ephemeralKey, COMPRESSED_POINT_LENGTH).bytes(k.proof, KNOWLEDGE_PROOF_LENGTH);
        if (k.constantProof !== undefined) w.bytes(k.constantProof, KNOWLEDGE_PROOF_LENGTH);
        if (k.ciphertexts.length !== present) throw new TkmsError('bad_request', 'one ciphertext per present recipient');
        for (const c of k.ciphertexts) w.bytes(encodeScalar(c));
      }
      return w.done();
    }
    case 'complaint':
      return w
        .u16(body.author)
        .u16(body.dealer)
        .bytes(body.dealingHash, HASH_LENGTH)
        .u16(body.keyIndex)
        .bytes(body.pairKey, COMPRESSED_POINT_LENGTH)
        .bytes(encodeDleqProof(body.proof))
        .done();
    case 'proposal': {
      w.u16(body.author).u16(body.attempt).u16(body.dealings.length);
      for (const d of body.dealings) w.blob(d);
      return w.done();
    }
    case 'echo':
      return w.u16(body.author).u16(body.attempt).bytes(body.proposalHash, HASH_LENGTH).done();
    case 'vote':
      return w.u16(body.fromId).u16(body.toId).bytes(body.digest, HASH_LENGTH).done();
    case 'certificate': {
      w.u8(body.authorRole).u16(body.author).blob(body.proposal).u16(body.votes.length);
      for (const v of body.votes) w.blob(v);
      return w.done();
    }
  }
}

export function withSignature(signed: Uint8Array, signature: Uint8Array): Uint8Array {
  if (signature.length !== SIGNATURE_LENGTH) throw new TkmsError('bad_length', 'signature must be 64 bytes');
  return concatBytes(signed, signature);
}

function decodeBody(r: Reader, kind: CeremonyMessageKind, s: CeremonyShape): CeremonyBody {
  switch (kind) {
    case 'hello':
      return { kind: 'hello', author: r.id('author'), receiverKey: r.pointBytes('receiver key') };
    case 'dealing': {
      const author = r.id('author');
      r.bounded('recipient count', s.nTo, s.nTo);
      r.bounded('key count', s.keys, s.keys);
      const recipients: (DealingRecipient | undefined)[] = [];
      for (let i = 0; i < s.nTo; i++) {
        const flag = r.u8('recipient flag');
        if (flag === 0) recipients.push(undefined);
        else if (flag === 1) recipients.push({ receiverKey: r.pointBytes('receiver key'), helloSignature: r.take(SIGNATURE_LENGTH, 'hello signature') });
        else throw new TkmsError('bad_request', 'ceremony dealing: recipient flag must be 0 or 1');
      }
      const present = recipients.filter((x) => x !== undefined).length;
      const keys: KeyDealing[] = [];
      for (let k = 0; k < s.keys; k++) {
        const group = keyGroup(s, k);
        const commitments: Uint8Array[] = [];
        const commitmentPoints: GroupPoint[] = [];
        for (let i = 0; i < s.tTo; i++) {
          commitments.push(r.point('commitment', group));
          commitmentPoints.push(r.lastPoint!);
        }
        const ephemeralKey = r.pointBytes('ephemeral key');
        const proof = r.take(KNOWLEDGE_PROOF_LENGTH, 'proof of knowledge');
        const constantProof = hasConstantProof(s, k) ? r.take(KNOWLEDGE_PROOF_LENGTH, 'proof of knowledge of the constant term') : undefined;
        const ciphertexts: bigint[] = [];
        for (let i = 0; i < present; i++) ciphertexts.push(r.scalar('sealed sub-share'));
        keys.push({ commitments, commitmentPoints, ephemeralKey, proof, ...(constantProof === undefined ? {} : { constantProof }), ciphertexts });
      }
      return { kind: 'dealing', author, recipients, keys };
    }
    case 'complaint': {
      const author = r.id('author');
      const dealer = r.id('dealer');
      const dealingHash = r.take(HASH_LENGTH, 'dealing hash');
      const keyIndex = r.bounded('key index', 0, s.keys - 1);
      const pairKey = r.pointBytes('pair key');
      const proof = decodeDleqProof(r.take(DLEQ_PROOF_LENGTH, 'proof'));
      return { kind: 'complaint', author, dealer, dealingHash, keyIndex, pairKey, proof };
    }
    case 'proposal': {
      const author = r.id('author');
      const attempt = r.bounded('attempt', 0, s.maxAttempts - 1);
      const range = proposalDealerRange(s);
      const count = r.bounded('dealing count', range.min, range.max);
      const dealings: Uint8Array[] = [];
      for (let i = 0; i < count; i++) dealings.push(r.blob('dealing', dealingMaxSize(s)));
      return { kind: 'proposal', author, attempt, dealings };
    }
    case 'echo':
      return { kind: 'echo', author: r.id('author'), attempt: r.bounded('attempt', 0, s.maxAttempts - 1), proposalHash: r.take(HASH_LENGTH, 'proposal hash') };
    case 'vote': {
      const fromId = r.id('from id', true);
      const toId = r.id('to id', true);
      if (fromId === 0 && toId === 0) throw new TkmsError('bad_request', 'ceremony vote: names no voter');
      return { kind: 'vote', fromId, toId, digest: r.take(HASH_LENGTH, 'handover digest') };
    }
    case 'certificate': {
      const role = r.u8('author role');
      if (role !== 0 && role !== 1) throw new TkmsError('bad_request', 'ceremony certificate: author role must be 0 or 1');
      const author = r.id('author');
      const proposal = r.blob('proposal', proposalMaxSize(s));
      const count = r.bounded('vote count', 1, maxVoters(s));
      const votes: Uint8Array[] = [];
      for (let i = 0; i < count; i++) votes.push(r.blob('vote', VOTE_SIZE));
      return { kind: 'certificate', authorRole: role, author, proposal, votes };
    }
  }
}

const KIND_BY_TYPE: Record<CeremonyFamily, Map<number, CeremonyMessageKind>> = {
  reshare: new Map(Object.entries(CEREMONY_MESSAGE_TYPES).map(([k, v]) => [v as number, k as CeremonyMessageKind])),
  dkg: new Map(Object.entries(DKG_CEREMONY_MESSAGE_TYPES).map(([k, v]) => [v, k as CeremonyMessageKind])),
};

/** Strict decode of one message; checks structure only (signatures and membership: the ceremony). */
export function decodeCeremonyMessage(raw: unknown, shape: CeremonyShape, cache?: PointCache): DecodedCeremonyMessage {
  if (!(raw instanceof Uint8Array)) throw new TkmsError('bad_request', 'ceremony message must be bytes');
  if (raw.length < 2 + SIGNATURE_LENGTH) throw new TkmsError('bad_length', 'ceremony message: too short');
  if (raw[0] !== CEREMONY_WIRE_VERSION) throw new TkmsError('bad_request', `ceremony message: version ${raw[0]} is not ${CEREMONY_WIRE_VERSION}`);
  const kind = KIND_BY_TYPE[familyOf(shape)].get(raw[1]!);
  if (kind === undefined) throw new TkmsError('bad_request', `ceremony message: type ${raw[1]} is not a ${familyOf(shape)} message`);
  const max = maxMessageSize(shape, kind);
  if (raw.length > max) throw new TkmsError('bad_length', `ceremony ${kind}: ${raw.length} bytes exceed ${max}`);
  const r = new Reader(raw.subarray(0, raw.length - SIGNATURE_LENGTH), `ceremony ${kind}`, cache);
  r.u8('version');
  r.u8('type');
  const body = decodeBody(r, kind, shape);
  r.end();
  const signed = raw.slice(0, raw.length - SIGNATURE_LENGTH);
  const signature = raw.slice(raw.length - SIGNATURE_LENGTH);
  return { body, signed, signature, raw, hash: messageSha256(raw) };
}
