import type { Account, TkmsClient } from '../../client/index.ts';
import {
  decodeHandle,
  decodeHex,
  decodePartialReply,
  encodePartialRequest,
  newRequestId,
  PARTIAL_PROTOCOL,
  signDelegation,
  type Deployment,
  type Grant,
  type HandleDescriptor,
  type RsaKeyPair,
} from '../../core/index.ts';
import type { P2pClient } from './p2p-client.ts';

/** A handle and the descriptor a node needs to check it, as the gateway serves them. */
export interface OwnedHandle {
  handle: string;
  descriptor: HandleDescriptor;
}

/** Encrypts `text` through the gateway as the client's account and reads back the handle's descriptor. */
export async function ownedHandle(client: TkmsClient, keyId: string, text: string): Promise<OwnedHandle> {
  const { handle } = await client.encrypt(new TextEncoder().encode(text), { keyId });
  const { json } = await client.http.request<Record<string, string>>('GET', `/v1/handles/${handle}`);
  return {
    handle,
    descriptor: { keyId: json.keyId!, K: decodeHex(json.K), nonce: decodeHex(json.nonce), ciphertextHash: decodeHex(json.ciphertextHash), owner: decodeHex(json.owner), kProof: decodeHex(json.kProof) },
  };
}

export interface PartialAsk {
  p2p: P2pClient;
  deployment: Deployment;
  keyId: string;
  rsa: RsaKeyPair;
  /** How long the delegation is valid from now. */
  windowSeconds: number;
}

/** `requester`'s signed partial request (fresh request id) straight to `node`: 'ok' or the refusal code. */
export async function askPartial(ask: PartialAsk, node: number, requester: Account, h: OwnedHandle, grant: Grant | undefined): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const delegation = signDelegation(
    requester.secretKey,
    {
      handle: decodeHandle(h.handle),
      keyId: ask.keyId,
      requester: requester.addressBytes,
      rsaSpki: decodeHex(ask.rsa.publicKey.spkiHex),
      notBefore: now,
      notAfter: now + ask.windowSeconds,
      requestId: newRequestId(),
    },
    ask.deployment,
  );
  const reply = decodePartialReply(await ask.p2p.request(node, PARTIAL_PROTOCOL, encodePartialRequest({ delegation, descriptor: h.descriptor, grant })));
  return reply.ok ? 'ok' : reply.code;
}
