import assert from 'node:assert/strict';
import { expectSyncRefusal } from '../support/refusal.ts';
import { sha256 } from '@noble/hashes/sha2.js';
import { randomBytes } from '@noble/hashes/utils.js';
import { MAX_VALIDITY_SECONDS } from '../../core/authz.ts';
import { decodeHex } from '../../core/bytes.ts';
import { decodeSignMessage, encodeSignMessage, signMessageHash, SignRequestMessage, signSignRequest, verifySignRequest, type SignMessage, type SignRequest, type UnsignedSignRequest } from '../../core/signing/sign-request.ts';
import { ALICE, BOB, DEPLOYMENT, T0 } from '../support/key-change-fixtures.ts';

const NOW = T0 + 1000;
const SKEW = 30;
const time = (nowSeconds = NOW) => ({ nowSeconds, clockSkewSeconds: SKEW });
const raw: SignMessage = { kind: 'raw', data: new TextEncoder().encode('tkms/pay 1 BTC to the hot wallet') };
const psbt: SignMessage = { kind: 'psbt', psbt: randomBytes(120) };
const addressOf = (hex: string) => decodeHex(hex, { length: 20 });

function unsigned(message: SignMessage, over: Partial<UnsignedSignRequest> = {}): UnsignedSignRequest {
  return { keyId: 'treasury', messageKind: message.kind, messageHash: signMessageHash(message), requester: addressOf(ALICE.address), notBefore: NOW - 60, notAfter: NOW + 240, requestId: randomBytes(16), ...over };
}

function signed(message: SignMessage, over: Partial<UnsignedSignRequest> = {}, secret = ALICE.secret, deployment = DEPLOYMENT): SignRequest {
  return signSignRequest(secret, unsigned(message, over), deployment);
}

const refused = expectSyncRefusal;

describe('sign request (core/signing/sign-request.ts)', () => {
  it('accepts a good request and names its requester, for raw and PSBT messages', () => {
    assert.equal(verifySignRequest(signed(raw), raw, time(), DEPLOYMENT), ALICE.address);
    assert.equal(verifySignRequest(signed(psbt), psbt, time(), DEPLOYMENT), ALICE.address);
    assert.equal(verifySignRequest(signed(raw, { requester: addressOf(BOB.address) }, BOB.secret), raw, time(), DEPLOYMENT), BOB.address);
    // It survives the wire: the decoded request verifies the same.
    const wire = JSON.parse(JSON.stringify(SignRequestMessage.encode(signed(raw)))) as unknown;
    assert.equal(verifySignRequest(SignRequestMessage.decode(wire), raw, time(), DEPLOYMENT), ALICE.address);
  });

  it('the window: accepted to its edges within the clock skew, refused past them', () => {
    const r = signed(raw, { notBefore: NOW, notAfter: NOW + 300 });
    assert.equal(verifySignRequest(r, raw, time(NOW - SKEW), DEPLOYMENT), ALICE.address);
    assert.equal(verifySignRequest(r, raw, time(NOW + 300 + SKEW), DEPLOYMENT), ALICE.address);
    refused(() => verifySignRequest(r, raw, time(NOW - SKEW - 1), DEPLOYMENT), 'expired', /not valid before/);
    refused(() => verifySignRequest(r, raw, time(NOW + 300 + SKEW + 1), DEPLOYMENT), 'expired', /expired at/);
    // Long expired and not valid for a long while yet.
    refused(() => verifySignRequest(signed(raw, { notBefore: NOW - 7200, notAfter: NOW - 3600 }), raw, time(), DEPLOYMENT), 'expired');
    refused(() => verifySignRequest(signed(raw, { notBefore: NOW + 3600, notAfter: NOW + 3700 }), raw, time(), DEPLOYMENT), 'expired');
  });

  it('a window longer than an hour, or empty, is refused even when now is inside it', () => {
    assert.equal(verifySignRequest(signed(raw, { notBefore: NOW - 100, notAfter: NOW - 100 + MAX_VALIDITY_SECONDS }), raw, time(), DEPLOYMENT), ALICE.address);
    refused(() => verifySignRequest(signed(raw, { notBefore: NOW - 100, notAfter: NOW - 100 + MAX_VALIDITY_SECONDS + 1 }), raw, time(), DEPLOYMENT), 'bad_request', /at most 3600 s/);
    refused(() => verifySignRequest(signed(raw, { notBefore: NOW - 86_400, notAfter: NOW + 86_400 }), raw, time(), DEPLOYMENT), 'bad_request');
    refused(() => verifySignRequest(signed(raw, { notBefore: NOW, notAfter: NOW }), raw, time(), DEPLOYMENT), 'bad_request', /later than notBefore/);
    refused(() => verifySignRequest(signed(raw, { notBefore: NOW + 10, notAfter: NOW - 10 }), raw, time(), DEPLOYMENT), 'bad_request');
  });

  it('a request for another kind of message is refused, even with the same bytes', () => {
    const bytes = randomBytes(64);
    const asRaw: SignMessage = { kind: 'raw', data: bytes };
    const asPsbt: SignMessage = { kind: 'psbt', psbt: bytes };
    refused(() => verifySignRequest(signed(asRaw), asPsbt, time(), DEPLOYMENT), 'unauthorized', /raw message, not a psbt one/);
    refused(() => verifySignRequest(signed(asPsbt), asRaw, time(), DEPLOYMENT), 'unauthorized', /psbt message, not a raw one/);
  });

  it('a message other than the one hashed is refused', () => {
    const r = signed(raw);
    const changed: SignMessage = { kind: 'raw', data: raw.data.slice() };
    changed.data[changed.data.length - 1]! ^= 1;
    refused(() => verifySignRequest(r, changed, time(), DEPLOYMENT), 'unauthorized', /messageHash does not match/);
    refused(() => verifySignRequest(r, { kind: 'raw', data: Uint8Array.from([...raw.data, 0]) }, time(), DEPLOYMENT), 'unauthorized', /messageHash/);
    // A request whose hash is not SHA-256 of the message (here: of something else), though well signed.
    refused(() => verifySignRequest(signed(raw, { messageHash: sha256(randomBytes(8)) }), raw, time(), DEPLOYMENT), 'unauthorized', /messageHash/);
  });

  it('a request signed by someone other than its requester is refused', () => {
    refused(() => verifySignRequest(signed(raw, { requester: addressOf(BOB.address) }, ALICE.secret), raw, time(), DEPLOYMENT), 'unauthorized', /not signed by/);
    // A field changed after signing changes the signer recovered.
    const r = signed(raw);
    for (const tampered of [{ ...r, requestId: randomBytes(16) }, { ...r, notAfter: r.notAfter + 1 }, { ...r, keyId: 'treasury.v2' }]) {
      refused(() => verifySignRequest(tampered, raw, time(), DEPLOYMENT), 'unauthorized', /not signed by/);
    }
  });

  it('a request signed for another deployment is refused', () => {
    const r = signed(raw, {}, ALICE.secret, { committeeId: 'elsewhere' });
    refused(() => verifySignRequest(r, raw, time(), DEPLOYMENT), 'unauthorized', /committee devnet/);
    assert.equal(verifySignRequest(r, raw, time(), { committeeId: 'elsewhere' }), ALICE.address);
  });

  it('decodeSignMessage reads the JSON forms and refuses empty or unknown ones', () => {
    assert.deepEqual(decodeSignMessage(encodeSignMessage(raw)), raw);
    assert.deepEqual(decodeSignMessage(encodeSignMessage(psbt)), psbt);
    assert.deepEqual(decodeSignMessage({ kind: 'raw', data: '0x6869' }), { kind: 'raw', data: Uint8Array.of(0x68, 0x69) });
    refused(() => decodeSignMessage({ kind: 'raw', data: '0x' }), 'bad_request', /must not be empty/);
    // The 0x is required (the schema's pattern refuses it; hexBytesUpToField's explain does not name it).
    refused(() => decodeSignMessage({ kind: 'raw', data: '6869' }), 'bad_request', /pattern/);
    refused(() => decodeSignMessage({ kind: 'raw', data: '0x686' }), 'bad_hex');
    refused(() => decodeSignMessage({ kind: 'text', data: '0x6869' }), 'bad_request', /kind must be one of raw, psbt/);
    refused(() => decodeSignMessage(null), 'bad_request');
    refused(() => decodeSignMessage({ kind: 'psbt', psbt: 'not base64!' }), 'bad_request');
    refused(() => decodeSignMessage({ kind: 'raw', data: '0x6869', psbt: 'AA==' }), 'bad_request');
  });
});
