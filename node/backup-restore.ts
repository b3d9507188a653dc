import { stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { TkmsError, isTkmsError, utf8ToBytes } from '../core/index.ts';
import { ensurePrivateDirectory } from '../storage/durable-fs.ts';
import { loadIdentityFile } from './identity.ts';
import { Keystore } from './keystore.ts';
import { MAX_HANDOVER_FILE_BYTES, handoverFileName, membershipFileName, originFileName, serializeOrigin } from './epoch-files.ts';
import { wipe } from './keystore-crypto.ts';
import { epochShareFileName, keyIdFromFileName } from './keystore-format.ts';
import { listDirectory, publishNewFile, readBounded } from './keystore-fs.ts';
import { checkVoteLocks, installVoteLocks } from './backup-vote-locks.ts';
import { checkDkgPublicResults, installDkgPublicResults } from './backup-dkg-results.ts';
import { MAX_BACKUP_BYTES, badBackup, openBackup, parseBackup, type OpenedBackup } from './backup-format.ts';

/**
 * Restoring a keystore backup (node/keystore-backup.ts): everything checked before anything is
 * written, then the vote locks, the seed, the identity, the keys and the epoch state installed.
 */

/** The bytes the epoch store writes for a certificate and a membership record (node/epoch-store.ts). */
function storedJsonBytes(value: unknown): Uint8Array {
  return utf8ToBytes(`${JSON.stringify(value)}\n`);
}

export interface RestoreOptions {
  backupFile: string;
  /** Password the backup was made with (the node's keystore password at that time). */
  backupPassword: string;
  keystoreDir: string;
  /** `<stateDir>/dkg` of the target node, where its DKG vote locks and results held without a share go. */
  dkgStateDir: string;
  /** Password of the target keystore (created with it if the directory holds none). */
  keystorePassword: string;
  identityFile: string;
}

export interface RestoreResult {
  restored: string[];
  identity: 'installed' | 'kept';
  /**
   * The backup's ceremony seed: installed, already the one held ('same'), 'kept' when the target
   * held another (never replaced: a ceremony in flight then treats this node as an equivocating
   * dealer and completes without it), or 'none' in the backup.
   */
  ceremonySeed: 'installed' | 'same' | 'kept' | 'none';
  peerId: string;
  /**
   * The vote locks installed (or already held, the same), or null for a backup older than version 4,
   * which carries none: the node may then vote again in a ceremony it had voted in.
   */
  voteLocks: { dkgKeyIds: string[]; reshareProposalIds: string[]; approvalRecords: number } | null;
  /**
   * Key ids whose DKG result (held without a share) was installed or already held, or null for a
   * backup older than version 5, which carries none: the node no longer knows those keys.
   */
  dkgPublicResults: string[] | null;
  backupVersion: number;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** Verifies the backup, then installs its identity (if missing) and keys; see node/keystore-backup.ts. */
export async function restoreBackup(opts: RestoreOptions): Promise<RestoreResult> {
  let bytes: Uint8Array;
  try {
    const b = await readBounded(resolve(opts.backupFile), MAX_BACKUP_BYTES, () => badBackup(`${opts.backupFile} is not a regular file of at most ${MAX_BACKUP_BYTES} bytes`));
    if (b === undefined) throw new TkmsError('bad_request', `backup file ${opts.backupFile} does not exist`);
    bytes = b;
  } catch (e) {
    throw isTkmsError(e) ? e : new TkmsError('bad_request', `cannot read backup file ${opts.backupFile}`);
  }
  let opened: OpenedBackup;
  try {
    opened = await openBackup(parseBackup(bytes), opts.backupPassword);
  } catch (e) {
    if (isTkmsError(e, 'keystore_locked')) {
      throw new TkmsError('keystore_locked', 'the backup does not open with this password: it needs the keystore password the node had when the backup was made (--backup-password-file)');
    }
    throw e;
  }
  const peerId = opened.parsed.node.peerId;

  // 1. Identity: this node's own, or none yet (then the backup's is installed).
  let identity: RestoreResult['identity'];
  if (await exists(opts.identityFile)) {
    const current = await loadIdentityFile(opts.identityFile);
    if (current.peerId !== peerId) {
      throw new TkmsError('conflict', `the backup belongs to peer ${peerId} but this node's identity is ${current.peerId}; refusing to restore another node's shares`);
    }
    identity = 'kept';
  } else {
    if (opened.identityText === null) throw new TkmsError('bad_request', `the backup holds no identity and ${opts.identityFile} does not exist`);
    identity = 'installed';
  }

  // 2. Nothing already in the keystore may be replaced: check every key before writing any.
  const dir = resolve(opts.keystoreDir);
  const present = new Set(
    (await exists(dir)) ? (await listDirectory(dir)).map(keyIdFromFileName).filter((id): id is string => id !== undefined) : [],
  );
  const entries = new Set((await exists(dir)) ? await listDirectory(dir) : []);
  const clashes = [
    ...opened.keys.map((k) => k.keyId).filter((id) => present.has(id)),
    ...opened.epochShares.map((s) => epochShareFileName(s)).filter((name) => entries.has(name)),
  ];
  for (const [name, bytes] of [
    ...opened.parsed.memberships.map((m) => [membershipFileName(m.epoch), utf8ToBytes(`${m.text}\n`)] as const),
    ...opened.parsed.handovers.map((cert) => [handoverFileName(cert.fromEpoch), storedJsonBytes(cert)] as const),
    ...opened.parsed.origins.map((origin) => [originFileName(origin['keyId'] as string), serializeOrigin(origin)] as const),
  ]) {
    if (entries.has(name) && !(await holdsBytes(dir, name, bytes))) clashes.push(name);
  }
  if (clashes.length > 0) {
    throw new TkmsError('conflict', `the keystore already holds ${clashes.join(', ')}; a restore never overwrites a key (move the keystore aside first)`);
  }
  const lockDirs = { keystoreDir: dir, dkgStateDir: resolve(opts.dkgStateDir) };
  const publicResults = opened.parsed.dkgPublicResults;
  if (publicResults !== null) await checkDkgPublicResults(publicResults, opened.keys.map((k) => k.keyId), lockDirs);
  const locks = opened.parsed.voteLocks;
  if (locks !== null) await checkVoteLocks(locks, lockDirs);

  // 3. Unlock (or create) the target keystore first, so a wrong target password stops the restore
  //    before anything else is written; then the identity atomically (0600); then each key, sealed
  //    under the target password.
  const keystore = await Keystore.open(dir, opts.keystorePassword);
  let ceremonySeed: RestoreResult['ceremonySeed'] = 'none';
  try {
    // First the locks: whatever else a failed restore leaves, it never leaves a node that forgot a vote.
    if (locks !== null) await installVoteLocks(locks, lockDirs);
    if (publicResults !== null) await installDkgPublicResults(publicResults, lockDirs.dkgStateDir);
    // Then: a restored node must derive the seed it had before any ceremony state it resumes.
    if (opened.ceremonySeed !== null) ceremonySeed = await keystore.installCeremonySeed(opened.ceremonySeed);
    if (identity === 'installed') await installIdentity(opts.identityFile, opened.identityText!, peerId);
    for (const key of opened.keys) await keystore.save(key);
    // Shares before certificates: a certificate is a commit, and must find the shares it serves.
    for (const s of opened.epochShares) {
      const data = keystore.sealEpochShare(s.keyId, s.epoch, s.share, s.publicResult);
      if ((await publishNewFile(dir, epochShareFileName(s), data)) === 'exists') throw new TkmsError('conflict', `${epochShareFileName(s)} appeared during the restore`);
    }
    for (const origin of opened.parsed.origins) await installVerbatim(dir, originFileName(origin['keyId'] as string), serializeOrigin(origin));
    for (const m of opened.parsed.memberships) await installVerbatim(dir, membershipFileName(m.epoch), utf8ToBytes(`${m.text}\n`));
    for (const cert of opened.parsed.handovers) await installVerbatim(dir, handoverFileName(cert.fromEpoch), storedJsonBytes(cert));
  } finally {
    keystore.close();
    wipe(opened.ceremonySeed ?? undefined);
  }
  return {
    restored: [...new Set([...opened.keys.map((k) => k.keyId), ...opened.epochShares.map((e) => e.keyId)])].sort(),
    identity,
    peerId,
    ceremonySeed,
    voteLocks: locks === null ? null : { dkgKeyIds: locks.dkgVotes.map((v) => v.keyId), reshareProposalIds: locks.reshareVotes.map((v) => v.proposalId), approvalRecords: locks.approvals.length },
    dkgPublicResults: publicResults === null ? null : publicResults.map((r) => r.keyId),
    backupVersion: opened.parsed.version,
  };
}

async function installIdentity(identityFile: string, text: string, peerId: string): Promise<void> {
  const full = resolve(identityFile);
  await ensurePrivateDirectory(dirname(full), 'identity');
  if ((await publishNewFile(dirname(full), basename(full), utf8ToBytes(text))) === 'exists') {
    throw new TkmsError('conflict', `${full} appeared during the restore; refusing to overwrite it`);
  }
  const check = await loadIdentityFile(full);
  if (check.peerId !== peerId) throw new TkmsError('keystore_corrupt', 'the restored identity does not match the backup peer id');
}

/** Publishes a public epoch-state file; one already there must be the same, never replaced. */
async function installVerbatim(dir: string, name: string, bytes: Uint8Array): Promise<void> {
  if ((await publishNewFile(dir, name, bytes)) === 'written') return;
  if (!(await holdsBytes(dir, name, bytes))) throw new TkmsError('conflict', `the keystore already holds another ${name}; a restore never replaces one`);
}

async function holdsBytes(dir: string, name: string, bytes: Uint8Array): Promise<boolean> {
  const onDisk = await readBounded(join(dir, name), MAX_HANDOVER_FILE_BYTES, () => new TkmsError('conflict', `${name} in the keystore is not a regular file`));
  return onDisk !== undefined && onDisk.length === bytes.length && onDisk.every((b, i) => b === bytes[i]);
}
