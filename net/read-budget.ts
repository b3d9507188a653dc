/**
 * Bytes of request frames a process holds for one class of peers (frames being read, and frames
 * read but not yet answered): at most `perPeerBytes` for any one peer id and `totalBytes` for all
 * of them together. A reader takes bytes before it keeps them, so memory never runs ahead of the
 * bound; a refused take ends that stream, never the process.
 */
export class ReadBudget {
  private readonly byPeer = new Map<string, number>();
  private total = 0;

  constructor(
    readonly perPeerBytes: number,
    readonly totalBytes: number,
  ) {
    if (!(perPeerBytes > 0 && totalBytes >= perPeerBytes)) throw new RangeError('ReadBudget needs 0 < perPeerBytes <= totalBytes');
  }

  /** Takes `bytes` for `peer`, or nothing (false) when either bound would be passed. */
  take(peer: string, bytes: number): boolean {
    const held = this.byPeer.get(peer) ?? 0;
    if (held + bytes > this.perPeerBytes || this.total + bytes > this.totalBytes) return false;
    this.byPeer.set(peer, held + bytes);
    this.total += bytes;
    return true;
  }

  give(peer: string, bytes: number): void {
    const held = (this.byPeer.get(peer) ?? 0) - bytes;
    if (held > 0) this.byPeer.set(peer, held);
    else this.byPeer.delete(peer);
    this.total = Math.max(0, this.total - bytes);
  }

  get held(): number {
    return this.total;
  }

  heldBy(peer: string): number {
    return this.byPeer.get(peer) ?? 0;
  }
}
