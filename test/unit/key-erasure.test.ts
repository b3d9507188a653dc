import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sha256 } from '@noble/hashes/sha2.js';
import { ed25519 } from '@noble/curves/ed25519.js';
import { curveBackend, encodeHex, evaluatePolynomial, isTkmsError, randomBytes, randomScalar } from '../../core/index.ts';
import { parseCommittee, type Committee } from '../../core/committee.ts';
import { dkgSignedBytes } from '../../core/dkg/member-signatures.ts';
import { parseDkgPublicResult, type DkgPublicResult } from '../../core/dkg/index.ts';
import {
  MAX_RECEIPTS_PER_TALLY,
  destroyedByReceipts,
  erasedFilesDigest,
  signDestructionReceipt,
  verifyDestructionReceipt,
  type DestructionReceipt,
  type UnsignedDestructionReceipt,
} from '../../core/keys/destruction-receipt.ts';
import { Keystore } from '../../node/keystore.ts';
import { createIdentityFile } from '../../node/identity.ts';
import { createBackup, restoreBackup, writeBackupFile } from '../../node/keystore-backup.ts';
import { epochShareFileName } from '../../node/keystore-format.ts';
import { publishNewFile } from '../../node/keystore-fs.ts';
import { openEpochStore } from '../../node/epoch-store.ts';
import { ShareBook } from '../../node/partial.ts';
import {
  eraseKeyMaterial,
  erasureDigest,
  erasureRecordDir,
  erasureRecordFileName,
  listErasedKeyIds,
  planKeyErasure,
  readErasureRecord,
  recordKeyErasure,
  resumeKeyErasures,
  type KeyErasureDeps,
} from '../../node/key-erasure.ts';
import { expectRefusal } from '../support/refusal.ts';
import { member, peerId, type Member } from '../support/test-members.ts';

const PASSWORD = 'key-erasure-test-password';
const SCRYPT = { N: 2 ** 14, r: 8, p: 1 };
const COMMITTEE_ID = 'erase-test';
const NOW = 1_765_000_000;
const PROPOSAL_ID = `0x${'7a'.repeat(32)}`;

/** A member's signer as ceremonyIdentity makes it: Ed25519 over the member-signature domain. */
function signer(m: Member): { sign(message: Uint8Array): Uint8Array } {
  return { sign: (message) => ed25519.sign(dkgSignedBytes(message), m.secret) };
}

/** One key's shares for members 1..3 (t = 2) and its DKG public result. */
function dealKey(keyId: string): { shares: Map<number, bigint>; result: Record<string, unknown> } {
  const secret = randomScalar();
  const coefficients = [secret, randomScalar()];
  const shares = new Map([1, 2, 3].map((id) => [id, evaluatePolynomial(coefficients, BigInt(id))]));
  const result = {
    keyId,
    committeeId: COMMITTEE_ID,
    sessionId: encodeHex(randomBytes(16)),
    t: 2,
    n: 3,
    groupPublicKey: encodeHex(curveBackend().multiplyBaseSecret(secret)),
    verificationShares: Object.fromEntries([...shares].map(([id, s]) => [String(id), encodeHex(curveBackend().multiplyBaseSecret(s))])),
    qualified: [1, 2, 3],
    transcriptHash: encodeHex(randomBytes(32)),
    signatures: {},
  };
  return { shares, result };
}

describe('key erasure', function () {
  this.timeout(60_000);
  const dirs: string[] = [];
  const open: Keystore[] = [];
  const members = [member(1), member(2), member(3)];
  const committee: Committee = parseCommittee({
    committeeId: COMMITTEE_ID,
    epoch: 0,
    t: 2,
    members: members.map((m) => ({ id: m.id, peerId: peerId(m.publicKey), multiaddrs: [`/ip4/127.0.0.1/tcp/${4100 + m.id}`] })),
  });

  after(async () => {
    for (const k of open) k.close();
    for (const d of dirs) await rm(d, { recursive: true, force: true });
  });

  async function keystore(dir: string): Promise<Keystore> {
    const k = await Keystore.open(dir, PASSWORD, { newKeystoreScrypt: SCRYPT });
    open.push(k);
    return k;
  }

  /**
   * Node 1 holding alpha (its DKG file and a pending reshare share file: two copies) and beta,
   * both served from a ShareBook.
   */
  async function node(): Promise<{ keystoreDir: string; stateDir: string; ks: Keystore; book: ShareBook; alpha: ReturnType<typeof dealKey>; beta: ReturnType<typeof dealKey>; deps: KeyErasureDeps; bytesOf: (name: string) => Promise<Uint8Array> }> {
    const root = await mkdtemp(join(tmpdir(), 'tkms-key-erasure-'));
    dirs.push(root);
    const keystoreDir = join(root, 'keystore');
    const stateDir = join(root, 'state');
    const ks = await keystore(keystoreDir);
    const alpha = dealKey('alpha');
    const beta = dealKey('beta');
    await ks.save({ keyId: 'alpha', share: alpha.shares.get(1)!, publicResult: alpha.result });
    await ks.save({ keyId: 'beta', share: beta.shares.get(1)!, publicResult: beta.result });
    const pending = epochShareFileName({ keyId: 'alpha', epoch: 1, proposalId: PROPOSAL_ID });
    await publishNewFile(keystoreDir, pending, ks.sealEpochShare('alpha', 1, randomScalar(), { epoch: 1, t: 2, proposalId: PROPOSAL_ID }));
    const book = new ShareBook(1);
    book.add(parseDkgPublicResult(alpha.result), alpha.shares.get(1)!);
    book.add(parseDkgPublicResult(beta.result), beta.shares.get(1)!);
    const deps: KeyErasureDeps = { keystoreDir, stateDir, shareBook: book, now: () => NOW };
    return { keystoreDir, stateDir, ks, book, alpha, beta, deps, bytesOf: async (name) => new Uint8Array(await readFile(join(keystoreDir, name))) };
  }

  const alphaFiles = ['alpha.e1.' + '7a'.repeat(32) + '.share.json', 'alpha.key.json'];

  it('erases every copy of the share, keeps other keys loading and serving, and stops serving it', async () => {
    const n = await node();
    const digests = await Promise.all(alphaFiles.map(async (name) => sha256(await n.bytesOf(name))));
    const record = await eraseKeyMaterial('alpha', n.deps);

    assert.deepEqual(record.files.map((f) => f.name), alphaFiles);
    assert.deepEqual(record.files.map((f) => encodeHex(f.sha256)), digests.map(encodeHex), 'the digests are of the bytes as stored');
    assert.equal(record.erasedAt, NOW);
    assert.deepEqual(record.files[1]!.publicResult, n.alpha.result, 'the DKG public result (verification shares) is kept in the record');
    assert.equal(record.files[0]!.publicResult, null, 'an epoch share file\'s public data stays in the certificates');
    assert.deepEqual(erasureDigest(record), erasedFilesDigest(record.files));

    const left = await readdir(n.keystoreDir);
    for (const name of alphaFiles) assert.ok(!left.includes(name), `${name} is gone`);
    assert.equal(n.book.get('alpha'), undefined, 'no longer served');
    assert.ok(n.book.get('beta') !== undefined, 'beta still served');

    const reopened = await keystore(n.keystoreDir);
    assert.deepEqual(reopened.list(), ['beta']);
    assert.equal((await reopened.load('beta')).share, n.beta.shares.get(1));
    await expectRefusal(reopened.load('alpha'), 'unknown_key');

    assert.deepEqual(await readErasureRecord(n.stateDir, 'alpha'), record);
    assert.deepEqual(await listErasedKeyIds(n.stateDir), ['alpha']);
    assert.equal(await readErasureRecord(n.stateDir, 'beta'), undefined);
  });

  it('a second call returns the same record and does not fail on files already gone', async () => {
    const n = await node();
    const first = await eraseKeyMaterial('alpha', n.deps);
    const second = await eraseKeyMaterial('alpha', { ...n.deps, now: () => NOW + 999 });
    assert.deepEqual(second, first);
  });

  it('a key this node holds no share of is recorded with no files', async () => {
    const n = await node();
    const record = await eraseKeyMaterial('gamma', n.deps);
    assert.deepEqual(record.files, []);
    assert.equal((await readdir(n.keystoreDir)).filter((f) => f.startsWith('alpha') || f.startsWith('beta')).length, 3, 'nothing else erased');
  });

  describe('a crash between steps leaves the share fully present or gone', () => {
    it('before the record: nothing decided, the share is present and loads', async () => {
      const n = await node();
      await planKeyErasure('alpha', n.deps); // planned, then the process died
      assert.equal(await readErasureRecord(n.stateDir, 'alpha'), undefined);
      const reopened = await keystore(n.keystoreDir);
      assert.equal((await reopened.load('alpha')).share, n.alpha.shares.get(1));
      assert.deepEqual(await resumeKeyErasures(n.deps), [], 'nothing to resume');
      assert.ok((await readdir(n.keystoreDir)).includes('alpha.key.json'));
    });

    it('after the record, before any unlink: the erasure is finished at start', async () => {
      const n = await node();
      const record = await recordKeyErasure(await planKeyErasure('alpha', n.deps), n.deps);
      assert.ok((await readdir(n.keystoreDir)).includes('alpha.key.json'), 'still on disk until resumed');
      const book = new ShareBook(1);
      book.add(parseDkgPublicResult(n.alpha.result), n.alpha.shares.get(1)!);
      const resumed = await resumeKeyErasures({ ...n.deps, shareBook: book });
      assert.deepEqual(resumed, [record]);
      const left = await readdir(n.keystoreDir);
      for (const name of alphaFiles) assert.ok(!left.includes(name));
      assert.equal(book.get('alpha'), undefined);
      assert.deepEqual(await eraseKeyMaterial('alpha', n.deps), record);
    });

    it('after one of two unlinks: the next call finishes and returns the same record', async () => {
      const n = await node();
      const record = await recordKeyErasure(await planKeyErasure('alpha', n.deps), n.deps);
      await unlink(join(n.keystoreDir, 'alpha.key.json'));
      assert.deepEqual(await eraseKeyMaterial('alpha', n.deps), record);
      assert.ok(!(await readdir(n.keystoreDir)).some((f) => f.startsWith('alpha.')));
    });

    it('a concurrent second plan loses to the recorded one', async () => {
      const n = await node();
      const first = await recordKeyErasure(await planKeyErasure('alpha', n.deps), n.deps);
      const late = await recordKeyErasure(await planKeyErasure('alpha', { ...n.deps, now: () => NOW + 5 }), n.deps);
      assert.deepEqual(late, first);
    });
  });

  it('a share a pre-deletion backup restored is erased again at the next start (the record is in the state directory)', async () => {
    const n = await node();
    const identityFile = join(n.stateDir, '..', 'identity.json');
    await createIdentityFile(identityFile);
    const { bytes } = await createBackup({ keystoreDir: n.keystoreDir, dkgStateDir: join(n.stateDir, 'dkg'), password: PASSWORD, identityFile });
    const backupFile = join(n.stateDir, '..', 'node.tkmsbak');
    await writeBackupFile(backupFile, bytes);
    const record = await eraseKeyMaterial('alpha', n.deps);
    // A restore never overwrites a key: the operator moved the keystore aside and restored into a fresh one.
    const restoredDir = join(n.stateDir, '..', 'restored-keystore');
    await restoreBackup({ backupFile, backupPassword: PASSWORD, keystoreDir: restoredDir, dkgStateDir: join(n.stateDir, 'dkg'), keystorePassword: PASSWORD, identityFile });
    assert.ok((await readdir(restoredDir)).includes('alpha.key.json'), 'the backup brought the share back');
    assert.deepEqual(await resumeKeyErasures({ keystoreDir: restoredDir, stateDir: n.stateDir }), [record]);
    const left = await readdir(restoredDir);
    assert.ok(!left.some((f) => f.startsWith('alpha.')) && left.includes('beta.key.json'));
  });

  it('resuming with no records, or records but no keystore directory, erases nothing and does not fail', async () => {
    const root = await mkdtemp(join(tmpdir(), 'tkms-key-erasure-'));
    dirs.push(root);
    assert.deepEqual(await resumeKeyErasures({ keystoreDir: join(root, 'keystore'), stateDir: join(root, 'state') }), []);
    const record = await recordKeyErasure({ keyId: 'alpha', erasedAt: NOW, files: [] }, { stateDir: join(root, 'state') });
    assert.deepEqual(await resumeKeyErasures({ keystoreDir: join(root, 'keystore'), stateDir: join(root, 'state') }), [record]);
  });

  it('a record edited to name another key\'s file erases nothing of it (keystore_corrupt)', async () => {
    const n = await node();
    const record = await recordKeyErasure(await planKeyErasure('alpha', n.deps), n.deps);
    const path = join(erasureRecordDir(n.stateDir), erasureRecordFileName('alpha'));
    const json = JSON.parse(await readFile(path, 'utf8'));
    json.files[1].name = 'beta.key.json';
    await writeFile(path, JSON.stringify(json));
    await expectRefusal(eraseKeyMaterial('alpha', n.deps), 'keystore_corrupt');
    await expectRefusal(resumeKeyErasures(n.deps), 'keystore_corrupt');
    assert.ok((await readdir(n.keystoreDir)).includes('beta.key.json'));
    assert.equal(record.files.length, 2);
  });

  it('the epoch store stops holding the share but keeps the key\'s public data; the runner keeps it held without a share', async () => {
    const n = await node();
    const store = await openEpochStore({ keystore: n.ks, committee, selfPublicKey: members[0]!.publicKey });
    assert.deepEqual(store.shares().map((s) => s.keyId), ['alpha', 'beta']);
    const alphaResult = parseDkgPublicResult(n.alpha.result);
    const marked: [string, boolean | undefined][] = [];
    const runner = { heldKeys: (): DkgPublicResult[] => [alphaResult], addHeldKey: (r: DkgPublicResult, share?: boolean) => void marked.push([r.keyId, share]) };
    await eraseKeyMaterial('alpha', { ...n.deps, epochStore: store, runner });
    assert.deepEqual(store.shares().map((s) => s.keyId), ['beta']);
    assert.deepEqual(store.epochKeys().map((k) => k.keyId), ['alpha', 'beta']);
    assert.deepEqual(marked, [['alpha', false]]);
    const reopened = await openEpochStore({ keystore: await keystore(n.keystoreDir), committee, selfPublicKey: members[0]!.publicKey });
    assert.deepEqual(reopened.shares().map((s) => s.keyId), ['beta']);
  });

  describe('destruction receipts', () => {
    const keyOf = (id: number) => members.find((m) => m.id === id)?.publicKey;

    async function receipt(m: Member, overrides: Partial<UnsignedDestructionReceipt> = {}): Promise<DestructionReceipt> {
      return signDestructionReceipt(
        { keyId: 'payments', version: 1, materialKeyId: 'alpha', committeeId: COMMITTEE_ID, nodeId: m.id, erasedAt: NOW, erasedDigest: sha256(new Uint8Array([m.id])), ...overrides },
        signer(m),
      );
    }

    it('a receipt over an erasure record verifies; any tampered field does not', async () => {
      const n = await node();
      const record = await eraseKeyMaterial('alpha', n.deps);
      const r = await receipt(members[0]!, { erasedAt: record.erasedAt, erasedDigest: erasureDigest(record) });
      assert.equal(verifyDestructionReceipt(r, keyOf, COMMITTEE_ID), true);
      assert.equal(verifyDestructionReceipt(r, keyOf, 'other-committee'), false, 'another committee');
      assert.equal(verifyDestructionReceipt(r, () => undefined, COMMITTEE_ID), false, 'an unknown member');
      const flipped = Uint8Array.from(r.erasedDigest);
      flipped[0] = flipped[0]! ^ 1;
      const badSignature = Uint8Array.from(r.signature);
      badSignature[5] = badSignature[5]! ^ 1;
      const tampered: [string, DestructionReceipt][] = [
        ['keyId', { ...r, keyId: 'payroll' }],
        ['version', { ...r, version: 2 }],
        ['materialKeyId', { ...r, materialKeyId: 'beta' }],
        ['committeeId', { ...r, committeeId: 'other-committee' }],
        ['nodeId', { ...r, nodeId: 2 }],
        ['erasedAt', { ...r, erasedAt: r.erasedAt + 1 }],
        ['erasedDigest', { ...r, erasedDigest: flipped }],
        ['signature', { ...r, signature: badSignature }],
      ];
      for (const [field, t] of tampered) assert.equal(verifyDestructionReceipt(t, keyOf, t.committeeId), false, field);
    });

    it('a member signature over another message never passes as a receipt', async () => {
      const r = await receipt(members[0]!);
      const other = ed25519.sign(dkgSignedBytes(new TextEncoder().encode('tkms/handover/v1/vote')), members[0]!.secret);
      assert.equal(verifyDestructionReceipt({ ...r, signature: other }, keyOf, COMMITTEE_ID), false);
    });

    it('signing refuses fields no decoder would accept', async () => {
      await assert.rejects(receipt(members[0]!, { version: 0 }), (e: unknown) => isTkmsError(e, 'bad_request'));
      await assert.rejects(receipt(members[0]!, { committeeId: 'no spaces' }), (e: unknown) => isTkmsError(e, 'bad_request'));
      await assert.rejects(receipt(members[0]!, { erasedDigest: new Uint8Array(31) }), (e: unknown) => isTkmsError(e));
    });

    it('destroyed at n − t + 1 distinct members, duplicates once, other committees and versions refused', async () => {
      // n = 3, t = 2: two receipts leave at most one share, fewer than t.
      const tally = { n: 3, t: 2, committeeId: COMMITTEE_ID, memberPublicKeyOf: keyOf, keyId: 'payments', version: 1 };
      const [r1, r2, r3] = await Promise.all(members.map((m) => receipt(m)));
      assert.deepEqual(destroyedByReceipts([r1!], tally), { valid: [1], destroyed: false });
      assert.deepEqual(destroyedByReceipts([r1!, r1!, await receipt(members[0]!, { erasedAt: NOW + 1 })], tally), { valid: [1], destroyed: false }, 'one member counts once');
      assert.deepEqual(destroyedByReceipts([r2!, r1!], tally), { valid: [1, 2], destroyed: true });
      assert.deepEqual(destroyedByReceipts([r3!, r2!, r1!], tally), { valid: [1, 2, 3], destroyed: true });
      const otherCommittee = await receipt(members[1]!, { committeeId: 'other-committee' });
      assert.deepEqual(destroyedByReceipts([r1!, otherCommittee], tally), { valid: [1], destroyed: false });
      const otherVersion = await receipt(members[1]!, { version: 2 });
      assert.deepEqual(destroyedByReceipts([r1!, otherVersion], tally), { valid: [1], destroyed: false });
      const forged = { ...r2!, signature: r1!.signature };
      assert.deepEqual(destroyedByReceipts([r1!, forged], tally), { valid: [1], destroyed: false });
      // n = 5, t = 3: three are needed.
      const five = { ...tally, n: 5, t: 3 };
      assert.equal(destroyedByReceipts([r1!, r2!], five).destroyed, false);
      assert.equal(destroyedByReceipts([r1!, r2!, r3!], five).destroyed, true);
    });

    it(`refuses a tally of more than ${MAX_RECEIPTS_PER_TALLY} receipts before checking any, and a bad threshold`, async () => {
      const r = await receipt(members[0]!);
      const tally = { n: 3, t: 2, committeeId: COMMITTEE_ID, memberPublicKeyOf: keyOf, keyId: 'payments', version: 1 };
      assert.equal(destroyedByReceipts(Array(MAX_RECEIPTS_PER_TALLY).fill(r), tally).valid.length, 1);
      assert.throws(() => destroyedByReceipts(Array(MAX_RECEIPTS_PER_TALLY + 1).fill(r), tally), (e: unknown) => isTkmsError(e, 'payload_too_large'));
      assert.throws(() => destroyedByReceipts([r], { ...tally, t: 4 }), (e: unknown) => isTkmsError(e, 'bad_request'));
    });
  });
});
