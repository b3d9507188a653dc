import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ed25519 } from '@noble/curves/ed25519.js';
import { curveBackend, encodeHex, evaluatePolynomial, isTkmsError, randomBytes, randomScalar, type ErrorCode } from '../../core/index.ts';
import { committeeDigest, committeeToJson, parseCommittee, type Committee } from '../../core/committee.ts';
import { handoverDigest, handoverKeyJson, handoverVoteMessage, verifyHandover, type KeyEpochData, type UnsignedHandover, type VerifiedHandover } from '../../core/ceremony/handover.ts';
import { proposalDigest } from '../../core/ceremony/proposal.ts';
import { dkgSignedBytes } from '../../core/dkg/member-signatures.ts';
import { createLogger } from '../../runtime/logger.ts';
import { createIdentityFile } from '../../node/identity.ts';
import { createBackup, parseBackup, restoreBackup, writeBackupFile } from '../../node/keystore-backup.ts';
import { Keystore } from '../../node/keystore.ts';
import { openEpochStore, type NodeEpochStore } from '../../node/epoch-store.ts';
import { fetchOrigins } from '../../node/key-origins.ts';
import { parseOrigin, serializeOrigin } from '../../node/epoch-files.ts';
import fc from 'fast-check';
import { member, peerId, type Member } from '../support/test-members.ts';

/**
 * Keys a reshare moved keep their origin (the DKG public result) after the commit erased the
 * DKG-time share: old members keep it from their key file, a joiner stores it from its peers, and
 * both publish it after any restart and restore (node/epoch-store.ts, node/key-origins.ts).
 */
const PASSWORD = 'origins-test-password';
const SCRYPT = { N: 2 ** 14, r: 8, p: 1 };

function committee(members: Member[], epoch: number, t = 2): Committee {
  return parseCommittee({
    committeeId: 'origins-test',
    epoch,
    t,
    members: members.map((m) => ({ id: m.id, peerId: peerId(m.publicKey), multiaddrs: [`/ip4/127.0.0.1/tcp/${4000 + m.id}`] })),
  });
}

function deal(secret: bigint, t: number, ids: number[]): { shares: Map<number, bigint>; ys: Map<number, Uint8Array> } {
  const coefficients = [secret, ...Array.from({ length: t - 1 }, () => randomScalar())];
  const shares = new Map(ids.map((id) => [id, evaluatePolynomial(coefficients, BigInt(id))]));
  return { shares, ys: new Map([...shares].map(([id, s]) => [id, curveBackend().multiplyBaseSecret(s)])) };
}

function sign(members: Member[], digest: Uint8Array): Record<string, string> {
  const message = dkgSignedBytes(handoverVoteMessage(digest));
  return Object.fromEntries(members.map((m) => [String(m.id), encodeHex(ed25519.sign(message, m.secret))]));
}

async function rejectsWith(code: ErrorCode, fn: () => Promise<unknown>): Promise<void> {
  let caught: unknown;
  try {
    await fn();
  } catch (err) {
    caught = err;
  }
  assert.ok(isTkmsError(caught), `expected a ${code} TkmsError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
}

/** Committee A (1,2,3) at epoch 0 holds "alpha"; a reshare moves it to B (1,2,4) at epoch 1: 3 leaves, 4 joins. */
class World {
  readonly m = [member(1), member(2), member(3), member(4)];
  readonly a = committee([this.m[0]!, this.m[1]!, this.m[2]!], 0);
  readonly b = committee([this.m[0]!, this.m[1]!, this.m[3]!], 1);
  readonly secret = randomScalar();
  readonly group = curveBackend().multiplyBaseSecret(this.secret);
  readonly old = deal(this.secret, 2, [1, 2, 3]);
  readonly next = deal(this.secret, 2, [1, 2, 4]);
  readonly proposalId = encodeHex(proposalDigest({ from: this.a, to: this.b, keyIds: ['alpha'] }));
  readonly newData: KeyEpochData = { keyId: 'alpha', epoch: 1, t: 2, groupPublicKey: this.group, verificationShares: this.next.ys };
  readonly origin: Record<string, unknown> = {
    keyId: 'alpha',
    committeeId: this.a.committeeId,
    sessionId: encodeHex(randomBytes(16)),
    t: 2,
    n: 3,
    groupPublicKey: encodeHex(this.group),
    verificationShares: Object.fromEntries([...this.old.ys].map(([id, y]) => [String(id), encodeHex(y)])),
    qualified: [1, 2, 3],
    transcriptHash: encodeHex(randomBytes(32)),
    signatures: {},
  };
  readonly handover: VerifiedHandover;

  constructor() {
    const unsigned: UnsignedHandover = {
      v: 1,
      committeeId: this.a.committeeId,
      fromEpoch: 0,
      fromDigest: encodeHex(committeeDigest(this.a)),
      to: committeeToJson(this.b),
      keys: [handoverKeyJson(this.newData)],
      transcriptHash: encodeHex(randomBytes(32)),
    };
    const digest = handoverDigest(unsigned, this.a, this.b);
    this.handover = verifyHandover({ ...unsigned, signatures: { from: sign([this.m[0]!, this.m[1]!], digest), to: sign([this.m[0]!, this.m[1]!, this.m[3]!], digest) } }, this.a);
  }
}

describe('epoch store: the origins of moved keys', function () {
  this.timeout(60_000);
  const dirs: string[] = [];
  const open: Keystore[] = [];
  const world = new World();

  after(async () => {
    for (const k of open) k.close();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  async function tempDir(): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'tkms-origins-'));
    dirs.push(dir);
    return dir;
  }

  async function keystore(dir: string, password = PASSWORD): Promise<Keystore> {
    const k = await Keystore.open(dir, password, { newKeystoreScrypt: SCRYPT });
    open.push(k);
    return k;
  }

  /** Node `id` after the commit: members of A held the DKG key file, node 4 joined with none. */
  async function committed(id: number): Promise<{ dir: string; store: NodeEpochStore; reopen: () => Promise<NodeEpochStore> }> {
    const dir = await tempDir();
    const ks = await keystore(dir);
    if (id <= 3) await ks.save({ keyId: 'alpha', share: world.old.shares.get(id)!, publicResult: world.origin });
    const file = id <= 3 ? world.a : world.b;
    const reopen = async () => openEpochStore({ keystore: await keystore(dir), committee: file, selfPublicKey: world.m[id - 1]!.publicKey });
    const store = await reopen();
    if (id !== 3) await store.savePending(world.proposalId, new Map([['alpha', world.next.shares.get(id)!]]), [world.newData]);
    await store.commit(world.handover, world.proposalId);
    return { dir, store, reopen };
  }

  it('a staying member erases the DKG-time share but keeps its public result, and publishes it after a reopen', async () => {
    const { dir, store, reopen } = await committed(1);
    const names = await readdir(dir);
    assert.ok(!names.includes('alpha.key.json'));
    assert.ok(names.includes('alpha.origin.json'));
    const text = await readFile(join(dir, 'alpha.origin.json'), 'utf8');
    assert.ok(!text.includes('ciphertext'), 'the origin is the public result only');
    assert.deepEqual(store.origins(), [world.origin]);
    assert.deepEqual(store.missingOrigins(), []);
    const after = await reopen();
    assert.deepEqual(after.origins(), [world.origin]);
    assert.deepEqual(after.missingOrigins(), []);
  });

  it('a crash after the certificate, before the erasure: the reopen keeps the origin, then erases the share', async () => {
    const dir = await tempDir();
    const ks = await keystore(dir);
    await ks.save({ keyId: 'alpha', share: world.old.shares.get(2)!, publicResult: world.origin });
    const store = await openEpochStore({ keystore: ks, committee: world.a, selfPublicKey: world.m[1]!.publicKey });
    await store.savePending(world.proposalId, new Map([['alpha', world.next.shares.get(2)!]]), [world.newData]);
    // The commit point alone, as a crash right after it leaves the directory.
    await writeFile(join(dir, 'handover.e0.json'), `${JSON.stringify(world.handover.certificate)}\n`);
    const reopened = await openEpochStore({ keystore: await keystore(dir), committee: world.a, selfPublicKey: world.m[1]!.publicKey });
    assert.equal(reopened.served().committee.epoch, 1);
    assert.deepEqual(reopened.origins(), [world.origin]);
    const names = await readdir(dir);
    assert.ok(!names.includes('alpha.key.json') && names.includes('alpha.origin.json'));
  });

  it('a member that left keeps neither the share nor the origin', async () => {
    const { dir, store } = await committed(3);
    assert.deepEqual((await readdir(dir)).filter((n) => n.startsWith('alpha')), []);
    assert.deepEqual(store.origins(), []);
  });

  it('a joiner misses the origin until it stores one naming the certified group key; it survives a reopen', async () => {
    const { store, reopen } = await committed(4);
    assert.deepEqual(store.missingOrigins(), ['alpha']);
    const other = encodeHex(curveBackend().multiplyBaseSecret(randomScalar()));
    await rejectsWith('bad_request', () => store.saveOrigin({ ...world.origin, groupPublicKey: other }));
    await rejectsWith('bad_request', () => store.saveOrigin({ ...world.origin, keyId: 'beta' }));
    await rejectsWith('bad_request', () => store.saveOrigin({ ...world.origin, epoch: 1 }));
    assert.equal(await store.saveOrigin(world.origin), true);
    assert.equal(await store.saveOrigin(world.origin), false, 'held already');
    assert.deepEqual(store.missingOrigins(), []);
    assert.deepEqual((await reopen()).origins(), [world.origin]);
  });

  it('an origin file edited to another group key is keystore_corrupt on open', async () => {
    const { dir, reopen } = await committed(2);
    const other = encodeHex(curveBackend().multiplyBaseSecret(randomScalar()));
    await rm(join(dir, 'alpha.origin.json'));
    await writeFile(join(dir, 'alpha.origin.json'), JSON.stringify({ ...world.origin, groupPublicKey: other }));
    await rejectsWith('keystore_corrupt', reopen);
  });

  describe('a joiner fetching from its peers (fetchOrigins)', () => {
    const log = createLogger('silent');

    it('takes a result whose signatures do not verify against the known committee of its epoch from nobody', async () => {
      const { store } = await committed(4);
      const asked: string[] = [];
      const stored: string[] = [];
      const left = await fetchOrigins({ store, selfPeerId: peerId(world.m[3]!.publicKey), peerIdOf: peerId, askKeys: async (peer) => (asked.push(peer), [world.origin]), onStored: (r) => stored.push(r.keyId), log });
      assert.deepEqual(left, ['alpha']);
      assert.deepEqual(stored, []);
      // The other members of the committee served, and the member that left (when every member is replaced, only they held the keys).
      assert.deepEqual(asked.sort(), [0, 1, 2].map((i) => peerId(world.m[i]!.publicKey)).sort());
    });

    it('without the committee of its epoch, takes the result t members answered alike, never fewer', async () => {
      const { store } = await committed(4);
      const blind = { served: () => store.served(), missingOrigins: () => store.missingOrigins(), saveOrigin: (r: Record<string, unknown>) => store.saveOrigin(r), committeeAt: () => undefined };
      const stored: string[] = [];
      const member1 = peerId(world.m[0]!.publicKey);
      const forged = { ...world.origin, transcriptHash: encodeHex(randomBytes(32)) };
      // Members 1 and 2 answer different results: below t = 2 for either.
      assert.deepEqual(await fetchOrigins({ store: blind, selfPeerId: peerId(world.m[3]!.publicKey), peerIdOf: peerId, askKeys: async (peer) => [peer === member1 ? world.origin : forged], onStored: (r) => stored.push(r.keyId), log }), ['alpha']);
      assert.equal(stored.length, 0);
      // Junk and keys not moved here are skipped without harm.
      assert.deepEqual(await fetchOrigins({ store: blind, selfPeerId: peerId(world.m[3]!.publicKey), peerIdOf: peerId, askKeys: async () => [null, 7, { keyId: 'beta' }, { keyId: 'alpha', junk: true }, world.origin], onStored: (r) => stored.push(r.keyId), log }), []);
      assert.deepEqual(stored, ['alpha']);
      assert.deepEqual(store.origins(), [world.origin]);
    });

    it('without the committee of its epoch, a member that left does not count towards the t alike answers', async () => {
      const { store } = await committed(4);
      const blind = { served: () => store.served(), missingOrigins: () => store.missingOrigins(), saveOrigin: (r: Record<string, unknown>) => store.saveOrigin(r), committeeAt: () => undefined };
      const stored: string[] = [];
      const member1 = peerId(world.m[0]!.publicKey);
      const gone = peerId(world.m[2]!.publicKey);
      const forged = { ...world.origin, transcriptHash: encodeHex(randomBytes(32)) };
      // Member 1 (served) and member 3 (left at the handover) answer the same forged result: one served member, below t = 2.
      assert.deepEqual(await fetchOrigins({ store: blind, selfPeerId: peerId(world.m[3]!.publicKey), peerIdOf: peerId, askKeys: async (peer) => (peer === member1 || peer === gone ? [forged] : []), onStored: (r) => stored.push(r.keyId), log }), ['alpha']);
      assert.deepEqual(stored, []);
    });
  });

  it('the origin file parser: any bytes give the object naming the key or keystore_corrupt; a written origin reads back', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 512 }), fc.jsonValue().map((v) => new TextEncoder().encode(JSON.stringify(v)))), (bytes) => {
        try {
          return parseOrigin(bytes, 'alpha')['keyId'] === 'alpha';
        } catch (e) {
          return isTkmsError(e, 'keystore_corrupt');
        }
      }),
    );
    fc.assert(
      fc.property(fc.dictionary(fc.string({ maxLength: 8 }), fc.jsonValue({ maxDepth: 3 })), (fields) => {
        const origin = { ...fields, keyId: 'alpha' };
        assert.deepEqual(parseOrigin(serializeOrigin(origin), 'alpha'), JSON.parse(JSON.stringify(origin)));
      }),
    );
  });

  it('a backup carries the origins; a restore under another password publishes them again', async () => {
    const { dir } = await committed(1);
    const identityFile = join(await tempDir(), 'identity.json');
    await createIdentityFile(identityFile);
    const { bytes } = await createBackup({ keystoreDir: dir, dkgStateDir: `${dir}.dkg`, password: PASSWORD, identityFile });
    assert.deepEqual(parseBackup(bytes).origins, [world.origin]);
    const file = join(await tempDir(), 'node.tkmsbak');
    await writeBackupFile(file, bytes);
    const target = join(await tempDir(), 'keystore');
    await restoreBackup({ backupFile: file, backupPassword: PASSWORD, keystoreDir: target, dkgStateDir: `${target}.dkg`, keystorePassword: 'another password', identityFile });
    const restored = await openEpochStore({ keystore: await keystore(target, 'another password'), committee: world.a, selfPublicKey: world.m[0]!.publicKey });
    assert.equal(restored.served().committee.epoch, 1);
    assert.deepEqual(restored.origins(), [world.origin]);
  });
});
