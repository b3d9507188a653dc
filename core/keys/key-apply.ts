import { equalBytes, decodeHex, encodeHex } from '../bytes.ts';
import type { Deployment } from '../authz.ts';
import { TkmsError } from '../errors.ts';
import { decodeAddress } from '../identifiers.ts';
import { assertDerivationPath } from './derive.ts';
import { checkAlias, checkTags, keyChangeDigest, keyChangeSigner, parseKeyChangeBody, ZERO_DIGEST, type KeyAction, type KeyActionBody, type KeyChange } from './key-change.ts';
import { assertManagedKeyId, isoTime, keyStateAt, keyVersionsAt, KEY_LIMITS, materialKeyId, parseMaterialKeyId, SECONDS_PER_DAY, type KeySpec, type KeyUsage, type ManagedKey } from './key-model.ts';

/**
 * Applies one signed change to a managed key: the only way a key's state moves, on every node and
 * on the gateway alike. Pure: the result depends on the key, the change and the context, never on
 * when the change arrived, so every party that applies the same changes in the same order holds the
 * same key. Refusals, in the order checked:
 *   key_change_replayed      the sequence was applied already
 *   key_change_out_of_order  an earlier change is missing here
 *   key_change_conflict      it follows another change than the one applied at sequence − 1
 *   unauthorized             its signature is not its `admin`'s
 *   not_key_admin            that account is not an admin of the key (or may not create keys)
 *   bad_request / bad_key_id its body does not parse
 *   key_destroyed            the key was destroyed (nothing changes a destroyed key)
 *   key_change_invalid       the action does not fit the key's state
 *   alias_taken, key_limit_exceeded
 */
export interface KeyApplyContext {
  deployment: Deployment;
  /** Throws (not_key_admin, key_limit_exceeded) unless `creator` may create one more key. */
  mayCreate(creator: string): void;
  /** The key another key's alias points to, if any. */
  aliasHolder(alias: string): string | undefined;
  /** Whether a deletion window may be shorter than 7 days (test committees only; config keys.allowShortDeletionWindow). */
  allowShortDeletionWindow: boolean;
  /** Checks a policy and returns its stored form (core/keys/policy.ts); throws bad_request. */
  parsePolicy(policy: Record<string, unknown>): Record<string, unknown>;
  /** The key ids of the DKG material held here (core/keys/key-book.ts KeyBookOptions.materialIds). */
  materialIds?(): Iterable<string>;
}

export interface AppliedChange {
  key: ManagedKey;
  /** 0x hex of the change's EIP-712 digest: the key's new head. */
  digest: string;
  signer: string;
}

/** Where a change sits against the key's history, before any signature is checked. */
export function checkChangeOrder(prev: ManagedKey | undefined, change: Pick<KeyChange, 'keyId' | 'sequence' | 'previous' | 'action'>): void {
  const at = prev?.sequence ?? 0;
  if (change.sequence <= at) throw new TkmsError('key_change_replayed', `key ${change.keyId} already applied change ${change.sequence} (it is at change ${at})`);
  if (change.sequence > at + 1) {
    throw new TkmsError('key_change_out_of_order', `key ${change.keyId} is at change ${at} here; change ${change.sequence} comes after changes not received yet`);
  }
  const head = prev === undefined ? ZERO_DIGEST : decodeHex(prev.head, { name: 'head', length: 32 });
  if (!equalBytes(change.previous, head)) {
    throw new TkmsError('key_change_conflict', `change ${change.sequence} of key ${change.keyId} follows another change ${at} than the one applied here (${prev?.head ?? 'none'})`);
  }
  if ((change.sequence === 1) !== (change.action === 'create')) {
    throw new TkmsError('key_change_invalid', change.sequence === 1 ? `change 1 of key ${change.keyId} must create it` : `key ${change.keyId} exists; create is only its change 1`);
  }
}

export function applyKeyChange(prev: ManagedKey | undefined, change: KeyChange, ctx: KeyApplyContext): AppliedChange {
  assertManagedKeyId(change.keyId);
  checkChangeOrder(prev, change);
  const signer = keyChangeSigner(change, ctx.deployment);
  const digest = encodeHex(keyChangeDigest(change, ctx.deployment));
  if (prev === undefined) {
    ctx.mayCreate(signer);
    requireNoMaterialOf(change.keyId, ctx);
    return { key: created(change, signer, digest, ctx), digest, signer };
  }
  if (!prev.admins.includes(signer)) throw new TkmsError('not_key_admin', `${signer} is not an admin of key ${prev.keyId}`);
  const body = parseKeyChangeBody(change.action, change.body);
  if (keyStateAt(prev, change.issuedAt) === 'Destroyed') throw new TkmsError('key_destroyed', `key ${prev.keyId} was destroyed at ${isoTime(prev.deletionDate!)}; it cannot change`);
  // A change dated well before the last one would move the start of a deletion window into the past.
  if (change.issuedAt < prev.updatedAt - KEY_LIMITS.changeClockSkewSeconds) {
    throw new TkmsError('key_change_invalid', `change ${change.sequence} of key ${prev.keyId} is dated ${isoTime(change.issuedAt)}, before its last change (${isoTime(prev.updatedAt)}): sign it again with the current time`);
  }
  // A copy with the versions automatic rotation made by the time the change was signed, so a change
  // that names a version (or rotates again) sees them.
  const key: ManagedKey = { ...prev, aliases: prev.aliases.slice(), tags: { ...prev.tags }, versions: keyVersionsAt(prev, change.issuedAt).map((v) => ({ ...v })), updatedAt: Math.max(prev.updatedAt, change.issuedAt), sequence: change.sequence, head: digest };
  APPLY[change.action as Exclude<KeyAction, 'create'>](key, body as never, change, ctx);
  return { key, digest, signer };
}

function created(change: KeyChange, signer: string, digest: string, ctx: KeyApplyContext): ManagedKey {
  const body = parseKeyChangeBody('create', change.body);
  const admins = uniqueAddresses(body.admins, change.keyId);
  if (body.origin.type === 'derived') assertDerivationPath(body.origin.path);
  const spec: KeySpec = (body.spec as KeySpec | undefined) ?? 'ECC_SECG_P256K1';
  const usage: KeyUsage = (body.usage as KeyUsage | undefined) ?? (spec === 'ECC_NIST_EDWARDS25519' ? 'SIGN_VERIFY' : 'ENCRYPT_DECRYPT');
  assertSpecServesUsage(spec, usage, body.origin.type, change.keyId);
  const key: ManagedKey = {
    keyId: change.keyId,
    spec,
    usage,
    origin: body.origin.type === 'dkg' ? { type: 'dkg' } : { type: 'derived', root: body.origin.root, path: body.origin.path },
    description: body.description ?? '',
    aliases: [],
    tags: {},
    admins,
    policy: ctx.parsePolicy((body.policy ?? {}) as Record<string, unknown>),
    rotationPeriodDays: body.rotationPeriodDays ?? null,
    rotationStartedAt: change.issuedAt,
    state: 'Enabled',
    deletionDate: null,
    versions: [{ version: 1, createdAt: change.issuedAt, deletionDate: null }],
    createdAt: change.issuedAt,
    creator: signer,
    updatedAt: change.issuedAt,
    sequence: 1,
    head: digest,
  };
  for (const alias of body.aliases ?? []) addAlias(key, alias, ctx);
  if (body.tags !== undefined) setTags(key, body.tags);
  return key;
}

/** Ed25519 has no ECIES here; a derived key is a decryption key (derive.ts tweaks secp256k1 ECIES keys only). */
function assertSpecServesUsage(spec: ManagedKey['spec'], usage: ManagedKey['usage'], origin: ManagedKey['origin']['type'], keyId: string): void {
  if (spec === 'ECC_NIST_EDWARDS25519' && usage !== 'SIGN_VERIFY') {
    throw new TkmsError('key_change_invalid', `key ${keyId}: spec ECC_NIST_EDWARDS25519 serves SIGN_VERIFY only`);
  }
  if (usage === 'SIGN_VERIFY' && origin !== 'dkg') {
    throw new TkmsError('key_change_invalid', `key ${keyId}: a signing key is made by its own DKG, not derived`);
  }
}

type Apply<A extends Exclude<KeyAction, 'create'>> = (key: ManagedKey, body: KeyActionBody<A>, change: KeyChange, ctx: KeyApplyContext) => void;

const APPLY: { [A in Exclude<KeyAction, 'create'>]: Apply<A> } = {
  updateDescription: (key, body) => {
    key.description = body.description;
  },
  createAlias: (key, body, _c, ctx) => addAlias(key, body.alias, ctx),
  renameAlias: (key, body, _c, ctx) => {
    removeAlias(key, body.from);
    addAlias(key, body.to, ctx);
  },
  deleteAlias: (key, body) => removeAlias(key, body.alias),
  tag: (key, body) => setTags(key, body.tags),
  untag: (key, body) => {
    for (const name of body.keys) delete key.tags[name];
  },
  enable: (key) => {
    if (key.state === 'PendingDeletion') invalid(key, 'is PendingDeletion: cancel the deletion, then enable it');
    key.state = 'Enabled';
  },
  disable: (key) => {
    if (key.state === 'PendingDeletion') invalid(key, 'is PendingDeletion: it is already unusable');
    key.state = 'Disabled';
  },
  scheduleDeletion: (key, body, change, ctx) => {
    const window = deletionWindowSeconds(key, body, ctx);
    if (body.version === undefined) {
      if (key.state === 'PendingDeletion') invalid(key, `is already scheduled for deletion at ${isoTime(key.deletionDate!)}`);
      key.state = 'PendingDeletion';
      key.deletionDate = change.issuedAt + window;
      return;
    }
    const v = versionOf(key, body.version);
    const newest = key.versions[key.versions.length - 1]!;
    if (v === newest) invalid(key, `cannot delete version ${v.version}, the one new encryptions use: rotate first`);
    if (v.deletionDate !== null) invalid(key, `version ${v.version} is already scheduled for deletion at ${isoTime(v.deletionDate)}`);
    v.deletionDate = change.issuedAt + window;
  },
  cancelDeletion: (key, body, change) => {
    if (body.version === undefined) {
      if (key.state !== 'PendingDeletion') invalid(key, 'is not scheduled for deletion');
      // As in AWS: a cancelled deletion leaves the key Disabled, for an admin to enable on purpose.
      key.state = 'Disabled';
      key.deletionDate = null;
      return;
    }
    const v = versionOf(key, body.version);
    if (v.deletionDate === null) invalid(key, `version ${v.version} is not scheduled for deletion`);
    if (change.issuedAt >= v.deletionDate) throw new TkmsError('key_destroyed', `version ${v.version} of key ${key.keyId} was destroyed at ${isoTime(v.deletionDate)}`);
    v.deletionDate = null;
  },
  rotate: (key, _b, change, ctx) => {
    if (key.state !== 'Enabled') invalid(key, `is ${key.state}: only an Enabled key rotates`);
    if (key.versions.length >= KEY_LIMITS.maxVersions) limit(`key ${key.keyId} has ${KEY_LIMITS.maxVersions} versions, the most a key may have`);
    const last = key.versions[key.versions.length - 1]!;
    requireNewMaterial(key.keyId, materialKeyId(key.keyId, last.version + 1), ctx);
    key.versions.push({ version: last.version + 1, createdAt: change.issuedAt, deletionDate: null });
  },
  setRotation: (key, body, change) => {
    key.rotationPeriodDays = body.rotationPeriodDays;
    key.rotationStartedAt = change.issuedAt;
  },
  putPolicy: (key, body, _c, ctx) => {
    key.policy = ctx.parsePolicy(body.policy as Record<string, unknown>);
  },
  updateAdmins: (key, body) => {
    key.admins = uniqueAddresses(body.admins, key.keyId);
  },
};

/** A managed key never takes over material made without it (an operator's DKG of `<keyId>` or `<keyId>.v<n>`). */
function requireNoMaterialOf(keyId: string, ctx: KeyApplyContext): void {
  for (const id of ctx.materialIds?.() ?? []) {
    if (parseMaterialKeyId(id).keyId === keyId) {
      throw new TkmsError('conflict', `key id ${id} already names a key made by a DKG outside the managed keys; key ${keyId} cannot take it over (choose another key id)`);
    }
  }
}

function requireNewMaterial(keyId: string, materialId: string, ctx: KeyApplyContext): void {
  for (const id of ctx.materialIds?.() ?? []) {
    if (id === materialId) throw new TkmsError('conflict', `key id ${materialId} already names a key made by a DKG outside the managed keys; key ${keyId} cannot rotate onto it`);
  }
}

function deletionWindowSeconds(key: ManagedKey, body: KeyActionBody<'scheduleDeletion'>, ctx: KeyApplyContext): number {
  if (body.pendingWindowSeconds !== undefined) {
    if (body.pendingWindowDays !== undefined) throw new TkmsError('bad_request', 'give pendingWindowDays or pendingWindowSeconds, not both');
    if (!ctx.allowShortDeletionWindow) {
      throw new TkmsError('key_change_invalid', `key ${key.keyId}: pendingWindowSeconds is for test committees only (keys.allowShortDeletionWindow); use pendingWindowDays (${KEY_LIMITS.minDeletionWindowDays}-${KEY_LIMITS.maxDeletionWindowDays})`);
    }
    return body.pendingWindowSeconds;
  }
  const days = body.pendingWindowDays ?? KEY_LIMITS.defaultDeletionWindowDays;
  if (days < KEY_LIMITS.minDeletionWindowDays && !ctx.allowShortDeletionWindow) {
    throw new TkmsError('key_change_invalid', `key ${key.keyId}: the deletion window must be ${KEY_LIMITS.minDeletionWindowDays}-${KEY_LIMITS.maxDeletionWindowDays} days, got ${days}`);
  }
  return days * SECONDS_PER_DAY;
}

function versionOf(key: ManagedKey, version: number) {
  const v = key.versions.find((x) => x.version === version);
  if (v === undefined) invalid(key, `has no version ${version} (it has 1-${key.versions.length})`);
  return v;
}

function addAlias(key: ManagedKey, alias: string, ctx: KeyApplyContext): void {
  checkAlias(alias);
  if (key.aliases.includes(alias)) invalid(key, `already has alias ${alias}`);
  const holder = ctx.aliasHolder(alias);
  if (holder !== undefined && holder !== key.keyId) throw new TkmsError('alias_taken', `alias ${alias} already names key ${holder}`);
  if (key.aliases.length >= KEY_LIMITS.aliasesPerKey) limit(`key ${key.keyId} has ${KEY_LIMITS.aliasesPerKey} aliases, the most a key may have`);
  key.aliases.push(alias);
  key.aliases.sort();
}

function removeAlias(key: ManagedKey, alias: string): void {
  const i = key.aliases.indexOf(alias);
  if (i < 0) invalid(key, `has no alias ${alias}`);
  key.aliases.splice(i, 1);
}

function setTags(key: ManagedKey, tags: Record<string, string>): void {
  checkTags(tags);
  const merged = { ...key.tags, ...tags };
  const names = Object.keys(merged).sort();
  if (names.length > KEY_LIMITS.tagsPerKey) limit(`key ${key.keyId} would have ${names.length} tags; at most ${KEY_LIMITS.tagsPerKey}`);
  key.tags = Object.fromEntries(names.map((n) => [n, merged[n]!]));
}

function uniqueAddresses(list: readonly string[], keyId: string): string[] {
  const out = [...new Set(list.map((a, i) => encodeHex(decodeAddress(a, `admins[${i}]`))))].sort();
  if (out.length !== list.length) throw new TkmsError('bad_request', `key ${keyId}: an admin is listed twice`);
  return out;
}

function invalid(key: ManagedKey, what: string): never {
  throw new TkmsError('key_change_invalid', `key ${key.keyId} ${what}`);
}

function limit(message: string): never {
  throw new TkmsError('key_limit_exceeded', message);
}
