import type { Group, GroupPoint } from '../core/group.ts';
import type { RsaKeyPair } from '../core/index.ts';
import type { DkgPublicResult } from '../core/dkg/index.ts';
import type { Account } from './account.ts';
import type { EpochShares } from './epochs.ts';
import type { RejectedPartial } from './partials.ts';
import type { Eip712Signer } from './signer.ts';

/** The client's options and what its calls answer (client/client.ts). */

export interface TkmsClientOptions {
  /** The gateway's base URL; may carry a path (`https://app.example/tkms/`): routes resolve under it. */
  gatewayUrl: string;
  /**
   * Who signs the requests: a local account (secret key in this process) or any EIP-712 signer
   * (a wallet through `fromEip1193`, an ethers Signer through `fromEthers`, a viem account).
   */
  account: Account | Eip712Signer;
  /** Reused for every decrypt; generated (RSA-2048, non-extractable) on first use when absent. */
  rsaKey?: RsaKeyPair;
  /** Length of signed validity windows (default 300 s; at most 3600). */
  validitySeconds?: number;
  /**
   * Ed25519 member keys (id → 0x hex) to pin. Without them the client checks a key's DKG
   * signatures against the member keys the gateway publishes, which a lying gateway controls.
   */
  trustedMemberKeys?: Record<number, string>;
  /**
   * The pinned committee's threshold t (the committee file's). A key's DKG result must have this
   * t: member keys alone do not pin a key, since one member could sign a result with t = 1.
   * Local encryption needs all three of trustedMemberKeys, trustedThreshold and committeeId
   * (`pinnedClientOptions(parseCommitteeJson(text))`, exported by tkms/client, gives them).
   */
  trustedThreshold?: number;
  /**
   * The pinned committee's id (the committee file's): every signature is made for it, and a key
   * of another committee is refused. Without it the client signs for the committee named by the
   * key's DKG result as the gateway serves it, which a lying gateway controls like the member keys.
   */
  committeeId?: string;
  /**
   * The epoch of the pinned committee (the committee file's `epoch`; default 0). The client follows
   * the handover certificates the gateway passes on (GET /v1/committee) from this committee, checking
   * each one itself, so a client pinned once keeps working across reshares and refreshes.
   */
  trustedEpoch?: number;
  fetch?: typeof fetch;
  timeoutMs?: number;
  /** Allow plain http:// to a non-loopback gateway (refused with `insecure_transport` otherwise). */
  insecure?: boolean;
  /** Largest gateway answer read (default 8 MiB); a longer one fails with `response_too_large`. */
  maxResponseBytes?: number;
  /**
   * How long a node whose partial failed verification is left out of later decrypts by this
   * client (default 300 000 ms; 0 turns it off). It is still asked when too few others remain.
   */
  suspectMs?: number;
}

/** Partials a node sent that failed verification, by reason, since this client was made. */
export interface NodeMisbehaviour {
  nodeId: number;
  code: string;
  count: number;
  /** Epoch ms until which later decrypts leave this node out (0 when they no longer do). */
  avoidedUntil: number;
}

export interface VerifiedKey {
  keyId: string;
  /** The key's group (its DKG result's curve): secp256k1, or ed25519 for an Ed25519 signing key. */
  group: Group;
  publicKey: GroupPoint;
  publicKeyHex: string;
  t: number;
  n: number;
  committeeId: string;
  /** Y_i by node id at `epoch`, compressed and validated. */
  verificationShares: Map<number, Uint8Array>;
  /** The committee epoch the key is served at: its DKG result's, or the latest a verified handover certificate carried it to. `t`, `n` and `verificationShares` are at this epoch. */
  epoch: number;
  /** The key's t and Y_i at every epoch known (earlier ones too: a member that has not moved on answers at its epoch). */
  epochs: Map<number, EpochShares>;
  result: DkgPublicResult;
  /** True when the DKG result was checked against the pinned committee (member keys, t, committee id), not the gateway's word. */
  pinned: boolean;
}

export interface HandleInfo {
  handle: string;
  keyId: string;
  K: string;
  nonce: string;
  ciphertextHash: string;
  owner: string;
  kProof: string;
  created: boolean;
}

export interface DecryptResult {
  plaintext: Uint8Array;
  /** Node ids whose partials were combined. */
  usedNodeIds: number[];
  /** Nodes whose partials failed verification, with why. */
  rejected: RejectedPartial[];
  /** Nodes the gateway reported as failing or refusing. */
  failures: { nodeId: number; code: string; message: string }[];
  /** Delegation round trips made (a retry excludes nodes that sent bad partials). */
  attempts: number;
}

export interface RevokeResult {
  acknowledgedBy: number[];
  needed: number;
  effective: boolean;
}
