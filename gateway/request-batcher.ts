import { TkmsError } from '../core/errors.ts';

/** Sends one frame holding `items` and resolves with one reply per item, in order. */
export type BatchSend<Item, Reply> = (items: Item[], timeoutMs: number) => Promise<Reply[]>;

export interface RequestBatcherOptions {
  /** Most items in one frame. */
  maxBatch: number;
  /** Frames in flight at once; further requests wait and leave together in the next frame. */
  maxInFlight: number;
}

interface Pending<Item, Reply> {
  item: Item;
  deadline: number;
  settled: boolean;
  timer: NodeJS.Timeout | undefined;
  resolve: (reply: Reply) => void;
  reject: (error: unknown) => void;
}

/**
 * Request batching towards one peer. A request leaves at once while fewer than `maxInFlight`
 * frames are in flight, so an idle peer sees no added latency; under load the requests that
 * queue behind those frames leave together in the next one. Each message over libp2p costs
 * the same few hundred microseconds of noise, yamux and stream handling on both ends whatever
 * it carries, so a busy gateway sends fewer, fuller frames.
 *
 * Every request keeps its own deadline: it fails with `timeout` when that passes, whether it
 * was still queued (details.queued) or in a frame that has not come back. A frame that fails
 * fails its requests, and only those.
 */
export class RequestBatcher<Item, Reply> {
  private readonly queue: Pending<Item, Reply>[] = [];
  private inFlight = 0;
  private closed = false;

  constructor(
    private readonly send: BatchSend<Item, Reply>,
    private readonly opts: RequestBatcherOptions,
  ) {
    if (!Number.isInteger(opts.maxBatch) || opts.maxBatch < 1) throw new TkmsError('bad_request', 'maxBatch must be a positive integer');
    if (!Number.isInteger(opts.maxInFlight) || opts.maxInFlight < 1) throw new TkmsError('bad_request', 'maxInFlight must be a positive integer');
  }

  /** Requests waiting for a frame (not counting those in flight). */
  get queued(): number {
    return this.queue.length;
  }

  request(item: Item, timeoutMs: number): Promise<Reply> {
    return new Promise<Reply>((resolve, reject) => {
      const pending: Pending<Item, Reply> = { item, deadline: Date.now() + timeoutMs, settled: false, timer: undefined, resolve, reject };
      if (this.closed) {
        reject(new TkmsError('unavailable', 'shutting down'));
        return;
      }
      pending.timer = setTimeout(() => {
        const at = this.queue.indexOf(pending);
        if (at >= 0) this.queue.splice(at, 1);
        // `queued`: it never left, so the wait says nothing about the peer's health.
        this.settle(pending, () => reject(new TkmsError('timeout', `no answer within ${timeoutMs} ms`, at >= 0 ? { queued: true } : undefined)));
      }, timeoutMs);
      this.queue.push(pending);
      this.pump();
    });
  }

  /** Fails every queued request and refuses new ones (frames in flight settle on their own). */
  close(): void {
    this.closed = true;
    for (const p of this.queue.splice(0)) this.settle(p, () => p.reject(new TkmsError('unavailable', 'shutting down')));
  }

  private settle(p: Pending<Item, Reply>, action: () => void): void {
    if (p.settled) return;
    p.settled = true;
    if (p.timer !== undefined) clearTimeout(p.timer);
    action();
  }

  private pump(): void {
    while (this.inFlight < this.opts.maxInFlight && this.queue.length > 0) {
      const batch = this.queue.splice(0, this.opts.maxBatch);
      this.inFlight++;
      // The frame may take as long as its most patient request allows.
      const timeoutMs = Math.max(1, Math.max(...batch.map((p) => p.deadline)) - Date.now());
      let sent: Promise<Reply[]>;
      try {
        sent = this.send(
          batch.map((p) => p.item),
          timeoutMs,
        );
      } catch (e) {
        sent = Promise.reject(e);
      }
      sent
        .then(
          (replies) => {
            if (replies.length !== batch.length) throw new TkmsError('bad_request', `the peer answered ${replies.length} of ${batch.length} batched requests`);
            batch.forEach((p, i) => this.settle(p, () => p.resolve(replies[i]!)));
          },
          (e: unknown) => {
            for (const p of batch) this.settle(p, () => p.reject(e));
          },
        )
        .catch((e: unknown) => {
          for (const p of batch) this.settle(p, () => p.reject(e));
        })
        .finally(() => {
          this.inFlight--;
          this.pump();
        });
    }
  }
}
