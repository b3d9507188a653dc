import assert from 'node:assert/strict';
import { appendFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isTkmsError } from '../../core/errors.ts';
import type { KeyBook } from '../../core/keys/key-book.ts';
import { KeyChangeMessage, type KeyChange } from '../../core/keys/key-change.ts';
import { KeyChangeLog } from '../../storage/key-change-log.ts';
import { expectRefusal } from '../support/refusal.ts';
import { ALICE, BOB, DAY, newBook, nextChange, T0 } from '../support/key-change-fixtures.ts';

/** Everything a book shows: each key and the pages of changes, in order. */
function contents(book: KeyBook) {
  const keys = book.list({}, T0);
  return { keys, histories: keys.map((k) => book.history(k.keyId, 0, 1000)), page: book.page(0, 1000) };
}

describe('KeyChangeLog (storage/key-change-log.ts)', () => {
  let dir: string;
  let path: string;
  const open: KeyChangeLog[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tkms-key-changes-'));
    path = join(dir, 'state', 'key-changes.jsonl');
  });
  afterEach(async () => {
    for (const log of open.splice(0)) await log.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function openLog(book = newBook({ allowShortDeletionWindow: true })) {
    const opened = await KeyChangeLog.open(path, book);
    open.push(opened.registry);
    return opened;
  }

  /** Submits a few changes over two keys; returns them in the order taken. */
  async function fill(log: KeyChangeLog): Promise<KeyChange[]> {
    const taken: KeyChange[] = [];
    const submit = async (c: KeyChange) => {
      const r = await log.submit(c);
      assert.equal(r.known, false);
      assert.equal(r.applied!.key.sequence, c.sequence);
      taken.push(c);
    };
    const book = log.book;
    await submit(nextChange(book, 'a', 'create', { origin: { type: 'dkg' }, admins: [ALICE.address, BOB.address], aliases: ['alias/a'], tags: { team: 'x' } }));
    await submit(nextChange(book, 'b', 'create', { origin: { type: 'derived', root: 'a', path: 'u/1' }, admins: [BOB.address], rotationPeriodDays: 90 }, { admin: BOB }));
    await submit(nextChange(book, 'a', 'rotate', {}, { issuedAt: T0 + 10 }));
    await submit(nextChange(book, 'a', 'renameAlias', { from: 'alias/a', to: 'alias/a2' }, { admin: BOB, issuedAt: T0 + 20 }));
    await submit(nextChange(book, 'b', 'scheduleDeletion', { pendingWindowSeconds: 3600 }, { admin: BOB, issuedAt: T0 + 30 }));
    await submit(nextChange(book, 'a', 'scheduleDeletion', { version: 1, pendingWindowDays: 7 }, { issuedAt: T0 + 40 }));
    return taken;
  }

  it('takes changes durably: closed and reopened, the book is rebuilt identically', async () => {
    const { registry, tornBytes } = await openLog();
    assert.equal(tornBytes, 0);
    const taken = await fill(registry);
    assert.equal(registry.book.changeCount, taken.length);
    const before = contents(registry.book);
    await registry.close();
    open.splice(0);

    const { registry: reopened, tornBytes: torn } = await openLog();
    assert.equal(torn, 0);
    assert.deepEqual(contents(reopened.book), before);
    assert.equal(reopened.book.resolve('alias/a2')!.keyId, 'a');
    assert.equal(reopened.book.get('a')!.versions[0]!.deletionDate, T0 + 40 + 7 * DAY);
    // And it goes on from where it was.
    const r = await reopened.submit(nextChange(reopened.book, 'a', 'disable', {}));
    assert.equal(r.applied!.key.state, 'Disabled');
  });

  it('reopens under narrower settings: history taken under the old ones (creators, quotas, short windows) is taken again', async () => {
    const { registry } = await openLog();
    await fill(registry);
    const before = contents(registry.book);
    await registry.close();
    open.splice(0);
    // Nobody may create now, one key per creator, no short deletion windows, two keys at most.
    const { registry: reopened } = await openLog(newBook({ creation: { creators: [], perCreatorQuota: 1 }, allowShortDeletionWindow: false, maxKeys: 2, maxChangesPerKey: 2 }));
    assert.deepEqual(contents(reopened.book), before);
    // The new settings apply to what comes next.
    await expectRefusal(reopened.submit(nextChange(reopened.book, 'c', 'create', { origin: { type: 'dkg' }, admins: [ALICE.address] })), 'key_limit_exceeded');
  });

  it('answers known for a change it holds, and refuses a replay, without writing anything', async () => {
    const { registry } = await openLog();
    const taken = await fill(registry);
    const bytes = (await readFile(path)).length;
    const last = taken[taken.length - 1]!;
    assert.deepEqual(await registry.submit(last), { known: true, applied: undefined });
    await expectRefusal(registry.submit(nextChange(registry.book, 'a', 'enable', {}, { sequence: last.sequence, previous: last.previous })), 'key_change_conflict');
    await expectRefusal(registry.submit(nextChange(registry.book, 'a', 'enable', {}, { sequence: last.sequence + 2 })), 'key_change_out_of_order');
    await expectRefusal(registry.submit(nextChange(registry.book, 'a', 'enable', {}, { admin: BOB, signer: ALICE })), 'unauthorized');
    assert.equal((await readFile(path)).length, bytes);
    assert.equal(registry.book.changeCount, taken.length);
  });

  it('drops a torn last line and opens with the changes before it', async () => {
    const { registry } = await openLog();
    await fill(registry);
    const before = contents(registry.book);
    const extra = nextChange(registry.book, 'a', 'disable', {});
    await registry.close();
    open.splice(0);
    const line = `${JSON.stringify(KeyChangeMessage.encode(extra))}\n`;
    await appendFile(path, line.slice(0, line.length - 10));
    const { registry: reopened, tornBytes } = await openLog();
    assert.equal(tornBytes, line.length - 10);
    assert.deepEqual(contents(reopened.book), before);
    // The cut-off change can be submitted again and lands on a clean line.
    await reopened.submit(extra);
    await reopened.close();
    open.splice(0);
    const { registry: again } = await openLog();
    assert.equal(again.book.get('a')!.state, 'Disabled');
  });

  it('refuses to open with keystore_corrupt when a line before the last is damaged or no longer applies', async () => {
    const { registry } = await openLog();
    await fill(registry);
    await registry.close();
    open.splice(0);
    const lines = (await readFile(path, 'utf8')).split('\n');

    const garbled = lines.slice();
    garbled[2] = garbled[2]!.slice(0, 30);
    await writeFile(path, garbled.join('\n'));
    await expectRefusal(KeyChangeLog.open(path, newBook({ allowShortDeletionWindow: true })), 'keystore_corrupt');

    // Valid JSON whose signature no longer matches its text.
    const altered = lines.slice();
    altered[2] = altered[2]!.replace('"rotate"', '"disable"');
    assert.notEqual(altered[2], lines[2]);
    await writeFile(path, altered.join('\n'));
    const e = await expectRefusal(KeyChangeLog.open(path, newBook({ allowShortDeletionWindow: true })), 'keystore_corrupt');
    assert.match(e.message, /line 3 does not apply \(unauthorized/);

    // A missing middle line leaves a gap in a key's history.
    const gap = lines.slice();
    gap.splice(2, 1);
    await writeFile(path, gap.join('\n'));
    await expectRefusal(KeyChangeLog.open(path, newBook({ allowShortDeletionWindow: true })), 'keystore_corrupt');

    // A log from another deployment does not apply here.
    await writeFile(path, lines.join('\n'));
    await expectRefusal(KeyChangeLog.open(path, newBook({ allowShortDeletionWindow: true, deployment: { committeeId: 'other' } })), 'keystore_corrupt');

    const { registry: intact } = await openLog();
    assert.equal(intact.book.changeCount, 6);
  });

  it('of two different changes submitted at once for the same next sequence, exactly one is taken', async () => {
    const { registry } = await openLog();
    await fill(registry);
    const book = registry.book;
    for (let round = 0; round < 5; round++) {
      const first = nextChange(book, 'a', 'updateDescription', { description: `one ${round}` });
      const second = nextChange(book, 'a', 'updateDescription', { description: `two ${round}` }, { admin: BOB });
      const sequence = book.get('a')!.sequence;
      const results = await Promise.allSettled([registry.submit(first), registry.submit(second)]);
      const taken = results.filter((r) => r.status === 'fulfilled');
      const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      assert.equal(taken.length, 1);
      assert.equal(refused.length, 1);
      assert.ok(isTkmsError(refused[0]!.reason) && ['key_change_replayed', 'key_change_conflict'].includes(refused[0]!.reason.code), String(refused[0]!.reason));
      assert.equal(book.get('a')!.sequence, sequence + 1);
      // The same change submitted twice at once is taken once and known once.
      const again = nextChange(book, 'a', 'tag', { tags: { round: String(round) } });
      const both = await Promise.all([registry.submit(again), registry.submit(again)]);
      assert.deepEqual(both.map((r) => r.known), [false, true]);
    }
    const count = book.changeCount;
    await registry.close();
    open.splice(0);
    const { registry: reopened } = await openLog();
    assert.equal(reopened.book.changeCount, count);
    assert.deepEqual(contents(reopened.book), contents(book));
  });

  it('takes nothing when the append fails', async () => {
    const { registry } = await openLog();
    await fill(registry);
    const before = contents(registry.book);
    await registry.close();
    // The file is closed under it: the write fails.
    const change = nextChange(registry.book, 'a', 'disable', {});
    await expectRefusal(registry.submit(change), 'internal');
    assert.deepEqual(contents(registry.book), before);
    assert.equal(registry.book.isApplied(change), false);
    open.splice(0);
    const { registry: reopened } = await openLog();
    assert.deepEqual(contents(reopened.book), before);
    // Nothing half-written either: the change applies on the reopened log.
    assert.equal((await reopened.submit(change)).known, false);
  });
});
