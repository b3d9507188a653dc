import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isTkmsError } from '../../core/index.ts';
import { KEY_STATES, materialKeyId } from '../../core/keys/key-model.ts';
import { parseKeyChangeResult, parseKeyView, usableVersion, type KeyView } from '../../client/key-view.ts';

/**
 * The client's decoders of the gateway's managed-key answers: anything a gateway sends is a view,
 * or a bad_request naming what is wrong, never another error; the key's state decides encryption.
 */
function typedOrOk<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch (e) {
    assert.ok(isTkmsError(e, 'bad_request'), `expected bad_request, got ${String(e)}`);
    return undefined;
  }
}

const keyId = fc.stringMatching(/^[a-z0-9][a-z0-9_-]{0,20}$/);
const unix = fc.integer({ min: 0, max: 4_000_000_000 });
const address = fc.stringMatching(/^0x[0-9a-f]{40}$/);

const viewArb: fc.Arbitrary<KeyView> = keyId.chain((id) =>
  fc.record({
    keyId: fc.constant(id),
    spec: fc.constant('ECC_SECG_P256K1'),
    usage: fc.constant('ENCRYPT_DECRYPT'),
    origin: fc.oneof(fc.constant({ type: 'dkg' as const }), fc.record({ type: fc.constant('derived' as const), root: keyId, path: fc.stringMatching(/^[!-~]{1,20}$/) })),
    description: fc.string(),
    aliases: fc.array(fc.stringMatching(/^alias\/[a-z]{1,10}$/), { maxLength: 3 }),
    tags: fc.dictionary(fc.stringMatching(/^[a-z]{1,8}$/), fc.string({ maxLength: 8 }), { maxKeys: 3 }),
    admins: fc.array(address, { minLength: 1, maxLength: 3 }),
    policy: fc.dictionary(fc.stringMatching(/^[a-z]{1,8}$/), fc.jsonValue(), { maxKeys: 2 }) as fc.Arbitrary<Record<string, unknown>>,
    rotationPeriodDays: fc.option(fc.integer({ min: 90, max: 2560 }), { nil: null }),
    state: fc.constantFrom(...KEY_STATES),
    deletionDate: fc.option(unix, { nil: null }),
    versions: fc.array(fc.record({ createdAt: unix, deletionDate: fc.option(unix, { nil: null }), state: fc.constantFrom('Enabled' as const, 'PendingDeletion' as const, 'Destroyed' as const) }), { minLength: 1, maxLength: 4 }).map((vs) =>
      vs.map((v, i) => ({ version: i + 1, materialKeyId: materialKeyId(id, i + 1), ...v })),
    ),
    currentVersion: fc.option(fc.integer({ min: 1, max: 4 }), { nil: null }),
    createdAt: unix,
    creator: address,
    sequence: fc.integer({ min: 1, max: 1000 }),
    head: fc.stringMatching(/^0x[0-9a-f]{64}$/),
  }),
);

describe('client key view decoders (property)', () => {
  it('arbitrary JSON: a key view or bad_request, never another error', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        typedOrOk(() => parseKeyView(value));
        typedOrOk(() => parseKeyChangeResult(value));
        typedOrOk(() => parseKeyChangeResult({ key: value, acknowledgedBy: [1], needed: 1, effective: true, failures: [] }));
      }),
      { numRuns: 200 },
    );
  });

  it('a well-formed view decodes to itself, material ids computed from the key id', () => {
    fc.assert(
      fc.property(viewArb, (view) => {
        // A gateway's own materialKeyId is never read: a wrong one changes nothing.
        const sent = { ...view, versions: view.versions.map((v) => ({ ...v, materialKeyId: 'elsewhere' })) };
        assert.deepEqual(parseKeyView(JSON.parse(JSON.stringify(sent))), JSON.parse(JSON.stringify(view)));
      }),
      { numRuns: 200 },
    );
  });

  it('one field replaced by anything: the view or bad_request', () => {
    const fields = ['keyId', 'origin', 'aliases', 'tags', 'admins', 'policy', 'state', 'deletionDate', 'versions', 'currentVersion', 'createdAt', 'sequence', 'head'] as const;
    fc.assert(
      fc.property(viewArb, fc.constantFrom(...fields), fc.jsonValue(), (view, field, value) => {
        typedOrOk(() => parseKeyView({ ...view, [field]: value }));
      }),
      { numRuns: 200 },
    );
  });

  it('encryption uses the current version only when the key and that version are Enabled; every other case is refused with a key_* code', () => {
    fc.assert(
      fc.property(viewArb, unix, (view, now) => {
        try {
          const v = usableVersion(view, now);
          assert.equal(view.state, 'Enabled');
          assert.equal(v.version, view.currentVersion);
          assert.equal(v.state, 'Enabled');
        } catch (e) {
          assert.ok(isTkmsError(e) && ['key_disabled', 'key_pending_deletion', 'key_destroyed'].includes(e.code), String(e));
          assert.ok(e.message.includes(view.keyId), e.message);
        }
      }),
      { numRuns: 200 },
    );
  });
});
