import '../../core/polyfills.ts';
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { sha256 } from '@noble/hashes/sha2.js';
import { CURVE_ORDER, bytesToHex, utf8ToBytes } from '../../core/index.ts';
import { Keystore, type StoredKey } from '../../node/keystore.ts';

/**
 * Crash-test writer: opens the keystore in $TKMS_CRASH_DIR and saves keys crash-0, crash-1, …
 * (skipping those already present) until killed. The parent SIGKILLs it at random moments and
 * checks that every key on disk is exactly `expectedKey(keyId)`. Shares and public results are
 * derived from the key id alone, so the parent can recompute them.
 */

export const CRASH_KEY_PREFIX = 'crash-';
/** Bounds the loop, so a child the parent forgot to kill still ends. */
export const CRASH_MAX_KEYS = 20_000;

export function crashKeyId(index: number): string {
  return `${CRASH_KEY_PREFIX}${index}`;
}

export function expectedKey(keyId: string): StoredKey {
  const digest = sha256(utf8ToBytes(`tkms-keystore-crash:${keyId}`));
  const share = (BigInt(`0x${bytesToHex(digest)}`) % (CURVE_ORDER - 1n)) + 1n;
  return {
    keyId,
    share,
    publicResult: { keyId, digest: `0x${bytesToHex(digest)}`, nested: { list: [1, 'two', null, true], n: keyId.length } },
  };
}

async function main(): Promise<void> {
  const dir = process.env['TKMS_CRASH_DIR'];
  const password = process.env['TKMS_CRASH_PASSWORD'];
  if (!dir || !password) throw new Error('TKMS_CRASH_DIR and TKMS_CRASH_PASSWORD are required');
  const keystore = await Keystore.open(dir, password);
  const held = new Set(keystore.list());
  process.stdout.write('ready\n');
  for (let i = 0; i < CRASH_MAX_KEYS; i++) {
    const keyId = crashKeyId(i);
    if (held.has(keyId)) continue;
    await keystore.save(expectedKey(keyId));
  }
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
      process.stderr.write(`keystore-crash-child: ${err instanceof Error ? `${err.name}: ${err.message}` : 'error'}\n`);
      process.exit(1);
    },
  );
}
