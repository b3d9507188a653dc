import { KEY_LIMITS } from '../core/keys/key-model.ts';
import { decodeDestructionReceipt, destroyedByReceipts, MAX_RECEIPTS_PER_TALLY, type DestructionReceipt } from '../core/keys/destruction-receipt.ts';
import { isoTime, KEY_STATES, materialKeyId, type KeyOrigin, type KeyState, type VersionState } from '../core/keys/key-model.ts';
import { TkmsError } from '../core/index.ts';

/**
 * A managed key as the gateway shows it (GET /v1/keys/{keyIdOrAlias} `managed`): the gateway's
 * word, state computed at the gateway's clock. The client never takes a public key from it; it
 * uses the view to refuse early and to pick the version to encrypt to, the nodes enforce the rest.
 */
export interface KeyVersionView {
  version: number;
  materialKeyId: string;
  createdAt: number;
  deletionDate: number | null;
  state: VersionState;
  /** 33-byte hex, when the gateway knows it; shown, never used to encrypt. */
  publicKey?: string;
  /** A SIGN_VERIFY key's public key as verifiers take it (the gateway's word; client.sign computes it from the verified key). */
  signing?: SigningKeyView;
}

export interface SigningKeyView {
  algorithm: string;
  /** 0x, 32 bytes: Ed25519 raw, or the BIP340 x-only Taproot output key. */
  publicKey: string;
  /** 0x DER SubjectPublicKeyInfo. */
  spki: string;
  /** BIP340 keys: the 0x x-only internal key. */
  taprootInternalKey?: string;
}

export interface KeyView {
  keyId: string;
  spec: string;
  usage: string;
  origin: KeyOrigin;
  description: string;
  aliases: string[];
  tags: Record<string, string>;
  admins: string[];
  policy: Record<string, unknown>;
  rotationPeriodDays: number | null;
  state: KeyState;
  deletionDate: number | null;
  versions: KeyVersionView[];
  currentVersion: number | null;
  createdAt: number;
  creator: string;
  sequence: number;
  head: string;
  /** For a DKG key with destroyed versions (describe only): the members' destruction receipts, per version. */
  destruction?: VersionDestruction[];
}

export interface VersionDestruction {
  version: number;
  materialKeyId: string;
  receipts: DestructionReceipt[];
  /** Members whose receipt verified: checked by this client against the pinned committee when `verified`, else the gateway's word. */
  confirmedBy: number[];
  needed: number;
  /** confirmedBy.length ≥ needed: fewer than t shares of the version remain, if those members told the truth. */
  destroyed: boolean;
  verified: boolean;
}

/** The gateway's answer to a key change (POST /v1/keys, POST /v1/keys/{keyId}/changes). */
export interface KeyChangeResult {
  key: KeyView;
  acknowledgedBy: number[];
  needed: number;
  /** At least n − t + 1 members applied it: every node now enforces it. */
  effective: boolean;
  failures: { nodeId: number; code: string; message: string }[];
}

const VERSION_STATES: readonly VersionState[] = ['Enabled', 'PendingDeletion', 'Destroyed'];
const HEAD = /^0x[0-9a-f]{64}$/i;

function bad(what: string): TkmsError {
  return new TkmsError('bad_request', `gateway answered a managed key with ${what}`);
}

const isUint = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isUintOrNull = (v: unknown): v is number | null => v === null || isUint(v);

function parseOrigin(value: unknown): KeyOrigin {
  const o = value as { type?: unknown; root?: unknown; path?: unknown } | null;
  if (o?.type === 'dkg') return { type: 'dkg' };
  if (o?.type === 'derived' && typeof o.root === 'string' && typeof o.path === 'string') return { type: 'derived', root: o.root, path: o.path };
  throw bad('an origin that is neither dkg nor derived');
}

function parseVersion(value: unknown, i: number, keyId: string): KeyVersionView {
  const v = value as Partial<Record<keyof KeyVersionView, unknown>> | null;
  if (v === null || typeof v !== 'object' || !isUint(v.version) || v.version < 1 || !isUint(v.createdAt) || !isUintOrNull(v.deletionDate)) throw bad(`an invalid versions[${i}]`);
  if (!VERSION_STATES.includes(v.state as VersionState)) throw bad(`versions[${i}] in no known state`);
  return {
    version: v.version,
    // Computed here, not taken from the answer: it is what handles name.
    materialKeyId: materialKeyId(keyId, v.version),
    createdAt: v.createdAt,
    deletionDate: v.deletionDate,
    state: v.state as VersionState,
    ...(typeof v.publicKey === 'string' ? { publicKey: v.publicKey } : {}),
    ...(isSigningView(v.signing) ? { signing: v.signing } : {}),
  };
}

const HEX32 = /^0x[0-9a-f]{64}$/;
function isSigningView(value: unknown): value is SigningKeyView {
  const s = value as Partial<Record<keyof SigningKeyView, unknown>> | null;
  return (
    s !== null &&
    typeof s === 'object' &&
    typeof s.algorithm === 'string' &&
    typeof s.publicKey === 'string' &&
    HEX32.test(s.publicKey) &&
    typeof s.spki === 'string' &&
    /^0x([0-9a-f]{2})+$/.test(s.spki) &&
    (s.taprootInternalKey === undefined || (typeof s.taprootInternalKey === 'string' && HEX32.test(s.taprootInternalKey)))
  );
}

/** Checks the shape of a KeyView from the gateway (what the client reads from it), so a bad answer fails in words. */
export function parseKeyView(value: unknown): KeyView {
  const v = value as Record<string, unknown> | null;
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw bad('no object');
  if (typeof v.keyId !== 'string' || v.keyId === '') throw bad('no keyId');
  if (!KEY_STATES.includes(v.state as KeyState)) throw bad('no known state');
  if (!isUintOrNull(v.deletionDate) || !isUintOrNull(v.currentVersion) || !isUint(v.sequence) || !isUint(v.createdAt)) throw bad('invalid numbers');
  if (typeof v.head !== 'string' || !HEAD.test(v.head)) throw bad('an invalid head');
  if (!Array.isArray(v.versions)) throw bad('no versions');
  const strings = (x: unknown): x is string[] => Array.isArray(x) && x.every((s) => typeof s === 'string');
  if (!strings(v.aliases) || !strings(v.admins)) throw bad('invalid aliases or admins');
  const tags = v.tags as Record<string, unknown> | null;
  if (tags === null || typeof tags !== 'object' || Array.isArray(tags) || !Object.values(tags).every((t) => typeof t === 'string')) throw bad('invalid tags');
  const policy = v.policy as Record<string, unknown> | null;
  if (policy === null || typeof policy !== 'object' || Array.isArray(policy)) throw bad('an invalid policy');
  const keyId = v.keyId;
  return {
    keyId,
    spec: String(v.spec ?? ''),
    usage: String(v.usage ?? ''),
    origin: parseOrigin(v.origin),
    description: typeof v.description === 'string' ? v.description : '',
    aliases: v.aliases,
    tags: tags as Record<string, string>,
    admins: v.admins,
    policy,
    rotationPeriodDays: isUint(v.rotationPeriodDays) ? v.rotationPeriodDays : null,
    state: v.state as KeyState,
    deletionDate: v.deletionDate,
    versions: v.versions.map((x, i) => parseVersion(x, i, keyId)),
    currentVersion: v.currentVersion,
    createdAt: v.createdAt,
    creator: typeof v.creator === 'string' ? v.creator : '',
    sequence: v.sequence,
    head: v.head.toLowerCase(),
    ...(v.destruction === undefined ? {} : { destruction: parseDestruction(v.destruction) }),
  };
}

function parseDestruction(value: unknown): VersionDestruction[] {
  if (!Array.isArray(value) || value.length > KEY_LIMITS.maxVersions) throw bad('an invalid destruction list');
  return value.map((x) => {
    const d = x as Record<string, unknown> | null;
    if (d === null || typeof d !== 'object' || !isUint(d.version) || typeof d.materialKeyId !== 'string' || !isUint(d.needed) || typeof d.destroyed !== 'boolean') throw bad('an invalid destruction entry');
    if (!Array.isArray(d.receipts) || d.receipts.length > MAX_RECEIPTS_PER_TALLY || !Array.isArray(d.confirmedBy) || !d.confirmedBy.every(isUint)) throw bad('invalid destruction receipts');
    return { version: d.version, materialKeyId: d.materialKeyId, receipts: d.receipts.map(decodeDestructionReceipt), confirmedBy: d.confirmedBy as number[], needed: d.needed, destroyed: d.destroyed, verified: false };
  });
}

/**
 * Recounts each version's receipts against the pinned committee's member keys: the gateway's count
 * is replaced by what this client verified itself.
 */
export function verifyDestruction(view: KeyView, committee: { committeeId: string; t: number; memberKeys: ReadonlyMap<number, Uint8Array> }): KeyView {
  if (view.destruction === undefined) return view;
  const n = committee.memberKeys.size;
  const destruction = view.destruction.map((d) => {
    const tally = destroyedByReceipts(d.receipts, { n, t: committee.t, committeeId: committee.committeeId, memberPublicKeyOf: (id) => committee.memberKeys.get(id), keyId: view.keyId, version: d.version });
    return { ...d, confirmedBy: tally.valid, needed: n - committee.t + 1, destroyed: tally.destroyed, verified: true };
  });
  return { ...view, destruction };
}

export function parseKeyChangeResult(value: unknown): KeyChangeResult {
  const v = value as Record<string, unknown> | null;
  if (v === null || typeof v !== 'object') throw new TkmsError('bad_request', 'gateway answered a key change with no object');
  const acknowledgedBy = Array.isArray(v.acknowledgedBy) ? v.acknowledgedBy.filter(isUint) : [];
  const failures = Array.isArray(v.failures) ? (v.failures as KeyChangeResult['failures']) : [];
  if (typeof v.effective !== 'boolean' || !isUint(v.needed)) throw new TkmsError('bad_request', 'gateway answered a key change without effective and needed');
  return { key: parseKeyView(v.key), acknowledgedBy, needed: v.needed, effective: v.effective, failures };
}

/** The version encryptions use, refused (key_disabled, key_pending_deletion, key_destroyed) unless the key and it are usable. */
export function usableVersion(view: KeyView, nowSeconds: number): KeyVersionView {
  let state = view.state;
  // The gateway's clock may lag ours: a deletion date passed here is passed.
  if (state === 'PendingDeletion' && view.deletionDate !== null && nowSeconds >= view.deletionDate) state = 'Destroyed';
  const when = view.deletionDate === null ? '' : ` at ${isoTime(view.deletionDate)}`;
  if (state === 'Disabled') throw new TkmsError('key_disabled', `key ${view.keyId} is Disabled: an admin must enable it before it can be used`);
  if (state === 'PendingDeletion') throw new TkmsError('key_pending_deletion', `key ${view.keyId} is PendingDeletion: it will be destroyed${when} unless an admin cancels the deletion`);
  if (state === 'Destroyed') throw new TkmsError('key_destroyed', `key ${view.keyId} was destroyed${when}`);
  const current = view.versions.find((v) => v.version === view.currentVersion);
  if (current === undefined) throw new TkmsError('key_destroyed', `key ${view.keyId} has no version left to encrypt to: every version is scheduled for deletion or destroyed`);
  if (current.state !== 'Enabled') {
    throw new TkmsError(current.state === 'Destroyed' ? 'key_destroyed' : 'key_pending_deletion', `version ${current.version} of key ${view.keyId} is ${current.state}`);
  }
  return current;
}
