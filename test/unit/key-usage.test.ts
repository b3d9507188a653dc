import assert from 'node:assert/strict';
import { isTkmsError } from '../../core/errors.ts';
import { DEFAULT_KEY_USAGE_LIMITS, KeyUsageCounters } from '../../node/key-usage.ts';

const who = (i: number): Uint8Array => {
  const a = new Uint8Array(20);
  new DataView(a.buffer).setUint32(16, i);
  return a;
};
/** 2026-01-05 00:00:00 UTC. */
const DAY = 1767571200;

describe('key usage counters (node/key-usage.ts)', () => {
  it('counts per key and per requester', () => {
    const usage = new KeyUsageCounters();
    assert.equal(usage.usedToday('a', who(1), DAY), 0);
    assert.equal(usage.charge('a', who(1), DAY), 1);
    assert.equal(usage.charge('a', who(1), DAY + 5), 2);
    assert.equal(usage.charge('a', who(2), DAY + 5), 1);
    assert.equal(usage.charge('b', who(1), DAY + 5), 1);
    assert.equal(usage.usedToday('a', who(1), DAY + 6), 2);
    assert.equal(usage.usedToday('b', who(2), DAY + 6), 0);
    assert.equal(usage.size, 3);
  });

  it('resets at 00:00 UTC, and not when the clock steps back', () => {
    const usage = new KeyUsageCounters();
    for (let i = 0; i < 3; i++) usage.charge('a', who(1), DAY + 86_399);
    assert.equal(usage.usedToday('a', who(1), DAY + 86_399), 3);
    assert.equal(usage.usedToday('a', who(1), DAY + 86_400), 0);
    assert.equal(usage.size, 0);
    assert.equal(usage.charge('a', who(1), DAY + 86_400), 1);
    // A clock stepped back into yesterday keeps today's counts: no fresh day from a clock jump.
    assert.equal(usage.usedToday('a', who(1), DAY + 86_000), 1);
    assert.equal(usage.charge('a', who(1), DAY + 86_000), 2);
  });

  it('past the per-key bound, forgets the least recently charged requester of that key', () => {
    const usage = new KeyUsageCounters({ maxRequestersPerKey: 3, maxTotal: 10 });
    for (const i of [1, 2, 3]) usage.charge('a', who(i), DAY);
    usage.charge('a', who(1), DAY); // 1 is now the most recent
    usage.charge('a', who(4), DAY); // pushes out 2
    assert.equal(usage.size, 3);
    assert.deepEqual([1, 2, 3, 4].map((i) => usage.usedToday('a', who(i), DAY)), [2, 0, 1, 1]);
    for (let i = 10; i < 1000; i++) usage.charge('a', who(i), DAY);
    assert.equal(usage.size, 3);
    assert.deepEqual([997, 998, 999].map((i) => usage.usedToday('a', who(i), DAY)), [1, 1, 1]);
  });

  it('past the total bound, forgets from the key with the most counters: a flood on one key leaves a small key counted', () => {
    const usage = new KeyUsageCounters({ maxRequestersPerKey: 50, maxTotal: 60 });
    // The allow-listed key: 10 requesters, charged early, never again.
    for (let i = 0; i < 10; i++) for (let n = 0; n <= i; n++) usage.charge('payroll', who(i), DAY);
    // A flood of fresh requesters on an open key, and a second, smaller flood on a third.
    for (let i = 0; i < 100_000; i++) usage.charge(i % 4 === 0 ? 'open-2' : 'open', who(1000 + i), DAY + 10);
    assert.equal(usage.size, 60);
    for (let i = 0; i < 10; i++) assert.equal(usage.usedToday('payroll', who(i), DAY + 20), i + 1);
    // The floods share the remaining 50 counters; neither went past the per-key bound.
    const open = (key: string, from: number) => Array.from({ length: 100_000 }, (_, i) => usage.usedToday(key, who(1000 + i), DAY + 20)).slice(from).filter((c) => c > 0).length;
    assert.equal(open('open', 0) + open('open-2', 0), 50);
    assert.ok(open('open', 0) <= 50 && open('open-2', 0) <= 50);
  });

  it('keeps within both bounds whatever the order of charges', () => {
    const usage = new KeyUsageCounters({ maxRequestersPerKey: 7, maxTotal: 20 });
    let state = 12345;
    const next = () => (state = (state * 1103515245 + 12345) % 2 ** 31);
    for (let i = 0; i < 20_000; i++) {
      usage.charge(`k${next() % 9}`, who(next() % 40), DAY);
      assert.ok(usage.size <= 20);
    }
    for (let k = 0; k < 9; k++) {
      const held = Array.from({ length: 40 }, (_, r) => usage.usedToday(`k${k}`, who(r), DAY)).filter((c) => c > 0).length;
      assert.ok(held <= 7, `key k${k} holds ${held}`);
    }
  });

  it('refuses bounds that are not positive integers or a total below the per-key bound', () => {
    for (const limits of [{ maxRequestersPerKey: 0 }, { maxTotal: 5, maxRequestersPerKey: 6 }, { maxRequestersPerKey: 1.5 }]) {
      assert.throws(() => new KeyUsageCounters(limits), (e) => isTkmsError(e, 'bad_request'));
    }
    assert.ok(DEFAULT_KEY_USAGE_LIMITS.maxTotal >= DEFAULT_KEY_USAGE_LIMITS.maxRequestersPerKey);
  });
});
