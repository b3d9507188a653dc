import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { isTkmsError } from '../../core/index.ts';
import { GatewayStore, LOG_FILE_NAME, type StoredGrant, type StoredHandle, type StoredRevocation } from '../../gateway/store.ts';

/**
 * Properties of the store's crash recovery, on a log built once (sequential puts, then one
 * concurrent batch): whatever is appended, wherever the log is cut and whatever byte is
 * damaged, open() either succeeds holding exactly correct records, or fails with a TkmsError —
 * never another exception, never a wrong value.
 */

const MAGIC_BYTES = 8;
const HEADER_BYTES = 48;
/** The store's clock (unix seconds): the sample grants and revocations are live then. */
const TEST_NOW = 6_000;

function hex(n: number, bytes: number): string {
  return n.toString(16).padStart(bytes * 2, '0');
}

function ciphertext(i: number): Uint8Array {
  const out = new Uint8Array((i * 53) % 700);
  for (let j = 0; j < out.length; j++) out[j] = (i * 13 + j * 101) & 0xff;
  return out;
}

function handleMeta(i: number): StoredHandle {
  return {
    handle: `0x${hex(i, 32)}`,
    keyId: `key-${i}`,
    K: `0x03${hex(i, 32)}`,
    nonce: `0x${hex(i, 12)}`,
    ciphertextHash: `0x${hex(i * 3, 32)}`,
    owner: `0x${hex(i * 5, 20)}`,
    kProof: `0x${hex(i * 9, 64)}`,
    createdAt: 1_700_000_000_000 + i,
  };
}

function grantFor(i: number): StoredGrant {
  return { handle: `0x${hex(i, 32)}`, grantee: `grantee-${i}`, notAfter: 2_000_000_000_000, issuedAt: 1_000 + i, signature: `sig-${i}` };
}

function revocationFor(i: number): StoredRevocation {
  return { handle: `0x${hex(i, 32)}`, grantee: `grantee-${i}`, revokedAt: 5_000 + i, signature: `rev-${i}` };
}

type Written = { kind: 'handle' | 'grant' | 'revocation'; index: number; end: number };

interface Frame {
  offset: number;
  end: number;
  batch: number;
}

function frames(log: Buffer): Frame[] {
  const out: Frame[] = [];
  let offset = MAGIC_BYTES;
  while (offset + HEADER_BYTES <= log.length) {
    const end = offset + HEADER_BYTES + log.readUInt32BE(offset) + log.readUInt32BE(offset + 4);
    if (end > log.length) break;
    out.push({ offset, end, batch: Number(log.readBigUInt64BE(offset + 8)) });
    offset = end;
  }
  return out;
}

describe('property: gateway/store recovery', function () {
  this.timeout(120_000);
  let root: string;
  let counter = 0;
  let log: Buffer;
  /** Every record in log order, with the end offset of its frame. */
  let written: Written[];

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'tkms-gateway-store-prop-'));
    const dir = join(root, 'base');
    const store = await GatewayStore.open(dir, { now: () => TEST_NOW });
    const order: Omit<Written, 'end'>[] = [];
    for (let i = 0; i < 12; i++) {
      await store.putHandle(handleMeta(i), ciphertext(i));
      order.push({ kind: 'handle', index: i });
      if (i % 3 === 0) {
        await store.putGrant(grantFor(i));
        order.push({ kind: 'grant', index: i });
      }
      if (i % 4 === 1) {
        await store.putRevocation(revocationFor(i));
        order.push({ kind: 'revocation', index: i });
      }
    }
    // One last batch of several records.
    await Promise.all([12, 13, 14, 15].map((i) => store.putHandle(handleMeta(i), ciphertext(i))));
    for (const i of [12, 13, 14, 15]) order.push({ kind: 'handle', index: i });
    await store.close();
    log = await readFile(join(dir, LOG_FILE_NAME));
    const fs = frames(log);
    assert.equal(fs.length, order.length);
    assert.equal(fs.at(-1)!.end, log.length);
    written = order.map((w, i) => ({ ...w, end: fs[i]!.end }));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  async function logDir(bytes: Uint8Array): Promise<string> {
    const dir = join(root, `case-${counter++}`);
    await mkdir(dir, { mode: 0o700 });
    await writeFile(join(dir, LOG_FILE_NAME), bytes, { mode: 0o600 });
    return dir;
  }

  /** Asserts `store` holds exactly the right value for every record it holds, and every record in `required`. */
  async function checkContents(store: GatewayStore, required: readonly Written[]): Promise<void> {
    const mustHave = new Set(required.map((w) => `${w.kind}:${w.index}`));
    for (const w of written) {
      const must = mustHave.has(`${w.kind}:${w.index}`);
      if (w.kind === 'handle') {
        const meta = store.getHandle(handleMeta(w.index).handle);
        if (meta === undefined) {
          assert.ok(!must, `handle ${w.index} is missing`);
          continue;
        }
        assert.deepEqual(meta, handleMeta(w.index));
        assert.deepEqual(await store.readCiphertext(meta.handle), ciphertext(w.index));
      } else if (w.kind === 'grant') {
        const g = store.getGrant(grantFor(w.index).handle, grantFor(w.index).grantee);
        if (g === undefined) assert.ok(!must, `grant ${w.index} is missing`);
        else assert.deepEqual(g, grantFor(w.index));
      } else {
        const r = store.getRevocation(revocationFor(w.index).handle, revocationFor(w.index).grantee);
        if (r === undefined) assert.ok(!must, `revocation ${w.index} is missing`);
        else assert.deepEqual(r, revocationFor(w.index));
      }
    }
  }

  /** Opens and returns the store, or undefined for a TkmsError('internal'); anything else fails the property. */
  async function tryOpen(dir: string, warnings: string[]): Promise<GatewayStore | undefined> {
    try {
      return await GatewayStore.open(dir, { now: () => TEST_NOW, onWarning: (m) => warnings.push(m) });
    } catch (err) {
      assert.ok(isTkmsError(err, 'internal'), `open threw something other than TkmsError('internal'): ${String(err)}`);
      return undefined;
    }
  }

  /** Tails someone might find after the log: random bytes, zeros, or a cut-off copy of a real record. */
  const garbage = fc.oneof(
    fc.uint8Array({ minLength: 1, maxLength: 3000 }),
    fc.integer({ min: 1, max: 5000 }).map((n) => new Uint8Array(n)),
    fc.tuple(fc.nat(), fc.nat(), fc.uint8Array({ maxLength: 16 })).map(([which, cut, extra]) => {
      const fs = frames(log);
      const f = fs[which % fs.length]!;
      const record = log.subarray(f.offset, f.end);
      return Buffer.concat([record.subarray(0, 1 + (cut % record.length)), extra]);
    }),
  );

  it('random bytes appended to a valid log are truncated; every acknowledged record remains', async () => {
    await fc.assert(
      fc.asyncProperty(garbage, async (tail) => {
        const dir = await logDir(Buffer.concat([log, tail]));
        const warnings: string[] = [];
        const store = await tryOpen(dir, warnings);
        assert.ok(store !== undefined, 'a valid log with garbage after it must open');
        try {
          await checkContents(store, written);
          assert.equal(store.stats().logBytes, log.length);
          assert.equal(warnings.length, 1);
          assert.match(warnings[0]!, new RegExp(`truncated ${tail.length} bytes `));
          assert.equal((await stat(join(dir, LOG_FILE_NAME))).size, log.length);
          // The recovered log takes new writes and reopens cleanly.
          await store.putHandle(handleMeta(99), ciphertext(99));
        } finally {
          await store.close();
        }
        const clean: string[] = [];
        const again = await tryOpen(dir, clean);
        assert.ok(again !== undefined);
        assert.deepEqual(clean, []);
        assert.deepEqual(await again.readCiphertext(handleMeta(99).handle), ciphertext(99));
        await again.close();
        await rm(dir, { recursive: true });
      }),
      { numRuns: 150 },
    );
  });

  it('a log cut at any byte opens with exactly the records whose frames are complete', async () => {
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 0, max: log.length }), async (cut) => {
        const dir = await logDir(log.subarray(0, cut));
        const warnings: string[] = [];
        const store = await tryOpen(dir, warnings);
        assert.ok(store !== undefined, `a log cut at ${cut} must open`);
        try {
          const complete = written.filter((w) => w.end <= cut);
          await checkContents(store, complete);
          const s = store.stats();
          assert.equal(s.handles + s.grants + s.revocations, complete.length);
          const atBoundary = cut === 0 || cut === MAGIC_BYTES || written.some((w) => w.end === cut);
          assert.equal(warnings.length, atBoundary ? 0 : 1, warnings.join('; '));
        } finally {
          await store.close();
        }
        await rm(dir, { recursive: true });
      }),
      { numRuns: 200 },
    );
  });

  it('a damaged byte anywhere either refuses to open (TkmsError) or loses only the damaged last batch', async () => {
    const fs = frames(log);
    const lastBatchStart = fs.find((f) => f.batch === fs.at(-1)!.batch)!.offset;
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: log.length - 1 }),
        fc.integer({ min: 1, max: 255 }),
        async (at, xor) => {
          const damaged = Buffer.from(log);
          damaged[at] = damaged[at]! ^ xor;
          const dir = await logDir(damaged);
          const warnings: string[] = [];
          const store = await tryOpen(dir, warnings);
          if (store === undefined) {
            // Refused: only damage before the last batch (or to the magic) may be refused,
            // and nothing was changed on disk.
            assert.ok(at < lastBatchStart, `damage at ${at}, inside the last batch, must be truncated, not refused`);
            assert.deepEqual(await readFile(join(dir, LOG_FILE_NAME)), damaged);
          } else {
            try {
              // Opened: the damage was in the last batch; everything before that batch is intact.
              assert.ok(at >= lastBatchStart, `damage at ${at}, before the last batch, must not be truncated away`);
              await checkContents(
                store,
                written.filter((w) => w.end <= lastBatchStart),
              );
              assert.equal(warnings.length, 1);
            } finally {
              await store.close();
            }
          }
          await rm(dir, { recursive: true });
        },
      ),
      { numRuns: 300 },
    );
  });
});
