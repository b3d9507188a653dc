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

describe('node reshare wire (/tkms/ceremony/1 frames)', () => {
  const frameArb = fc.record({
    type: fc.constantFrom('payload' as const, 'refresh' as const),
    proposalId: fc.uint8Array({ minLength: 32, maxLength: 32 }),
    payload: fc.uint8Array({ minLength: 0, maxLength: 2048 }),
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

  it('refuses extra fields, a wrong version, a short proposal id and bad base64', () => {
    const good = { v: 1, type: 'payload', proposalId: `0x${'ab'.repeat(32)}`, payload: 'AAEC' };
    assert.equal(decodeCeremonyFrame(json(good)).type, 'payload');
    refusedWith('bad_request', () => decodeCeremonyFrame(json({ ...good, extra: 1 })));
    refusedWith('bad_request', () => decodeCeremonyFrame(json({ ...good, v: 2 })));
    assert.throws(() => decodeCeremonyFrame(json({ ...good, proposalId: '0xabcd' })), isTkmsError);
    assert.throws(() => decodeCeremonyFrame(json({ ...good, payload: 'A=B' })), isTkmsError);
    refusedWith('bad_request', () => decodeCeremonyFrame(json({ ...good, type: 'proposal' })));
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
