import { maxMessageSize, type CeremonyMessageKind, type CeremonyShape } from './codec.ts';

/**
 * What a ceremony keeps of the messages it accepted, bounded per author and in total before
 * anything is stored (messages are checked and signed by then: an author is a member). Per author:
 * at most `perAuthorCount[kind]` messages of each kind (two of the one-per-author kinds, so an
 * equivocation is seen and proven, never more) and `perAuthorBytes` bytes; all authors together at
 * most `totalBytes`. A message past a bound is dropped, not an error: its author is already known to
 * misbehave, and the peer that relayed it may be honest.
 */
export interface InboxBounds {
  perAuthorCount: Record<CeremonyMessageKind, number>;
  perAuthorBytes: number;
  totalBytes: number;
}

export function inboxBounds(shape: CeremonyShape): InboxBounds {
  const size = (kind: CeremonyMessageKind) => maxMessageSize(shape, kind);
  // A member proposes in at most ceil(maxAttempts / n′) attempts; two proposals each (equivocation evidence).
  const proposals = 2 * Math.ceil(shape.maxAttempts / shape.nTo);
  const perAuthorCount: Record<CeremonyMessageKind, number> = {
    hello: 2,
    dealing: 2,
    // One per dealer and key, twice: a complaint's DLEQ nonce is hedged, so a restarted member's differs.
    complaint: 2 * shape.n * shape.keys,
    proposal: proposals,
    echo: 2 * shape.maxAttempts,
    vote: 2,
    certificate: 2,
  };
  const perAuthorBytes =
    2 * size('hello') + 2 * size('dealing') + perAuthorCount.complaint * size('complaint') + proposals * size('proposal') + perAuthorCount.echo * size('echo') + 2 * size('vote') + 2 * size('certificate');
  // Every member's honest share (one of each) plus room for two members' worst case. A DKG's
  // participants are its one committee (each deals and receives); a reshare's, both committees.
  const honest = size('hello') + size('dealing') + shape.n * shape.keys * size('complaint') + size('proposal') + shape.maxAttempts * size('echo') + size('vote') + size('certificate');
  const participants = shape.family === 'dkg' ? shape.n : shape.n + shape.nTo;
  const totalBytes = participants * honest + 2 * perAuthorBytes;
  return { perAuthorCount, perAuthorBytes, totalBytes };
}

export class Inbox {
  private readonly counts = new Map<string, number>();
  private readonly bytes = new Map<string, number>();
  private total = 0;

  constructor(readonly bounds: InboxBounds) {}

  /** Reserves room for one message of `author` (a participant label such as "to:3"); false = drop it. */
  admit(author: string, kind: CeremonyMessageKind, size: number): boolean {
    const countKey = `${author}/${kind}`;
    const count = this.counts.get(countKey) ?? 0;
    const bytes = this.bytes.get(author) ?? 0;
    if (count >= this.bounds.perAuthorCount[kind]) return false;
    if (bytes + size > this.bounds.perAuthorBytes) return false;
    if (this.total + size > this.bounds.totalBytes) return false;
    this.counts.set(countKey, count + 1);
    this.bytes.set(author, bytes + size);
    this.total += size;
    return true;
  }

  storedBytes(): number {
    return this.total;
  }
}
