import type { Logger } from 'pino';
import { equalBytes, type ErrorCode } from '../core/index.ts';
import { errorText } from '../core/errors.ts';
import type { Counter } from 'prom-client';
import { ceremonyMessageKind } from '../core/ceremony/codec.ts';

/** What a participant answered to one frame: taken, or refused with a reason. */
export type FrameReply = { ok: true } | { ok: false; code: ErrorCode; message: string };

const DELIVERY_ATTEMPTS = 3;
/**
 * Retransmit rounds between two that re-send even what a participant acknowledged: an `ok` means it
 * took the message, but a participant may restart, or its engine may drop what it buffered past a
 * bound; in between only what was not acknowledged goes again (all of it, n frames per round, would
 * cost every member n² frames per half phase).
 */
export const FULL_RETRANSMIT_EVERY = 4;
/** Deliveries queued to one participant beyond which optional ones skip it (it is down; the next round reaches it). */
export const MAX_QUEUED_PER_PARTICIPANT = 32;

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

export interface DeliveryOptions<T> {
  /** One frame to one participant; resolves with its decoded reply, throws when it was not delivered. */
  send(to: T, frame: Uint8Array): Promise<FrameReply>;
  /** A stable key per participant (its member key or id): one FIFO each. */
  keyOf(to: T): string;
  /** How the participant is named in logs. */
  nameOf(to: T): number | string;
  isStopped(): boolean;
  log: Logger;
  /** Before each attempt to send a frame (attempt 1 is the first try of this delivery): the runner's frame counter. */
  onAttempt?(d: Delivery, attempt: number): void;
  /** Fields every log line of this ceremony carries (its key id or proposal id). */
  logFields: Record<string, unknown>;
}

export interface Delivery {
  /** Queued even past MAX_QUEUED_PER_PARTICIPANT: a first send, never dropped (retransmits are). */
  mustQueue: boolean;
  /** The ceremony message inside the frame: an `ok` reply marks it acknowledged (retransmits skip it). */
  payload?: Uint8Array;
  /**
   * A message that ends the ceremony for whoever takes it (a certificate): once acknowledged it is
   * not sent to that participant again even in a full round. The runners acknowledge a payload only
   * once an engine has it (a payload held before its ceremony starts is refused `unavailable`), and
   * answer a participant that restarted after taking it, and re-sends what it sent, with it again.
   */
  final?: boolean;
  onReply?: (reply: FrameReply) => void;
}

/**
 * One ceremony's deliveries: a FIFO per participant (a participant gets messages in the order the
 * engine emitted them), a few retries per frame, then the next retransmit round tries again; and
 * which messages each participant acknowledged, so retransmits re-send only those it did not (all
 * of them every FULL_RETRANSMIT_EVERY-th round). Shared by the reshare and DKG runners.
 */
export class DeliveryQueues<T> {
  private readonly queues = new Map<string, { tail: Promise<void>; waiting: number }>();
  private readonly acked = new Map<string, Uint8Array[]>();
  /** Final messages (a certificate) a participant acknowledged: kept through the full rounds, never sent to it again. */
  private readonly settled = new Map<string, Uint8Array[]>();
  /** Payloads queued or in flight to each participant: a second copy behind the first adds only load. */
  private readonly pending = new Map<string, Uint8Array[]>();
  private rounds = 0;

  constructor(private readonly o: DeliveryOptions<T>) {}

  /** Starts a retransmit round: every FULL_RETRANSMIT_EVERY-th forgets the acknowledgements, so everything goes again. */
  nextRound(): void {
    if (this.rounds++ % FULL_RETRANSMIT_EVERY === FULL_RETRANSMIT_EVERY - 1) this.acked.clear();
  }

  wasAcked(to: T, payload: Uint8Array): boolean {
    const key = this.o.keyOf(to);
    return holds(this.acked.get(key), payload) || holds(this.settled.get(key), payload);
  }

  /**
   * Appends a delivery to the participant's FIFO; a failed one is retried a few times, then left to
   * the next retransmit. A payload already queued or in flight to the participant is not queued
   * again: on a loaded machine a reply can take longer than a retransmit round, and each round then
   * added a copy of every unanswered message behind the first (n² frames a round at n = 32, which
   * made the load, and the wait for replies, worse).
   */
  enqueue(to: T, frame: Uint8Array, d: Delivery): void {
    const key = this.o.keyOf(to);
    const q = this.queues.get(key) ?? { tail: Promise.resolve(), waiting: 0 };
    if (!d.mustQueue && q.waiting >= MAX_QUEUED_PER_PARTICIPANT) return;
    const payload = d.payload;
    if (payload !== undefined) {
      const pending = this.pending.get(key) ?? [];
      if (holds(pending, payload)) return;
      pending.push(payload);
      this.pending.set(key, pending);
    }
    q.waiting++;
    q.tail = q.tail.then(async () => {
      try {
        await this.deliver(to, key, frame, d);
      } finally {
        q.waiting--;
        if (payload !== undefined) this.dropPending(key, payload);
      }
    });
    this.queues.set(key, q);
  }

  private dropPending(key: string, payload: Uint8Array): void {
    const pending = this.pending.get(key);
    const at = pending?.findIndex((p) => p === payload) ?? -1;
    if (at >= 0) pending!.splice(at, 1);
    if (pending?.length === 0) this.pending.delete(key);
  }

  private async deliver(to: T, key: string, frame: Uint8Array, d: Delivery): Promise<void> {
    for (let attempt = 1; attempt <= DELIVERY_ATTEMPTS && !this.o.isStopped(); attempt++) {
      this.o.onAttempt?.(d, attempt);
      try {
        const reply = await this.o.send(to, frame);
        d.onReply?.(reply);
        if (!reply.ok) this.o.log.debug({ ...this.o.logFields, to: this.o.nameOf(to), code: reply.code, reason: reply.message }, 'participant refused a ceremony frame');
        else if (d.payload !== undefined && !this.wasAcked(to, d.payload)) {
          const into = d.final === true ? this.settled : this.acked;
          into.set(key, [...(into.get(key) ?? []), d.payload]);
        }
        return;
      } catch (e) {
        if (attempt === DELIVERY_ATTEMPTS) {
          this.o.log.debug({ ...this.o.logFields, to: this.o.nameOf(to), err: errorText(e) }, 'ceremony frame not delivered; the next retransmit tries again');
          return;
        }
        await sleep(100 * 2 ** (attempt - 1));
      }
    }
  }
}

/** DeliveryOptions.onAttempt counting into tkms_ceremony_frames_sent_total; a payload that is no ceremony message is the runner's announcement. */
export function countFramesSent(counter: Counter<'ceremony' | 'kind' | 'cause'>, ceremony: 'dkg' | 'reshare'): (d: Delivery, attempt: number) => void {
  return (d, attempt) => {
    const kind = d.payload === undefined ? 'other' : (ceremonyMessageKind(d.payload)?.kind ?? 'announce');
    counter.inc({ ceremony, kind, cause: attempt > 1 ? 'retry' : d.mustQueue ? 'first' : 'again' });
  };
}

function holds(list: readonly Uint8Array[] | undefined, payload: Uint8Array): boolean {
  return list?.some((p) => p.length === payload.length && equalBytes(p, payload)) ?? false;
}
