import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { assertKeyId, TkmsError, utf8ToBytes } from '../core/index.ts';
import { isPlainObject } from './keystore-format.ts';
import { readBounded } from './keystore-fs.ts';

/**
 * The public state files a backup carries as their exact text (vote locks, DKG results held without
 * a share): reading them, so what is read is what a restore writes back byte for byte, and the
 * structural checks of their entries in a backup (a mistake is a plain Error naming the entry).
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

export function exactFields(obj: Record<string, unknown>, fields: readonly string[], what: string): void {
  const keys = Object.keys(obj);
  if (keys.length !== fields.length || fields.some((f) => !Object.hasOwn(obj, f))) throw new Error(`${what} must have exactly the fields ${fields.join(', ')}`);
}

/** The array at `path`, at most `max` entries, each an object. */
export function entries(value: unknown, path: string, max: number): Record<string, unknown>[] {
  if (!Array.isArray(value) || value.length > max) throw new Error(`${path} must be an array of at most ${max} entries`);
  return value.map((entry: unknown, i) => {
    if (!isPlainObject(entry)) throw new Error(`${path}[${i}] must be an object`);
    return entry;
  });
}

/** The entry's key id, a valid one not seen before in `seen` (which it joins). */
export function uniqueKeyId(entry: Record<string, unknown>, what: string, seen: Set<string>): string {
  try {
    assertKeyId(entry.keyId);
  } catch {
    throw new Error(`${what}.keyId is not a key id`);
  }
  const keyId = entry.keyId;
  if (seen.has(keyId)) throw new Error(`${what}: key id ${keyId} appears twice`);
  seen.add(keyId);
  return keyId;
}

export function fileText(entry: Record<string, unknown>, maxBytes: number, what: string): { text: string; bytes: Uint8Array } {
  // A UTF-16 length above the byte bound is refused before encoding (a character is at least one byte).
  if (typeof entry.file !== 'string' || entry.file.length > maxBytes) throw new Error(`${what}.file must be a string of at most ${maxBytes} bytes`);
  const bytes = utf8ToBytes(entry.file);
  if (bytes.length > maxBytes) throw new Error(`${what}.file must be a string of at most ${maxBytes} bytes`);
  return { text: entry.file, bytes };
}

export function described(what: string, e: unknown): Error {
  return new Error(`${what}: ${e instanceof Error ? e.message : 'invalid'}`);
}
