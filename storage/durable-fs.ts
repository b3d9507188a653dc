import { constants as fsConstants } from 'node:fs';
import { chmod, mkdir, open, stat } from 'node:fs/promises';
import { dirname } from 'node:path';
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
