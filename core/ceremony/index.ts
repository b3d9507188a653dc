export { ReshareCeremony } from './ceremony.ts';
export { decodeCeremonyMessage, maxMessageSize, CEREMONY_MESSAGE_TYPES, CEREMONY_WIRE_VERSION, type CeremonyShape, type CeremonyMessageKind, type DecodedCeremonyMessage } from './codec.ts';
export { inboxBounds, type InboxBounds } from './inbox.ts';
export { maxAttempts, finalDeadline } from './deadlines.ts';
export { quorumSizes, type QuorumSizes } from './agreement.ts';
export {
  followHandovers,
  handoverDigest,
  handoverKeyJson,
  handoverVoteMessage,
  MAX_HANDOVER_CHAIN,
  MAX_HANDOVER_KEYS,
  parseHandoverCertificate,
  toleratedFaults,
  verifyHandover,
  voteQuorum,
  type FollowedCommittee,
  type HandoverCertificate,
  type HandoverKey,
  type KeyEpochData,
  type UnsignedHandover,
  type VerifiedHandover,
} from './handover.ts';
export { isRefresh, parseReshareProposal, proposalDigest, reshareProposalToJson } from './proposal.ts';
export type {
  CeremonyFaults,
  CeremonyIdentity,
  CeremonyOutbound,
  CeremonyPhase,
  CeremonyStep,
  CeremonyTiming,
  CeremonyApi,
  ReshareCeremonyApi,
  ReshareOutcome,
  ReshareParams,
  ReshareProposal,
} from './types.ts';
export type { DkgCeremonyApi, DkgCeremonyFaults, DkgCeremonyOutcome, DkgCeremonyParams } from './dkg-types.ts';
export { DkgCeremony, dkgCeremonyId } from './dkg.ts';
export { DKG_CEREMONY_MESSAGE_TYPES, ceremonyMessageKind, type CeremonyFamily } from './codec.ts';
