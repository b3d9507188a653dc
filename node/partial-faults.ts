/** Test-only misbehaviour of the partial handler, accepted only with TKMS_ENABLE_TEST_FAULTS=1. */
export type PartialFault = 'wrong_partial' | 'wrong_proof' | 'other_k' | 'garbage' | 'late';
export const PARTIAL_FAULTS: readonly PartialFault[] = ['wrong_partial', 'wrong_proof', 'other_k', 'garbage', 'late'];

/**
 * Test-only misbehaviour of the sign handler (TKMS_ENABLE_TEST_FAULTS=1): a share that does not verify,
 * or a stall after the nonce is durably spent and before the share leaves (the kill -9 test's moment).
 */
export type SignFault = 'bad_share' | 'stall_after_spend';
export const SIGN_FAULTS: readonly SignFault[] = ['bad_share', 'stall_after_spend'];
