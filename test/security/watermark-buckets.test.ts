import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { appendFile, mkdtemp, readFile, rm, stat, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateAccount, type Account } from '../../client/account.ts';
import { deriveHandleFromDigest, encodePoint, RevocationEnvelopeBody, type HandleDescriptor, proveEphemeralKey, publicKeyFromSecret, randomBytes, randomScalar, type RevocationEnvelope, signRevocation } from '../../core/index.ts';
import { GatewayStore, type StoredHandle } from '../../gateway/store.ts';
import { RevocationWatermarks, WATERMARK_BUCKETS } from '../../storage/revocation-watermarks.ts';
import { RevocationStore, type RevocationLimits } from '../../node/revocations.ts';

/**
 * A full revocation store folds the largest owner's oldest revocation into a "revoked up to T"
 * bucket of owners. If anyone can compute an owner's bucket, an attacker can make an address in a
 * victim's bucket, become the largest revoker and fill the store: each fold then revokes every
 * grant of the victim. Buckets are keyed with a random key of each store, so the attacker cannot.
 */
const NOW = Math.floor(Date.now() / 1000);
const DEPLOYMENT = { committeeId: 'committee-a' };
const LIMITS: RevocationLimits = { maxGrantLifetimeSeconds: 3_600, clockSkewSeconds: 30, perOwner: 2, max: 2 };

/** The bucket an outsider could compute before buckets were keyed. */
function publicBucket(address: string): number {
  return createHash('sha256').update(address.toLowerCase().replace(/^0x/, '')).digest().readUInt32BE(0) % WATERMARK_BUCKETS;
}

/** Two accounts in one public bucket (birthday search: a few hundred accounts on average). */
function collidingPair(): { attacker: Account; victim: Account } {
  const seen = new Map<number, Account>();
  for (let i = 0; i < 50_000; i++) {
    const account = generateAccount();
    const other = seen.get(publicBucket(account.address));
    if (other !== undefined) return { attacker: account, victim: other };
    seen.set(publicBucket(account.address), account);
  }
  throw new Error('no two accounts in one bucket');
}

function handleOf(owner: Account): { descriptor: HandleDescriptor; handle: Uint8Array } {
  const k = randomScalar();
  const digest = { keyId: 'key-1', K: encodePoint(publicKeyFromSecret(k)), nonce: randomBytes(12), ciphertextHash: randomBytes(32), owner: owner.addressBytes };
  const descriptor = { ...digest, kProof: proveEphemeralKey(k, digest) };
  return { descriptor, handle: deriveHandleFromDigest(descriptor) };
}

function revocation(owner: Account, revokedAt: number): RevocationEnvelope {
  const h = handleOf(owner);
  return { descriptor: h.descriptor, revocation: signRevocation(owner.secretKey, { handle: h.handle, grantee: randomBytes(20), revokedAt }, DEPLOYMENT) };
}

function gatewayHandle(i: number, owner: Account): StoredHandle {
  const hex = (n: number, bytes: number): string => n.toString(16).padStart(bytes * 2, '0');
  return {
    handle: `0x${hex(i, 32)}`,
    keyId: 'key-1',
    K: `0x02${hex(i, 32)}`,
    nonce: `0x${hex(i, 12)}`,
    ciphertextHash: `0x${createHash('sha256').update(new Uint8Array(1)).digest('hex')}`,
    owner: owner.address,
    kProof: `0x${hex(i, 64)}`,
    createdAt: 1_700_000_000_000 + i,
  };
}

describe('attack: aim a revocation flood at a victim\'s watermark bucket', function () {
  this.timeout(60_000);
  let root: string;
  let n = 0;
  const fresh = (): string => join(root, `${++n}`, 'revocations.log');
  let attacker: Account;
  let victim: Account;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'tkms-watermark-buckets-'));
    ({ attacker, victim } = collidingPair());
    assert.equal(publicBucket(attacker.address), publicBucket(victim.address));
  });

  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  /** The attacker's two revocations fill the store; a third owner's folds the attacker's oldest. */
  async function flood(store: RevocationStore): Promise<{ folded: RevocationEnvelope; kept: RevocationEnvelope }> {
    const folded = revocation(attacker, NOW - 10);
    const kept = revocation(attacker, NOW - 5);
    assert.equal(await store.add(folded, NOW), true);
    assert.equal(await store.add(kept, NOW), true);
    assert.equal(await store.add(revocation(generateAccount(), NOW), NOW), true);
    assert.equal(store.watermarkBuckets, 1, 'the attacker\'s oldest revocation was folded');
    return { folded, kept };
  }

  it('node: folds of an attacker in the victim\'s public bucket leave the victim\'s grants valid, also after a restart', async () => {
    const path = fresh();
    const { store } = await RevocationStore.open(path, DEPLOYMENT, LIMITS, NOW);
    const { folded, kept } = await flood(store);
    // Still in force for the attacker (any grant of theirs issued by NOW - 10)...
    assert.equal(store.revokedAt(randomBytes(32), randomBytes(20), attacker.addressBytes), NOW - 10);
    // ...and not for the victim, who revoked nothing.
    assert.equal(store.revokedAt(randomBytes(32), randomBytes(20), victim.addressBytes), undefined, 'the victim\'s grant is revoked by the attacker\'s fold');
    await store.close();
    const key = await readFile(`${path}.bucket-key`);
    // Enough superseded lines that opening compacts: the folded line leaves, its watermark is written.
    await appendFile(path, `${JSON.stringify(RevocationEnvelopeBody.encode(kept))}\n`.repeat(1_100));
    const reopened = (await RevocationStore.open(path, DEPLOYMENT, LIMITS, NOW)).store;
    assert.ok(!(await readFile(path, 'utf8')).includes(Buffer.from(folded.revocation.signature).toString('hex').slice(0, 40)), 'the folded line was compacted away');
    assert.deepEqual(await readFile(`${path}.bucket-key`), key, 'a restart keeps the key');
    assert.equal(reopened.revokedAt(folded.revocation.handle, folded.revocation.grantee, attacker.addressBytes), NOW - 10, 'the watermark survives restart and compaction');
    assert.equal(reopened.revokedAt(randomBytes(32), randomBytes(20), victim.addressBytes), undefined);
    await reopened.close();
  });

  it('gateway: folds of an attacker in the victim\'s public bucket leave the victim\'s grants valid, also after a restart', async () => {
    const dir = join(root, 'gateway');
    const open = (): Promise<GatewayStore> => GatewayStore.open(dir, { now: () => NOW, limits: { revocations: { perOwner: 2, max: 2 } } });
    const store = await open();
    const [attackerHandle, victimHandle, otherHandle] = [gatewayHandle(1, attacker), gatewayHandle(2, victim), gatewayHandle(3, generateAccount())];
    for (const h of [attackerHandle, victimHandle, otherHandle]) await store.putHandle(h, new Uint8Array(1));
    const rev = (handle: StoredHandle, grantee: string, revokedAt: number) => ({ handle: handle.handle, grantee, revokedAt, signature: `rev-${grantee}` });
    assert.equal(await store.putRevocation(rev(attackerHandle, 'a', NOW - 10)), true);
    assert.equal(await store.putRevocation(rev(attackerHandle, 'b', NOW - 5)), true);
    assert.equal(await store.putRevocation(rev(otherHandle, 'c', NOW)), true);
    assert.equal(store.revokedAt(attackerHandle.handle, 'anyone'), NOW - 10, 'the attacker\'s oldest revocation was folded');
    assert.equal(store.revokedAt(victimHandle.handle, 'bob'), undefined, 'the victim\'s grant is revoked by the attacker\'s fold');
    await store.close();
    const key = await readFile(join(dir, 'store.bucket-key'));
    assert.equal(key.length, 32);
    assert.equal((await stat(join(dir, 'store.bucket-key'))).mode & 0o777, 0o600);
    const reopened = await open();
    assert.deepEqual(await readFile(join(dir, 'store.bucket-key')), key, 'a restart keeps the key');
    assert.equal(reopened.revokedAt(attackerHandle.handle, 'anyone'), NOW - 10, 'the folded revocation survives restart');
    assert.equal(reopened.revokedAt(victimHandle.handle, 'bob'), undefined);
    await reopened.close();
  });

  it('each store has its own 32-byte key (mode 0600): the same owners fall into different buckets', async () => {
    const [a, b] = [fresh(), fresh()];
    for (const path of [a, b]) await (await RevocationStore.open(path, DEPLOYMENT, LIMITS, NOW)).store.close();
    const [keyA, keyB] = [await readFile(`${a}.bucket-key`), await readFile(`${b}.bucket-key`)];
    assert.equal(keyA.length, 32);
    assert.notDeepEqual(keyA, keyB);
    assert.equal((await stat(`${a}.bucket-key`)).mode & 0o777, 0o600);
    const [marksA, marksB] = [new RevocationWatermarks(keyA, (t) => t), new RevocationWatermarks(keyB, (t) => t)];
    const owners = Array.from({ length: 16 }, () => generateAccount().address);
    const differ = owners.filter((o) => marksA.bucketOf(o) !== marksB.bucketOf(o)).length;
    assert.ok(differ >= 15, `only ${differ} of 16 owners fall into different buckets`);
    // Neither store's buckets are the public ones.
    assert.ok(owners.filter((o) => marksA.bucketOf(o) === publicBucket(o)).length <= 1);
  });

  it('a lost bucket key fails closed: the log\'s watermarks then cover every owner', async () => {
    const path = fresh();
    const { store } = await RevocationStore.open(path, DEPLOYMENT, LIMITS, NOW);
    const { folded, kept } = await flood(store);
    await store.close();
    await appendFile(path, `${JSON.stringify(RevocationEnvelopeBody.encode(kept))}\n`.repeat(1_100));
    await (await RevocationStore.open(path, DEPLOYMENT, LIMITS, NOW)).store.close();
    assert.match(await readFile(path, 'utf8'), /"watermark"/);
    await unlink(`${path}.bucket-key`);
    const reopened = (await RevocationStore.open(path, DEPLOYMENT, LIMITS, NOW)).store;
    assert.equal(reopened.revokedAt(folded.revocation.handle, folded.revocation.grantee, attacker.addressBytes), NOW - 10);
    assert.equal(reopened.revokedAt(randomBytes(32), randomBytes(20), victim.addressBytes), NOW - 10, 'an unplaceable watermark covers every owner');
    await reopened.close();
  });
});
