/**
 * The contract between the node's reshare runner (node/reshare-runner.ts) and its durable state
 * (node/epoch-store.ts): which committee epoch the node serves, the shares of each epoch, the
 * operator's approvals and the vote lock. Everything is on disk before it takes effect.
 */
import type { Committee, CommitteeMembership } from '../core/committee.ts';
import type { HandoverCertificate, KeyEpochData, VerifiedHandover } from '../core/ceremony/handover.ts';
import type { ReshareProposal } from '../core/ceremony/types.ts';

/** The epoch a node serves: its committee file's when it never committed a handover, else the last certificate's `to`. */
export interface ServedEpoch {
  committee: Committee;
  /** Committed certificates this node holds, oldest first (a member that joined late holds only the later ones). */
  handovers: HandoverCertificate[];
}

/** One share this node serves at the epoch it serves. */
export interface EpochShare {
  keyId: string;
  share: bigint;
  data: KeyEpochData;
}

export type ApprovalStatus = 'approved' | 'cancelled';

export interface StoredApproval {
  proposalId: string;
  proposal: ReshareProposal;
  status: ApprovalStatus;
  /** ISO time of the operator's approval (or of the automatic one, for a refresh). */
  approvedAt: string;
}

export interface EpochStore {
  served(): ServedEpoch;
  /**
   * The new shares of a ceremony this node is arriving in (epoch = proposal's to.epoch), sealed like
   * every share and written atomically beside the served ones, never over them. Not served until
   * `commit`. Idempotent for the same proposal and shares.
   */
  savePending(proposalId: string, shares: ReadonlyMap<string, bigint>, keys: readonly KeyEpochData[]): Promise<void>;
  /** The pending shares of a proposal (after a restart), or undefined. */
  loadPending(proposalId: string): Promise<Map<string, bigint> | undefined>;
  /**
   * The commit. Stores the certificate (the one durable act that switches epochs), then serves
   * to.epoch's shares (from savePending; none when this node is not in `to`), then erases the shares
   * of the epoch left. A restart at any point finds either the old epoch complete or the new one.
   * Idempotent; refuses (stale_epoch) a certificate that does not leave the served epoch.
   */
  commit(handover: VerifiedHandover, proposalId: string): Promise<void>;
  /** The shares served now (loaded at open and after each commit). */
  shares(): EpochShare[];

  /** The operator's approval of a proposal (admin API), durable before the node deals or votes for it. */
  saveApproval(approval: StoredApproval): Promise<void>;
  approvals(): StoredApproval[];
  /** A vote signed for a proposal: written (fsync) before it is sent, so a restart never signs a second one. */
  recordVote(proposalId: string, vote: Uint8Array): Promise<void>;
  priorVote(proposalId: string): Uint8Array | undefined;
}

/**
 * EpochStore plus what the runner and the DKG path need beyond the shared contract (node/epoch-store.ts
 * openEpochStore). Every proposalId the store takes is encodeHex(proposalDigest(proposal)): 0x + 64
 * lower-case hex; anything else is bad_request.
 */
export interface NodeEpochStore extends EpochStore {
  /** Public data of every key at the served epoch (also keys this node holds no share of), sorted by key id. */
  epochKeys(): KeyEpochData[];
  /** One key's public data at the served epoch, if it is served. */
  keyData(keyId: string): KeyEpochData | undefined;
  /** This node's member id in the served committee, or undefined when it is not a member. */
  memberId(): number | undefined;
  /**
   * Serves a key a DKG just stored in the keystore (Keystore.save) at the served epoch: read back
   * and authenticated from its file. stale_epoch for a result of another epoch, conflict for a key id already served.
   */
  noteDkgKey(keyId: string): Promise<EpochShare>;
  /** The committee of an epoch on the stored chain (the committee file's, and both ends of every certificate held), or undefined. */
  committeeAt(epoch: number): CommitteeMembership | undefined;
  /**
   * The DKG public results (origins) of the keys the last certificate moved to the served epoch,
   * sorted by key id: kept when the commit erased their DKG-time files, or taken from peers by a
   * member that joined (saveOrigin). Published with the certificates so a verifier pinned to an
   * earlier committee checks the key end to end.
   */
  origins(): Record<string, unknown>[];
  /** Key ids moved to the served epoch whose origin this node does not hold yet (a joiner's, until its peers gave it). */
  missingOrigins(): string[];
  /**
   * Stores a key's origin (its signatures are the caller's to check, against the committee of its
   * epoch): bad_request unless it names a key moved here with the certified group key, made before
   * the served epoch. True once held (false when one was already).
   */
  saveOrigin(publicResult: Record<string, unknown>): Promise<boolean>;
  /** When the served epoch was committed (ms since 1970; after a restart, the certificate file's mtime); undefined at the committee file's epoch. */
  committedAt(): number | undefined;
  /**
   * Drops the share of a key whose files were erased (node/key-erasure.ts), after any commit under
   * way, so it is neither served after the next commit nor dealt again; its public data stays.
   */
  forgetShare(keyId: string): Promise<void>;
  /**
   * Keys a certificate may leave behind: a managed key destroyed by its admins (node/key-deletion.ts)
   * is not carried to the next committee, and a handover that drops it is not a lost key.
   */
  setDroppable(droppable: (keyId: string) => boolean): void;
}

/**
 * The node's admin API for committee changes (loopback only, like every admin route); the CLI's
 * `tkms node approve` / `tkms node refresh` / `tkms node status` call these. Bodies are JSON.
 * - POST /admin/reshare/approve   body: the proposal file → 202 { proposalId, kind: "reshare"|"refresh", status }
 * - POST /admin/reshare/cancel    body: { proposalId } → 200 { proposalId, status: "cancelled" } (409 not_approved… if it already voted)
 * - POST /admin/refresh           body: {} → 202 { proposalId, kind: "refresh", status }
 * - GET  /admin/reshare           → 200 { epoch, committee, handovers: n, proposals: [ReshareStatus] }
 */
export interface ReshareStatus {
  proposalId: string;
  kind: 'reshare' | 'refresh';
  fromEpoch: number;
  toEpoch: number;
  status: 'approved' | 'running' | 'done' | 'failed' | 'cancelled';
  phase: string;
  attempt: number;
  startedAt: string | null;
  durationMs: number | null;
  failureReason: string | null;
  disqualified: Record<string, string>;
}
