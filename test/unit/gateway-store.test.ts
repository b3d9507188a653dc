import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, open, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_CLOCK_SKEW_SECONDS, DEFAULT_MAX_GRANT_LIFETIME_SECONDS, TkmsError, isTkmsError, type ErrorCode } from '../../core/index.ts';
import {
  DEFAULT_GATEWAY_STORE_LIMITS,
  GatewayStore,
  LOCK_FILE_NAME,
  LOG_FILE_NAME,
  MAX_CIPHERTEXT_BYTES,
  type StoredGrant,
  type StoredHandle,
  type StoredRevocation,
} from '../../gateway/store.ts';
import { AclTable } from '../../gateway/store-acl.ts';
import { CRASH_CHURN_KEYS, CRASH_NOW, crashChurn, crashCiphertext, crashGrant, crashHandle, hasCrashGrant } from '../support/gateway-store-crash-child.ts';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CRASH_CHILD = fileURLToPath(new URL('../support/gateway-store-crash-child.ts', import.meta.url));
const MAGIC_BYTES = 8;
/** The store's clock in these tests (unix seconds): the sample grants and revocations are live then. */
const TEST_NOW = 100;
const HEADER_BYTES = 48;

function hex(n: number, bytes: number): string {
  return n.toString(16).padStart(bytes * 2, '0');
}

function ciphertextFor(i: number, length = 16 + (i % 50)): Uint8Array {
  const out = new Uint8Array(length);
  for (let j = 0; j < length; j++) out[j] = (i * 31 + j * 7) & 0xff;
  return out;
}

function sampleHandle(i: number, ciphertext = ciphertextFor(i)): StoredHandle {
  return {
    handle: `0x${hex(i, 32)}`,
    keyId: `key-${i % 3}`,
    K: `0x02${hex(i, 32)}`,
    nonce: `0x${hex(i, 12)}`,
    ciphertextHash: `0x${createHash('sha256').update(ciphertext).digest('hex')}`,
    owner: `0x${hex(i * 7, 20)}`,
    kProof: `0x${hex(i * 11, 64)}`,
    createdAt: 1_700_000_000_000 + i,
  };
}

function grant(handle: number, grantee: string, issuedAt: number, signature = `sig-${issuedAt}`): StoredGrant {
  return { handle: `0x${hex(handle, 32)}`, grantee, notAfter: issuedAt + 1000, issuedAt, signature };
}

function revocation(handle: number, grantee: string, revokedAt: number, signature = `rev-${revokedAt}`): StoredRevocation {
  return { handle: `0x${hex(handle, 32)}`, grantee, revokedAt, signature };
}

function checkError(caught: unknown, code: ErrorCode): TkmsError {
  assert.ok(caught !== undefined, `expected a ${code} TkmsError, but the call succeeded`);
  assert.ok(isTkmsError(caught), `expected a TkmsError, got ${String(caught)}`);
  assert.equal(caught.code, code, `expected code ${code}, got ${caught.code}: ${caught.message}`);
  return caught;
}

async function rejectsWith(code: ErrorCode, fn: () => Promise<unknown>): Promise<TkmsError> {
  let caught: unknown;
  try {
    await fn();
  } catch (err) {
    caught = err;
  }
  return checkError(caught, code);
}

function throwsWith(code: ErrorCode, fn: () => unknown): TkmsError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  return checkError(caught, code);
}

interface FrameInfo {
  offset: number;
  metaLength: number;
  blobLength: number;
  batch: number;
  end: number;
}

/** Walks the record headers of a log (lengths and batch numbers; checksums are not verified). */
function frames(log: Buffer): FrameInfo[] {
  const out: FrameInfo[] = [];
  let offset = MAGIC_BYTES;
  while (offset + HEADER_BYTES <= log.length) {
    const metaLength = log.readUInt32BE(offset);
    const blobLength = log.readUInt32BE(offset + 4);
    const batch = Number(log.readBigUInt64BE(offset + 8));
    const end = offset + HEADER_BYTES + metaLength + blobLength;
    if (end > log.length) break;
    out.push({ offset, metaLength, blobLength, batch, end });
    offset = end;
  }
  return out;
}

function modeOf(info: { mode: number }): number {
  return info.mode & 0o777;
}

/** A pid that is certainly not running: a child that has exited and been reaped. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await new Promise((r) => child.once('exit', r));
  return child.pid!;
}

describe('gateway/store', function () {
  this.timeout(60_000);
  let root: string;
  let counter = 0;
  const freshDir = (): string => join(root, `store-${counter++}`);
  const opened: GatewayStore[] = [];
  /** Opens a store that `afterEach` closes if the test did not. */
  async function openStore(dir: string, warnings?: string[]): Promise<GatewayStore> {
    const store = await GatewayStore.open(dir, { now: () => TEST_NOW, ...(warnings ? { onWarning: (m: string) => warnings.push(m) } : {}) });
    opened.push(store);
    return store;
  }

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'tkms-gateway-store-'));
  });
  afterEach(async () => {
    for (const store of opened.splice(0)) await store.close();
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  describe('round trip', () => {
    it('stores handles, ciphertexts (0 bytes to 1 MiB), grants and revocations', async () => {
      const store = await openStore(freshDir());
      assert.deepEqual(store.stats(), { handles: 0, grants: 0, revocations: 0, logBytes: MAGIC_BYTES });
      const sizes = [0, 1, 33, 4096, MAX_CIPHERTEXT_BYTES];
      for (const [i, size] of sizes.entries()) {
        const ct = ciphertextFor(i, size);
        assert.deepEqual(await store.putHandle(sampleHandle(i, ct), ct), { created: true });
      }
      for (const [i, size] of sizes.entries()) {
        assert.deepEqual(store.getHandle(`0x${hex(i, 32)}`), sampleHandle(i, ciphertextFor(i, size)));
        assert.deepEqual(await store.readCiphertext(`0x${hex(i, 32)}`), ciphertextFor(i, size));
      }
      assert.equal(store.getHandle(`0x${hex(99, 32)}`), undefined);
      assert.equal(await store.readCiphertext(`0x${hex(99, 32)}`), undefined);

      assert.equal(await store.putGrant(grant(1, 'bob', 10)), true);
      assert.equal(await store.putGrant(grant(1, 'alice', 12)), true);
      assert.equal(await store.putRevocation(revocation(1, 'bob', 20)), true);
      assert.deepEqual(store.getGrant(`0x${hex(1, 32)}`, 'bob'), grant(1, 'bob', 10));
      assert.deepEqual(store.listGrants(`0x${hex(1, 32)}`), [grant(1, 'alice', 12), grant(1, 'bob', 10)]);
      assert.deepEqual(store.listGrants(`0x${hex(2, 32)}`), []);
      assert.equal(store.grantCount(`0x${hex(1, 32)}`), 2);
      assert.equal(store.grantCount(`0x${hex(2, 32)}`), 0);
      assert.equal(store.getGrant(`0x${hex(1, 32)}`, 'carol'), undefined);
      assert.deepEqual(store.getRevocation(`0x${hex(1, 32)}`, 'bob'), revocation(1, 'bob', 20));
      assert.equal(store.getRevocation(`0x${hex(1, 32)}`, 'alice'), undefined);
      const stats = store.stats();
      assert.deepEqual({ ...stats, logBytes: 0 }, { handles: sizes.length, grants: 2, revocations: 1, logBytes: 0 });
      assert.equal(stats.logBytes, (await stat(join(store.dir, LOG_FILE_NAME))).size);
    });

    it('keeps its own copies: callers cannot change stored values through arguments or results', async () => {
      const store = await openStore(freshDir());
      const ct = ciphertextFor(1);
      const meta = sampleHandle(1, ct);
      const g = grant(1, 'bob', 5);
      const put = store.putHandle(meta, ct);
      const putG = store.putGrant(g);
      ct.fill(0); // mutated before the write happened
      meta.owner = 'changed';
      g.signature = 'changed';
      await Promise.all([put, putG]);
      assert.deepEqual(await store.readCiphertext(sampleHandle(1).handle), ciphertextFor(1));
      assert.equal(store.getHandle(sampleHandle(1).handle)!.owner, sampleHandle(1).owner);
      store.getHandle(sampleHandle(1).handle)!.keyId = 'mutated';
      store.listGrants(g.handle)[0]!.issuedAt = 0;
      assert.deepEqual(store.getHandle(sampleHandle(1).handle), sampleHandle(1));
      assert.deepEqual(store.getGrant(g.handle, 'bob'), grant(1, 'bob', 5));
    });
  });

  describe('putHandle is idempotent', () => {
    it('leaves an existing handle as is and writes nothing', async () => {
      const store = await openStore(freshDir());
      assert.deepEqual(await store.putHandle(sampleHandle(7), ciphertextFor(7)), { created: true });
      const bytes = store.stats().logBytes;
      const other = { ...sampleHandle(8), handle: sampleHandle(7).handle };
      assert.deepEqual(await store.putHandle(other, ciphertextFor(8)), { created: false });
      assert.deepEqual(await store.putHandle(sampleHandle(7), ciphertextFor(7)), { created: false });
      assert.deepEqual(store.getHandle(sampleHandle(7).handle), sampleHandle(7));
      assert.deepEqual(await store.readCiphertext(sampleHandle(7).handle), ciphertextFor(7));
      assert.equal(store.stats().logBytes, bytes);
      assert.equal(store.stats().handles, 1);
    });

    it('lets exactly the first of concurrent puts of one handle create it, and writes it once', async () => {
      const dir = freshDir();
      const store = await openStore(dir);
      const handle = sampleHandle(3).handle;
      const results = await Promise.all(
        [3, 4, 5, 6].map((i) => store.putHandle({ ...sampleHandle(i), handle }, ciphertextFor(i))),
      );
      assert.deepEqual(
        results.map((r) => r.created),
        [true, false, false, false],
      );
      assert.deepEqual(await store.readCiphertext(handle), ciphertextFor(3));
      await store.close();
      const log = await readFile(join(dir, LOG_FILE_NAME));
      assert.equal(frames(log).length, 1, 'the duplicates must not be written');
    });
  });

  describe('grant and revocation ordering', () => {
    it('keeps, per (handle, grantee), the grant with the greatest issuedAt; ties keep the existing one', async () => {
      const dir = freshDir();
      const store = await openStore(dir);
      const h = `0x${hex(1, 32)}`;
      assert.equal(await store.putGrant(grant(1, 'bob', 10, 'first')), true);
      assert.equal(await store.putGrant(grant(1, 'bob', 5)), false);
      assert.equal(await store.putGrant(grant(1, 'bob', 10, 'second')), false);
      assert.equal(store.getGrant(h, 'bob')!.signature, 'first');
      assert.equal(await store.putGrant(grant(1, 'bob', 11, 'newer')), true);
      assert.deepEqual(store.getGrant(h, 'bob'), grant(1, 'bob', 11, 'newer'));
      // Other grantees and other handles are independent.
      assert.equal(await store.putGrant(grant(1, 'alice', 1)), true);
      assert.equal(await store.putGrant(grant(2, 'bob', 1)), true);
      assert.equal(store.stats().grants, 3);

      // Decided in call order within one batch, too.
      const batch = await Promise.all([
        store.putGrant(grant(1, 'carol', 20, 'a')),
        store.putGrant(grant(1, 'carol', 20, 'b')),
        store.putGrant(grant(1, 'carol', 19)),
        store.putGrant(grant(1, 'carol', 21, 'c')),
        store.putGrant(grant(1, 'carol', 21, 'd')),
      ]);
      assert.deepEqual(batch, [true, false, false, true, false]);
      assert.deepEqual(store.getGrant(h, 'carol'), grant(1, 'carol', 21, 'c'));
      assert.deepEqual(
        store.listGrants(h).map((g) => [g.grantee, g.issuedAt]),
        [
          ['alice', 1],
          ['bob', 11],
          ['carol', 21],
        ],
      );
      await store.close();
      const reopened = await openStore(dir);
      assert.deepEqual(reopened.listGrants(h), [grant(1, 'alice', 1), grant(1, 'bob', 11, 'newer'), grant(1, 'carol', 21, 'c')]);
      assert.equal(reopened.stats().grants, 4);
    });

    it('keeps, per (handle, grantee), the revocation with the greatest revokedAt; ties keep the existing one', async () => {
      const dir = freshDir();
      const store = await openStore(dir);
      const h = `0x${hex(1, 32)}`;
      assert.equal(await store.putRevocation(revocation(1, 'bob', 10, 'first')), true);
      assert.equal(await store.putRevocation(revocation(1, 'bob', 9)), false);
      assert.equal(await store.putRevocation(revocation(1, 'bob', 10, 'second')), false);
      assert.equal(store.getRevocation(h, 'bob')!.signature, 'first');
      const batch = await Promise.all([
        store.putRevocation(revocation(1, 'bob', 30, 'x')),
        store.putRevocation(revocation(1, 'bob', 12)),
        store.putRevocation(revocation(1, 'alice', 1)),
      ]);
      assert.deepEqual(batch, [true, false, true]);
      assert.deepEqual(store.getRevocation(h, 'bob'), revocation(1, 'bob', 30, 'x'));
      assert.equal(store.stats().revocations, 2);
      // Revocations and grants are kept apart: the store applies no policy between them.
      assert.equal(store.getGrant(h, 'bob'), undefined);
      await store.close();
      const reopened = await openStore(dir);
      assert.deepEqual(reopened.getRevocation(h, 'bob'), revocation(1, 'bob', 30, 'x'));
      assert.deepEqual(reopened.getRevocation(h, 'alice'), revocation(1, 'alice', 1));
      assert.equal(reopened.stats().revocations, 2);
    });
  });

  describe('reopen', () => {
    it('reads everything back after close, ciphertext bytes exactly', async () => {
      const dir = freshDir();
      const store = await openStore(dir);
      const sizes = [0, 5, 1000, 200_000, MAX_CIPHERTEXT_BYTES, 17];
      for (const [i, size] of sizes.entries()) await store.putHandle(sampleHandle(i, ciphertextFor(i, size)), ciphertextFor(i, size));
      await store.putGrant(grant(0, 'g', 1));
      await store.putGrant(grant(0, 'g', 2));
      await store.putRevocation(revocation(4, 'r', 3));
      const before = store.stats();
      await store.close();

      const reopened = await openStore(dir);
      assert.deepEqual(reopened.stats(), before);
      for (const [i, size] of sizes.entries()) {
        assert.deepEqual(reopened.getHandle(`0x${hex(i, 32)}`), sampleHandle(i, ciphertextFor(i, size)));
        assert.deepEqual(await reopened.readCiphertext(`0x${hex(i, 32)}`), ciphertextFor(i, size));
      }
      assert.deepEqual(reopened.getGrant(`0x${hex(0, 32)}`, 'g'), grant(0, 'g', 2));
      assert.deepEqual(reopened.getRevocation(`0x${hex(4, 32)}`, 'r'), revocation(4, 'r', 3));
      // And it keeps appending where it left off.
      await reopened.putHandle(sampleHandle(50), ciphertextFor(50));
      await reopened.close();
      const third = await openStore(dir);
      assert.equal(third.stats().handles, sizes.length + 1);
      assert.deepEqual(await third.readCiphertext(sampleHandle(50).handle), ciphertextFor(50));
    });

    it('detects ciphertext bytes changed on disk after open', async () => {
      const dir = freshDir();
      const store = await openStore(dir);
      await store.putHandle(sampleHandle(1), ciphertextFor(1, 100));
      const log = await readFile(join(dir, LOG_FILE_NAME));
      const f = frames(log)[0]!;
      const fh = await open(join(dir, LOG_FILE_NAME), 'r+');
      await fh.write(Buffer.from([log[f.end - 1]! ^ 1]), 0, 1, f.end - 1);
      await fh.close();
      const err = await rejectsWith('internal', () => store.readCiphertext(sampleHandle(1).handle));
      assert.match(err.message, /checksum/);
    });
  });

  describe('crash recovery on open', () => {
    /** A store holding handles 0..n-1, each put on its own (so each record is its own batch). */
    async function sequentialStore(n: number, size = 40): Promise<{ dir: string; log: Buffer }> {
      const dir = freshDir();
      const store = await GatewayStore.open(dir);
      for (let i = 0; i < n; i++) await store.putHandle(sampleHandle(i, ciphertextFor(i, size)), ciphertextFor(i, size));
      await store.close();
      return { dir, log: await readFile(join(dir, LOG_FILE_NAME)) };
    }

    async function assertHolds(store: GatewayStore, indices: number[], size = 40): Promise<void> {
      for (const i of indices) {
        assert.deepEqual(store.getHandle(`0x${hex(i, 32)}`), sampleHandle(i, ciphertextFor(i, size)), `handle ${i}`);
        assert.deepEqual(await store.readCiphertext(`0x${hex(i, 32)}`), ciphertextFor(i, size), `ciphertext ${i}`);
      }
    }

    it('truncates a torn last record at every cut point and keeps all earlier records', async () => {
      const { dir, log } = await sequentialStore(4, 3000);
      const last = frames(log).at(-1)!;
      const recordBytes = last.end - last.offset;
      for (const keep of [1, 4, 8, 16, 47, 48, 49, 60, recordBytes - 1000, recordBytes - 1]) {
        await writeFile(join(dir, LOG_FILE_NAME), log.subarray(0, last.offset + keep));
        const warnings: string[] = [];
        const store = await openStore(dir, warnings);
        assert.equal(warnings.length, 1, `cut at ${keep}: ${warnings.join('; ')}`);
        assert.match(warnings[0]!, new RegExp(`truncated ${keep} bytes of a torn write at offset ${last.offset} `));
        await assertHolds(store, [0, 1, 2], 3000);
        assert.equal(store.getHandle(`0x${hex(3, 32)}`), undefined);
        assert.equal(store.stats().logBytes, last.offset);
        await store.close();
        assert.equal((await stat(join(dir, LOG_FILE_NAME))).size, last.offset, 'the torn bytes are cut off the file');
      }
    });

    it('truncates garbage and zeros after the last record, then appends and reopens cleanly', async () => {
      const { dir, log } = await sequentialStore(3);
      const tails = [Buffer.alloc(4096), Buffer.from('garbage that is not a record at all'), Buffer.alloc(HEADER_BYTES + 10, 0xff)];
      for (const tail of tails) {
        await writeFile(join(dir, LOG_FILE_NAME), Buffer.concat([log, tail]));
        const warnings: string[] = [];
        const store = await openStore(dir, warnings);
        assert.equal(warnings.length, 1);
        assert.match(warnings[0]!, new RegExp(`truncated ${tail.length} bytes `));
        await assertHolds(store, [0, 1, 2]);
        await store.putHandle(sampleHandle(9, ciphertextFor(9, 40)), ciphertextFor(9, 40));
        await store.close();
        const clean: string[] = [];
        const again = await openStore(dir, clean);
        assert.deepEqual(clean, []);
        await assertHolds(again, [0, 1, 2, 9]);
        await again.close();
        await writeFile(join(dir, LOG_FILE_NAME), log);
      }
    });

    it('completes a log whose creation was interrupted, and refuses a file that is not a store log', async () => {
      const dir = freshDir();
      await mkdir(dir, { mode: 0o700 });
      await writeFile(join(dir, LOG_FILE_NAME), 'TKMS');
      const warnings: string[] = [];
      const store = await openStore(dir, warnings);
      assert.equal(warnings.length, 1);
      assert.equal(store.stats().logBytes, MAGIC_BYTES);
      await store.putHandle(sampleHandle(1), ciphertextFor(1));
      await store.close();
      assert.equal((await openStore(dir)).stats().handles, 1);

      const other = freshDir();
      await mkdir(other, { mode: 0o700 });
      for (const content of ['hello, world', 'TKMSXXXX', 'tk']) {
        await writeFile(join(other, LOG_FILE_NAME), content);
        const err = await rejectsWith('internal', () => GatewayStore.open(other));
        assert.match(err.message, /not a tkms gateway store log/);
        assert.equal(await readFile(join(other, LOG_FILE_NAME), 'utf8'), content, 'left untouched');
      }
    });

    it('refuses to open on damage in the middle of the log, naming the file and offset, and changes nothing', async () => {
      const { dir, log } = await sequentialStore(6);
      const fs = frames(log);
      const target = fs[2]!;
      const logPath = join(dir, LOG_FILE_NAME);
      const damages: [string, number][] = [
        ['meta byte', target.offset + HEADER_BYTES + 3],
        ['blob byte', target.end - 1],
        ['check byte', target.offset + 20],
        ['batch byte', target.offset + 15],
        ['length byte', target.offset + 3],
        ['length high byte', target.offset],
      ];
      for (const [what, at] of damages) {
        const damaged = Buffer.from(log);
        damaged[at] = damaged[at]! ^ 0x40;
        await writeFile(logPath, damaged);
        const err = await rejectsWith('internal', () => GatewayStore.open(dir));
        assert.ok(err.message.includes(logPath), `${what}: message names the file: ${err.message}`);
        assert.ok(err.message.includes(`offset ${target.offset}`), `${what}: message names the offset: ${err.message}`);
        assert.deepEqual(err.details, { file: logPath, offset: target.offset });
        assert.deepEqual(await readFile(logPath), damaged, `${what}: the log must be left untouched`);
      }
      // The refused opens released the lock: the repaired log opens.
      await writeFile(logPath, log);
      const store = await openStore(dir);
      await assertHolds(store, [0, 1, 2, 3, 4, 5]);
    });

    it('refuses damage to the second-to-last record (it was followed by a later, acknowledged batch)', async () => {
      const { dir, log } = await sequentialStore(4);
      const fs = frames(log);
      const damaged = Buffer.from(log);
      const at = fs[2]!.offset + HEADER_BYTES + 1;
      damaged[at] = damaged[at]! ^ 1;
      await writeFile(join(dir, LOG_FILE_NAME), damaged);
      const err = await rejectsWith('internal', () => GatewayStore.open(dir));
      assert.match(err.message, /followed by an intact record of batch 4/);
    });

    it('refuses damage more than one write batch before the end', async () => {
      const { dir, log } = await sequentialStore(6, MAX_CIPHERTEXT_BYTES);
      const damaged = Buffer.from(log);
      const at = frames(log)[0]!.offset + HEADER_BYTES + 1;
      damaged[at] = damaged[at]! ^ 1;
      await writeFile(join(dir, LOG_FILE_NAME), damaged);
      const err = await rejectsWith('internal', () => GatewayStore.open(dir));
      assert.match(err.message, /more than one write batch/);
      assert.match(err.message, new RegExp(`offset ${MAGIC_BYTES}:`));
    });

    it('refuses an intact record that is not a valid store record', async () => {
      // Records whose checksum is right but whose content is not: only a bug or a forger writes those.
      const { dir, log } = await sequentialStore(2);
      // Re-frame record 0 with valid checksums around bad JSON, using the store's own framing rules.
      const bad = Buffer.from('{"type":"handle","value":{"handle":1}}');
      const f0 = frames(log)[0]!;
      const header = Buffer.alloc(HEADER_BYTES);
      header.writeUInt32BE(bad.length, 0);
      header.writeUInt32BE(0, 4);
      header.writeBigUInt64BE(1n, 8);
      const pos = Buffer.alloc(8);
      pos.writeBigUInt64BE(BigInt(f0.offset));
      const sha = (b: Uint8Array): Buffer => createHash('sha256').update(b).digest();
      createHash('sha256')
        .update('tkms/gateway-store/record/v1')
        .update(header.subarray(0, 16))
        .update(pos)
        .update(sha(bad))
        .update(sha(Buffer.alloc(0)))
        .digest()
        .copy(header, 16);
      await writeFile(join(dir, LOG_FILE_NAME), Buffer.concat([log.subarray(0, f0.offset), header, bad]));
      const err = await rejectsWith('internal', () => GatewayStore.open(dir));
      assert.match(err.message, /intact record is not a valid store record/);
    });

    it('treats a hole inside the last batch (power loss before its fdatasync) as a torn tail', async () => {
      const dir = freshDir();
      const store = await GatewayStore.open(dir);
      await store.putHandle(sampleHandle(0, ciphertextFor(0, 40)), ciphertextFor(0, 40));
      // One batch of five records.
      await Promise.all([1, 2, 3, 4, 5].map((i) => store.putHandle(sampleHandle(i, ciphertextFor(i, 40)), ciphertextFor(i, 40))));
      await store.close();
      const log = await readFile(join(dir, LOG_FILE_NAME));
      const fs = frames(log);
      assert.deepEqual(
        fs.map((f) => f.batch),
        [1, 2, 2, 2, 2, 2],
      );
      const damaged = Buffer.from(log);
      damaged.fill(0, fs[3]!.offset, fs[3]!.end);
      await writeFile(join(dir, LOG_FILE_NAME), damaged);
      const warnings: string[] = [];
      const reopened = await openStore(dir, warnings);
      assert.equal(warnings.length, 1);
      await assertHolds(reopened, [0, 1, 2]);
      assert.equal(reopened.stats().handles, 3);
    });
  });

  describe('lock', () => {
    it('refuses a second open while the first is open, also through another path, and allows it after close', async () => {
      const dir = freshDir();
      const first = await openStore(dir);
      assert.equal(await readFile(join(dir, LOCK_FILE_NAME), 'utf8'), `${process.pid}\n`);
      const err = await rejectsWith('conflict', () => GatewayStore.open(dir));
      assert.match(err.message, /already open/);
      const alias = join(root, `alias-${counter++}`);
      await symlink(dir, alias);
      await rejectsWith('conflict', () => GatewayStore.open(alias));
      await rejectsWith('conflict', () => GatewayStore.open(`${dir}/./`));
      await first.close();
      await assert.rejects(stat(join(dir, LOCK_FILE_NAME)), /ENOENT/, 'close removes LOCK');
      const second = await openStore(alias);
      assert.equal(second.stats().handles, 0);
    });

    it('refuses a store locked by another running process', async () => {
      const dir = freshDir();
      await (await GatewayStore.open(dir)).close();
      const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
      try {
        await writeFile(join(dir, LOCK_FILE_NAME), `${holder.pid}\n`);
        const err = await rejectsWith('conflict', () => GatewayStore.open(dir));
        assert.ok(err.message.includes(`process ${holder.pid}`), err.message);
        assert.equal(await readFile(join(dir, LOCK_FILE_NAME), 'utf8'), `${holder.pid}\n`, 'a live lock is never touched');
      } finally {
        holder.kill('SIGKILL');
      }
    });

    it('takes over a stale lock (dead pid, our own pid from an earlier run, or unreadable content)', async () => {
      const dir = freshDir();
      await (await GatewayStore.open(dir)).close();
      for (const content of [`${await deadPid()}\n`, `${process.pid}\n`, '', 'not a pid']) {
        await writeFile(join(dir, LOCK_FILE_NAME), content);
        const warnings: string[] = [];
        const store = await openStore(dir, warnings);
        assert.equal(warnings.length, 1, JSON.stringify(content));
        assert.match(warnings[0]!, /took over the stale lock/);
        assert.equal(await readFile(join(dir, LOCK_FILE_NAME), 'utf8'), `${process.pid}\n`);
        await store.close();
      }
    });

    it('lets exactly one of concurrent opens win', async () => {
      const dir = freshDir();
      const results = await Promise.allSettled([GatewayStore.open(dir), GatewayStore.open(dir), GatewayStore.open(dir)]);
      const won = results.filter((r): r is PromiseFulfilledResult<GatewayStore> => r.status === 'fulfilled');
      assert.equal(won.length, 1);
      for (const r of results) if (r.status === 'rejected') assert.ok(isTkmsError(r.reason, 'conflict'), String(r.reason));
      await won[0]!.value.close();
    });
  });

  describe('closed store', () => {
    it('throws unavailable from every call after close; close is idempotent', async () => {
      const store = await GatewayStore.open(freshDir());
      await store.putHandle(sampleHandle(1), ciphertextFor(1));
      await store.close();
      await store.close();
      const h = sampleHandle(1).handle;
      for (const fn of [() => store.getHandle(h), () => store.getGrant(h, 'x'), () => store.listGrants(h), () => store.getRevocation(h, 'x'), () => store.stats()]) {
        const err = throwsWith('unavailable', fn);
        assert.equal(err.message, 'store is closed');
      }
      await rejectsWith('unavailable', () => store.putHandle(sampleHandle(2), ciphertextFor(2)));
      await rejectsWith('unavailable', () => store.readCiphertext(h));
      await rejectsWith('unavailable', () => store.putGrant(grant(1, 'x', 1)));
      await rejectsWith('unavailable', () => store.putRevocation(revocation(1, 'x', 1)));
    });

    it('close waits for pending writes and reads', async () => {
      const dir = freshDir();
      const store = await GatewayStore.open(dir);
      await store.putHandle(sampleHandle(0, ciphertextFor(0, MAX_CIPHERTEXT_BYTES)), ciphertextFor(0, MAX_CIPHERTEXT_BYTES));
      const puts = Array.from({ length: 20 }, (_, i) => store.putHandle(sampleHandle(i + 1), ciphertextFor(i + 1)));
      const read = store.readCiphertext(sampleHandle(0).handle);
      const closed = store.close();
      const results = await Promise.all(puts);
      assert.ok(results.every((r) => r.created));
      assert.deepEqual(await read, ciphertextFor(0, MAX_CIPHERTEXT_BYTES));
      await closed;
      const reopened = await openStore(dir);
      assert.equal(reopened.stats().handles, 21);
    });
  });

  describe('validation', () => {
    it('rejects wrongly typed records with bad_request and writes nothing', async () => {
      const store = await openStore(freshDir());
      const good = sampleHandle(1);
      const handleCases: unknown[] = [
        null,
        'x',
        [],
        { ...good, handle: 5 },
        { ...good, keyId: undefined },
        { ...good, K: null },
        { ...good, nonce: {} },
        { ...good, ciphertextHash: ['0x'] },
        { ...good, owner: '' },
        { ...good, owner: 'x'.repeat(5000) },
        { ...good, kProof: undefined },
        { ...good, kProof: 7 },
        { ...good, kProof: '' },
        { ...good, createdAt: '1' },
        { ...good, createdAt: Number.NaN },
        { ...good, createdAt: -1 },
        { ...good, createdAt: 1.5 },
        { ...good, createdAt: 2 ** 53 },
        { ...good, createdAt: 10n },
      ];
      for (const meta of handleCases) {
        await rejectsWith('bad_request', () => store.putHandle(meta as StoredHandle, ciphertextFor(1)));
      }
      for (const ct of [null, [1, 2], 'abc', new ArrayBuffer(4), new Uint16Array(2)]) {
        // Uint16Array is not a Uint8Array; ArrayBuffer is not a view.
        await rejectsWith('bad_request', () => store.putHandle(good, ct as unknown as Uint8Array));
      }
      await rejectsWith('payload_too_large', () => store.putHandle(good, new Uint8Array(MAX_CIPHERTEXT_BYTES + 1)));
      const g = grant(1, 'bob', 1);
      for (const bad of [null, { ...g, grantee: 1 }, { ...g, notAfter: '5' }, { ...g, issuedAt: Infinity }, { ...g, signature: undefined }]) {
        await rejectsWith('bad_request', () => store.putGrant(bad as StoredGrant));
      }
      const r = revocation(1, 'bob', 1);
      for (const bad of [undefined, { ...r, handle: null }, { ...r, revokedAt: -5 }, { ...r, signature: 7 }]) {
        await rejectsWith('bad_request', () => store.putRevocation(bad as StoredRevocation));
      }
      assert.deepEqual(store.stats(), { handles: 0, grants: 0, revocations: 0, logBytes: MAGIC_BYTES });
    });

    it('refuses a store path that is a file', async () => {
      const path = join(root, `file-${counter++}`);
      await writeFile(path, 'x');
      await rejectsWith('bad_request', () => GatewayStore.open(path));
    });
  });

  describe('files on disk', () => {
    it('creates the directory 0700 and files 0600 even with a permissive umask', async () => {
      const previous = process.umask(0o000);
      try {
        const dir = join(freshDir(), 'nested');
        const store = await openStore(dir);
        await store.putHandle(sampleHandle(1), ciphertextFor(1));
        assert.equal(modeOf(await stat(dir)), 0o700);
        assert.equal(modeOf(await stat(join(dir, LOG_FILE_NAME))), 0o600);
        assert.equal(modeOf(await stat(join(dir, LOCK_FILE_NAME))), 0o600);
      } finally {
        process.umask(previous);
      }
    });
  });

  describe('group commit', () => {
    it('makes 200 concurrent putHandle calls durable, sharing fdatasyncs', async function () {
      const dir = freshDir();
      const store = await openStore(dir);
      const n = 200;
      const results = await Promise.all(Array.from({ length: n }, (_, i) => store.putHandle(sampleHandle(i, ciphertextFor(i, 100 + i)), ciphertextFor(i, 100 + i))));
      assert.ok(results.every((r) => r.created));
      await store.close();
      const log = await readFile(join(dir, LOG_FILE_NAME));
      const batches = new Set(frames(log).map((f) => f.batch)).size;
      assert.equal(frames(log).length, n);
      assert.ok(batches < n / 4, `${batches} batches for ${n} concurrent puts: writers are not sharing fdatasyncs`);
      const reopened = await openStore(dir);
      assert.equal(reopened.stats().handles, n);
      for (let i = 0; i < n; i++) {
        assert.deepEqual(reopened.getHandle(sampleHandle(i).handle), sampleHandle(i, ciphertextFor(i, 100 + i)));
        assert.deepEqual(await reopened.readCiphertext(sampleHandle(i).handle), ciphertextFor(i, 100 + i));
      }
      this.test!.title += ` (${batches} batches)`;
    });

    it('queues writers that arrive while an fdatasync is in flight and commits them together next', async () => {
      const dir = freshDir();
      const store = await openStore(dir);
      const first = store.putHandle(sampleHandle(0), ciphertextFor(0));
      await new Promise((r) => setImmediate(r)); // the first batch is now being written
      const rest = Array.from({ length: 100 }, (_, i) => store.putHandle(sampleHandle(i + 1), ciphertextFor(i + 1)));
      await Promise.all([first, ...rest]);
      await store.close();
      const batches = frames(await readFile(join(dir, LOG_FILE_NAME))).map((f) => f.batch);
      assert.equal(batches.length, 101);
      assert.equal(batches[0], 1);
      assert.ok(new Set(batches.slice(1)).size <= 2, `later writers used ${new Set(batches.slice(1)).size} batches`);
    });
  });

  describe('expiry, bounds and compaction of grants and revocations', () => {
    const LIFETIME = 100;
    const SKEW = 5;
    let clock = 1_000;
    const limits = (grants = { perOwner: 1_000, max: 10_000 }, revocations = { perOwner: 1_000, max: 10_000 }) => ({ maxGrantLifetimeSeconds: LIFETIME, clockSkewSeconds: SKEW, grants, revocations });
    async function open(dir: string, extra: Parameters<typeof GatewayStore.open>[1] = {}): Promise<GatewayStore> {
      const store = await GatewayStore.open(dir, { now: () => clock, limits: limits(), ...extra });
      opened.push(store);
      return store;
    }
    const g = (handle: number, grantee: string, issuedAt: number, notAfter = issuedAt + 50): StoredGrant => ({ handle: `0x${hex(handle, 32)}`, grantee, issuedAt, notAfter, signature: `sig-${issuedAt}` });
    const r = (handle: number, grantee: string, revokedAt: number, signature = `rev-${revokedAt}`): StoredRevocation => ({ handle: `0x${hex(handle, 32)}`, grantee, revokedAt, signature });
    const h1 = `0x${hex(1, 32)}`;
    beforeEach(() => {
      clock = 1_000;
    });

    it("defaults to core/authz.ts's grant lifetime and clock skew", () => {
      assert.equal(DEFAULT_GATEWAY_STORE_LIMITS.maxGrantLifetimeSeconds, DEFAULT_MAX_GRANT_LIFETIME_SECONDS);
      assert.equal(DEFAULT_GATEWAY_STORE_LIMITS.clockSkewSeconds, DEFAULT_CLOCK_SKEW_SECONDS);
    });

    it('drops a grant after min(notAfter, issuedAt + lifetime) + skew and a revocation after revokedAt + lifetime + skew, also at open', async () => {
      const dir = freshDir();
      const store = await open(dir);
      await store.putHandle(sampleHandle(1), ciphertextFor(1));
      assert.equal(await store.putGrant(g(1, 'short', 1_000, 1_050)), true); // ends 1_055
      assert.equal(await store.putGrant(g(1, 'long', 1_000, 9_999)), true); // longer than the lifetime: ends 1_105
      assert.equal(await store.putRevocation(r(1, 'short', 1_000)), true); // ends 1_105
      clock = 1_055;
      assert.equal(store.stats().grants, 2);
      clock = 1_056;
      assert.equal(store.getGrant(h1, 'short'), undefined);
      assert.deepEqual(store.listGrants(h1).map((x) => x.grantee), ['long']);
      assert.ok(store.getRevocation(h1, 'short'));
      // Already expired, or from the future: not stored.
      assert.equal(await store.putGrant(g(1, 'old', 900, 950)), false);
      assert.equal(await store.putRevocation(r(1, 'old', 1_056 - LIFETIME - SKEW - 1)), false);
      await rejectsWith('bad_request', () => store.putGrant(g(1, 'future', 1_056 + SKEW + 1)));
      assert.equal(await store.putGrant(g(1, 'edge', 1_056 + SKEW)), true);
      await store.close();
      clock = 1_106;
      const reopened = await open(dir);
      assert.deepEqual(reopened.stats().grants, 1);
      assert.equal(reopened.getGrant(h1, 'long'), undefined);
      assert.equal(reopened.getRevocation(h1, 'short'), undefined);
      assert.ok(reopened.getGrant(h1, 'edge'));
    });

    it('drops, at open, a grant issued later than now + skew (stored before that was refused), so it no longer hides later grants', async () => {
      const dir = freshDir();
      const before = await open(dir);
      await before.putHandle(sampleHandle(1), ciphertextFor(1));
      assert.equal(await before.putGrant(g(1, 'bob', 990)), true);
      await before.close();
      // What a gateway with its clock a day ahead, or one that did not check issuedAt, stored.
      const ahead = await open(dir, { now: () => 1_000 + 86_000 });
      assert.equal(await ahead.putGrant(g(1, 'bob', 1_000 + 86_000, 1_000 + 86_050)), true);
      await ahead.close();
      const warnings: string[] = [];
      const store = await open(dir, { onWarning: (m) => warnings.push(m) });
      assert.ok(warnings.some((w) => /dropped 1 grant\(s\) issued later than now/.test(w)), warnings.join('; '));
      // The earlier grant is back in force, and a new one is stored over it.
      assert.deepEqual(store.getGrant(h1, 'bob'), g(1, 'bob', 990));
      assert.equal(await store.putGrant(g(1, 'bob', 1_000)), true);
      await store.close();
      // Gone from disk: once the clock reaches its issuedAt it does not come back.
      clock = 1_000 + 86_001;
      const later = await open(dir);
      assert.equal(later.getGrant(h1, 'bob'), undefined, 'the grant of 1_000 has expired, and the future one was dropped for good');
      const log = await readFile(join(dir, LOG_FILE_NAME));
      assert.ok(!log.includes(Buffer.from(`sig-${1_000 + 86_000}`)));
    });

    it('refuses the grant or revocation past the per-owner bound (rate_limited), and when full refuses only an owner holding as many as any (unavailable)', async () => {
      for (const kind of ['grant', 'revocation'] as const) {
        const dir = freshDir();
        const bound = { perOwner: 3, max: 4 };
        const store = await open(dir, { limits: kind === 'grant' ? limits(bound) : limits(undefined, bound) });
        const put = (handle: number, grantee: string, t = 1_000): Promise<boolean> => (kind === 'grant' ? store.putGrant(g(handle, grantee, t)) : store.putRevocation(r(handle, grantee, t)));
        const count = (): number => (kind === 'grant' ? store.stats().grants : store.stats().revocations);
        const has = (handle: number, grantee: string): boolean => (kind === 'grant' ? store.getGrant(`0x${hex(handle, 32)}`, grantee) : store.getRevocation(`0x${hex(handle, 32)}`, grantee)) !== undefined;
        for (const i of [1, 2, 3, 4]) await store.putHandle(sampleHandle(i), ciphertextFor(i)); // four owners
        // Owner of handle 1: three at once, then a fourth is refused; superseding one is not a new entry.
        const results = await Promise.allSettled(['a', 'b', 'c', 'd'].map((x) => put(1, x)));
        assert.equal(results.filter((x) => x.status === 'fulfilled').length, 3, kind);
        const refused = results.find((x) => x.status === 'rejected') as PromiseRejectedResult;
        assert.equal(checkError(refused.reason, 'rate_limited').code, 'rate_limited');
        assert.match((refused.reason as Error).message, new RegExp(`3 live ${kind}s`));
        assert.equal(await put(1, 'a', 1_001), true);
        // Owner 2 fills the store (4); owner 1 (3, the most) cannot displace anyone.
        assert.equal(await put(2, 'a'), true);
        assert.equal(count(), 4);
        // Owner 3 holds fewer than the largest: owner 1's oldest entry makes room.
        assert.equal(await put(3, 'a'), true);
        assert.equal(count(), 4);
        assert.equal(has(1, 'a') && has(1, 'b') && has(1, 'c'), false, `${kind}: owner 1 lost one`);
        assert.ok(has(3, 'a'));
        // Now owners 1 (2), 2 (1), 3 (1): owner 1 holds as many as anyone. A grant is refused; a
        // revocation never is (it must reach the nodes), and what gives way stays in force.
        const all: [number, string][] = [[1, 'a'], [1, 'b'], [1, 'c'], [2, 'a'], [3, 'a']];
        if (kind === 'grant') {
          const full = await rejectsWith('unavailable', () => put(1, 'e'));
          assert.match(full.message, /holds as many/);
        } else {
          // Later than owner 1's watermark (1000, from the entry folded above): a new revocation.
          assert.equal(await put(1, 'e', 1_002), true);
          assert.equal(count(), 4);
          all.push([1, 'e']);
          for (const [handle, grantee] of all) assert.ok(store.revokedAt(`0x${hex(handle, 32)}`, grantee)! >= 1_000, `${handle}/${grantee} still revoked`);
        }
        await store.close();
        // Reopened under lower bounds: within them, and every revocation still in force.
        const small = { perOwner: 1, max: 2 };
        const reopened = await open(dir, { limits: kind === 'grant' ? limits(small) : limits(undefined, small) });
        assert.ok((kind === 'grant' ? reopened.stats().grants : reopened.stats().revocations) <= 2, `${kind}: ${JSON.stringify(reopened.stats())}`);
        if (kind === 'revocation') for (const [handle, grantee] of all) assert.ok(reopened.revokedAt(`0x${hex(handle, 32)}`, grantee)! >= 1_000, `${handle}/${grantee} still revoked after reopen`);
        await reopened.close();
      }
    });

    it('a revocation folded into a watermark stays in force after compaction drops its record, until it expires', async () => {
      const dir = freshDir();
      const bound = { perOwner: 1, max: 1 };
      const store = await open(dir, { limits: limits(undefined, bound), compactSlack: { bytes: 0, records: 0 } });
      for (const i of [1, 2]) await store.putHandle(sampleHandle(i), ciphertextFor(i));
      assert.equal(await store.putRevocation(r(1, 'a', 1_000)), true);
      // Full: owner 2's revocation folds owner 1's into a watermark; the record is compacted away.
      assert.equal(await store.putRevocation(r(2, 'a', 1_001)), true);
      for (let t = 0; t < 20; t++) await store.putRevocation(r(2, 'a', 1_002 + t));
      assert.equal(store.getRevocation(`0x${hex(1, 32)}`, 'a'), undefined);
      assert.equal(store.revokedAt(`0x${hex(1, 32)}`, 'a'), 1_000);
      // Any grantee of owner 1's handles: the watermark covers the owner, not one pair.
      assert.equal(store.revokedAt(`0x${hex(1, 32)}`, 'zz'), 1_000);
      assert.equal(await store.putRevocation(r(1, 'a', 1_000)), false, 'already in force');
      await store.close();
      const reopened = await open(dir, { limits: limits(undefined, { perOwner: 10, max: 10 }) });
      assert.equal(reopened.stats().revocations, 1, 'only owner 2\'s record is left in the log');
      assert.equal(reopened.revokedAt(`0x${hex(1, 32)}`, 'a'), 1_000, 'the watermark was written by compaction');
      clock = 1_000 + LIFETIME + SKEW;
      assert.equal(reopened.revokedAt(`0x${hex(1, 32)}`, 'a'), 1_000);
      clock++;
      assert.equal(reopened.revokedAt(`0x${hex(1, 32)}`, 'a'), undefined, 'nothing issued by 1000 is valid now');
      await reopened.close();
    });

    it('compacts the log when re-sent grants and revocations make it more than twice the live records, and keeps every live record', async () => {
      const dir = freshDir();
      const store = await open(dir, { compactSlack: { bytes: 4096, records: 10 } });
      for (const i of [1, 2, 3]) await store.putHandle(sampleHandle(i, ciphertextFor(i, 2_000)), ciphertextFor(i, 2_000));
      let maxLog = 0;
      let shrank = 0;
      for (let t = 0; t < 300; t++) {
        clock = 1_000 + t;
        const size = store.stats().logBytes;
        // Reads run alongside: a compaction must not swap the file under them.
        const read = store.readCiphertext(sampleHandle(2).handle);
        await Promise.all([store.putRevocation(r(1, 'bob', clock)), store.putGrant(g(2, 'bob', clock))]);
        assert.deepEqual(await read, ciphertextFor(2, 2_000));
        maxLog = Math.max(maxLog, store.stats().logBytes);
        if (store.stats().logBytes < size) shrank++;
      }
      assert.ok(shrank > 0, 'the log was rewritten');
      const live = (await readFile(join(dir, LOG_FILE_NAME))).length;
      assert.equal(store.stats().logBytes, live);
      // Live: three handles of ~2.3 KB, one grant, one revocation; dead weight at most about as much again plus the slack.
      assert.ok(maxLog < 2 * 8_000 + 4096 + 1_000, `log reached ${maxLog} bytes`);
      assert.deepEqual(store.getRevocation(h1, 'bob'), r(1, 'bob', 1_299));
      await store.close();
      const reopened = await open(dir);
      assert.deepEqual(reopened.getRevocation(h1, 'bob'), r(1, 'bob', 1_299));
      assert.deepEqual(reopened.getGrant(`0x${hex(2, 32)}`, 'bob'), g(2, 'bob', 1_299));
      for (const i of [1, 2, 3]) assert.deepEqual(await reopened.readCiphertext(sampleHandle(i).handle), ciphertextFor(i, 2_000));
      const names = await readdir(dir);
      assert.deepEqual(names.filter((n) => n.startsWith('.')), [], 'no temp files left');
    });

    it('does not copy ciphertexts for a few dead records: a compaction by record count waits until dead bytes outweigh the ciphertexts', async () => {
      const dir = freshDir();
      const store = await open(dir, { compactSlack: { bytes: 4096, records: 10 } });
      await store.putHandle(sampleHandle(1, ciphertextFor(1, 64 * 1024)), ciphertextFor(1, 64 * 1024));
      let size = store.stats().logBytes;
      for (let t = 0; t < 100; t++) {
        await store.putRevocation(r(1, 'bob', 900 + t)); // ~20 KB of dead records
        assert.ok(store.stats().logBytes > size, 'not rewritten for 20 KB of dead weight');
        size = store.stats().logBytes;
      }
      let shrank = false;
      for (let t = 100; t < 260 && !shrank; t++) {
        await store.putRevocation(r(1, 'bob', 900 + t, `rev-${t}-${'x'.repeat(600)}`));
        shrank = store.stats().logBytes < size;
        size = store.stats().logBytes;
      }
      assert.ok(shrank, 'rewritten once the dead bytes outweigh the ciphertext');
    });

    it('keeps the old log in use when a compaction fails (a ciphertext no longer verifies), and does not retry at every write', async () => {
      const dir = freshDir();
      const warnings: string[] = [];
      const store = await open(dir, { compactSlack: { bytes: 0, records: 0 }, onWarning: (m) => warnings.push(m) });
      await store.putHandle(sampleHandle(1), ciphertextFor(1, 100));
      const log = await readFile(join(dir, LOG_FILE_NAME));
      const f = frames(log)[0]!;
      log[f.end - 1] = log[f.end - 1]! ^ 1; // bit rot in the ciphertext (same file, same size)
      await writeFile(join(dir, LOG_FILE_NAME), log);
      for (let t = 0; t < 200; t++) assert.equal(await store.putRevocation(r(1, 'bob', 900 + t)), true);
      const failed = warnings.filter((w) => /compaction of .* failed \(.*checksum.*\); the old log stays in use/.test(w));
      assert.ok(failed.length >= 1 && failed.length <= 2, warnings.join('; '));
      assert.deepEqual(store.getRevocation(h1, 'bob'), r(1, 'bob', 1_099));
      assert.deepEqual((await readdir(dir)).filter((n) => n.startsWith('.')), []);
    });

    it('keeps the expiry heap within twice the live entries however often one pair is re-sent', () => {
      const table = new AclTable<StoredRevocation>('revocation', { perOwner: 10, max: 10 }, (x) => x.revokedAt, (x) => x.revokedAt + LIFETIME);
      let most = 0;
      for (let t = 0; t < 10_000; t++) {
        table.put(r(1, 'bob', t), 'owner', 100, false);
        most = Math.max(most, table.expiriesHeld);
      }
      assert.equal(table.size, 1);
      assert.ok(most <= 2 + 1_000 + 1, `the heap held ${most} entries for one live revocation`);
      // What it holds still expires on time.
      assert.equal(table.prune(9_999 + LIFETIME), 0);
      assert.equal(table.prune(9_999 + LIFETIME + 1), 1);
      assert.equal(table.size, 0);
    });

    it('removes a compaction temp file a crash left behind when it opens', async () => {
      const dir = freshDir();
      const store = await open(dir);
      await store.putHandle(sampleHandle(1), ciphertextFor(1));
      await store.close();
      const temp = join(dir, `.store.log.compact-${'ab'.repeat(16)}`);
      await writeFile(temp, 'half a log');
      const reopened = await open(dir);
      assert.deepEqual(reopened.getHandle(sampleHandle(1).handle), sampleHandle(1));
      await rejectsWith('internal', async () => {
        try {
          await stat(temp);
        } catch {
          throw new TkmsError('internal', 'gone');
        }
      });
    });
  });

  describe('crash safety (SIGKILL while writing)', function () {
    const iterations = Number.parseInt(process.env['TKMS_STORE_CRASH_ITERATIONS'] ?? '30', 10);
    const children = new Set<ChildProcess>();
    this.timeout(30_000 + iterations * 20_000);

    after(() => {
      for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });

    interface Run {
      child: ChildProcess;
      /** Resolves once the child has loaded its modules and waits for "go" on stdin. */
      loaded: Promise<void>;
      /** Resolves with ms from "go" to the store being open. */
      ready: Promise<number>;
      go: () => void;
      /** Resolves with stdout once the child has exited and its stdout is drained. */
      done: Promise<{ stdout: string; stderr: string }>;
    }

    function spawnChild(dir: string, mode?: 'compact'): Run {
      let wentAt = 0;
      const child = spawn(process.execPath, ['--import', 'tsx', CRASH_CHILD], {
        cwd: REPO_ROOT,
        env: { ...process.env, TKMS_CRASH_DIR: dir, ...(mode === undefined ? {} : { TKMS_CRASH_MODE: mode }) },
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      children.add(child);
      let stdout = '';
      let stderr = '';
      child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      child.stdin!.on('error', () => undefined); // the child closes stdin after "go", or is killed
      const exitedEarly = (resolveOrReject: (err: Error) => void) =>
        child.once('exit', (code, signal) => resolveOrReject(new Error(`child exited early (${code ?? signal}): ${stderr}`)));
      const loaded = new Promise<void>((resolveLoaded, rejectLoaded) => {
        child.stdout!.on('data', (chunk: Buffer) => {
          stdout += chunk.toString();
          if (stdout.startsWith('loaded\n')) resolveLoaded();
        });
        exitedEarly(rejectLoaded);
      });
      const ready = new Promise<number>((resolveReady, rejectReady) => {
        child.stdout!.on('data', () => {
          if (stdout.startsWith('loaded\nready\n')) resolveReady(performance.now() - wentAt);
        });
        exitedEarly(rejectReady);
      });
      loaded.catch(() => undefined);
      ready.catch(() => undefined);
      const done = new Promise<{ stdout: string; stderr: string }>((resolveDone) => {
        child.once('close', () => resolveDone({ stdout, stderr }));
      });
      const go = (): void => {
        wentAt = performance.now();
        child.stdin!.write('go\n');
      };
      return { child, loaded, ready, go, done };
    }

    function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
      });
      return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
    }

    it(`keeps every acknowledged record across ${iterations} random kills`, async function () {
      assert.ok(Number.isSafeInteger(iterations) && iterations > 0, 'TKMS_STORE_CRASH_ITERATIONS must be a positive integer');
      // A fresh directory every 25 runs bounds the log (and open time) in long runs, and the
      // first run in it (killed early, see below) may die while creating the store.
      const dirEvery = 25;
      let dir = freshDir();
      const ackedHandles = new Set<number>();
      const ackedGrants = new Set<number>();
      const checkedCiphertexts = new Set<number>();
      let totalHandles = 0;
      let totalAcked = 0;
      let readyMs = 1000;
      let tornTails = 0;
      let killsDuringOpen = 0;
      let killsMidCommit = 0;
      let unacknowledgedBefore = 0;
      let handles = 0;
      let next = spawnChild(dir);
      for (let it = 0; it < iterations; it++) {
        const run = next;
        // The last run in this directory: check everything, then move on.
        const last = it === iterations - 1 || it % dirEvery === dirEvery - 2;
        await withTimeout(run.loaded, 15_000, 'crash child start');
        run.go();
        // Every fifth run is killed at a random moment from "go", possibly while the child is
        // still opening the store (taking the lock, replaying, truncating a torn tail).
        if (it % 5 === 4) {
          await new Promise((r) => setTimeout(r, Math.random() * readyMs * 1.3));
        } else {
          readyMs = await withTimeout(run.ready, 15_000, 'crash child open');
          await new Promise((r) => setTimeout(r, Math.random() * 150));
        }
        run.child.kill('SIGKILL');
        const checkDir = dir;
        if (last) dir = freshDir();
        // Load the next child while this one is checked (not while it runs: on a small machine
        // the loading starves the writer); it waits for its own "go".
        next = spawnChild(dir);
        const { stdout, stderr } = await withTimeout(run.done, 10_000, 'crash child exit');
        children.delete(run.child);
        assert.equal(run.child.signalCode, 'SIGKILL', `the child must die by the kill, not on its own: ${stderr}`);
        if (!stdout.startsWith('loaded\nready\n')) killsDuringOpen++;
        for (const line of stdout.split('\n').slice(0, -1)) {
          const match = /^([hg]) (\d+)$/.exec(line);
          if (match === null) continue;
          (match[1] === 'h' ? ackedHandles : ackedGrants).add(Number(match[2]));
        }

        const warnings: string[] = [];
        const store = await GatewayStore.open(checkDir, { now: () => CRASH_NOW, onWarning: (m) => warnings.push(m) });
        try {
          if (warnings.some((w) => /torn write/.test(w))) tornTails++;
          // Every acknowledged handle, every time. Ciphertext bytes: those acknowledged since the
          // last check, a sample of older ones, and all of them after the last kill in this
          // directory (open() has re-verified every record checksum anyway).
          for (const i of ackedHandles) {
            const meta = crashHandle(i);
            assert.deepEqual(store.getHandle(meta.handle), meta, `acknowledged handle ${i} is missing or wrong`);
            if (last || !checkedCiphertexts.has(i) || Math.random() < 0.02) {
              assert.deepEqual(await store.readCiphertext(meta.handle), crashCiphertext(i), `ciphertext of handle ${i}`);
              checkedCiphertexts.add(i);
            }
          }
          for (const i of ackedGrants) {
            assert.deepEqual(store.getGrant(crashHandle(i).handle, crashGrant(i).grantee), crashGrant(i), `acknowledged grant ${i}`);
          }
          // Whatever else survived (written but not acknowledged) must be intact too.
          handles = store.stats().handles;
          let unacknowledged = 0;
          for (let i = 0, seen = 0; seen < handles && i < handles + 1000; i++) {
            const meta = crashHandle(i);
            if (store.getHandle(meta.handle) === undefined) continue;
            seen++;
            if (!ackedHandles.has(i)) {
              unacknowledged++;
              if (last || !checkedCiphertexts.has(i)) assert.deepEqual(await store.readCiphertext(meta.handle), crashCiphertext(i));
              checkedCiphertexts.add(i);
            }
            if (hasCrashGrant(i)) {
              const g = store.getGrant(meta.handle, crashGrant(i).grantee);
              if (g !== undefined) assert.deepEqual(g, crashGrant(i));
            }
          }
          // Records on disk that were never acknowledged: the kill landed between a write and its ack.
          if (unacknowledged > unacknowledgedBefore) killsMidCommit++;
          unacknowledgedBefore = unacknowledged;
        } finally {
          await store.close();
        }
        if (last) {
          totalHandles += handles;
          totalAcked += ackedHandles.size;
          ackedHandles.clear();
          ackedGrants.clear();
          checkedCiphertexts.clear();
          unacknowledgedBefore = 0;
        }
      }
      next.child.kill('SIGKILL');
      await next.done;
      children.delete(next.child);
      assert.ok(totalAcked > 0, 'the child never acknowledged a put; the test exercised nothing');
      this.test!.title += ` (${totalHandles} handles, ${totalAcked} acknowledged, ${killsMidCommit} kills between a write and its ack, ${tornTails} torn tails, ${killsDuringOpen} kills before ready)`;
    });

    const compactKills = Math.max(3, Math.ceil(iterations / 3));
    it(`keeps every acknowledged record across ${compactKills} random kills while the log is being compacted`, async function () {
      const dir = freshDir();
      const ackedHandles = new Set<number>();
      const ackedGrants = new Set<number>();
      /** Churn key → the latest acknowledged revokedAt. */
      const ackedChurn = new Map<number, number>();
      let churnAcks = 0;
      let killsMidCompaction = 0;
      let next = spawnChild(dir, 'compact');
      let logBytes = 0;
      for (let it = 0; it < compactKills; it++) {
        const run = next;
        await withTimeout(run.loaded, 15_000, 'crash child start');
        run.go();
        await withTimeout(run.ready, 15_000, 'crash child open');
        await new Promise((r) => setTimeout(r, 100 + Math.random() * 400));
        run.child.kill('SIGKILL');
        next = spawnChild(dir, 'compact');
        const { stdout, stderr } = await withTimeout(run.done, 10_000, 'crash child exit');
        children.delete(run.child);
        assert.equal(run.child.signalCode, 'SIGKILL', `the child must die by the kill, not on its own: ${stderr}`);
        for (const line of stdout.split('\n').slice(0, -1)) {
          const m = /^(?:([hg]) (\d+)|r (\d+) (\d+))$/.exec(line);
          if (m === null) continue;
          if (m[1] === 'h') ackedHandles.add(Number(m[2]));
          else if (m[1] === 'g') ackedGrants.add(Number(m[2]));
          else {
            churnAcks++;
            ackedChurn.set(Number(m[3]), Math.max(ackedChurn.get(Number(m[3])) ?? 0, Number(m[4])));
          }
        }
        // A temp file left behind: the kill landed inside a compaction.
        if ((await readdir(dir)).some((n) => n.startsWith('.store.log.compact-'))) killsMidCompaction++;
        const store = await GatewayStore.open(dir, { now: () => CRASH_NOW });
        try {
          for (const i of ackedHandles) {
            assert.deepEqual(store.getHandle(crashHandle(i).handle), crashHandle(i), `acknowledged handle ${i}`);
            assert.deepEqual(await store.readCiphertext(crashHandle(i).handle), crashCiphertext(i), `ciphertext of handle ${i}`);
          }
          for (const i of ackedGrants) assert.deepEqual(store.getGrant(crashHandle(i).handle, crashGrant(i).grantee), crashGrant(i), `acknowledged grant ${i}`);
          for (const [key, revokedAt] of ackedChurn) {
            const held = store.getRevocation(crashChurn(key, 0).handle, crashChurn(key, 0).grantee);
            assert.ok(held !== undefined && held.revokedAt >= revokedAt, `churn pair ${key}: acknowledged revokedAt ${revokedAt}, holds ${held?.revokedAt}`);
            assert.deepEqual(held, crashChurn(key, held.revokedAt));
          }
          assert.ok(store.stats().revocations <= CRASH_CHURN_KEYS);
          logBytes = store.stats().logBytes;
        } finally {
          await store.close();
        }
      }
      next.child.kill('SIGKILL');
      await next.done;
      children.delete(next.child);
      assert.ok(churnAcks > 0, 'the child never acknowledged a churn revocation');
      // Every acknowledged churn record is ~4 KB: without compaction the log would hold them all.
      assert.ok(logBytes < churnAcks * 4_000, `the log (${logBytes} bytes) holds ${churnAcks} acknowledged churn records of ~4 KB: it was never compacted`);
      this.test!.title += ` (${churnAcks} churn revocations acknowledged, log ${logBytes} bytes, ${killsMidCompaction} kills inside a compaction)`;
    });
  });
});
