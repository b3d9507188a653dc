import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isTkmsError, randomBytes } from '../../core/index.ts';
import {
  decodeCeremonyFrame,
  decodeCeremonyReply,
  encodeCeremonyFrame,
  encodeCeremonyReply,
  MAX_CEREMONY_FRAME_BYTES,
  MAX_REFRESH_PROPOSAL_BYTES,
  type CeremonyFrame,
} from '../../node/reshare-wire.ts';

const encoder = new TextEncoder();
const json = (v: unknown) => encoder.encode(JSON.stringify(v));

function refusedWith(code: string, f: () => unknown): void {
  assert.throws(f, (e: unknown) => isTkmsError(e) && e.code === code);
}

describe('node reshare wire (/tkms/ceremony/2 frames)', () => {
  const frameArb = fc.record({
    type: fc.constantFrom('payload' as const, 'refresh' as const),
    proposalId: fc.uint8Array({ minLength: 32, maxLength: 32 }),
    payload: fc.uint8Array({ minLength: 1, maxLength: 2048 }),
  });

  it('round-trips every frame', () => {
    fc.assert(
      fc.property(frameArb, (frame: CeremonyFrame) => {
        const back = decodeCeremonyFrame(encodeCeremonyFrame(frame));
        assert.equal(back.type, frame.type);
        assert.deepEqual(back.proposalId, frame.proposalId);
        assert.deepEqual(back.payload, frame.payload);
      }),
    );
  });

  it('never throws anything but a typed error on arbitrary bytes or JSON', () => {
    const anyJson = fc.oneof(
      fc.uint8Array({ maxLength: 512 }),
      fc.jsonValue().map(json),
      fc.record({ v: fc.constantFrom(1, 2, '1'), type: fc.string(), proposalId: fc.string(), payload: fc.string() }, { requiredKeys: [] }).map(json),
      // Binary frames with a valid version and arbitrary type, id and payload lengths.
      fc.tuple(fc.integer({ min: 0, max: 4 }), fc.uint8Array({ maxLength: 80 })).map(([type, rest]) => Uint8Array.from([2, type, ...rest])),
    );
    fc.assert(
      fc.property(anyJson, (bytes) => {
        try {
          decodeCeremonyFrame(bytes);
        } catch (e) {
          assert.ok(isTkmsError(e), `untyped error ${String(e)}`);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('refuses a version-1 JSON frame, an unknown type, a short header and an empty payload', () => {
    const good = encodeCeremonyFrame({ type: 'payload', proposalId: randomBytes(32), payload: Uint8Array.of(1, 2, 3) });
    assert.equal(decodeCeremonyFrame(good).type, 'payload');
    refusedWith('bad_request', () => decodeCeremonyFrame(json({ v: 1, type: 'payload', proposalId: `0x${'ab'.repeat(32)}`, payload: 'AAEC' })));
    refusedWith('bad_request', () => decodeCeremonyFrame(Uint8Array.from([3, ...good.subarray(1)])));
    refusedWith('bad_request', () => decodeCeremonyFrame(Uint8Array.from([2, 3, ...good.subarray(2)])));
    refusedWith('bad_length', () => decodeCeremonyFrame(good.subarray(0, 20)));
    refusedWith('bad_length', () => decodeCeremonyFrame(good.subarray(0, 34)));
    refusedWith('bad_request', () => decodeCeremonyFrame(new Uint8Array(0)));
  });

  it('refuses a frame past its byte bound before parsing it, and a refresh proposal past its own', () => {
    refusedWith('payload_too_large', () => decodeCeremonyFrame(new Uint8Array(MAX_CEREMONY_FRAME_BYTES + 1)));
    const big = { type: 'refresh' as const, proposalId: randomBytes(32), payload: new Uint8Array(MAX_REFRESH_PROPOSAL_BYTES + 1) };
    refusedWith('payload_too_large', () => decodeCeremonyFrame(encodeCeremonyFrame(big)));
    assert.equal(decodeCeremonyFrame(encodeCeremonyFrame({ ...big, type: 'payload' })).payload.length, MAX_REFRESH_PROPOSAL_BYTES + 1);
  });

  it('round-trips replies and refuses malformed ones with typed errors', () => {
    assert.deepEqual(decodeCeremonyReply(encodeCeremonyReply({ ok: true })), { ok: true });
    assert.deepEqual(decodeCeremonyReply(encodeCeremonyReply({ ok: false, code: 'not_approved', message: 'no' })), { ok: false, code: 'not_approved', message: 'no' });
    fc.assert(
      fc.property(fc.jsonValue().map(json), (bytes) => {
        try {
          decodeCeremonyReply(bytes);
        } catch (e) {
          assert.ok(isTkmsError(e));
        }
      }),
    );
    assert.throws(() => decodeCeremonyReply(json({ ok: true, extra: 1 })), isTkmsError);
    assert.throws(() => decodeCeremonyReply(json({ ok: false, error: { code: 'nope', message: '' } })), isTkmsError);
  });
});
