import { Type } from 'typebox';
import { PsbtMessageBody, RawMessageBody, SignRequestMessage } from '../core/signing/sign-request.ts';
import { MAX_MESSAGES_PER_REQUEST } from '../core/signing/sign-wire.ts';
import { SIGNING_ALGORITHMS, SIGNING_SUITES } from '../core/signing/suites.ts';
import { explainWith } from '../net/http-validation.ts';
import { asSigned, Base64, closed, described, KeyId, NodeFailure, NodeId, requestComponent, responseComponent, signedMessage } from './api-schemas.ts';

/** POST /v1/keys/{keyId}/sign: the schemas, declared once (the router validates with them, OpenAPI shows them). */

const EXAMPLE_SIGN_REQUEST = {
  keyId: 'treasury',
  messageKind: 'raw',
  messageHash: '0x2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824',
  requester: '0x70997970c51812dc3a010c7d01b50e0d17dc79c8',
  notBefore: 1767225600,
  notAfter: 1767225900,
  requestId: '0xa1b2c3d4e5f60718293a4b5c6d7e8f90',
  signature: `0x${'11'.repeat(64)}1b`,
};

export const SignRequest = signedMessage(asSigned(SignRequestMessage), 'The requester asks for a signature with a SIGN_VERIFY key over a message whose SHA-256 it signs; every node checks it and the key\'s policy.', false);

const hex = (bytes: number, description: string) => Type.String({ pattern: `^0x[0-9a-f]{${bytes * 2}}$`, description });

export const SignMessageJson = explainWith(Type.Union([RawMessageBody.schema, PsbtMessageBody.schema], { description: 'What to sign: `{ "kind": "raw", "data": "0x…" }` or `{ "kind": "psbt", "psbt": "<base64>" }`.' }), (value) => {
  const kind = (value as { kind?: unknown }).kind;
  if (kind === 'psbt') PsbtMessageBody.decode(value);
  else RawMessageBody.decode(value);
});

export const SignBody = requestComponent(
  'SignBody',
  closed(
    { request: SignRequest, message: SignMessageJson },
    { description: 'POST /v1/keys/{keyId}/sign body: the signed request and the message it names.', examples: [{ request: EXAMPLE_SIGN_REQUEST, message: { kind: 'raw', data: '0x68656c6c6f' } }] },
  ),
);

export const SignResult = responseComponent(
  'SignResult',
  closed(
    {
      keyId: described(KeyId, 'The key version that signed (its material key id).'),
      algorithm: Type.String({ enum: SIGNING_SUITES.map((s) => SIGNING_ALGORITHMS[s]), description: 'ED25519_SHA_512 (RFC 8032) or BIP340_SCHNORR_TAPROOT (BIP340 under the Taproot output key).' }),
      publicKey: hex(32, 'The key the signatures verify under: Ed25519 raw, or the BIP340 x-only Taproot output key.'),
      signatures: Type.Array(hex(64, 'A 64-byte signature.'), { minItems: 1, maxItems: MAX_MESSAGES_PER_REQUEST, description: 'One per message signed: the raw message, or each PSBT input the key owns, in `inputs` order.' }),
      inputs: Type.Optional(Type.Array(Type.Integer({ minimum: 0 }), { description: 'PSBT only: the input indexes signed.' })),
      psbt: Type.Optional(described(Base64, 'PSBT only: the PSBT with the key-path signatures added and the signed inputs finalised.')),
      transaction: Type.Optional(Type.String({ pattern: '^0x([0-9a-f]{2})+$', description: 'PSBT only, when every input is finalised: the signed transaction, ready to broadcast.' })),
      signers: Type.Array(NodeId, { description: 'The members whose shares make the signatures.' }),
      blamed: Type.Array(NodeId, { description: 'Members that sent a signature share that did not verify: named, then replaced (identifiable abort).' }),
      failures: Type.Array(NodeFailure, { description: 'Members asked that refused, failed or cheated along the way.' }),
    },
    { description: 'A threshold signature, checked by the gateway under the key before it answers (clients check it again).' },
  ),
);
