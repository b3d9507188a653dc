import { constants as fsConstants } from 'node:fs';
import { link, open, readdir, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { TkmsError, bytesToHex, randomBytes } from '../core/index.ts';
import { errnoCode, fsyncDirectory as durableFsync, ioError as durableIoError, PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, writeNewSyncedFile } from '../storage/durable-fs.ts';

/**
 * File operations for the keystore. Files are never rewritten in place: a new file is
 * written under a temporary name, fsynced, then published under its final name.
 */

export const FILE_MODE = PRIVATE_FILE_MODE;
export const DIR_MODE = PRIVATE_DIR_MODE;
export { errnoCode };

const TEMP_PREFIX = '.tkms-tmp-';
const TEMP_NAME = /^\.tkms-tmp-[0-9a-f]{32}$/;

/** I/O failures become typed errors naming the operation and errno, never file contents. */
export function ioError(operation: string, err: unknown): TkmsError {
  return durableIoError('keystore', operation, err);
}

export function isTempFileName(name: string): boolean {
  return TEMP_NAME.test(name);
}

/**
 * Reads a whole regular file, refusing (with `invalid`) a symlink, a non-file or anything
 * above `maxBytes` before reading it, so a planted huge file cannot exhaust memory.
 * Returns undefined if the file does not exist.
 */
export async function readBounded(path: string, maxBytes: number, invalid: () => TkmsError): Promise<Uint8Array | undefined> {
  let handle;
  try {
    handle = await open(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    if (errnoCode(err) === 'ELOOP') throw invalid();
    throw ioError('read', err);
  }
  try {
    const stat = await handle.stat();
    if (!stat.isFile()) throw invalid();
    if (stat.size > maxBytes) throw invalid();
    // Read one byte past the limit so growth between stat and read is still caught.
    const buffer = Buffer.alloc(maxBytes + 1);
    let total = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, total, buffer.length - total, total);
      if (bytesRead === 0) break;
      total += bytesRead;
      if (total > maxBytes) throw invalid();
    }
    return new Uint8Array(buffer.subarray(0, total));
  } catch (err) {
    throw ioError('read', err);
  } finally {
    await handle.close().catch(() => undefined);
  }
}

export function fsyncDirectory(dir: string): Promise<void> {
  return durableFsync(dir, 'keystore');
}

export type PublishResult = 'written' | 'exists';

/**
 * Writes `data` to `dir/name` only if that name does not exist yet, crash-safely:
 *  1. write a fresh temp file in the same directory (O_CREAT|O_EXCL, mode 0600) and fsync it;
 *  2. `link(temp, final)` — atomic and fails with EEXIST when the final name exists, so an
 *     existing file is never replaced, even by a concurrent writer (no check-then-rename race);
 *  3. unlink the temp name and fsync the directory so the new entry is durable.
 * A crash before 2 leaves only a temp file; after 2 the final file is complete (its data was
 * synced before it got the name). Leftover temp files are removed by `removeTempFiles`.
 */
export async function publishNewFile(dir: string, name: string, data: Uint8Array): Promise<PublishResult> {
  const tempPath = join(dir, `${TEMP_PREFIX}${bytesToHex(randomBytes(16))}`);
  const finalPath = join(dir, name);
  let linked = false;
  try {
    await writeNewSyncedFile(tempPath, data);
    try {
      await link(tempPath, finalPath);
      linked = true;
    } catch (err) {
      if (errnoCode(err) === 'EEXIST') return 'exists';
      throw err;
    }
    // The file is published; a failed unlink only leaves a temp name for the next open to remove.
    await unlink(tempPath).catch(() => undefined);
    await fsyncDirectory(dir);
    return 'written';
  } catch (err) {
    throw ioError('write', err);
  } finally {
    if (!linked) await unlink(tempPath).catch(() => undefined);
  }
}

/** Removes temp files left by a crash (single-writer keystore: no live writer owns them). */
export async function removeTempFiles(dir: string, entries: readonly string[]): Promise<void> {
  for (const name of entries) {
    if (!isTempFileName(name)) continue;
    try {
      await unlink(join(dir, name));
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT') throw ioError('temp file cleanup', err);
    }
  }
}

export async function listDirectory(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    throw ioError('directory listing', err);
  }
}

/**
 * Replaces `dir/name` with `data` crash-safely: a fresh fsynced temp file renamed over the old
 * one (rename(2) is atomic), then the directory fsynced. A crash leaves either the complete old
 * file or the complete new one, never a mix; the old file's bytes are never written to.
 */
export async function replaceFile(dir: string, name: string, data: Uint8Array): Promise<void> {
  const tempPath = join(dir, `${TEMP_PREFIX}${bytesToHex(randomBytes(16))}`);
  let renamed = false;
  try {
    await writeNewSyncedFile(tempPath, data);
    await rename(tempPath, join(dir, name));
    renamed = true;
    await fsyncDirectory(dir);
  } catch (err) {
    throw ioError('write', err);
  } finally {
    if (!renamed) await unlink(tempPath).catch(() => undefined);
  }
}

/**
 * Erases `dir/name` (absent is fine) and makes the erasure durable. Used for shares of an epoch
 * left: the file is unlinked, never rewritten (its blocks are the filesystem's to reuse).
 */
export async function removeFileDurably(dir: string, name: string): Promise<void> {
  try {
    await unlink(join(dir, name));
  } catch (err) {
    if (errnoCode(err) !== 'ENOENT') throw ioError('erase', err);
    return;
  }
  await fsyncDirectory(dir);
}
