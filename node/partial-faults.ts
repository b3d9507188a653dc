/** Test-only misbehaviour of the partial handler, accepted only with TKMS_ENABLE_TEST_FAULTS=1. */
export type PartialFault = 'wrong_partial' | 'wrong_proof' | 'other_k' | 'garbage' | 'late';
export const PARTIAL_FAULTS: readonly PartialFault[] = ['wrong_partial', 'wrong_proof', 'other_k', 'garbage', 'late'];
