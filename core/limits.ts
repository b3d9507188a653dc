/**
 * Sizes the whole network agrees on, in a module that imports nothing, so the gateway's store
 * and the CLI can use them without loading curve code.
 */

/** AES-GCM's tag, appended to every ECIES ciphertext. */
export const TAG_LENGTH = 16;
/** The largest ciphertext (with its tag) a handle may carry on this network: the gateway stores no more. */
export const MAX_CIPHERTEXT_BYTES = 1024 * 1024;
/** The largest plaintext that fits: what clients refuse to send before they sign anything. */
export const MAX_PLAINTEXT_BYTES = MAX_CIPHERTEXT_BYTES - TAG_LENGTH;
