import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isTkmsError } from '../../core/index.ts';
import { generateAccount } from '../../client/account.ts';
import { decryptKeystore, encryptKeystore, parseKeystore, READ_LIMITS, type KeystoreV3Json } from '../../client/keystore-v3.ts';

/** The keystore decoder reads files anyone may hand us: any input is a keystore or a typed error. */

function typedOrOk(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    assert.ok(isTkmsError(e), `expected a TkmsError, got ${String(e)}`);
  }
}

async function typedOrOkAsync(fn: () => Promise<unknown>): Promise<void> {
  try {
    await fn();
  } catch (e) {
    assert.ok(isTkmsError(e), `expected a TkmsError, got ${String(e)}`);
  }
}

/** Sets the value at a path inside a (cloned) JSON object, creating nothing new above it. */
function withValueAt(doc: unknown, path: readonly string[], value: unknown): unknown {
  const copy = structuredClone(doc) as Record<string, unknown>;
  let node: Record<string, unknown> = copy;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== 'object' || next === null) return copy;
    node = next as Record<string, unknown>;
  }
  if (value === undefined) delete node[path[path.length - 1]!];
  else node[path[path.length - 1]!] = value;
  return copy;
}

const PATHS = [
  ['version'],
  ['address'],
  ['id'],
  ['crypto'],
  ['crypto', 'cipher'],
  ['crypto', 'cipherparams'],
  ['crypto', 'cipherparams', 'iv'],
  ['crypto', 'ciphertext'],
  ['crypto', 'kdf'],
  ['crypto', 'kdfparams'],
  ['crypto', 'kdfparams', 'dklen'],
  ['crypto', 'kdfparams', 'n'],
  ['crypto', 'kdfparams', 'r'],
  ['crypto', 'kdfparams', 'p'],
  ['crypto', 'kdfparams', 'salt'],
  ['crypto', 'mac'],
];

const oddValue = fc.oneof(
  fc.jsonValue({ maxDepth: 2 }),
  fc.constant(undefined),
  fc.integer(),
  fc.double(),
  fc.constantFrom(2 ** 31, 2 ** 53, -1, 0, 1, 3, READ_LIMITS.maxN, READ_LIMITS.maxN * 2, Number.NaN, Infinity),
  fc.string(),
  fc.stringMatching(/^(0x)?[0-9a-fA-F]{0,140}$/),
);

describe('client keystore v3 decoder (property)', function () {
  this.timeout(120_000);
  let valid: KeystoreV3Json;

  before(async () => {
    valid = await encryptKeystore(generateAccount(), 'pw', { n: 2, r: 1, p: 1 });
  });

  it('parseKeystore: arbitrary JSON values and strings give a keystore or a TkmsError', () => {
    fc.assert(
      fc.property(fc.oneof(fc.jsonValue(), fc.string(), fc.json()), (v) => typedOrOk(() => parseKeystore(v))),
      { numRuns: 500 },
    );
  });

  it('parseKeystore: a valid keystore with any field replaced or removed gives a keystore or a TkmsError', () => {
    fc.assert(
      fc.property(fc.constantFrom(...PATHS), oddValue, (path, value) => typedOrOk(() => parseKeystore(withValueAt(valid, path, value)))),
      { numRuns: 1000 },
    );
  });

  it('parseKeystore: whatever it accepts is within the read limits', () => {
    fc.assert(
      fc.property(fc.constantFrom(['crypto', 'kdfparams', 'n'], ['crypto', 'kdfparams', 'r'], ['crypto', 'kdfparams', 'p']), fc.integer({ min: -10, max: 2 ** 40 }), (path, value) => {
        let parsed;
        try {
          parsed = parseKeystore(withValueAt(valid, path, value));
        } catch (e) {
          assert.ok(isTkmsError(e, 'keystore_corrupt'));
          return;
        }
        const { n, r, p } = parsed.scrypt;
        assert.ok(n <= READ_LIMITS.maxN && 128 * n * r <= READ_LIMITS.maxMemoryBytes && n * r * p <= READ_LIMITS.maxWork);
      }),
      { numRuns: 500 },
    );
  });

  it('decryptKeystore: mutated keystores (cheap scrypt) decrypt, or fail with a TkmsError', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...PATHS.filter((p) => !p.includes('n') && !p.includes('r') && !p.includes('p'))),
        oddValue,
        fc.string({ maxLength: 8 }),
        async (path, value, password) => typedOrOkAsync(() => decryptKeystore(withValueAt(valid, path, value), password)),
      ),
      { numRuns: 200 },
    );
  });
});
