import { bytesToHex, TkmsError } from '../core/index.ts';
import { AppendLog } from './append-log.ts';

/**
 * Request ids this node has already answered, kept until their signed window closes
 * (plus clock skew), when the window check refuses them anyway. Every id is appended to
 * a log before the node answers, so a restart does not reopen a replay window.
 * The append is not fsynced: a process crash keeps it (page cache); only a power loss
 * within the kernel's flush interval could forget an id.
 */
const MAX_LIVE_IDS = 1_000_000;

export class ReplayCache {
  private readonly expiry = new Map<string, number>();
  private compacting: Promise<void> | undefined;

  private constructor(
    private readonly log: AppendLog,
    private readonly skewSeconds: number,
  ) {}

  static async open(path: string, skewSeconds: number, nowSeconds: number): Promise<ReplayCache> {
    const { log, lines } = await AppendLog.open(path);
    const cache = new ReplayCache(log, skewSeconds);
    for (const line of lines) {
      if (!Array.isArray(line) || typeof line[0] !== 'string' || typeof line[1] !== 'number') continue;
      if (line[1] >= nowSeconds) cache.expiry.set(line[0], line[1]);
    }
    return cache;
  }

  get size(): number {
    return this.expiry.size;
  }

  /**
   * Records the id, or throws `replayed` if it was seen before. Check and insert happen
   * in one synchronous step, so two concurrent copies of a request cannot both pass.
   */
  async claim(requestId: Uint8Array, notAfter: number, nowSeconds: number): Promise<void> {
    const id = bytesToHex(requestId);
    const seen = this.expiry.get(id);
    // The window check accepts up to and including notAfter + skew, so the id must be kept that long.
    if (seen !== undefined && seen >= nowSeconds) throw new TkmsError('replayed', `request id 0x${id} was already used`);
    if (this.expiry.size >= MAX_LIVE_IDS) this.prune(nowSeconds);
    if (this.expiry.size >= MAX_LIVE_IDS) throw new TkmsError('unavailable', 'replay cache is full; try again later');
    const until = notAfter + this.skewSeconds;
    this.expiry.set(id, until);
    // An append during compaction must land in the new file, not the one being replaced.
    if (this.compacting !== undefined) await this.compacting.catch(() => undefined);
    await this.log.append([id, until], false);
    if (this.log.lines > 2 * this.expiry.size + 10_000) void this.compact(nowSeconds);
  }

  private prune(nowSeconds: number): void {
    for (const [id, until] of this.expiry) if (until < nowSeconds) this.expiry.delete(id);
  }

  private compact(nowSeconds: number): Promise<void> {
    this.compacting ??= (async () => {
      this.prune(nowSeconds);
      await this.log.rewrite([...this.expiry].map(([id, until]) => [id, until]));
    })().finally(() => {
      this.compacting = undefined;
    });
    return this.compacting;
  }

  async close(): Promise<void> {
    await this.compacting?.catch(() => undefined);
    await this.log.close();
  }
}
