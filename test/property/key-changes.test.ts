import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeHex, encodeHex } from '../../core/bytes.ts';
import { isTkmsError } from '../../core/errors.ts';
import type { KeyBook } from '../../core/keys/key-book.ts';
import { KEY_ACTIONS, keyChangeDigest, KeyChangeMessage, parseKeyChangeBody, signKeyChange, type KeyAction, type KeyChange } from '../../core/keys/key-change.ts';
import {
  decodeKeyChangeReply,
  decodeKeyChangeRequest,
  encodeKeyChangeReply,
  encodeKeyChangeRequest,
  KEY_CHANGE_PAGE_SIZE,
  type KeyChangeReply,
  type KeyChangeRequest,
} from '../../core/keys/key-wire.ts';
import { MAX_TIMESTAMP } from '../../core/schema.ts';
import { mutation } from '../support/byte-mutations.ts';
import { ACCOUNTS, ALICE, BOB, CAROL, DAY, DEPLOYMENT, newBook, nextChange, T0 } from '../support/key-change-fixtures.ts';

/** Managed-key changes and the /tkms/key-changes/1 frames against arbitrary input; applying changes is deterministic. */
function expectTypedOrOk(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    assert.ok(isTkmsError(e), `expected a TkmsError, got ${String(e)}`);
  }
}

const utf8 = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

const changeArb: fc.Arbitrary<KeyChange> = fc
  .record({
    keyId: fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,30}$/),
    sequence: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
    previous: fc.uint8Array({ minLength: 32, maxLength: 32 }),
    action: fc.constantFrom(...KEY_ACTIONS),
    body: fc.oneof(fc.jsonValue().map((v) => JSON.stringify(v)), fc.string({ maxLength: 200 })),
    issuedAt: fc.integer({ min: 0, max: MAX_TIMESTAMP }),
    signer: fc.constantFrom(...ACCOUNTS),
  })
  .map(({ signer, ...c }) => signKeyChange(signer.secret, { ...c, admin: decodeHex(signer.address) }, DEPLOYMENT));

const requestArb: fc.Arbitrary<KeyChangeRequest> = fc.oneof(
  changeArb.map((change) => ({ type: 'change' as const, change })),
  fc.nat({ max: Number.MAX_SAFE_INTEGER }).map((after) => ({ type: 'sync' as const, after })),
  fc.record({ type: fc.constant('history' as const), keyId: fc.string({ maxLength: 64 }), after: fc.nat({ max: Number.MAX_SAFE_INTEGER }) }),
);

const replyArb: fc.Arbitrary<KeyChangeReply> = fc.oneof(
  fc.record({
    ok: fc.constant(true as const),
    type: fc.constant('applied' as const),
    keyId: fc.string({ maxLength: 64 }),
    sequence: fc.nat({ max: Number.MAX_SAFE_INTEGER }),
    head: fc.uint8Array({ minLength: 32, maxLength: 32 }),
    known: fc.boolean(),
  }),
  fc.record({
    ok: fc.constant(true as const),
    type: fc.constant('page' as const),
    changes: fc.array(changeArb, { maxLength: 3 }),
    next: fc.option(fc.nat({ max: Number.MAX_SAFE_INTEGER }), { nil: null }),
  }),
  fc.record({ ok: fc.constant(false as const), code: fc.constantFrom('key_disabled', 'key_change_replayed', 'unauthorized'), message: fc.string({ maxLength: 100 }) }),
);

describe('managed key changes and /tkms/key-changes/1 (property)', () => {
  it('KeyChangeMessage: arbitrary JSON, and a valid change with any field replaced, decode or throw a TkmsError', () => {
    fc.assert(fc.property(fc.jsonValue(), (v) => expectTypedOrOk(() => KeyChangeMessage.decode(v))), { numRuns: 300 });
    fc.assert(
      fc.property(changeArb, fc.constantFrom('keyId', 'sequence', 'previous', 'action', 'body', 'issuedAt', 'admin', 'signature', 'extra'), fc.jsonValue(), (change, field, value) => {
        const json = KeyChangeMessage.encode(change) as Record<string, unknown>;
        json[field] = value;
        expectTypedOrOk(() => KeyChangeMessage.decode(json));
        delete json[field];
        expectTypedOrOk(() => KeyChangeMessage.decode(json));
      }),
      { numRuns: 150 },
    );
  });

  it('KeyChangeMessage: decode ∘ encode is the identity, through JSON text too', () => {
    fc.assert(
      fc.property(changeArb, (change) => {
        assert.deepEqual(KeyChangeMessage.decode(KeyChangeMessage.encode(change)), change);
        assert.deepEqual(KeyChangeMessage.decode(JSON.parse(JSON.stringify(KeyChangeMessage.encode(change)))), change);
      }),
      { numRuns: 100 },
    );
  });

  it('request and reply frames: arbitrary bytes and arbitrary JSON decode or throw a TkmsError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
        expectTypedOrOk(() => decodeKeyChangeRequest(bytes));
        expectTypedOrOk(() => decodeKeyChangeReply(bytes));
      }),
      { numRuns: 300 },
    );
    fc.assert(
      fc.property(fc.jsonValue(), fc.constantFrom('change', 'sync', 'history', 'applied', 'page', 'x'), fc.constantFrom(true, false, undefined), (v, type, ok) => {
        expectTypedOrOk(() => decodeKeyChangeRequest(utf8(v)));
        expectTypedOrOk(() => decodeKeyChangeReply(utf8(v)));
        // Objects that get past the type dispatch, with any other fields.
        const obj = typeof v === 'object' && v !== null && !Array.isArray(v) ? { ...v } : { value: v };
        expectTypedOrOk(() => decodeKeyChangeRequest(utf8({ ...obj, v: 1, type })));
        expectTypedOrOk(() => decodeKeyChangeReply(utf8({ ...obj, ok, type })));
        expectTypedOrOk(() => decodeKeyChangeReply(utf8({ ok: false, error: v })));
      }),
      { numRuns: 300 },
    );
  });

  it('request and reply frames: mutated encodings decode or throw a TkmsError', () => {
    fc.assert(
      fc.property(
        requestArb.chain((r) => mutation(encodeKeyChangeRequest(r))),
        replyArb.chain((r) => mutation(encodeKeyChangeReply(r))),
        (req, reply) => {
          expectTypedOrOk(() => decodeKeyChangeRequest(req));
          expectTypedOrOk(() => decodeKeyChangeReply(reply));
        },
      ),
      { numRuns: 200 },
    );
  });

  it('request and reply frames: decode ∘ encode is the identity', () => {
    fc.assert(
      fc.property(requestArb, replyArb, (request, reply) => {
        // fast-check's records may have no prototype; the decoders make plain objects.
        assert.deepEqual(decodeKeyChangeRequest(encodeKeyChangeRequest(request)), { ...request });
        assert.deepEqual(decodeKeyChangeReply(encodeKeyChangeReply(reply)), { ...reply });
      }),
      { numRuns: 150 },
    );
  });

  it('a page holds at most KEY_CHANGE_PAGE_SIZE changes', () => {
    const change = nextChange(newBook(), 'k', 'create', { origin: { type: 'dkg' }, admins: [ALICE.address] });
    const page = (n: number) => ({ ok: true, type: 'page', changes: Array.from({ length: n }, () => KeyChangeMessage.encode(change)), next: null });
    assert.equal((decodeKeyChangeReply(utf8(page(KEY_CHANGE_PAGE_SIZE))) as { changes: unknown[] }).changes.length, KEY_CHANGE_PAGE_SIZE);
    assert.throws(() => decodeKeyChangeReply(utf8(page(KEY_CHANGE_PAGE_SIZE + 1))), (e: unknown) => isTkmsError(e, 'bad_request'));
  });

  it('parseKeyChangeBody: every action, any string or JSON, parses or throws a TkmsError', () => {
    fc.assert(
      fc.property(fc.constantFrom(...KEY_ACTIONS), fc.oneof(fc.string({ maxLength: 300 }), fc.jsonValue().map((v) => JSON.stringify(v)), fc.dictionary(fc.string({ maxLength: 12 }), fc.jsonValue()).map((v) => JSON.stringify(v))), (action, body) =>
        expectTypedOrOk(() => parseKeyChangeBody(action, body)),
      ),
      { numRuns: 1000 },
    );
  });

  describe('applying changes', () => {
    /** Bodies per action, valid and not, so a random walk meets most refusals. */
    const BODIES: Record<KeyAction, unknown[]> = {
      create: [
        { origin: { type: 'dkg' }, admins: [ALICE.address, BOB.address] },
        { origin: { type: 'derived', root: 'root', path: 'p/1' }, admins: [BOB.address], rotationPeriodDays: 90, aliases: ['alias/x'], tags: { t: '1' } },
        { origin: { type: 'dkg' }, admins: [] },
      ],
      updateDescription: [{ description: 'd' }, { description: 1 }],
      createAlias: [{ alias: 'alias/x' }, { alias: 'alias/y' }, { alias: 'alias/tkms/z' }],
      renameAlias: [{ from: 'alias/x', to: 'alias/y' }, { from: 'alias/y', to: 'alias/x' }],
      deleteAlias: [{ alias: 'alias/x' }, { alias: 'alias/y' }],
      tag: [{ tags: { t: '2' } }, { tags: { u: '' } }, { tags: { 'tkms:x': '1' } }],
      untag: [{ keys: ['t'] }, { keys: [] }],
      enable: [{}],
      disable: [{}],
      scheduleDeletion: [{ pendingWindowSeconds: 3 * DAY }, { pendingWindowDays: 7 }, { version: 1, pendingWindowDays: 7 }, { pendingWindowDays: 3 }],
      cancelDeletion: [{}, { version: 1 }],
      rotate: [{}, { x: 1 }],
      setRotation: [{ rotationPeriodDays: 90 }, { rotationPeriodDays: null }],
      putPolicy: [{ policy: { a: 1 } }, { policy: 1 }],
      updateAdmins: [{ admins: [ALICE.address, BOB.address] }, { admins: [CAROL.address] }],
    };
    const KEYS = ['k1', 'k2', 'k3'];

    const stepArb = fc.record({
      key: fc.nat(KEYS.length - 1),
      // Creates often enough that keys exist to change; admins (ALICE, BOB) more often than others.
      action: fc.oneof({ arbitrary: fc.constant<KeyAction>('create'), weight: 2 }, { arbitrary: fc.constantFrom(...KEY_ACTIONS), weight: 8 }),
      body: fc.nat(9),
      signer: fc.constantFrom(0, 0, 1, 1, 2, 3),
      /** Mostly the next sequence; sometimes a replay or a gap. */
      sequenceShift: fc.constantFrom(0, 0, 0, 0, 0, 0, -1, 1),
      conflict: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
      advance: fc.integer({ min: 0, max: 4 * DAY }),
    });

    function snapshot(book: KeyBook) {
      const keys = book.list({}, T0);
      return { size: book.size, count: book.changeCount, keys: structuredClone(keys), page: book.page(0, 10_000), aliases: ['alias/x', 'alias/y'].map((a) => book.resolve(a)?.keyId) };
    }

    function attempt(book: KeyBook, change: KeyChange): string {
      try {
        book.commit(change, book.check(change));
        return 'ok';
      } catch (e) {
        assert.ok(isTkmsError(e), `expected a TkmsError, got ${String(e)}`);
        return e.code;
      }
    }

    it('two books given the same changes in the same order hold the same keys; a refused change changes nothing', () => {
      const seen = new Set<string>();
      fc.assert(
        fc.property(fc.array(stepArb, { minLength: 10, maxLength: 40 }), (steps) => {
          const a = newBook({ allowShortDeletionWindow: true, creation: { creators: 'open', perCreatorQuota: 2 } });
          const b = newBook({ allowShortDeletionWindow: true, creation: { creators: 'open', perCreatorQuota: 2 } });
          // One key from the start, so most walks change a key rather than fail to create one.
          const first = nextChange(a, 'k1', 'create', BODIES.create[0]);
          assert.equal(attempt(a, first), 'ok');
          assert.equal(attempt(b, first), 'ok');
          let now = T0;
          for (const step of steps) {
            now += step.advance;
            const keyId = KEYS[step.key]!;
            const key = a.get(keyId);
            const bodies = BODIES[step.action];
            const sequence = Math.max(1, (key?.sequence ?? 0) + 1 + step.sequenceShift);
            const change = nextChange(a, keyId, step.action, bodies[step.body % bodies.length], {
              admin: ACCOUNTS[step.signer]!,
              issuedAt: now,
              sequence,
              previous: step.conflict ? new Uint8Array(32).fill(1) : undefined,
            });
            const beforeA = snapshot(a);
            const outcomeA = attempt(a, change);
            const outcomeB = attempt(b, change);
            assert.equal(outcomeA, outcomeB);
            seen.add(outcomeA);
            if (outcomeA !== 'ok') assert.deepEqual(snapshot(a), beforeA);
            assert.deepEqual(snapshot(b), snapshot(a));
          }
          for (const keyId of KEYS) {
            assert.deepEqual(b.get(keyId), a.get(keyId));
            const key = a.get(keyId);
            if (key !== undefined) assert.equal(key.head, encodeHex(keyChangeDigest(a.history(keyId, key.sequence - 1, 1)[0]!, DEPLOYMENT)));
          }
        }),
        { numRuns: 40 },
      );
      // The walk reaches acceptance and the main refusals (a check that the generator is not vacuous).
      for (const code of ['ok', 'key_change_replayed', 'key_change_out_of_order', 'key_change_conflict', 'not_key_admin', 'key_change_invalid', 'bad_request']) {
        assert.ok(seen.has(code), `no step ended in ${code}; seen ${[...seen].join(', ')}`);
      }
    });
  });
});
