import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ed25519 } from '@noble/curves/ed25519.js';
import { isTkmsError } from '../../core/index.ts';
import { dkgSignedBytes } from '../../core/dkg/member-signatures.ts';
import {
  MAX_KEY_VERSION,
  MAX_MEMBER_ID,
  decodeDestructionReceipt,
  destructionReceiptToJson,
  signDestructionReceipt,
  verifyDestructionReceipt,
  type DestructionReceipt,
} from '../../core/keys/destruction-receipt.ts';
import { MAX_TIMESTAMP } from '../../core/schema.ts';

function expectTypedOrOk(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    assert.ok(isTkmsError(e), `expected a TkmsError, got ${String(e)}`);
  }
}

const keyId = fc.stringMatching(/^[a-z0-9][a-z0-9_-]{0,20}$/);
const committeeId = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/);
const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });

const receiptArb: fc.Arbitrary<DestructionReceipt> = fc.record({
  keyId,
  version: fc.integer({ min: 1, max: MAX_KEY_VERSION }),
  materialKeyId: keyId,
  committeeId,
  nodeId: fc.integer({ min: 1, max: MAX_MEMBER_ID }),
  erasedAt: fc.integer({ min: 0, max: MAX_TIMESTAMP }),
  erasedDigest: bytes(32),
  signature: bytes(64),
});

describe('destruction receipt decoder (property)', () => {
  it('arbitrary JSON gives a receipt or a TkmsError', () => {
    fc.assert(fc.property(fc.jsonValue(), (v) => expectTypedOrOk(() => decodeDestructionReceipt(v))), { numRuns: 500 });
    fc.assert(fc.property(fc.anything(), (v) => expectTypedOrOk(() => decodeDestructionReceipt(v))), { numRuns: 300 });
  });

  it('a field of a valid receipt replaced by anything, or an extra field, stays typed', () => {
    const fields = ['keyId', 'version', 'materialKeyId', 'committeeId', 'nodeId', 'erasedAt', 'erasedDigest', 'signature', 'extra'];
    fc.assert(
      fc.property(receiptArb, fc.constantFrom(...fields), fc.jsonValue(), (r, field, value) => {
        const json: Record<string, unknown> = { ...destructionReceiptToJson(r) };
        json[field] = value;
        expectTypedOrOk(() => decodeDestructionReceipt(json));
        delete json[field];
        expectTypedOrOk(() => decodeDestructionReceipt(json));
      }),
      { numRuns: 500 },
    );
  });

  it('round trip: encode, JSON text, decode gives the same receipt', () => {
    fc.assert(
      fc.property(receiptArb, (r) => {
        const decoded = decodeDestructionReceipt(JSON.parse(JSON.stringify(destructionReceiptToJson(r))));
        assert.deepEqual(decoded, { ...r });
      }),
      { numRuns: 300 },
    );
  });

  it('a signed receipt survives the round trip and still verifies', () => {
    const secret = ed25519.utils.randomSecretKey();
    const publicKey = ed25519.getPublicKey(secret);
    const identity = { sign: (m: Uint8Array) => ed25519.sign(dkgSignedBytes(m), secret) };
    fc.assert(
      fc.property(receiptArb, (r) => {
        const { signature: _ignored, ...unsigned } = r;
        const signed = signDestructionReceipt(unsigned, identity);
        const back = decodeDestructionReceipt(JSON.parse(JSON.stringify(destructionReceiptToJson(signed))));
        assert.equal(verifyDestructionReceipt(back, (id) => (id === r.nodeId ? publicKey : undefined), r.committeeId), true);
      }),
      { numRuns: 50 },
    );
  });
});
