import { decodeBase64, decodeHex, encodeBase64, encodeHex, TkmsError } from '../core/index.ts';
import { newRequestId } from '../core/identifiers.ts';
import { materialKeyId } from '../core/keys/key-model.ts';
import { finalizeTaprootPsbt, keyInputIndexes, keyPathSighashes, parsePsbt } from '../core/signing/psbt.ts';
import { encodeSignMessage, signMessageHash, SignRequestMessage, type SignMessage, type SignRequest } from '../core/signing/sign-request.ts';
import { describeSigningKey, suiteOfKey, taprootInternalKey, verifySignature, type SigningSuite } from '../core/signing/suites.ts';
import type { KeySpec, KeyUsage } from '../core/keys/key-model.ts';
import type { GatewayHttp } from './gateway-http.ts';
import { parseKeyView, usableVersion } from './key-view.ts';

/**
 * Threshold signing from the client's side: the signed request, and the check that what comes back
 * is a valid signature under the key this client verified (its DKG result against the pinned
 * committee), never the key the gateway says. A PSBT is finalised here from the checked signatures;
 * the gateway's own finalised copy is not used.
 */

export interface SigningTarget {
  /** The version's material key id (what the request names). */
  materialId: string;
  keyId: string;
  suite: SigningSuite;
}

/** The key's current usable version, and the suite it signs with (key_usage_mismatch for a key that does not sign). */
export async function signingTarget(http: GatewayHttp, keyIdOrAlias: string): Promise<SigningTarget> {
  const { json } = await http.request<Record<string, unknown>>('GET', `/v1/keys/${encodeURIComponent(keyIdOrAlias)}`);
  if (json.managed === undefined) throw new TkmsError('key_usage_mismatch', `key ${keyIdOrAlias} is not a managed SIGN_VERIFY key`);
  const view = parseKeyView(json.managed);
  const suite = suiteOfKey(view.keyId, view.spec as KeySpec, view.usage as KeyUsage);
  const { version } = usableVersion(view, Math.floor(Date.now() / 1000));
  return { materialId: materialKeyId(view.keyId, version), keyId: view.keyId, suite };
}

export interface SignatureResult {
  keyId: string;
  algorithm: string;
  /** The key the signatures verify under (Ed25519 raw, or the BIP340 x-only Taproot output key), 0x hex. */
  publicKey: string;
  /** 0x hex, one per message signed: the raw message, or each PSBT input in `inputs`. */
  signatures: string[];
  signers: number[];
  /** Members the gateway named for a bad share (and replaced). */
  blamed: number[];
  inputs?: number[];
  /** PSBT only: finalised here from the checked signatures (base64), and the transaction (0x hex). */
  psbt?: string;
  transaction?: string;
}

export interface SignOptions {
  http: GatewayHttp;
  target: SigningTarget;
  /** The verified DKG group key of the version (33-byte compressed secp256k1, or 32-byte Ed25519). */
  groupPublicKey: Uint8Array;
  message: SignMessage;
  window: { notBefore: number; notAfter: number };
  signRequest: (unsigned: Omit<SignRequest, 'signature'>) => Promise<SignRequest>;
  requester: Uint8Array;
}

/** What FROST signs for the message, derived here exactly as the members derive it. */
function signedBytes(suite: SigningSuite, message: SignMessage, groupPublicKey: Uint8Array): { messages: Uint8Array[]; inputs: number[] } {
  if (message.kind === 'raw') return { messages: [message.data], inputs: [] };
  if (suite !== 'bip340') throw new TkmsError('key_usage_mismatch', 'an Ed25519 key signs raw messages, not Bitcoin transactions');
  const parsed = parsePsbt(message.psbt, 'bitcoin');
  const inputs = keyInputIndexes(parsed, taprootInternalKey(groupPublicKey));
  if (inputs.length === 0) throw new TkmsError('bad_psbt', 'no input of the PSBT spends this key\'s Taproot output');
  return { messages: keyPathSighashes(parsed, inputs), inputs };
}

export async function requestSignature(o: SignOptions): Promise<SignatureResult> {
  const { suite } = o.target;
  const expected = describeSigningKey(suite, o.groupPublicKey);
  const { messages, inputs } = signedBytes(suite, o.message, o.groupPublicKey);
  const request = await o.signRequest({
    keyId: o.target.materialId,
    messageKind: o.message.kind,
    messageHash: signMessageHash(o.message),
    requester: o.requester,
    ...o.window,
    requestId: newRequestId(),
  });
  const { json } = await o.http.request<Record<string, unknown>>('POST', `/v1/keys/${encodeURIComponent(o.target.keyId)}/sign`, {
    request: SignRequestMessage.encode(request),
    message: encodeSignMessage(o.message),
  });
  const signatures = Array.isArray(json.signatures) ? json.signatures.map((s, i) => decodeHex(s, { name: `signatures[${i}]`, length: 64 })) : [];
  if (signatures.length !== messages.length) throw new TkmsError('bad_request', `the gateway answered ${signatures.length} signatures for ${messages.length} messages`);
  signatures.forEach((sig, j) => {
    if (!verifySignature(suite, sig, messages[j]!, expected.publicKey)) {
      throw new TkmsError('bad_proof', `signature ${j} from the gateway does not verify under key ${o.target.materialId}'s verified public key`);
    }
  });
  const out: SignatureResult = {
    keyId: o.target.materialId,
    algorithm: expected.algorithm,
    publicKey: encodeHex(expected.publicKey),
    signatures: signatures.map(encodeHex),
    signers: Array.isArray(json.signers) ? (json.signers as number[]) : [],
    blamed: Array.isArray(json.blamed) ? (json.blamed as number[]) : [],
  };
  if (o.message.kind === 'psbt') {
    const finalized = finalizeTaprootPsbt(o.message.psbt, new Map(inputs.map((index, j) => [index, signatures[j]!])));
    out.inputs = inputs;
    out.psbt = encodeBase64(finalized.psbt);
    if (finalized.tx !== undefined) out.transaction = encodeHex(finalized.tx);
  }
  return out;
}

/** A PSBT given as base64 text or raw bytes. */
export function psbtBytes(input: string | Uint8Array): Uint8Array {
  return typeof input === 'string' ? decodeBase64(input.trim(), { name: 'psbt' }) : input;
}
