import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { chmod, link, mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { TkmsError } from '../core/errors.ts';

/**
 * File-system steps that make writes survive a crash, shared by the node's keystore and
 * state logs and the gateway's store. Failures become typed errors that name the component,
 * the operation and the errno — never file contents.
 */
export const PRIVATE_FILE_MODE = 0o600;
export const PRIVATE_DIR_MODE = 0o700;

export function errnoCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** `${component} ${operation} failed (ERRNO)` as an internal TkmsError; TkmsErrors pass through. */
export function ioError(component: string, operation: string, err: unknown): TkmsError {
  if (err instanceof TkmsError) return err;
  const code = errnoCode(err) ?? 'unknown';
  return new TkmsError('internal', `${component} ${operation} failed (${code})`, { errno: code });
}

/**
 * Creates `path` (which must not exist; a link there is refused) with mode 0600, writes all of
 * `data` and fsyncs it: the first step of every "write aside, then publish by link or rename".
 * Raw errno errors are thrown for the caller to type.
 */
export async function writeNewSyncedFile(path: string, data: Uint8Array): Promise<void> {
  const handle = await open(path, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW, PRIVATE_FILE_MODE);
  try {
    await handle.chmod(PRIVATE_FILE_MODE); // the umask may have narrowed it; make it exact
    await handle.writeFile(data);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export async function fsyncDirectory(dir: string, component: string): Promise<void> {
  const handle = await open(dir, fsConstants.O_RDONLY).catch((err: unknown) => {
    throw ioError(component, 'directory sync', err);
  });
  try {
    await handle.sync();
  } catch (err) {
    // Some filesystems cannot fsync a directory; the data file itself is already synced.
    if (errnoCode(err) !== 'EINVAL' && errnoCode(err) !== 'EISDIR') throw ioError(component, 'directory sync', err);
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/**
 * Creates `dir` (mode 0700, parents too) if needed, making every new directory entry durable
 * up to the first one created; refuses a path that exists and is not a directory.
 */
export async function ensurePrivateDirectory(dir: string, component: string): Promise<void> {
  let created: string | undefined;
  try {
    created = await mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  } catch (err) {
    if (errnoCode(err) === 'EEXIST' || errnoCode(err) === 'ENOTDIR') throw new TkmsError('bad_request', `${component} path exists and is not a directory`);
    throw ioError(component, 'directory creation', err);
  }
  if (created !== undefined) {
    await chmod(dir, PRIVATE_DIR_MODE).catch((err: unknown) => {
      throw ioError(component, 'directory chmod', err);
    });
    for (let child = dir; ; child = dirname(child)) {
      await fsyncDirectory(dirname(child), component);
      if (child === created || dirname(child) === child) break;
    }
  }
  const info = await stat(dir).catch((err: unknown) => {
    throw ioError(component, 'directory stat', err);
  });
  if (!info.isDirectory()) throw new TkmsError('bad_request', `${component} path exists and is not a directory`);
}

/**
 * Publishes `data` at `path` whole or not at all: written to a hidden temp file beside it (0600,
 * fsynced, so the mode never depends on an older file), then link(2)ed to `path` — which fails
 * with EEXIST rather than replace anything — or, with `replace`, rename(2)d over it (a symlink at
 * `path` is itself replaced, its target untouched). The temp file is removed on every outcome and
 * the directory fsynced, so a crash or a full disk leaves no partial file at `path`. Raw errno
 * errors are thrown for the caller to type; the directory sync's are typed with `component`.
 */
export async function publishSyncedFile(path: string, data: Uint8Array, opts: { replace: boolean; component: string }): Promise<void> {
  const temp = join(dirname(path), `.${basename(path)}.tmp-${randomBytes(8).toString('hex')}`);
  let renamed = false;
  try {
    await writeNewSyncedFile(temp, data);
    if (opts.replace) {
      await rename(temp, path);
      renamed = true;
    } else {
      await link(temp, path);
    }
  } finally {
    if (!renamed) await unlink(temp).catch(() => undefined);
  }
  await fsyncDirectory(dirname(path), opts.component);
}
