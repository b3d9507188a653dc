import { ceremonyMessageKind, type CeremonyMessageKind } from '../core/ceremony/codec.ts';

/**
 * When each step of one member's ceremony happened, as ms after its approval, for the runner's
 * debug log: where a committee change's wall time goes (first and last hello, dealings, proposal,
 * the member's vote, the certificate, the commit on disk) with real processes. Message kinds are
 * read from the wire header only (the engine checks the message itself); nothing secret is kept.
 */

export class CeremonyTimeline {
  private readonly marks = new Map<string, number>();
  private readonly counts = new Map<CeremonyMessageKind, number>();
  private engineMs = 0;
  private slowestStepMs = 0;

  constructor(private readonly startedAt: number) {}

  /** The first time `what` happened (later ones are ignored). */
  mark(what: string, nowMs: number): void {
    if (!this.marks.has(what)) this.marks.set(what, nowMs - this.startedAt);
  }

  /** A payload taken from a peer: first and last arrival of its kind (`firstHello`, `lastHello`, …). */
  received(payload: Uint8Array, nowMs: number): void {
    const kind = ceremonyMessageKind(payload)?.kind;
    if (kind === undefined) return;
    const name = kind[0]!.toUpperCase() + kind.slice(1);
    this.mark(`first${name}`, nowMs);
    this.marks.set(`last${name}`, nowMs - this.startedAt);
    this.counts.set(kind, (this.counts.get(kind) ?? 0) + 1);
  }

  /** An engine call took this long (the CPU the ceremony needs, beside the time it waits). */
  engine(ms: number): void {
    this.engineMs += ms;
    this.slowestStepMs = Math.max(this.slowestStepMs, ms);
  }

  /** A payload this member sent (first time of each kind: `sentDealing`, `sentVote`, …). */
  sent(payload: Uint8Array, nowMs: number): void {
    const kind = ceremonyMessageKind(payload)?.kind;
    if (kind !== undefined) this.mark(`sent${kind[0]!.toUpperCase()}${kind.slice(1)}`, nowMs);
  }

  /** Every mark in time order, and how many payloads of each kind arrived (retransmits included). */
  summary(): { ms: Record<string, number>; received: Record<string, number>; engineMs: number; slowestStepMs: number } {
    const ms = Object.fromEntries([...this.marks].sort((a, b) => a[1] - b[1]));
    return { ms, received: Object.fromEntries(this.counts), engineMs: Math.round(this.engineMs), slowestStepMs: Math.round(this.slowestStepMs) };
  }
}
