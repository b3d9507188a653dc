import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { TkmsError } from '../core/index.ts';
import { readBounded } from './keystore-fs.ts';

/**
 * Reading the public state files a backup carries as their exact text (vote locks, DKG results held
 * without a share): what is read is what a restore writes back, byte for byte.
 */

const utf8 = new TextDecoder('utf-8', { fatal: true });

export async function isDirectory(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

/** A file's bytes and text (undefined when it is not there); keystore_corrupt when it is not a bounded regular UTF-8 file. */
export async function readText(dir: string, name: string, maxBytes: number): Promise<{ bytes: Uint8Array; text: string } | undefined> {
  const bytes = await readBounded(join(dir, name), maxBytes, () => new TkmsError('keystore_corrupt', `${name} is not a regular file of at most ${maxBytes} bytes`));
  if (bytes === undefined) return undefined;
  try {
    return { bytes, text: utf8.decode(bytes) };
  } catch {
    throw new TkmsError('keystore_corrupt', `${name} is not UTF-8`);
  }
}
