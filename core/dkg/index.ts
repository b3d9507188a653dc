export type { DkgFaults, DkgIdentity, DkgOutbound, DkgParams, DkgPhase, DkgPublicResult, DkgSessionOptions } from './types.ts';
export { DkgSession } from './session.ts';
export { decodeDkgPublicResult, encodeDkgPublicResult, parseDkgPublicResult, verifyDkgPublicResult, SESSION_ID_LENGTH } from './result.ts';
export { confirmMessage } from './context.ts';
export { decodeDkgMessage, type DkgMessage, type DkgCodecLimits } from './codec.ts';
export { DKG_SIGNATURE_DOMAIN, dkgSignedBytes, memberSignatureVerifier } from './member-signatures.ts';
