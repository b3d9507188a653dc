import { envelopeToJson, grantKey, parseEnvelope, TkmsError, verifyRevocation, type RevocationEnvelope } from '../core/index.ts';
import { AppendLog } from './append-log.ts';

/**
 * Revocations this node has seen, checked (owner signature, handle commitment) before they
 * are kept, and fsynced before they are acknowledged: a node that said "stored" never
 * forgets. Per (handle, grantee) the latest revokedAt wins; paging walks insertion order.
 */
export const MAX_REVOCATIONS = 1_000_000;

export class RevocationStore {
  private readonly latest = new Map<string, number>();
  private readonly items: RevocationEnvelope[] = [];
  private writing: Promise<unknown> = Promise.resolve();

  private constructor(private readonly log: AppendLog) {}

  static async open(path: string): Promise<{ store: RevocationStore; tornBytes: number; skipped: number }> {
    const { log, lines, tornBytes } = await AppendLog.open(path);
    const store = new RevocationStore(log);
    let skipped = 0;
    for (const line of lines) {
      try {
        store.remember(parseEnvelope(line));
      } catch {
        skipped++;
      }
    }
    return { store, tornBytes, skipped };
  }

  get size(): number {
    return this.items.length;
  }

  revokedAt(handle: Uint8Array, grantee: Uint8Array): number | undefined {
    return this.latest.get(grantKey(handle, grantee));
  }

  /** Verifies and stores; false when an equal or later revocation was already held. */
  async add(item: RevocationEnvelope): Promise<boolean> {
    verifyRevocation(item.revocation, item.descriptor);
    // One add at a time: the "already held?" check and the write must not interleave.
    const run = this.writing.then(async () => {
      const key = grantKey(item.revocation.handle, item.revocation.grantee);
      const known = this.latest.get(key);
      if (known !== undefined && known >= item.revocation.revokedAt) return false;
      if (this.items.length >= MAX_REVOCATIONS) throw new TkmsError('unavailable', 'revocation store is full');
      await this.log.append(envelopeToJson(item), true);
      // Held in memory only once it is on disk: a failed write must not look "known" to a retry.
      this.remember(item);
      return true;
    });
    this.writing = run.catch(() => undefined);
    return run;
  }

  page(offset: number, size: number): { items: RevocationEnvelope[]; next: number | null } {
    const items = this.items.slice(offset, offset + size);
    const end = offset + items.length;
    return { items, next: end < this.items.length ? end : null };
  }

  private remember(item: RevocationEnvelope): void {
    const key = grantKey(item.revocation.handle, item.revocation.grantee);
    const known = this.latest.get(key);
    if (known === undefined || item.revocation.revokedAt > known) this.latest.set(key, item.revocation.revokedAt);
    this.items.push(item);
  }

  async close(): Promise<void> {
    await this.writing;
    await this.log.close();
  }
}
