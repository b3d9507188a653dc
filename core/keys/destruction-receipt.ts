import { sha256 } from '@noble/hashes/sha2.js';
import { String as StringType } from 'typebox/type';
import { lengthPrefixed, utf8ToBytes } from '../bytes.ts';
import { COMMITTEE_ID_PATTERN } from '../committee.ts';
import { verifyMemberSignature } from '../dkg/member-signatures.ts';
import { TkmsError } from '../errors.ts';
import { keyIdBytes } from '../identifiers.ts';
import { hexBytesField, integerField, keyIdField, messageCodec, unixSecondsField, type DecodedFields, type JsonFields, type WireField } from '../schema.ts';

/**
 * A node's signed word that it erased its share of one version of a managed key (docs/key-deletion.md).
 * Signed with the member identity that signs DKG results (Ed25519 over DKG_SIGNATURE_DOMAIN ‖ message)
 * and checked only with verifyMemberSignature. The message is length-prefixed with its own domain
 * first: every other member-signed message starts with another domain (or, unprefixed, with ASCII
 * "tkms", which as a length is far beyond any domain), so a receipt never passes for a vote or a
 * DKG result, nor one of them for a receipt.
 */
const RECEIPT_DOMAIN = utf8ToBytes('tkms/keys/v1/destruction-receipt');
const ERASED_FILES_DOMAIN = utf8ToBytes('tkms/keys/v1/erased-files');

export const ERASED_DIGEST_LENGTH = 32;
export const MAX_KEY_VERSION = 0xffff_ffff;
export const MAX_MEMBER_ID = 65_535;
/** More receipts than this in one tally is not a committee's worth (≤ 256 members) of honest replies: refused before any is checked. */
export const MAX_RECEIPTS_PER_TALLY = 1024;

const COMMITTEE_ID = new RegExp(COMMITTEE_ID_PATTERN);

/** A committee id as the committee file spells it (core/committee.ts). */
function committeeIdField(): WireField<ReturnType<typeof StringType>, string> {
  return {
    schema: StringType({ pattern: COMMITTEE_ID_PATTERN, description: 'The committee whose member signed', examples: ['prod-eu-1'] }),
    eip712: undefined,
    kind: { kind: 'text', maxLength: 64 },
    explain: (value, name) => {
      if (typeof value !== 'string' || !COMMITTEE_ID.test(value)) throw new TkmsError('bad_request', `${name} must be a committee id (letters, digits, . _ -, at most 64)`);
    },
    decode: (value) => value,
    encode: (value) => value,
  };
}

export const destructionReceiptCodec = messageCodec(
  'destruction receipt',
  {
    keyId: keyIdField({ description: 'The managed key', example: 'payments' }),
    version: integerField(1, MAX_KEY_VERSION, { description: 'The key version whose material was erased', example: 1, refusal: `must be an integer in 1..${MAX_KEY_VERSION}` }),
    materialKeyId: keyIdField({ description: 'The key id of that version\'s DKG material (the keystore file name)', example: 'payments.v1' }),
    committeeId: committeeIdField(),
    nodeId: integerField(1, MAX_MEMBER_ID, { description: 'The signing member\'s id in the committee', example: 3, refusal: `must be an integer in 1..${MAX_MEMBER_ID}` }),
    erasedAt: unixSecondsField({ description: 'When the node erased its share (unix seconds)', example: 1_765_000_000 }),
    erasedDigest: hexBytesField(ERASED_DIGEST_LENGTH, {
      prefix: 'required',
      description: 'SHA-256 over the SHA-256 digests of the erased files, in file-name order',
      example: `0x${'ab'.repeat(32)}`,
    }),
    signature: hexBytesField(64, { prefix: 'required', description: 'The member\'s Ed25519 signature (verifyMemberSignature)', example: `0x${'cd'.repeat(64)}` }),
  },
  { description: 'A node\'s signed statement that it erased its share of one version of a key' },
);

export type DestructionReceipt = DecodedFields<typeof destructionReceiptCodec.fields>;
export type DestructionReceiptJson = JsonFields<typeof destructionReceiptCodec.fields>;
export type UnsignedDestructionReceipt = Omit<DestructionReceipt, 'signature'>;

/** Wire JSON → receipt; any refusal is a TkmsError (bad_request, bad_hex, bad_length, bad_key_id). */
export function decodeDestructionReceipt(value: unknown): DestructionReceipt {
  return destructionReceiptCodec.decode(value);
}

export function destructionReceiptToJson(receipt: DestructionReceipt): DestructionReceiptJson {
  return destructionReceiptCodec.encode(receipt);
}

function u32(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value);
  return out;
}

function u64(value: number): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(value));
  return out;
}

/** The bytes a member signs (before the member-signature domain is put in front). */
export function destructionReceiptMessage(r: UnsignedDestructionReceipt): Uint8Array {
  return lengthPrefixed(
    RECEIPT_DOMAIN,
    utf8ToBytes(r.committeeId),
    keyIdBytes(r.keyId),
    u32(r.version),
    keyIdBytes(r.materialKeyId),
    u32(r.nodeId),
    u64(r.erasedAt),
    r.erasedDigest,
  );
}

/**
 * The receipt's erasedDigest: SHA-256 over the digests of the erased files ordered by file name,
 * so every node computes it the same way from its erasure record. No files (a node that held no
 * share of the key) has a digest too: the receipt then says it holds nothing.
 */
export function erasedFilesDigest(files: readonly { name: string; sha256: Uint8Array }[]): Uint8Array {
  const sorted = [...files].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return sha256(lengthPrefixed(ERASED_FILES_DOMAIN, ...sorted.map((f) => f.sha256)));
}

/** Signs a receipt; the fields are checked as a decoder would check them, so no receipt is signed that others refuse to read. */
export function signDestructionReceipt(unsigned: UnsignedDestructionReceipt, identity: { sign(message: Uint8Array): Uint8Array }): DestructionReceipt {
  const checked = destructionReceiptCodec.decode(destructionReceiptCodec.encode({ ...unsigned, signature: new Uint8Array(64) }));
  return { ...checked, signature: identity.sign(destructionReceiptMessage(checked)) };
}

/** Whether `receipt` is signed by member `nodeId` of `committeeId` (keys from memberPublicKeyOf). Never throws for a decoded receipt. */
export function verifyDestructionReceipt(receipt: DestructionReceipt, memberPublicKeyOf: (nodeId: number) => Uint8Array | undefined, committeeId: string): boolean {
  if (receipt.committeeId !== committeeId) return false;
  const publicKey = memberPublicKeyOf(receipt.nodeId);
  if (publicKey === undefined) return false;
  let message: Uint8Array;
  try {
    message = destructionReceiptMessage(receipt);
  } catch {
    return false;
  }
  return verifyMemberSignature(publicKey, message, receipt.signature);
}

export interface DestructionTally {
  /** Members of the committee, and its threshold. */
  n: number;
  t: number;
  committeeId: string;
  memberPublicKeyOf: (nodeId: number) => Uint8Array | undefined;
  /** The key and version the receipts must name: a receipt of another version proves nothing about this one. */
  keyId: string;
  version: number;
}

/**
 * Which members sent a valid receipt for this key version (each counted once), and whether that is
 * n − t + 1 of them: then at most t − 1 members can still hold a share, too few to use the key,
 * if those members told the truth (docs/key-deletion.md).
 */
export function destroyedByReceipts(receipts: readonly DestructionReceipt[], tally: DestructionTally): { valid: number[]; destroyed: boolean } {
  const { n, t } = tally;
  if (!Number.isSafeInteger(n) || !Number.isSafeInteger(t) || t < 1 || n < t) throw new TkmsError('bad_request', 'a tally needs 1 ≤ t ≤ n');
  if (receipts.length > MAX_RECEIPTS_PER_TALLY) throw new TkmsError('payload_too_large', `at most ${MAX_RECEIPTS_PER_TALLY} receipts are tallied at once`);
  const valid = new Set<number>();
  for (const r of receipts) {
    // A member already counted costs no second signature check.
    if (valid.has(r.nodeId) || r.keyId !== tally.keyId || r.version !== tally.version) continue;
    if (verifyDestructionReceipt(r, tally.memberPublicKeyOf, tally.committeeId)) valid.add(r.nodeId);
  }
  const ids = [...valid].sort((a, b) => a - b);
  return { valid: ids, destroyed: ids.length >= n - t + 1 };
}
