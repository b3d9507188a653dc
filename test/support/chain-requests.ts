import type { Account } from '../../client/index.ts';
import {
  decodeHandle,
  decodeHex,
  decodePartialReply,
  encodePartialRequest,
  newRequestId,
  PARTIAL_PROTOCOL,
  signDelegation,
  signGrant,
  type Deployment,
  type Grant,
  type PartialRequest,
  type RsaKeyPair,
} from '../../core/index.ts';
import type { OwnedHandle } from './devnet-requests.ts';
import type { P2pClient } from './p2p-client.ts';

/**
 * Partial requests sent straight to one node over libp2p, naming the ACL block B ourselves: what
 * a gateway does, or a lying one (an old B from before a revocation, a B far ahead of the chain).
 */
export interface DirectAsker {
  p2p: P2pClient;
  deployment: Deployment;
  keyId: string;
  rsa: RsaKeyPair;
}

export interface DirectAsk {
  requester: Account;
  handle: OwnedHandle;
  /** The block the node is told to read the ACL at; undefined sends none (a gateway that reads no chain). */
  aclBlock: number | undefined;
  grant?: Grant;
  /** Signs the delegation instead of the requester: a forgery every node must refuse before any chain lookup. */
  forgedBy?: Account;
  timeoutMs?: number;
}

/** 'ok' or the node's refusal code; a transport failure is 'transport: …' (never mistaken for a refusal). */
export async function askNodeAt(asker: DirectAsker, node: number, ask: DirectAsk): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const delegation = signDelegation(
    (ask.forgedBy ?? ask.requester).secretKey,
    {
      handle: decodeHandle(ask.handle.handle),
      keyId: asker.keyId,
      requester: ask.requester.addressBytes,
      rsaSpki: decodeHex(asker.rsa.publicKey.spkiHex),
      notBefore: now,
      notAfter: now + 300,
      requestId: newRequestId(),
    },
    asker.deployment,
  );
  const request: PartialRequest = { delegation, descriptor: ask.handle.descriptor, grant: ask.grant, ...(ask.aclBlock === undefined ? {} : { aclBlock: ask.aclBlock }) };
  let bytes: Uint8Array;
  try {
    bytes = await asker.p2p.request(node, PARTIAL_PROTOCOL, encodePartialRequest(request), ask.timeoutMs ?? 10_000);
  } catch (e) {
    return `transport: ${e instanceof Error ? e.message : String(e)}`;
  }
  const reply = decodePartialReply(bytes);
  return reply.ok ? 'ok' : reply.code;
}

/** The same request (each with its own request id) to every listed node: node id → outcome. */
export async function askNodesAt(asker: DirectAsker, nodes: readonly number[], ask: DirectAsk): Promise<Record<number, string>> {
  const outcomes = await Promise.all(nodes.map(async (id) => [id, await askNodeAt(asker, id, ask)] as const));
  return Object.fromEntries(outcomes);
}

/** The owner's signed grant (the kind mode "chain" must refuse), valid for an hour. */
export function signedGrantFor(owner: Account, handle: string, grantee: Account, deployment: Deployment): Grant {
  const now = Math.floor(Date.now() / 1000);
  return signGrant(owner.secretKey, { handle: decodeHandle(handle), grantee: grantee.addressBytes, notAfter: now + 3600, issuedAt: now }, deployment);
}

/** { 1: outcome, …, n: outcome }: what every node answering alike looks like. */
export function everyNode(ids: readonly number[], outcome: string): Record<number, string> {
  return Object.fromEntries(ids.map((id) => [id, outcome]));
}
