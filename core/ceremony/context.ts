import type { Disqualifications } from './disqualifications.ts';
import type { CeremonyKind } from './kind.ts';
import type { CeremonyMessages } from './messages.ts';
import type { CeremonyRoster } from './roster.ts';
import type { CeremonyFaults, CeremonyTiming } from './types.ts';

/**
 * Test-only misbehaviour the engine acts out (the node passes these only when test faults are
 * enabled); a wrong constant term is the reshare kind's (it picks the constant terms).
 */
export interface EngineFaults extends Omit<CeremonyFaults, 'wrongConstantTerm'> {
  /** As a DKG dealer: a proof of knowledge of the constant term that does not verify. */
  badProofOfKnowledge?: boolean;
  /** As a receiver: complain against these dealers' valid sub-shares (the complaint cannot hold). */
  falseComplaintAgainst?: number[];
}

/**
 * What the engine's books (dealings, proposals, votes) share of one ceremony: its kind, who takes
 * part, the message layer, the faults to act out, the timing, the record of who is at fault, and
 * the latest time the runner passed in (the books keep no clock of their own).
 */
export interface CeremonyContext<Unsigned, Outcome> {
  kind: CeremonyKind<Unsigned, Outcome>;
  roster: CeremonyRoster;
  messages: CeremonyMessages;
  faults: EngineFaults;
  timing: CeremonyTiming;
  disqualifications: Disqualifications;
  now(): number;
}
