import assert from 'node:assert/strict';
import { KeyMaterialScheduler, proposerRank } from '../../node/key-material.ts';
import { createLogger } from '../../runtime/logger.ts';
import { createKey, DAY, newBook, nextChange, T0, take } from '../support/key-change-fixtures.ts';

/**
 * node/key-material.ts: which DKGs the managed keys call for, who proposes them, and the DKG gate.
 * The book and the clock are real; the DKG runner is a record of what was proposed.
 */
describe('key material: the DKGs managed keys call for', () => {
  const settle = () => new Promise((r) => setTimeout(r, 20));

  function scheduler(book: ReturnType<typeof newBook>, at: { now: number }, held: Set<string>, self = 1, members = [1]) {
    const proposed: string[] = [];
    const s = new KeyMaterialScheduler({
      book,
      selfId: () => self,
      members: () => members,
      hasMaterial: (id) => held.has(id),
      propose: (id) => void proposed.push(id),
      log: createLogger('silent'),
      nowSeconds: () => at.now,
      baseDelayMs: 0,
      rankDelayMs: 0,
    });
    return { s, proposed };
  }

  it('a create and a rotate of a DKG key each call for their version\'s DKG; a derived key calls for none', async () => {
    const book = newBook();
    const at = { now: T0 };
    const { s, proposed } = scheduler(book, at, new Set());
    const created = createKey(book, 'k');
    s.onApplied(created.key, book.history('k', 0, 1)[0]!);
    const rotate = nextChange(book, 'k', 'rotate', {}, { issuedAt: T0 + 1 });
    s.onApplied(take(book, rotate).key, rotate);
    const derived = createKey(book, 'd', { origin: { type: 'derived', root: 'root', path: 'p' } });
    s.onApplied(derived.key, book.history('d', 0, 1)[0]!);
    await settle();
    assert.deepEqual(proposed, ['k', 'k.v2']);
    s.stop();
  });

  it('an automatic rotation of a DKG key that came due is proposed by the periodic check, once', async () => {
    const book = newBook();
    const at = { now: T0 };
    const held = new Set(['k']);
    const { s, proposed } = scheduler(book, at, held);
    createKey(book, 'k', { rotationPeriodDays: 90 });
    s.resume();
    await settle();
    assert.deepEqual(proposed, []);
    at.now = T0 + 90 * DAY;
    s.resume();
    s.resume();
    await settle();
    assert.deepEqual(proposed, ['k.v2']);
    held.add('k.v2');
    s.resume();
    await settle();
    assert.deepEqual(proposed, ['k.v2']);
    s.stop();
  });

  it('the DKG gate: a managed id runs only for a version the admins made (or that came due), of a DKG key, not destroyed', () => {
    const book = newBook({ allowShortDeletionWindow: true });
    const at = { now: T0 };
    const { s } = scheduler(book, at, new Set());
    createKey(book, 'k', { rotationPeriodDays: 90 });
    createKey(book, 'd', { origin: { type: 'derived', root: 'root', path: 'p' } });
    s.admit('k');
    s.admit('operator-key');
    assert.throws(() => s.admit('k.v2'), { code: 'unavailable' });
    assert.throws(() => s.admit('d'), { code: 'key_usage_mismatch' });
    // Due within the minute on the proposer's clock: admitted.
    at.now = T0 + 90 * DAY - 30;
    s.admit('k.v2');
    take(book, nextChange(book, 'k', 'scheduleDeletion', { pendingWindowSeconds: 10 }, { issuedAt: at.now }));
    at.now += 11;
    assert.throws(() => s.admit('k.v2'), { code: 'key_destroyed' });
  });

  it('proposers are ranked by material id: every member computes the same order, each a different place', () => {
    const members = [1, 2, 3, 4, 5];
    const ranks = members.map((m) => proposerRank('k.v7', members, m));
    assert.deepEqual([...ranks].sort(), [0, 1, 2, 3, 4]);
    assert.notDeepEqual(members.map((m) => proposerRank('other', members, m)), ranks);
  });
});
