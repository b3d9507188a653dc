/**
 * A DKG's public result: the certificate the DKG ceremony (core/ceremony, DkgCeremony) ends with,
 * signed by a vote quorum of the committee, and what nodes store, gateways publish and clients pin.
 */
export interface DkgPublicResult {
  keyId: string;
  committeeId: string;
  /**
   * The committee epoch the key was made at (core/ceremony); absent = 0, and then the digest is the
   * v2 digest results were always signed with. Present (≥ 1) it is part of what members sign.
   */
  epoch?: number;
  /**
   * The group of the key's shares (core/group.ts): absent = secp256k1 (every result before Ed25519
   * keys, bytes and digest unchanged); 'ed25519' = the prime-order subgroup of edwards25519, and then
   * part of what members sign (dkgResultDigest's v4 form).
   */
  curve?: 'ed25519';
  /** 0x + 16 bytes hex. */
  sessionId: string;
  t: number;
  n: number;
  /** 0x + 33-byte compressed point (secp256k1) or 32-byte RFC 8032 encoding (ed25519). */
  groupPublicKey: string;
  /** Member id (decimal string) → 0x encoded Y_i = share_i·G, for EVERY member id. */
  verificationShares: Record<string, string>;
  /** Dealer ids whose contributions form the key (sorted). */
  qualified: number[];
  /** 0x + 32 bytes. */
  transcriptHash: string;
  /** Member id → 0x signature over the digest of all other fields and the member keys (see dkgResultDigest, confirmMessage). */
  signatures: Record<string, string>;
}
