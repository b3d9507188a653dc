import assert from 'node:assert/strict';
import { cp, mkdtemp, readFile, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ed25519 } from '@noble/curves/ed25519.js';
import { curveBackend, encodeHex, evaluatePolynomial, isTkmsError, randomBytes, randomScalar, type ErrorCode } from '../../core/index.ts';
import { committeeDigest, committeeToJson, parseCommittee, parseCommitteeJson, type Committee } from '../../core/committee.ts';
import { handoverDigest, handoverKeyJson, handoverVoteMessage, verifyHandover, type HandoverCertificate, type KeyEpochData, type UnsignedHandover, type VerifiedHandover } from '../../core/ceremony/handover.ts';
import { proposalDigest } from '../../core/ceremony/proposal.ts';
import type { ReshareProposal } from '../../core/ceremony/types.ts';
import { dkgSignedBytes } from '../../core/dkg/member-signatures.ts';
import { createIdentityFile, loadIdentityFile } from '../../node/identity.ts';
import { createBackup, parseBackup, restoreBackup, writeBackupFile } from '../../node/keystore-backup.ts';
import { Keystore } from '../../node/keystore.ts';
import { openEpochStore, type NodeEpochStore } from '../../node/epoch-store.ts';
import { MAX_APPROVALS, MAX_VOTES } from '../../node/epoch-files.ts';
import { member, peerId, type Member } from '../support/test-members.ts';

const PASSWORD = 'epoch-store-test-password';
const SCRYPT = { N: 2 ** 14, r: 8, p: 1 };
const FIXTURE = fileURLToPath(new URL('../fixtures/keystore-70e9873/', import.meta.url));

/** A base58btc Ed25519 peer id: identity multihash of the libp2p public-key protobuf. */
function committee(members: Member[], epoch: number, t = 2): Committee {
  return parseCommittee({
    committeeId: 'epoch-store-test',
    epoch,
    t,
    members: members.map((m) => ({ id: m.id, peerId: peerId(m.publicKey), multiaddrs: [`/ip4/127.0.0.1/tcp/${4000 + m.id}`] })),
  });
}

/** One key's shares on a random degree t − 1 polynomial through `secret`. */
function deal(secret: bigint, t: number, ids: number[]): { shares: Map<number, bigint>; ys: Map<number, Uint8Array> } {
  const coefficients = [secret, ...Array.from({ length: t - 1 }, () => randomScalar())];
  const shares = new Map(ids.map((id) => [id, evaluatePolynomial(coefficients, BigInt(id))]));
  return { shares, ys: new Map([...shares].map(([id, s]) => [id, curveBackend().multiplyBaseSecret(s)])) };
}

function dkgPublicResult(keyId: string, c: Committee, groupPublicKey: Uint8Array, ys: Map<number, Uint8Array>): Record<string, unknown> {
  return {
    keyId,
    committeeId: c.committeeId,
    sessionId: encodeHex(randomBytes(16)),
    t: c.t,
    n: c.members.length,
    groupPublicKey: encodeHex(groupPublicKey),
    verificationShares: Object.fromEntries([...ys].map(([id, y]) => [String(id), encodeHex(y)])),
    qualified: c.members.map((m) => m.id),
    transcriptHash: encodeHex(randomBytes(32)),
    signatures: {},
  };
}

function sign(members: Member[], digest: Uint8Array): Record<string, string> {
  const message = dkgSignedBytes(handoverVoteMessage(digest));
  return Object.fromEntries(members.map((m) => [String(m.id), encodeHex(ed25519.sign(message, m.secret))]));
}

function signedHandover(from: Committee, to: Committee, keys: KeyEpochData[], fromSigners: Member[], toSigners: Member[]): VerifiedHandover {
  const unsigned: UnsignedHandover = {
    v: 1,
    committeeId: from.committeeId,
    fromEpoch: from.epoch,
    fromDigest: encodeHex(committeeDigest(from)),
    to: committeeToJson(to),
    keys: keys.map(handoverKeyJson),
    transcriptHash: encodeHex(randomBytes(32)),
  };
  const digest = handoverDigest(unsigned, from, to);
  return verifyHandover({ ...unsigned, signatures: { from: sign(fromSigners, digest), to: sign(toSigners, digest) } }, from);
}

/** A world: committee A (1,2,3) at epoch 0 holds key "alpha"; the reshare moves it to B (1,2,4) at epoch 1. */
class World {
  readonly m = [member(1), member(2), member(3), member(4)];
  readonly a = committee([this.m[0]!, this.m[1]!, this.m[2]!], 0);
  readonly b = committee([this.m[0]!, this.m[1]!, this.m[3]!], 1);
  readonly secret = randomScalar();
  readonly group = curveBackend().multiplyBaseSecret(this.secret);
  readonly old = deal(this.secret, 2, [1, 2, 3]);
  readonly next = deal(this.secret, 2, [1, 2, 4]);
  readonly proposal: ReshareProposal = { from: this.a, to: this.b, keyIds: ['alpha'] };
  readonly proposalId = encodeHex(proposalDigest(this.proposal));
  readonly newData: KeyEpochData = { keyId: 'alpha', epoch: 1, t: 2, groupPublicKey: this.group, verificationShares: this.next.ys };
  readonly handover: VerifiedHandover;

  constructor() {
    this.handover = signedHandover(this.a, this.b, [this.newData], [this.m[0]!, this.m[1]!], [this.m[0]!, this.m[1]!, this.m[3]!]);
  }

  publicKey(id: number): Uint8Array {
    return this.m[id - 1]!.publicKey;
  }
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

describe('epoch store', function () {
  this.timeout(60_000);
  const dirs: string[] = [];
  const open: Keystore[] = [];
  let world: World;

  before(() => {
    world = new World();
  });

  after(async () => {
    for (const k of open) k.close();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  async function tempDir(): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'tkms-epoch-store-'));
    dirs.push(dir);
    return dir;
  }

  async function keystore(dir: string): Promise<Keystore> {
    const k = await Keystore.open(dir, PASSWORD, { newKeystoreScrypt: SCRYPT });
    open.push(k);
    return k;
  }

  /** A node of committee A (id 1..3) with its epoch-0 share of alpha, or a node of B only (id 4) with none. */
  async function node(id: number): Promise<{ dir: string; reopen: () => Promise<NodeEpochStore> }> {
    const dir = await tempDir();
    const ks = await keystore(dir);
    if (id <= 3) await ks.save({ keyId: 'alpha', share: world.old.shares.get(id)!, publicResult: dkgPublicResult('alpha', world.a, world.group, world.old.ys) });
    const file = id <= 3 ? world.a : world.b;
    const reopen = async () => openEpochStore({ keystore: await keystore(dir), committee: file, selfPublicKey: world.publicKey(id) });
    return { dir, reopen };
  }

  async function pendingFiles(dir: string): Promise<string[]> {
    return (await readdir(dir)).filter((n) => n.endsWith('.share.json')).sort();
  }

  const certBytes = () => new TextEncoder().encode(`${JSON.stringify(world.handover.certificate)}\n`);

  it('serves the DKG epoch, keeps pending shares unserved, and serves the new epoch after commit and reopen', async () => {
    const { dir, reopen } = await node(1);
    const store = await reopen();
    assert.equal(store.served().committee.epoch, 0);
    assert.deepEqual(store.shares().map((s) => [s.keyId, s.share]), [['alpha', world.old.shares.get(1)]]);
    assert.equal(store.memberId(), 1);
    assert.deepEqual(store.epochKeys().map((k) => [k.keyId, k.epoch]), [['alpha', 0]]);
    assert.equal(store.committedAt(), undefined, 'nothing committed at the committee file\'s epoch');
    assert.equal(store.committeeAt(0)?.epoch, 0);
    assert.equal(store.committeeAt(1), undefined);

    await store.savePending(world.proposalId, new Map([['alpha', world.next.shares.get(1)!]]), [world.newData]);
    await store.savePending(world.proposalId, new Map([['alpha', world.next.shares.get(1)!]]), [world.newData]); // idempotent
    await rejectsWith('conflict', () => store.savePending(world.proposalId, new Map([['alpha', world.next.shares.get(2)!]]), [world.newData]));
    const beforeCommit = await reopen();
    assert.equal(beforeCommit.served().committee.epoch, 0);
    assert.equal(beforeCommit.shares()[0]!.share, world.old.shares.get(1));
    assert.equal((await beforeCommit.loadPending(world.proposalId))?.get('alpha'), world.next.shares.get(1));

    const committing = Date.now();
    await store.commit(world.handover, world.proposalId);
    await store.commit(world.handover, world.proposalId); // idempotent
    assert.equal(store.served().committee.epoch, 1);
    const committedAt = store.committedAt();
    assert.ok(committedAt !== undefined && committedAt >= committing && committedAt <= Date.now());
    // Both ends of the certificate: a DKG result of either epoch is checked against its own committee.
    assert.deepEqual(store.committeeAt(0)?.members.map((m) => m.id), world.a.members.map((m) => m.id));
    assert.deepEqual(store.committeeAt(1)?.members.map((m) => m.id), world.b.members.map((m) => m.id));
    assert.equal(store.served().handovers.length, 1);
    assert.deepEqual(store.shares().map((s) => [s.keyId, s.share, s.data.epoch]), [['alpha', world.next.shares.get(1), 1]]);
    assert.ok(!(await readdir(dir)).includes('alpha.key.json'), 'the epoch-0 share is erased');

    const after = await reopen();
    assert.equal(after.served().committee.epoch, 1);
    assert.deepEqual(after.served().handovers, [world.handover.certificate]);
    // After a restart the commit time is the certificate file's: a due refresh is not put off by the restart.
    const reopenedAt = after.committedAt();
    assert.ok(reopenedAt !== undefined && Math.abs(reopenedAt - committedAt!) < 2_000, `${reopenedAt} vs ${committedAt}`);
    assert.deepEqual(after.committeeAt(1)?.members.map((m) => m.id), world.b.members.map((m) => m.id));
    // Only epoch shares left: a missing header is still corruption, never a fresh keystore over sealed shares.
    const header = await readFile(join(dir, 'keystore.json'));
    await rm(join(dir, 'keystore.json'));
    await rejectsWith('keystore_corrupt', () => Keystore.open(dir, PASSWORD));
    await writeFile(join(dir, 'keystore.json'), header);
    assert.deepEqual(after.shares().map((s) => [s.keyId, s.share]), [['alpha', world.next.shares.get(1)]]);
    assert.deepEqual(after.epochKeys().map((k) => [k.keyId, k.epoch, encodeHex(k.groupPublicKey)]), [['alpha', 1, encodeHex(world.group)]]);
    await rejectsWith('stale_epoch', () => after.savePending(world.proposalId, new Map([['alpha', world.next.shares.get(1)!]]), [world.newData]));
  });

  it('a leaving member keeps no share after the commit', async () => {
    const { dir, reopen } = await node(3);
    const store = await reopen();
    assert.equal(store.shares().length, 1);
    await store.commit(world.handover, world.proposalId);
    assert.equal(store.served().committee.epoch, 1);
    assert.equal(store.memberId(), undefined);
    assert.deepEqual(store.shares(), []);
    assert.deepEqual((await readdir(dir)).filter((n) => n.includes('alpha')), []);
    const after = await reopen();
    assert.deepEqual(after.shares(), []);
    assert.equal(after.served().committee.epoch, 1);
    // Reopened on the same Keystore object, which listed the erased key file when it opened.
    const sameKeystore = await openEpochStore({ keystore: open.at(-2)!, committee: world.a, selfPublicKey: world.publicKey(3) });
    assert.equal(sameKeystore.served().committee.epoch, 1);
  });

  it('a joining member serves nothing until the certificate that brings it in is stored', async () => {
    const { dir, reopen } = await node(4);
    const store = await reopen();
    assert.equal(store.served().committee.epoch, 1);
    assert.deepEqual(store.shares(), []);
    await store.savePending(world.proposalId, new Map([['alpha', world.next.shares.get(4)!]]), [world.newData]);
    assert.deepEqual((await reopen()).shares(), []);
    await store.commit(world.handover, world.proposalId);
    assert.deepEqual(store.shares().map((s) => s.share), [world.next.shares.get(4)]);
    const after = await reopen();
    assert.deepEqual(after.served().handovers, [world.handover.certificate]);
    assert.deepEqual(after.shares().map((s) => s.share), [world.next.shares.get(4)]);

    // The certificate that brought it in is verified again on open, against the committee it left.
    const path = join(dir, 'handover.e0.json');
    const cert = JSON.parse(await readFile(path, 'utf8')) as HandoverCertificate;
    const [first, ...rest] = Object.keys(cert.signatures.to);
    for (const id of rest) cert.signatures.to[id] = cert.signatures.to[first!]!; // one valid arriving signature, below the quorum of 2
    await rm(path);
    await writeFile(path, JSON.stringify(cert));
    await rejectsWith('keystore_corrupt', reopen);
    await rm(path);
    await writeFile(path, certBytes());
    assert.equal((await reopen()).shares().length, 1);
    await rm(join(dir, 'membership.e0.json'));
    await rejectsWith('keystore_corrupt', reopen);
  });

  describe('a crash at each step of the commit reopens as the old epoch or the new one, never a mix', () => {
    it('pending shares without the certificate: the old epoch, pending kept', async () => {
      const { dir, reopen } = await node(2);
      await (await reopen()).savePending(world.proposalId, new Map([['alpha', world.next.shares.get(2)!]]), [world.newData]);
      const store = await reopen();
      assert.equal(store.served().committee.epoch, 0);
      assert.deepEqual(store.shares().map((s) => [s.share, s.data.epoch]), [[world.old.shares.get(2), 0]]);
      assert.equal((await pendingFiles(dir)).length, 1);
    });

    it('the certificate stored, old share not yet erased: the new epoch, and the old share erased on open', async () => {
      const { dir, reopen } = await node(2);
      await (await reopen()).savePending(world.proposalId, new Map([['alpha', world.next.shares.get(2)!]]), [world.newData]);
      await writeFile(join(dir, 'handover.e0.json'), certBytes(), { mode: 0o600 });
      assert.ok((await readdir(dir)).includes('alpha.key.json'));
      const store = await reopen();
      assert.equal(store.served().committee.epoch, 1);
      assert.deepEqual(store.shares().map((s) => [s.share, s.data.epoch]), [[world.next.shares.get(2), 1]]);
      assert.ok(!(await readdir(dir)).includes('alpha.key.json'));
      await store.commit(world.handover, world.proposalId); // the runner re-running the commit after the restart
      assert.equal(store.served().committee.epoch, 1);
    });

    it('the certificate stored without this member\'s new share: the new epoch with no share, never the old one', async () => {
      const { dir, reopen } = await node(2);
      await writeFile(join(dir, 'handover.e0.json'), certBytes(), { mode: 0o600 });
      const store = await reopen();
      assert.equal(store.served().committee.epoch, 1);
      assert.deepEqual(store.shares(), []);
    });

    it('shares of another proposal at the new epoch are never served and are erased', async () => {
      const { dir, reopen } = await node(1);
      const other = encodeHex(randomBytes(32));
      const rival = deal(world.secret, 2, [1, 2, 4]);
      const rivalData: KeyEpochData = { ...world.newData, verificationShares: rival.ys };
      const store = await reopen();
      await store.savePending(other, new Map([['alpha', rival.shares.get(1)!]]), [rivalData]);
      await store.savePending(world.proposalId, new Map([['alpha', world.next.shares.get(1)!]]), [world.newData]);
      await writeFile(join(dir, 'handover.e0.json'), certBytes(), { mode: 0o600 });
      const after = await reopen();
      assert.deepEqual(after.shares().map((s) => s.share), [world.next.shares.get(1)]);
      assert.deepEqual(await pendingFiles(dir), [`alpha.e1.${world.proposalId.slice(2)}.share.json`]);
    });
  });

  it('serves a key a DKG made after a commit, and a second handover (a refresh) moves both keys', async () => {
    const { dir, reopen } = await node(1);
    const ks = await keystore(dir);
    const store = await openEpochStore({ keystore: ks, committee: world.a, selfPublicKey: world.publicKey(1) });
    await store.savePending(world.proposalId, new Map([['alpha', world.next.shares.get(1)!]]), [world.newData]);
    await store.commit(world.handover, world.proposalId);

    const betaSecret = randomScalar();
    const betaGroup = curveBackend().multiplyBaseSecret(betaSecret);
    const beta = deal(betaSecret, 2, [1, 2, 4]);
    await ks.save({ keyId: 'beta', share: beta.shares.get(1)!, publicResult: { ...dkgPublicResult('beta', world.b, betaGroup, beta.ys), epoch: 1 } });
    const noted = await store.noteDkgKey('beta');
    assert.equal(noted.share, beta.shares.get(1));
    assert.deepEqual(store.epochKeys().map((k) => [k.keyId, k.epoch]), [['alpha', 1], ['beta', 1]]);
    assert.deepEqual((await reopen()).shares().map((x) => x.keyId), ['alpha', 'beta']);
    await ks.save({ keyId: 'gamma', share: 5n, publicResult: dkgPublicResult('gamma', world.a, betaGroup, beta.ys) });
    await rejectsWith('stale_epoch', () => store.noteDkgKey('gamma'));
    await rm(join(dir, 'gamma.key.json'));

    // Refresh of B at epoch 1 to B′ at epoch 2: same members, new shares for both keys.
    const b2 = parseCommittee({ ...committeeToJson(world.b), epoch: 2 });
    const alpha2 = deal(world.secret, 2, [1, 2, 4]);
    const beta2 = deal(betaSecret, 2, [1, 2, 4]);
    const data2: KeyEpochData[] = [
      { keyId: 'alpha', epoch: 2, t: 2, groupPublicKey: world.group, verificationShares: alpha2.ys },
      { keyId: 'beta', epoch: 2, t: 2, groupPublicKey: betaGroup, verificationShares: beta2.ys },
    ];
    const signers = [world.m[0]!, world.m[1]!, world.m[3]!];
    const refresh = signedHandover(world.b, b2, data2, signers, signers);
    const refreshId = encodeHex(proposalDigest({ from: world.b, to: b2, keyIds: ['alpha', 'beta'] }));
    // A certificate that drops beta is refused.
    await rejectsWith('dkg_failed', () => store.commit(signedHandover(world.b, b2, [data2[0]!], signers, signers), refreshId));
    await store.savePending(refreshId, new Map([['alpha', alpha2.shares.get(1)!], ['beta', beta2.shares.get(1)!]]), data2);
    await store.commit(refresh, refreshId);
    const after = await reopen();
    assert.equal(after.served().committee.epoch, 2);
    assert.equal(after.served().handovers.length, 2);
    assert.deepEqual(after.shares().map((x) => [x.keyId, x.share]), [['alpha', alpha2.shares.get(1)], ['beta', beta2.shares.get(1)]]);
    assert.deepEqual((await readdir(dir)).filter((n) => n.endsWith('.key.json') || n.endsWith('.share.json')).sort(), [
      `alpha.e2.${refreshId.slice(2)}.share.json`,
      `beta.e2.${refreshId.slice(2)}.share.json`,
    ]);
  });

  it('refuses a certificate that does not leave the served epoch', async () => {
    const { reopen } = await node(4);
    const joined = await reopen();
    await joined.commit(world.handover, world.proposalId);
    const later = new World();
    await rejectsWith('stale_epoch', () => joined.commit(later.handover, later.proposalId));
  });

  it('a tampered certificate file is keystore_corrupt', async () => {
    const { dir, reopen } = await node(1);
    await (await reopen()).commit(world.handover, world.proposalId);
    const path = join(dir, 'handover.e0.json');
    const cert = JSON.parse(await readFile(path, 'utf8')) as HandoverCertificate;
    cert.transcriptHash = encodeHex(randomBytes(32));
    await rm(path);
    await writeFile(path, JSON.stringify(cert));
    await rejectsWith('keystore_corrupt', reopen);
    await rm(path);
    await writeFile(path, JSON.stringify(world.handover.certificate).replace('"fromEpoch":0', '"fromEpoch":1'));
    await rejectsWith('keystore_corrupt', reopen);
  });

  it('a share file moved to another epoch name fails authentication', async () => {
    const { dir, reopen } = await node(1);
    const store = await reopen();
    await store.savePending(world.proposalId, new Map([['alpha', world.next.shares.get(1)!]]), [world.newData]);
    const [name] = await pendingFiles(dir);
    await rename(join(dir, name!), join(dir, name!.replace('.e1.', '.e2.')));
    await rejectsWith('keystore_corrupt', () => store.loadPending(world.proposalId));
    // A share sealed for epoch 2 put under the served epoch-1 name: refused at open.
    await rm(join(dir, name!.replace('.e1.', '.e2.')));
    const later = await reopen();
    await later.savePending(world.proposalId, new Map([['alpha', world.next.shares.get(1)!]]), [world.newData]);
    await later.commit(world.handover, world.proposalId);
    assert.equal(later.shares().length, 1);
    await later.savePending(world.proposalId, new Map([['alpha', world.next.shares.get(1)!]]), [{ ...world.newData, epoch: 2 }]);
    assert.equal((await reopen()).shares().length, 1, 'epoch-2 pending shares leave the served one untouched');
    await rm(join(dir, name!));
    await rename(join(dir, name!.replace('.e1.', '.e2.')), join(dir, name!));
    await rejectsWith('keystore_corrupt', reopen);
  });

  it('the vote lock survives a reopen and refuses a second, different vote', async () => {
    const { dir, reopen } = await node(1);
    const store = await reopen();
    const vote = randomBytes(64);
    assert.equal(store.priorVote(world.proposalId), undefined);
    await store.recordVote(world.proposalId, vote);
    await store.recordVote(world.proposalId, vote);
    const after = await reopen();
    assert.deepEqual(after.priorVote(world.proposalId), vote);
    await rejectsWith('conflict', () => after.recordVote(world.proposalId, randomBytes(64)));
    await rejectsWith('bad_request', () => after.recordVote(world.proposalId, new Uint8Array(5000)));
    await rejectsWith('bad_request', () => after.recordVote('not-a-proposal', vote));
    assert.deepEqual((await readdir(dir)).filter((n) => n.startsWith('vote.')), [`vote.${world.proposalId.slice(2)}.json`]);
  });

  it(`at most ${MAX_VOTES} vote files are kept: votes of proposals not approved or done are pruned first`, async () => {
    const { dir, reopen } = await node(1);
    const store = await reopen();
    await store.saveApproval({ proposalId: world.proposalId, proposal: world.proposal, status: 'approved', approvedAt: new Date().toISOString() });
    const kept = randomBytes(64);
    await store.recordVote(world.proposalId, kept);
    for (let i = 0; i < MAX_VOTES + 5; i++) await store.recordVote(encodeHex(randomBytes(32)), randomBytes(64));
    const votes = (await readdir(dir)).filter((n) => n.startsWith('vote.'));
    assert.ok(votes.length <= MAX_VOTES, `${votes.length} vote files`);
    assert.deepEqual((await reopen()).priorVote(world.proposalId), kept);
  });

  it('approvals: a cancellation is a new record, survives a reopen, and at most 64 are kept', async () => {
    const { dir, reopen } = await node(1);
    const store = await reopen();
    const approvedAt = new Date().toISOString();
    await store.saveApproval({ proposalId: world.proposalId, proposal: world.proposal, status: 'approved', approvedAt });
    await store.saveApproval({ proposalId: world.proposalId, proposal: world.proposal, status: 'cancelled', approvedAt });
    assert.deepEqual((await readdir(dir)).filter((n) => n.startsWith('approval.')).sort(), ['approval.0.json', 'approval.1.json']);
    assert.deepEqual((await reopen()).approvals().map((a) => [a.proposalId, a.status]), [[world.proposalId, 'cancelled']]);
    await rejectsWith('bad_request', () => store.saveApproval({ proposalId: encodeHex(randomBytes(32)), proposal: world.proposal, status: 'approved', approvedAt }));

    const proposals = Array.from({ length: MAX_APPROVALS }, (_, i) => {
      const to = parseCommittee({ ...committeeToJson(world.b), refreshIntervalSeconds: 60 + i });
      const proposal: ReshareProposal = { from: world.a, to, keyIds: ['alpha'] };
      return { proposal, proposalId: encodeHex(proposalDigest(proposal)) };
    });
    // 63 more fit beside the cancelled one; the 64th new one prunes the cancelled one.
    for (const p of proposals) await store.saveApproval({ ...p, status: 'approved', approvedAt });
    assert.equal(store.approvals().length, MAX_APPROVALS);
    assert.ok(!store.approvals().some((a) => a.proposalId === world.proposalId));
    const extra: ReshareProposal = { from: world.a, to: parseCommittee({ ...committeeToJson(world.b), refreshIntervalSeconds: 10_000 }), keyIds: ['alpha'] };
    await rejectsWith('conflict', () => store.saveApproval({ proposalId: encodeHex(proposalDigest(extra)), proposal: extra, status: 'approved', approvedAt }));
    assert.equal((await reopen()).approvals().length, MAX_APPROVALS);
  });

  describe('backups', () => {
    async function backup(dir: string, identityFile: string): Promise<string> {
      const { bytes, keyIds } = await createBackup({ keystoreDir: dir, dkgStateDir: `${dir}.dkg`, password: PASSWORD, identityFile });
      assert.deepEqual(keyIds, ['alpha']);
      const file = join(await tempDir(), 'node.tkmsbak');
      await writeBackupFile(file, bytes);
      return file;
    }

    it('carry the epoch shares and certificates: a restore serves the epoch the node had reached', async () => {
      const { dir, reopen } = await node(1);
      const store = await reopen();
      await store.savePending(world.proposalId, new Map([['alpha', world.next.shares.get(1)!]]), [world.newData]);
      await store.commit(world.handover, world.proposalId);
      const identityFile = join(await tempDir(), 'identity.json');
      await createIdentityFile(identityFile);
      const file = await backup(dir, identityFile);
      const parsed = parseBackup(await readFile(file));
      assert.deepEqual([parsed.keys.length, parsed.epochShares.length, parsed.handovers.length], [0, 1, 1]);

      const target = join(await tempDir(), 'keystore');
      await restoreBackup({ backupFile: file, backupPassword: PASSWORD, keystoreDir: target, dkgStateDir: `${target}.dkg`, keystorePassword: 'another password', identityFile });
      const ks = await Keystore.open(target, 'another password');
      open.push(ks);
      const restored = await openEpochStore({ keystore: ks, committee: world.a, selfPublicKey: world.publicKey(1) });
      assert.equal(restored.served().committee.epoch, 1);
      assert.deepEqual(restored.shares().map((x) => x.share), [world.next.shares.get(1)]);
    });

    it('made before a reshare: restored beside the certificate its old shares are erased; restored alone they serve the old epoch', async () => {
      const { dir, reopen } = await node(2);
      const identityFile = join(await tempDir(), 'identity.json');
      await createIdentityFile(identityFile);
      const file = await backup(dir, identityFile);
      const store = await reopen();
      await store.savePending(world.proposalId, new Map([['alpha', world.next.shares.get(2)!]]), [world.newData]);
      await store.commit(world.handover, world.proposalId);

      // The node's own keystore after the reshare: the old key file is gone, so the restore installs it; opening erases it again.
      await restoreBackup({ backupFile: file, backupPassword: PASSWORD, keystoreDir: dir, dkgStateDir: `${dir}.dkg`, keystorePassword: PASSWORD, identityFile });
      assert.ok((await readdir(dir)).includes('alpha.key.json'));
      const after = await reopen();
      assert.equal(after.served().committee.epoch, 1);
      assert.deepEqual(after.shares().map((x) => x.share), [world.next.shares.get(2)]);
      assert.ok(!(await readdir(dir)).includes('alpha.key.json'));

      const alone = join(await tempDir(), 'keystore');
      await restoreBackup({ backupFile: file, backupPassword: PASSWORD, keystoreDir: alone, dkgStateDir: `${alone}.dkg`, keystorePassword: PASSWORD, identityFile });
      const ks = await Keystore.open(alone, PASSWORD);
      open.push(ks);
      const stale = await openEpochStore({ keystore: ks, committee: world.a, selfPublicKey: world.publicKey(2) });
      assert.equal(stale.served().committee.epoch, 0);
      assert.deepEqual(stale.shares().map((x) => x.share), [world.old.shares.get(2)]);
    });
  });

  it('keystores written before epochs (test/fixtures/keystore-70e9873) still open and serve epoch 0', async () => {
    const dir = await tempDir();
    await cp(join(FIXTURE, 'node1/keystore'), dir, { recursive: true });
    const password = (await readFile(join(FIXTURE, 'keystore-password'), 'utf8')).trim();
    const c = parseCommitteeJson(await readFile(join(FIXTURE, 'committee.json'), 'utf8'));
    const identity = await loadIdentityFile(join(FIXTURE, 'node1/identity.json'));
    const self = c.members.find((m) => m.peerId === identity.peerId)!;
    const ks = await Keystore.open(dir, password);
    open.push(ks);
    const store = await openEpochStore({ keystore: ks, committee: c, selfPublicKey: self.publicKey });
    assert.equal(store.served().committee.epoch, 0);
    const [share] = store.shares();
    assert.equal(share?.keyId, 'legacy');
    assert.deepEqual(curveBackend().multiplyBaseSecret(share!.share), share!.data.verificationShares.get(self.id));
  });
});
