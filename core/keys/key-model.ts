import { KEY_ID_PATTERN } from '../identifiers.ts';
import { TkmsError } from '../errors.ts';

/**
 * A managed key as every node and the gateway hold it: a pure function of the signed changes
 * applied to it in sequence order (core/keys/key-apply.ts), so every honest party that applied the
 * same changes holds the same object. Time enters only through the changes' own signed times and
 * the clock a caller passes to the `…At` readers below, never through when a change arrived.
 */

/**
 * ECC_SECG_P256K1 serves ENCRYPT_DECRYPT (ECIES) and SIGN_VERIFY (BIP340 Schnorr, Taproot key
 * path, FROST); ECC_NIST_EDWARDS25519 (AWS's name) serves SIGN_VERIFY only (Ed25519, FROST RFC 9591).
 */
export const KEY_SPECS = ['ECC_SECG_P256K1', 'ECC_NIST_EDWARDS25519'] as const;
export type KeySpec = (typeof KEY_SPECS)[number];
export const KEY_USAGES = ['ENCRYPT_DECRYPT', 'SIGN_VERIFY'] as const;
export type KeyUsage = (typeof KEY_USAGES)[number];

/** What the admins set. Destroyed is not among them: a key is destroyed when its deletion date passes. */
export type KeyStoredState = 'Enabled' | 'Disabled' | 'PendingDeletion';
export type KeyState = KeyStoredState | 'Destroyed';
export const KEY_STATES: readonly KeyState[] = ['Enabled', 'Disabled', 'PendingDeletion', 'Destroyed'];

/** A key's material: its own DKG per version, or derived from a root key's public key and a path (no ceremony). */
export type KeyOrigin = { type: 'dkg' } | { type: 'derived'; root: string; path: string };

export interface KeyVersion {
  version: number;
  /** Unix seconds: the signed time of the change that made it (or its scheduled time, for automatic rotation). */
  createdAt: number;
  /** Set while this version alone is scheduled for deletion. */
  deletionDate: number | null;
}

export interface ManagedKey {
  keyId: string;
  spec: KeySpec;
  usage: KeyUsage;
  origin: KeyOrigin;
  description: string;
  /** Sorted, unique. */
  aliases: string[];
  /** Keys sorted. */
  tags: Record<string, string>;
  /** Lower-case 0x addresses, sorted, unique: who may sign this key's changes. */
  admins: string[];
  /** The purpose-bound policy, as parsed JSON (core/keys/policy.ts); {} allows everything the ACL allows. */
  policy: Record<string, unknown>;
  /** Automatic rotation: a new version every this many days after the newest one; null = on demand only. */
  rotationPeriodDays: number | null;
  /** When the rotation period was last set (create or setRotation): automatic versions are never dated before it. */
  rotationStartedAt: number;
  state: KeyStoredState;
  /** When state is PendingDeletion: the unix time from which the whole key is destroyed. */
  deletionDate: number | null;
  /** The versions made by changes (automatic ones are added by keyVersionsAt). */
  versions: KeyVersion[];
  createdAt: number;
  creator: string;
  /** The signed time (issuedAt) of the last change applied: a later change may not be dated much before it. */
  updatedAt: number;
  /** The sequence number of the last change applied, and that change's digest (0x hex). */
  sequence: number;
  head: string;
}

/** AWS KMS's limits where AWS has one; ours elsewhere. */
export const KEY_LIMITS = {
  tagsPerKey: 50,
  tagKeyLength: 128,
  tagValueLength: 256,
  aliasesPerKey: 50,
  aliasLength: 256,
  descriptionLength: 8192,
  adminsPerKey: 10,
  /** Version numbers are part of material key ids (`<keyId>.v<n>`). */
  maxVersions: 1000,
  minDeletionWindowDays: 7,
  maxDeletionWindowDays: 30,
  defaultDeletionWindowDays: 30,
  minRotationPeriodDays: 90,
  maxRotationPeriodDays: 2560,
  /** The JSON body of one change, in UTF-8 bytes. */
  changeBodyBytes: 32 * 1024,
  /** How far a change may be dated before the key's last change (admins' clocks differ). */
  changeClockSkewSeconds: 300,
  /** A managed key id leaves room for `.v1000` in its material ids (64 characters at most). */
  keyIdLength: 58,
} as const;

export const SECONDS_PER_DAY = 86_400;

/**
 * A managed key id is a key id (core/identifiers.ts) of at most 58 characters that does not end in
 * `.v<digits>`: that suffix names a version's material (materialKeyId).
 */
const VERSION_SUFFIX = /\.v([0-9]+)$/;
const KEY_ID = new RegExp(KEY_ID_PATTERN);

export function assertManagedKeyId(value: unknown): asserts value is string {
  if (typeof value !== 'string' || !KEY_ID.test(value) || value.length > KEY_LIMITS.keyIdLength || VERSION_SUFFIX.test(value)) {
    throw new TkmsError(
      'bad_key_id',
      `a managed key id must be 1-${KEY_LIMITS.keyIdLength} characters of a-z, 0-9, ".", "_" or "-", starting with a letter or digit, and must not end in ".v" and digits (that names a version)`,
    );
  }
}

/** The key id a version's material (its DKG, its handles) is known by: the key id for version 1, `<keyId>.v<n>` after. */
export function materialKeyId(keyId: string, version: number): string {
  return version === 1 ? keyId : `${keyId}.v${version}`;
}

/** The managed key id and version a material key id names; version 1 when it has no suffix. */
export function parseMaterialKeyId(materialId: string): { keyId: string; version: number } {
  const m = VERSION_SUFFIX.exec(materialId);
  if (m === null) return { keyId: materialId, version: 1 };
  const version = Number(m[1]);
  // ".v1" and ".v007" are never made by materialKeyId: such an id names no version of any key.
  if (!Number.isSafeInteger(version) || version < 2 || String(version) !== m[1]) return { keyId: materialId, version: 1 };
  return { keyId: materialId.slice(0, m.index), version };
}

/** The key's state at `nowSeconds`: PendingDeletion turns into Destroyed at its deletion date. */
export function keyStateAt(key: ManagedKey, nowSeconds: number): KeyState {
  if (key.state === 'PendingDeletion' && key.deletionDate !== null && nowSeconds >= key.deletionDate) return 'Destroyed';
  return key.state;
}

/**
 * Every version at `nowSeconds`, the automatic ones included: with a rotation period, a version is
 * due every period after the newest, up to now. Pure in the key and the time, so every node counts
 * the same versions without a change being signed for each.
 */
export function keyVersionsAt(key: ManagedKey, nowSeconds: number): KeyVersion[] {
  const versions = key.versions.slice();
  if (key.rotationPeriodDays === null || keyStateAt(key, nowSeconds) === 'Destroyed') return versions;
  const period = key.rotationPeriodDays * SECONDS_PER_DAY;
  let last = versions[versions.length - 1]!;
  // A period set on a key whose newest version is old counts from when it was set, not from that version.
  let from = Math.max(last.createdAt, key.rotationStartedAt);
  while (from + period <= nowSeconds && versions.length < KEY_LIMITS.maxVersions) {
    last = { version: last.version + 1, createdAt: from + period, deletionDate: null };
    versions.push(last);
    from = last.createdAt;
  }
  return versions;
}

export type VersionState = 'Enabled' | 'PendingDeletion' | 'Destroyed';

/** A version's own state (the key's state is checked apart): scheduled versions turn Destroyed at their date. */
export function versionStateAt(version: KeyVersion, nowSeconds: number): VersionState {
  if (version.deletionDate === null) return 'Enabled';
  return nowSeconds >= version.deletionDate ? 'Destroyed' : 'PendingDeletion';
}

/** The version new encryptions use: the newest one not scheduled for deletion. */
export function currentVersionAt(key: ManagedKey, nowSeconds: number): KeyVersion | undefined {
  const versions = keyVersionsAt(key, nowSeconds);
  for (let i = versions.length - 1; i >= 0; i--) if (versions[i]!.deletionDate === null) return versions[i];
  return undefined;
}

/**
 * Throws the refusal for using `version` of the key at `nowSeconds` (key_disabled,
 * key_pending_deletion, key_destroyed, unknown_key for a version that does not exist), naming the
 * key and its state; returns when the key and the version are usable.
 */
export function requireUsable(key: ManagedKey, version: number, nowSeconds: number): void {
  const state = keyStateAt(key, nowSeconds);
  if (state === 'Disabled') throw new TkmsError('key_disabled', `key ${key.keyId} is Disabled: an admin must enable it before it can be used`);
  if (state === 'PendingDeletion') {
    throw new TkmsError('key_pending_deletion', `key ${key.keyId} is PendingDeletion: it will be destroyed at ${isoTime(key.deletionDate!)} unless an admin cancels the deletion`);
  }
  if (state === 'Destroyed') throw new TkmsError('key_destroyed', `key ${key.keyId} was destroyed at ${isoTime(key.deletionDate!)}`);
  const v = keyVersionsAt(key, nowSeconds).find((x) => x.version === version);
  if (v === undefined) throw new TkmsError('unknown_key', `key ${key.keyId} has no version ${version}`);
  const vs = versionStateAt(v, nowSeconds);
  if (vs === 'PendingDeletion') {
    throw new TkmsError('key_pending_deletion', `version ${version} of key ${key.keyId} is PendingDeletion: it will be destroyed at ${isoTime(v.deletionDate!)} unless an admin cancels the deletion`);
  }
  if (vs === 'Destroyed') throw new TkmsError('key_destroyed', `version ${version} of key ${key.keyId} was destroyed at ${isoTime(v.deletionDate!)}`);
}

/**
 * A key serves its usage only: a signing key's share never answers a partial decryption (that would
 * make every member a Diffie-Hellman oracle on it), and an encryption key never signs.
 */
export function requireUsage(key: ManagedKey, usage: KeyUsage): void {
  if (key.usage !== usage) throw new TkmsError('key_usage_mismatch', `key ${key.keyId} is a ${key.usage} key: it does not serve ${usage === 'ENCRYPT_DECRYPT' ? 'encryption or decryption' : 'signing'}`);
}

export function isoTime(unixSeconds: number): string {
  return new Date(unixSeconds * 1000).toISOString().replace('.000Z', 'Z');
}
