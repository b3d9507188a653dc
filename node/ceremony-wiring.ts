import type { Logger } from 'pino';
import type { CommitteeMember } from '../core/committee.ts';
import { countFramesSent, DeliveryQueues, type FrameReply } from './ceremony-delivery.ts';
import { CeremonyDriver } from './ceremony-driver.ts';
import type { CeremonyTimeline } from './ceremony-timeline.ts';
import type { NodeMetrics } from './metrics.ts';

/** What a runner wires each of its ceremonies to: the transport, the vote's write, the clock. */
export interface CeremonyWiring {
  /** One frame to a participant and its reply. */
  send: (to: CommitteeMember, frame: Uint8Array) => Promise<FrameReply>;
  /** Writes this node's vote durably (the driver sends nothing after it before this resolves). */
  persistVote: (vote: Uint8Array) => Promise<void>;
  isStopped: () => boolean;
  log: Logger;
  metrics: NodeMetrics;
  now: () => number;
}

/** How one ceremony (a DKG session, a reshare run) is wired beyond what its runner gives all of them. */
export interface CeremonyWiringSpec {
  family: 'dkg' | 'reshare';
  /** A participant's FIFO key: its id in a DKG's one committee, its member key across a reshare's two. */
  keyOf: (m: CommitteeMember) => string;
  logFields: Record<string, unknown>;
  /** Every participant but this node. */
  others: () => CommitteeMember[];
  frameOf: (payload: Uint8Array) => Uint8Array;
  /** The ceremony's timeline, read at each call (a reshare run starts a new one when it is launched). */
  timeline: () => CeremonyTimeline;
  /** The engine's phase after a call, once there is an engine. */
  phase: () => string | undefined;
  afterStep: () => void | Promise<void>;
  isActive: () => boolean;
}

/** The delivery queues and the driver of one ceremony run here, each engine call and the vote's write marked on its timeline. */
export function wireCeremony(wiring: CeremonyWiring, spec: CeremonyWiringSpec): { delivery: DeliveryQueues<CommitteeMember>; driver: CeremonyDriver<CommitteeMember> } {
  const { now } = wiring;
  const delivery = new DeliveryQueues<CommitteeMember>({
    send: wiring.send,
    keyOf: spec.keyOf,
    nameOf: (m) => m.id,
    isStopped: wiring.isStopped,
    log: wiring.log,
    onAttempt: countFramesSent(wiring.metrics.ceremonyFramesSent, spec.family),
    logFields: spec.logFields,
  });
  const driver = new CeremonyDriver<CommitteeMember>({
    delivery,
    others: spec.others,
    publicKeyOf: (m) => m.publicKey,
    frameOf: spec.frameOf,
    persistVote: async (vote) => {
      await wiring.persistVote(vote);
      spec.timeline().mark('voteOnDisk', now());
    },
    onEngineCall: (engineMs, outbound) => {
      const timeline = spec.timeline();
      timeline.engine(engineMs);
      const phase = spec.phase();
      if (phase !== undefined) timeline.mark(`phase:${phase}`, now());
      for (const o of outbound) timeline.sent(o.payload, now());
    },
    afterStep: spec.afterStep,
    isActive: spec.isActive,
  });
  return { delivery, driver };
}
