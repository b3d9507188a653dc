/**
 * The contract between the DKG ceremony (a new key made by the committee that serves, on the same
 * framework as reshare and refresh: hello, signed dealings, public complaints, proposer + echo
 * quorum + votes) and the node's DKG runner. Design: core/ceremony/README.md, "DKG".
 *
 * The certificate of a DKG is the existing DkgPublicResult: a member's vote is its signature over
 * confirmMessage(dkgResultDigest(result)), so the result carries at least voteQuorum(n, t) ≥ t of
 * them and every verifier that exists today (node, gateway, client: verifyDkgPublicResult) accepts it
 * unchanged.
 */
import type { CommitteeMembership } from '../committee.ts';
import type { DkgPublicResult } from '../dkg/types.ts';
import type { CeremonyApi, CeremonyFaults } from './types.ts';

export interface DkgCeremonyParams {
  /** Validated with assertKeyId. */
  keyId: string;
  /** The committee serving (its epoch goes into the result): every member deals and receives. */
  committee: CommitteeMembership;
  /** 16 bytes chosen by the member that proposed the DKG; with the key id and committee it binds every message. */
  sessionId: Uint8Array;
  /**
   * A 32-byte node-local secret, encrypted at rest like a share (never derivable from a file that is
   * not): every random value (the dealing polynomial, sealing keys, the receiver key) is derived from
   * it and the session context, so a member that crashes and restarts sends byte-identical messages.
   */
  seed: Uint8Array;
  /** The vote this node already cast in this session (persisted before it was sent), if any. */
  priorVote?: Uint8Array;
  /**
   * The group of the new key's shares; absent = secp256k1. Each member takes it from its own view of
   * the key (a managed key's spec: node/key-material.ts), never from the proposer, and it is bound
   * into the ceremony id: members that disagree verify none of each other's messages.
   */
  curve?: 'ed25519';
}

export interface DkgCeremonyOutcome {
  /** Signed by at least voteQuorum(n, t) members (their votes); verifyDkgPublicResult accepts it. */
  result: DkgPublicResult;
  /** This member's share, when it received a valid sub-share from every qualified dealer; absent otherwise (it then holds no share of this key). */
  share?: bigint;
}

/** Test-only misbehaviour (the node passes these only when test faults are enabled). */
export interface DkgCeremonyFaults extends Omit<CeremonyFaults, 'wrongConstantTerm'> {
  /** As a dealer: a proof of knowledge of the constant term that does not verify. */
  badProofOfKnowledge?: boolean;
  /** As a receiver: complain against these honest dealers (with a proof that must fail). */
  falseComplaintAgainst?: number[];
}

/** The surface every ceremony has (types.ts CeremonyApi), so one runner skeleton drives DKG and reshare. */
export type DkgCeremonyApi = CeremonyApi<DkgCeremonyOutcome>;
