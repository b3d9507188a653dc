import { envelopeToJson, grantKey, parseEnvelope, TkmsError, verifyRevocation, type Deployment, type RevocationEnvelope } from '../core/index.ts';
import { AppendLog } from './append-log.ts';

/**
 * Revocations this node has seen, checked (owner signature, handle commitment) before they
 * are kept, and fsynced before they are acknowledged: a node that said "stored" never
 * forgets. Only the latest revocation per (handle, grantee) is kept; the log is compacted
 * when superseded lines pile up, and paging walks the kept ones in order of arrival.
 */
export const MAX_REVOCATIONS = 200_000;

export class RevocationStore {
  /** grantKey → the latest revocation; Map order = order of (last) arrival. */
  private readonly items = new Map<string, RevocationEnvelope>();
  /** items.values() as an array for paging; rebuilt only after a change. */
  private ordered: RevocationEnvelope[] | undefined;
  private writing: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly log: AppendLog,
    private readonly deployment: Deployment,
  ) {}

  /**
   * Lines are not re-verified on open: a revocation stored under an older signature format
   * (version 1) stays in force, and the log opens whatever the format of its signatures.
   */
  static async open(path: string, deployment: Deployment): Promise<{ store: RevocationStore; tornBytes: number }> {
    const { log, lines, tornBytes } = await AppendLog.open(path);
    const store = new RevocationStore(log, deployment);
    for (const [i, line] of lines.entries()) {
      try {
        store.remember(parseEnvelope(line));
      } catch (e) {
        // Skipping a revocation would silently re-enable a revoked grant: refuse to start instead.
        await log.close();
        throw new TkmsError('internal', `revocation log ${path} line ${i + 1} is not a valid revocation (${e instanceof TkmsError ? e.code : 'invalid'})`);
      }
    }
    return { store, tornBytes };
  }

  get size(): number {
    return this.items.size;
  }

  revokedAt(handle: Uint8Array, grantee: Uint8Array): number | undefined {
    return this.items.get(grantKey(handle, grantee))?.revocation.revokedAt;
  }

  /**
   * Verifies and stores; false when an equal or later revocation was already held. A
   * revokedAt beyond `maxRevokedAt` (now + skew) is refused: it would block re-grants forever.
   */
  async add(item: RevocationEnvelope, maxRevokedAt?: number): Promise<boolean> {
    const key = grantKey(item.revocation.handle, item.revocation.grantee);
    // Known ones are answered before any signature check: replays cost nothing.
    const held = this.items.get(key)?.revocation.revokedAt;
    if (held !== undefined && held >= item.revocation.revokedAt) return false;
    if (maxRevokedAt !== undefined && item.revocation.revokedAt > maxRevokedAt) {
      throw new TkmsError('bad_request', `revokedAt ${item.revocation.revokedAt} is in the future`);
    }
    verifyRevocation(item.revocation, item.descriptor, this.deployment);
    // One add at a time: the "already held?" check and the write must not interleave.
    const run = this.writing.then(async () => {
      const known = this.items.get(key)?.revocation.revokedAt;
      if (known !== undefined && known >= item.revocation.revokedAt) return false;
      if (known === undefined && this.items.size >= MAX_REVOCATIONS) throw new TkmsError('unavailable', 'revocation store is full');
      await this.log.append(envelopeToJson(item), true);
      // Held in memory only once it is on disk: a failed write must not look "known" to a retry.
      this.remember(item);
      if (this.log.lines > 2 * this.items.size + 1_000) await this.log.rewrite([...this.items.values()].map(envelopeToJson));
      return true;
    });
    this.writing = run.catch(() => undefined);
    return run;
  }

  page(offset: number, size: number): { items: RevocationEnvelope[]; next: number | null } {
    this.ordered ??= [...this.items.values()];
    const all = this.ordered;
    const items = all.slice(offset, offset + size);
    const end = offset + items.length;
    return { items, next: end < all.length ? end : null };
  }

  private remember(item: RevocationEnvelope): void {
    const key = grantKey(item.revocation.handle, item.revocation.grantee);
    const known = this.items.get(key)?.revocation.revokedAt;
    if (known !== undefined && known >= item.revocation.revokedAt) return;
    this.items.delete(key);
    this.items.set(key, item);
    this.ordered = undefined;
  }

  async close(): Promise<void> {
    await this.writing;
    await this.log.close();
  }
}
