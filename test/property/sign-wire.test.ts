import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ERROR_CODES, isTkmsError, type ErrorCode } from '../../core/errors.ts';
import { MAX_RETRY_AFTER_SECONDS } from '../../core/node-messages.ts';
import { decodeSignMessage, encodeSignMessage, type SignMessage, type SignRequest } from '../../core/signing/sign-request.ts';
import {
  decodeSignFrameReply,
  decodeSignFrameRequest,
  encodeSignFrameReply,
  encodeSignFrameRequest,
  MAX_COMMITMENTS_PER_REQUEST,
  MAX_MESSAGES_PER_REQUEST,
  type SignFrameReply,
  type SignFrameRequest,
} from '../../core/signing/sign-wire.ts';
import { mutation } from '../support/byte-mutations.ts';

/** Decoding either succeeds or refuses with a TkmsError whose code is a 4xx: never a crash, never a 5xx. */
function decodesOrRefuses(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    assert.ok(isTkmsError(e), `expected a TkmsError, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    const status = ERROR_CODES[e.code];
    assert.ok(status >= 400 && status < 500, `expected a 4xx code, got ${e.code} (${status}): ${e.message}`);
  }
}

const encoder = new TextEncoder();
const jsonBytes = (value: unknown): Uint8Array => encoder.encode(JSON.stringify(value));

const keyIdArb = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,63}$/).filter((s) => !s.includes('..'));
const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
const memberIdArb = fc.integer({ min: 1, max: 1000 });
const unixArb = fc.integer({ min: 0, max: 4_102_444_800 });
const pointArb = fc.uint8Array({ minLength: 0, maxLength: 33 });
const plain = { noNullPrototype: true } as const;
const pairArb = fc.record({ hiding: pointArb, binding: pointArb }, plain);

const messageArb: fc.Arbitrary<SignMessage> = fc.oneof(
  fc.uint8Array({ minLength: 1, maxLength: 300 }).map((data): SignMessage => ({ kind: 'raw', data })),
  fc.uint8Array({ minLength: 1, maxLength: 300 }).map((psbt): SignMessage => ({ kind: 'psbt', psbt })),
);

const requestFor = (message: SignMessage): fc.Arbitrary<SignRequest> =>
  fc.record({
    keyId: keyIdArb,
    messageKind: fc.constant(message.kind),
    messageHash: bytes(32),
    requester: bytes(20),
    notBefore: unixArb,
    notAfter: unixArb,
    requestId: bytes(16),
    signature: bytes(65),
  }, plain);

const commitFrameArb: fc.Arbitrary<SignFrameRequest> = fc.record({ type: fc.constant('commit' as const), keyId: keyIdArb, count: fc.integer({ min: 1, max: MAX_COMMITMENTS_PER_REQUEST }) }, plain);
const signFrameArb: fc.Arbitrary<SignFrameRequest> = messageArb.chain((message) =>
  fc.record({
    type: fc.constant('sign' as const),
    request: requestFor(message),
    message: fc.constant(message),
    signers: fc.array(fc.record({ memberId: memberIdArb, commitments: fc.array(pairArb, { minLength: 1, maxLength: 4 }) }, plain), { minLength: 1, maxLength: 6 }),
    epoch: fc.integer({ min: 0, max: 0xffff_ffff }),
  }, plain),
);
const requestFrameArb = fc.oneof(commitFrameArb, signFrameArb);

const errorCodeArb = fc.constantFrom(...(Object.keys(ERROR_CODES) as ErrorCode[]));
const replyArb: fc.Arbitrary<SignFrameReply> = fc.oneof(
  fc.record({ ok: fc.constant(true as const), type: fc.constant('commitments' as const), memberId: memberIdArb, commitments: fc.array(pairArb, { minLength: 1, maxLength: MAX_COMMITMENTS_PER_REQUEST }) }, plain),
  fc.record({ ok: fc.constant(true as const), type: fc.constant('shares' as const), memberId: memberIdArb, shares: fc.array(bytes(32), { minLength: 1, maxLength: MAX_MESSAGES_PER_REQUEST }) }, plain),
  fc.record({ ok: fc.constant(false as const), code: errorCodeArb, message: fc.string({ maxLength: 200 }) }, plain),
  fc.record({ ok: fc.constant(false as const), code: errorCodeArb, message: fc.string({ maxLength: 200 }), retryAfterSeconds: fc.integer({ min: 0, max: MAX_RETRY_AFTER_SECONDS }) }, plain),
);

/** A JSON object with one of its fields, at any depth, replaced by anything (or removed), or a field added. */
function mutateJson(value: unknown, path: number[], replacement: unknown, op: 'replace' | 'delete' | 'add'): unknown {
  if (typeof value !== 'object' || value === null) return value;
  const copy: Record<string, unknown> | unknown[] = Array.isArray(value) ? value.slice() : { ...(value as Record<string, unknown>) };
  const keys = Object.keys(copy);
  if (keys.length === 0) return copy;
  const key = keys[path[0]! % keys.length]!;
  const target = copy as Record<string, unknown>;
  if (path.length > 1 && typeof target[key] === 'object' && target[key] !== null) {
    target[key] = mutateJson(target[key], path.slice(1), replacement, op);
  } else if (op === 'delete') {
    if (Array.isArray(copy)) copy.splice(Number(key), 1);
    else delete target[key];
  } else if (op === 'add' && !Array.isArray(copy)) {
    target['extra'] = replacement;
  } else {
    target[key] = replacement;
  }
  return copy;
}

const jsonMutationArb = fc.tuple(fc.array(fc.nat(40), { minLength: 1, maxLength: 5 }), fc.jsonValue({ maxDepth: 2 }), fc.constantFrom('replace' as const, 'delete' as const, 'add' as const));

describe('sign wire (core/signing/sign-wire.ts, property)', () => {
  it('request frames round-trip', () => {
    fc.assert(
      fc.property(requestFrameArb, (frame) => {
        assert.deepEqual(decodeSignFrameRequest(encodeSignFrameRequest(frame)), frame);
      }),
      { numRuns: 300 },
    );
  });

  it('reply frames round-trip', () => {
    fc.assert(
      fc.property(replyArb, (reply) => {
        assert.deepEqual(decodeSignFrameReply(encodeSignFrameReply(reply)), reply);
      }),
      { numRuns: 300 },
    );
  });

  it('random bytes decode or are refused with a 4xx TkmsError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (b) => {
        decodesOrRefuses(() => decodeSignFrameRequest(b));
        decodesOrRefuses(() => decodeSignFrameReply(b));
      }),
      { numRuns: 500 },
    );
  });

  it('random JSON, and random JSON under a known type, decode or are refused with a 4xx TkmsError', () => {
    const typed = fc.record({ v: fc.oneof(fc.constant(1), fc.jsonValue()), type: fc.constantFrom('commit', 'sign', 'commitments', 'shares', 'other'), ok: fc.oneof(fc.boolean(), fc.jsonValue()) }, { requiredKeys: ['type'], noNullPrototype: true });
    fc.assert(
      fc.property(fc.oneof(fc.jsonValue(), typed, fc.tuple(typed, fc.dictionary(fc.string({ maxLength: 10 }), fc.jsonValue())).map(([a, b]) => ({ ...b, ...a }))), (value) => {
        const b = jsonBytes(value);
        decodesOrRefuses(() => decodeSignFrameRequest(b));
        decodesOrRefuses(() => decodeSignFrameReply(b));
      }),
      { numRuns: 500 },
    );
  });

  it('byte-mutated valid frames decode or are refused with a 4xx TkmsError', () => {
    fc.assert(
      fc.property(
        requestFrameArb.chain((f) => mutation(encodeSignFrameRequest(f))),
        replyArb.chain((r) => mutation(encodeSignFrameReply(r))),
        (request, reply) => {
          decodesOrRefuses(() => decodeSignFrameRequest(request));
          decodesOrRefuses(() => decodeSignFrameReply(reply));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('field-mutated valid frames decode or are refused with a 4xx TkmsError', () => {
    fc.assert(
      fc.property(requestFrameArb, replyArb, jsonMutationArb, (request, reply, [path, replacement, op]) => {
        const req = JSON.parse(new TextDecoder().decode(encodeSignFrameRequest(request))) as unknown;
        const rep = JSON.parse(new TextDecoder().decode(encodeSignFrameReply(reply))) as unknown;
        decodesOrRefuses(() => decodeSignFrameRequest(jsonBytes(mutateJson(req, path, replacement, op))));
        decodesOrRefuses(() => decodeSignFrameReply(jsonBytes(mutateJson(rep, path, replacement, op))));
      }),
      { numRuns: 800 },
    );
  });

  it('a sign frame carries exactly the body its kind names', () => {
    fc.assert(
      fc.property(signFrameArb, fc.uint8Array({ minLength: 1, maxLength: 40 }), (frame, extra) => {
        const obj = JSON.parse(new TextDecoder().decode(encodeSignFrameRequest(frame))) as Record<string, unknown>;
        const kind = (obj.request as { messageKind: string }).messageKind;
        // Both bodies, or the other kind's body only: refused.
        const both = { ...obj, data: `0x${Buffer.from(extra).toString('hex')}`, psbt: Buffer.from(extra).toString('base64') };
        const swapped = kind === 'raw' ? { ...obj, data: undefined, psbt: Buffer.from(extra).toString('base64') } : { ...obj, psbt: undefined, data: `0x${Buffer.from(extra).toString('hex')}` };
        for (const bad of [both, swapped]) {
          assert.throws(() => decodeSignFrameRequest(jsonBytes(bad)), (e) => isTkmsError(e, 'bad_request'));
        }
      }),
      { numRuns: 100 },
    );
    const empty = { v: 1, type: 'sign', request: { keyId: 'k', messageKind: 'raw', messageHash: `0x${'00'.repeat(32)}`, requester: `0x${'11'.repeat(20)}`, notBefore: 1, notAfter: 2, requestId: `0x${'22'.repeat(16)}`, signature: `0x${'33'.repeat(65)}` }, data: '0x', signers: [{ memberId: 1, commitments: [{ hiding: '', binding: '' }] }], epoch: 0 };
    assert.throws(() => decodeSignFrameRequest(jsonBytes(empty)), (e) => isTkmsError(e, 'bad_request') && /must not be empty/.test(e.message));
  });

  it('decodeSignMessage: round trip, and anything else decodes or is refused with a 4xx TkmsError', () => {
    fc.assert(
      fc.property(messageArb, (m) => {
        assert.deepEqual(decodeSignMessage(JSON.parse(JSON.stringify(encodeSignMessage(m)))), m);
      }),
      { numRuns: 200 },
    );
    const kinded = fc.record({ kind: fc.constantFrom('raw', 'psbt', 'RAW', ''), data: fc.oneof(fc.jsonValue(), fc.uint8Array({ maxLength: 40 }).map((b) => `0x${Buffer.from(b).toString('hex')}`)), psbt: fc.oneof(fc.jsonValue(), fc.base64String({ maxLength: 40 })) }, { requiredKeys: ['kind'], noNullPrototype: true });
    fc.assert(
      fc.property(fc.oneof(fc.jsonValue(), kinded, messageArb.map(encodeSignMessage).chain((m) => jsonMutationArb.map(([path, replacement, op]) => mutateJson(m, path, replacement, op)))), (value) => {
        decodesOrRefuses(() => decodeSignMessage(value));
      }),
      { numRuns: 800 },
    );
  });
});
