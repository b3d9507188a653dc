import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { decodeHex, encodeHex } from '../../core/bytes.ts';
import { isTkmsError, TkmsError, type ErrorCode } from '../../core/errors.ts';
import { applyKeyChange, type KeyApplyContext } from '../../core/keys/key-apply.ts';
import { keyChangeDigest, keyChangeSigner, parseKeyChangeBody } from '../../core/keys/key-change.ts';
import {
  assertManagedKeyId,
  currentVersionAt,
  KEY_LIMITS,
  keyStateAt,
  keyVersionsAt,
  materialKeyId,
  parseMaterialKeyId,
  requireUsable,
  versionStateAt,
} from '../../core/keys/key-model.ts';
import { ALICE, BOB, CAROL, createKey, DAVE, DAY, DEPLOYMENT, newBook, nextChange, T0, take } from '../support/key-change-fixtures.ts';

function refuses(fn: () => unknown, code: ErrorCode, message?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isTkmsError(e), `expected a TkmsError, got ${String(e)}`);
    assert.equal(e.code, code, `expected ${code}, got ${e.code}: ${e.message}`);
    if (message !== undefined) assert.match(e.message, message);
    return true;
  });
}

const derived = (path = 'user/1') => ({ type: 'derived', root: 'root', path });

describe('managed keys: signed changes and their application (core/keys)', () => {
  describe('create', () => {
    it('makes an Enabled key with version 1, sorted lower-case admins, its aliases and tags', () => {
      const book = newBook();
      const { key, digest, signer } = createKey(book, 'payroll', {
        admins: [BOB.address.toUpperCase().replace('0X', '0x'), ALICE.address],
        description: 'payroll key',
        aliases: ['alias/pay', 'alias/a-pay'],
        tags: { team: 'finance', 'cost center': '42' },
      });
      assert.equal(signer, ALICE.address);
      assert.equal(key.state, 'Enabled');
      assert.deepEqual(key.admins, [ALICE.address, BOB.address].sort());
      assert.deepEqual(key.aliases, ['alias/a-pay', 'alias/pay']);
      assert.deepEqual(Object.keys(key.tags), ['cost center', 'team']);
      assert.deepEqual(key.versions, [{ version: 1, createdAt: T0, deletionDate: null }]);
      assert.equal(key.creator, ALICE.address);
      assert.equal(key.sequence, 1);
      assert.equal(key.head, digest);
      assert.equal(digest, encodeHex(keyChangeDigest(book.history('payroll', 0, 1)[0]!, DEPLOYMENT)));
      assert.equal(key.spec, 'ECC_SECG_P256K1');
      assert.equal(key.usage, 'ENCRYPT_DECRYPT');
      assert.equal(book.resolve('alias/pay'), key);
    });

    it('refuses key ids that are malformed, too long or name a version', () => {
      const book = newBook();
      for (const keyId of ['k.v2', 'k.v1', 'a'.repeat(59), '-k', 'K', '']) {
        refuses(() => book.check(nextChange(book, keyId, 'create', { origin: { type: 'dkg' }, admins: [ALICE.address] })), 'bad_key_id');
      }
      assert.doesNotThrow(() => assertManagedKeyId('a'.repeat(58)));
      assert.doesNotThrow(() => assertManagedKeyId('k.v'));
      assert.doesNotThrow(() => assertManagedKeyId('k.va2'));
    });

    it('change 1 must be a create and a create must be change 1', () => {
      const book = newBook();
      refuses(() => book.check(nextChange(book, 'k', 'disable', {})), 'key_change_invalid', /must create it/);
      createKey(book, 'k');
      refuses(() => book.check(nextChange(book, 'k', 'create', { origin: { type: 'dkg' }, admins: [ALICE.address] })), 'key_change_invalid', /only its change 1/);
    });

    it('refuses a bad body, an admin listed twice and a rotation period out of range', () => {
      const book = newBook();
      refuses(() => book.check(nextChange(book, 'k', 'create', '{')), 'bad_request', /not JSON/);
      refuses(() => book.check(nextChange(book, 'k', 'create', { origin: { type: 'dkg' } })), 'bad_request');
      refuses(() => book.check(nextChange(book, 'k', 'create', { origin: { type: 'dkg' }, admins: [ALICE.address], extra: 1 })), 'bad_request');
      refuses(() => book.check(nextChange(book, 'k', 'create', { origin: { type: 'dkg' }, admins: [ALICE.address, ALICE.address.replace('0x', '0X').toLowerCase()] })), 'bad_request');
      refuses(() => book.check(nextChange(book, 'k', 'create', { origin: { type: 'dkg' }, admins: [ALICE.address, ALICE.address] })), 'bad_request', /listed twice/);
      refuses(() => book.check(nextChange(book, 'k', 'create', { origin: { type: 'dkg' }, admins: [ALICE.address], rotationPeriodDays: 2561 })), 'bad_request');
      refuses(() => book.check(nextChange(book, 'k', 'create', { origin: derived(), admins: [ALICE.address], rotationPeriodDays: 89 })), 'bad_request');
      const elevenAdmins = Array.from({ length: 11 }, (_, i) => `0x${(i + 1).toString(16).padStart(40, '0')}`);
      refuses(() => book.check(nextChange(book, 'k', 'create', { origin: { type: 'dkg' }, admins: elevenAdmins })), 'bad_request');
      assert.equal(book.size, 0);
    });

    it('with a creators list, only those accounts create; an open registry counts each creator against its quota', () => {
      const listed = newBook({ creation: { creators: [BOB.address], perCreatorQuota: 5 } });
      refuses(() => listed.check(nextChange(listed, 'k', 'create', { origin: { type: 'dkg' }, admins: [ALICE.address] })), 'not_key_admin', /may not create keys/);
      createKey(listed, 'k', {}, { admin: BOB });
      assert.equal(listed.get('k')!.creator, BOB.address);

      const open = newBook({ creation: { creators: 'open', perCreatorQuota: 2 } });
      createKey(open, 'a');
      createKey(open, 'b');
      refuses(() => open.check(nextChange(open, 'c', 'create', { origin: { type: 'dkg' }, admins: [ALICE.address] })), 'key_limit_exceeded', /quota/);
      createKey(open, 'c', {}, { admin: BOB });
    });

    it('refuses a key beyond the registry size and a change beyond the per-key history bound', () => {
      const book = newBook({ maxKeys: 1, maxChangesPerKey: 2 });
      createKey(book, 'a');
      refuses(() => book.check(nextChange(book, 'b', 'create', { origin: { type: 'dkg' }, admins: [ALICE.address] })), 'key_limit_exceeded');
      take(book, nextChange(book, 'a', 'disable', {}));
      refuses(() => book.check(nextChange(book, 'a', 'enable', {})), 'key_limit_exceeded');
    });

    it('bounds the bytes of changes a key holds and the registry holds in all: a change past either is refused, and nothing is taken', () => {
      // Each description change costs its body and 512 bytes (about 8.7 KiB): a create and three fit under 30 KiB, a fourth does not.
      const description = (i: number) => ({ description: `${i}`.padEnd(KEY_LIMITS.descriptionLength, 'd') });
      const perKey = newBook({ maxBytesPerKey: 30 * 1024 });
      createKey(perKey, 'a');
      for (let i = 0; i < 3; i++) take(perKey, nextChange(perKey, 'a', 'updateDescription', description(i)));
      refuses(() => perKey.check(nextChange(perKey, 'a', 'updateDescription', description(3))), 'key_limit_exceeded', /bytes of changes/);
      assert.equal(perKey.get('a')!.sequence, 4);
      // Another key still fits: the bound is per key.
      createKey(perKey, 'b');

      const total = newBook({ maxTotalBytes: 24 * 1024 });
      createKey(total, 'a');
      createKey(total, 'b');
      take(total, nextChange(total, 'a', 'updateDescription', description(0)));
      take(total, nextChange(total, 'b', 'updateDescription', description(1)));
      refuses(() => total.check(nextChange(total, 'a', 'updateDescription', description(2))), 'key_limit_exceeded', /keys.maxBytes/);
      refuses(() => total.check(nextChange(total, 'c', 'create', { origin: { type: 'dkg' }, admins: [ALICE.address], description: 'x'.repeat(KEY_LIMITS.descriptionLength) })), 'key_limit_exceeded', /keys.maxBytes/);
      assert.equal(total.size, 2);
    });
  });

  describe('order, signature and authority', () => {
    it('refuses a replayed, an out-of-order and a conflicting change with their own codes', () => {
      const book = newBook();
      const c1 = createKey(book, 'k');
      const c2 = nextChange(book, 'k', 'disable', {});
      take(book, c2);
      // Another change at the key's last sequence after the same predecessor (two admins at once), and the very first one again.
      refuses(() => book.check(nextChange(book, 'k', 'enable', {}, { sequence: 2, previous: decodeHex(c1.key.head) })), 'key_change_conflict');
      refuses(() => book.check(book.history('k', 0, 1)[0]!), 'key_change_replayed');
      refuses(() => book.check(c2), 'key_change_replayed');
      refuses(() => book.check(nextChange(book, 'k', 'enable', {}, { sequence: 4 })), 'key_change_out_of_order');
      refuses(() => book.check(nextChange(book, 'k', 'enable', {}, { previous: new Uint8Array(32).fill(7) })), 'key_change_conflict');
      assert.equal(book.get('k')!.sequence, 2);
    });

    it('refuses a change by a non-admin, one signed by another account than its admin, and one for another deployment', () => {
      const book = newBook();
      createKey(book, 'k', { admins: [ALICE.address, BOB.address] });
      refuses(() => book.check(nextChange(book, 'k', 'disable', {}, { admin: CAROL })), 'not_key_admin', new RegExp(CAROL.address));
      refuses(() => book.check(nextChange(book, 'k', 'disable', {}, { admin: ALICE, signer: CAROL })), 'unauthorized');
      refuses(() => book.check(nextChange(book, 'k', 'disable', {}, { admin: ALICE, signer: BOB })), 'unauthorized');
      refuses(() => book.check(nextChange(book, 'k', 'disable', {}, { deployment: { committeeId: 'other' } })), 'unauthorized');
      take(book, nextChange(book, 'k', 'disable', {}, { admin: BOB }));
      assert.equal(book.get('k')!.state, 'Disabled');
      const c = nextChange(book, 'k', 'enable', {});
      assert.equal(keyChangeSigner(c, DEPLOYMENT), ALICE.address);
    });

    it('updateAdmins hands the key over: the new admins act, the old ones are refused', () => {
      const book = newBook();
      createKey(book, 'k');
      take(book, nextChange(book, 'k', 'updateAdmins', { admins: [DAVE.address, CAROL.address] }));
      assert.deepEqual(book.get('k')!.admins, [CAROL.address, DAVE.address].sort());
      refuses(() => book.check(nextChange(book, 'k', 'disable', {})), 'not_key_admin');
      take(book, nextChange(book, 'k', 'disable', {}, { admin: DAVE }));
      refuses(() => book.check(nextChange(book, 'k', 'updateAdmins', { admins: [] }, { admin: DAVE })), 'bad_request');
    });

    it('isApplied: the key\'s last change sent again is known; an older change, or another at an applied sequence, is a replay', () => {
      const book = newBook();
      createKey(book, 'k');
      const c2 = nextChange(book, 'k', 'disable', {});
      assert.equal(book.isApplied(c2), false);
      take(book, c2);
      assert.equal(book.isApplied(c2), true);
      assert.equal(book.isApplied({ ...c2 }), true);
      const other = nextChange(book, 'k', 'updateDescription', { description: 'x' }, { sequence: 2, previous: c2.previous });
      assert.equal(book.isApplied(other), false);
      refuses(() => book.check(other), 'key_change_conflict');
      take(book, nextChange(book, 'k', 'enable', {}));
      // Sent again after a later change (an admin's old "disable" replayed): refused, so it cannot
      // undo the later change, and does not look accepted either.
      assert.equal(book.isApplied(c2), false);
      refuses(() => book.check(c2), 'key_change_replayed');
      assert.equal(book.get('k')!.state, 'Enabled');
      // The same action and body re-signed at another time is another change.
      assert.equal(book.isApplied(nextChange(book, 'k', 'disable', {}, { sequence: 2, previous: c2.previous, issuedAt: T0 + 1 })), false);
      assert.equal(book.isApplied(nextChange(book, 'nope', 'disable', {})), false);
    });
  });

  describe('aliases and tags', () => {
    it('creates, renames and deletes aliases; the gateway refuses an alias another key holds until it is freed', () => {
      const book = newBook();
      createKey(book, 'a', { aliases: ['alias/x'] });
      createKey(book, 'b');
      refuses(() => book.requireAliasesFree(nextChange(book, 'b', 'createAlias', { alias: 'alias/x' })), 'alias_taken', /names key a/);
      refuses(() => book.requireAliasesFree(nextChange(book, 'c', 'create', { origin: { type: 'dkg' }, admins: [ALICE.address], aliases: ['alias/x'] })), 'alias_taken');
      book.requireAliasesFree(nextChange(book, 'a', 'createAlias', { alias: 'alias/x' }));
      refuses(() => book.check(nextChange(book, 'a', 'createAlias', { alias: 'alias/x' })), 'key_change_invalid', /already has alias/);
      take(book, nextChange(book, 'a', 'renameAlias', { from: 'alias/x', to: 'alias/y' }));
      assert.equal(book.resolve('alias/x'), undefined);
      assert.equal(book.resolve('alias/y')!.keyId, 'a');
      book.requireAliasesFree(nextChange(book, 'b', 'createAlias', { alias: 'alias/x' }));
      take(book, nextChange(book, 'b', 'createAlias', { alias: 'alias/x' }));
      assert.equal(book.resolve('alias/x')!.keyId, 'b');
      refuses(() => book.requireAliasesFree(nextChange(book, 'b', 'renameAlias', { from: 'alias/x', to: 'alias/y' })), 'alias_taken');
      refuses(() => book.check(nextChange(book, 'b', 'deleteAlias', { alias: 'alias/nope' })), 'key_change_invalid', /has no alias/);
      take(book, nextChange(book, 'b', 'deleteAlias', { alias: 'alias/x' }));
      assert.equal(book.resolve('alias/x'), undefined);
      assert.deepEqual(book.get('b')!.aliases, []);
    });

    it('two keys that claim one alias at once: every member applies both, in either order, and the alias names neither until one lets it go', () => {
      const claims = (first: 'a' | 'b') => {
        const book = newBook();
        createKey(book, 'a');
        createKey(book, 'b');
        const forA = nextChange(book, 'a', 'createAlias', { alias: 'alias/x' }, { issuedAt: T0 + 5 });
        const forB = nextChange(book, 'b', 'createAlias', { alias: 'alias/x' }, { issuedAt: T0 + 7 });
        for (const c of first === 'a' ? [forA, forB] : [forB, forA]) take(book, c);
        return book;
      };
      for (const book of [claims('a'), claims('b')]) {
        // A claim dated earlier wins nothing: the signer chose its date.
        assert.equal(book.resolve('alias/x'), undefined);
        assert.deepEqual(book.list({ alias: 'alias/x' }, T0 + 10).map((k) => k.keyId), []);
        assert.throws(() => book.requireAliasesFree(nextChange(book, 'c', 'create', { origin: { type: 'dkg' }, admins: [ALICE.address], aliases: ['alias/x'] })), { code: 'alias_taken' });
        // Both keys go on taking changes: a clash never blocks a key's later changes.
        take(book, nextChange(book, 'b', 'disable', {}, { issuedAt: T0 + 9 }));
        take(book, nextChange(book, 'a', 'deleteAlias', { alias: 'alias/x' }, { issuedAt: T0 + 9 }));
        assert.equal(book.resolve('alias/x')!.keyId, 'b');
      }
    });

    it('refuses reserved, malformed and too many aliases', () => {
      const book = newBook();
      createKey(book, 'k');
      refuses(() => book.check(nextChange(book, 'k', 'createAlias', { alias: 'alias/tkms/x' })), 'bad_request', /reserved/);
      refuses(() => book.check(nextChange(book, 'k', 'createAlias', { alias: 'alias/TKMS/x' })), 'bad_request', /reserved/);
      refuses(() => book.check(nextChange(book, 'k', 'createAlias', { alias: `alias/${'a'.repeat(251)}` })), 'bad_request');
      refuses(() => book.check(nextChange(book, 'k', 'createAlias', { alias: 'x' })), 'bad_request');
      take(book, nextChange(book, 'k', 'createAlias', { alias: `alias/${'a'.repeat(250)}` }));
      for (let i = 1; i < KEY_LIMITS.aliasesPerKey; i++) take(book, nextChange(book, 'k', 'createAlias', { alias: `alias/n${i}` }));
      assert.equal(book.get('k')!.aliases.length, KEY_LIMITS.aliasesPerKey);
      refuses(() => book.check(nextChange(book, 'k', 'createAlias', { alias: 'alias/one-more' })), 'key_limit_exceeded');
      const many = Array.from({ length: KEY_LIMITS.aliasesPerKey + 1 }, (_, i) => `alias/m${i}`);
      refuses(() => book.check(nextChange(book, 'j', 'create', { origin: { type: 'dkg' }, admins: [ALICE.address], aliases: many })), 'bad_request');
    });

    it('tags merge and untag; AWS limits and the reserved prefix are refused', () => {
      const book = newBook();
      createKey(book, 'k', { tags: { b: '1' } });
      take(book, nextChange(book, 'k', 'tag', { tags: { a: '', b: '2' } }));
      assert.deepEqual(book.get('k')!.tags, { a: '', b: '2' });
      assert.deepEqual(Object.keys(book.get('k')!.tags), ['a', 'b']);
      take(book, nextChange(book, 'k', 'untag', { keys: ['b', 'absent'] }));
      assert.deepEqual(book.get('k')!.tags, { a: '' });
      refuses(() => book.check(nextChange(book, 'k', 'tag', { tags: { ['k'.repeat(129)]: 'v' } })), 'bad_request', /tag key/);
      refuses(() => book.check(nextChange(book, 'k', 'tag', { tags: { k: 'v'.repeat(257) } })), 'bad_request', /value/);
      refuses(() => book.check(nextChange(book, 'k', 'tag', { tags: { 'tkms:owner': 'x' } })), 'bad_request', /reserved/);
      refuses(() => book.check(nextChange(book, 'k', 'tag', { tags: { 'TKMS:owner': 'x' } })), 'bad_request', /reserved/);
      refuses(() => book.check(nextChange(book, 'k', 'tag', { tags: { 'a\nb': 'x' } })), 'bad_request');
      refuses(() => book.check(nextChange(book, 'k', 'tag', { tags: { k: 1 } })), 'bad_request');
      refuses(() => book.check(nextChange(book, 'k', 'untag', { keys: [] })), 'bad_request');
      take(book, nextChange(book, 'k', 'tag', { tags: { ['k'.repeat(128)]: 'v'.repeat(256) } }));
      const fill = Object.fromEntries(Array.from({ length: KEY_LIMITS.tagsPerKey - 2 }, (_, i) => [`t${i}`, 'v']));
      take(book, nextChange(book, 'k', 'tag', { tags: fill }));
      assert.equal(Object.keys(book.get('k')!.tags).length, KEY_LIMITS.tagsPerKey);
      // Overwriting an existing tag stays within the limit; a new one does not.
      take(book, nextChange(book, 'k', 'tag', { tags: { a: 'again' } }));
      refuses(() => book.check(nextChange(book, 'k', 'tag', { tags: { new: 'v' } })), 'key_limit_exceeded');
      const tooMany = Object.fromEntries(Array.from({ length: KEY_LIMITS.tagsPerKey + 1 }, (_, i) => [`t${i}`, 'v']));
      refuses(() => book.check(nextChange(book, 'j', 'create', { origin: { type: 'dkg' }, admins: [ALICE.address], tags: tooMany })), 'key_limit_exceeded');
    });

    it('updateDescription and putPolicy replace what they name; a description over its limit is refused', () => {
      const book = newBook();
      createKey(book, 'k');
      take(book, nextChange(book, 'k', 'updateDescription', { description: 'd'.repeat(KEY_LIMITS.descriptionLength) }));
      assert.equal(book.get('k')!.description.length, KEY_LIMITS.descriptionLength);
      refuses(() => book.check(nextChange(book, 'k', 'updateDescription', { description: 'd'.repeat(KEY_LIMITS.descriptionLength + 1) })), 'bad_request');
      take(book, nextChange(book, 'k', 'putPolicy', { policy: { operations: ['decrypt'] } }));
      assert.deepEqual(book.get('k')!.policy, { operations: ['decrypt'] });
      refuses(() => book.check(nextChange(book, 'k', 'putPolicy', { policy: [] })), 'bad_request');
    });

    it('putPolicy goes through the context\'s policy parser, whose refusal refuses the change', () => {
      const book = newBook({
        parsePolicy: (p) => {
          if ('bad' in p) throw new TkmsError('bad_request', 'policy: bad rule');
          return { ...p, parsed: true };
        },
      });
      createKey(book, 'k');
      assert.deepEqual(book.get('k')!.policy, { parsed: true });
      take(book, nextChange(book, 'k', 'putPolicy', { policy: { a: 1 } }));
      assert.deepEqual(book.get('k')!.policy, { a: 1, parsed: true });
      refuses(() => book.check(nextChange(book, 'k', 'putPolicy', { policy: { bad: 1 } })), 'bad_request', /bad rule/);
      refuses(() => book.check(nextChange(book, 'j', 'create', { origin: { type: 'dkg' }, admins: [ALICE.address], policy: { bad: 1 } })), 'bad_request', /bad rule/);
    });
  });

  describe('states and deletion', () => {
    it('disable and enable; enable or disable a PendingDeletion key is refused', () => {
      const book = newBook();
      createKey(book, 'k');
      take(book, nextChange(book, 'k', 'disable', {}));
      assert.equal(book.get('k')!.state, 'Disabled');
      take(book, nextChange(book, 'k', 'enable', {}));
      assert.equal(book.get('k')!.state, 'Enabled');
      take(book, nextChange(book, 'k', 'scheduleDeletion', {}));
      refuses(() => book.check(nextChange(book, 'k', 'enable', {})), 'key_change_invalid', /PendingDeletion/);
      refuses(() => book.check(nextChange(book, 'k', 'disable', {})), 'key_change_invalid', /PendingDeletion/);
      refuses(() => book.check(nextChange(book, 'k', 'scheduleDeletion', {})), 'key_change_invalid', /already scheduled/);
      refuses(() => book.check(nextChange(book, 'k', 'rotate', {})), 'key_change_invalid');
    });

    it('the deletion window: 30 days by default, 7-30 days, shorter only where allowed', () => {
      const strict = newBook();
      createKey(strict, 'k');
      refuses(() => strict.check(nextChange(strict, 'k', 'scheduleDeletion', { pendingWindowDays: 6 })), 'key_change_invalid', /7-30 days/);
      refuses(() => strict.check(nextChange(strict, 'k', 'scheduleDeletion', { pendingWindowDays: 31 })), 'bad_request');
      refuses(() => strict.check(nextChange(strict, 'k', 'scheduleDeletion', { pendingWindowSeconds: 60 })), 'key_change_invalid', /test committees/);
      assert.equal(strict.check(nextChange(strict, 'k', 'scheduleDeletion', { pendingWindowDays: 7 }, { issuedAt: T0 + 5 })).key.deletionDate, T0 + 5 + 7 * DAY);
      take(strict, nextChange(strict, 'k', 'scheduleDeletion', {}, { issuedAt: T0 + 5 }));
      assert.equal(strict.get('k')!.deletionDate, T0 + 5 + 30 * DAY);
      assert.equal(strict.get('k')!.state, 'PendingDeletion');

      const test = newBook({ allowShortDeletionWindow: true });
      createKey(test, 'k');
      assert.equal(test.check(nextChange(test, 'k', 'scheduleDeletion', { pendingWindowDays: 1 })).key.deletionDate, T0 + DAY);
      refuses(() => test.check(nextChange(test, 'k', 'scheduleDeletion', { pendingWindowDays: 1, pendingWindowSeconds: 5 })), 'bad_request', /not both/);
      take(test, nextChange(test, 'k', 'scheduleDeletion', { pendingWindowSeconds: 60 }));
      assert.equal(test.get('k')!.deletionDate, T0 + 60);
    });

    it('cancelling a deletion restores Disabled; cancelling nothing is refused', () => {
      const book = newBook();
      createKey(book, 'k');
      refuses(() => book.check(nextChange(book, 'k', 'cancelDeletion', {})), 'key_change_invalid', /not scheduled/);
      take(book, nextChange(book, 'k', 'scheduleDeletion', { pendingWindowDays: 7 }));
      take(book, nextChange(book, 'k', 'cancelDeletion', {}, { issuedAt: T0 + 7 * DAY - 1 }));
      assert.equal(book.get('k')!.state, 'Disabled');
      assert.equal(book.get('k')!.deletionDate, null);
      assert.equal(keyStateAt(book.get('k')!, T0 + 365 * DAY), 'Disabled');
    });

    it('PendingDeletion turns Destroyed exactly at the deletion date; a change signed from then on is refused with key_destroyed', () => {
      const book = newBook();
      createKey(book, 'k');
      take(book, nextChange(book, 'k', 'scheduleDeletion', { pendingWindowDays: 7 }));
      const key = book.get('k')!;
      const date = T0 + 7 * DAY;
      assert.equal(keyStateAt(key, date - 1), 'PendingDeletion');
      assert.equal(keyStateAt(key, date), 'Destroyed');
      refuses(() => book.check(nextChange(book, 'k', 'cancelDeletion', {}, { issuedAt: date })), 'key_destroyed', /destroyed at 2026-01-08T00:00:00Z/);
      refuses(() => book.check(nextChange(book, 'k', 'updateDescription', { description: 'x' }, { issuedAt: date + 1 })), 'key_destroyed');
      assert.equal(book.list({ state: 'Destroyed' }, date).length, 1);
      assert.equal(book.list({ state: 'PendingDeletion' }, date - 1).length, 1);
    });

    it('requireUsable answers each state with its own code, naming the key', () => {
      const book = newBook({ allowShortDeletionWindow: true });
      createKey(book, 'k');
      assert.doesNotThrow(() => requireUsable(book.get('k')!, 1, T0));
      refuses(() => requireUsable(book.get('k')!, 2, T0), 'unknown_key', /key k has no version 2/);
      take(book, nextChange(book, 'k', 'disable', {}));
      refuses(() => requireUsable(book.get('k')!, 1, T0), 'key_disabled', /key k is Disabled/);
      take(book, nextChange(book, 'k', 'scheduleDeletion', { pendingWindowSeconds: 100 }));
      refuses(() => requireUsable(book.get('k')!, 1, T0 + 99), 'key_pending_deletion', /key k is PendingDeletion/);
      refuses(() => requireUsable(book.get('k')!, 1, T0 + 100), 'key_destroyed', /key k was destroyed/);
    });
  });

  describe('versions and rotation', () => {
    it('material key ids: the key id for version 1, <keyId>.v<n> after; parsing inverts it and nothing else', () => {
      assert.equal(materialKeyId('k', 1), 'k');
      assert.equal(materialKeyId('k', 2), 'k.v2');
      assert.deepEqual(parseMaterialKeyId('k.v2'), { keyId: 'k', version: 2 });
      assert.deepEqual(parseMaterialKeyId('k'), { keyId: 'k', version: 1 });
      assert.deepEqual(parseMaterialKeyId('k.v1'), { keyId: 'k.v1', version: 1 });
      assert.deepEqual(parseMaterialKeyId('k.v01'), { keyId: 'k.v01', version: 1 });
      assert.deepEqual(parseMaterialKeyId('k.v0'), { keyId: 'k.v0', version: 1 });
      assert.deepEqual(parseMaterialKeyId('a.v2.v3'), { keyId: 'a.v2', version: 3 });
      assert.deepEqual(parseMaterialKeyId('k.v1000'), { keyId: 'k', version: 1000 });
      assert.deepEqual(parseMaterialKeyId('k.v99999999999999999999'), { keyId: 'k.v99999999999999999999', version: 1 });
      for (let v = 1; v <= 20; v++) assert.deepEqual(parseMaterialKeyId(materialKeyId('key-1', v)), { keyId: 'key-1', version: v });
    });

    it('rotate adds version 2 (material k.v2), which new encryptions use; version 1 stays usable', () => {
      const book = newBook();
      createKey(book, 'k');
      take(book, nextChange(book, 'k', 'rotate', {}, { issuedAt: T0 + 10 }));
      const key = book.get('k')!;
      assert.deepEqual(key.versions, [
        { version: 1, createdAt: T0, deletionDate: null },
        { version: 2, createdAt: T0 + 10, deletionDate: null },
      ]);
      assert.equal(currentVersionAt(key, T0 + 10)!.version, 2);
      assert.equal(book.byMaterial('k.v2')!.version, 2);
      assert.equal(book.byMaterial('k')!.version, 1);
      assert.equal(book.byMaterial('k.v2')!.key, key);
      assert.equal(book.byMaterial('j.v2'), undefined);
      requireUsable(key, 1, T0 + 10);
      requireUsable(key, 2, T0 + 10);
      take(book, nextChange(book, 'k', 'disable', {}));
      refuses(() => book.check(nextChange(book, 'k', 'rotate', {})), 'key_change_invalid', /only an Enabled key rotates/);
    });

    it('deleting a version: never the newest; the old one turns Destroyed at its date; cancel before, not after', () => {
      const book = newBook();
      createKey(book, 'k');
      refuses(() => book.check(nextChange(book, 'k', 'scheduleDeletion', { version: 1 })), 'key_change_invalid', /rotate first/);
      take(book, nextChange(book, 'k', 'rotate', {}));
      refuses(() => book.check(nextChange(book, 'k', 'scheduleDeletion', { version: 2 })), 'key_change_invalid', /rotate first/);
      refuses(() => book.check(nextChange(book, 'k', 'scheduleDeletion', { version: 3 })), 'key_change_invalid', /no version 3/);
      refuses(() => book.check(nextChange(book, 'k', 'cancelDeletion', { version: 1 })), 'key_change_invalid', /not scheduled/);
      take(book, nextChange(book, 'k', 'scheduleDeletion', { version: 1, pendingWindowDays: 7 }));
      const date = T0 + 7 * DAY;
      const key = book.get('k')!;
      assert.equal(key.state, 'Enabled');
      assert.equal(versionStateAt(key.versions[0]!, date - 1), 'PendingDeletion');
      assert.equal(versionStateAt(key.versions[0]!, date), 'Destroyed');
      refuses(() => requireUsable(key, 1, date - 1), 'key_pending_deletion', /version 1 of key k/);
      refuses(() => requireUsable(key, 1, date), 'key_destroyed', /version 1 of key k/);
      requireUsable(key, 2, date);
      refuses(() => book.check(nextChange(book, 'k', 'scheduleDeletion', { version: 1 })), 'key_change_invalid', /already scheduled/);
      refuses(() => book.check(nextChange(book, 'k', 'cancelDeletion', { version: 1 }, { issuedAt: date })), 'key_destroyed');
      take(book, nextChange(book, 'k', 'cancelDeletion', { version: 1 }, { issuedAt: date - 1 }));
      assert.equal(book.get('k')!.versions[0]!.deletionDate, null);
    });

    it('automatic rotation of a derived key: a version every period after the newest, up to the version limit', () => {
      const book = newBook();
      createKey(book, 'd', { origin: derived(), rotationPeriodDays: 90 });
      const key = book.get('d')!;
      const period = 90 * DAY;
      assert.equal(keyVersionsAt(key, T0 + period - 1).length, 1);
      assert.deepEqual(keyVersionsAt(key, T0 + period), [
        { version: 1, createdAt: T0, deletionDate: null },
        { version: 2, createdAt: T0 + period, deletionDate: null },
      ]);
      assert.deepEqual(
        keyVersionsAt(key, T0 + 3 * period + 5).map((v) => [v.version, v.createdAt]),
        [0, 1, 2, 3].map((i) => [i + 1, T0 + i * period]),
      );
      assert.equal(currentVersionAt(key, T0 + 3 * period)!.version, 4);
      // An automatic version is usable from its own time, not a second before.
      refuses(() => requireUsable(key, 2, T0 + period - 1), 'unknown_key');
      requireUsable(key, 2, T0 + period);
      const far = keyVersionsAt(key, T0 + 2000 * period);
      assert.equal(far.length, KEY_LIMITS.maxVersions);
      assert.equal(far[far.length - 1]!.version, KEY_LIMITS.maxVersions);
      // The stored key is not changed by reading it.
      assert.equal(key.versions.length, 1);
      // A change signed after two periods sees the automatic versions, and rotating on demand comes after them.
      take(book, nextChange(book, 'd', 'rotate', {}, { issuedAt: T0 + 2 * period + 7 }));
      assert.deepEqual(
        book.get('d')!.versions.map((v) => [v.version, v.createdAt]),
        [[1, T0], [2, T0 + period], [3, T0 + 2 * period], [4, T0 + 2 * period + 7]],
      );
      assert.equal(keyVersionsAt(book.get('d')!, T0 + 3 * period + 6).length, 4);
      assert.equal(keyVersionsAt(book.get('d')!, T0 + 3 * period + 7).length, 5);
      // Dated before the rotate (beyond the admins' clock skew): refused, it would act in the past.
      refuses(() => book.check(nextChange(book, 'd', 'setRotation', { rotationPeriodDays: null })), 'key_change_invalid', /before its last change/);
      take(book, nextChange(book, 'd', 'setRotation', { rotationPeriodDays: null }, { issuedAt: T0 + 2 * period + 7 - KEY_LIMITS.changeClockSkewSeconds }));
      assert.equal(keyVersionsAt(book.get('d')!, T0 + 100 * period).length, 4);
    });

    it('setRotation: DKG and derived keys alike; the period counts from when it was set, never from before', () => {
      const book = newBook();
      createKey(book, 'k');
      // Set 200 days after the key's only version: the first automatic version is due 90 days after that, not at once.
      take(book, nextChange(book, 'k', 'setRotation', { rotationPeriodDays: 90 }, { issuedAt: T0 + 200 * DAY }));
      assert.equal(keyVersionsAt(book.get('k')!, T0 + 289 * DAY).length, 1);
      assert.deepEqual(keyVersionsAt(book.get('k')!, T0 + 290 * DAY).map((v) => [v.version, v.createdAt]), [[1, T0], [2, T0 + 290 * DAY]]);
      take(book, nextChange(book, 'k', 'setRotation', { rotationPeriodDays: null }, { issuedAt: T0 + 200 * DAY }));
      createKey(book, 'd', { origin: derived() });
      refuses(() => book.check(nextChange(book, 'd', 'setRotation', { rotationPeriodDays: KEY_LIMITS.maxRotationPeriodDays + 1 })), 'bad_request');
      refuses(() => book.check(nextChange(book, 'd', 'setRotation', {})), 'bad_request');
      take(book, nextChange(book, 'd', 'setRotation', { rotationPeriodDays: 365 }));
      assert.equal(book.get('d')!.rotationPeriodDays, 365);
      assert.deepEqual(book.get('d')!.origin, { type: 'derived', root: 'root', path: 'user/1' });
    });

    it('a destroyed key counts no automatic versions', () => {
      const book = newBook({ allowShortDeletionWindow: true });
      createKey(book, 'd', { origin: derived(), rotationPeriodDays: 90 });
      take(book, nextChange(book, 'd', 'scheduleDeletion', { pendingWindowSeconds: 10 }));
      assert.equal(keyVersionsAt(book.get('d')!, T0 + 10 + 200 * DAY).length, 1);
    });
  });

  describe('KeyBook', () => {
    function filled() {
      const book = newBook();
      createKey(book, 'c', { tags: { team: 'a' }, aliases: ['alias/c'] });
      createKey(book, 'a', { tags: { team: 'b', env: 'prod' } });
      createKey(book, 'b', { tags: { env: 'dev' }, aliases: ['alias/b', 'alias/b2'] });
      take(book, nextChange(book, 'b', 'disable', {}));
      return book;
    }
    const ids = (keys: { keyId: string }[]) => keys.map((k) => k.keyId);

    it('resolves ids and aliases; lists by tag key, tag key=value, alias and state, sorted by id', () => {
      const book = filled();
      assert.equal(book.resolve('a')!.keyId, 'a');
      assert.equal(book.resolve('alias/b2')!.keyId, 'b');
      assert.equal(book.resolve('alias/none'), undefined);
      assert.equal(book.resolve('zzz'), undefined);
      assert.deepEqual(ids(book.list({}, T0)), ['a', 'b', 'c']);
      assert.deepEqual(ids(book.list({ tag: { key: 'team' } }, T0)), ['a', 'c']);
      assert.deepEqual(ids(book.list({ tag: { key: 'team', value: 'b' } }, T0)), ['a']);
      assert.deepEqual(ids(book.list({ tag: { key: 'env', value: 'nope' } }, T0)), []);
      assert.deepEqual(ids(book.list({ alias: 'alias/b' }, T0)), ['b']);
      assert.deepEqual(ids(book.list({ state: 'Disabled' }, T0)), ['b']);
      assert.deepEqual(ids(book.list({ state: 'Enabled', tag: { key: 'env' } }, T0)), ['a']);
    });

    it('a tag filter matches only the keys\' own tags, not what every object inherits', () => {
      const book = filled();
      for (const name of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) assert.deepEqual(ids(book.list({ tag: { key: name } }, T0)), [], name);
      take(book, nextChange(book, 'a', 'tag', { tags: { constructor: 'x' } }));
      assert.deepEqual(ids(book.list({ tag: { key: 'constructor' } }, T0)), ['a']);
      assert.deepEqual(ids(book.list({ tag: { key: 'constructor', value: 'x' } }, T0)), ['a']);
      // "__proto__" from JSON is an own tag like any other: it is kept, listed and removed.
      take(book, nextChange(book, 'c', 'tag', { tags: JSON.parse('{"__proto__":"p"}') as Record<string, string> }));
      assert.equal(Object.getPrototypeOf(book.get('c')!.tags), Object.prototype);
      assert.deepEqual(Object.entries(book.get('c')!.tags), [['__proto__', 'p'], ['team', 'a']]);
      assert.deepEqual(ids(book.list({ tag: { key: '__proto__', value: 'p' } }, T0)), ['c']);
      take(book, nextChange(book, 'c', 'untag', { keys: ['__proto__'] }));
      assert.deepEqual(book.get('c')!.tags, { team: 'a' });
    });

    it('pages a key\'s history by sequence and every change by cursor', () => {
      const book = filled();
      assert.equal(book.changeCount, 4);
      for (let i = 0; i < 5; i++) take(book, nextChange(book, 'a', 'updateDescription', { description: `d${i}` }));
      const all = book.history('a', 0, 100);
      assert.deepEqual(all.map((c) => c.sequence), [1, 2, 3, 4, 5, 6]);
      assert.deepEqual(book.history('a', 2, 3).map((c) => c.sequence), [3, 4, 5]);
      assert.deepEqual(book.history('a', 6, 3), []);
      assert.deepEqual(book.history('none', 0, 3), []);
      const seen: string[] = [];
      let after: number | null = 0;
      let pages = 0;
      while (after !== null) {
        const page = book.page(after, 4);
        seen.push(...page.changes.map((c) => `${c.keyId}#${c.sequence}`));
        after = page.next;
        pages++;
      }
      assert.equal(pages, 3);
      assert.deepEqual(seen, ['c#1', 'a#1', 'b#1', 'b#2', 'a#2', 'a#3', 'a#4', 'a#5', 'a#6']);
      assert.deepEqual(book.page(8, 4), { changes: [book.history('a', 5, 1)[0]!], next: null });
      assert.deepEqual(book.page(9, 4), { changes: [], next: null });
    });

    it('refuses to commit a change out of order, and a refused check leaves the book as it was', () => {
      const book = filled();
      const c2 = nextChange(book, 'a', 'disable', {});
      const applied2 = book.check(c2);
      const c3 = nextChange(book, 'a', 'enable', {}, { sequence: 3, previous: decodeHex(applied2.digest) });
      refuses(() => book.commit(c3, { ...applied2, key: { ...applied2.key, sequence: 3 } }), 'internal', /out of order/);
      book.commit(c2, applied2);
      refuses(() => book.commit(c2, applied2), 'internal');
      const before = structuredClone(book.list({}, T0));
      refuses(() => book.check(nextChange(book, 'b', 'createAlias', { alias: 'alias/b' })), 'key_change_invalid');
      refuses(() => book.check(nextChange(book, 'b', 'renameAlias', { from: 'alias/none', to: 'alias/c' })), 'key_change_invalid');
      assert.deepEqual(book.list({}, T0), before);
      assert.equal(book.resolve('alias/b')!.keyId, 'b');
    });
  });

  describe('parseKeyChangeBody', () => {
    it('refuses a body over the byte limit before parsing it', () => {
      refuses(() => parseKeyChangeBody('updateDescription', JSON.stringify({ description: 'é'.repeat(KEY_LIMITS.changeBodyBytes / 2) })), 'bad_request', /at most/);
      assert.equal(parseKeyChangeBody('updateDescription', '{"description":"x"}').description, 'x');
    });
  });

  it('cost: applyKeyChange for a typical change and requireUsable per partial (printed, not asserted)', () => {
    const book = newBook();
    createKey(book, 'k', { tags: { team: 'a' }, aliases: ['alias/k'] });
    const ctx: KeyApplyContext = { deployment: DEPLOYMENT, mayCreate: () => undefined, aliasHolder: () => undefined, allowShortDeletionWindow: false, parsePolicy: (p) => p };
    const key = book.get('k')!;
    const change = nextChange(book, 'k', 'tag', { tags: { env: 'prod' } });
    const applyRuns = 200;
    for (let i = 0; i < 20; i++) applyKeyChange(key, change, ctx);
    let start = performance.now();
    for (let i = 0; i < applyRuns; i++) applyKeyChange(key, change, ctx);
    const applyMs = (performance.now() - start) / applyRuns;

    createKey(book, 'd', { origin: derived(), rotationPeriodDays: 90 });
    const usableRuns = 100_000;
    const now = T0 + 3 * 90 * DAY + 1;
    for (let i = 0; i < 1000; i++) requireUsable(key, 1, now);
    start = performance.now();
    for (let i = 0; i < usableRuns; i++) requireUsable(key, 1, now);
    const usableMs = (performance.now() - start) / usableRuns;
    const rotating = book.get('d')!;
    start = performance.now();
    for (let i = 0; i < usableRuns; i++) requireUsable(rotating, 4, now);
    const rotatingMs = (performance.now() - start) / usableRuns;
    console.log(`      applyKeyChange (tag, signature recovery included): ${applyMs.toFixed(3)} ms per change`);
    console.log(`      requireUsable (DKG key): ${(usableMs * 1000).toFixed(2)} µs; (derived key, 4 automatic versions): ${(rotatingMs * 1000).toFixed(2)} µs per partial (target ≤ 50 µs)`);
  });
});
