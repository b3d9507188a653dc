import type { CeremonyFamily, CeremonyShape, DealingMessage, KeyDealing } from './codec.ts';
import type { DealerStanding, QuorumSizes } from './agreement.ts';

/**
 * What makes a ceremony a reshare/refresh or a DKG; everything else (hello, dealings, complaints,
 * proposer + echo lock + votes, certificate, bounds, deadlines) is the one engine in engine.ts.
 * A kind is built once per ceremony from its parameters and holds only public data and this node's
 * constant terms (its old shares, or its fresh DKG secrets).
 */
export interface CeremonyMember {
  id: number;
  publicKey: Uint8Array;
}

/** One valid vote as the engine keeps it (the certificate is made from these). */
export interface VoteRecord {
  fromId: number;
  toId: number;
  signature: Uint8Array;
  raw: Uint8Array;
}

export interface CeremonyKind<Unsigned, Outcome> {
  /** Wire types and signing domain (codec.ts): a message of one family never passes in the other. */
  family: CeremonyFamily;
  /** Binds every message, every derived scalar and the transcript: the reshare proposal id, or the DKG session digest. */
  ceremonyId: Uint8Array;
  seed: Uint8Array;
  /** Who may deal ("from", sorted by id). */
  dealers: readonly CeremonyMember[];
  /** Who says hello, receives sub-shares, proposes, echoes and votes ("to", sorted by id). */
  receivers: readonly CeremonyMember[];
  keyIds: readonly string[];
  shape: CeremonyShape;
  quorum: QuorumSizes;
  /** This node's constant terms g(0), one per key, when it deals; undefined when it does not. */
  constantTerms: readonly bigint[] | undefined;
  /** Whether dealings prove knowledge of their constant terms (DKG) rather than match a published Y_j (reshare). */
  proveConstantTerms: boolean;
  /** The public checks of one key's dealing (constant term and sealing key). */
  keyDealingIsValid(dealer: number, keyIndex: number, dealing: KeyDealing): boolean;
  /** Why a dealing that fails keyDealingIsValid is out (disqualified()). */
  invalidDealingReason: string;
  /** The dealers a proposer picks (ascending), or undefined while too few qualify. */
  chooseDealers(standings: readonly DealerStanding[]): number[] | undefined;
  /** The unsigned certificate the agreed dealings determine and the digest votes sign; undefined when they determine none (the proposer is at fault). */
  combine(dealers: readonly number[], dealings: readonly DealingMessage[], transcriptHash: Uint8Array): { unsigned: Unsigned; digest: Uint8Array } | undefined;
  /** The bytes a vote's signature covers for a digest. */
  voteMessage(digest: Uint8Array): Uint8Array;
  /** A receiver's share of one key from its opened sub-shares (aligned with the agreed dealers). */
  combineShares(dealers: readonly number[], subShares: readonly bigint[], keyIndex: number): bigint;
  /** The outcome from the certified unsigned result, the votes (at least the quorum) and this node's shares per key, if it has them. */
  outcome(unsigned: Unsigned, votes: readonly VoteRecord[], shares: readonly bigint[] | undefined): Outcome;
  /** How disqualified() names a participant by role. */
  label(role: 'from' | 'to', id: number): string;
}
