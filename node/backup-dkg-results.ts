import { join } from 'node:path';
import { TkmsError, utf8ToBytes } from '../core/index.ts';
import { ensurePrivateDirectory } from '../storage/durable-fs.ts';
import { MAX_DKG_PUBLIC_RESULT_FILE_BYTES, dkgPublicResultFileName, parseDkgPublicResultFile, parseDkgPublicResultFileName } from './dkg-state.ts';
import { sameBytes } from './epoch-files.ts';
import { keyFileName } from './keystore-format.ts';
import { listDirectory, publishNewFile, readBounded } from './keystore-fs.ts';
import { described, entries, exactFields, fileText, isDirectory, readText, uniqueKeyId } from './backup-files.ts';

/**
 * The DKG results a node holds without a share, which a keystore backup carries (version 5), and
 * their restore. `<stateDir>/dkg/public.<keyId>.json` (node/dkg-state.ts) is this node's only record
 * of such a key: the keystore holds no share of it, so a node restored without the file no longer
 * knows the key exists, and cannot give a client or the gateway its public result (nor refuse a
 * second DKG of the key id on that ground). The files are public, so they travel as their exact text
 * and are installed as those same bytes, never over different ones; every conflict is found before
 * anything is written.
 */

/** Results in one backup: one per DKG this node completed without a share (the vote locks' bound). */
export const MAX_BACKUP_DKG_PUBLIC_RESULTS = 4096;

export interface BackupDkgPublicResult {
  keyId: string;
  text: string;
}

/** The node's results held without a share, as they are on disk (each parsed as the node loads it: a broken one is keystore_corrupt). */
export async function readDkgPublicResults(dkgStateDir: string): Promise<BackupDkgPublicResult[]> {
  const results: BackupDkgPublicResult[] = [];
  if (!(await isDirectory(dkgStateDir))) return results;
  for (const name of (await listDirectory(dkgStateDir)).sort()) {
    const keyId = parseDkgPublicResultFileName(name);
    if (keyId === undefined) continue;
    const file = await readText(dkgStateDir, name, MAX_DKG_PUBLIC_RESULT_FILE_BYTES);
    if (file === undefined) continue;
    parseDkgPublicResultFile(file.bytes, keyId);
    results.push({ keyId, text: file.text });
  }
  if (results.length > MAX_BACKUP_DKG_PUBLIC_RESULTS) throw new TkmsError('payload_too_large', `more than ${MAX_BACKUP_DKG_PUBLIC_RESULTS} DKG results held without a share`);
  return results;
}

/** The backup's `dkgPublicResults` field: each result as its file's exact text. */
export function dkgPublicResultsToJson(results: readonly BackupDkgPublicResult[]): Record<string, unknown>[] {
  return results.map((r) => ({ keyId: r.keyId, file: r.text }));
}

/** Structural parse of a backup's `dkgPublicResults`, each file parsed as the node would load it; a mistake is a plain Error naming the entry. */
export function parseDkgPublicResults(value: unknown): BackupDkgPublicResult[] {
  const keyIds = new Set<string>();
  return entries(value, 'dkgPublicResults', MAX_BACKUP_DKG_PUBLIC_RESULTS).map((entry, i) => {
    const what = `dkgPublicResults[${i}]`;
    exactFields(entry, ['keyId', 'file'], what);
    const keyId = uniqueKeyId(entry, what, keyIds);
    const { text, bytes } = fileText(entry, MAX_DKG_PUBLIC_RESULT_FILE_BYTES, what);
    try {
      parseDkgPublicResultFile(bytes, keyId);
    } catch (e) {
      throw described(what, e);
    }
    return { keyId, text };
  });
}

/** Where a node keeps what the check below compares. */
export interface DkgPublicResultDirs {
  keystoreDir: string;
  /** `<stateDir>/dkg`. */
  dkgStateDir: string;
}

function conflict(message: string, details: Record<string, unknown>): TkmsError {
  return new TkmsError('conflict', message, details);
}

/**
 * Refuses (conflict, writing nothing) a backup whose results held without a share contradict the
 * node's: another result of the same key id, a share of a key id the backup holds without one, or a
 * result held without a share of a key id whose share the backup restores. A node holding both for
 * one key id would serve it as held without a share, or the other way round.
 */
export async function checkDkgPublicResults(results: readonly BackupDkgPublicResult[], backupShareKeyIds: readonly string[], dirs: DkgPublicResultDirs): Promise<void> {
  const problems: string[] = [];
  const hasDkgState = await isDirectory(dirs.dkgStateDir);
  const keystoreEntries = new Set((await isDirectory(dirs.keystoreDir)) ? await listDirectory(dirs.keystoreDir) : []);
  for (const r of results) {
    const held = hasDkgState ? await readText(dirs.dkgStateDir, dkgPublicResultFileName(r.keyId), MAX_DKG_PUBLIC_RESULT_FILE_BYTES) : undefined;
    if (held !== undefined && held.text !== r.text) problems.push(`key id ${r.keyId}: this node holds another DKG result of it`);
    if (keystoreEntries.has(keyFileName(r.keyId))) problems.push(`key id ${r.keyId}: this node holds a share of it, the backup its result without one`);
  }
  const heldWithoutShare = new Set(hasDkgState ? (await listDirectory(dirs.dkgStateDir)).map(parseDkgPublicResultFileName).filter((id) => id !== undefined) : []);
  for (const keyId of backupShareKeyIds) {
    if (heldWithoutShare.has(keyId)) problems.push(`key id ${keyId}: this node holds its result without a share, the backup a share of it`);
  }
  if (problems.length > 0) {
    const shown = problems.slice(0, 8).join('; ') + (problems.length > 8 ? `; and ${problems.length - 8} more` : '');
    throw conflict(`restore refused, nothing installed: this node's DKG results contradict the backup's (${shown}); restore onto this node only a backup of its own history, or onto an empty state and keystore directory`, {
      conflicts: problems.length,
    });
  }
}

/** Installs the results checked by checkDkgPublicResults: each file published whole (written aside, synced, linked), never over another. */
export async function installDkgPublicResults(results: readonly BackupDkgPublicResult[], dkgStateDir: string): Promise<void> {
  if (results.length > 0) await ensurePrivateDirectory(dkgStateDir, 'DKG state');
  for (const r of results) {
    const name = dkgPublicResultFileName(r.keyId);
    const bytes = utf8ToBytes(r.text);
    if ((await publishNewFile(dkgStateDir, name, bytes)) === 'written') continue;
    const held = await readBounded(join(dkgStateDir, name), MAX_DKG_PUBLIC_RESULT_FILE_BYTES, () => new TkmsError('keystore_corrupt', `${name} is not a regular file`));
    if (held === undefined || !sameBytes(held, bytes)) throw conflict(`${name} appeared with other content during the restore; a DKG result is never replaced`, { file: name });
  }
}
