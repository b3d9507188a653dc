import type { NodeMisbehaviour, VerifiedKey } from './client-types.ts';
import type { RejectedPartial } from './partials.ts';

/**
 * The nodes whose partials failed verification for one client: counts by reason, and how long
 * later decrypts leave each out (while t others remain).
 */
export class NodeSuspects {
  /** Node id → epoch ms until which decrypts leave it out (it sent a partial that failed verification). */
  private readonly suspects = new Map<number, number>();
  private readonly rejectedCounts = new Map<number, Map<string, number>>();

  constructor(private readonly suspectMs: number) {}

  /** See TkmsClient.misbehaviour. */
  misbehaviour(): NodeMisbehaviour[] {
    const now = Date.now();
    const out: NodeMisbehaviour[] = [];
    for (const [nodeId, byCode] of this.rejectedCounts) {
      const until = this.suspects.get(nodeId) ?? 0;
      for (const [code, count] of byCode) out.push({ nodeId, code, count, avoidedUntil: until > now ? until : 0 });
    }
    return out.sort((a, b) => a.nodeId - b.nodeId || a.code.localeCompare(b.code));
  }

  noteRejected(key: VerifiedKey, rejected: readonly RejectedPartial[]): void {
    const until = Date.now() + this.suspectMs;
    for (const r of rejected) {
      // A member at an epoch this client cannot check is not lying.
      if (r.code === 'stale_epoch') continue;
      // Only committee members can be suspects; an id the gateway made up must not crowd them out.
      if (!key.verificationShares.has(r.nodeId)) continue;
      const byCode = this.rejectedCounts.get(r.nodeId) ?? new Map<string, number>();
      byCode.set(r.code, (byCode.get(r.code) ?? 0) + 1);
      this.rejectedCounts.set(r.nodeId, byCode);
      if (this.suspectMs > 0) this.suspects.set(r.nodeId, until);
    }
  }

  /** Nodes to leave out of a first request: the caller's, plus recent liars while t others remain. */
  initialExclude(key: VerifiedKey, avoid: readonly number[]): Set<number> {
    const exclude = new Set<number>(avoid);
    const now = Date.now();
    const withSuspects = new Set(exclude);
    for (const [nodeId, until] of this.suspects) {
      if (until <= now) this.suspects.delete(nodeId);
      else withSuspects.add(nodeId);
    }
    return key.n - withSuspects.size >= key.t ? withSuspects : exclude;
  }
}
