import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encodeHex, G, isTkmsError } from '../../core/index.ts';
import type { DkgPublicResult } from '../../core/dkg/index.ts';
import { maxAttempts, maxMessageSize, type CeremonyMessageKind } from '../../core/ceremony/index.ts';
import { MAX_MEMBERS } from '../../core/committee.ts';
import {
  decodeDkgFrame,
  DKG_PROTOCOL,
  encodeDkgFrame,
  MAX_DKG_FRAME_BYTES,
  MAX_DKG_PAYLOAD_BYTES,
  MAX_DKG_RESULT_BYTES,
  type DkgFrame,
} from '../../node/dkg-wire.ts';

/** /tkms/dkg/2 frames (node/dkg-wire.ts): every decoder against arbitrary input, round trips, and each bound pushed past. */
function expectTypedOrOk(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    assert.ok(isTkmsError(e), `expected a TkmsError, got ${String(e)}`);
  }
}

function refused(fn: () => unknown, code: string, pattern?: RegExp): void {
  assert.throws(fn, (e: unknown) => isTkmsError(e) && e.code === code && (pattern === undefined || pattern.test(e.message)));
}

const utf8 = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
const keyIdArb = fc.stringMatching(/^[a-z0-9][a-z0-9_-]{0,20}$/);
const sessionIdArb = fc.uint8Array({ minLength: 16, maxLength: 16 });

/** A well-formed (unsigned-checked) result: the decoder checks form, the runner checks signatures. */
function resultFor(keyId: string, sessionId: Uint8Array, n: number, t: number, extraSignature = 0): DkgPublicResult {
  const point = (k: number) => encodeHex(G.multiply(BigInt(k)).toBytes(true));
  const ids = Array.from({ length: n }, (_, i) => i + 1);
  return {
    keyId,
    committeeId: 'wire-test',
    sessionId: encodeHex(sessionId),
    t,
    n,
    groupPublicKey: point(7),
    verificationShares: Object.fromEntries(ids.map((id) => [String(id), point(100 + id)])),
    qualified: ids.slice(0, t),
    transcriptHash: encodeHex(new Uint8Array(32).fill(3)),
    signatures: Object.fromEntries(ids.slice(0, t).map((id) => [String(id), encodeHex(new Uint8Array(64 + extraSignature).fill(id))])),
  };
}

const frameArb: fc.Arbitrary<DkgFrame> = fc.oneof(
  fc.record({
    type: fc.constant('proposal' as const),
    keyId: keyIdArb,
    sessionId: sessionIdArb,
    committeeId: fc.stringMatching(/^[a-z]{1,10}$/),
    epoch: fc.integer({ min: 0, max: 2 ** 32 - 1 }),
    t: fc.integer({ min: 1, max: 100 }),
    proposer: fc.integer({ min: 1, max: 100 }),
  }),
  fc.record({ type: fc.constant('payload' as const), keyId: keyIdArb, sessionId: sessionIdArb, payload: fc.uint8Array({ minLength: 1, maxLength: 300 }) }),
  fc.record({ keyId: keyIdArb, sessionId: sessionIdArb, n: fc.integer({ min: 1, max: 6 }) }).chain(({ keyId, sessionId, n }) =>
    fc.integer({ min: 1, max: n }).map((t): DkgFrame => ({ type: 'result', keyId, sessionId, result: resultFor(keyId, sessionId, n, t) })),
  ),
);

/** Where a frame's body starts (after version, type, key id and session id). */
const bodyAt = (keyId: string) => 2 + 1 + keyId.length + 16;

describe('DKG wire /tkms/dkg/2 (property)', () => {
  it('is version 2 of the protocol: a version-1 (JSON) frame or another version byte is refused as an unsupported version', () => {
    assert.equal(DKG_PROTOCOL, '/tkms/dkg/2');
    const v1Payload = { v: 1, type: 'payload', keyId: 'k1', sessionId: encodeHex(new Uint8Array(16)), payload: '00' };
    refused(() => decodeDkgFrame(utf8(v1Payload)), 'bad_request', /unsupported version/);
    fc.assert(
      fc.property(frameArb, fc.integer({ min: 0, max: 255 }), (frame, version) => {
        fc.pre(version !== 2);
        const bytes = encodeDkgFrame(frame);
        bytes[0] = version;
        refused(() => decodeDkgFrame(bytes), 'bad_request', /unsupported version/);
      }),
      { numRuns: 100 },
    );
  });

  it('decodeDkgFrame: arbitrary bytes give a frame or a TkmsError', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (b) => expectTypedOrOk(() => decodeDkgFrame(b))), { numRuns: 500 });
    fc.assert(fc.property(fc.uint8Array({ maxLength: 300 }), (b) => expectTypedOrOk(() => decodeDkgFrame(Uint8Array.of(2, ...b)))), { numRuns: 500 });
    fc.assert(fc.property(fc.jsonValue(), (v) => expectTypedOrOk(() => decodeDkgFrame(utf8(v)))), { numRuns: 200 });
  });

  it('decodeDkgFrame(encodeDkgFrame(f)) round-trips every kind; a changed, cut or lengthened frame is refused or still decodes', () => {
    fc.assert(
      fc.property(frameArb, fc.nat(), fc.integer({ min: 0, max: 255 }), fc.uint8Array({ minLength: 1, maxLength: 8 }), (frame, at, byte, extra) => {
        const bytes = encodeDkgFrame(frame);
        assert.deepEqual(decodeDkgFrame(bytes), { ...frame });
        const changed = Uint8Array.from(bytes);
        changed[at % bytes.length] = byte;
        expectTypedOrOk(() => decodeDkgFrame(changed));
        expectTypedOrOk(() => decodeDkgFrame(bytes.subarray(0, at % bytes.length)));
        if (frame.type === 'proposal') refused(() => decodeDkgFrame(Uint8Array.from([...bytes, ...extra])), 'bad_length', /trailing/);
        else expectTypedOrOk(() => decodeDkgFrame(Uint8Array.from([...bytes, ...extra])));
      }),
      { numRuns: 200 },
    );
  });

  it('a result frame must name the key id and session of the result it carries', () => {
    fc.assert(
      fc.property(keyIdArb, sessionIdArb, sessionIdArb, (keyId, a, b) => {
        fc.pre(encodeHex(a) !== encodeHex(b));
        const bytes = encodeDkgFrame({ type: 'result', keyId, sessionId: a, result: resultFor(keyId, a, 3, 2) });
        bytes.set(b, bodyAt(keyId) - 16);
        refused(() => decodeDkgFrame(bytes), 'bad_request', /another key id or session/);
      }),
      { numRuns: 50 },
    );
  });

  describe('bounds, checked before anything is parsed or verified', () => {
    it(`a frame of more than MAX_DKG_FRAME_BYTES (${MAX_DKG_FRAME_BYTES}) is payload_too_large; a payload of MAX_DKG_PAYLOAD_BYTES (${MAX_DKG_PAYLOAD_BYTES}) with the longest key id decodes`, () => {
      const keyId = 'k'.repeat(64);
      const sessionId = new Uint8Array(16);
      const at = encodeDkgFrame({ type: 'payload', keyId, sessionId, payload: new Uint8Array(MAX_DKG_PAYLOAD_BYTES).fill(1) });
      assert.equal((decodeDkgFrame(at) as { payload: Uint8Array }).payload.length, MAX_DKG_PAYLOAD_BYTES);
      const past = encodeDkgFrame({ type: 'payload', keyId, sessionId, payload: new Uint8Array(MAX_DKG_PAYLOAD_BYTES + 1).fill(1) });
      assert.equal(past.length, MAX_DKG_FRAME_BYTES + 1);
      refused(() => decodeDkgFrame(past), 'payload_too_large');
    });

    it('every DKG message a committee file allows fits in a frame: each kind at n = 1..MAX_MEMBERS, every t', () => {
      const kinds: CeremonyMessageKind[] = ['hello', 'dealing', 'complaint', 'proposal', 'echo', 'vote', 'certificate'];
      fc.assert(
        fc.property(fc.integer({ min: 1, max: MAX_MEMBERS }).chain((n) => fc.tuple(fc.constant(n), fc.integer({ min: 1, max: n }))), ([n, t]) => {
          const shape = { family: 'dkg' as const, n, t, nTo: n, tTo: t, keys: 1, maxAttempts: maxAttempts(n) };
          for (const kind of kinds) assert.ok(maxMessageSize(shape, kind) <= MAX_DKG_PAYLOAD_BYTES, `${kind} at n = ${n}, t = ${t}`);
        }),
        { numRuns: 200 },
      );
    });

    it(`a result of more than MAX_DKG_RESULT_BYTES (${MAX_DKG_RESULT_BYTES}) is payload_too_large before it is parsed`, () => {
      const sessionId = new Uint8Array(16);
      const head = encodeDkgFrame({ type: 'result', keyId: 'k1', sessionId, result: resultFor('k1', sessionId, 3, 2) }).subarray(0, bodyAt('k1'));
      refused(() => decodeDkgFrame(Uint8Array.from([...head, ...new Uint8Array(MAX_DKG_RESULT_BYTES + 1).fill(0x20)])), 'payload_too_large');
      refused(() => decodeDkgFrame(Uint8Array.from([...head, ...new Uint8Array(MAX_DKG_RESULT_BYTES).fill(0x20)])), 'bad_request');
    });
  });
});
