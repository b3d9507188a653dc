import { sha256 } from '@noble/hashes/sha2.js';
import { join } from 'node:path';
import { TkmsError, assertKeyId, decodeHex, encodeHex, utf8ToBytes } from '../core/index.ts';
import { erasedFilesDigest } from '../core/keys/destruction-receipt.ts';
import { ensurePrivateDirectory } from '../storage/durable-fs.ts';
import type { DkgPublicResult } from '../core/dkg/index.ts';
import { MAX_KEY_FILE_BYTES, isPlainObject, keyFileName, parseEpochShareFileName, parseKeyFile } from './keystore-format.ts';
import { listDirectory, publishNewFile, readBounded, removeFileDurably, removeTempFiles } from './keystore-fs.ts';

/**
 * Erasing this node's share of one DKG key (a managed key's version, when its deletion window ends).
 *
 * Where a share lives at rest: `<keyId>.key.json` (the DKG's, node/keystore.ts) and
 * `<keyId>.e<epoch>.<proposal>.share.json` (each reshare or refresh, served or still pending,
 * node/epoch-store.ts), all in the keystore directory and each holding one key's share only, so
 * erasure is unlink + directory fsync and no file is ever rewritten. Public files stay: the
 * origin (`<keyId>.origin.json`), the DKG vote lock and result (`<stateDir>/dkg`), certificates.
 *
 * The erasure record `<stateDir>/keys/erased.<keyId>.json` is the commit point. It is published
 * (link(2), fsynced) before any share file is touched and names every file with the SHA-256 of
 * its bytes as stored (ciphertext under the keystore key), and keeps the DKG public result, which
 * is how the key's verification shares stay known once the share is gone. A crash before it leaves every
 * share in place and nothing decided; after it, the key is destroyed here and whatever files
 * remain are unlinked again by resumeKeyErasures at the next start (or the next call).
 */

export const ERASURE_RECORD_VERSION = 1;
/** One key has one DKG file and a few epoch files (older epochs are erased at each commit, pending ones are one per approved proposal). */
export const MAX_ERASED_FILES = 1024;
/** The DKG result (at most a key file's size) and a name and digest per file. */
export const MAX_ERASURE_RECORD_BYTES = MAX_KEY_FILE_BYTES + MAX_ERASED_FILES * 320;
const RECORD_FILE = /^erased\.(.+)\.json$/;

export interface ErasedFile {
  /** The file's name in the keystore directory. */
  name: string;
  /** SHA-256 of the file's bytes as stored (sealed share and public data; never the plaintext share). */
  sha256: Uint8Array;
  /**
   * The DKG public result the key file carried (verification shares, signatures), kept so the key
   * is still described once its share is gone. Null for an epoch share file (its public data is in
   * the handover certificates, which stay) and for a file that did not parse.
   */
  publicResult: Record<string, unknown> | null;
}

export interface ErasureRecord {
  /** The DKG key id of the material (a managed key's version names it). */
  keyId: string;
  /** When the erasure was decided (unix seconds). */
  erasedAt: number;
  /** Sorted by name; empty when this node held no share of the key. */
  files: ErasedFile[];
}

export interface KeyErasureDeps {
  /** The keystore directory (config.keystoreDir): where the share files are. */
  keystoreDir: string;
  /** The node's state directory: the records go to `<stateDir>/keys`. */
  stateDir: string;
  /** Stops serving partials for the key. */
  shareBook?: { remove(keyId: string): void };
  /** Forgets the share held in memory, so no reshare deals it again (node/epoch-store.ts). */
  epochStore?: { forgetShare(keyId: string): Promise<void> };
  /** The DKG runner: the key stays held (its public result is still published) but without a share. */
  runner?: { heldKeys(): DkgPublicResult[]; addHeldKey(result: DkgPublicResult, share?: boolean): void };
  /** Unix seconds; default the clock. */
  now?: () => number;
}

export function erasureRecordDir(stateDir: string): string {
  return join(stateDir, 'keys');
}

export function erasureRecordFileName(keyId: string): string {
  assertKeyId(keyId);
  return `erased.${keyId}.json`;
}

/** The SHA-256 over the erased files' digests, as a destruction receipt carries it. */
export function erasureDigest(record: ErasureRecord): Uint8Array {
  return erasedFilesDigest(record.files);
}

/**
 * Erases every copy of this node's share of `materialKeyId` and returns what was erased. Idempotent:
 * once recorded, every call returns the same record and only finishes what a crash left.
 */
export async function eraseKeyMaterial(materialKeyId: string, deps: KeyErasureDeps): Promise<ErasureRecord> {
  assertKeyId(materialKeyId);
  const record = (await readErasureRecord(deps.stateDir, materialKeyId)) ?? (await recordKeyErasure(await planKeyErasure(materialKeyId, deps), deps));
  await completeKeyErasure(record, deps);
  return record;
}

/** Step 1 (reads only): the share files of the key on disk, with their digests and public parts. */
export async function planKeyErasure(materialKeyId: string, deps: Pick<KeyErasureDeps, 'keystoreDir' | 'now'>): Promise<ErasureRecord> {
  assertKeyId(materialKeyId);
  const files: ErasedFile[] = [];
  for (const name of shareFileNames(await listIfPresent(deps.keystoreDir), materialKeyId)) {
    const bytes = await readBounded(join(deps.keystoreDir, name), MAX_KEY_FILE_BYTES, () => new TkmsError('keystore_corrupt', `${name} is not a regular file of at most ${MAX_KEY_FILE_BYTES} bytes`));
    if (bytes === undefined) continue; // erased meanwhile (a commit erasing an older epoch)
    files.push({ name, sha256: sha256(bytes), publicResult: name === keyFileName(materialKeyId) ? dkgResultIn(bytes, materialKeyId) : null });
  }
  if (files.length > MAX_ERASED_FILES) throw new TkmsError('keystore_corrupt', `more than ${MAX_ERASED_FILES} share files of key ${materialKeyId}`);
  const now = deps.now?.() ?? Math.floor(Date.now() / 1000);
  return { keyId: materialKeyId, erasedAt: now, files };
}

/**
 * Step 2, the commit point: publishes the record, never replacing one. When a record is already
 * there (an earlier or concurrent call) that one is returned and this plan is dropped.
 */
export async function recordKeyErasure(record: ErasureRecord, deps: Pick<KeyErasureDeps, 'stateDir'>): Promise<ErasureRecord> {
  const dir = erasureRecordDir(deps.stateDir);
  await ensurePrivateDirectory(dir, 'key erasure records');
  const bytes = serializeErasureRecord(record);
  if (bytes.length > MAX_ERASURE_RECORD_BYTES) throw new TkmsError('payload_too_large', `the erasure record of ${record.keyId} exceeds ${MAX_ERASURE_RECORD_BYTES} bytes`);
  if ((await publishNewFile(dir, erasureRecordFileName(record.keyId), bytes)) === 'written') return record;
  const stored = await readErasureRecord(deps.stateDir, record.keyId);
  if (stored === undefined) throw new TkmsError('keystore_corrupt', `the erasure record of ${record.keyId} disappeared while it was written`);
  return stored;
}

/**
 * Step 3: stops serving the key, unlinks every share file of it (those recorded and any that
 * appeared since: a recorded key is destroyed here whatever arrives later), fsyncs the directory,
 * and forgets the share in memory. Safe to repeat; a file already gone is not an error.
 */
export async function completeKeyErasure(record: ErasureRecord, deps: KeyErasureDeps): Promise<void> {
  const keyId = record.keyId;
  deps.shareBook?.remove(keyId);
  const names = new Set(record.files.map((f) => f.name));
  for (const name of shareFileNames(await listIfPresent(deps.keystoreDir), keyId)) names.add(name);
  for (const name of [...names].sort()) {
    // A record edited to name another file never erases it.
    if (!isShareFileOf(name, keyId)) throw new TkmsError('keystore_corrupt', `the erasure record of ${keyId} names ${name}, which is no share file of that key`);
    await removeFileDurably(deps.keystoreDir, name);
  }
  // After the store's queue drains: a commit that read a share file before the unlink has finished, and its share is dropped.
  await deps.epochStore?.forgetShare(keyId);
  deps.shareBook?.remove(keyId);
  const held = deps.runner?.heldKeys().find((r) => r.keyId === keyId);
  if (held !== undefined) deps.runner!.addHeldKey(held, false);
}

/** At start, before the keystore's keys are served: finishes every recorded erasure a crash interrupted. */
export async function resumeKeyErasures(deps: KeyErasureDeps): Promise<ErasureRecord[]> {
  const records: ErasureRecord[] = [];
  for (const keyId of await listErasedKeyIds(deps.stateDir)) {
    const record = await readErasureRecord(deps.stateDir, keyId);
    if (record === undefined) continue;
    await completeKeyErasure(record, deps);
    records.push(record);
  }
  return records;
}

/** Key ids with an erasure record (destroyed on this node), sorted. */
export async function listErasedKeyIds(stateDir: string): Promise<string[]> {
  const dir = erasureRecordDir(stateDir);
  const names = await listIfPresent(dir);
  await removeTempFiles(dir, names);
  const ids: string[] = [];
  for (const name of names) {
    const keyId = RECORD_FILE.exec(name)?.[1];
    if (keyId === undefined) continue;
    try {
      assertKeyId(keyId);
    } catch {
      continue;
    }
    ids.push(keyId);
  }
  return ids.sort();
}

/** The stored record of a key, or undefined when it was never erased here; keystore_corrupt for a damaged one. */
export async function readErasureRecord(stateDir: string, keyId: string): Promise<ErasureRecord | undefined> {
  const name = erasureRecordFileName(keyId);
  const bytes = await readBounded(join(erasureRecordDir(stateDir), name), MAX_ERASURE_RECORD_BYTES, () => corrupt(name, `not a regular file of at most ${MAX_ERASURE_RECORD_BYTES} bytes`));
  return bytes === undefined ? undefined : parseErasureRecord(bytes, keyId);
}

export function serializeErasureRecord(record: ErasureRecord): Uint8Array {
  const files = [...record.files].sort((a, b) => (a.name < b.name ? -1 : 1)).map((f) => ({ name: f.name, sha256: encodeHex(f.sha256), publicResult: f.publicResult }));
  return utf8ToBytes(`${JSON.stringify({ v: ERASURE_RECORD_VERSION, keyId: record.keyId, erasedAt: record.erasedAt, files })}\n`);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A record as serializeErasureRecord writes it, for `keyId`; anything else is keystore_corrupt (only this node writes them). */
export function parseErasureRecord(bytes: Uint8Array, keyId: string): ErasureRecord {
  const name = erasureRecordFileName(keyId);
  if (bytes.length > MAX_ERASURE_RECORD_BYTES) throw corrupt(name, 'too large');
  let obj: unknown;
  try {
    obj = JSON.parse(utf8.decode(bytes));
  } catch {
    throw corrupt(name, 'not UTF-8 JSON');
  }
  if (!isPlainObject(obj) || !exactly(obj, ['v', 'keyId', 'erasedAt', 'files'])) throw corrupt(name, 'expected exactly v, keyId, erasedAt, files');
  if (obj['v'] !== ERASURE_RECORD_VERSION) throw corrupt(name, `v must be ${ERASURE_RECORD_VERSION}`);
  if (obj['keyId'] !== keyId) throw corrupt(name, 'keyId does not match the file name');
  const erasedAt = obj['erasedAt'];
  if (!Number.isSafeInteger(erasedAt) || (erasedAt as number) < 0) throw corrupt(name, 'erasedAt must be unix seconds');
  const list = obj['files'];
  if (!Array.isArray(list) || list.length > MAX_ERASED_FILES) throw corrupt(name, `files must be an array of at most ${MAX_ERASED_FILES}`);
  const files = list.map((f: unknown): ErasedFile => {
    if (!isPlainObject(f) || !exactly(f, ['name', 'sha256', 'publicResult'])) throw corrupt(name, 'a file entry must have exactly name, sha256, publicResult');
    if (typeof f['name'] !== 'string' || !isShareFileOf(f['name'], keyId)) throw corrupt(name, 'a file entry names no share file of this key');
    let digest: Uint8Array;
    try {
      digest = decodeHex(f['sha256'], { length: 32, name: 'sha256' });
    } catch {
      throw corrupt(name, 'a file digest must be 32 bytes of hex');
    }
    const pub = f['publicResult'];
    if (pub !== null && !isPlainObject(pub)) throw corrupt(name, 'a publicResult must be an object or null');
    return { name: f['name'], sha256: digest, publicResult: pub };
  });
  for (let i = 1; i < files.length; i++) if (!(files[i - 1]!.name < files[i]!.name)) throw corrupt(name, 'files must be sorted by name without repeats');
  return { keyId, erasedAt: erasedAt as number, files };
}

/** A directory's entries; none when it does not exist (a node that never erased, or never held a key). */
async function listIfPresent(dir: string): Promise<string[]> {
  try {
    return await listDirectory(dir);
  } catch (err) {
    if (err instanceof TkmsError && err.details?.['errno'] === 'ENOENT') return [];
    throw err;
  }
}

function exactly(obj: Record<string, unknown>, fields: readonly string[]): boolean {
  const keys = Object.keys(obj);
  return keys.length === fields.length && fields.every((f) => Object.hasOwn(obj, f));
}

function corrupt(name: string, message: string): TkmsError {
  return new TkmsError('keystore_corrupt', `${name}: ${message}`);
}

/** Whether `name` is a file holding a share of `keyId`: its DKG key file or one of its epoch share files. */
function isShareFileOf(name: string, keyId: string): boolean {
  return name === keyFileName(keyId) || parseEpochShareFileName(name)?.keyId === keyId;
}

function shareFileNames(entries: readonly string[], keyId: string): string[] {
  return entries.filter((name) => isShareFileOf(name, keyId)).sort();
}

/** The DKG public result of a key file (what describe and receipts need once the share is gone). */
function dkgResultIn(bytes: Uint8Array, keyId: string): Record<string, unknown> | null {
  try {
    return parseKeyFile(bytes, keyId).publicResult;
  } catch {
    // A damaged file is still erased; it just leaves nothing public behind.
    return null;
  }
}
