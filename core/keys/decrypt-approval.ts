import { equalBytes, encodeHex } from '../bytes.ts';
import { DEFAULT_CLOCK_SKEW_SECONDS, MAX_VALIDITY_SECONDS, tkmsDomain, type Deployment } from '../authz.ts';
import { recoverTypedDataSigner, signTypedData, type Eip712Domain } from '../eip712.ts';
import { TkmsError } from '../errors.ts';
import { HANDLE_LENGTH } from '../handle.ts';
import { signedCodec } from '../messages.ts';
import { addressField, arrayField, hexBytesField, keyIdField, unixSecondsField, type DecodedFields } from '../schema.ts';

/**
 * An admin's co-signature on one decrypt of a sensitive key (policy rule `sensitive`): "I, approver,
 * let requester decrypt this handle of this key, between notBefore and notAfter". It names the
 * key, the handle and the requester, so it is worth nothing for any other decrypt, and it lives at
 * most as long as a delegation request (an hour), so a leaked approval soon expires. Like every
 * tkms signature it names the deployment (tkmsDomain).
 *
 * It names its approver, so a node skips approvals of anyone the policy does not list before it
 * spends a signature recovery on them.
 */

/** More approvals than any policy can require (MAX_APPROVERS) are never needed. */
export const MAX_DECRYPT_APPROVALS = 10;
/** An approval may be valid for at most as long as a delegation request. */
export const MAX_APPROVAL_VALIDITY_SECONDS = MAX_VALIDITY_SECONDS;

// One verified example (Hardhat account #2 approves account #1's decrypt of the example handle of
// key "demo", committee "devnet"): test/unit/key-policy.test.ts checks that it verifies.
const EX = {
  keyId: 'demo',
  handle: '0x3d2d9b4303fce8d972dc9d23e4c81c9034a0e2e8f2bc959d3aa16a4d44543302',
  requester: '0x70997970c51812dc3a010c7d01b50e0d17dc79c8',
  approver: '0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc',
  notBefore: 1767225600,
  notAfter: 1767226200,
} as const;
export const DECRYPT_APPROVAL_EXAMPLE = {
  ...EX,
  signature: '0x1bc8236b722f221471468f18f454d26bbad000de244ee6f15c26345f6d4240ca70d40d0bb4a4b73aa6cb9ca98fc6fd1b6dba1a8f2883283241f9da6ad5bdfc701c',
} as const;

export const DecryptApprovalMessage = signedCodec(
  'DecryptApproval',
  'decrypt approval',
  {
    keyId: keyIdField({ description: 'The sensitive key.', example: EX.keyId }),
    handle: hexBytesField(HANDLE_LENGTH, { eip712: 'bytes32', description: 'The handle the approver lets the requester decrypt.', example: EX.handle }),
    requester: addressField({ description: 'Who may decrypt with this approval: the delegation\'s requester.', example: EX.requester }),
    approver: addressField({ description: 'The admin who co-signs; signs this message. Counts only if the key\'s policy lists it under sensitive.approvers.', example: EX.approver }),
    notBefore: unixSecondsField({ description: 'Start of the approval\'s validity (unix seconds).', example: EX.notBefore }),
    notAfter: unixSecondsField({ description: `End of the approval's validity (unix seconds), at most ${MAX_APPROVAL_VALIDITY_SECONDS} s after notBefore.`, example: EX.notAfter }),
  },
  { description: 'An admin\'s co-signature on one decrypt of a sensitive key: this requester, this handle, this key, for a short while.', examples: [DECRYPT_APPROVAL_EXAMPLE] },
);

export type DecryptApproval = DecodedFields<typeof DecryptApprovalMessage.fields>;
export type UnsignedDecryptApproval = Omit<DecryptApproval, 'signature'>;

/** The approvals a request carries, for the partial request frame and the gateway's decrypt route. */
export const decryptApprovalsField = arrayField(DecryptApprovalMessage, {
  maxItems: MAX_DECRYPT_APPROVALS,
  description: `Co-signatures of the key's approvers (policy rule sensitive), at most ${MAX_DECRYPT_APPROVALS}; only for a sensitive key.`,
  example: [DECRYPT_APPROVAL_EXAMPLE],
});

export function signDecryptApproval(secretKey: Uint8Array, approval: UnsignedDecryptApproval, deployment: Deployment): DecryptApproval {
  return { ...approval, signature: signTypedData(secretKey, tkmsDomain(deployment), DecryptApprovalMessage.struct, DecryptApprovalMessage.typedData(approval)) };
}

/** The decrypt the approvals must be for, and the verifier's clock. */
export interface ApprovalContext {
  keyId: string;
  handle: Uint8Array;
  requester: Uint8Array;
  nowSeconds: number;
  clockSkewSeconds?: number;
}

/**
 * The lower-case addresses of the allowed approvers with a valid approval of exactly this decrypt:
 * each approver counts once, however many approvals name it. Approvals of anyone not allowed, of
 * the requester itself, for another key, handle or requester, outside their validity, or whose
 * signature is not the approver's are left out, never thrown on: the policy's count of who is left
 * decides (evaluateKeyPolicy). At most MAX_DECRYPT_APPROVALS are looked at, each costing at most one
 * signature recovery, and only after the cheap checks pass.
 */
export function verifiedApprovers(approvals: readonly DecryptApproval[], context: ApprovalContext, deployment: Deployment, approvers: readonly string[]): Set<string> {
  if (approvals.length > MAX_DECRYPT_APPROVALS) throw new TkmsError('bad_request', `a request may carry at most ${MAX_DECRYPT_APPROVALS} decrypt approvals, this one carries ${approvals.length}`);
  const verified = new Set<string>();
  if (approvals.length === 0) return verified;
  const allowed = new Set(approvers.map((a) => a.toLowerCase()));
  const requester = encodeHex(context.requester);
  const skew = context.clockSkewSeconds ?? DEFAULT_CLOCK_SKEW_SECONDS;
  let domain: Eip712Domain | undefined;
  for (const a of approvals) {
    const approver = encodeHex(a.approver);
    if (!allowed.has(approver) || verified.has(approver) || approver === requester) continue;
    if (a.keyId !== context.keyId || !equalBytes(a.handle, context.handle) || !equalBytes(a.requester, context.requester)) continue;
    if (a.notAfter <= a.notBefore || a.notAfter - a.notBefore > MAX_APPROVAL_VALIDITY_SECONDS) continue;
    if (context.nowSeconds > a.notAfter + skew || context.nowSeconds < a.notBefore - skew) continue;
    domain ??= tkmsDomain(deployment);
    let signer: Uint8Array;
    try {
      signer = recoverTypedDataSigner(domain, DecryptApprovalMessage.struct, DecryptApprovalMessage.typedData(a), a.signature);
    } catch (e) {
      // A malformed signature (high s, bad v) is one more approval that does not count.
      if (e instanceof TkmsError) continue;
      throw e;
    }
    if (equalBytes(signer, a.approver)) verified.add(approver);
  }
  return verified;
}
