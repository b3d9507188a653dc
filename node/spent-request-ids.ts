import { bytesToHex, TkmsError } from '../core/index.ts';
import { AppendLog } from '../storage/append-log.ts';

/**
 * Request ids this node has already answered, kept until their signed window closes
 * (plus clock skew), when the window check refuses them anyway. Every id is appended to
 * a log before the node answers, so a restart does not reopen a replay window.
 * The append is not fsynced: a process crash keeps it (page cache); only a power loss
 * within the kernel's flush interval could forget an id.
 *
 * Each requester may hold at most `perRequester` live ids, so one account spending ids as fast
 * as its rate limit allows fills its own quota, not the cache other accounts need. Ids leave in
 * expiry order from a min-heap: no request ever scans the cache.
 *
 * Live ids are never evicted (an evicted id could be replayed). Instead, once the cache is half
 * full, a requester is refused (`rate_limited`) when it holds its share of the room left, (free
 * ids) / (requesters holding ids, itself included), or more. Each account joining a flood takes
 * at most its share of what is left, so k accounts arriving after the cache passed half full,
 * with a requesters in it then, leave about (capacity / 2) × a / (a + k) free: ten accounts fill
 * about three quarters of it, and reaching the hard cap (`unavailable`, for everyone) takes
 * millions of accounts at the default capacity. A requester below its share is always served.
 */
const MAX_LIVE_IDS = 1_000_000;
/**
 * A requester at the default rate limit (12,000/min) with the client's default 5-minute window
 * holds 60,000 live ids; this leaves room above that and still takes ten accounts to fill the cache.
 */
export const DEFAULT_REPLAY_IDS_PER_REQUESTER = 100_000;
export const MAX_REPLAY_IDS_PER_REQUESTER = MAX_LIVE_IDS;

/** Ids written before per-requester quotas (log lines without a requester) count here. */
const UNKNOWN_REQUESTER = '';

interface Live {
  until: number;
  requester: string;
}

/**
 * Min-heap of (until, id): the next id to expire is always on top. Kept apart from
 * core/expiry-heap.ts on purpose: parallel arrays hold a million live ids without an object each.
 */
export class IdExpiryHeap {
  private readonly untils: number[] = [];
  private readonly ids: string[] = [];

  get size(): number {
    return this.untils.length;
  }

  push(until: number, id: string): void {
    let i = this.untils.length;
    this.untils.push(until);
    this.ids.push(id);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.untils[parent]! <= until) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  peekUntil(): number | undefined {
    return this.untils[0];
  }

  pop(): { until: number; id: string } | undefined {
    const n = this.untils.length;
    if (n === 0) return undefined;
    const top = { until: this.untils[0]!, id: this.ids[0]! };
    this.swap(0, n - 1);
    this.untils.pop();
    this.ids.pop();
    const size = n - 1;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let min = i;
      if (l < size && this.untils[l]! < this.untils[min]!) min = l;
      if (r < size && this.untils[r]! < this.untils[min]!) min = r;
      if (min === i) break;
      this.swap(i, min);
      i = min;
    }
    return top;
  }

  private swap(a: number, b: number): void {
    [this.untils[a], this.untils[b]] = [this.untils[b]!, this.untils[a]!];
    [this.ids[a], this.ids[b]] = [this.ids[b]!, this.ids[a]!];
  }
}

/** The in-memory part: live ids, their owners' counts, and the expiry order. */
export class LiveIds {
  private readonly live = new Map<string, Live>();
  private readonly heap = new IdExpiryHeap();
  private readonly perRequesterCount = new Map<string, number>();

  constructor(
    private readonly perRequester: number,
    private readonly maxLive = MAX_LIVE_IDS,
  ) {}

  get size(): number {
    return this.live.size;
  }

  countOf(requester: string): number {
    return this.perRequesterCount.get(requester) ?? 0;
  }

  /** Drops every id whose time has passed; cost is proportional to the ids dropped. */
  prune(nowSeconds: number): void {
    for (let top = this.heap.peekUntil(); top !== undefined && top < nowSeconds; top = this.heap.peekUntil()) {
      const { until, id } = this.heap.pop()!;
      const entry = this.live.get(id);
      // A heap entry whose id was re-added later (after it expired) is stale: the newer one stays.
      if (entry === undefined || entry.until !== until) continue;
      this.live.delete(id);
      const left = this.countOf(entry.requester) - 1;
      if (left > 0) this.perRequesterCount.set(entry.requester, left);
      else this.perRequesterCount.delete(entry.requester);
    }
  }

  /** Throws `replayed` for a live id, `rate_limited` past the requester's quota, `unavailable` when full. */
  add(id: string, until: number, requester: string, nowSeconds: number): void {
    this.prune(nowSeconds);
    if (this.live.has(id)) throw new TkmsError('replayed', `request id 0x${id} was already used`);
    const held = this.countOf(requester);
    const retry = (): { retryAfterSeconds: number } => ({ retryAfterSeconds: Math.min(Math.max(1, (this.heap.peekUntil() ?? nowSeconds) - nowSeconds + 1), 3_600) });
    if (requester !== UNKNOWN_REQUESTER && held >= this.perRequester) {
      throw new TkmsError('rate_limited', `requester ${requester} has ${this.perRequester} request ids in flight; retry later`, retry());
    }
    if (requester !== UNKNOWN_REQUESTER && held >= this.fairShare(requester)) {
      throw new TkmsError('rate_limited', `this node's spent request ids are over half its capacity and requester ${requester} holds its share of the room left (${held} request ids in flight); retry later`, retry());
    }
    if (this.live.size >= this.maxLive) throw new TkmsError('unavailable', 'this node holds as many spent request ids as it can; try again later');
    this.insert(id, until, requester);
  }

  /**
   * What one requester may hold: `perRequester` while the cache is less than half full, then
   * (free ids) / (requesters holding ids, `requester` included), at least 1.
   */
  fairShare(requester: string): number {
    if (2 * this.live.size < this.maxLive) return this.perRequester;
    const active = this.perRequesterCount.size + (this.perRequesterCount.has(requester) ? 0 : 1);
    return Math.min(this.perRequester, Math.max(1, Math.floor((this.maxLive - this.live.size) / active)));
  }

  /** Loads an id from the log, quota not applied (it was accepted under the rules of its time). */
  restore(id: string, until: number, requester: string): void {
    if (this.live.has(id)) return;
    this.insert(id, until, requester);
  }

  entries(): [string, number, string][] {
    return [...this.live].map(([id, e]) => [id, e.until, e.requester]);
  }

  private insert(id: string, until: number, requester: string): void {
    this.live.set(id, { until, requester });
    this.heap.push(until, id);
    this.perRequesterCount.set(requester, this.countOf(requester) + 1);
  }
}

export class SpentRequestIds {
  private compacting: Promise<void> | undefined;

  private constructor(
    private readonly log: AppendLog,
    private readonly skewSeconds: number,
    private readonly ids: LiveIds,
  ) {}

  /** `capacity`: live ids in all (tests make it small). */
  static async open(path: string, skewSeconds: number, nowSeconds: number, perRequester = DEFAULT_REPLAY_IDS_PER_REQUESTER, capacity = MAX_LIVE_IDS): Promise<SpentRequestIds> {
    const { log, lines } = await AppendLog.open(path);
    const cache = new SpentRequestIds(log, skewSeconds, new LiveIds(perRequester, capacity));
    for (const line of lines) {
      if (!Array.isArray(line) || typeof line[0] !== 'string' || typeof line[1] !== 'number') continue;
      if (line[1] >= nowSeconds) cache.ids.restore(line[0], line[1], typeof line[2] === 'string' ? line[2] : UNKNOWN_REQUESTER);
    }
    return cache;
  }

  get size(): number {
    return this.ids.size;
  }

  /**
   * Records the id for `requester` (its account address), or throws `replayed` if it was seen before. Check and insert
   * happen in one synchronous step, so two concurrent copies of a request cannot both pass.
   */
  async claim(requestId: Uint8Array, notAfter: number, nowSeconds: number, requester = UNKNOWN_REQUESTER): Promise<void> {
    const id = bytesToHex(requestId);
    // The window check accepts up to and including notAfter + skew, so the id must be kept that long.
    const until = notAfter + this.skewSeconds;
    this.ids.add(id, until, requester, nowSeconds);
    // An append during compaction must land in the new file, not the one being replaced.
    if (this.compacting !== undefined) await this.compacting.catch(() => undefined);
    await this.log.append([id, until, requester], false);
    if (this.log.mayRewrite && this.log.lines > 2 * this.ids.size + 10_000) void this.compact(nowSeconds).catch(() => undefined);
  }

  private compact(nowSeconds: number): Promise<void> {
    this.compacting ??= (async () => {
      this.ids.prune(nowSeconds);
      await this.log.rewrite(this.ids.entries());
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
