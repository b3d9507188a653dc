import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { CURVE_ORDER, isTkmsError, randomScalar, utf8ToBytes, type ErrorCode } from '../../core/index.ts';
import { Keystore, type StoredKey } from '../../node/keystore.ts';
import { canonicalJson, epochShareFileName, parseEpochShareFileName, parseHeader, parseKeyFile } from '../../node/keystore-format.ts';
import {
  approvalFileName,
  handoverFileName,
  membershipFileName,
  parseApprovalFileName,
  parseApprovalRecord,
  parseHandoverFileName,
  parseMembership,
  parseMembershipFileName,
  parseVoteFileName,
  parseVoteRecord,
  serializeMembership,
  serializeVoteRecord,
  voteFileName,
} from '../../node/epoch-files.ts';

const PASSWORD = 'property-test-password';

/** Runs `fn`; success is returned, a TkmsError with one of `codes` is returned, anything else fails the property. */
function outcome<T>(fn: () => T, codes: readonly ErrorCode[]): { ok: true; value: T } | { ok: false; code: ErrorCode } {
  try {
    return { ok: true, value: fn() };
  } catch (err) {
    assert.ok(isTkmsError(err), `expected a TkmsError, got ${String(err)}`);
    assert.ok(codes.includes(err.code), `unexpected code ${err.code}: ${err.message}`);
    return { ok: false, code: err.code };
  }
}

async function outcomeAsync<T>(fn: () => Promise<T>, codes: readonly ErrorCode[]): Promise<{ ok: true; value: T } | { ok: false; code: ErrorCode }> {
  try {
    return { ok: true, value: await fn() };
  } catch (err) {
    assert.ok(isTkmsError(err), `expected a TkmsError, got ${String(err)}`);
    assert.ok(codes.includes(err.code), `unexpected code ${err.code}: ${err.message}`);
    return { ok: false, code: err.code };
  }
}

/** Byte-level damage to a file: bit flips, truncation, insertion, deletion, overwrite with random bytes. */
const mutation = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), count: fc.integer({ min: 1, max: 16 }) }),
  fc.record({ kind: fc.constant('overwrite' as const), at: fc.nat(), bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }) }),
  fc.record({ kind: fc.constant('hexdigit' as const), at: fc.nat(), digit: fc.constantFrom(...'0123456789abcdef') }),
);
type Mutation = typeof mutation extends fc.Arbitrary<infer M> ? M : never;

function applyMutation(original: Uint8Array, m: Mutation): Uint8Array {
  const at = original.length === 0 ? 0 : m.at % original.length;
  const bytes = Buffer.from(original);
  switch (m.kind) {
    case 'flip':
      bytes[at] = bytes[at]! ^ (1 << m.bit);
      return bytes;
    case 'truncate':
      return bytes.subarray(0, at);
    case 'insert':
      return Buffer.concat([bytes.subarray(0, at), m.bytes, bytes.subarray(at)]);
    case 'delete':
      return Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + m.count)]);
    case 'overwrite':
      return Buffer.concat([bytes.subarray(0, at), m.bytes, bytes.subarray(at + m.bytes.length)]);
    case 'hexdigit': {
      // Targets hex fields specifically: replace a hex digit with another digit, keeping the JSON valid.
      const hexPositions: number[] = [];
      for (let i = 0; i < bytes.length; i++) if (/[0-9a-f]/.test(String.fromCharCode(bytes[i]!))) hexPositions.push(i);
      if (hexPositions.length === 0) return bytes;
      bytes[hexPositions[m.at % hexPositions.length]!] = m.digit.charCodeAt(0);
      return bytes;
    }
  }
}

/** Replaces the value at a random path of a JSON object with a random JSON value. */
function replaceAtPath(obj: unknown, choice: number, value: unknown): unknown {
  const paths: (string | number)[][] = [];
  const walk = (node: unknown, path: (string | number)[]): void => {
    paths.push(path);
    if (Array.isArray(node)) node.forEach((child, i) => walk(child, [...path, i]));
    else if (node !== null && typeof node === 'object') for (const [k, child] of Object.entries(node)) walk(child, [...path, k]);
  };
  walk(obj, []);
  const path = paths[1 + (choice % (paths.length - 1))]!;
  const copy = structuredClone(obj) as Record<string | number, unknown>;
  let parent: Record<string | number, unknown> = copy;
  for (const step of path.slice(0, -1)) parent = parent[step] as Record<string | number, unknown>;
  parent[path[path.length - 1]!] = value;
  return copy;
}

const keyIdArb = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,63}$/).filter((id) => !id.includes('..'));
const publicResultArb = fc.dictionary(fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 6 });

describe('property: node/keystore', function () {
  this.timeout(120_000);
  let root: string;
  let dir: string;
  let headerBytes: Uint8Array;
  const keys: StoredKey[] = [
    {
      keyId: 'target',
      share: randomScalar(),
      publicResult: { threshold: 2, ids: [1, 2, 3], publicKey: `0x02${'11'.repeat(32)}`, meta: { a: 'b', ok: true, none: null } },
    },
  ];
  let keyFileBytes: Uint8Array;

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'tkms-keystore-prop-'));
    dir = join(root, 'ks');
    const keystore = await Keystore.open(dir, PASSWORD);
    for (const key of keys) await keystore.save(key);
    headerBytes = await readFile(join(dir, 'keystore.json'));
    keyFileBytes = await readFile(join(dir, 'target.key.json'));
  });
  after(async () => {
    await rm(root, { recursive: true, force: true });
  });

  describe('strict parsers', () => {
    it('parseHeader: arbitrary bytes are keystore_corrupt or a valid header, never another exception', () => {
      fc.assert(
        fc.property(fc.uint8Array({ maxLength: 6000 }), (bytes) => {
          outcome(() => parseHeader(bytes), ['keystore_corrupt']);
        }),
        { numRuns: 500 },
      );
    });

    it('parseHeader: arbitrary JSON documents are rejected', () => {
      fc.assert(
        fc.property(fc.jsonValue(), (value) => {
          const result = outcome(() => parseHeader(utf8ToBytes(JSON.stringify(value) ?? 'null')), ['keystore_corrupt']);
          assert.equal(result.ok, false);
        }),
        { numRuns: 300 },
      );
    });

    it('parseHeader: one field replaced by random JSON is corrupt unless the value is unchanged', () => {
      const original = JSON.parse(Buffer.from(headerBytes).toString('utf8'));
      fc.assert(
        fc.property(fc.nat(), fc.jsonValue({ maxDepth: 2 }), (choice, value) => {
          const edited = replaceAtPath(original, choice, value);
          const result = outcome(() => parseHeader(utf8ToBytes(JSON.stringify(edited))), ['keystore_corrupt']);
          if (result.ok) assert.deepEqual(result.value, parseHeader(headerBytes));
        }),
        { numRuns: 400 },
      );
    });

    it('parseKeyFile: arbitrary bytes and JSON documents are keystore_corrupt, never another exception', () => {
      fc.assert(
        fc.property(fc.oneof(fc.uint8Array({ maxLength: 4000 }), fc.jsonValue().map((v) => utf8ToBytes(JSON.stringify(v) ?? 'null'))), (bytes) => {
          const result = outcome(() => parseKeyFile(bytes, 'target'), ['keystore_corrupt']);
          assert.equal(result.ok, false);
        }),
        { numRuns: 500 },
      );
    });

    it('parseKeyFile: one field replaced by random JSON is corrupt unless it only touches publicResult', () => {
      const original = JSON.parse(Buffer.from(keyFileBytes).toString('utf8'));
      fc.assert(
        fc.property(fc.nat(), fc.jsonValue({ maxDepth: 2 }), (choice, value) => {
          const edited = replaceAtPath(original, choice, value) as Record<string, unknown>;
          const result = outcome(() => parseKeyFile(utf8ToBytes(JSON.stringify(edited)), 'target'), ['keystore_corrupt']);
          // Structure is checked here; edits inside publicResult are caught by the AAD (tested below).
          if (result.ok) {
            const { publicResult: _edited, ...rest } = edited;
            const { publicResult: _original, ...originalRest } = original as Record<string, unknown>;
            assert.deepEqual(rest, originalRest);
          }
        }),
        { numRuns: 400 },
      );
    });
  });

  describe('damaged files on disk', () => {
    it('a mutated key file loads as the exact original key or fails with keystore_corrupt', async () => {
      const path = join(dir, 'target.key.json');
      const keystore = await Keystore.open(dir, PASSWORD);
      const expected = keys[0]!;
      let corruptCount = 0;
      try {
        await fc.assert(
          fc.asyncProperty(mutation, async (m) => {
            await writeFile(path, applyMutation(keyFileBytes, m));
            const result = await outcomeAsync(() => keystore.load('target'), ['keystore_corrupt']);
            if (result.ok) {
              assert.equal(result.value.share, expected.share, 'a mutation must never yield a different share');
              assert.equal(canonicalJson(result.value.publicResult), canonicalJson(expected.publicResult));
            } else corruptCount++;
          }),
          { numRuns: 400 },
        );
      } finally {
        await writeFile(path, keyFileBytes);
      }
      assert.ok(corruptCount > 0, 'the mutations never damaged anything');
      assert.deepEqual(await keystore.load('target'), expected);
    });

    it('a mutated header opens (then loads the same keys) or fails with keystore_corrupt / keystore_locked', async () => {
      const path = join(dir, 'keystore.json');
      try {
        await fc.assert(
          fc.asyncProperty(mutation, async (m) => {
            await writeFile(path, applyMutation(headerBytes, m));
            const result = await outcomeAsync(() => Keystore.open(dir, PASSWORD), ['keystore_corrupt', 'keystore_locked']);
            if (result.ok) assert.deepEqual(await result.value.loadAll(), keys);
          }),
          // Each mutation that still parses costs one scrypt (~150 ms), so keep the count modest.
          { numRuns: 40 },
        );
      } finally {
        await writeFile(path, headerBytes);
      }
      assert.deepEqual(await (await Keystore.open(dir, PASSWORD)).loadAll(), keys);
    });

    it('any edit of a stored publicResult value is detected', async () => {
      const path = join(dir, 'target.key.json');
      const original = JSON.parse(Buffer.from(keyFileBytes).toString('utf8'));
      const keystore = await Keystore.open(dir, PASSWORD);
      try {
        await fc.assert(
          fc.asyncProperty(fc.nat(), fc.jsonValue({ maxDepth: 2 }), async (choice, value) => {
            const file = structuredClone(original);
            file.publicResult = replaceAtPath({ root: original.publicResult }, choice, value) as Record<string, unknown>;
            file.publicResult = (file.publicResult as { root: Record<string, unknown> }).root;
            await writeFile(path, JSON.stringify(file));
            const changed = canonicalJson(file.publicResult as Record<string, unknown>) !== canonicalJson(original.publicResult);
            const result = await outcomeAsync(() => keystore.load('target'), ['keystore_corrupt']);
            assert.equal(result.ok, !changed, changed ? 'edited publicResult was accepted' : 'unchanged file was rejected');
          }),
          { numRuns: 200 },
        );
      } finally {
        await writeFile(path, keyFileBytes);
      }
    });
  });

  describe('round trip and canonical JSON', () => {
    it('any valid key id, share and JSON public result round-trips through disk', async () => {
      const keystore = await Keystore.open(join(root, 'roundtrip'), PASSWORD);
      const saved = new Map<string, StoredKey>();
      await fc.assert(
        fc.asyncProperty(keyIdArb, fc.bigInt({ min: 1n, max: CURVE_ORDER - 1n }), publicResultArb, async (keyId, share, publicResult) => {
          const key = { keyId, share, publicResult };
          if (saved.has(keyId)) {
            const result = await outcomeAsync(() => keystore.save(key), ['conflict']);
            assert.equal(result.ok, false);
            return;
          }
          await keystore.save(key);
          saved.set(keyId, key);
          const loaded = await keystore.load(keyId);
          assert.equal(loaded.share, share);
          assert.equal(canonicalJson(loaded.publicResult), canonicalJson(publicResult));
          assert.deepEqual(JSON.parse(JSON.stringify(loaded.publicResult)), JSON.parse(JSON.stringify(publicResult)));
        }),
        { numRuns: 60 },
      );
      const reopened = await Keystore.open(join(root, 'roundtrip'), PASSWORD);
      assert.deepEqual(reopened.list(), [...saved.keys()].sort());
      for (const key of await reopened.loadAll()) assert.equal(key.share, saved.get(key.keyId)!.share);
    });

    it('canonicalJson is independent of key order and parses back to the same value', () => {
      fc.assert(
        fc.property(fc.jsonValue(), fc.nat(), (value, seed) => {
          const shuffled = shuffleKeys(value, seed);
          const text = canonicalJson(value);
          assert.equal(canonicalJson(shuffled), text);
          assert.equal(canonicalJson(JSON.parse(text)), text);
          assert.deepEqual(JSON.parse(text), JSON.parse(JSON.stringify(value)));
        }),
        { numRuns: 400 },
      );
    });

    it('canonicalJson turns anything it cannot represent into bad_request, never another exception', () => {
      fc.assert(
        fc.property(fc.anything({ withBigInt: true, withDate: true, withMap: true, withSet: true, withTypedArray: true, withSparseArray: true, withNullPrototype: true }), (value) => {
          outcome(() => canonicalJson(value), ['bad_request']);
        }),
        { numRuns: 400 },
      );
    });
  });
});

function shuffleKeys(value: unknown, seed: number): unknown {
  if (Array.isArray(value)) return value.map((v, i) => shuffleKeys(v, seed + i));
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value);
    for (let i = entries.length - 1; i > 0; i--) {
      const j = (seed * 31 + i * 17) % (i + 1);
      [entries[i], entries[j]] = [entries[j]!, entries[i]!];
    }
    const out: Record<string, unknown> = {};
    for (const [k, v] of entries) Object.defineProperty(out, k, { value: shuffleKeys(v, seed + 1), enumerable: true, writable: true, configurable: true });
    return out;
  }
  return value;
}

describe('property: epoch store files (node/epoch-files.ts, epoch share names and seals)', function () {
  this.timeout(120_000);
  const keyIdArb = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,63}$/).filter((k) => !k.includes('..'));
  const proposalIdArb = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => `0x${Buffer.from(b).toString('hex')}`);
  const epochArb = fc.integer({ min: 0, max: 0xffff_fffe });
  const nameLike = fc.oneof(
    fc.string({ maxLength: 200 }),
    fc.tuple(keyIdArb, fc.string({ maxLength: 12 }), fc.stringMatching(/^[0-9a-f]{0,70}$/)).map(([k, e, h]) => `${k}.e${e}.${h}.share.json`),
    fc.tuple(fc.constantFrom('handover.e', 'approval.', 'vote.', 'membership.e'), fc.string({ maxLength: 70 })).map(([p, x]) => `${p}${x}.json`),
  );
  let root: string;
  let keystore: Keystore;
  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'tkms-epoch-prop-'));
    keystore = await Keystore.open(join(root, 'ks'), PASSWORD, { newKeystoreScrypt: { N: 2 ** 14, r: 8, p: 1 } });
  });
  after(async () => {
    keystore.close();
    await rm(root, { recursive: true, force: true });
  });

  it('file names: each generated name parses back to what made it', () => {
    fc.assert(
      fc.property(keyIdArb, epochArb, proposalIdArb, fc.nat(), (keyId, epoch, proposalId, seq) => {
        assert.deepEqual(parseEpochShareFileName(epochShareFileName({ keyId, epoch, proposalId })), { keyId, epoch, proposalId });
        assert.equal(parseHandoverFileName(handoverFileName(epoch)), epoch);
        assert.equal(parseMembershipFileName(membershipFileName(epoch)), epoch);
        assert.equal(parseApprovalFileName(approvalFileName(seq)), seq);
        assert.equal(parseVoteFileName(voteFileName(proposalId)), proposalId);
        assert.equal(parseEpochShareFileName(`${keyId}.key.json`), undefined);
      }),
      { numRuns: 500 },
    );
  });

  it('file names: any string is rejected or is the one canonical name of what it parses to', () => {
    fc.assert(
      fc.property(nameLike, (name) => {
        const share = parseEpochShareFileName(name);
        if (share !== undefined) assert.equal(epochShareFileName(share), name);
        const from = parseHandoverFileName(name);
        if (from !== undefined) assert.equal(handoverFileName(from), name);
        const member = parseMembershipFileName(name);
        if (member !== undefined) assert.equal(membershipFileName(member), name);
        const seq = parseApprovalFileName(name);
        if (seq !== undefined) assert.equal(approvalFileName(seq), name);
        const vote = parseVoteFileName(name);
        if (vote !== undefined) assert.equal(voteFileName(vote), name);
      }),
      { numRuns: 1000 },
    );
  });

  it('vote, membership and approval records: damaged or arbitrary bytes are keystore_corrupt or the record, never another exception', () => {
    const proposalId = `0x${'ab'.repeat(32)}`;
    const vote = serializeVoteRecord(proposalId, new Uint8Array(64).fill(7));
    const membership = serializeMembership({ committeeId: 'c', epoch: 3, t: 2, members: [1, 2, 3].map((id) => ({ id, publicKey: new Uint8Array(32).fill(id) })) });
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), mutation.map((m) => applyMutation(vote, m))), (bytes) => {
        const r = outcome(() => parseVoteRecord(bytes, proposalId), ['keystore_corrupt']);
        if (r.ok) assert.equal(r.value.length > 0, true);
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), mutation.map((m) => applyMutation(membership, m))), (bytes) => {
        const r = outcome(() => parseMembership(bytes, 3), ['keystore_corrupt']);
        if (r.ok) assert.equal(r.value.epoch, 3);
      }),
      { numRuns: 500 },
    );
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), fc.jsonValue({ maxDepth: 3 }).map((v) => utf8ToBytes(JSON.stringify({ v: 1, seq: 0, proposalId, proposal: v, status: 'approved', approvedAt: '2026-01-01T00:00:00Z' })))), (bytes) => {
        outcome(() => parseApprovalRecord(bytes, 0), ['keystore_corrupt']);
      }),
      { numRuns: 300 },
    );
  });

  it('a sealed epoch share: damaged, it opens to the same share or is keystore_corrupt; at another epoch it never opens', async () => {
    const share = randomScalar();
    const publicResult = { epoch: 5, t: 2, proposalId: `0x${'cd'.repeat(32)}`, key: { keyId: 'k', groupPublicKey: `0x02${'11'.repeat(32)}`, verificationShares: {} } };
    const sealed = keystore.sealEpochShare('k', 5, share, publicResult);
    await fc.assert(
      fc.asyncProperty(mutation, epochArb, async (m, otherEpoch) => {
        const r = outcome(() => keystore.openEpochShare(parseKeyFile(applyMutation(sealed, m), 'k'), 5), ['keystore_corrupt']);
        if (r.ok) assert.equal(r.value, share);
        if (otherEpoch !== 5) assert.equal(outcome(() => keystore.openEpochShare(parseKeyFile(sealed, 'k'), otherEpoch), ['keystore_corrupt']).ok, false);
      }),
      { numRuns: 300 },
    );
  });
});
