import { committeeFileDigest, type Committee, type CommitteeMember } from '../core/committee.ts';
import { decodeHex, encodeHex, equalBytes } from '../core/index.ts';
import { attemptAt } from '../core/ceremony/deadlines.ts';
import { isRefresh, reshareProposalToJson } from '../core/ceremony/proposal.ts';
import type { ReshareCeremonyApi, ReshareProposal } from '../core/ceremony/types.ts';
import type { Logger } from 'pino';
import type { DeliveryQueues } from './ceremony-delivery.ts';
import { answersLaggard, certificateMessage, type CeremonyDriver } from './ceremony-driver.ts';
import { CeremonyTimeline } from './ceremony-timeline.ts';
import { wireCeremony, type CeremonyWiring } from './ceremony-wiring.ts';
import type { ReshareStatus } from './epoch-types.ts';
import type { NodeMetrics } from './metrics.ts';
import { encodeCeremonyFrame } from './reshare-wire.ts';

/** One approved proposal's ceremony as this node runs it, from the approval to the commit (or failure). */
export interface ReshareRun {
  proposalId: string;
  proposal: ReshareProposal;
  kind: 'reshare' | 'refresh';
  status: ReshareStatus['status'];
  ceremony: ReshareCeremonyApi | undefined;
  startedAt: number | undefined;
  /** The time handed to the engine's start(): its deadlines (and attempts) count from it. */
  ceremonyStartedAt: number | undefined;
  finishedAt: number | undefined;
  failureReason: string | undefined;
  /** Engine calls, vote persistence and sends in order (a vote is on disk before anything after it is sent), the tick and retransmit timers. */
  driver: CeremonyDriver<CommitteeMember>;
  /** Peer id → when it was last sent the certificate after this ceremony finished (answerLaggard). */
  laggardsAnswered: Map<string, number>;
  /** Per-participant FIFOs and what each acknowledged (retransmits skip it). */
  delivery: DeliveryQueues<CommitteeMember>;
  /** A refresh's `refresh` frame, sent again with every retransmit: a member that was still committing the epoch before refused it the first time. */
  announce: Uint8Array | undefined;
  /** Set once the outcome is being committed (a joiner may wait for beforeJoining first). */
  committing: boolean;
  /** Why a joiner does not serve the new epoch yet (beforeJoining failed; retried), shown in the status. */
  waiting: string | undefined;
  /** When each step happened since the approval, logged (debug) when the ceremony finishes. */
  timeline: CeremonyTimeline;
}

/** A run just approved: its delivery queues and its driver (engine calls, the vote on disk before anything after it is sent). */
export function newReshareRun(proposalId: string, proposal: ReshareProposal, wiring: CeremonyWiring & { others: () => CommitteeMember[]; afterStep: (run: ReshareRun) => void | Promise<void> }): ReshareRun {
  const { delivery, driver } = wireCeremony(wiring, {
    family: 'reshare',
    keyOf: (m) => encodeHex(m.publicKey),
    logFields: { proposalId },
    others: wiring.others,
    frameOf: (payload) => encodeCeremonyFrame({ type: 'payload', proposalId: decodeHex(proposalId), payload }),
    timeline: () => run.timeline,
    phase: () => run.ceremony?.phase,
    afterStep: () => wiring.afterStep(run),
    isActive: () => run.status !== 'cancelled' && !wiring.isStopped(),
  });
  const run: ReshareRun = {
    proposalId,
    proposal,
    kind: isRefresh(proposal) ? 'refresh' : 'reshare',
    status: 'approved',
    ceremony: undefined,
    startedAt: undefined,
    ceremonyStartedAt: undefined,
    finishedAt: undefined,
    failureReason: undefined,
    laggardsAnswered: new Map(),
    delivery,
    driver,
    announce: isRefresh(proposal) ? refreshFrame(proposalId, proposal) : undefined,
    committing: false,
    waiting: undefined,
    timeline: new CeremonyTimeline(wiring.now()),
  };
  return run;
}

/** A finished ceremony keeps answering and re-sending its certificate this many phases, so slower members finish too. */
const LINGER_PHASES = 10;

/** Whether a finished run has lingered long enough: it stops re-sending and its participants are no longer admitted for it. */
export function lingerOver(run: ReshareRun, nowMs: number, phaseMs: number): boolean {
  return run.finishedAt !== undefined && nowMs - run.finishedAt > LINGER_PHASES * phaseMs;
}

/** Ends a run that is approved or running (anything else is final): its status, timers, metrics and log. */
export function finishRun(run: ReshareRun, status: 'done' | 'failed', reason: string | undefined, context: { metrics: NodeMetrics; log: Logger; nowMs: number; epoch: () => number }): void {
  const { metrics, log } = context;
  if (run.status !== 'running' && run.status !== 'approved') return;
  run.driver.stopTick();
  run.status = status;
  run.finishedAt = context.nowMs;
  run.failureReason = reason;
  // The retransmit timer lingers on a finished ceremony, so members still missing the certificate get it.
  if (status === 'failed') run.driver.stopRetransmits();
  const seconds = run.startedAt === undefined ? 0 : (run.finishedAt - run.startedAt) / 1000;
  metrics.reshareCeremonies.inc({ kind: run.kind, outcome: status });
  metrics.reshareDurationSeconds.observe({ kind: run.kind, outcome: status }, seconds);
  const fields = { proposalId: run.proposalId, kind: run.kind, seconds, disqualified: run.ceremony?.disqualified() };
  log.debug({ proposalId: run.proposalId, startedAt: run.startedAt, ...run.timeline.summary() }, 'ceremony timeline (ms after the approval)');
  if (status === 'done') log.info({ ...fields, epoch: context.epoch() }, 'ceremony committed; serving the new epoch');
  else log.error({ ...fields, reason }, 'ceremony failed; the committee keeps serving its epoch');
}

/** The certificate again to a participant that may lack it (answersLaggard), at most once per phase per peer, for as long as this process runs. */
export function answerLaggard(run: ReshareRun, ceremony: ReshareCeremonyApi, member: CommitteeMember, repeat: boolean, nowMs: number, phaseMs: number): void {
  const certificate = certificateMessage(ceremony.retransmit());
  if (certificate === undefined) return;
  if (!answersLaggard({ repeat, lacksCertificate: ceremony.lacksCertificate(member.publicKey), finishedAt: run.finishedAt, nowMs, phaseMs })) return;
  const last = run.laggardsAnswered.get(member.peerId);
  if (last !== undefined && nowMs - last < phaseMs) return;
  run.laggardsAnswered.set(member.peerId, nowMs);
  const frame = encodeCeremonyFrame({ type: 'payload', proposalId: decodeHex(run.proposalId), payload: certificate.payload });
  run.delivery.enqueue(member, frame, { mustQueue: false, payload: certificate.payload });
}

/** What GET /admin/reshare reports of a run at `nowMs`. */
export function runStatus(run: ReshareRun, phaseMs: number, nowMs: number): ReshareStatus {
  const c = run.ceremony;
  const running = run.status === 'running' && run.ceremonyStartedAt !== undefined;
  return {
    proposalId: run.proposalId,
    kind: run.kind,
    fromEpoch: run.proposal.from.epoch,
    toEpoch: run.proposal.to.epoch,
    status: run.status,
    phase: run.waiting !== undefined && run.status === 'running' ? 'syncing_revocations' : (c?.phase ?? (run.status === 'approved' || run.status === 'running' ? 'preparing' : run.status)),
    attempt: running ? attemptAt(run.ceremonyStartedAt!, phaseMs, nowMs) : 0,
    startedAt: run.startedAt === undefined ? null : new Date(run.startedAt).toISOString(),
    durationMs: run.startedAt === undefined || run.finishedAt === undefined ? null : run.finishedAt - run.startedAt,
    failureReason: run.failureReason ?? run.waiting ?? null,
    disqualified: c?.disqualified() ?? {},
  };
}

/** A refresh's announcement: the proposal whole, so a member that has not approved it can check and take part. */
export function refreshFrame(proposalId: string, proposal: ReshareProposal): Uint8Array {
  return encodeCeremonyFrame({ type: 'refresh', proposalId: decodeHex(proposalId), payload: new TextEncoder().encode(JSON.stringify(reshareProposalToJson(proposal))) });
}

export function equalCommittee(a: Committee, b: Committee): boolean {
  return equalBytes(committeeFileDigest(a), committeeFileDigest(b));
}
