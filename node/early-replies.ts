/**
 * Payloads from one peer queued on a ceremony engine and not processed yet, beyond which a frame's
 * reply waits for its payload's processing. Below it a frame is answered as soon as its payload is
 * queued: a reply that waited for the engine (and everything queued before on it) kept the
 * sender's FIFO to this node blocked, and on a loaded machine timed it out and had it sent again,
 * while the payload was already here. Above it the peer's own stream bound (node/daemon.ts) caps
 * what it holds here.
 */
export const UNPROCESSED_PER_PEER = 8;

/** The early replies of one runner (reshare or DKG): a count per peer of its payloads not processed yet. */
export class EarlyReplies {
  private readonly unprocessed = new Map<string, number>();

  constructor(private readonly perPeer = UNPROCESSED_PER_PEER) {}

  /**
   * Runs `work` (the engine call and what follows it) for a payload from `peer`; resolves as soon as
   * it is queued while the peer has at most `perPeer` payloads unprocessed here, else once `work`
   * settled (its refusal then reaches the sender). A refusal found after the early reply goes to
   * `onLateRefusal` (the sender has its answer already).
   */
  async answer(peer: string, work: () => Promise<void>, onLateRefusal: (e: unknown) => void): Promise<void> {
    const queued = (this.unprocessed.get(peer) ?? 0) + 1;
    this.unprocessed.set(peer, queued);
    const done = work().finally(() => {
      const left = (this.unprocessed.get(peer) ?? 1) - 1;
      if (left === 0) this.unprocessed.delete(peer);
      else this.unprocessed.set(peer, left);
    });
    if (queued <= this.perPeer) {
      done.catch(onLateRefusal);
      return;
    }
    await done;
  }
}
