import { equalBytes } from '../core/index.ts';
import type { CeremonyOutbound, CeremonyStep } from '../core/ceremony/types.ts';
import type { DeliveryQueues } from './ceremony-delivery.ts';
import { ceremonyMessageKind } from '../core/ceremony/codec.ts';
import { finalDeadline } from '../core/ceremony/deadlines.ts';

/** Phases past the engine's final deadline after which a ceremony still running is given up (the engine fails it itself at that deadline). */
const PAST_FINAL_DEADLINE_PHASES = 2;

/**
 * Whether a ceremony started at `startedAt` ran out of time. The engine's clock starts when the last
 * hello arrived, at the latest its hello wait after its start; n is the number of proposers (arriving members).
 */
export function pastFinalDeadline(startedAt: number, phaseMs: number, n: number, nowMs: number, helloWaitMs = phaseMs): boolean {
  const latestClock = startedAt + helloWaitMs - phaseMs;
  return nowMs > finalDeadline(latestClock, phaseMs, n) + PAST_FINAL_DEADLINE_PHASES * phaseMs;
}

/**
 * Whether a finished ceremony answers a participant's message with its certificate: when the
 * message is one it took before (the participant re-sends what it sent: it restarted, or is stuck),
 * or, from half a phase after this node finished, when the engine counts the participant as lacking
 * the certificate (it started late). A voter's first delivery as everyone finishes together is no
 * sign of that: answering those sent every member the certificate from every other.
 */
export function answersLaggard(o: { repeat: boolean; lacksCertificate: boolean; finishedAt: number | undefined; nowMs: number; phaseMs: number }): boolean {
  if (o.repeat) return true;
  return o.lacksCertificate && o.finishedAt !== undefined && o.nowMs - o.finishedAt >= o.phaseMs / 2;
}

/** The certificate among an engine's own messages (retransmit()), if it holds one: what a laggard is sent again. */
export function certificateMessage(messages: readonly CeremonyOutbound[]): CeremonyOutbound | undefined {
  return messages.find((o) => ceremonyMessageKind(o.payload)?.kind === 'certificate');
}

export interface CeremonyDriverOptions<T> {
  delivery: DeliveryQueues<T>;
  /** Every participant but this node. */
  others(): T[];
  /** A participant's raw Ed25519 key (how an outbound message's `to` names it). */
  publicKeyOf(participant: T): Uint8Array;
  /** The protocol frame carrying one ceremony message. */
  frameOf(payload: Uint8Array): Uint8Array;
  /** Writes this node's vote durably; the step's messages are sent only after it resolved. */
  persistVote(vote: Uint8Array): Promise<void>;
  /** After each engine call (its CPU time) and the vote's write, before its messages are queued: the runner's timeline (node/ceremony-timeline.ts). */
  onEngineCall?(engineMs: number, outbound: readonly CeremonyOutbound[]): void;
  /** Runs after every step, still on the chain: the runner looks at the engine's phase (done, failed) and re-arms its tick. */
  afterStep(): Promise<void> | void;
  /** False once the ceremony was cancelled or the node stops: queued steps then do nothing. */
  isActive(): boolean;
}

/**
 * How a runner drives one ceremony engine (reshare, refresh or DKG; the engines are pure): every
 * engine call and what it asks for run one at a time in order on one chain, so a vote is on disk
 * before any message after it is sent; the tick timer at the engine's next deadline; the periodic
 * retransmit of the engine's own messages (only what a participant did not acknowledge).
 */
export class CeremonyDriver<T> {
  private chain: Promise<void> = Promise.resolve();
  private tickTimer: NodeJS.Timeout | undefined;
  private retransmitTimer: NodeJS.Timeout | undefined;
  /** Set when a vote could not be written: the ceremony sends nothing more (see step). */
  private halted = false;

  constructor(private readonly o: CeremonyDriverOptions<T>) {}

  /** One engine call, after every earlier one. A payload the engine refuses rejects the returned promise (the sender's reply), never the chain. */
  step(call: () => CeremonyStep): Promise<void> {
    const next = this.chain.then(async () => {
      if (!this.active()) return;
      const began = performance.now();
      const step = call();
      const engineMs = performance.now() - began;
      if (step.persistVote !== undefined) {
        try {
          await this.o.persistVote(step.persistVote);
        } catch (e) {
          // The engine already holds the vote and would re-send it with every retransmit; a vote
          // that is not on disk could be cast again differently after a restart. So nothing of
          // this ceremony leaves the node any more.
          this.halted = true;
          this.stop();
          throw e;
        }
      }
      this.o.onEngineCall?.(engineMs, step.outbound);
      this.dispatch(step.outbound, false);
      await this.o.afterStep();
    });
    this.chain = next.catch(() => {});
    return next;
  }

  /** False once the vote could not be written, or the runner says the ceremony is over. */
  active(): boolean {
    return !this.halted && this.o.isActive();
  }

  /** Something that must not interleave with a step (a retransmit round), on the chain. */
  onChain(fn: () => void): void {
    this.chain = this.chain.then(fn).catch(() => {});
  }

  /** One retransmit round of the engine's messages; `before` queues what goes first (an announcement). */
  retransmitRound(messages: () => CeremonyOutbound[], before?: () => void): void {
    this.onChain(() => {
      this.o.delivery.nextRound();
      before?.();
      // A certificate holds everything a participant needs to finish: once the engine has one, it
      // alone goes again (the locked proposal and the rest cost every peer n times their size per round).
      const all = messages();
      const certificate = certificateMessage(all);
      this.dispatch(certificate === undefined ? all : [certificate], true);
    });
  }

  dispatch(outbound: readonly CeremonyOutbound[], isRetransmit: boolean): void {
    if (outbound.length === 0 || this.halted) return;
    const everyone = this.o.others();
    for (const msg of outbound) {
      const frame = this.o.frameOf(msg.payload);
      const final = ceremonyMessageKind(msg.payload)?.kind === 'certificate';
      const targets = msg.to === undefined ? everyone : everyone.filter((m) => msg.to!.some((k) => equalBytes(k, this.o.publicKeyOf(m))));
      for (const m of targets) {
        if (isRetransmit && this.o.delivery.wasAcked(m, msg.payload)) continue;
        this.o.delivery.enqueue(m, frame, { mustQueue: !isRetransmit, payload: msg.payload, final });
      }
    }
  }

  /** Calls `fire` at `deadline` (replacing any earlier timer); nothing when there is none. */
  armTick(deadline: number | undefined, nowMs: number, fire: () => void): void {
    this.stopTick();
    if (deadline === undefined) return;
    this.tickTimer = setTimeout(() => {
      this.tickTimer = undefined;
      fire();
    }, Math.max(0, deadline - nowMs));
    this.tickTimer.unref();
  }

  startRetransmits(intervalMs: number, round: () => void): void {
    this.stopRetransmits();
    this.retransmitTimer = setInterval(round, intervalMs);
    this.retransmitTimer.unref();
  }

  stopTick(): void {
    if (this.tickTimer !== undefined) clearTimeout(this.tickTimer);
    this.tickTimer = undefined;
  }

  stopRetransmits(): void {
    if (this.retransmitTimer !== undefined) clearInterval(this.retransmitTimer);
    this.retransmitTimer = undefined;
  }

  stop(): void {
    this.stopTick();
    this.stopRetransmits();
  }
}
