import { committeeFileDigest, type Committee } from '../core/committee.ts';
import { equalBytes, encodeHex, TkmsError } from '../core/index.ts';
import { isRefresh, proposalDigest } from '../core/ceremony/proposal.ts';
import type { ReshareProposal } from '../core/ceremony/types.ts';
import type { StoredApproval } from './epoch-types.ts';

/**
 * The control plane's rules: which proposals this node takes part in. A reshare (members or t
 * change) only by its own operator's approval through the loopback admin API; a refresh (same
 * members, same t) also from a member over libp2p, within the rate below. Pure: the runner hands
 * in what the node serves and holds.
 */

/** Default fewest seconds between two refreshes accepted from peers (config reshare.minRefreshSpacingSeconds). */
export const MIN_REFRESH_SPACING_SECONDS = 60;

export interface ApprovalContext {
  /** The committee this node serves now. */
  served: Committee;
  /** This node's raw Ed25519 public key. */
  selfKey: Uint8Array;
  /** The key ids the committee holds at the served epoch (this node's shares; or known, without a share, by a member that joined late), sorted. */
  heldKeyIds: readonly string[];
  approvals: readonly StoredApproval[];
  /** Whether an approved proposal's ceremony ended (done or failed). */
  finished: (proposalId: string) => boolean;
  /** Whether this node recorded a vote for that proposal (the store's vote lock). */
  voted: (proposalId: string) => boolean;
}

export interface CheckedProposal {
  proposal: ReshareProposal;
  proposalId: string;
  kind: 'reshare' | 'refresh';
  /** Already approved here (an idempotent repeat). */
  known: StoredApproval | undefined;
}

const hasMember = (c: Committee, key: Uint8Array): boolean => c.members.some((m) => equalBytes(m.publicKey, key));

function sameDigest(a: Committee, b: Committee): boolean {
  return equalBytes(committeeFileDigest(a), committeeFileDigest(b));
}

/** The approval in progress that is not this proposal's, if any. */
function otherUnfinished(ctx: ApprovalContext, proposalId: string): StoredApproval | undefined {
  return ctx.approvals.find((a) => a.proposalId !== proposalId && a.status === 'approved' && !ctx.finished(a.proposalId));
}

/**
 * A node that voted for one proposal leaving an epoch takes part in no other proposal leaving it:
 * with the leaving quorum of a handover (voteQuorum), two certificates for one epoch would then need
 * an honest member to vote twice, so an epoch is never left twice (core/ceremony/README.md).
 */
function refuseSecondVoteForEpoch(ctx: ApprovalContext, proposal: ReshareProposal, proposalId: string, code: 'conflict' | 'not_approved'): void {
  const voted = ctx.approvals.find(
    (a) => a.proposalId !== proposalId && a.proposal.from.committeeId === proposal.from.committeeId && a.proposal.from.epoch === proposal.from.epoch && ctx.voted(a.proposalId),
  );
  if (voted !== undefined) {
    throw new TkmsError(code, `this node voted for proposal ${voted.proposalId}, which leaves epoch ${proposal.from.epoch} too; it takes part in no other proposal leaving that epoch`);
  }
}

/**
 * The operator approves a proposal file (already parsed). Refused: a `from` that is not the
 * committee served here (a member joining, not in `from`, holding nothing, was started with `to`
 * itself), a node in neither committee, key ids other than those held (a dealer must move every
 * key it holds), another approval still running.
 */
export function checkOperatorApproval(proposal: ReshareProposal, ctx: ApprovalContext): CheckedProposal {
  const proposalId = encodeHex(proposalDigest(proposal));
  const inFrom = hasMember(proposal.from, ctx.selfKey);
  const inTo = hasMember(proposal.to, ctx.selfKey);
  if (!inFrom && !inTo) throw new TkmsError('bad_request', 'this node is a member of neither the committee leaving nor the one arriving');
  // Started with `to` as its committee file and not yet through the handover: it knows no key.
  const joining = !inFrom && ctx.heldKeyIds.length === 0 && sameDigest(ctx.served, proposal.to);
  if (!joining && !sameDigest(ctx.served, proposal.from)) {
    throw new TkmsError(
      'stale_epoch',
      `the proposal's "from" is not the committee this node serves (${ctx.served.committeeId} at epoch ${ctx.served.epoch}, ${encodeHex(committeeFileDigest(ctx.served))})`,
    );
  }
  if (inFrom) {
    const want = proposal.keyIds.join(',');
    const held = [...ctx.heldKeyIds].sort().join(',');
    if (want !== held) {
      throw new TkmsError('conflict', `the proposal moves keys [${proposal.keyIds.join(', ')}] but this node holds [${[...ctx.heldKeyIds].sort().join(', ')}] at epoch ${ctx.served.epoch}: every held key must move, and only those`);
    }
  }
  const known = ctx.approvals.find((a) => a.proposalId === proposalId);
  if (known?.status === 'cancelled') throw new TkmsError('conflict', `proposal ${proposalId} was cancelled here; propose again (a new proposal file)`);
  refuseSecondVoteForEpoch(ctx, proposal, proposalId, 'conflict');
  const other = otherUnfinished(ctx, proposalId);
  if (other !== undefined) throw new TkmsError('reshare_in_progress', `proposal ${other.proposalId} is approved and not finished; cancel it first or wait`);
  return { proposal, proposalId, kind: isRefresh(proposal) ? 'refresh' : 'reshare', known };
}

/** The refresh of the served committee this node starts itself (POST /admin/refresh, the schedule). */
export function buildRefreshProposal(served: Committee, heldKeyIds: readonly string[]): ReshareProposal {
  if (heldKeyIds.length === 0) throw new TkmsError('bad_request', 'this node holds no key to refresh');
  return { from: served, to: { ...served, epoch: served.epoch + 1 }, keyIds: [...heldKeyIds].sort() };
}

/**
 * Refreshes accepted from peers, across epochs: how long until the next one may start. Keyed by
 * epoch, as first built, each refresh's commit reset the clock, so one member could run refreshes
 * back to back (and grow the handover chain without end).
 */
export class RefreshRate {
  private lastAt: number | undefined;

  constructor(private readonly spacingSeconds: number) {}

  /** The spacing: the configured minimum, or half the committee's refresh interval when that is longer. */
  static forCommittee(c: Committee, minSpacingSeconds = MIN_REFRESH_SPACING_SECONDS): RefreshRate {
    return new RefreshRate(Math.max(minSpacingSeconds, Math.floor((c.refreshIntervalSeconds ?? 0) / 2)));
  }

  /** Throws rate_limited when a refresh was accepted from a peer too recently; else records one. */
  take(c: Committee, nowMs: number): void {
    const last = this.lastAt;
    if (last !== undefined && nowMs - last < this.spacingSeconds * 1000) {
      const wait = Math.ceil((this.spacingSeconds * 1000 - (nowMs - last)) / 1000);
      throw new TkmsError('rate_limited', `a refresh of ${c.committeeId} was accepted ${Math.floor((nowMs - last) / 1000)} s ago; at most one per ${this.spacingSeconds} s`, { retryAfterSeconds: wait });
    }
    this.lastAt = nowMs;
  }
}

/**
 * A proposal a member sent over libp2p (a `refresh` frame). Anything that changes members or t
 * is refused with not_approved and changes nothing: only this node's operator approves those. A
 * refresh is taken only of exactly the committee served here and exactly the keys held, with no
 * other approval running, at most once per spacing (RefreshRate).
 */
export function checkPeerRefresh(proposal: ReshareProposal, ctx: ApprovalContext, rate: RefreshRate, nowMs: number): CheckedProposal {
  const proposalId = encodeHex(proposalDigest(proposal));
  if (!isRefresh(proposal)) throw new TkmsError('not_approved', 'a committee change (members or t) needs this node\'s operator\'s approval; a member cannot propose one');
  if (!sameDigest(ctx.served, proposal.from)) throw new TkmsError('not_approved', `the refresh is not of the committee this node serves (epoch ${ctx.served.epoch})`);
  if (!hasMember(proposal.from, ctx.selfKey)) throw new TkmsError('not_approved', 'this node is not a member of the committee refreshed');
  if (proposal.keyIds.join(',') !== [...ctx.heldKeyIds].sort().join(',')) throw new TkmsError('not_approved', 'the refresh does not move exactly the keys this node holds');
  const known = ctx.approvals.find((a) => a.proposalId === proposalId);
  if (known !== undefined) {
    if (known.status === 'cancelled') throw new TkmsError('not_approved', 'this refresh was cancelled here');
    // A peer cannot restart a refresh that ended here (only this node's operator can, POST /admin/refresh).
    if (ctx.finished(proposalId)) throw new TkmsError('not_approved', 'this refresh ended here; a member cannot start it again');
    return { proposal, proposalId, kind: 'refresh', known };
  }
  refuseSecondVoteForEpoch(ctx, proposal, proposalId, 'not_approved');
  const other = otherUnfinished(ctx, proposalId);
  if (other !== undefined) throw new TkmsError('reshare_in_progress', `proposal ${other.proposalId} is approved here and not finished`);
  rate.take(proposal.from, nowMs);
  return { proposal, proposalId, kind: 'refresh', known: undefined };
}
