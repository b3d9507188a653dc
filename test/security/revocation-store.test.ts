import assert from 'node:assert/strict';
import { createWriteStream } from 'node:fs';
import { appendFile, mkdtemp, open, readdir, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { generateAccount, type Account } from '../../client/account.ts';
import {
  deriveHandleFromDigest,
  encodePoint,
  RevocationEnvelopeBody,
  type HandleDescriptor,
  proveEphemeralKey,
  publicKeyFromSecret,
  randomBytes,
  randomScalar,
  type RevocationEnvelope,
  signRevocation,
} from '../../core/index.ts';
import { RevocationWatermarks } from '../../storage/revocation-watermarks.ts';
import { RevocationStore, type RevocationLimits } from '../../node/revocations.ts';

/**
 * The node's revocation store, attacked in process (the attacks that come over the network are in
 * revocations.test.ts): a flood of appends that would each cost an fsync, revocations kept after
 * nothing they cancel can be valid, and a log too large to open.
 */
const NOW = Math.floor(Date.now() / 1000);
const DEPLOYMENT = { committeeId: 'committee-a' };
const LIMITS: RevocationLimits = { maxGrantLifetimeSeconds: 3_600, clockSkewSeconds: 30, perOwner: 1_000, max: 10_000 };

function handleOf(owner: Account): { descriptor: HandleDescriptor; handle: Uint8Array } {
  const k = randomScalar();
  const digest = { keyId: 'key-1', K: encodePoint(publicKeyFromSecret(k)), nonce: randomBytes(12), ciphertextHash: randomBytes(32), owner: owner.addressBytes };
  const descriptor = { ...digest, kProof: proveEphemeralKey(k, digest) };
  return { descriptor, handle: deriveHandleFromDigest(descriptor) };
}

function revocation(owner: Account, h: { descriptor: HandleDescriptor; handle: Uint8Array }, revokedAt: number, grantee = randomBytes(20)): RevocationEnvelope {
  return { descriptor: h.descriptor, revocation: signRevocation(owner.secretKey, { handle: h.handle, grantee, revokedAt }, DEPLOYMENT) };
}

describe('security: the revocation store', function () {
  this.timeout(120_000);
  let root: string;
  let n = 0;
  const fresh = (): string => join(root, `${++n}`, 'revocations.log');
  const owner = generateAccount();
  let h: { descriptor: HandleDescriptor; handle: Uint8Array };

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'tkms-revocation-store-'));
    h = handleOf(owner);
  });

  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  it('attack: flood revocation appends so a real revocation waits behind one fsync each', async () => {
    const { store } = await RevocationStore.open(fresh(), DEPLOYMENT, LIMITS);
    const flood = Array.from({ length: 64 }, (_, i) => revocation(owner, h, NOW - i));
    // Every fsync of any file handle in this process, while the flood and the real one are written.
    const probe = await open(join(root, 'probe'), 'w');
    const proto = Object.getPrototypeOf(probe) as { datasync: () => Promise<void>; sync: () => Promise<void> };
    await probe.close();
    const [datasync, sync] = [proto.datasync, proto.sync];
    let fsyncs = 0;
    proto.datasync = function (this: unknown) {
      fsyncs++;
      return datasync.call(this);
    };
    proto.sync = function (this: unknown) {
      fsyncs++;
      return sync.call(this);
    };
    try {
      const real = revocation(owner, h, NOW);
      const results = await Promise.all([...flood.map((e) => store.add(e, NOW)), store.add(real, NOW)]);
      assert.ok(results.every((r) => r === true), 'every revocation stored');
    } finally {
      proto.datasync = datasync;
      proto.sync = sync;
    }
    assert.equal(store.size, 65);
    // Appends that arrive while one is being written go out together: a few fsyncs, not 65.
    assert.ok(fsyncs >= 1 && fsyncs <= 4, `${fsyncs} fsyncs for 65 concurrent revocations`);
    console.log(`      65 concurrent revocations: ${fsyncs} fsyncs`);
    await store.close();
  });

  it('a revocation is kept until revokedAt + maxGrantLifetimeSeconds + skew, then dropped in expiry order', async () => {
    const path = fresh();
    const { store } = await RevocationStore.open(path, DEPLOYMENT, LIMITS);
    const span = LIMITS.maxGrantLifetimeSeconds + LIMITS.clockSkewSeconds;
    const [a, b, c] = [revocation(owner, h, NOW - 100), revocation(owner, h, NOW - 10), revocation(owner, h, NOW - 50)];
    for (const e of [a, b, c]) assert.equal(await store.add(e, NOW), true);
    // Already past its lifetime: nothing it could cancel is valid, so it is not kept (nor forwarded).
    assert.equal(await store.add(revocation(owner, h, NOW - span - 1), NOW), false);
    assert.equal(store.size, 3);
    // At NOW - 100 + span + 1, only a has expired; 40 s later c too; b stays.
    const later = NOW - 100 + span + 1;
    assert.equal(await store.add(revocation(owner, h, later - 1), later), true);
    assert.equal(store.revokedAt(h.handle, a.revocation.grantee, owner.addressBytes), undefined);
    assert.equal(store.revokedAt(h.handle, c.revocation.grantee, owner.addressBytes), NOW - 50);
    assert.equal(await store.add(revocation(owner, h, later + 40), later + 51), true);
    assert.equal(store.revokedAt(h.handle, c.revocation.grantee, owner.addressBytes), undefined);
    assert.equal(store.revokedAt(h.handle, b.revocation.grantee, owner.addressBytes), NOW - 10);
    assert.equal(store.size, 3);
    await store.close();
    // And at restart, expired lines are not loaded.
    const reopened = await RevocationStore.open(path, DEPLOYMENT, LIMITS, later + 51);
    assert.equal(reopened.store.size, 3);
    assert.equal(reopened.store.revokedAt(h.handle, a.revocation.grantee, owner.addressBytes), undefined);
    await reopened.store.close();
  });

  it('per-owner quota; a full store never refuses a revocation, and the one it makes room from stays in force (watermark)', async () => {
    const path = fresh();
    const limits = { ...LIMITS, perOwner: 3, max: 5 };
    const { store } = await RevocationStore.open(path, DEPLOYMENT, limits);
    const [m1, m2, alice] = [generateAccount(), generateAccount(), generateAccount()];
    const [h1, h2, ha] = [handleOf(m1), handleOf(m2), handleOf(alice)];
    for (let i = 0; i < 3; i++) assert.equal(await store.add(revocation(m1, h1, NOW - 10), NOW), true);
    await assert.rejects(store.add(revocation(m1, h1, NOW), NOW), (e: any) => e.code === 'rate_limited');
    for (let i = 0; i < 2; i++) assert.equal(await store.add(revocation(m2, h2, NOW - 5), NOW), true);
    assert.equal(store.size, 5);
    // Full: m1 (the largest) gives way, but its oldest revocation is folded, not forgotten.
    const first = store.page(0, 1).items[0]!;
    assert.equal(await store.add(revocation(m2, h2, NOW - 5), NOW), true);
    assert.equal(store.size, 5);
    assert.equal(store.revokedAt(first.revocation.handle, first.revocation.grantee, m1.addressBytes), NOW - 10, 'still revoked (watermark)');
    assert.equal(store.watermarkBuckets, 1);
    // Alice is never refused for room, however many she adds up to her own quota.
    const aliceGrantees = [randomBytes(20), randomBytes(20), randomBytes(20)];
    for (const g of aliceGrantees) assert.equal(await store.add(revocation(alice, ha, NOW, g), NOW), true);
    assert.equal(store.size, 5);
    for (const g of aliceGrantees) assert.equal(store.revokedAt(ha.handle, g, alice.addressBytes), NOW);
    // Every revocation made is still in force, held or folded; a re-sent folded one is "known".
    assert.equal(await store.add(first, NOW), false);
    await store.close();
    // A restart (the folded lines are still in the log) and a compaction (they leave it) keep them.
    const reopened = (await RevocationStore.open(path, DEPLOYMENT, limits, NOW)).store;
    assert.equal(reopened.revokedAt(first.revocation.handle, first.revocation.grantee, m1.addressBytes), NOW - 10);
    for (const g of aliceGrantees) assert.equal(reopened.revokedAt(ha.handle, g, alice.addressBytes), NOW);
    await reopened.close();
  });

  it('watermarks: only the folded owner\'s bucket is covered, they survive compaction, and they expire on schedule', async () => {
    const path = fresh();
    const limits = { ...LIMITS, perOwner: 1, max: 2 };
    const span = LIMITS.maxGrantLifetimeSeconds + LIMITS.clockSkewSeconds;
    const { store } = await RevocationStore.open(path, DEPLOYMENT, limits);
    const [alice, b, c] = [generateAccount(), generateAccount(), generateAccount()];
    const aliceRev = revocation(alice, handleOf(alice), NOW - 100);
    assert.equal(await store.add(aliceRev, NOW), true);
    assert.equal(await store.add(revocation(b, handleOf(b), NOW), NOW), true);
    const cRev = revocation(c, handleOf(c), NOW);
    assert.equal(await store.add(cRev, NOW), true);
    const someHandle = randomBytes(32);
    const someGrantee = randomBytes(20);
    assert.equal(store.revokedAt(aliceRev.revocation.handle, aliceRev.revocation.grantee, alice.addressBytes), NOW - 100);
    // Any handle of an owner in alice's bucket (availability), none of an owner in another.
    const marks = new RevocationWatermarks(await readFile(`${path}.bucket-key`), (upTo) => upTo + span);
    const bucket = marks.bucketOf(alice.address);
    let sameBucket: Uint8Array;
    let otherBucket: Uint8Array;
    do sameBucket = randomBytes(20);
    while (marks.bucketOf(Buffer.from(sameBucket).toString('hex')) !== bucket);
    do otherBucket = randomBytes(20);
    while (marks.bucketOf(Buffer.from(otherBucket).toString('hex')) === bucket);
    assert.equal(store.revokedAt(someHandle, someGrantee, sameBucket), NOW - 100);
    assert.equal(store.revokedAt(someHandle, someGrantee, otherBucket), undefined);
    await store.close();
    // Enough repeated lines that opening compacts: alice's line (folded) leaves, its watermark is written.
    const stale = `${JSON.stringify(RevocationEnvelopeBody.encode(cRev))}\n`;
    await appendFile(path, stale.repeat(1_100));
    const reopened = (await RevocationStore.open(path, DEPLOYMENT, limits, NOW)).store;
    await reopened.close();
    const text = await readFile(path, 'utf8');
    assert.ok(text.length < 4 * stale.length, `compacted to ${text.length} bytes`);
    assert.ok(text.includes(`{"watermark":{"bucket":${bucket},"upTo":${NOW - 100}}}`), 'watermark in the log');
    assert.ok(!text.includes(Buffer.from(aliceRev.revocation.signature).toString('hex').slice(0, 40)), 'alice\'s line is gone');
    // Raising max afterwards cannot bring the dropped line back, but the watermark holds it.
    const afterCompaction = (await RevocationStore.open(path, DEPLOYMENT, { ...LIMITS, max: 100 }, NOW)).store;
    assert.equal(afterCompaction.size, 2);
    assert.equal(afterCompaction.revokedAt(aliceRev.revocation.handle, aliceRev.revocation.grantee, alice.addressBytes), NOW - 100);
    await afterCompaction.close();
    // Expiry: kept up to NOW - 100 + span, when nothing issued by NOW - 100 can still be valid.
    marks.raise(alice.address, NOW - 100);
    assert.deepEqual(marks.live(NOW - 100 + span), [{ bucket, upTo: NOW - 100 }]);
    assert.deepEqual(marks.live(NOW - 100 + span + 1), []);
    assert.equal(marks.upTo(alice.address), undefined);
  });

  it('attack: with the disk full, every revocation rewrites the whole log and leaves a temp file behind', async () => {
    const path = fresh();
    const { store } = await RevocationStore.open(path, DEPLOYMENT, LIMITS);
    const kept = revocation(owner, h, NOW - 1);
    assert.equal(await store.add(kept, NOW), true);
    await store.close();
    // Superseded lines enough that the log asks to be compacted at open and at every add.
    await appendFile(path, `${JSON.stringify(RevocationEnvelopeBody.encode(kept))}\n`.repeat(1_100));
    // Every write of a rewrite fails as on a full disk (appends do not go through FileHandle.write).
    const probe = await open(join(root, 'probe-write'), 'w');
    const proto = Object.getPrototypeOf(probe) as { write: (...a: unknown[]) => Promise<unknown> };
    await probe.close();
    const write = proto.write;
    let rewrites = 0;
    proto.write = function () {
      rewrites++;
      return Promise.reject(Object.assign(new Error('no space left on device'), { code: 'ENOSPC' }));
    };
    try {
      const opened = await RevocationStore.open(path, DEPLOYMENT, LIMITS, NOW);
      assert.equal(rewrites, 1, 'compaction at open was tried once, and its failure did not stop the node');
      for (let i = 0; i < 30; i++) assert.equal(await opened.store.add(revocation(owner, h, NOW), NOW), true);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(rewrites, 1, 'no rewrite retried on each add');
      assert.equal(opened.store.size, 31);
      await opened.store.close();
    } finally {
      proto.write = write;
    }
    const left = (await readdir(dirname(path))).filter((f) => f.endsWith('.tmp'));
    assert.deepEqual(left, [], 'no temp file left behind');
    // Once writes work again, the log is compacted after it has grown by the margin.
    const reopened = (await RevocationStore.open(path, DEPLOYMENT, LIMITS, NOW)).store;
    assert.equal(reopened.size, 31);
    assert.ok(reopened.logBytes < 40 * 4096, `compacted to ${reopened.logBytes} bytes`);
    await reopened.close();
  });

  it('opening a log larger than the old 256 MiB limit works, holds only live entries, and compacts it', async function () {
    this.timeout(180_000);
    const path = fresh();
    const { store } = await RevocationStore.open(path, DEPLOYMENT, LIMITS);
    const grantee = randomBytes(20);
    assert.equal(await store.add(revocation(owner, h, NOW - 1, grantee), NOW), true);
    await store.close();
    // The same pair re-sent with ever later revokedAt, as an attacker could: lines of which one is live.
    const line = JSON.stringify(RevocationEnvelopeBody.encode(revocation(owner, h, NOW - 2_000_000, grantee)));
    const out = createWriteStream(path, { flags: 'a' });
    const target = 257 * 1024 * 1024;
    let written = 0;
    const chunk: string[] = [];
    for (let i = 0; written < target; i++) {
      const l = `${line.replace(`"revokedAt":${NOW - 2_000_000}`, `"revokedAt":${NOW - 2_000_000 + (i % 1_000_000)}`)}\n`;
      chunk.push(l);
      written += l.length;
      if (chunk.length === 4096) {
        if (!out.write(chunk.join(''))) await new Promise<void>((r) => out.once('drain', () => r()));
        chunk.length = 0;
      }
    }
    out.write(chunk.join(''));
    await new Promise<void>((r, j) => out.end((e?: Error | null) => (e ? j(e) : r())));
    const before = (await stat(path)).size;
    assert.ok(before > 256 * 1024 * 1024, `log is ${before} bytes`);
    const opened = await RevocationStore.open(path, DEPLOYMENT, LIMITS, NOW);
    assert.equal(opened.store.size, 1);
    assert.equal(opened.store.revokedAt(h.handle, grantee, owner.addressBytes), NOW - 1);
    const after = (await stat(path)).size;
    assert.ok(after < 4096, `compacted at open to ${after} bytes`);
    console.log(`      opened a ${before}-byte log (${opened.dropped} lines dropped), compacted to ${after} bytes`);
    await opened.store.close();
  });
});
