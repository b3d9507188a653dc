import { equalBytes, utf8ToBytes } from '../bytes.ts';
import type { Deployment } from '../authz.ts';
import { TkmsError } from '../errors.ts';
import { applyKeyChange, type AppliedChange, type KeyApplyContext } from './key-apply.ts';
import { keyChangeDigest, type KeyChange } from './key-change.ts';
import { isoTime, keyStateAt, keyVersionsAt, parseMaterialKeyId, versionStateAt, type KeyState, type ManagedKey } from './key-model.ts';
import { parseKeyChangeBody } from './key-change.ts';

/**
 * Every managed key a party (node or gateway) holds, with the signed changes that made each one:
 * the in-memory half of the registry (storage/key-change-log.ts is the durable half). Changes are
 * checked on a copy first (`check`), made durable by the caller, then taken (`commit`), so a change
 * that did not reach the disk never shows in the book.
 */
export interface KeyCreationPolicy {
  /** Who may create keys: a list of accounts (lower-case 0x addresses), or anyone ('open'). */
  creators: 'open' | readonly string[];
  /** Keys one account may create (every key it created counts, destroyed ones too: the history stays). */
  perCreatorQuota: number;
}

export interface KeyBookOptions {
  deployment: Deployment;
  creation: KeyCreationPolicy;
  allowShortDeletionWindow: boolean;
  parsePolicy: KeyApplyContext['parsePolicy'];
  /** At most this many keys (a create beyond is refused with key_limit_exceeded). */
  maxKeys: number;
  /** At most this many changes per key. */
  maxChangesPerKey: number;
  /** Bytes of changes one key may hold (its history is kept whole, in memory and on disk). */
  maxBytesPerKey: number;
  /** Bytes of changes the registry holds in all: the bound on memory and on the log, whoever creates keys. */
  maxTotalBytes: number;
  /**
   * The key ids of the DKG material this party holds (results and shares): a create of a key id any
   * of them belongs to (`<keyId>` or `<keyId>.v<n>`), or a rotate to one of them, is refused
   * (conflict), so no creator can adopt a key an operator made (and then disable or delete it).
   * Absent: nothing is checked (a party that holds no material).
   */
  materialIds?: () => Iterable<string>;
}

export interface KeyFilter {
  tag?: { key: string; value?: string };
  alias?: string;
  state?: KeyState;
}

interface Entry {
  key: ManagedKey;
  changes: KeyChange[];
  /** changeBytes of its changes. */
  bytes: number;
}

/** What one change costs to hold: its body in UTF-8 and a bound on every other field as JSON. */
export function changeBytes(change: KeyChange): number {
  return utf8ToBytes(change.body).length + 512;
}

export class KeyBook {
  private readonly keys = new Map<string, Entry>();
  /**
   * alias → the keys claiming it, with the signed time of the change that gave it. Two keys' admins
   * may claim one alias at once, and members apply the two changes in different orders, so members
   * never refuse a claim; an alias claimed by two keys names neither, on every member alike, whatever
   * the order (`aliasHolder`). The gateway refuses a claim of an alias another key holds before sending it.
   */
  private readonly aliasClaims = new Map<string, Map<string, number>>();
  private readonly created = new Map<string, number>();
  /** Every change taken, in the order taken here: what sync pages walk. */
  private readonly order: KeyChange[] = [];
  private totalBytes = 0;
  private readonly ctx: KeyApplyContext;
  /** For replaying a log: what was taken under the settings of its day is taken again. */
  private readonly replayCtx: KeyApplyContext;

  constructor(private readonly options: KeyBookOptions) {
    this.ctx = {
      deployment: options.deployment,
      allowShortDeletionWindow: options.allowShortDeletionWindow,
      parsePolicy: options.parsePolicy,
      aliasHolder: () => undefined,
      mayCreate: (creator) => this.mayCreate(creator),
    };
    const { materialIds } = options;
    if (materialIds !== undefined) this.ctx.materialIds = materialIds;
    // A log read back holds the creates and rotates that made material: it exists now because of them.
    this.replayCtx = { ...this.ctx, allowShortDeletionWindow: true, mayCreate: () => undefined, materialIds: () => [] };
  }

  get size(): number {
    return this.keys.size;
  }

  get changeCount(): number {
    return this.order.length;
  }

  get(keyId: string): ManagedKey | undefined {
    return this.keys.get(keyId)?.key;
  }

  /** A key by id, or by alias (`alias/…`). */
  resolve(keyIdOrAlias: string): ManagedKey | undefined {
    const keyId = keyIdOrAlias.startsWith('alias/') ? this.aliasHolder(keyIdOrAlias) : keyIdOrAlias;
    return keyId === undefined ? undefined : this.get(keyId);
  }

  /**
   * The key an alias names, or undefined when none does or more than one key claims it: a clash names
   * no key (fails closed) until all but one of its claimants delete it, since a claim's signed time is
   * the signer's to choose and cannot decide who owns a name.
   */
  aliasHolder(alias: string): string | undefined {
    const claims = this.aliasClaims.get(alias);
    if (claims === undefined || claims.size !== 1) return undefined;
    return claims.keys().next().value;
  }

  /**
   * Refuses (key_destroyed) a change to a key that is destroyed at `nowSeconds` by this party's own
   * clock, or a cancelDeletion of a version that is: a change's signed time decides everything else,
   * but an admin could date a cancel before the deletion date and bring a destroyed key back. Callers
   * pass their clock minus the time a cancel signed before the date may take to arrive.
   */
  requireNotDestroyedAt(change: KeyChange, nowSeconds: number): void {
    const key = this.get(change.keyId);
    if (key === undefined) return;
    if (keyStateAt(key, nowSeconds) === 'Destroyed') throw new TkmsError('key_destroyed', `key ${key.keyId} was destroyed at ${isoTime(key.deletionDate!)}; it cannot change`);
    if (change.action !== 'cancelDeletion') return;
    let version: number | undefined;
    try {
      version = parseKeyChangeBody('cancelDeletion', change.body).version;
    } catch {
      return;
    }
    const v = version === undefined ? undefined : keyVersionsAt(key, nowSeconds).find((x) => x.version === version);
    if (v !== undefined && versionStateAt(v, nowSeconds) === 'Destroyed') throw new TkmsError('key_destroyed', `version ${v.version} of key ${key.keyId} was destroyed at ${isoTime(v.deletionDate!)}`);
  }

  /**
   * The gateway's check before it sends a change: an alias the change gives its key must not name
   * another key already (alias_taken). Members do not refuse on it (their order of applying changes
   * to two keys differs); they resolve a clash as `aliasHolder` says.
   */
  requireAliasesFree(change: KeyChange): void {
    const added = aliasesAdded(change);
    for (const alias of added) {
      const others = [...(this.aliasClaims.get(alias)?.keys() ?? [])].filter((k) => k !== change.keyId);
      if (others.length > 0) throw new TkmsError('alias_taken', `alias ${alias} already names key ${others.sort().join(', ')}`);
    }
  }

  /**
   * The managed key and version a material key id (a handle's key id, a DKG's key id) names, whether or
   * not the key has that version yet (requireUsable refuses one it does not have): every `<keyId>.v<n>`
   * of a managed key is that key's, never an unmanaged key served without its state and policy. (No
   * such unmanaged key exists: a create is refused while any is held, and the DKG gate refuses one after.)
   */
  byMaterial(materialId: string): { key: ManagedKey; version: number } | undefined {
    const { keyId, version } = parseMaterialKeyId(materialId);
    const key = this.get(keyId);
    return key === undefined ? undefined : { key, version };
  }

  /** Every key, in no order: for periodic walks that need no sorted listing. */
  *all(): IterableIterator<ManagedKey> {
    for (const entry of this.keys.values()) yield entry.key;
  }

  list(filter: KeyFilter, nowSeconds: number): ManagedKey[] {
    const out: ManagedKey[] = [];
    const aliasKey = filter.alias === undefined ? undefined : this.aliasHolder(filter.alias);
    for (const { key } of this.keys.values()) {
      if (filter.alias !== undefined && aliasKey !== key.keyId) continue;
      if (filter.state !== undefined && keyStateAt(key, nowSeconds) !== filter.state) continue;
      if (filter.tag !== undefined) {
        // Own tags only: `constructor` or `toString` would otherwise match every key.
        const value = Object.hasOwn(key.tags, filter.tag.key) ? key.tags[filter.tag.key] : undefined;
        if (value === undefined || (filter.tag.value !== undefined && value !== filter.tag.value)) continue;
      }
      out.push(key);
    }
    return out.sort((a, b) => (a.keyId < b.keyId ? -1 : a.keyId > b.keyId ? 1 : 0));
  }

  /** The key's changes after `afterSequence`, at most `limit`. */
  history(keyId: string, afterSequence: number, limit: number): KeyChange[] {
    return this.keys.get(keyId)?.changes.slice(afterSequence, afterSequence + limit) ?? [];
  }

  /** Changes taken here from position `after` (0 = the first), at most `limit`, and where the next page starts. */
  page(after: number, limit: number): { changes: KeyChange[]; next: number | null } {
    const changes = this.order.slice(after, after + limit);
    const end = after + changes.length;
    return { changes, next: end < this.order.length ? end : null };
  }

  /**
   * Whether the change is the key's last one (the same digest): a gateway retrying, or a peer's
   * flooding arriving after the gateway's copy, is answered as known. Any other change at or below
   * the key's sequence, an older applied one included, is refused as a replay: an admin's "disable"
   * of last week sent again must not look accepted.
   */
  isApplied(change: KeyChange): boolean {
    const entry = this.keys.get(change.keyId);
    if (entry === undefined || change.sequence !== entry.key.sequence) return false;
    const held = entry.changes[change.sequence - 1];
    return held !== undefined && this.isSameChange(held, change);
  }

  private isSameChange(a: KeyChange, b: KeyChange): boolean {
    return equalBytes(keyChangeDigest(a, this.options.deployment), keyChangeDigest(b, this.options.deployment));
  }

  /**
   * Every check (order, signature, admin, body, state, limits) without taking the change. With
   * `replay` (a log read back at start), the committee's settings that may have changed since the
   * change was taken (who may create, quotas, limits, short deletion windows) are not applied again:
   * an operator narrowing them must not make the registry refuse its own history.
   */
  check(change: KeyChange, opts: { replay?: boolean } = {}): AppliedChange {
    const entry = this.keys.get(change.keyId);
    // Another change than the key's last one, after the same predecessor: two admins signed at once,
    // and this member took the other one first. A conflict, not a replay (older sequences are replays).
    const held = entry !== undefined && change.sequence === entry.key.sequence ? entry.changes[change.sequence - 1] : undefined;
    if (held !== undefined && equalBytes(held.previous, change.previous) && !this.isSameChange(held, change)) {
      throw new TkmsError(
        'key_change_conflict',
        change.sequence === 1
          ? `key ${change.keyId} exists already (created by ${entry!.key.creator}); another create of it is refused`
          : `key ${change.keyId} took another change ${change.sequence} here (after the same change ${change.sequence - 1}); two admins signed at once: read the key again and sign on top of its head`,
      );
    }
    if (opts.replay === true) return applyKeyChange(entry?.key, change, this.replayCtx);
    if (entry === undefined && this.keys.size >= this.options.maxKeys) {
      throw new TkmsError('key_limit_exceeded', `this registry holds ${this.options.maxKeys} keys, the most it may`);
    }
    if (entry !== undefined && entry.changes.length >= this.options.maxChangesPerKey) {
      throw new TkmsError('key_limit_exceeded', `key ${change.keyId} has ${this.options.maxChangesPerKey} changes, the most a key may have`);
    }
    const cost = changeBytes(change);
    if ((entry?.bytes ?? 0) + cost > this.options.maxBytesPerKey) {
      throw new TkmsError('key_limit_exceeded', `key ${change.keyId} holds ${entry?.bytes ?? 0} bytes of changes; this one would pass the ${this.options.maxBytesPerKey} a key may hold`);
    }
    if (this.totalBytes + cost > this.options.maxTotalBytes) {
      throw new TkmsError('key_limit_exceeded', `the key registry holds ${this.totalBytes} bytes of changes, within ${cost} of its bound (keys.maxBytes ${this.options.maxTotalBytes})`);
    }
    return applyKeyChange(entry?.key, change, this.ctx);
  }

  /** Takes a change `check` accepted (and the caller made durable). */
  commit(change: KeyChange, applied: AppliedChange): void {
    const entry = this.keys.get(change.keyId);
    if ((entry?.key.sequence ?? 0) + 1 !== applied.key.sequence) throw new TkmsError('internal', `key ${change.keyId}: a change was committed out of order`);
    const before = entry?.key.aliases ?? [];
    for (const alias of before) if (!applied.key.aliases.includes(alias)) this.aliasClaims.get(alias)?.delete(change.keyId);
    for (const alias of applied.key.aliases) {
      if (before.includes(alias)) continue;
      const claims = this.aliasClaims.get(alias) ?? new Map<string, number>();
      claims.set(change.keyId, change.issuedAt);
      this.aliasClaims.set(alias, claims);
    }
    const cost = changeBytes(change);
    this.totalBytes += cost;
    if (entry === undefined) {
      this.keys.set(change.keyId, { key: applied.key, changes: [change], bytes: cost });
      this.created.set(applied.signer, (this.created.get(applied.signer) ?? 0) + 1);
    } else {
      entry.key = applied.key;
      entry.changes.push(change);
      entry.bytes += cost;
    }
    this.order.push(change);
  }

  private mayCreate(creator: string): void {
    const { creators, perCreatorQuota } = this.options.creation;
    if (creators !== 'open' && !creators.includes(creator)) throw new TkmsError('not_key_admin', `${creator} may not create keys in this committee (keys.creators)`);
    const count = this.created.get(creator) ?? 0;
    if (count >= perCreatorQuota) throw new TkmsError('key_limit_exceeded', `${creator} created ${count} keys, its quota (keys.perCreatorQuota)`);
  }
}

/** The aliases a change gives its key (create, createAlias, renameAlias); [] when its body does not parse. */
function aliasesAdded(change: KeyChange): string[] {
  try {
    if (change.action === 'create') return parseKeyChangeBody('create', change.body).aliases ?? [];
    if (change.action === 'createAlias') return [parseKeyChangeBody('createAlias', change.body).alias];
    if (change.action === 'renameAlias') return [parseKeyChangeBody('renameAlias', change.body).to];
  } catch {
    // The change's own checks refuse it with the reason.
  }
  return [];
}
