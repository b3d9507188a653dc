/**
 * The contract between the pure reshare/refresh ceremony (core/ceremony) and the node's runner.
 * Construction and agreement: core/ceremony/README.md. Everything here is public data except the
 * old shares a dealer is handed and the new shares `ReshareCeremony.outcome()` returns.
 */
import type { Committee } from '../committee.ts';
import type { HandoverCertificate, KeyEpochData } from './handover.ts';

/**
 * One committee change, as operators approve it (`tkms committee propose-reshare`): the committee
 * leaving (`from`, at its epoch) and the one arriving (`to`, epoch from.epoch + 1), with the key ids
 * the ceremony moves. A refresh is a proposal whose `to` has the same members and t as `from`.
 */
export interface ReshareProposal {
  from: Committee;
  to: Committee;
  /** Every key the committee holds at from.epoch, sorted; a node holding others refuses to approve. */
  keyIds: string[];
}

/** Signatures by committee members (the node's libp2p Ed25519 key), like DkgIdentity, but members are named by key. */
export interface CeremonyIdentity {
  /** This node's raw Ed25519 public key (32 bytes): how it is found in `from` and `to`. */
  publicKey: Uint8Array;
  sign(message: Uint8Array): Uint8Array;
}

export interface ReshareParams {
  proposal: ReshareProposal;
  /** proposalDigest(proposal): binds every message, dealing and vote. */
  proposalId: Uint8Array;
  /** The keys' public data at from.epoch (DKG result or previous handover), verified by the caller; aligned with proposal.keyIds. */
  keys: KeyEpochData[];
  /** This node's shares at from.epoch, by key id, when it is a member of `from` (it deals); absent otherwise. */
  oldShares?: ReadonlyMap<string, bigint>;
  /**
   * A 32-byte node-local secret (the runner derives it from the node's identity key with HKDF): every
   * random value of the ceremony (dealing polynomials, sealing keys, the receiver key) is derived
   * from it and the proposal id, so a member that crashes and restarts sends the same bytes again,
   * never a second, different dealing, and can open its sub-shares from the stored transcript.
   */
  seed: Uint8Array;
  /**
   * The vote this node already cast for this proposal (persisted by the runner before the vote was
   * sent), if any: the ceremony re-sends it and never signs another.
   */
  priorVote?: Uint8Array;
}

/** Ceremony messages are broadcasts to all participants (members of `from` and of `to`). */
export interface CeremonyOutbound {
  payload: Uint8Array;
  /** Only these participants (raw Ed25519 keys); used by test faults alone. Absent = every other participant. */
  to?: Uint8Array[];
}

export type CeremonyPhase = 'hello' | 'dealing' | 'agreement' | 'done' | 'failed';

/** What a step of the ceremony asks the runner to do, in this order. */
export interface CeremonyStep {
  /** Persist before sending anything below (the vote lock): the runner writes it durably, then sends. */
  persistVote?: Uint8Array;
  outbound: CeremonyOutbound[];
}

export interface ReshareOutcome {
  certificate: HandoverCertificate;
  /** This node's new shares (by key id) when it is a member of `to`; absent for a member that leaves. */
  newShares?: Map<string, bigint>;
}

/** Test-only misbehaviour; the node passes these only when test faults are explicitly enabled. */
export interface CeremonyFaults {
  /** As a dealer: seal wrong sub-shares to these new-member ids. */
  badSubShareTo?: number[];
  /** As a dealer: sign a second, different dealing and send it instead to these participants (by new-member id). */
  equivocateDealing?: boolean;
  /** As a dealer: deal a polynomial whose constant term is not this node's share. */
  wrongConstantTerm?: boolean;
  /** As a proposer: sign two different proposals for the same attempt. */
  equivocateProposal?: boolean;
  /** Take part in nothing. */
  silent?: boolean;
}

/** Deadlines, in ms: each phase closes with what arrived when its deadline passes (core/ceremony/deadlines.ts). */
export interface CeremonyTiming {
  /** How long each phase (dealing, proposal, echo, vote) waits before moving on or trying the next proposer. */
  phaseMs: number;
  /**
   * How long a member waits, from its own start, for every arriving member's hello before dealers deal
   * without the missing ones (default phaseMs). Operators approve at different times: the deadlines
   * after it run from the moment the last hello arrived, the same moment for everyone.
   */
  helloWaitMs?: number;
}

/**
 * One member's view of one ceremony (every attempt of it): a reshare or refresh (ReshareCeremonyApi)
 * or a DKG (DkgCeremonyApi, dkg-types.ts). Pure: no I/O and no clock; the runner passes `nowMs`,
 * sends every outbound payload to the participants, persists `persistVote` before sending the
 * step's messages, calls `tick` at `nextDeadline()`, and stores the outcome (shares durably first,
 * then the certificate, which is the commit).
 */
export interface CeremonyApi<Outcome> {
  readonly phase: CeremonyPhase;
  /** Set once phase is 'failed'. */
  readonly failureReason: string | undefined;
  start(nowMs: number): CeremonyStep;
  /**
   * One payload from any participant (messages are signed, the sender's address does not matter).
   * Malformed or badly signed payloads throw TkmsError('bad_request'); the runner counts them against
   * the peer that sent them. Duplicates, and messages for a later phase (buffered, bounded), do not throw.
   */
  receive(payload: Uint8Array, nowMs: number): CeremonyStep;
  tick(nowMs: number): CeremonyStep;
  /** When `tick` must next be called; undefined once done or failed. */
  nextDeadline(): number | undefined;
  /**
   * This member's own signed messages and the certificate it holds, to send again to a participant
   * that restarted or joined late; each addressed (`to`) to the participants that may still lack it
   * when the engine can tell (a member whose vote or echo for a proposal is here holds it). `nowMs`
   * (default: the latest time the engine was given) decides whether its vote still goes to the
   * proposal's author alone.
   */
  retransmit(nowMs?: number): CeremonyOutbound[];
  /** Whether this exact message was taken before: a participant sending it again is re-sending what it sent (it may be stuck). */
  isRepeat(payload: Uint8Array): boolean;
  /** Once there is a certificate: whether this participant may lack it (no vote for it, nor a certificate, came from it here). */
  lacksCertificate(publicKey: Uint8Array): boolean;
  outcome(): Outcome | undefined;
  /** Participant → why it is out: by `from`/`to` member id in a reshare ("from:3", "to:5"), by member id in a DKG ("3"). */
  disqualified(): Record<string, string>;
}

export type ReshareCeremonyApi = CeremonyApi<ReshareOutcome>;
