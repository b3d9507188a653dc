import assert from 'node:assert/strict';
import { join } from 'node:path';
import { isTkmsError, newRequestId } from '../../core/index.ts';
import { SpentRequestIds } from '../../node/spent-request-ids.ts';
import { makeTempDir, removeDir } from '../support/processes.ts';

/**
 * Ten accounts, each at its own per-requester quota, used to fill the node's replay cache (1M ids,
 * 100k per requester) so that every other account got `unavailable`. The node's cache with its log,
 * at a capacity small enough to fill in a test (the bound is the same code at 1M); the attack over
 * the network, one account against real nodes, is replay-cache.test.ts.
 */
const NOW = Math.floor(Date.now() / 1000);
const CAPACITY = 2_000;
/** The default ratio: 100k per requester of 1M. */
const PER_REQUESTER = CAPACITY / 10;

describe('attack: ten accounts at their quota fill the replay cache so everyone else is unavailable', function () {
  this.timeout(60_000);
  let dir: string;

  before(async () => {
    dir = await makeTempDir('tkms-replay-fair');
  });
  after(async () => {
    await removeDir(dir);
  });

  const outcome = (p: Promise<void>): Promise<string> => p.then(() => 'ok', (e: unknown) => (isTkmsError(e) ? e.code : String(e)));

  it('attackers stop at their share of the room left; fresh accounts are still served, and no live id is evicted', async () => {
    const cache = await SpentRequestIds.open(join(dir, 'replay.log'), 30, NOW, PER_REQUESTER, CAPACITY);
    const attackers = Array.from({ length: 12 }, (_, i) => `0xattacker${i}`);
    const spent: Uint8Array[] = [];
    const served = new Map<string, number>();
    // Each attacker in turn spends ids until refused (the order that fills the most: the first
    // ones take their whole quota while the cache is less than half full).
    for (const a of attackers) {
      for (let i = 0; i <= PER_REQUESTER; i++) {
        const id = newRequestId();
        const got = await outcome(cache.claim(id, NOW + 3_600, NOW, a));
        if (got !== 'ok') {
          assert.equal(got, 'rate_limited', `${a}: ${got}`);
          break;
        }
        spent.push(id);
        served.set(a, (served.get(a) ?? 0) + 1);
      }
    }
    const held = cache.size;
    console.log(`      12 attackers at quota ${PER_REQUESTER} of ${CAPACITY}: they hold ${held} ids, ${[...served.values()].join('/')} each`);
    // Before the fix ten of them held 10 x quota, the whole cache; now each stops at its share of
    // the room left once it is half full, about three quarters in all.
    assert.ok(held <= 0.8 * CAPACITY, `the attackers filled ${held} of ${CAPACITY}`);
    // Fresh accounts, one after another, are each served (below their fair share) ...
    for (let i = 0; i < 20; i++) {
      const fresh = `0xfresh${i}`;
      for (let j = 0; j < 5; j++) assert.equal(await outcome(cache.claim(newRequestId(), NOW + 300, NOW, fresh)), 'ok', `${fresh} request ${j}`);
    }
    // ... while every attacker stays refused, and every id spent stays spent.
    for (const a of attackers) assert.equal(await outcome(cache.claim(newRequestId(), NOW + 3_600, NOW, a)), 'rate_limited');
    for (const id of spent.slice(0, 50)) assert.equal(await outcome(cache.claim(id, NOW + 3_600, NOW, '0xsomeone')), 'replayed');
    await cache.close();
    // And across a restart: the ids come back from the log, and so does the refusal.
    const reopened = await SpentRequestIds.open(join(dir, 'replay.log'), 30, NOW, PER_REQUESTER, CAPACITY);
    assert.equal(await outcome(reopened.claim(spent[0]!, NOW + 3_600, NOW, '0xsomeone')), 'replayed');
    assert.equal(await outcome(reopened.claim(newRequestId(), NOW + 3_600, NOW, attackers[0]!)), 'rate_limited');
    assert.equal(await outcome(reopened.claim(newRequestId(), NOW + 300, NOW, '0xlate')), 'ok');
    await reopened.close();
  });
});
