import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ed25519 } from '@noble/curves/ed25519.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { isTkmsError } from '../../core/errors.ts';
import { frostOf, frostSecret, type SigningSuite } from '../../core/signing/suites.ts';
import type { NonceCommitmentPair } from '../../core/signing/sign-wire.ts';
import { commitmentId, NoncePool, NonceSpentLog, type NoncePoolLimits } from '../../node/sign-nonces.ts';
import { dealSigningKey } from '../support/frost-dealer.ts';

const never = () => false;
const LOOSE: NoncePoolLimits = { perKey: 1000, total: 1000, ttlMs: 3_600_000 };

function signer(suite: SigningSuite) {
  const key = dealSigningKey(suite, 2, 3);
  return { frost: frostOf(suite), secret: frostSecret(key, 1, key.shares.get(1)!) };
}

describe('sign nonces (node/sign-nonces.ts)', () => {
  for (const suite of ['ed25519', 'bip340'] as const) {
    describe(`NoncePool (${suite})`, () => {
      const { frost, secret } = signer(suite);

      it('a nonce is taken once; it matches its commitment', () => {
        const pool = new NoncePool(LOOSE);
        const made = pool.make('k', frost, secret, 3, never);
        assert.equal(made.length, 3);
        assert.equal(new Set(made.map((c) => bytesToHex(c.hiding))).size, 3, 'fresh nonces each time');
        assert.equal(pool.size, 3);
        const taken = pool.take('k', made[1]!.hiding, made[1]!.binding);
        assert.ok(taken !== undefined);
        assert.equal(taken.keyId, 'k');
        // The secret nonces are the ones behind the published commitment: d·B = D, e·B = E.
        const G = suite === 'ed25519' ? ed25519.Point.BASE : secp256k1.Point.BASE;
        const image = (scalar: Uint8Array) => G.multiply(frost.utils.Fn.fromBytes(scalar)).toBytes(true);
        assert.deepEqual(image(taken.nonces.hiding), made[1]!.hiding);
        assert.deepEqual(image(taken.nonces.binding), made[1]!.binding);
        assert.notDeepEqual(taken.nonces.hiding, new Uint8Array(taken.nonces.hiding.length), 'not wiped before its one use');
        assert.equal(pool.size, 2);
        assert.equal(pool.take('k', made[1]!.hiding, made[1]!.binding), undefined, 'a second take gets nothing');
        assert.equal(pool.size, 2);
        for (const c of [made[0]!, made[2]!]) assert.ok(pool.take('k', c.hiding, c.binding) !== undefined);
        assert.equal(pool.size, 0);
      });

      it('a wrong binding, or another key, does not take it', () => {
        const pool = new NoncePool(LOOSE);
        const [a, b] = pool.make('k', frost, secret, 2, never) as [NonceCommitmentPair, NonceCommitmentPair];
        assert.equal(pool.take('k', a.hiding, b.binding), undefined);
        const flipped = a.binding.slice();
        flipped[flipped.length - 1]! ^= 1;
        assert.equal(pool.take('k', a.hiding, flipped), undefined);
        assert.equal(pool.take('other', a.hiding, a.binding), undefined);
        assert.equal(pool.take('k', a.binding, a.binding), undefined);
        assert.equal(pool.size, 2, 'a failed take leaves the nonce in place');
        assert.ok(pool.take('k', a.hiding, a.binding) !== undefined);
        assert.ok(pool.take('k', b.hiding, b.binding) !== undefined);
      });

      it('the per-key bound discards the oldest of that key only', () => {
        const pool = new NoncePool({ perKey: 4, total: 100, ttlMs: 3_600_000 });
        const other = pool.make('other', frost, secret, 3, never);
        const first = pool.make('k', frost, secret, 4, never);
        assert.equal(pool.size, 7);
        const more = pool.make('k', frost, secret, 3, never);
        assert.equal(pool.size, 7, '4 of k and 3 of other');
        for (const c of first.slice(0, 3)) assert.equal(pool.take('k', c.hiding, c.binding), undefined, 'the oldest three of k went');
        for (const c of [first[3]!, ...more]) assert.ok(pool.take('k', c.hiding, c.binding) !== undefined);
        for (const c of other) assert.ok(pool.take('other', c.hiding, c.binding) !== undefined, 'another key keeps its own');
      });

      it('the total bound discards the oldest of any key', () => {
        const pool = new NoncePool({ perKey: 100, total: 5, ttlMs: 3_600_000 });
        const a = pool.make('a', frost, secret, 3, never);
        const b = pool.make('b', frost, secret, 3, never);
        assert.equal(pool.size, 5);
        assert.equal(pool.take('a', a[0]!.hiding, a[0]!.binding), undefined, 'the oldest went');
        const c = pool.make('c', frost, secret, 4, never);
        assert.equal(pool.size, 5);
        const held = [...a.map((x) => ['a', x] as const), ...b.map((x) => ['b', x] as const), ...c.map((x) => ['c', x] as const)].filter(([k, x]) => pool.take(k, x.hiding, x.binding) !== undefined);
        // The newest five, in the order made: b's last and c's four.
        assert.deepEqual(
          held.map(([k, x]) => `${k}:${bytesToHex(x.hiding)}`),
          [['b', b[2]!] as const, ...c.map((x) => ['c', x] as const)].map(([k, x]) => `${k}:${bytesToHex(x.hiding)}`),
        );
      });

      it('nonces older than the TTL are discarded', () => {
        let now = 1_000_000;
        const pool = new NoncePool({ perKey: 100, total: 100, ttlMs: 60_000 }, () => now);
        const old = pool.make('k', frost, secret, 2, never);
        now += 30_000;
        const middle = pool.make('k', frost, secret, 2, never);
        now += 30_001;
        // The first two are now past the TTL; making more sweeps them.
        const fresh = pool.make('k', frost, secret, 1, never);
        assert.equal(pool.size, 3);
        for (const c of old) assert.equal(pool.take('k', c.hiding, c.binding), undefined);
        for (const c of [...middle, ...fresh]) assert.ok(pool.take('k', c.hiding, c.binding) !== undefined);
      });

      // The TTL bounds how long a nonce signs, not only how long it is kept (test/unit/signing-defects.md, 4).
      it('a nonce past its TTL cannot be taken, even before the next make', () => {
        let now = 1_000_000;
        const pool = new NoncePool({ perKey: 100, total: 100, ttlMs: 60_000 }, () => now);
        const [c] = pool.make('k', frost, secret, 1, never) as [NonceCommitmentPair];
        now += 60_001;
        assert.equal(pool.take('k', c.hiding, c.binding), undefined);
      });

      it('a commitment the spent log already holds is never handed out (a repeating random source)', () => {
        const pool = new NoncePool(LOOSE);
        assert.throws(() => pool.make('k', frost, secret, 1, () => true), (e) => isTkmsError(e, 'internal') && /repeated a nonce commitment/.test(e.message));
        assert.equal(pool.size, 0);
        // The log is asked about the commitment's own id.
        const asked: string[] = [];
        const made = pool.make('k', frost, secret, 2, (id) => (asked.push(id), false));
        assert.deepEqual(asked, made.map((c) => commitmentId('k', c.hiding)));
      });
    });
  }

  describe('NonceSpentLog', () => {
    let dir: string;
    const open: NonceSpentLog[] = [];
    const openLog = async (max?: number): Promise<NonceSpentLog> => {
      const log = await NonceSpentLog.open(join(dir, 'spent.log'), max);
      open.push(log);
      return log;
    };
    const closeAll = async (): Promise<void> => {
      for (const log of open.splice(0)) await log.close();
    };
    const ids = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `k:${(from + i).toString(16).padStart(66, '0')}`);
    const fileLines = async () => (await readFile(join(dir, 'spent.log'), 'utf8')).split('\n').filter((l) => l !== '');

    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'tkms-spent-'));
    });
    afterEach(async () => {
      await closeAll();
      await rm(dir, { recursive: true, force: true });
    });

    it('spent ids survive a reopen', async () => {
      const log = await openLog();
      assert.equal(log.has(ids(1)[0]!), false);
      await log.spend(ids(3));
      await log.spend(ids(2, 3));
      for (const id of ids(5)) assert.ok(log.has(id));
      assert.equal(log.has(ids(1, 5)[0]!), false);
      await closeAll();
      const again = await openLog();
      assert.equal(again.size, 5);
      for (const id of ids(5)) assert.ok(again.has(id));
      assert.equal(again.has(ids(1, 5)[0]!), false);
    });

    it('concurrent spends are all durable when they resolve', async () => {
      const log = await openLog();
      await Promise.all(Array.from({ length: 20 }, (_, i) => log.spend(ids(3, i * 3))));
      assert.equal((await fileLines()).length, 60);
      await closeAll();
      assert.equal((await openLog()).size, 60);
    });

    it('keeps at most maxRecords in memory, and trims the file to them at open (the newest)', async () => {
      const log = await openLog(4);
      await log.spend(ids(3));
      await log.spend(ids(4, 3));
      assert.equal(log.size, 4, 'the in-memory set stays bounded');
      for (const id of ids(4, 3)) assert.ok(log.has(id));
      for (const id of ids(3)) assert.equal(log.has(id), false, 'the oldest went first');
      // The file keeps every record until the next open.
      assert.equal((await fileLines()).length, 7);
      await closeAll();
      const again = await openLog(4);
      assert.equal(again.size, 4);
      for (const id of ids(4, 3)) assert.ok(again.has(id));
      assert.equal((await fileLines()).length, 4, 'trimmed at open');
      await again.spend(ids(1, 7));
      assert.equal(again.size, 4);
      await closeAll();
      const unbounded = await openLog();
      assert.equal(unbounded.size, 5, 'the trimmed file and what came after');
      for (const id of ids(5, 3)) assert.ok(unbounded.has(id));
    });
  });
});
