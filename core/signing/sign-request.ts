import { sha256 } from '@noble/hashes/sha2.js';
import { checkValidityWindow, tkmsDomain, type Deployment, type TimeOptions } from '../authz.ts';
import { encodeHex, equalBytes } from '../bytes.ts';
import { recoverTypedDataSigner, signTypedData } from '../eip712.ts';
import { TkmsError } from '../errors.ts';
import { signedCodec } from '../messages.ts';
import { MAX_PSBT_BYTES } from './psbt.ts';
import { addressField, base64Field, enumField, hexBytesField, hexBytesUpToField, keyIdField, literalField, messageCodec, unixSecondsField, type DecodedFields } from '../schema.ts';

/**
 * A request to sign, signed (EIP-712) by the account asking. It names the key (material id, so a
 * version), what kind of message is to be signed and the SHA-256 of its bytes; every node recomputes
 * that hash from the bytes it is handed, so a coordinator that changes the message between nodes
 * (or from what the requester signed) gets a refusal, not a share.
 */
export const SIGN_MESSAGE_KINDS = ['raw', 'psbt'] as const;
export type SignMessageKind = (typeof SIGN_MESSAGE_KINDS)[number];
export const MAX_RAW_MESSAGE_BYTES = 64 * 1024;
export const SIGN_REQUEST_ID_LENGTH = 16;

export type SignMessage = { kind: 'raw'; data: Uint8Array } | { kind: 'psbt'; psbt: Uint8Array };

export const SignRequestMessage = signedCodec(
  'SignRequest',
  'sign request',
  {
    keyId: keyIdField({ description: 'The key version to sign with: its material key id (`<keyId>` for version 1, `<keyId>.v<n>` after).', example: 'treasury' }),
    messageKind: { ...enumField(SIGN_MESSAGE_KINDS, { refusal: `must be one of ${SIGN_MESSAGE_KINDS.join(', ')}`, description: 'What is signed: raw bytes, or a Bitcoin PSBT (Taproot keys).', example: 'raw' }), eip712: 'string' },
    messageHash: hexBytesField(32, { eip712: 'bytes32', description: 'SHA-256 of the raw bytes or of the PSBT bytes.', example: `0x${'ab'.repeat(32)}` }),
    requester: addressField({ description: 'The account asking; signs this message. The key\'s policy decides whether it may.', example: '0x70997970c51812dc3a010c7d01b50e0d17dc79c8' }),
    notBefore: unixSecondsField({ description: 'Start of the validity window (unix seconds).', example: 1767225600 }),
    notAfter: unixSecondsField({ description: 'End of the validity window (unix seconds), at most one hour after notBefore.', example: 1767225900 }),
    requestId: hexBytesField(SIGN_REQUEST_ID_LENGTH, {
      eip712: 'bytes16',
      description: '16 random bytes naming this request: a daily request limit counts it once, however often the coordinator asks again (a replayed request only signs the same message again).',
      example: '0xa1b2c3d4e5f60718293a4b5c6d7e8f90',
    }),
  },
  { description: 'A request to sign a message with a signing key, signed by its requester and checked by every node (EIP-712 type SignRequest).' },
);
export type SignRequest = DecodedFields<typeof SignRequestMessage.fields>;
export type UnsignedSignRequest = Omit<SignRequest, 'signature'>;

export const RawMessageBody = messageCodec(
  'raw message',
  {
    kind: literalField('raw', { description: 'Raw bytes.', refusal: 'kind must be "raw"' }),
    data: hexBytesUpToField(MAX_RAW_MESSAGE_BYTES, { prefix: 'required', description: `The bytes to sign, 0x hex, 1 to ${MAX_RAW_MESSAGE_BYTES} bytes.`, example: '0x68656c6c6f' }),
  },
  { description: 'Raw bytes to sign (allowed by the key policy\'s sign.raw or sign.prefixes).' },
);
export const PsbtMessageBody = messageCodec(
  'psbt message',
  {
    kind: literalField('psbt', { description: 'A Bitcoin PSBT.', refusal: 'kind must be "psbt"' }),
    psbt: base64Field(MAX_PSBT_BYTES, { description: `A PSBT (BIP174, base64, at most ${MAX_PSBT_BYTES} bytes): every input the key owns is signed (Taproot key path).` }),
  },
  { description: 'A Bitcoin transaction to sign (allowed by the key policy\'s sign.psbt).' },
);

/** The message from its JSON form (HTTP body, node frame). */
export function decodeSignMessage(json: unknown): SignMessage {
  const kind = (json as { kind?: unknown } | null)?.kind;
  if (kind === 'raw') {
    const m = RawMessageBody.decode(json);
    if (m.data.length === 0) throw new TkmsError('bad_request', 'message data must not be empty');
    return { kind: 'raw', data: m.data };
  }
  if (kind === 'psbt') return { kind: 'psbt', psbt: PsbtMessageBody.decode(json).psbt };
  throw new TkmsError('bad_request', `message kind must be one of ${SIGN_MESSAGE_KINDS.join(', ')}`);
}

export function encodeSignMessage(m: SignMessage): Record<string, unknown> {
  return m.kind === 'raw' ? RawMessageBody.encode({ kind: 'raw', data: m.data }) : PsbtMessageBody.encode({ kind: 'psbt', psbt: m.psbt });
}

export function signMessageBytes(m: SignMessage): Uint8Array {
  return m.kind === 'raw' ? m.data : m.psbt;
}

export function signMessageHash(m: SignMessage): Uint8Array {
  return sha256(signMessageBytes(m));
}

export function signSignRequest(secretKey: Uint8Array, r: UnsignedSignRequest, deployment: Deployment): SignRequest {
  return { ...r, signature: signTypedData(secretKey, tkmsDomain(deployment), SignRequestMessage.struct, SignRequestMessage.typedData(r)) };
}

/**
 * Everything a node checks of the request itself before policy: the window, that it names this
 * message (kind and hash recomputed here) and that the requester signed it for this deployment.
 * Returns the requester as 0x hex.
 */
export function verifySignRequest(r: SignRequest, message: SignMessage, time: TimeOptions, deployment: Deployment): string {
  checkValidityWindow(r.notBefore, r.notAfter, time, 'sign request');
  if (r.messageKind !== message.kind) throw new TkmsError('unauthorized', `sign request is for a ${r.messageKind} message, not a ${message.kind} one`);
  if (!equalBytes(signMessageHash(message), r.messageHash)) throw new TkmsError('unauthorized', 'messageHash does not match the message: the message is not the one the requester signed');
  const signer = recoverTypedDataSigner(tkmsDomain(deployment), SignRequestMessage.struct, SignRequestMessage.typedData(r), r.signature);
  if (!equalBytes(signer, r.requester)) throw new TkmsError('unauthorized', `sign request is not signed by ${encodeHex(r.requester)} for this deployment (committee ${deployment.committeeId})`);
  return encodeHex(r.requester);
}
