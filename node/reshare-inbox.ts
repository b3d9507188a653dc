import { equalBytes, TkmsError } from '../core/index.ts';

/**
 * Ceremony payloads for a proposal this node has not approved (yet): its operator may approve a
 * little after the others, and what arrived meanwhile saves a round of retransmits. Bounded per
 * peer (count and bytes) and in peers, dropped after a while; anything past a bound is refused
 * (not_approved) and not kept, and the sender's periodic retransmit delivers it after approval.
 * Senders re-send what was refused every half phase for as long as the operator takes to approve
 * (up to reshare.approvalWindowSeconds), so a copy of a payload already held is not kept twice:
 * copies would fill the per-peer bound and crowd out the sender's later, different messages.
 */
export interface InboxLimits {
  perPeerPayloads: number;
  perPeerBytes: number;
  peers: number;
  ttlMs: number;
}

export const INBOX_LIMITS: InboxLimits = { perPeerPayloads: 64, perPeerBytes: 1024 * 1024, peers: 512, ttlMs: 60_000 };

interface Held {
  proposalId: string;
  payload: Uint8Array;
  at: number;
}

export class PreApprovalInbox {
  private readonly byPeer = new Map<string, Held[]>();

  constructor(private readonly limits: InboxLimits = INBOX_LIMITS) {}

  /** Keeps the payload, or throws not_approved when a bound is reached (nothing is kept then). */
  hold(peer: string, proposalId: string, payload: Uint8Array, nowMs: number): void {
    this.expire(nowMs);
    let list = this.byPeer.get(peer);
    const refuse = (why: string): never => {
      throw new TkmsError('not_approved', `this node has not approved proposal ${proposalId} (${why}); send it again after its operator approves`);
    };
    if (list === undefined) {
      if (this.byPeer.size >= this.limits.peers) refuse('early messages from too many peers held');
      list = [];
    }
    const copy = list.find((h) => h.proposalId === proposalId && equalBytes(h.payload, payload));
    if (copy !== undefined) {
      copy.at = nowMs;
      return;
    }
    if (list.length >= this.limits.perPeerPayloads) refuse(`${this.limits.perPeerPayloads} early messages from this peer held`);
    const bytes = list.reduce((sum, h) => sum + h.payload.length, 0);
    if (bytes + payload.length > this.limits.perPeerBytes) refuse(`${this.limits.perPeerBytes} bytes of early messages from this peer held`);
    list.push({ proposalId, payload, at: nowMs });
    this.byPeer.set(peer, list);
  }

  /** Every held payload of the proposal (in arrival order per peer), removed from the inbox. */
  take(proposalId: string, nowMs: number): { peer: string; payload: Uint8Array }[] {
    this.expire(nowMs);
    const out: { peer: string; payload: Uint8Array }[] = [];
    for (const [peer, list] of this.byPeer) {
      const keep = list.filter((h) => {
        if (h.proposalId !== proposalId) return true;
        out.push({ peer, payload: h.payload });
        return false;
      });
      if (keep.length === 0) this.byPeer.delete(peer);
      else this.byPeer.set(peer, keep);
    }
    return out;
  }

  /** Payloads held now (for tests and status). */
  get size(): number {
    let n = 0;
    for (const list of this.byPeer.values()) n += list.length;
    return n;
  }

  private expire(nowMs: number): void {
    for (const [peer, list] of this.byPeer) {
      const keep = list.filter((h) => nowMs - h.at <= this.limits.ttlMs);
      if (keep.length === 0) this.byPeer.delete(peer);
      else if (keep.length !== list.length) this.byPeer.set(peer, keep);
    }
  }
}
