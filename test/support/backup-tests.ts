import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeHex, isTkmsError, type ErrorCode } from '../../core/index.ts';
import { restoreBackup } from '../../node/keystore-backup.ts';

/** Test support shared by the backup tests (vote locks, DKG results held without a share). */

/** Awaits `p`, which must reject with a TkmsError of `code` (and a message matching `message`); returns that error. */
export async function rejectsWith(code: ErrorCode, p: Promise<unknown>, message?: RegExp): Promise<{ code: string; message: string }> {
  try {
    await p;
  } catch (e) {
    assert.ok(isTkmsError(e), `expected a TkmsError, got ${String(e)}`);
    assert.equal(e.code, code, e.message);
    if (message !== undefined) assert.match(e.message, message);
    return e;
  }
  assert.fail(`expected ${code}`);
}

/** Every file under `dir` with its bytes, sorted: two equal snapshots mean nothing was written. */
export async function snapshot(dir: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (d: string): Promise<void> => {
    for (const e of await readdir(d, { withFileTypes: true }).catch(() => [])) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out.push(`${p.slice(dir.length)} ${encodeHex(await readFile(p))}`);
    }
  };
  await walk(dir);
  return out.sort();
}

/** Restores `backupFile` onto a node laid out under `target` (keystore, state/dkg, identity.json). */
export function restoreOnto(backupFile: string, backupPassword: string, target: string): ReturnType<typeof restoreBackup> {
  return restoreBackup({
    backupFile,
    backupPassword,
    keystoreDir: join(target, 'keystore'),
    dkgStateDir: join(target, 'state/dkg'),
    keystorePassword: 'the target password',
    identityFile: join(target, 'identity.json'),
  });
}
