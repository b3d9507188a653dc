import type { ErrorCode } from '../core/index.ts';
import type { DkgPublicResult } from '../core/dkg/index.ts';
import type { CeremonyPhase } from '../core/ceremony/types.ts';
import type { DkgCeremonyApi } from '../core/ceremony/dkg-types.ts';
import type { Committee, CommitteeMember } from '../net/committee.ts';
import { encodeHex } from '../core/index.ts';
import type { CeremonyDriver } from './ceremony-driver.ts';
import type { DeliveryQueues } from './ceremony-delivery.ts';
import { CeremonyTimeline } from './ceremony-timeline.ts';
import { wireCeremony, type CeremonyWiring } from './ceremony-wiring.ts';
import { encodeDkgFrame, type DkgProposal } from './dkg-wire.ts';

export type DkgStatusName = 'running' | 'done' | 'aborted';

/** What the admin endpoint reports about a key id's DKG. */
export interface DkgStatus {
  keyId: string;
  sessionId: string;
  /** Unknown (null) for keys loaded from disk at start. */
  proposer: number | null;
  status: DkgStatusName;
  phase: CeremonyPhase;
  startedAt: string | null;
  durationMs: number | undefined;
  abortReason: string | undefined;
  /** Set when the DKG or the held key failed for a reason clients switch on (dkg_conflict). */
  errorCode: ErrorCode | undefined;
  /** Whether this node holds a share of the key (false: it missed the hello or a sub-share; it serves no partials for the key). */
  share: boolean | undefined;
  disqualified: Record<string, string>;
  refusals: Record<string, string>;
  result: DkgPublicResult | undefined;
}

/** One DKG session as this node runs it: the engine, its driver and delivery, and what the admin status reports. */
export interface DkgSession {
  keyId: string;
  sessionId: Uint8Array;
  sid: string;
  proposer: number;
  committee: Committee;
  selfId: number;
  ceremony: DkgCeremonyApi;
  driver: CeremonyDriver<CommitteeMember>;
  delivery: DeliveryQueues<CommitteeMember>;
  status: DkgStatusName;
  phase: CeremonyPhase;
  phaseStartedAt: number;
  startedAt: number;
  finishedAt: number | undefined;
  abortReason: string | undefined;
  errorCode: ErrorCode | undefined;
  refusals: Map<number, string>;
  result: DkgPublicResult | undefined;
  share: boolean | undefined;
  /** The proposer's proposal frame, sent again with its retransmits until the session finished: a member that restarted rejoins. */
  announce: Uint8Array | undefined;
  committing: boolean;
  /** Member id → when it was last sent the certificate after this session finished here. */
  laggardsAnswered: Map<number, number>;
  /** When each step happened here (node/ceremony-timeline.ts), logged at debug when the session finishes. */
  timeline: CeremonyTimeline;
}

/** The members of a session's committee but this node. */
export function othersOf(s: DkgSession): CommitteeMember[] {
  return s.committee.members.filter((m) => m.id !== s.selfId);
}

/** A session just accepted (or proposed) here: its delivery queues and its driver around the engine. */
export function newDkgSession(p: DkgProposal, committee: Committee, selfId: number, ceremony: DkgCeremonyApi, wiring: CeremonyWiring & { afterStep: (s: DkgSession) => void }): DkgSession {
  const sid = encodeHex(p.sessionId);
  const { delivery, driver } = wireCeremony(wiring, {
    family: 'dkg',
    keyOf: (m) => String(m.id),
    logFields: { keyId: p.keyId, sessionId: sid },
    others: () => othersOf(s),
    frameOf: (payload) => encodeDkgFrame({ type: 'payload', keyId: p.keyId, sessionId: p.sessionId, payload }),
    timeline: () => s.timeline,
    phase: () => s.ceremony.phase,
    afterStep: () => wiring.afterStep(s),
    isActive: () => !wiring.isStopped(),
  });
  const startedAt = wiring.now();
  const s: DkgSession = {
    keyId: p.keyId,
    sessionId: p.sessionId,
    sid,
    proposer: p.proposer,
    committee,
    selfId,
    ceremony,
    delivery,
    driver,
    status: 'running',
    phase: ceremony.phase,
    phaseStartedAt: startedAt,
    startedAt,
    finishedAt: undefined,
    abortReason: undefined,
    errorCode: undefined,
    refusals: new Map(),
    result: undefined,
    share: undefined,
    announce: undefined,
    committing: false,
    laggardsAnswered: new Map(),
    timeline: new CeremonyTimeline(startedAt),
  };
  return s;
}

/** The status of a key held with no session here (loaded from disk at start); `withdrawn`: why it is not served. */
export function heldKeyStatus(keyId: string, held: DkgPublicResult, withdrawn: string | undefined, share: boolean): DkgStatus {
  return {
    keyId,
    sessionId: held.sessionId,
    proposer: null,
    status: withdrawn === undefined ? 'done' : 'aborted',
    phase: 'done',
    startedAt: null,
    durationMs: undefined,
    abortReason: withdrawn,
    errorCode: withdrawn === undefined ? undefined : 'dkg_conflict',
    share,
    disqualified: {},
    refusals: {},
    result: held,
  };
}

/** A session's status; `withdrawn`: why its key is not served (a split proven later), overriding the session's own outcome. */
export function sessionStatus(s: DkgSession, withdrawn: string | undefined): DkgStatus {
  return {
    keyId: s.keyId,
    sessionId: s.sid,
    proposer: s.proposer,
    status: s.status,
    phase: s.ceremony.phase,
    startedAt: new Date(s.startedAt).toISOString(),
    durationMs: s.finishedAt === undefined ? undefined : s.finishedAt - s.startedAt,
    abortReason: withdrawn ?? s.abortReason,
    errorCode: withdrawn === undefined ? s.errorCode : 'dkg_conflict',
    share: s.share,
    disqualified: s.ceremony.disqualified(),
    refusals: Object.fromEntries([...s.refusals].map(([id, why]) => [String(id), why])),
    result: s.status === 'done' ? s.result : undefined,
  };
}
