import { concatBytes } from '../bytes.ts';
import { COMPRESSED_POINT_LENGTH, decodePoint, decodeScalar, encodeScalar, SCALAR_LENGTH, type Point } from '../curve.ts';
import { decodeDleqProof, DLEQ_PROOF_LENGTH, encodeDleqProof, type DleqProof } from '../dleq.ts';
import { TkmsError } from '../errors.ts';
import { MAX_PARTICIPANT_ID } from '../shamir.ts';
import { ByteReader } from '../byte-reader.ts';

/**
 * Binary wire format of the DKG messages. Every message is
 * `version(1) ‖ type(1) ‖ body ‖ [u16 signature length ‖ signature]`; integers are big-endian,
 * member ids are u16. The decoder is strict: exact lengths, no trailing bytes, points and scalars
 * through the core decoders, counts bounded by the session's t and n before anything is parsed.
 * Decoding errors are always TkmsError.
 */
/**
 * 2: complaints carry an encryption key, justifications are sealed to it, verdicts (type 7).
 * 3: one encryption key per accused dealer, so a complainer's proven pair key can only ever open
 * that dealer's own answers (version 2's single key made the complainer a Diffie–Hellman oracle).
 */
export const DKG_WIRE_VERSION = 3;
export const MAX_SIGNATURE_LENGTH = 512;
/** FROST proof of knowledge: compressed R ‖ scalar z. */
export const PROOF_OF_KNOWLEDGE_LENGTH = COMPRESSED_POINT_LENGTH + SCALAR_LENGTH;
export const TRANSCRIPT_HASH_LENGTH = 32;

export const MESSAGE_TYPES = {
  round1: 1,
  echo: 2,
  share: 3,
  complaints: 4,
  justification: 5,
  confirm: 6,
  verdict: 7,
} as const;
export type DkgMessageKind = keyof typeof MESSAGE_TYPES;

export interface Round1Message {
  kind: 'round1';
  dealer: number;
  commitments: Point[];
  /** Compressed commitments, concatenated, exactly as signed. */
  commitmentBytes: Uint8Array[];
  proofOfKnowledge: Uint8Array;
  /** Everything the dealer signed (header and body). */
  signed: Uint8Array;
  signature: Uint8Array;
  /** The whole message; echoes and evidence carry it verbatim. */
  raw: Uint8Array;
}

export interface EchoMessage {
  kind: 'echo';
  echoer: number;
  /** Raw round-1 messages as the echoer received them; decoded lazily (most are byte-identical to ours). */
  packages: Uint8Array[];
  signed: Uint8Array;
  signature: Uint8Array;
}

export interface ShareMessage {
  kind: 'share';
  dealer: number;
  recipient: number;
  share: bigint;
  signed: Uint8Array;
  signature: Uint8Array;
  raw: Uint8Array;
}

export interface Complaint {
  accused: number;
  /**
   * Compressed E = e·G, fresh for this complaint alone: only the accused dealer's answer is sealed
   * to it, so the pair key the complainer may reveal about that answer opens nothing else.
   */
  encryptionKey: Uint8Array;
  /** The dealer-signed share message that does not match the dealer's commitments; absent = "no valid share received". */
  evidence: Uint8Array | undefined;
}

export interface ComplaintsMessage {
  kind: 'complaints';
  complainer: number;
  complaints: Complaint[];
  signed: Uint8Array;
  signature: Uint8Array;
}

/**
 * A dealer's answer to a complaint, published to all: the complainer's share sealed to the
 * encryption key of the complaint against this dealer (see sealed-share.ts), signed by the dealer.
 */
export interface JustificationMessage {
  kind: 'justification';
  dealer: number;
  recipient: number;
  /** The complainer's key E this was sealed to (compressed). */
  recipientKey: Uint8Array;
  /** The dealer's fresh ephemeral key D (compressed). */
  ephemeralKey: Uint8Array;
  /** share + pad mod n. */
  ciphertext: bigint;
  signed: Uint8Array;
  signature: Uint8Array;
  raw: Uint8Array;
}

/** What a complainer proves about a justification whose share does not match: the pair key and its DLEQ proof. */
export interface JustificationEvidence {
  /** The dealer-signed justification message, verbatim. */
  justification: Uint8Array;
  /** K = e·D (compressed). */
  pairKey: Uint8Array;
  proof: DleqProof;
}

/**
 * A complainer's verdict on the answer to its complaint, signed by it: without evidence, it
 * holds a valid share from the dealer (the complaint is withdrawn); with evidence, the dealer's
 * sealed share does not match its commitments, which anyone can check.
 */
export interface VerdictMessage {
  kind: 'verdict';
  complainer: number;
  dealer: number;
  evidence: JustificationEvidence | undefined;
  signed: Uint8Array;
  signature: Uint8Array;
  raw: Uint8Array;
}

export interface ConfirmMessage {
  kind: 'confirm';
  member: number;
  transcriptHash: Uint8Array;
  /** Signature over confirmMessage(digest of the member's whole public result), not over these bytes. */
  signature: Uint8Array;
}

export type DkgMessage = Round1Message | EchoMessage | ShareMessage | ComplaintsMessage | JustificationMessage | ConfirmMessage | VerdictMessage;

/** Bounds that a session knows before it parses anything. */
export interface DkgCodecLimits {
  /** Exact number of commitments in a round-1 package. */
  t: number;
  /** Committee size: bounds list lengths. */
  n: number;
}

class Reader extends ByteReader {
  memberId(field: string): number {
    const id = this.u16(field);
    if (id < 1 || id > MAX_PARTICIPANT_ID) throw new TkmsError('bad_request', `${this.what}: ${field} is not a valid member id`);
    return id;
  }
  count(field: string, max: number): number {
    const value = this.u16(field);
    if (value > max) throw new TkmsError('bad_length', `${this.what}: ${field} ${value} exceeds ${max}`);
    return value;
  }
  /** u32-length-prefixed bytes with an upper bound checked before copying. */
  blob(field: string, maxLength: number): Uint8Array {
    const length = this.u32(field);
    if (length > maxLength) throw new TkmsError('bad_length', `${this.what}: ${field} longer than ${maxLength} bytes`);
    return this.take(length, field);
  }
  /** A compressed point, validated (on the curve, not the identity), kept as bytes. */
  point(field: string): Uint8Array {
    const bytes = this.take(COMPRESSED_POINT_LENGTH, field);
    decodePoint(bytes, field);
    return bytes;
  }
  /** Bytes consumed so far: the signed prefix when a signature follows. */
  consumed(): Uint8Array {
    return this.bytes.slice(0, this.offset);
  }
  signature(): Uint8Array {
    const length = this.u16('signature length');
    if (length < 1 || length > MAX_SIGNATURE_LENGTH) throw new TkmsError('bad_length', `${this.what}: signature length must be 1..${MAX_SIGNATURE_LENGTH}`);
    return this.take(length, 'signature');
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
  u32(value: number): this {
    const out = new Uint8Array(4);
    new DataView(out.buffer).setUint32(0, value, false);
    this.parts.push(out);
    return this;
  }
  bytes(value: Uint8Array): this {
    this.parts.push(value);
    return this;
  }
  blob(value: Uint8Array): this {
    return this.u32(value.length).bytes(value);
  }
  done(): Uint8Array {
    return concatBytes(...this.parts);
  }
}

function header(kind: DkgMessageKind): Writer {
  return new Writer().u8(DKG_WIRE_VERSION).u8(MESSAGE_TYPES[kind]);
}

/** Appends a signature to the signed prefix. */
export function withSignature(signed: Uint8Array, signature: Uint8Array): Uint8Array {
  if (signature.length < 1 || signature.length > MAX_SIGNATURE_LENGTH) throw new TkmsError('bad_length', 'signature length out of range');
  return new Writer().bytes(signed).u16(signature.length).bytes(signature).done();
}

// ---- unsigned prefixes (what each signature covers, before the signing context is added) ----

export function round1Unsigned(dealer: number, commitmentBytes: readonly Uint8Array[], proofOfKnowledge: Uint8Array): Uint8Array {
  const w = header('round1').u16(dealer).u16(commitmentBytes.length);
  for (const c of commitmentBytes) {
    if (c.length !== COMPRESSED_POINT_LENGTH) throw new TkmsError('bad_length', 'commitment must be a compressed point');
    w.bytes(c);
  }
  if (proofOfKnowledge.length !== PROOF_OF_KNOWLEDGE_LENGTH) throw new TkmsError('bad_length', 'proof of knowledge has the wrong length');
  return w.bytes(proofOfKnowledge).done();
}

export function echoUnsigned(echoer: number, packages: readonly Uint8Array[]): Uint8Array {
  const w = header('echo').u16(echoer).u16(packages.length);
  for (const p of packages) w.blob(p);
  return w.done();
}

export function shareUnsigned(dealer: number, recipient: number, share: bigint): Uint8Array {
  return header('share').u16(dealer).u16(recipient).bytes(encodeScalar(share)).done();
}

function point(value: Uint8Array, what: string): Uint8Array {
  if (value.length !== COMPRESSED_POINT_LENGTH) throw new TkmsError('bad_length', `${what} must be a compressed point`);
  return value;
}

export function complaintsUnsigned(complainer: number, complaints: readonly Complaint[]): Uint8Array {
  const w = header('complaints').u16(complainer).u16(complaints.length);
  for (const c of complaints) {
    w.u16(c.accused).bytes(point(c.encryptionKey, 'encryption key'));
    if (c.evidence === undefined) w.u8(0);
    else w.u8(1).blob(c.evidence);
  }
  return w.done();
}

export function justificationUnsigned(dealer: number, recipient: number, recipientKey: Uint8Array, ephemeralKey: Uint8Array, ciphertext: bigint): Uint8Array {
  return header('justification')
    .u16(dealer)
    .u16(recipient)
    .bytes(point(recipientKey, 'recipient key'))
    .bytes(point(ephemeralKey, 'ephemeral key'))
    .bytes(encodeScalar(ciphertext))
    .done();
}

export function verdictUnsigned(complainer: number, dealer: number, evidence: JustificationEvidence | undefined): Uint8Array {
  const w = header('verdict').u16(complainer).u16(dealer);
  if (evidence === undefined) return w.u8(0).done();
  return w.u8(1).blob(evidence.justification).bytes(point(evidence.pairKey, 'pair key')).bytes(encodeDleqProof(evidence.proof)).done();
}

export function encodeConfirm(member: number, transcriptHash: Uint8Array, signature: Uint8Array): Uint8Array {
  if (transcriptHash.length !== TRANSCRIPT_HASH_LENGTH) throw new TkmsError('bad_length', 'transcript hash must be 32 bytes');
  return withSignature(header('confirm').u16(member).bytes(transcriptHash).done(), signature);
}

// ---- decoding ----

function assertLimits(limits: DkgCodecLimits): void {
  if (!Number.isSafeInteger(limits.t) || !Number.isSafeInteger(limits.n) || limits.t < 1 || limits.n < limits.t || limits.n > MAX_PARTICIPANT_ID) {
    throw new TkmsError('bad_request', 'codec limits must satisfy 1 ≤ t ≤ n ≤ 65535');
  }
}

/** Upper bound on one encoded round-1 message for the given t. */
export function maxRound1Length(t: number): number {
  return 2 + 2 + 2 + t * COMPRESSED_POINT_LENGTH + PROOF_OF_KNOWLEDGE_LENGTH + 2 + MAX_SIGNATURE_LENGTH;
}

const MAX_SHARE_MESSAGE_LENGTH = 2 + 2 + 2 + SCALAR_LENGTH + 2 + MAX_SIGNATURE_LENGTH;
const MAX_JUSTIFICATION_LENGTH = 2 + 2 + 2 + 2 * COMPRESSED_POINT_LENGTH + SCALAR_LENGTH + 2 + MAX_SIGNATURE_LENGTH;

/**
 * Decodes one DKG message. Throws TkmsError (never another exception) on anything malformed:
 * unknown version or type, truncation, trailing bytes, counts above the limits, invalid points
 * or non-canonical scalars.
 */
export function decodeDkgMessage(bytes: Uint8Array, limits: DkgCodecLimits): DkgMessage {
  assertLimits(limits);
  if (!(bytes instanceof Uint8Array)) throw new TkmsError('bad_request', 'DKG message must be bytes');
  const r = new Reader(bytes, 'DKG message');
  const version = r.u8('version');
  if (version !== DKG_WIRE_VERSION) throw new TkmsError('bad_request', `DKG message version ${version} is not supported`);
  const type = r.u8('type');
  switch (type) {
    case MESSAGE_TYPES.round1:
      return decodeRound1Body(r, bytes, limits);
    case MESSAGE_TYPES.echo: {
      const echoer = r.memberId('echoer');
      const count = r.count('package count', 2 * limits.n);
      const packages: Uint8Array[] = [];
      for (let i = 0; i < count; i++) packages.push(r.blob('package', maxRound1Length(limits.t)));
      const signed = r.consumed();
      const signature = r.signature();
      r.end();
      return { kind: 'echo', echoer, packages, signed, signature };
    }
    case MESSAGE_TYPES.share: {
      const dealer = r.memberId('dealer');
      const recipient = r.memberId('recipient');
      const share = decodeScalar(r.take(SCALAR_LENGTH, 'share'), { name: 'share' });
      const signed = r.consumed();
      const signature = r.signature();
      r.end();
      return { kind: 'share', dealer, recipient, share, signed, signature, raw: bytes.slice() };
    }
    case MESSAGE_TYPES.complaints: {
      const complainer = r.memberId('complainer');
      const count = r.count('complaint count', limits.n);
      const complaints: Complaint[] = [];
      for (let i = 0; i < count; i++) {
        const accused = r.memberId('accused');
        const encryptionKey = r.point('encryption key');
        const flag = r.u8('evidence flag');
        if (flag === 0) complaints.push({ accused, encryptionKey, evidence: undefined });
        else if (flag === 1) complaints.push({ accused, encryptionKey, evidence: r.blob('evidence', MAX_SHARE_MESSAGE_LENGTH) });
        else throw new TkmsError('bad_request', 'DKG message: evidence flag must be 0 or 1');
      }
      const signed = r.consumed();
      const signature = r.signature();
      r.end();
      return { kind: 'complaints', complainer, complaints, signed, signature };
    }
    case MESSAGE_TYPES.justification: {
      const dealer = r.memberId('dealer');
      const recipient = r.memberId('recipient');
      const recipientKey = r.point('recipient key');
      const ephemeralKey = r.point('ephemeral key');
      // Any residue: the pad makes zero as likely as any other value.
      const ciphertext = decodeScalar(r.take(SCALAR_LENGTH, 'ciphertext'), { name: 'ciphertext', allowZero: true });
      const signed = r.consumed();
      const signature = r.signature();
      r.end();
      return { kind: 'justification', dealer, recipient, recipientKey, ephemeralKey, ciphertext, signed, signature, raw: bytes.slice() };
    }
    case MESSAGE_TYPES.verdict: {
      const complainer = r.memberId('complainer');
      const dealer = r.memberId('dealer');
      const flag = r.u8('evidence flag');
      let evidence: JustificationEvidence | undefined;
      if (flag === 1) {
        const justification = r.blob('justification', MAX_JUSTIFICATION_LENGTH);
        const pairKey = r.point('pair key');
        const proof = decodeDleqProof(r.take(DLEQ_PROOF_LENGTH, 'proof'));
        evidence = { justification, pairKey, proof };
      } else if (flag !== 0) {
        throw new TkmsError('bad_request', 'DKG message: evidence flag must be 0 or 1');
      }
      const signed = r.consumed();
      const signature = r.signature();
      r.end();
      return { kind: 'verdict', complainer, dealer, evidence, signed, signature, raw: bytes.slice() };
    }
    case MESSAGE_TYPES.confirm: {
      const member = r.memberId('member');
      const transcriptHash = r.take(TRANSCRIPT_HASH_LENGTH, 'transcript hash');
      const signature = r.signature();
      r.end();
      return { kind: 'confirm', member, transcriptHash, signature };
    }
    default:
      throw new TkmsError('bad_request', `DKG message type ${type} is unknown`);
  }
}

function decodeRound1Body(r: Reader, bytes: Uint8Array, limits: DkgCodecLimits): Round1Message {
  const dealer = r.memberId('dealer');
  const count = r.u16('commitment count');
  if (count !== limits.t) throw new TkmsError('bad_length', `DKG message: expected ${limits.t} commitments, got ${count}`);
  const commitmentBytes: Uint8Array[] = [];
  const commitments: Point[] = [];
  for (let i = 0; i < count; i++) {
    const c = r.take(COMPRESSED_POINT_LENGTH, 'commitment');
    commitments.push(decodePoint(c, 'commitment'));
    commitmentBytes.push(c);
  }
  const proofOfKnowledge = r.take(PROOF_OF_KNOWLEDGE_LENGTH, 'proof of knowledge');
  decodePoint(proofOfKnowledge.subarray(0, COMPRESSED_POINT_LENGTH), 'proof commitment');
  decodeScalar(proofOfKnowledge.subarray(COMPRESSED_POINT_LENGTH), { name: 'proof response' });
  const signed = r.consumed();
  const signature = r.signature();
  r.end();
  return { kind: 'round1', dealer, commitments, commitmentBytes, proofOfKnowledge, signed, signature, raw: bytes.slice() };
}

/** Decodes a message that must be of one kind (an embedded package or piece of evidence). */
export function decodeDkgMessageOfKind<K extends DkgMessageKind>(bytes: Uint8Array, kind: K, limits: DkgCodecLimits): Extract<DkgMessage, { kind: K }> {
  const message = decodeDkgMessage(bytes, limits);
  if (message.kind !== kind) throw new TkmsError('bad_request', `expected a ${kind} message, got ${message.kind}`);
  return message as Extract<DkgMessage, { kind: K }>;
}
