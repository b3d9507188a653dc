/**
 * What a member has seen of DKG sessions for a key id, for a while, so that a key id with two
 * sessions is stored by neither. A session counts as evidence only if it could produce a key: a
 * result t members signed, or signed round-1 packages from at least t distinct dealers of it (a
 * session with fewer qualified dealers aborts). One member's own proposal or round-1 package is not
 * evidence: otherwise any member could block any key id.
 * Bounded per member: each sighting counts against the member that showed it (the dealer of a
 * round-1 package, the sender of a result); a member past its cap forgets its own oldest, so one
 * member flooding can never evict what the others showed. The total is at most n × the cap.
 */
export const CLAIM_TTL_MS = 5 * 60_000;
export const MAX_CLAIMS_PER_MEMBER = 1024;

interface Sightings {
  /** Dealer → when its signed round-1 package of the session was last seen. */
  dealers: Map<number, number>;
  /** Member → when it last showed a result of the session that t members signed. */
  results: Map<number, number>;
}

export class SessionClaims {
  private readonly seen = new Map<string, Map<string, Sightings>>();
  /** Per member: "keyId\0sessionId" of the sessions it showed something of, oldest first (Map keeps insertion order). */
  private readonly byMember = new Map<number, Map<string, true>>();

  constructor(
    /** The committee's threshold: round-1 packages from this many dealers make a session evidence. */
    private readonly t: number,
    private readonly ttlMs = CLAIM_TTL_MS,
    private readonly maxPerMember = MAX_CLAIMS_PER_MEMBER,
  ) {}

  /** Sightings held, over all members. */
  get size(): number {
    let total = 0;
    for (const claims of this.byMember.values()) total += claims.size;
    return total;
  }

  has(keyId: string): boolean {
    return this.seen.has(keyId);
  }

  /** Whether this dealer's round-1 package of the session was already seen (so it need not be verified again). */
  hasRound1(keyId: string, sessionIdHex: string, dealer: number): boolean {
    return this.seen.get(keyId)?.get(sessionIdHex)?.dealers.has(dealer) ?? false;
  }

  /** A round-1 package of the session, signed by its dealer (the caller checked the signature). */
  noteRound1(keyId: string, sessionIdHex: string, dealer: number): void {
    this.sightings(keyId, sessionIdHex, dealer).dealers.set(dealer, Date.now());
  }

  /** A result of the session t members signed (the caller checked it), shown by `by`. */
  noteResult(keyId: string, sessionIdHex: string, by: number): void {
    this.sightings(keyId, sessionIdHex, by).results.set(by, Date.now());
  }

  /** Sessions other than this one for the key id that are evidence within the TTL. */
  others(keyId: string, sessionIdHex: string): string[] {
    const now = Date.now();
    const fresh = (m: Map<number, number>) => [...m.values()].filter((at) => now - at <= this.ttlMs).length;
    const sessions = this.seen.get(keyId);
    if (sessions === undefined) return [];
    return [...sessions].filter(([sid, s]) => sid !== sessionIdHex && (fresh(s.results) > 0 || fresh(s.dealers) >= this.t)).map(([sid]) => sid);
  }

  forget(keyId: string, sessionIdHex: string): void {
    const sessions = this.seen.get(keyId);
    const s = sessions?.get(sessionIdHex);
    if (sessions === undefined || s === undefined) return;
    sessions.delete(sessionIdHex);
    if (sessions.size === 0) this.seen.delete(keyId);
    for (const id of new Set([...s.dealers.keys(), ...s.results.keys()])) this.byMember.get(id)?.delete(`${keyId}\0${sessionIdHex}`);
  }

  /** The session's sightings, with a slot in `by`'s quota (its oldest forgotten when full). */
  private sightings(keyId: string, sessionIdHex: string, by: number): Sightings {
    const now = Date.now();
    const entry = `${keyId}\0${sessionIdHex}`;
    let mine = this.byMember.get(by);
    if (mine === undefined) {
      mine = new Map();
      this.byMember.set(by, mine);
    }
    if (mine.has(entry)) {
      // Refreshed: now the newest of this member's.
      mine.delete(entry);
    } else {
      if (mine.size >= this.maxPerMember) this.prune(now, by);
      while (mine.size >= this.maxPerMember) this.drop(by, mine.keys().next().value!);
    }
    mine.set(entry, true);
    let sessions = this.seen.get(keyId);
    if (sessions === undefined) {
      sessions = new Map();
      this.seen.set(keyId, sessions);
    }
    let s = sessions.get(sessionIdHex);
    if (s === undefined) {
      s = { dealers: new Map(), results: new Map() };
      sessions.set(sessionIdHex, s);
    }
    return s;
  }

  /** Forgets only what member `by` showed of one session. */
  private drop(by: number, entry: string): void {
    this.byMember.get(by)?.delete(entry);
    const [keyId, sid] = entry.split('\0') as [string, string];
    const sessions = this.seen.get(keyId);
    const s = sessions?.get(sid);
    if (sessions === undefined || s === undefined) return;
    s.dealers.delete(by);
    s.results.delete(by);
    if (s.dealers.size > 0 || s.results.size > 0) return;
    sessions.delete(sid);
    if (sessions.size === 0) this.seen.delete(keyId);
  }

  private prune(now: number, by: number): void {
    for (const entry of [...(this.byMember.get(by)?.keys() ?? [])]) {
      const [keyId, sid] = entry.split('\0') as [string, string];
      const s = this.seen.get(keyId)?.get(sid);
      const at = Math.max(s?.dealers.get(by) ?? -Infinity, s?.results.get(by) ?? -Infinity);
      if (now - at > this.ttlMs) this.drop(by, entry);
    }
  }
}
