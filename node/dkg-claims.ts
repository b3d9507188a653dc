/**
 * Session ids seen per key id, each for a while and attributed to the member that showed the
 * evidence (its own proposal, a round-1 package of that session it signed, or a result t members
 * signed): the evidence that a key id had more than one DKG session, so that neither is stored.
 * Bounded per member: a member past its cap forgets its own oldest claim, so one member flooding
 * claims can block only the key ids it names, never evict what the others showed. The total is
 * at most n × the per-member cap.
 */
export const CLAIM_TTL_MS = 5 * 60_000;
export const MAX_CLAIMS_PER_MEMBER = 1024;

interface Claim {
  at: number;
  by: number;
}

export class SessionClaims {
  private readonly seen = new Map<string, Map<string, Claim>>();
  /** Per member: "keyId\0sessionId" of its claims, oldest first (Map keeps insertion order). */
  private readonly byMember = new Map<number, Map<string, true>>();

  constructor(
    private readonly ttlMs = CLAIM_TTL_MS,
    private readonly maxPerMember = MAX_CLAIMS_PER_MEMBER,
  ) {}

  /** Claims held, over all members. */
  get size(): number {
    let total = 0;
    for (const claims of this.byMember.values()) total += claims.size;
    return total;
  }

  has(keyId: string): boolean {
    return this.seen.has(keyId);
  }

  note(keyId: string, sessionIdHex: string, by: number): void {
    const now = Date.now();
    let sessions = this.seen.get(keyId);
    const existing = sessions?.get(sessionIdHex);
    // The first member to show a session keeps it: a later copy must not move it into another's quota.
    if (existing !== undefined) {
      existing.at = now;
      return;
    }
    let mine = this.byMember.get(by);
    if (mine === undefined) {
      mine = new Map();
      this.byMember.set(by, mine);
    }
    if (mine.size >= this.maxPerMember) this.prune(now, by);
    while (mine.size >= this.maxPerMember) {
      const oldest = mine.keys().next().value!;
      const [k, sid] = oldest.split('\0') as [string, string];
      mine.delete(oldest);
      this.forget(k, sid);
    }
    if (sessions === undefined) {
      sessions = new Map();
      this.seen.set(keyId, sessions);
    }
    sessions.set(sessionIdHex, { at: now, by });
    mine.set(`${keyId}\0${sessionIdHex}`, true);
  }

  /** Sessions other than this one seen for the key id within the TTL. */
  others(keyId: string, sessionIdHex: string): string[] {
    const now = Date.now();
    const sessions = this.seen.get(keyId);
    if (sessions === undefined) return [];
    return [...sessions].filter(([sid, c]) => sid !== sessionIdHex && now - c.at <= this.ttlMs).map(([sid]) => sid);
  }

  forget(keyId: string, sessionIdHex: string): void {
    const sessions = this.seen.get(keyId);
    const claim = sessions?.get(sessionIdHex);
    if (sessions === undefined || claim === undefined) return;
    sessions.delete(sessionIdHex);
    if (sessions.size === 0) this.seen.delete(keyId);
    this.byMember.get(claim.by)?.delete(`${keyId}\0${sessionIdHex}`);
  }

  private prune(now: number, by: number): void {
    for (const entry of [...(this.byMember.get(by)?.keys() ?? [])]) {
      const [keyId, sid] = entry.split('\0') as [string, string];
      const claim = this.seen.get(keyId)?.get(sid);
      if (claim === undefined || now - claim.at > this.ttlMs) {
        this.byMember.get(by)?.delete(entry);
        this.forget(keyId, sid);
      }
    }
  }
}
