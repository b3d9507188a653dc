import assert from 'node:assert/strict';
import { appendFile, mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateAccount, type Account } from '../../client/account.ts';
import {
  deriveHandleFromDigest,
  encodePoint,
  RevocationEnvelopeBody,
  RevocationMessage,
  signTypedData,
  type ErrorCode,
  type HandleDescriptor,
  isTkmsError,
  proveEphemeralKey,
  publicKeyFromSecret,
  randomBytes,
  randomScalar,
  type RevocationEnvelope,
  signRevocation,
} from '../../core/index.ts';
import { AppendLog } from '../../storage/append-log.ts';
import { SpentRequestIds } from '../../node/spent-request-ids.ts';
import { RevocationStore } from '../../node/revocations.ts';

/** Node state that must survive restarts: the append-only log, the spent request ids, the revocation store. */

const DEPLOYMENT = { committeeId: 'committee-a' };

async function rejectsWith(fn: () => Promise<unknown>, code: ErrorCode, label = ''): Promise<void> {
  await assert.rejects(fn, (e: unknown) => {
    assert.ok(isTkmsError(e), `${label}: expected a TkmsError, got ${String(e)}`);
    assert.equal(e.code, code, `${label}: expected ${code}, got ${e.code}: ${e.message}`);
    return true;
  });
}

describe('node state', function () {
  this.timeout(30_000);
  let root: string;
  let n = 0;
  /** A path in a new, empty directory (the directory itself is created by the code under test or by `freshFile`). */
  const fresh = (name: string): string => join(root, `${++n}`, name);
  const freshFile = async (name: string): Promise<string> => {
    const path = fresh(name);
    await mkdir(join(path, '..'), { recursive: true });
    return path;
  };

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'tkms-node-state-'));
  });

  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  describe('AppendLog', () => {
    it('creates the file (and its directory) and round-trips lines across reopen', async () => {
      const path = fresh('log.jsonl');
      const first = await AppendLog.open(path);
      assert.deepEqual(first.lines, []);
      assert.equal(first.tornBytes, 0);
      const values: unknown[] = [[1, 'a'], { k: 'v', nested: { x: [null, true] } }, 'ünïcødé ✓ 𝄞', null, 0, 'line\nbreak'];
      for (const [i, v] of values.entries()) await first.log.append(v, i % 2 === 0);
      assert.equal(first.log.lines, values.length);
      await first.log.close();
      assert.equal((await stat(path)).mode & 0o777, 0o600);

      const second = await AppendLog.open(path);
      assert.deepEqual(second.lines, values);
      assert.equal(second.tornBytes, 0);
      assert.equal(second.log.lines, values.length);
      await second.log.append('more', true);
      await second.log.close();
      const third = await AppendLog.open(path);
      assert.deepEqual(third.lines, [...values, 'more']);
      await third.log.close();
    });

    it('cuts off a torn last line (partial JSON, no newline) and reports its size in bytes', async () => {
      const path = fresh('torn.jsonl');
      const { log } = await AppendLog.open(path);
      await log.append({ a: 1 }, true);
      await log.append(['é', 2], true);
      await log.close();
      const good = await readFile(path);
      const torn = '{"b":"ü€'; // multi-byte: tornBytes counts bytes, not characters
      await appendFile(path, torn);

      const reopened = await AppendLog.open(path);
      assert.deepEqual(reopened.lines, [{ a: 1 }, ['é', 2]]);
      assert.equal(reopened.tornBytes, Buffer.byteLength(torn));
      assert.equal(reopened.tornBytes, 11);
      assert.deepEqual(await readFile(path), good, 'the torn tail is truncated on disk');
      // Appends after the cut land on a clean line boundary.
      await reopened.log.append('after', true);
      await reopened.log.close();
      const again = await AppendLog.open(path);
      assert.deepEqual(again.lines, [{ a: 1 }, ['é', 2], 'after']);
      assert.equal(again.tornBytes, 0);
      await again.log.close();
    });

    it('treats a complete-looking last line without its newline as torn too', async () => {
      const path = await freshFile('nonewline.jsonl');
      await writeFile(path, '[1]\n[2]');
      const { log, lines, tornBytes } = await AppendLog.open(path);
      assert.deepEqual(lines, [[1]]);
      assert.equal(tornBytes, 3);
      assert.equal(log.lines, 1);
      await log.close();
      assert.equal(await readFile(path, 'utf8'), '[1]\n');
    });

    it('refuses to open a log damaged in the middle (TkmsError), leaving the file untouched', async () => {
      const path = await freshFile('damaged.jsonl');
      const content = '[1]\n{"broken":\n[3]\n';
      await writeFile(path, content);
      await rejectsWith(() => AppendLog.open(path), 'internal', 'damaged middle line');
      assert.equal(await readFile(path, 'utf8'), content);
      // An empty line in the middle is damage too.
      const path2 = await freshFile('empty-line.jsonl');
      await writeFile(path2, '[1]\n\n[3]\n');
      await rejectsWith(() => AppendLog.open(path2), 'internal', 'empty middle line');
    });

    it('refuses a file larger than maxBytes', async () => {
      const path = await freshFile('big.jsonl');
      await writeFile(path, '[1]\n'.repeat(100));
      await rejectsWith(() => AppendLog.open(path, 399), 'internal');
      const ok = await AppendLog.open(path, 400);
      assert.equal(ok.lines.length, 100);
      await ok.log.close();
    });

    it('rewrite() replaces the content atomically (temp file + rename) and appends continue in the new file', async () => {
      const path = fresh('rewrite.jsonl');
      const { log } = await AppendLog.open(path);
      for (let i = 0; i < 10; i++) await log.append(i, false);
      await log.rewrite(['x', { y: 2 }]);
      assert.equal(log.lines, 2);
      assert.equal(await readFile(path, 'utf8'), '"x"\n{"y":2}\n');
      await log.append('z', true);
      assert.equal(log.lines, 3);
      await log.close();
      const dir = join(path, '..');
      assert.deepEqual(await readdir(dir), ['rewrite.jsonl'], 'no temp file is left behind');
      const reopened = await AppendLog.open(path);
      assert.deepEqual(reopened.lines, ['x', { y: 2 }, 'z']);
      await reopened.log.rewrite([]);
      assert.equal(await readFile(path, 'utf8'), '');
      await reopened.log.close();
      const empty = await AppendLog.open(path);
      assert.deepEqual(empty.lines, []);
      await empty.log.close();
    });
  });

  describe('SpentRequestIds', () => {
    const NOW = 1_700_000_000;
    const SKEW = 30;
    const id = (i: number): Uint8Array => Uint8Array.from({ length: 16 }, (_, j) => (j < 4 ? (i >>> (8 * j)) & 0xff : j));

    it('a second claim of the same id is replayed; other ids pass', async () => {
      const cache = await SpentRequestIds.open(fresh('replay.log'), SKEW, NOW);
      await cache.claim(id(1), NOW + 100, NOW);
      await rejectsWith(() => cache.claim(id(1), NOW + 100, NOW), 'replayed');
      await rejectsWith(() => cache.claim(id(1), NOW + 100, NOW + 100 + SKEW - 1), 'replayed', 'just before the window closes');
      await cache.claim(id(2), NOW + 100, NOW);
      assert.equal(cache.size, 2);
      await cache.close();
    });

    it('persists: after close and reopen the id is still refused', async () => {
      const path = fresh('replay.log');
      const cache = await SpentRequestIds.open(path, SKEW, NOW);
      await cache.claim(id(1), NOW + 100, NOW);
      await cache.claim(id(2), NOW + 3000, NOW);
      await cache.close();

      const reopened = await SpentRequestIds.open(path, SKEW, NOW + 10);
      assert.equal(reopened.size, 2);
      await rejectsWith(() => reopened.claim(id(1), NOW + 100, NOW + 10), 'replayed', 'after reopen');
      await rejectsWith(() => reopened.claim(id(2), NOW + 3000, NOW + 10), 'replayed', 'after reopen');
      await reopened.close();
    });

    it('forgets, at reopen, ids whose notAfter + skew is in the past', async () => {
      const path = fresh('replay.log');
      const cache = await SpentRequestIds.open(path, SKEW, NOW);
      await cache.claim(id(1), NOW + 100, NOW); // kept until NOW + 130
      await cache.claim(id(2), NOW + 1000, NOW); // kept until NOW + 1030
      await cache.close();

      const later = await SpentRequestIds.open(path, SKEW, NOW + 131);
      assert.equal(later.size, 1, 'only the id whose window is still open is loaded');
      await rejectsWith(() => later.claim(id(2), NOW + 1000, NOW + 131), 'replayed');
      // The forgotten id is no longer tracked (the window check refuses it anyway).
      await later.claim(id(1), NOW + 200, NOW + 131);
      await later.close();
    });

    it('ignores malformed lines in its log', async () => {
      const path = await freshFile('replay.log');
      await writeFile(path, `${JSON.stringify(['aa', NOW + 500])}\n{"x":1}\n[1,2]\n"str"\n${JSON.stringify(['bb', 'soon'])}\n`);
      const cache = await SpentRequestIds.open(path, SKEW, NOW);
      assert.equal(cache.size, 1);
      await rejectsWith(() => cache.claim(Uint8Array.of(0xaa), NOW + 10, NOW), 'replayed');
      await cache.close();
    });

    it('concurrent claims of the same id: exactly one succeeds', async () => {
      const path = fresh('replay.log');
      const cache = await SpentRequestIds.open(path, SKEW, NOW);
      const results = await Promise.allSettled(Array.from({ length: 20 }, () => cache.claim(id(7), NOW + 100, NOW)));
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
      for (const r of results) if (r.status === 'rejected') assert.ok(isTkmsError(r.reason, 'replayed'));
      // Many different ids at once: all succeed and all reach the log intact.
      const many = await Promise.allSettled(Array.from({ length: 200 }, (_, i) => cache.claim(id(1000 + i), NOW + 100, NOW)));
      assert.ok(many.every((r) => r.status === 'fulfilled'));
      await cache.close();
      const log = await AppendLog.open(path);
      assert.equal(log.lines.length, 201);
      assert.equal(log.tornBytes, 0);
      await log.log.close();
      const reopened = await SpentRequestIds.open(path, SKEW, NOW);
      assert.equal(reopened.size, 201);
      await reopened.close();
    });

    // The window check (core/authz.ts) accepts now == notAfter + skew, so the id must be kept
    // through that second too, or one delegation could be answered twice.
    it('an id is refused for as long as its window is accepted (now == notAfter + skew)', async () => {
      const path = fresh('replay.log');
      const cache = await SpentRequestIds.open(path, SKEW, NOW);
      try {
        await cache.claim(id(1), NOW + 100, NOW);
      } finally {
        await cache.close();
      }
      const reopened = await SpentRequestIds.open(path, SKEW, NOW + 100 + SKEW);
      try {
        await rejectsWith(() => reopened.claim(id(1), NOW + 100, NOW + 100 + SKEW), 'replayed', 'after reopen, at the boundary');
      } finally {
        await reopened.close();
      }
      const inMemory = await SpentRequestIds.open(fresh('replay.log'), SKEW, NOW);
      try {
        await inMemory.claim(id(1), NOW + 100, NOW);
        await rejectsWith(() => inMemory.claim(id(1), NOW + 100, NOW + 100 + SKEW), 'replayed', 'in memory, at the boundary');
      } finally {
        await inMemory.close();
      }
    });
  });

  describe('RevocationStore', () => {
    let owner: Account;
    let grantee: Account;
    let other: Account;
    let stranger: Account;
    let descriptor: HandleDescriptor;
    let handle: Uint8Array;
    let descriptor2: HandleDescriptor;
    let handle2: Uint8Array;

    /** A well-formed descriptor with a real K-binding proof (k known here, K = k·G). */
    function makeDescriptor(ownerAccount: Account): HandleDescriptor {
      const k = randomScalar();
      const digest = { keyId: 'key-1', K: encodePoint(publicKeyFromSecret(k)), nonce: randomBytes(12), ciphertextHash: randomBytes(32), owner: ownerAccount.addressBytes };
      return { ...digest, kProof: proveEphemeralKey(k, digest) };
    }

    /** Revocation times are offsets from T: recent enough that no revocation here has expired. */
    const T = Math.floor(Date.now() / 1000) - 10_000;

    function envelope(d: HandleDescriptor, h: Uint8Array, who: Account, at: number, signer: Account = owner): RevocationEnvelope {
      return { descriptor: d, revocation: signRevocation(signer.secretKey, { handle: h, grantee: who.addressBytes, revokedAt: T + at }, DEPLOYMENT) };
    }

    before(() => {
      owner = generateAccount();
      grantee = generateAccount();
      other = generateAccount();
      stranger = generateAccount();
      descriptor = makeDescriptor(owner);
      handle = deriveHandleFromDigest(descriptor);
      descriptor2 = makeDescriptor(owner);
      handle2 = deriveHandleFromDigest(descriptor2);
    });

    it('stores a revocation signed by the handle owner; revokedAt() returns it', async () => {
      const { store, tornBytes } = await RevocationStore.open(fresh('revocations.log'), DEPLOYMENT);
      assert.equal(tornBytes, 0);
      assert.equal(store.revokedAt(handle, grantee.addressBytes, owner.addressBytes), undefined);
      assert.equal(await store.add(envelope(descriptor, handle, grantee, 1000)), true);
      assert.equal(store.revokedAt(handle, grantee.addressBytes, owner.addressBytes), T + 1000);
      // Keyed on (handle, grantee): other pairs are unaffected.
      assert.equal(store.revokedAt(handle, other.addressBytes, owner.addressBytes), undefined);
      assert.equal(store.revokedAt(handle2, grantee.addressBytes, owner.addressBytes), undefined);
      assert.equal(store.size, 1);
      await store.close();
    });

    it('refuses a revocation not signed by the owner (unauthorized) and does not store it', async () => {
      const path = fresh('revocations.log');
      const { store } = await RevocationStore.open(path, DEPLOYMENT);
      await rejectsWith(() => store.add(envelope(descriptor, handle, grantee, 1000, stranger)), 'unauthorized', 'stranger');
      await rejectsWith(() => store.add(envelope(descriptor, handle, grantee, 1000, grantee)), 'unauthorized', 'grantee');
      // A stranger who describes itself as the owner fails the handle commitment.
      await rejectsWith(() => store.add(envelope({ ...descriptor, owner: stranger.addressBytes }, handle, grantee, 1000, stranger)), 'unauthorized', 'stranger as owner');
      // The owner's revocation presented with another handle's descriptor.
      await rejectsWith(() => store.add(envelope(descriptor2, handle, grantee, 1000)), 'unauthorized', 'descriptor of another handle');
      assert.equal(store.size, 0);
      assert.equal(store.revokedAt(handle, grantee.addressBytes, owner.addressBytes), undefined);
      await store.close();
      assert.equal((await stat(path)).size, 0, 'nothing reached the log');
    });

    it('signatures are bound to the node\'s committee: another committee\'s is unauthorized, a version-1 one legacy_signature', async () => {
      const path = fresh('revocations.log');
      const { store } = await RevocationStore.open(path, DEPLOYMENT);
      const forB = { descriptor, revocation: signRevocation(owner.secretKey, { handle, grantee: grantee.addressBytes, revokedAt: T + 1000 }, { committeeId: 'committee-b' }) };
      await rejectsWith(() => store.add(forB), 'unauthorized', 'signed for another committee');
      const r = { handle, grantee: grantee.addressBytes, revokedAt: T + 1000 };
      const v1 = { descriptor, revocation: { ...r, signature: signTypedData(owner.secretKey, { name: 'tkms', version: '1' }, RevocationMessage.struct, { ...r }) } };
      await rejectsWith(() => store.add(v1), 'legacy_signature', 'version 1');
      assert.equal(store.size, 0);
      await store.close();
      assert.equal((await stat(path)).size, 0, 'nothing reached the log');
    });

    it('a log written before the upgrade (version-1 signatures) still opens, and its revocations stay in force', async () => {
      const path = await freshFile('revocations.log');
      const r = { handle, grantee: grantee.addressBytes, revokedAt: T + 1000 };
      const v1 = { descriptor, revocation: { ...r, signature: signTypedData(owner.secretKey, { name: 'tkms', version: '1' }, RevocationMessage.struct, { ...r }) } };
      await writeFile(path, `${JSON.stringify(RevocationEnvelopeBody.encode(v1))}\n`);
      const { store } = await RevocationStore.open(path, DEPLOYMENT);
      assert.equal(store.revokedAt(handle, grantee.addressBytes, owner.addressBytes), T + 1000);
      assert.equal(store.page(0, 10).items.length, 1);
      // A current revocation for the same pair still supersedes it.
      assert.equal(await store.add(envelope(descriptor, handle, grantee, 1001)), true);
      assert.equal(store.revokedAt(handle, grantee.addressBytes, owner.addressBytes), T + 1001);
      await store.close();
    });

    it('an older or equal revokedAt does not replace a newer one (add returns false); a newer one does', async () => {
      const { store } = await RevocationStore.open(fresh('revocations.log'), DEPLOYMENT);
      assert.equal(await store.add(envelope(descriptor, handle, grantee, 1000)), true);
      assert.equal(await store.add(envelope(descriptor, handle, grantee, 999)), false);
      assert.equal(await store.add(envelope(descriptor, handle, grantee, 1000)), false);
      assert.equal(store.revokedAt(handle, grantee.addressBytes, owner.addressBytes), T + 1000);
      assert.equal(store.size, 1);
      assert.equal(await store.add(envelope(descriptor, handle, grantee, 1001)), true);
      assert.equal(store.revokedAt(handle, grantee.addressBytes, owner.addressBytes), T + 1001);
      // Only the latest revocation per (handle, grantee) is kept: 1001 replaced 1000.
      assert.equal(store.size, 1);
      assert.deepStrictEqual(store.page(0, 10).items.map((e) => e.revocation.revokedAt), [T + 1001]);
      await store.close();
    });

    it('concurrent adds of the same revocation store it once', async () => {
      const { store } = await RevocationStore.open(fresh('revocations.log'), DEPLOYMENT);
      const e = envelope(descriptor, handle, grantee, 500);
      const results = await Promise.all(Array.from({ length: 10 }, () => store.add(e)));
      assert.equal(results.filter((r) => r).length, 1);
      assert.equal(store.size, 1);
      await store.close();
    });

    it('reopen keeps the latest per pair (in order of arrival) and page() walks it with next=null at the end', async () => {
      const path = fresh('revocations.log');
      const { store } = await RevocationStore.open(path, DEPLOYMENT);
      const added: RevocationEnvelope[] = [
        envelope(descriptor, handle, grantee, 100),
        envelope(descriptor, handle, other, 200),
        envelope(descriptor2, handle2, grantee, 300),
        envelope(descriptor, handle, grantee, 400),
        envelope(descriptor2, handle2, other, 500),
        envelope(descriptor, handle, stranger, 600),
      ];
      for (const e of added) assert.equal(await store.add(e), true);
      // (handle, grantee) at 400 superseded the one at 100 and moved to its arrival position.
      const kept = added.slice(1);
      assert.equal(store.size, kept.length);
      await store.close();

      const reopened = await RevocationStore.open(path, DEPLOYMENT);
      const s2 = reopened.store;
      assert.equal(reopened.tornBytes, 0);
      assert.equal(s2.size, kept.length);
      assert.equal(s2.revokedAt(handle, grantee.addressBytes, owner.addressBytes), T + 400);
      assert.equal(s2.revokedAt(handle, other.addressBytes, owner.addressBytes), T + 200);
      assert.equal(s2.revokedAt(handle2, grantee.addressBytes, owner.addressBytes), T + 300);
      assert.equal(s2.revokedAt(handle2, other.addressBytes, owner.addressBytes), T + 500);
      assert.equal(s2.revokedAt(handle, stranger.addressBytes, owner.addressBytes), T + 600);
      // Still refuses the older one after reopen.
      assert.equal(await s2.add(envelope(descriptor, handle, grantee, 399)), false);

      // Cursors are arrival numbers: line 1 (superseded) was number 0, so the kept ones are 1..5.
      const p1 = s2.page(0, 2);
      assert.equal(p1.next, 3);
      const p2 = s2.page(p1.next!, 2);
      assert.equal(p2.next, 5);
      const p3 = s2.page(p2.next!, 2);
      assert.equal(p3.next, null);
      assert.equal(p3.items.length, 1);
      const walked = [...p1.items, ...p2.items, ...p3.items];
      assert.deepStrictEqual(walked, kept);
      assert.deepStrictEqual(s2.page(0, 5), { items: kept, next: null });
      assert.deepStrictEqual(s2.page(6, 2), { items: [], next: null });
      assert.deepStrictEqual(s2.page(100, 2), { items: [], next: null });
      await s2.close();
    });

    it('reopen drops a torn tail but refuses (loudly) a line that is not a valid revocation', async () => {
      const path = fresh('revocations.log');
      const { store } = await RevocationStore.open(path, DEPLOYMENT);
      await store.add(envelope(descriptor, handle, grantee, 100));
      await store.close();
      await appendFile(path, '{"descriptor":');
      const reopened = await RevocationStore.open(path, DEPLOYMENT);
      assert.ok(reopened.tornBytes > 0);
      assert.equal(reopened.store.size, 1);
      assert.equal(reopened.store.revokedAt(handle, grantee.addressBytes, owner.addressBytes), T + 100);
      await reopened.store.close();
      // Skipping an unreadable revocation would re-enable a revoked grant.
      await appendFile(path, '{"not":"an envelope"}\n');
      await assert.rejects(RevocationStore.open(path, DEPLOYMENT), (e: unknown) => isTkmsError(e, 'internal') && /line 2/.test(e.message));
    });
  });

});
