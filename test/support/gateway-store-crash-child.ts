import '../../core/polyfills.ts';
import { createHash } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { GatewayStore, MAX_CIPHERTEXT_BYTES, type StoredGrant, type StoredHandle, type StoredRevocation } from '../../gateway/store.ts';

/**
 * Crash-test writer for gateway/store.ts: opens the store in $TKMS_CRASH_DIR and, with
 * CRASH_WRITERS concurrent writers (so batches hold several records), puts handles 0, 1, 2, …
 * (every third one followed by a grant), skipping what is already stored, until killed. After
 * each put resolves it prints `h <index>` (or `g <index>`) on stdout, so every line the parent
 * receives names an acknowledged record (a line lost to the kill only means one record fewer is
 * checked). The parent SIGKILLs it at random moments and checks every acknowledged record.
 * Everything is derived from the index, so the parent can recompute it.
 *
 * With TKMS_CRASH_MODE=compact it writes the first CRASH_COMPACT_HANDLES handles, then re-sends
 * revocations of CRASH_CHURN_KEYS pairs with ever later revokedAt (printing `r <key> <revokedAt>`),
 * with no compaction slack: the log is rewritten every few hundred puts, so kills land in
 * compactions too.
 */

export const CRASH_WRITERS = 16;
/** Bounds the loop, so a child the parent forgot to kill still ends. */
export const CRASH_MAX_HANDLES = 200_000;
/** The store's clock (unix seconds) for the child and the parent: every crash grant is live then. */
export const CRASH_NOW = 1_700_000_000_000 + CRASH_MAX_HANDLES;

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

function digest(label: string, index: number): Buffer {
  return createHash('sha256').update(`tkms-gateway-store-crash:${label}:${index}`).digest();
}

/** Mostly small ciphertexts, some large, a few at the 1 MiB limit, so kills land inside big writes too. */
export function crashCiphertextLength(index: number): number {
  if (index % 199 === 13) return MAX_CIPHERTEXT_BYTES;
  if (index % 16 === 5) return 16 * 1024 + ((index * 7919) % (112 * 1024));
  return (index * 37) % 4096;
}

/** Deterministic pseudo-random bytes (xorshift32 seeded from the index). */
export function crashCiphertext(index: number): Uint8Array {
  const bytes = new Uint8Array(crashCiphertextLength(index));
  let x = (index * 2654435761 + 1) >>> 0 || 1;
  for (let i = 0; i < bytes.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    bytes[i] = x & 0xff;
  }
  return bytes;
}

export function crashHandleId(index: number): string {
  return `0x${hex(digest('handle', index))}`;
}

const handleCache = new Map<number, StoredHandle>();

/** The handle's metadata (cached: its ciphertextHash costs a pass over up to 1 MiB). */
export function crashHandle(index: number): StoredHandle {
  let meta = handleCache.get(index);
  if (meta === undefined) {
    meta = computeHandle(index);
    handleCache.set(index, meta);
  }
  return { ...meta };
}

function computeHandle(index: number): StoredHandle {
  return {
    handle: crashHandleId(index),
    keyId: `key-${index % 5}`,
    K: `0x02${hex(digest('K', index))}`,
    nonce: `0x${hex(digest('nonce', index).subarray(0, 12))}`,
    ciphertextHash: `0x${createHash('sha256').update(crashCiphertext(index)).digest('hex')}`,
    owner: `0x${hex(digest('owner', index).subarray(0, 20))}`,
    kProof: `0x${hex(digest('kProof', index))}${hex(digest('kProof2', index))}`,
    createdAt: 1_700_000_000_000 + index,
  };
}

export const CRASH_COMPACT_HANDLES = 40;
export const CRASH_CHURN_KEYS = 4;
/** Churn revokedAt values count up from here (live at CRASH_NOW). */
const CRASH_CHURN_BASE = CRASH_NOW - 1_000_000;

/** A revocation of churn pair `key` at `revokedAt`; its ~4 KB signature makes compactions frequent. */
export function crashChurn(key: number, revokedAt: number): StoredRevocation {
  return {
    handle: crashHandleId(key),
    grantee: `0x${hex(digest('churn', key).subarray(0, 20))}`,
    revokedAt,
    signature: `0x${hex(digest('churn-signature', revokedAt))}${'0'.repeat(3_900)}`,
  };
}

export function hasCrashGrant(index: number): boolean {
  return index % 3 === 0;
}

export function crashGrant(index: number): StoredGrant {
  return {
    handle: crashHandleId(index),
    grantee: `0x${hex(digest('grantee', index).subarray(0, 20))}`,
    notAfter: 1_800_000_000_000 + index,
    issuedAt: 1_700_000_000_000 + index,
    signature: `0x${hex(digest('signature', index))}${hex(digest('signature2', index))}`,
  };
}

async function main(): Promise<void> {
  const dir = process.env['TKMS_CRASH_DIR'];
  if (!dir) throw new Error('TKMS_CRASH_DIR is required');
  // The parent starts the next child while it checks the previous one, and says "go" on stdin
  // once the store is free: module loading (most of the start-up time) overlaps its checks.
  process.stdout.write('loaded\n');
  await new Promise<void>((resolveGo) => process.stdin.once('data', () => resolveGo()));
  process.stdin.destroy();
  const compact = process.env['TKMS_CRASH_MODE'] === 'compact';
  const store = await GatewayStore.open(dir, { now: () => CRASH_NOW, ...(compact ? { compactSlack: { bytes: 0, records: 0 } } : {}) });
  process.stdout.write('ready\n');
  let next = 0;
  let revokedAt = CRASH_CHURN_BASE;
  for (let key = 0; key < CRASH_CHURN_KEYS; key++) {
    const held = store.getRevocation(crashChurn(key, 0).handle, crashChurn(key, 0).grantee);
    if (held !== undefined) revokedAt = Math.max(revokedAt, held.revokedAt);
  }
  const writer = async (): Promise<void> => {
    while (next < CRASH_MAX_HANDLES) {
      const index = next++;
      if (compact && index >= CRASH_COMPACT_HANDLES) {
        const churn = crashChurn(index % CRASH_CHURN_KEYS, ++revokedAt);
        await store.putRevocation(churn);
        process.stdout.write(`r ${index % CRASH_CHURN_KEYS} ${churn.revokedAt}\n`);
        continue;
      }
      const handle = crashHandleId(index);
      if (store.getHandle(handle) === undefined) {
        await store.putHandle(crashHandle(index), crashCiphertext(index));
        process.stdout.write(`h ${index}\n`);
      }
      if (hasCrashGrant(index) && store.getGrant(handle, crashGrant(index).grantee) === undefined) {
        await store.putGrant(crashGrant(index));
        process.stdout.write(`g ${index}\n`);
      }
    }
  };
  await Promise.all(Array.from({ length: CRASH_WRITERS }, writer));
  await store.close();
}

const invokedDirectly = (() => {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
})();

if (invokedDirectly) {
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`gateway-store-crash-child: ${err instanceof Error ? `${err.name}: ${err.message}` : 'error'}\n`);
      process.exit(1);
    },
  );
}
