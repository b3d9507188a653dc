import { bytesToHex } from '@noble/hashes/utils.js';
import type { FROST, FrostSecret, Nonces } from '@noble/curves/abstract/frost.js';
import { TkmsError } from '../core/errors.ts';
import { AppendLog } from '../storage/append-log.ts';
import type { NonceCommitmentPair } from '../core/signing/sign-wire.ts';

/**
 * FROST nonces, the one secret here that must never serve twice: two signatures with one nonce
 * give away the share. The rule has two halves:
 *
 * - Nonces live in memory only (NoncePool). A restart discards every unused one, so no nonce
 *   outlives the process that made it, whatever happens to the disk.
 * - A nonce is spent durably before its share leaves (NonceSpentLog): `take` removes it from the
 *   pool in the same synchronous step that finds it (two concurrent requests naming it cannot both
 *   get it), and the spent record is fsynced before the share is computed. The log is also checked
 *   when a nonce is made, so even a broken random source that repeated a commitment after a crash
 *   could not sign with it again.
 */

export interface NoncePoolLimits {
  /** Unspent nonces held for one key version; past it the oldest are discarded. */
  perKey: number;
  /** Unspent nonces held in all. */
  total: number;
  /** An unspent nonce older than this is discarded (the coordinator asks for fresh ones). */
  ttlMs: number;
}

export const DEFAULT_NONCE_LIMITS: NoncePoolLimits = { perKey: 4096, total: 65_536, ttlMs: 30 * 60_000 };

interface HeldNonce {
  keyId: string;
  nonces: Nonces;
  commitments: { identifier: string; hiding: Uint8Array; binding: Uint8Array };
  madeAt: number;
}

export class NoncePool {
  /** By commitment id (keyId and hiding commitment), in the order made: the first entry is the oldest. */
  private readonly held = new Map<string, HeldNonce>();
  private readonly perKey = new Map<string, number>();

  constructor(
    private readonly limits: NoncePoolLimits = DEFAULT_NONCE_LIMITS,
    private readonly now: () => number = Date.now,
  ) {}

  get size(): number {
    return this.held.size;
  }

  /** `count` fresh nonces for `keyId`; `spent` refuses any commitment the spent log already holds. */
  make(keyId: string, frost: FROST, secret: FrostSecret, count: number, spent: (id: string) => boolean): NonceCommitmentPair[] {
    this.expire();
    const out: NonceCommitmentPair[] = [];
    for (let i = 0; i < count; i++) {
      const { nonces, commitments } = frost.commit(secret);
      const id = commitmentId(keyId, commitments.hiding);
      // Only a broken random source repeats a commitment; never hand it out again.
      if (spent(id) || this.held.has(id)) throw new TkmsError('internal', 'the random source repeated a nonce commitment; refusing to sign');
      while ((this.perKey.get(keyId) ?? 0) >= this.limits.perKey) this.dropOldestOf(keyId);
      while (this.held.size >= this.limits.total) this.dropOldest();
      this.held.set(id, { keyId, nonces, commitments, madeAt: this.now() });
      this.perKey.set(keyId, (this.perKey.get(keyId) ?? 0) + 1);
      out.push({ hiding: commitments.hiding, binding: commitments.binding });
    }
    return out;
  }

  /** Removes and returns the nonce behind a commitment this pool made for `keyId`, if it still holds it. */
  take(keyId: string, hiding: Uint8Array, binding: Uint8Array): HeldNonce | undefined {
    const id = commitmentId(keyId, hiding);
    const nonce = this.held.get(id);
    if (nonce === undefined || bytesToHex(nonce.commitments.binding) !== bytesToHex(binding)) return undefined;
    if (nonce.madeAt < this.now() - this.limits.ttlMs) {
      this.remove(id, nonce);
      return undefined;
    }
    // Not wiped here: the caller signs with it once (noble's signShare zeroes it after).
    this.remove(id, nonce, false);
    return nonce;
  }

  private expire(): void {
    const cutoff = this.now() - this.limits.ttlMs;
    for (const [id, nonce] of this.held) {
      if (nonce.madeAt >= cutoff) break;
      this.remove(id, nonce);
    }
  }

  private dropOldest(): void {
    const first = this.held.entries().next();
    if (!first.done) this.remove(first.value[0], first.value[1]);
  }

  private dropOldestOf(keyId: string): void {
    for (const [id, nonce] of this.held) {
      if (nonce.keyId === keyId) {
        this.remove(id, nonce);
        return;
      }
    }
  }

  private remove(id: string, nonce: HeldNonce, wipe = true): void {
    this.held.delete(id);
    if (wipe) {
      nonce.nonces.hiding.fill(0);
      nonce.nonces.binding.fill(0);
    }
    const left = (this.perKey.get(nonce.keyId) ?? 1) - 1;
    if (left === 0) this.perKey.delete(nonce.keyId);
    else this.perKey.set(nonce.keyId, left);
  }
}

export function commitmentId(keyId: string, hiding: Uint8Array): string {
  return `${keyId}:${bytesToHex(hiding)}`;
}

/**
 * Spent records kept, in memory and on disk (about 76 MB of file at most): past it the oldest go.
 * They matter while their nonces could still be presented, and a nonce lives in memory at most
 * 30 minutes (DEFAULT_NONCE_LIMITS.ttlMs); a million is hours of signing at full speed.
 */
export const MAX_SPENT_RECORDS = 1_000_000;

/** The durable half: every nonce spent, fsynced before its share is made. */
export class NonceSpentLog {
  /** Lines appended since the file was last rewritten: past maxRecords it is rewritten with what memory keeps. */
  private appended = 0;
  private compacting = false;

  private constructor(
    private readonly log: AppendLog,
    private readonly ids: Set<string>,
    private readonly maxRecords: number,
  ) {}

  static async open(path: string, maxRecords = MAX_SPENT_RECORDS): Promise<NonceSpentLog> {
    const { log, lines } = await AppendLog.open(path);
    const ids = new Set<string>();
    for (const line of lines) if (typeof line === 'string') ids.add(line);
    const spent = new NonceSpentLog(log, ids, maxRecords);
    if (ids.size > maxRecords) {
      const kept = [...ids].slice(ids.size - maxRecords);
      spent.ids.clear();
      for (const id of kept) spent.ids.add(id);
      await log.rewrite(kept);
    }
    return spent;
  }

  get size(): number {
    return this.ids.size;
  }

  has(id: string): boolean {
    return this.ids.has(id);
  }

  /** Records the ids as spent; resolves once they are on disk (appends group-commit). */
  async spend(ids: readonly string[]): Promise<void> {
    for (const id of ids) this.ids.add(id);
    // The oldest go first (a Set keeps insertion order).
    for (const oldest of this.ids) {
      if (this.ids.size <= this.maxRecords) break;
      this.ids.delete(oldest);
    }
    this.appended += ids.length;
    const appended = Promise.all(ids.map((id) => this.log.append(id, true)));
    // The file keeps at most twice what memory does: a running node never outgrows what it can open again.
    if (this.appended > this.maxRecords && !this.compacting) {
      this.compacting = true;
      this.appended = 0;
      // Called once the appends before it are on disk, so every id spent so far is in memory or older than what is kept.
      void this.log.rewrite(() => [...this.ids]).catch(() => undefined).finally(() => (this.compacting = false));
    }
    await appended;
  }

  async close(): Promise<void> {
    await this.log.close();
  }
}
