/**
 * Session ids seen per key id (in proposals, payload frames and announced results), each for a
 * while: the evidence that a key id had more than one DKG session, so that neither is stored.
 * Bounded in key ids; when full the oldest key id is forgotten, which can only let a store go
 * ahead that the pre-store announcement to the other members still checks.
 */
export const CLAIM_TTL_MS = 5 * 60_000;
export const MAX_CLAIMED_KEYS = 4096;

export class SessionClaims {
  private readonly seen = new Map<string, Map<string, number>>();

  constructor(
    private readonly ttlMs = CLAIM_TTL_MS,
    private readonly maxKeyIds = MAX_CLAIMED_KEYS,
  ) {}

  get size(): number {
    return this.seen.size;
  }

  has(keyId: string): boolean {
    return this.seen.has(keyId);
  }

  note(keyId: string, sessionIdHex: string): void {
    const now = Date.now();
    let sessions = this.seen.get(keyId);
    if (sessions === undefined) {
      if (this.seen.size >= this.maxKeyIds) this.prune(now);
      if (this.seen.size >= this.maxKeyIds) this.seen.delete(this.seen.keys().next().value!);
      sessions = new Map();
      this.seen.set(keyId, sessions);
    }
    sessions.set(sessionIdHex, now);
  }

  /** Sessions other than this one seen for the key id within the TTL. */
  others(keyId: string, sessionIdHex: string): string[] {
    const now = Date.now();
    const sessions = this.seen.get(keyId);
    if (sessions === undefined) return [];
    return [...sessions].filter(([sid, at]) => sid !== sessionIdHex && now - at <= this.ttlMs).map(([sid]) => sid);
  }

  forget(keyId: string, sessionIdHex: string): void {
    this.seen.get(keyId)?.delete(sessionIdHex);
  }

  private prune(now: number): void {
    for (const [keyId, sessions] of this.seen) {
      for (const [sid, at] of sessions) if (now - at > this.ttlMs) sessions.delete(sid);
      if (sessions.size === 0) this.seen.delete(keyId);
    }
  }
}
