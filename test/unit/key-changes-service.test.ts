import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeKeyChangeReply, encodeKeyChangeRequest } from '../../core/keys/key-wire.ts';
import type { KeyChange } from '../../core/keys/key-change.ts';
import { KeyChangeService } from '../../node/key-changes.ts';
import { createNodeMetrics } from '../../node/metrics.ts';
import { createLogger } from '../../runtime/logger.ts';
import { KeyChangeLog } from '../../storage/key-change-log.ts';
import { ALICE, DAY, newBook, nextChange, T0 } from '../support/key-change-fixtures.ts';

/**
 * /tkms/key-changes/1 between members, in one process: real services and durable logs, wired by a
 * transport that delivers frames straight to the other service (and can drop them). What the
 * real-process tests cannot stage: a member that misses changes, or the DKG of a key it has not heard of.
 */
describe('node key change service (in-process members)', () => {
  let dir: string;
  const logs: KeyChangeLog[] = [];
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tkms-key-service-'));
  });
  afterEach(async () => {
    for (const l of logs.splice(0)) await l.close();
    await rm(dir, { recursive: true, force: true });
  });

  /** Members 1..n; `down` members drop every frame; the clock is T0 + `clock.at` seconds. */
  async function committee(n: number, opts: { short?: boolean } = {}) {
    const down = new Set<number>();
    const clock = { at: 0 };
    const services = new Map<number, KeyChangeService>();
    const registries = new Map<number, KeyChangeLog>();
    for (let id = 1; id <= n; id++) {
      const { registry } = await KeyChangeLog.open(join(dir, `member${id}.log`), newBook({ allowShortDeletionWindow: opts.short ?? false }));
      logs.push(registry);
      registries.set(id, registry);
      services.set(
        id,
        new KeyChangeService({
          registry,
          transport: {
            members: () => [...services.keys()].filter((m) => m !== id),
            send: async (to, frame) => {
              if (down.has(to) || down.has(id)) throw new Error(`member ${to} is unreachable`);
              return services.get(to)!.answer(id, frame);
            },
          },
          log: createLogger('silent'),
          metrics: createNodeMetrics(),
          destroyedGraceSeconds: opts.short ? 0 : 3600,
          now: () => (T0 + clock.at) * 1000,
        }),
      );
    }
    /** As the gateway sends: from no member. */
    const submit = async (to: number, change: KeyChange) => decodeKeyChangeReply(await services.get(to)!.answer(undefined, encodeKeyChangeRequest({ type: 'change', change })));
    const settle = () => new Promise((r) => setTimeout(r, 20));
    return { services, registries, down, clock, submit, settle, book: (id: number) => registries.get(id)!.book };
  }

  it('a new change floods to every member; one that missed the create pulls it when the next change arrives', async () => {
    const c = await committee(3);
    c.down.add(3);
    const create = nextChange(c.book(1), 'k', 'create', { origin: { type: 'dkg' }, admins: [ALICE.address] });
    assert.equal((await c.submit(1, create)).ok, true);
    await c.settle();
    assert.equal(c.book(2).get('k')?.sequence, 1);
    assert.equal(c.book(3).get('k'), undefined);
    c.down.delete(3);
    const disable = nextChange(c.book(1), 'k', 'disable', {}, { issuedAt: T0 + 1 });
    const reply = await c.submit(3, disable);
    assert.ok(reply.ok && reply.type === 'applied' && reply.sequence === 2 && !reply.known, JSON.stringify(reply));
    assert.equal(c.book(3).get('k')!.state, 'Disabled');
    await c.settle();
    for (const id of [1, 2]) assert.equal(c.book(id).get('k')!.state, 'Disabled');
  });

  it('before joining the DKG of a key it has not heard of, a member pulls the create from the proposer', async () => {
    const c = await committee(2);
    c.down.add(2);
    await c.submit(1, nextChange(c.book(1), 'fresh', 'create', { origin: { type: 'dkg' }, admins: [ALICE.address] }));
    c.down.delete(2);
    assert.equal(c.book(2).get('fresh'), undefined);
    await c.services.get(2)!.pullBeforeDkg('fresh', 1);
    assert.equal(c.book(2).get('fresh')!.sequence, 1);
    // A rotate the member has not received: pulled before the DKG of version 2.
    c.down.add(2);
    await c.submit(1, nextChange(c.book(1), 'fresh', 'rotate', {}, { issuedAt: T0 + 1 }));
    c.down.delete(2);
    await c.services.get(2)!.pullBeforeDkg('fresh.v2', 1);
    assert.equal(c.book(2).get('fresh')!.versions.length, 2);
    // An operator's key id no managed key names: nothing to pull, nothing refused.
    await c.services.get(2)!.pullBeforeDkg('operator-key', 1);
    assert.equal(c.book(2).get('operator-key'), undefined);
  });

  it('a change from the gateway must be fresh; a relayed one need not be', async () => {
    const c = await committee(2);
    c.clock.at = 2 * 3600;
    const stale = nextChange(c.book(1), 'k', 'create', { origin: { type: 'dkg' }, admins: [ALICE.address] });
    const refused = await c.submit(1, stale);
    assert.ok(!refused.ok && refused.code === 'expired', JSON.stringify(refused));
    // The same change relayed by a member (a member that was away catching up) is taken.
    const relayed = decodeKeyChangeReply(await c.services.get(1)!.answer(2, encodeKeyChangeRequest({ type: 'change', change: stale })));
    assert.ok(relayed.ok, JSON.stringify(relayed));
  });

  it('no member takes a change to a key its own clock says is destroyed, not even a cancel dated before the deletion', async () => {
    const c = await committee(1);
    const book = c.book(1);
    await c.submit(1, nextChange(book, 'k', 'create', { origin: { type: 'derived', root: 'root', path: 'p' }, admins: [ALICE.address] }));
    await c.submit(1, nextChange(book, 'k', 'scheduleDeletion', { pendingWindowDays: 7 }, { issuedAt: T0 + 1 }));
    // Eight days later, with the hour a cancel may take to arrive gone by too.
    c.clock.at = 8 * DAY + 3601;
    const backdated = nextChange(book, 'k', 'cancelDeletion', {}, { issuedAt: T0 + 2 });
    const reply = decodeKeyChangeReply(await c.services.get(1)!.answer(2, encodeKeyChangeRequest({ type: 'change', change: backdated })));
    assert.ok(!reply.ok && reply.code === 'key_destroyed', JSON.stringify(reply));
    assert.equal(book.get('k')!.state, 'PendingDeletion');
  });
});
