import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { privateKeyFromRaw } from '@libp2p/crypto/keys';
import { isTkmsError, randomScalar } from '../../core/index.ts';
import { DkgCeremony } from '../../core/ceremony/index.ts';
import type { DkgPublicResult } from '../../core/dkg/index.ts';
import { MAX_BACKUP_DKG_PUBLIC_RESULTS } from '../../node/backup-dkg-results.ts';
import { ceremonyIdentity } from '../../node/ceremony-identity.ts';
import { DkgRunner } from '../../node/dkg-runner.ts';
import { DkgStateFiles, MAX_DKG_PUBLIC_RESULT_FILE_BYTES } from '../../node/dkg-state.ts';
import { createIdentityFile, type NodeIdentity } from '../../node/identity.ts';
import { createBackup, parseBackup, restoreBackup, writeBackupFile } from '../../node/keystore-backup.ts';
import { Keystore } from '../../node/keystore.ts';
import { rejectsWith, restoreOnto as restoreOntoTarget, snapshot } from '../support/backup-tests.ts';
import { createNodeMetrics } from '../../node/metrics.ts';
import { createLogger } from '../../runtime/logger.ts';
import { testSeed } from '../support/test-seed.ts';
import { keyAt, makeCommittee, makeMembers, signedDkgResult } from './handover-fixtures.ts';

/**
 * Keystore backups (version 5) carry the DKG results a node holds without a share
 * (`<stateDir>/dkg/public.<keyId>.json`): the node's only record of those keys. A restored node
 * has them back; a restore refuses, installing nothing, one that contradicts the node's.
 */
const PASSWORD = 'public-result-test-password';
const SCRYPT = { N: 2 ** 14, r: 8, p: 1 };
const V4_FIXTURE = fileURLToPath(new URL('../fixtures/backup-v4-3743915/', import.meta.url));

const members = makeMembers([1, 2, 3]);
const committee = makeCommittee('public-result-test', 0, 2, members);
/** Member 3 missed the hello of `cold`: the committee made it, member 3 holds its result alone. */
const cold = signedDkgResult(keyAt('cold', randomScalar(), committee), committee, members);



describe('keystore backups carry the DKG results held without a share (version 5)', function () {
  this.timeout(120_000);
  const temps: string[] = [];
  const open: Keystore[] = [];
  const runners: DkgRunner[] = [];
  let source: { keystoreDir: string; dkgStateDir: string; backupFile: string; bytes: Uint8Array };

  async function tempDir(): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), 'tkms-public-results-'));
    temps.push(dir);
    return dir;
  }

  async function keystore(dir: string, password: string): Promise<Keystore> {
    const ks = await Keystore.open(dir, password, { newKeystoreScrypt: SCRYPT });
    open.push(ks);
    return ks;
  }

  /** Member 3's DKG runner on the given state, loaded as the daemon loads it at start. */
  async function runnerOn(state: DkgStateFiles, keystoreDir: string, password: string): Promise<DkgRunner> {
    const m = members[2]!;
    const identity: NodeIdentity = { privateKey: privateKeyFromRaw(new Uint8Array([...m.seed, ...m.publicKey])) as NodeIdentity['privateKey'], peerId: m.peerId };
    const runner = new DkgRunner({
      committee,
      selfId: m.id,
      identity: ceremonyIdentity(identity),
      seed: testSeed(identity),
      createCeremony: (params, id, options) => new DkgCeremony(params, id, options),
      keystore: await keystore(keystoreDir, password),
      state,
      log: createLogger('silent'),
      metrics: createNodeMetrics(),
      phaseMs: 400,
      transport: {
        send: () => Promise.reject(new Error('no peer in this test')),
      },
    });
    runners.push(runner);
    runner.loadPublicOnlyResults();
    return runner;
  }

  before(async () => {
    const root = await tempDir();
    const keystoreDir = join(root, 'keystore');
    const dkgStateDir = join(root, 'state/dkg');
    const identityFile = join(root, 'identity.json');
    await createIdentityFile(identityFile);
    await (await keystore(keystoreDir, PASSWORD)).save({ keyId: 'orders', share: randomScalar(), publicResult: { keyId: 'orders', note: 'test public result', t: 2, n: 3 } });
    await (await DkgStateFiles.open(dkgStateDir)).savePublicOnly(cold);
    const { bytes, keyIds, keyIdsWithoutShare } = await createBackup({ keystoreDir, dkgStateDir, password: PASSWORD, identityFile });
    assert.deepEqual(keyIds, ['orders']);
    assert.deepEqual(keyIdsWithoutShare, [cold.keyId]);
    const backupFile = join(root, 'node.tkmsbak');
    await writeBackupFile(backupFile, bytes);
    source = { keystoreDir, dkgStateDir, backupFile, bytes };
  });

  after(async () => {
    for (const r of runners) r.stop();
    for (const ks of open) ks.close();
    for (const dir of temps) await rm(dir, { recursive: true, force: true });
  });

  const restoreOnto = (target: string) => restoreOntoTarget(source.backupFile, PASSWORD, target);

  it('a backup holds each result as its file\'s exact text', async () => {
    const parsed = parseBackup(source.bytes);
    assert.equal(parsed.version, 5);
    assert.deepEqual(parsed.dkgPublicResults, [{ keyId: 'cold', text: await readFile(join(source.dkgStateDir, 'public.cold.json'), 'utf8') }]);
  });

  it('a node restored onto an empty machine has the key back: its runner publishes the result and serves no share of it', async () => {
    const target = await tempDir();
    const result = await restoreOnto(target);
    assert.equal(result.backupVersion, 5);
    assert.deepEqual(result.dkgPublicResults, ['cold']);
    assert.deepEqual(result.restored, ['orders']);
    const file = join(target, 'state/dkg/public.cold.json');
    assert.deepEqual(await readFile(file), await readFile(join(source.dkgStateDir, 'public.cold.json')));
    assert.equal((await stat(file)).mode & 0o777, 0o600);

    const state = await DkgStateFiles.open(join(target, 'state/dkg'));
    assert.deepEqual(state.publicOnlyResults(), [cold]);
    const runner = await runnerOn(state, join(target, 'keystore'), 'the target password');
    const published = runner.publishedKeys().find((k) => k.keyId === 'cold') as DkgPublicResult | undefined;
    assert.equal(published?.groupPublicKey, cold.groupPublicKey);
    assert.equal(runner.holdsShare('cold'), false);
    assert.throws(() => runner.propose('cold'), /already exists/);
  });

  it('a restore onto a node that holds the same result installs the rest', async () => {
    const target = await tempDir();
    await mkdir(join(target, 'state/dkg'), { recursive: true });
    await copyFile(join(source.dkgStateDir, 'public.cold.json'), join(target, 'state/dkg/public.cold.json'));
    const result = await restoreOnto(target);
    assert.deepEqual(result.dkgPublicResults, ['cold']);
    assert.deepEqual(result.restored, ['orders']);
  });

  describe('refuses, installing nothing, a result that contradicts the node\'s', () => {
    async function expectRefused(target: string, message: RegExp): Promise<void> {
      const before = await snapshot(target);
      await rejectsWith('conflict', restoreOnto(target), message);
      assert.deepEqual(await snapshot(target), before, 'nothing was written');
    }

    it('another result of the same key id', async () => {
      const target = await tempDir();
      const other = signedDkgResult(keyAt('cold', randomScalar(), committee), committee, members);
      await (await DkgStateFiles.open(join(target, 'state/dkg'))).savePublicOnly(other);
      await expectRefused(target, /nothing installed: .*key id cold: this node holds another DKG result of it/);
    });

    it('a share of the key id the backup holds without one', async () => {
      const target = await tempDir();
      await (await keystore(join(target, 'keystore'), 'the target password')).save({ keyId: 'cold', share: randomScalar(), publicResult: cold as unknown as Record<string, unknown> });
      await expectRefused(target, /key id cold: this node holds a share of it, the backup its result without one/);
    });

    it('a result held without a share of a key id whose share the backup restores', async () => {
      const target = await tempDir();
      const orders = signedDkgResult(keyAt('orders', randomScalar(), committee), committee, members);
      await (await DkgStateFiles.open(join(target, 'state/dkg'))).savePublicOnly(orders);
      await expectRefused(target, /key id orders: this node holds its result without a share, the backup a share of it/);
    });
  });

  it('a version 4 backup (test/fixtures/backup-v4-3743915) still reads and restores, with its lock, and says it carries no result', async () => {
    const backupFile = join(V4_FIXTURE, 'node.tkmsbak');
    const parsed = parseBackup(await readFile(backupFile));
    assert.equal(parsed.version, 4);
    assert.equal(parsed.dkgPublicResults, null);
    const target = await tempDir();
    const result = await restoreBackup({
      backupFile,
      backupPassword: await readFile(join(V4_FIXTURE, 'password'), 'utf8'),
      keystoreDir: join(target, 'keystore'),
      dkgStateDir: join(target, 'state/dkg'),
      keystorePassword: 'new password',
      identityFile: join(target, 'identity.json'),
    });
    assert.deepEqual(result, {
      restored: ['orders'],
      identity: 'installed',
      peerId: '12D3KooWSHJv6RDxhEiZZucyCnBVFxjWLCmseN6za5YteTbi8hMe',
      ceremonySeed: 'none',
      voteLocks: { dkgKeyIds: ['pending'], reshareProposalIds: [], approvalRecords: 0 },
      dkgPublicResults: null,
      backupVersion: 4,
    });
    assert.deepEqual(await readdir(join(target, 'state/dkg')), ['vote.pending.json']);
    assert.deepEqual((await keystore(join(target, 'keystore'), 'new password')).list(), ['orders']);
  });

  describe('the dkgPublicResults decoder', () => {
    const doc = (): Record<string, any> => JSON.parse(new TextDecoder().decode(source.bytes)) as Record<string, any>;
    const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));
    const refused = (v: unknown, message: RegExp) =>
      assert.throws(
        () => parseBackup(enc(v)),
        (e: unknown) => isTkmsError(e, 'bad_request') && message.test(e.message),
      );

    it('pushes past the count bound and the file size bound (in bytes, multi-byte text too)', () => {
      const many = doc();
      many.dkgPublicResults = Array.from({ length: MAX_BACKUP_DKG_PUBLIC_RESULTS + 1 }, () => many.dkgPublicResults[0]);
      refused(many, new RegExp(`dkgPublicResults must be an array of at most ${MAX_BACKUP_DKG_PUBLIC_RESULTS} entries`));
      for (const file of ['x'.repeat(MAX_DKG_PUBLIC_RESULT_FILE_BYTES + 1), 'é'.repeat(MAX_DKG_PUBLIC_RESULT_FILE_BYTES / 2 + 1)]) {
        const d = doc();
        d.dkgPublicResults[0].file = file;
        refused(d, new RegExp(`dkgPublicResults\\[0\\]\\.file must be a string of at most ${MAX_DKG_PUBLIC_RESULT_FILE_BYTES} bytes`));
      }
    });

    it('refuses a result twice, a file of another key id, a missing field, and a version 5 backup without dkgPublicResults', () => {
      const twice = doc();
      twice.dkgPublicResults.push(twice.dkgPublicResults[0]);
      refused(twice, /key id cold appears twice/);
      const other = doc();
      other.dkgPublicResults[0].keyId = 'warm';
      refused(other, /dkgPublicResults\[0\]: DKG state: public\.warm\.json holds the result of key id cold/);
      const missing = doc();
      delete missing.dkgPublicResults[0].file;
      refused(missing, /dkgPublicResults\[0\] must have exactly the fields keyId, file/);
      const none = doc();
      delete none.dkgPublicResults;
      refused(none, /the backup must have exactly the fields/);
    });

    it('property: any value in place of the results, an entry or an entry\'s field, or any edit of a file\'s text, gives results or bad_request', () => {
      const valid = doc();
      const check = (d: unknown) => {
        try {
          assert.ok(parseBackup(enc(d)).dkgPublicResults !== null);
        } catch (e) {
          assert.ok(isTkmsError(e, 'bad_request'), String(e));
        }
      };
      const paths: (string | number)[][] = [['dkgPublicResults'], ['dkgPublicResults', 0], ...['keyId', 'file', 'extra'].map((k) => ['dkgPublicResults', 0, k])];
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
        fc.property(fc.nat(), fc.string({ maxLength: 4 }), fc.nat({ max: 4 }), (at, insert, cut) => {
          const d = structuredClone(valid);
          const text: string = d.dkgPublicResults[0].file;
          const p = at % (text.length + 1);
          d.dkgPublicResults[0].file = text.slice(0, p) + insert + text.slice(p + cut);
          check(d);
        }),
        { numRuns: 300 },
      );
    });
  });
});
