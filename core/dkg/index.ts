export type { DkgFaults, DkgIdentity, DkgOutbound, DkgParams, DkgPhase, DkgPublicResult, DkgSessionOptions } from './types.ts';
export { DkgSession } from './session.ts';
export {
  decodeDkgPublicResult,
  dkgPublicResultDigest,
  encodeDkgPublicResult,
  hasLegacyConfirmations,
  parseDkgPublicResult,
  verifyDkgPublicResult,
  SESSION_ID_LENGTH,
  type ExpectedCommittee,
} from './result.ts';
export { confirmMessage, dkgResultDigest, legacyConfirmMessage } from './context.ts';
export { decodeDkgMessage, type DkgMessage, type DkgCodecLimits } from './codec.ts';
export { DKG_SIGNATURE_DOMAIN, dkgSignedBytes, isAcceptableMemberKey, memberSignatureVerifier, verifyMemberSignature } from './member-signatures.ts';
