import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { encodeHex, isTkmsError, randomBytes } from '../../core/index.ts';
import { parseCommittee, type Committee } from '../../core/committee.ts';
import { proposalDigest } from '../../core/ceremony/proposal.ts';
import type { ReshareProposal } from '../../core/ceremony/types.ts';
import { MAX_BACKUP_APPROVALS, MAX_BACKUP_DKG_VOTES, MAX_BACKUP_RESHARE_VOTES } from '../../node/backup-vote-locks.ts';
import { DkgStateFiles, MAX_DKG_VOTE_FILE_BYTES } from '../../node/dkg-state.ts';
import { openEpochStore, type NodeEpochStore } from '../../node/epoch-store.ts';
import { createIdentityFile } from '../../node/identity.ts';
import { createBackup, parseBackup, restoreBackup, writeBackupFile } from '../../node/keystore-backup.ts';
import { Keystore } from '../../node/keystore.ts';
import { rejectsWith, restoreOnto as restoreOntoTarget, snapshot } from '../support/backup-tests.ts';
import { checkOperatorApproval } from '../../node/reshare-approvals.ts';
import { member, peerId } from '../support/test-members.ts';

/**
 * Keystore backups (version 4 and later) carry the node's vote locks — DKG votes in `<stateDir>/dkg` and the
 * approval ledger in the keystore directory — and a restore installs them, refusing (installing
 * nothing) when the node holds a lock that contradicts them.
 */
const PASSWORD = 'vote-lock-test-password';
const SCRYPT = { N: 2 ** 14, r: 8, p: 1 };
const V3_FIXTURE = fileURLToPath(new URL('../fixtures/backup-v3-65cc831/', import.meta.url));

function committee(members: { id: number; publicKey: Uint8Array }[], epoch: number): Committee {
  return parseCommittee({
    committeeId: 'vote-lock-test',
    epoch,
    t: 2,
    members: members.map((m) => ({ id: m.id, peerId: peerId(m.publicKey), multiaddrs: [`/ip4/127.0.0.1/tcp/${4000 + m.id}`] })),
  });
}

const m = [member(1), member(2), member(3), member(4)];
const A = committee(m.slice(0, 3), 0);
/** Two proposals leaving epoch 0 of A: a reshare to (1, 2, 4) and a refresh. A member votes for one of them, ever. */
const reshare: ReshareProposal = { from: A, to: committee([m[0]!, m[1]!, m[3]!], 1), keyIds: ['alpha'] };
const refresh: ReshareProposal = { from: A, to: committee(m.slice(0, 3), 1), keyIds: ['alpha'] };
const reshareId = encodeHex(proposalDigest(reshare));
const refreshId = encodeHex(proposalDigest(refresh));
const approvedAt = '2026-12-06T22:00:00.000Z';


describe('keystore backups carry the vote locks (version 4 and later)', function () {
  this.timeout(120_000);
  const temps: string[] = [];
  const open: Keystore[] = [];

  async function tempDir(): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'tkms-vote-locks-'));
    temps.push(dir);
    return dir;
  }

  async function store(keystoreDir: string, password = PASSWORD): Promise<NodeEpochStore> {
    const ks = await Keystore.open(keystoreDir, password, { newKeystoreScrypt: SCRYPT });
    open.push(ks);
    return openEpochStore({ keystore: ks, committee: A, selfPublicKey: m[0]!.publicKey });
  }

  after(async () => {
    for (const ks of open) ks.close();
    for (const dir of temps) await rm(dir, { recursive: true, force: true });
  });

  const sidK1 = encodeHex(randomBytes(16));
  const sidK2 = encodeHex(randomBytes(16));
  const reshareVote = randomBytes(64);
  let source: { root: string; keystoreDir: string; dkgStateDir: string; identityFile: string; backupFile: string; bytes: Uint8Array };

  /** A node that voted in two DKGs (k1, k2) and for the reshare leaving epoch 0, and approved the reshare. */
  before(async () => {
    const root = await tempDir();
    const keystoreDir = join(root, 'keystore');
    const dkgStateDir = join(root, 'state/dkg');
    const identityFile = join(root, 'identity.json');
    await createIdentityFile(identityFile);
    const s = await store(keystoreDir);
    await s.saveApproval({ proposalId: reshareId, proposal: reshare, status: 'approved', approvedAt });
    await s.recordVote(reshareId, reshareVote);
    const dkg = await DkgStateFiles.open(dkgStateDir);
    await dkg.recordVote('k1', sidK1, randomBytes(64));
    await dkg.recordVote('k2', sidK2, randomBytes(64));
    const { bytes } = await createBackup({ keystoreDir, dkgStateDir, password: PASSWORD, identityFile });
    const backupFile = join(root, 'node.tkmsbak');
    await writeBackupFile(backupFile, bytes);
    source = { root, keystoreDir, dkgStateDir, identityFile, backupFile, bytes };
  });

  const restoreOnto = (target: string) => restoreOntoTarget(source.backupFile, PASSWORD, target);

  it('a backup holds every lock as its file\'s exact text', async () => {
    const parsed = parseBackup(source.bytes);
    assert.equal(parsed.version, 5);
    const locks = parsed.voteLocks!;
    assert.deepEqual(
      locks.dkgVotes.map((v) => [v.keyId, v.sessionId]),
      [
        ['k1', sidK1],
        ['k2', sidK2],
      ],
    );
    for (const v of locks.dkgVotes) assert.equal(v.text, await readFile(join(source.dkgStateDir, `vote.${v.keyId}.json`), 'utf8'));
    assert.deepEqual(
      locks.approvals.map((a) => [a.record.seq, a.record.approval.proposalId, a.record.approval.status]),
      [[0, reshareId, 'approved']],
    );
    assert.equal(locks.approvals[0]!.text, await readFile(join(source.keystoreDir, 'approval.0.json'), 'utf8'));
    assert.deepEqual(
      locks.reshareVotes.map((v) => v.proposalId),
      [reshareId],
    );
    assert.equal(locks.reshareVotes[0]!.text, await readFile(join(source.keystoreDir, `vote.${reshareId.slice(2)}.json`), 'utf8'));
  });

  it('a restore onto an empty machine installs them byte for byte: the restored node votes in no other DKG session of k1, and for no other proposal leaving epoch 0', async () => {
    const target = await tempDir();
    const result = await restoreOnto(target);
    assert.equal(result.backupVersion, 5);
    assert.deepEqual(result.voteLocks, { dkgKeyIds: ['k1', 'k2'], reshareProposalIds: [reshareId], approvalRecords: 1 });
    for (const name of ['vote.k1.json', 'vote.k2.json']) {
      assert.deepEqual(await readFile(join(target, 'state/dkg', name)), await readFile(join(source.dkgStateDir, name)));
      assert.equal((await stat(join(target, 'state/dkg', name))).mode & 0o777, 0o600);
    }
    for (const name of ['approval.0.json', `vote.${reshareId.slice(2)}.json`]) assert.deepEqual(await readFile(join(target, 'keystore', name)), await readFile(join(source.keystoreDir, name)));

    const dkg = await DkgStateFiles.open(join(target, 'state/dkg'));
    assert.equal(dkg.vote('k1')?.sessionId, sidK1);
    await rejectsWith('conflict', dkg.recordVote('k1', encodeHex(randomBytes(16)), randomBytes(64)), /already voted in DKG session/);

    const restored = await store(join(target, 'keystore'), 'the target password');
    assert.deepEqual(restored.priorVote(reshareId), reshareVote);
    await rejectsWith('conflict', restored.recordVote(reshareId, randomBytes(64)), /voted differently/);
    // The rule the runner applies to an approval (node/reshare-approvals.ts), on the restored ledger.
    assert.throws(
      () =>
        checkOperatorApproval(refresh, {
          served: A,
          selfKey: m[0]!.publicKey,
          heldKeyIds: ['alpha'],
          approvals: restored.approvals(),
          finished: () => true,
          voted: (id) => restored.priorVote(id) !== undefined,
        }),
      (e: unknown) => isTkmsError(e, 'conflict') && e.message.includes(`voted for proposal ${reshareId}, which leaves epoch 0`),
    );
  });

  it('a restore onto a node that holds the same locks installs the rest', async () => {
    const target = await tempDir();
    await mkdir(join(target, 'state/dkg'), { recursive: true });
    await copyFile(join(source.dkgStateDir, 'vote.k1.json'), join(target, 'state/dkg/vote.k1.json'));
    const result = await restoreOnto(target);
    assert.deepEqual(result.voteLocks?.dkgKeyIds, ['k1', 'k2']);
    assert.deepEqual((await readdir(join(target, 'state/dkg'))).sort(), ['vote.k1.json', 'vote.k2.json']);
  });

  describe('refuses, installing nothing, a lock that contradicts one the node holds', () => {
    async function expectRefused(target: string, message: RegExp): Promise<void> {
      const before = await snapshot(target);
      await rejectsWith('vote_lock_conflict', restoreOnto(target), message);
      assert.deepEqual(await snapshot(target), before, 'nothing was written');
    }


    it('a DKG vote of the same key id in another session', async () => {
      const target = await tempDir();
      const other = encodeHex(randomBytes(16));
      await (await DkgStateFiles.open(join(target, 'state/dkg'))).recordVote('k2', other, randomBytes(64));
      await expectRefused(target, new RegExp(`key id k2: this node voted in DKG session ${other}, the backup in session ${sidK2}.*nothing installed|nothing installed.*key id k2: this node voted in DKG session ${other}, the backup in session ${sidK2}`));
      assert.equal(await stat(join(target, 'keystore')).then(() => true, () => false), false, 'no keystore, no identity made');
      assert.equal(await stat(join(target, 'identity.json')).then(() => true, () => false), false);
    });

    it('another DKG vote in the same session', async () => {
      const target = await tempDir();
      await (await DkgStateFiles.open(join(target, 'state/dkg'))).recordVote('k1', sidK1, randomBytes(64));
      await expectRefused(target, /key id k1: this node holds another vote in DKG session/);
    });

    it('a vote for another proposal leaving the same epoch', async () => {
      const target = await tempDir();
      const s = await store(join(target, 'keystore'), 'the target password');
      await s.saveApproval({ proposalId: refreshId, proposal: refresh, status: 'approved', approvedAt });
      await s.recordVote(refreshId, randomBytes(64));
      // The approval numbers collide too: both ledgers started at 0.
      await expectRefused(target, new RegExp(`vote-lock-test epoch 0: this node voted for proposal ${refreshId}, the backup for proposal ${reshareId}`));
    });

    it('another vote for the same proposal', async () => {
      const target = await tempDir();
      await mkdir(join(target, 'keystore'), { recursive: true });
      await copyFile(join(source.keystoreDir, 'approval.0.json'), join(target, 'keystore/approval.0.json'));
      const s = await store(join(target, 'keystore'), 'the target password');
      await s.recordVote(reshareId, randomBytes(64));
      await expectRefused(target, new RegExp(`proposal ${reshareId}: this node holds another vote for it`));
    });

    it('an approval record of the same number with other content', async () => {
      const target = await tempDir();
      const s = await store(join(target, 'keystore'), 'the target password');
      await s.saveApproval({ proposalId: refreshId, proposal: refresh, status: 'approved', approvedAt });
      await expectRefused(target, new RegExp(`approval record 0: this node's is of proposal ${refreshId} \\(approved\\), the backup's of proposal ${reshareId}`));
    });

    it('a cancellation that would take effect over the backup\'s vote', async () => {
      const target = await tempDir();
      await mkdir(join(target, 'keystore'), { recursive: true });
      await copyFile(join(source.keystoreDir, 'approval.0.json'), join(target, 'keystore/approval.0.json'));
      const s = await store(join(target, 'keystore'), 'the target password');
      await s.saveApproval({ proposalId: reshareId, proposal: reshare, status: 'cancelled', approvedAt });
      await expectRefused(target, new RegExp(`proposal ${reshareId}: voted for, and the other ledger's record 1 would cancel it`));
    });
  });

  it('a version 3 backup (test/fixtures/backup-v3-65cc831) still reads and restores, and says it carries no lock', async () => {
    const bytes = await readFile(join(V3_FIXTURE, 'node.tkmsbak'));
    const parsed = parseBackup(bytes);
    assert.equal(parsed.version, 3);
    assert.equal(parsed.voteLocks, null);
    const target = await tempDir();
    const result = await restoreBackup({
      backupFile: join(V3_FIXTURE, 'node.tkmsbak'),
      backupPassword: await readFile(join(V3_FIXTURE, 'password'), 'utf8'),
      keystoreDir: join(target, 'keystore'),
      dkgStateDir: join(target, 'state/dkg'),
      keystorePassword: 'new password',
      identityFile: join(target, 'identity.json'),
    });
    assert.deepEqual(result, { restored: ['orders'], identity: 'installed', peerId: '12D3KooWAAZiGkoMCUeoqiAj3cC2brGdDsedwrZR52dfUF4LZ7ai', ceremonySeed: 'installed', voteLocks: null, dkgPublicResults: null, backupVersion: 3 });
    const ks = await Keystore.open(join(target, 'keystore'), 'new password');
    open.push(ks);
    assert.deepEqual(ks.list(), ['orders']);
    assert.equal(await stat(join(target, 'state')).then(() => true, () => false), false, 'no lock, no DKG state directory');
  });

  describe('the voteLocks decoder', () => {
    const doc = (): Record<string, any> => JSON.parse(new TextDecoder().decode(source.bytes)) as Record<string, any>;
    const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
    const refused = (v: unknown, message: RegExp) =>
      assert.throws(
        () => parseBackup(enc(v)),
        (e: unknown) => isTkmsError(e, 'bad_request') && message.test(e.message),
      );

    it('pushes past each count bound: one entry more than the bound is refused before any is parsed', () => {
      for (const [field, max] of [
        ['dkgVotes', MAX_BACKUP_DKG_VOTES],
        ['approvals', MAX_BACKUP_APPROVALS],
        ['reshareVotes', MAX_BACKUP_RESHARE_VOTES],
      ] as const) {
        const d = doc();
        d.voteLocks[field] = Array.from({ length: max + 1 }, () => d.voteLocks[field][0]);
        refused(d, new RegExp(`voteLocks\\.${field} must be an array of at most ${max} entries`));
      }
    });

    it('pushes past the file size bound, in bytes (multi-byte text too)', () => {
      for (const file of ['x'.repeat(MAX_DKG_VOTE_FILE_BYTES + 1), 'é'.repeat(MAX_DKG_VOTE_FILE_BYTES / 2 + 1)]) {
        const d = doc();
        d.voteLocks.dkgVotes[0].file = file;
        refused(d, new RegExp(`voteLocks\\.dkgVotes\\[0\\]\\.file must be a string of at most ${MAX_DKG_VOTE_FILE_BYTES} bytes`));
      }
    });

    it('refuses a lock twice, a file of another key id or proposal, a missing field, and a backup of version 4 or later without voteLocks', () => {
      const twice = doc();
      twice.voteLocks.dkgVotes[1] = twice.voteLocks.dkgVotes[0];
      refused(twice, /key id k1 appears twice/);
      const other = doc();
      other.voteLocks.dkgVotes[0].keyId = 'k2';
      refused(other, /voteLocks\.dkgVotes\[0\]: DKG state: vote\.k2\.json is not a DKG vote of key id k2/);
      const moved = doc();
      moved.voteLocks.reshareVotes[0].proposalId = refreshId;
      refused(moved, /voteLocks\.reshareVotes\[0\]: /);
      const renumbered = doc();
      renumbered.voteLocks.approvals[0].seq = 1;
      refused(renumbered, /voteLocks\.approvals\[0\]: approval record 1: seq does not match/);
      const missing = doc();
      delete missing.voteLocks.approvals;
      refused(missing, /voteLocks must have exactly the fields/);
      const none = doc();
      delete none.voteLocks;
      refused(none, /the backup must have exactly the fields/);
    });

    it('property: any value in place of the locks, an entry or an entry\'s field, or any edit of a file\'s text, gives locks or bad_request', () => {
      const valid = doc();
      const paths: (string | number)[][] = [
        ['voteLocks'],
        ['voteLocks', 'dkgVotes'],
        ['voteLocks', 'approvals'],
        ['voteLocks', 'reshareVotes'],
        ['voteLocks', 'dkgVotes', 0],
        ['voteLocks', 'approvals', 0],
        ['voteLocks', 'reshareVotes', 0],
        ...['keyId', 'file', 'extra'].map((k) => ['voteLocks', 'dkgVotes', 0, k]),
        ...['seq', 'file', 'extra'].map((k) => ['voteLocks', 'approvals', 0, k]),
        ...['proposalId', 'file', 'extra'].map((k) => ['voteLocks', 'reshareVotes', 0, k]),
      ];
      const files = [
        ['dkgVotes', 0],
        ['dkgVotes', 1],
        ['approvals', 0],
        ['reshareVotes', 0],
      ] as const;
      const check = (d: unknown) => {
        try {
          const parsed = parseBackup(enc(d));
          assert.ok(parsed.voteLocks !== null);
        } catch (e) {
          assert.ok(isTkmsError(e, 'bad_request'), String(e));
        }
      };
      fc.assert(
        fc.property(fc.constantFrom(...paths), fc.jsonValue(), (path, value) => {
          const d = structuredClone(valid);
          let at: any = d;
          for (const k of path.slice(0, -1)) at = at[k];
          at[path[path.length - 1]!] = value;
          check(d);
        }),
        { numRuns: 300 },
      );
      fc.assert(
        fc.property(fc.constantFrom(...files), fc.nat(), fc.string({ maxLength: 4 }), fc.nat({ max: 4 }), ([field, i], at, insert, cut) => {
          const d = structuredClone(valid);
          const text: string = d.voteLocks[field][i].file;
          const p = at % (text.length + 1);
          d.voteLocks[field][i].file = text.slice(0, p) + insert + text.slice(p + cut);
          check(d);
        }),
        { numRuns: 300 },
      );
    });
  });
});
