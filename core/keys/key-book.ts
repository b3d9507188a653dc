import { encodeHex } from '../bytes.ts';
import type { Deployment } from '../authz.ts';
import { TkmsError } from '../errors.ts';
import { applyKeyChange, type AppliedChange, type KeyApplyContext } from './key-apply.ts';
import { keyChangeDigest, type KeyChange } from './key-change.ts';
import { keyStateAt, parseMaterialKeyId, type KeyState, type ManagedKey } from './key-model.ts';

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
}

export interface KeyFilter {
  tag?: { key: string; value?: string };
  alias?: string;
  state?: KeyState;
}

interface Entry {
  key: ManagedKey;
  changes: KeyChange[];
}

export class KeyBook {
  private readonly keys = new Map<string, Entry>();
  /** alias → key id (the one whose change took it; core/keys/key-apply.ts refuses a taken alias). */
  private readonly aliases = new Map<string, string>();
  private readonly created = new Map<string, number>();
  /** Every change taken, in the order taken here: what sync pages walk. */
  private readonly order: KeyChange[] = [];
  private readonly ctx: KeyApplyContext;
  /** For replaying a log: what was taken under the settings of its day is taken again. */
  private readonly replayCtx: KeyApplyContext;

  constructor(private readonly options: KeyBookOptions) {
    this.ctx = {
      deployment: options.deployment,
      allowShortDeletionWindow: options.allowShortDeletionWindow,
      parsePolicy: options.parsePolicy,
      aliasHolder: (alias) => this.aliases.get(alias),
      mayCreate: (creator) => this.mayCreate(creator),
    };
    this.replayCtx = { ...this.ctx, allowShortDeletionWindow: true, mayCreate: () => undefined };
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
    const keyId = keyIdOrAlias.startsWith('alias/') ? this.aliases.get(keyIdOrAlias) : keyIdOrAlias;
    return keyId === undefined ? undefined : this.get(keyId);
  }

  /** The managed key and version a material key id (a handle's key id, a DKG's key id) names. */
  byMaterial(materialId: string): { key: ManagedKey; version: number } | undefined {
    const { keyId, version } = parseMaterialKeyId(materialId);
    const key = this.get(keyId);
    return key === undefined ? undefined : { key, version };
  }

  list(filter: KeyFilter, nowSeconds: number): ManagedKey[] {
    const out: ManagedKey[] = [];
    for (const { key } of this.keys.values()) {
      if (filter.alias !== undefined && !key.aliases.includes(filter.alias)) continue;
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
   * Whether the change is the one already applied at its sequence (the same digest): re-sending it
   * is harmless and answered as known. Any other change at or below the key's sequence is a replay.
   */
  isApplied(change: KeyChange): boolean {
    const entry = this.keys.get(change.keyId);
    const held = entry?.changes[change.sequence - 1];
    if (held === undefined) return false;
    return encodeHex(keyChangeDigest(held, this.options.deployment)) === encodeHex(keyChangeDigest(change, this.options.deployment));
  }

  /**
   * Every check (order, signature, admin, body, state, limits) without taking the change. With
   * `replay` (a log read back at start), the committee's settings that may have changed since the
   * change was taken (who may create, quotas, limits, short deletion windows) are not applied again:
   * an operator narrowing them must not make the registry refuse its own history.
   */
  check(change: KeyChange, opts: { replay?: boolean } = {}): AppliedChange {
    const entry = this.keys.get(change.keyId);
    if (opts.replay === true) return applyKeyChange(entry?.key, change, this.replayCtx);
    if (entry === undefined && this.keys.size >= this.options.maxKeys) {
      throw new TkmsError('key_limit_exceeded', `this registry holds ${this.options.maxKeys} keys, the most it may`);
    }
    if (entry !== undefined && entry.changes.length >= this.options.maxChangesPerKey) {
      throw new TkmsError('key_limit_exceeded', `key ${change.keyId} has ${this.options.maxChangesPerKey} changes, the most a key may have`);
    }
    return applyKeyChange(entry?.key, change, this.ctx);
  }

  /** Takes a change `check` accepted (and the caller made durable). */
  commit(change: KeyChange, applied: AppliedChange): void {
    const entry = this.keys.get(change.keyId);
    if ((entry?.key.sequence ?? 0) + 1 !== applied.key.sequence) throw new TkmsError('internal', `key ${change.keyId}: a change was committed out of order`);
    const before = entry?.key.aliases ?? [];
    for (const alias of before) if (!applied.key.aliases.includes(alias)) this.aliases.delete(alias);
    for (const alias of applied.key.aliases) this.aliases.set(alias, change.keyId);
    if (entry === undefined) {
      this.keys.set(change.keyId, { key: applied.key, changes: [change] });
      this.created.set(applied.signer, (this.created.get(applied.signer) ?? 0) + 1);
    } else {
      entry.key = applied.key;
      entry.changes.push(change);
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
