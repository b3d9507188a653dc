/**
 * The contract between the pure DKG state machine (core/dkg) and the node's DKG runner.
 * Everything here is public data except what `DkgSession.takeShare()` returns.
 */
export interface DkgParams {
  /** Validated with assertKeyId. */
  keyId: string;
  committeeId: string;
  /** 16 random bytes chosen by the member that proposed the DKG; binds every message. */
  sessionId: Uint8Array;
  /** Threshold: any t shares reconstruct, t − 1 reveal nothing. */
  t: number;
  /** All committee member ids (Shamir x-coordinates), e.g. [1..n]. */
  memberIds: number[];
  /** This node's id, in memberIds. */
  selfId: number;
  /** The committee epoch the key is made at (core/ceremony); absent = 0. Carried into the result (DkgPublicResult.epoch). */
  epoch?: number;
}

/** Signatures by committee members (the node implements it with its libp2p Ed25519 identity key). Synchronous. */
export interface DkgIdentity {
  sign(message: Uint8Array): Uint8Array;
  verify(memberId: number, message: Uint8Array, signature: Uint8Array): boolean;
  /** Raw 32-byte Ed25519 key of every committee member: part of what the result's signatures cover. */
  memberKeys: ReadonlyMap<number, Uint8Array>;
}

/** `to: 'all'` = every other member. */
export interface DkgOutbound {
  to: number | 'all';
  payload: Uint8Array;
}

export type DkgPhase = 'round1' | 'echo' | 'round2' | 'complaints' | 'confirm' | 'done' | 'aborted';

/** Test-only misbehaviour; the node only passes these when test faults are explicitly enabled. */
export interface DkgFaults {
  /** Send a wrong round-2 share to these members. */
  badShareTo?: number[];
  /** Take part in nothing after receiving the proposal. */
  silent?: boolean;
  /** Send a different round-1 package to these members. */
  equivocateRound1?: number[];
  /** Complain against these (honest) dealers. */
  falseComplaintAgainst?: number[];
  /** Send these members no round-2 share, and answer their complaint with a sealed share that does not match. */
  badJustificationTo?: number[];
  /** Complain against these (honest) dealers, then claim their (valid) justification is bad, with its real pair key as evidence. */
  falseEvidenceAgainst?: number[];
  /**
   * The Diffie–Hellman oracle attack on sealed answers: send `complainer` no round-2 share and never
   * answer its complaint honestly; when dealer `victim` answers the complainer, answer with
   * D' = D_victim + offset·G and a garbage ciphertext (sealed to the key the victim used and to the
   * key of the complaint against us), so that the complainer's evidence would reveal e·D'.
   */
  shiftedAnswer?: { complainer: number; victim: number; offset: number };
  /** Sign a second complaints message (same complaints, fresh keys) and send it to these members instead. */
  equivocateComplaints?: number[];
}

export interface DkgPublicResult {
  keyId: string;
  committeeId: string;
  /**
   * The committee epoch the key was made at (core/ceremony); absent = 0, and then the digest is the
   * v2 digest results were always signed with. Present (≥ 1) it is part of what members sign.
   */
  epoch?: number;
  /** 0x + 16 bytes hex. */
  sessionId: string;
  t: number;
  n: number;
  /** 0x + 33-byte compressed point. */
  groupPublicKey: string;
  /** Member id (decimal string) → 0x compressed Y_i = share_i·G, for EVERY member id. */
  verificationShares: Record<string, string>;
  /** Dealer ids whose contributions form the key (sorted). */
  qualified: number[];
  /** 0x + 32 bytes. */
  transcriptHash: string;
  /** Member id → 0x signature over the digest of all other fields and the member keys (see dkgResultDigest, confirmMessage). */
  signatures: Record<string, string>;
}

export interface DkgSessionOptions {
  faults?: DkgFaults;
}
