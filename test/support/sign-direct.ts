import type { Account } from '../../client/index.ts';
import type { Deployment } from '../../core/authz.ts';
import { TkmsError } from '../../core/errors.ts';
import { newRequestId } from '../../core/identifiers.ts';
import { signMessageHash, signSignRequest, type SignMessage, type SignRequest } from '../../core/signing/sign-request.ts';
import { decodeSignFrameReply, encodeSignFrameRequest, SIGN_PROTOCOL, type NonceCommitmentPair, type SignerCommitments, type SignFrameReply } from '../../core/signing/sign-wire.ts';
import type { SignTransport } from '../../gateway/sign-coordinator.ts';

/**
 * Speaking /tkms/sign/1 to members directly, as a gateway (one the nodes list in gatewayPeerIds)
 * or a compromised one would: commitments from chosen members, a signing frame of our making.
 */
export function signRequestFor(account: Account, materialId: string, message: SignMessage, deployment: Deployment, overrides: Partial<Omit<SignRequest, 'signature'>> = {}): SignRequest {
  const now = Math.floor(Date.now() / 1000);
  return signSignRequest(
    account.secretKey,
    { keyId: materialId, messageKind: message.kind, messageHash: signMessageHash(message), requester: account.addressBytes, notBefore: now - 5, notAfter: now + 300, requestId: newRequestId(), ...overrides },
    deployment,
  );
}

export async function commitmentsOf(transport: SignTransport, memberId: number, keyId: string, count = 1): Promise<NonceCommitmentPair[]> {
  const reply = decodeSignFrameReply(await transport.sendRaw(memberId, SIGN_PROTOCOL, encodeSignFrameRequest({ type: 'commit', keyId, count }), 10_000));
  if (!reply.ok) throw new TkmsError(reply.code, reply.message);
  if (reply.type !== 'commitments') throw new Error(`member ${memberId} answered a commit with ${reply.type}`);
  return reply.commitments;
}

/** One commitment from each of `members` (for a message count of `count`), as a session's signer list. */
export async function sessionOf(transport: SignTransport, members: number[], keyId: string, count = 1): Promise<SignerCommitments[]> {
  return Promise.all(members.map(async (memberId) => ({ memberId, commitments: await commitmentsOf(transport, memberId, keyId, count) })));
}

/** A signing frame at `epoch` (the devnets of these tests stay at epoch 0). */
export async function askShares(transport: SignTransport, memberId: number, request: SignRequest, message: SignMessage, signers: SignerCommitments[], timeoutMs = 10_000, epoch = 0): Promise<SignFrameReply> {
  return decodeSignFrameReply(await transport.sendRaw(memberId, SIGN_PROTOCOL, encodeSignFrameRequest({ type: 'sign', request, message, signers, epoch }), timeoutMs));
}

/** The code a member refused with (undefined when it signed). */
export function refusalCode(reply: SignFrameReply): string | undefined {
  return reply.ok ? undefined : reply.code;
}
