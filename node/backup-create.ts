import { readFile } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { TkmsError, assertKeyId, encodeHex, randomBytes, utf8ToBytes } from '../core/index.ts';
import { ensurePrivateDirectory } from '../storage/durable-fs.ts';
import { loadIdentityFile } from './identity.ts';
import { decryptEpochShare, decryptShare, unlockWithPassword } from './keystore.ts';
import { parseHandoverCertificate, type HandoverCertificate } from '../core/ceremony/handover.ts';
import { MAX_HANDOVER_FILE_BYTES, MAX_MEMBERSHIP_FILE_BYTES, MAX_ORIGIN_FILE_BYTES, ORIGIN_SUFFIX, parseHandoverFileName, parseMembership, parseMembershipFileName, parseOrigin } from './epoch-files.ts';
import { CEREMONY_SEED_FILE_NAME, MAX_SEED_FILE_BYTES, openSeed, parseSealedSeedBytes, sealedSeedToJson } from './keystore-seed.ts';
import { GCM_NONCE_LENGTH, deriveSubkey, sealAesGcm, wipe } from './keystore-crypto.ts';
import { HEADER_FILE_NAME, MAX_HEADER_BYTES, MAX_KEY_FILE_BYTES, SALT_LENGTH, epochShareFileName, keyFileName, keyIdFromFileName, parseEpochShareFileName, parseHeader, parseKeyFile, serializeHeader, serializeKeyFile, type EpochShareName, type KeyFile } from './keystore-format.ts';
import { listDirectory, publishNewFile, readBounded } from './keystore-fs.ts';
import { readVoteLocks, voteLocksToJson } from './backup-vote-locks.ts';
import { dkgPublicResultsToJson, readDkgPublicResults } from './backup-dkg-results.ts';
import { BACKUP_FORMAT, BACKUP_VERSION, MAX_BACKUP_EPOCH_SHARES, MAX_BACKUP_HANDOVERS, MAX_BACKUP_KEYS, MAX_IDENTITY_BYTES, identityAad, identityKeyInfo } from './backup-format.ts';

/**
 * Making a keystore backup (node/keystore-backup.ts): the keystore read without opening it as a
 * Keystore (safe while the node runs), every sealed part checked to open, the identity sealed.
 */

export interface CreateBackupOptions {
  keystoreDir: string;
  /** `<stateDir>/dkg`, where the DKG vote locks and results held without a share are (node/dkg-state.ts). */
  dkgStateDir: string;
  password: string;
  identityFile: string;
  committeeId?: string;
  memberId?: number;
  now?: Date;
}

/** Reads and verifies the keystore and identity, and returns the backup file's bytes. */
/** `keyIds`: the keys whose shares it holds; `keyIdsWithoutShare`: the DKG results it holds without a share. */
export async function createBackup(opts: CreateBackupOptions): Promise<{ bytes: Uint8Array; keyIds: string[]; keyIdsWithoutShare: string[]; peerId: string }> {
  const dir = resolve(opts.keystoreDir);
  const headerBytes = await readBounded(join(dir, HEADER_FILE_NAME), MAX_HEADER_BYTES, () => new TkmsError('keystore_corrupt', 'keystore header is not a regular file'));
  if (headerBytes === undefined) throw new TkmsError('bad_request', `no keystore in ${dir} (no ${HEADER_FILE_NAME}); nothing to back up`);
  const header = parseHeader(headerBytes);
  const identity = await loadIdentityFile(opts.identityFile);
  const identityText = await readFile(opts.identityFile, 'utf8');
  if (identityText.length > MAX_IDENTITY_BYTES) throw new TkmsError('bad_request', 'identity file is too large');
  const masterKey = await unlockWithPassword(header, opts.password);
  try {
    const keyIds = (await listDirectory(dir))
      .map(keyIdFromFileName)
      .filter((id): id is string => id !== undefined)
      .sort();
    if (keyIds.length > MAX_BACKUP_KEYS) throw new TkmsError('payload_too_large', `more than ${MAX_BACKUP_KEYS} keys`);
    const keys: KeyFile[] = [];
    for (const keyId of keyIds) {
      const bytes = await readBounded(join(dir, keyFileName(keyId)), MAX_KEY_FILE_BYTES, () => new TkmsError('keystore_corrupt', `key file for ${keyId} is not a regular file`));
      if (bytes === undefined) continue; // removed meanwhile
      const file = parseKeyFile(bytes, keyId);
      decryptShare(masterKey, file); // proves the backup will restore; the share is dropped at once
      keys.push(file);
    }
    const entries = await listDirectory(dir);
    const epochShares: KeyFile[] = [];
    const epochNames: EpochShareName[] = [];
    for (const entry of entries) {
      const name = parseEpochShareFileName(entry);
      if (name === undefined) continue;
      const bytes = await readBounded(join(dir, entry), MAX_KEY_FILE_BYTES, () => new TkmsError('keystore_corrupt', `${entry} is not a regular file`));
      if (bytes === undefined) continue; // erased meanwhile (a commit)
      const file = parseKeyFile(bytes, name.keyId);
      decryptEpochShare(masterKey, file, name.epoch);
      epochShares.push(file);
      epochNames.push(name);
    }
    if (epochShares.length > MAX_BACKUP_EPOCH_SHARES) throw new TkmsError('payload_too_large', `more than ${MAX_BACKUP_EPOCH_SHARES} epoch shares`);
    const handovers: unknown[] = [];
    const memberships: unknown[] = [];
    for (const entry of entries.sort()) {
      const fromEpoch = parseHandoverFileName(entry);
      const memberEpoch = parseMembershipFileName(entry);
      if (fromEpoch === undefined && memberEpoch === undefined) continue;
      const max = fromEpoch !== undefined ? MAX_HANDOVER_FILE_BYTES : MAX_MEMBERSHIP_FILE_BYTES;
      const bytes = await readBounded(join(dir, entry), max, () => new TkmsError('keystore_corrupt', `${entry} is not a regular file`));
      if (bytes === undefined) continue;
      const json = parseStoredJson(bytes, entry);
      if (fromEpoch !== undefined) {
        const cert = parseStoredCertificate(json, entry);
        if (cert.fromEpoch !== fromEpoch) throw new TkmsError('keystore_corrupt', `${entry} holds the certificate leaving epoch ${cert.fromEpoch}`);
        handovers.push(cert);
      } else {
        parseMembership(bytes, memberEpoch!);
        memberships.push(json);
      }
    }
    if (handovers.length > MAX_BACKUP_HANDOVERS) throw new TkmsError('payload_too_large', `more than ${MAX_BACKUP_HANDOVERS} handover certificates`);
    const origins: Record<string, unknown>[] = [];
    for (const entry of entries.sort()) {
      if (!entry.endsWith(ORIGIN_SUFFIX)) continue;
      const keyId = entry.slice(0, -ORIGIN_SUFFIX.length);
      try {
        assertKeyId(keyId);
      } catch {
        continue;
      }
      const bytes = await readBounded(join(dir, entry), MAX_ORIGIN_FILE_BYTES, () => new TkmsError('keystore_corrupt', `${entry} is not a regular file`));
      if (bytes !== undefined) origins.push(parseOrigin(bytes, keyId));
    }
    if (origins.length > MAX_BACKUP_KEYS) throw new TkmsError('payload_too_large', `more than ${MAX_BACKUP_KEYS} key origins`);
    const seedBytes = await readBounded(join(dir, CEREMONY_SEED_FILE_NAME), MAX_SEED_FILE_BYTES, () => new TkmsError('keystore_corrupt', `${CEREMONY_SEED_FILE_NAME} is not a regular file`));
    const ceremonySeed = seedBytes === undefined ? null : parseSealedSeedBytes(seedBytes);
    if (ceremonySeed !== null) wipe(openSeed(masterKey, ceremonySeed)); // proves it will restore
    const voteLocks = await readVoteLocks({ keystoreDir: dir, dkgStateDir: resolve(opts.dkgStateDir) });
    const dkgPublicResults = await readDkgPublicResults(resolve(opts.dkgStateDir));
    const hkdfSalt = randomBytes(SALT_LENGTH);
    const nonce = randomBytes(GCM_NONCE_LENGTH);
    const idKey = deriveSubkey(masterKey, hkdfSalt, identityKeyInfo(BACKUP_VERSION));
    let ciphertext: Uint8Array;
    try {
      ciphertext = sealAesGcm(idKey, nonce, utf8ToBytes(identityText), identityAad(BACKUP_VERSION, identity.peerId));
    } finally {
      wipe(idKey);
    }
    const doc = {
      format: BACKUP_FORMAT,
      version: BACKUP_VERSION,
      createdAt: (opts.now ?? new Date()).toISOString(),
      node: { peerId: identity.peerId, committeeId: opts.committeeId ?? null, memberId: opts.memberId ?? null },
      keystore: JSON.parse(new TextDecoder().decode(serializeHeader(header))) as unknown,
      keys: keys.map((k) => JSON.parse(new TextDecoder().decode(serializeKeyFile(k))) as unknown),
      identity: { hkdfSalt: encodeHex(hkdfSalt), nonce: encodeHex(nonce), ciphertext: encodeHex(ciphertext) },
      epochShares: epochShares.map((k, i) => ({ name: epochShareFileName(epochNames[i]!), file: JSON.parse(new TextDecoder().decode(serializeKeyFile(k))) as unknown })),
      handovers,
      memberships,
      ceremonySeed: ceremonySeed === null ? null : sealedSeedToJson(ceremonySeed),
      origins,
      voteLocks: voteLocksToJson(voteLocks),
      dkgPublicResults: dkgPublicResultsToJson(dkgPublicResults),
    };
    return { bytes: utf8ToBytes(`${JSON.stringify(doc, null, 2)}\n`), keyIds: [...new Set([...keys.map((k) => k.keyId), ...epochNames.map((n) => n.keyId)])].sort(), keyIdsWithoutShare: dkgPublicResults.map((r) => r.keyId), peerId: identity.peerId };
  } finally {
    wipe(masterKey);
  }
}

/** Writes the backup with mode 0600, atomically (temp file, fsync, link); never replaces a file. */
export async function writeBackupFile(path: string, bytes: Uint8Array): Promise<void> {
  const full = resolve(path);
  await ensurePrivateDirectory(dirname(full), 'backup');
  const result = await publishNewFile(dirname(full), basename(full), bytes);
  if (result === 'exists') throw new TkmsError('conflict', `${full} already exists; refusing to overwrite it`);
}

function parseStoredJson(bytes: Uint8Array, what: string): unknown {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes)) as unknown;
  } catch {
    throw new TkmsError('keystore_corrupt', `${what} is not UTF-8 JSON`);
  }
}

function parseStoredCertificate(json: unknown, what: string): HandoverCertificate {
  try {
    return parseHandoverCertificate(json);
  } catch {
    throw new TkmsError('keystore_corrupt', `${what} is not a handover certificate`);
  }
}
