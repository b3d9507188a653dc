export type { DkgPublicResult } from './types.ts';
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
export { DKG_SIGNATURE_DOMAIN, dkgSignedBytes, isAcceptableMemberKey, verifyMemberSignature } from './member-signatures.ts';
