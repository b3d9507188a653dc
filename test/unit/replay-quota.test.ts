import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { isTkmsError } from '../../core/index.ts';
import { IdExpiryHeap, LiveIds, SpentRequestIds } from '../../node/spent-request-ids.ts';

/** The replay cache's structure: a per-requester quota of live ids, pruned in expiry order from a heap. */
const NOW = 1_800_000_000;

function code(fn: () => void): string {
  try {
    fn();
    return 'ok';
  } catch (e) {
    assert.ok(isTkmsError(e), String(e));
    return e.code;
  }
}

describe('replay cache: per-requester quota and expiry order', () => {
  it('IdExpiryHeap pops in expiry order, whatever the order of pushes', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 1_000 }), { maxLength: 300 }), (untils) => {
        const heap = new IdExpiryHeap();
        untils.forEach((u, i) => heap.push(u, `id${i}`));
        const popped: number[] = [];
        for (let top = heap.pop(); top !== undefined; top = heap.pop()) popped.push(top.until);
        assert.deepEqual(popped, [...untils].sort((a, b) => a - b));
      }),
    );
  });

  it('a requester past its quota is refused (rate_limited); another requester is not; replays stay replayed', () => {
    const ids = new LiveIds(3);
    for (let i = 0; i < 3; i++) assert.equal(code(() => ids.add(`a${i}`, NOW + 100, 'mallory', NOW)), 'ok');
    assert.equal(code(() => ids.add('a3', NOW + 100, 'mallory', NOW)), 'rate_limited');
    assert.equal(code(() => ids.add('b0', NOW + 100, 'alice', NOW)), 'ok');
    assert.equal(code(() => ids.add('a0', NOW + 100, 'alice', NOW)), 'replayed', 'an id is spent whoever presents it');
    assert.equal(ids.countOf('mallory'), 3);
    assert.equal(ids.size, 4);
  });

  it('quota comes back exactly as the requester\'s ids expire, earliest first', () => {
    const ids = new LiveIds(2);
    ids.add('x', NOW + 10, 'm', NOW);
    ids.add('y', NOW + 20, 'm', NOW);
    assert.equal(code(() => ids.add('z', NOW + 30, 'm', NOW + 10)), 'rate_limited', 'x is kept up to and including its time');
    assert.equal(code(() => ids.add('z', NOW + 30, 'm', NOW + 11)), 'ok', 'x expired: room for one');
    assert.equal(code(() => ids.add('w', NOW + 30, 'm', NOW + 11)), 'rate_limited');
    assert.equal(code(() => ids.add('x', NOW + 40, 'other', NOW + 11)), 'ok', 'an expired id may be used again');
    assert.equal(code(() => ids.add('w', NOW + 30, 'm', NOW + 21)), 'ok', 'y expired');
    assert.equal(ids.countOf('m'), 2);
  });

  it('over half full, a requester at its share of the room left ((free ids) / active requesters) is refused; one below it is not', () => {
    const ids = new LiveIds(100, 40);
    // Two requesters up to half the cache; then each may hold (40 - 20) / 2 = 10 (or 20 / 3 with a third).
    for (let i = 0; i < 20; i++) assert.equal(code(() => ids.add(`a${i}`, NOW + 50, i % 2 === 0 ? 'm1' : 'm2', NOW)), 'ok');
    assert.equal(ids.fairShare('m1'), 10);
    assert.equal(ids.fairShare('fresh'), 6, 'a newcomer counts itself');
    assert.equal(code(() => ids.add('x', NOW + 50, 'm1', NOW)), 'rate_limited');
    assert.equal(code(() => ids.add('y', NOW + 50, 'fresh', NOW)), 'ok');
    assert.equal(code(() => ids.add('y', NOW + 50, 'fresh', NOW)), 'replayed', 'nothing live is ever evicted');
    assert.equal(ids.size, 21);
  });

  it('the whole cache is still bounded: unavailable when full, for everyone', () => {
    const ids = new LiveIds(10, 5);
    for (let i = 0; i < 5; i++) ids.add(`r${i}`, NOW + 50, `req${i}`, NOW);
    assert.equal(code(() => ids.add('late', NOW + 50, 'fresh', NOW)), 'unavailable');
    assert.equal(code(() => ids.add('late', NOW + 50, 'fresh', NOW + 51)), 'ok', 'room once ids expire');
    assert.equal(ids.size, 1);
  });

  it('model check: live ids, counts and refusals match a naive map under random adds and clock steps', () => {
    const op = fc.record({ id: fc.integer({ min: 0, max: 40 }), requester: fc.constantFrom('a', 'b', 'c'), ttl: fc.integer({ min: 0, max: 30 }), step: fc.integer({ min: 0, max: 5 }) });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
        const quota = 4;
        const ids = new LiveIds(quota, 10);
        const model = new Map<string, { until: number; requester: string }>();
        let now = NOW;
        for (const o of ops) {
          now += o.step;
          for (const [k, v] of model) if (v.until < now) model.delete(k);
          const id = `id${o.id}`;
          const held = [...model.values()].filter((v) => v.requester === o.requester).length;
          const active = new Set([...model.values()].map((v) => v.requester).concat(o.requester)).size;
          const fair = 2 * model.size >= 10 ? Math.max(1, Math.floor((10 - model.size) / active)) : quota;
          const expected = model.has(id) ? 'replayed' : held >= quota || held >= fair ? 'rate_limited' : model.size >= 10 ? 'unavailable' : 'ok';
          assert.equal(code(() => ids.add(id, now + o.ttl, o.requester, now)), expected);
          if (expected === 'ok') model.set(id, { until: now + o.ttl, requester: o.requester });
          assert.equal(ids.size, model.size);
          for (const r of ['a', 'b', 'c']) assert.equal(ids.countOf(r), [...model.values()].filter((v) => v.requester === r).length);
        }
      }),
    );
  });

  it('SpentRequestIds logs the requester with each id and keeps quotas across a restart', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tkms-replay-quota-'));
    try {
      const path = join(dir, 'replay.log');
      const cache = await SpentRequestIds.open(path, 30, NOW, 2);
      const id = (n: number): Uint8Array => Uint8Array.of(n);
      await cache.claim(id(1), NOW + 100, NOW, '0xaa');
      await cache.claim(id(2), NOW + 100, NOW, '0xaa');
      await assert.rejects(cache.claim(id(3), NOW + 100, NOW, '0xaa'), (e) => isTkmsError(e, 'rate_limited'));
      await cache.claim(id(3), NOW + 100, NOW, '0xbb');
      await cache.close();
      assert.match(await readFile(path, 'utf8'), /\["01",\d+,"0xaa"\]/);
      const reopened = await SpentRequestIds.open(path, 30, NOW + 1, 2);
      await assert.rejects(reopened.claim(id(4), NOW + 100, NOW + 1, '0xaa'), (e) => isTkmsError(e, 'rate_limited'));
      await assert.rejects(reopened.claim(id(3), NOW + 100, NOW + 1, '0xcc'), (e) => isTkmsError(e, 'replayed'));
      await reopened.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
