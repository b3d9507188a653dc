import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { TkmsError, assertKeyId, decodeHex, encodeHex, isTkmsError, lengthPrefixed, randomBytes, utf8ToBytes } from '../core/index.ts';
import { ensurePrivateDirectory } from '../storage/durable-fs.ts';
import { loadIdentityFile } from './identity.ts';
import { decryptEpochShare, decryptShare, Keystore, unlockWithPassword, type StoredKey } from './keystore.ts';
import { parseHandoverCertificate, type HandoverCertificate } from '../core/ceremony/handover.ts';
import { MAX_HANDOVER_FILE_BYTES, MAX_MEMBERSHIP_FILE_BYTES, MAX_ORIGIN_FILE_BYTES, ORIGIN_SUFFIX, handoverFileName, membershipFileName, originFileName, parseHandoverFileName, parseMembership, parseMembershipFileName, parseOrigin, serializeOrigin } from './epoch-files.ts';
import { CEREMONY_SEED_FILE_NAME, MAX_SEED_FILE_BYTES, openSeed, parseSealedSeed, parseSealedSeedBytes, sealedSeedToJson, type SealedSeed } from './keystore-seed.ts';
import { GCM_NONCE_LENGTH, GCM_TAG_LENGTH, deriveSubkey, openAesGcm, sealAesGcm, wipe } from './keystore-crypto.ts';
import {
  HEADER_FILE_NAME,
  MAX_HEADER_BYTES,
  MAX_KEY_FILE_BYTES,
  SALT_LENGTH,
  isPlainObject,
  epochShareFileName,
  keyFileName,
  keyIdFromFileName,
  parseEpochShareFileName,
  parseHeader,
  parseKeyFile,
  serializeHeader,
  serializeKeyFile,
  type EpochShareName,
  type KeyFile,
  type KeystoreHeader,
} from './keystore-format.ts';
import { listDirectory, publishNewFile, readBounded } from './keystore-fs.ts';
import { checkVoteLocks, installVoteLocks, parseVoteLocks, readVoteLocks, voteLocksToJson, type BackupVoteLocks } from './backup-vote-locks.ts';
import { checkDkgPublicResults, dkgPublicResultsToJson, installDkgPublicResults, parseDkgPublicResults, readDkgPublicResults, type BackupDkgPublicResult } from './backup-dkg-results.ts';

/**
 * Backups of a node's keystore: one JSON file holding the keystore header (scrypt salt and
 * password verifier) and every key file exactly as they are on disk — still sealed with
 * AES-256-GCM under the keystore password — plus the node's libp2p identity, sealed under
 * a key derived from the same password. No share ever appears in plaintext in a backup or
 * on disk during a restore; shares exist in plaintext only in memory, to be checked.
 *
 * A backup is read from the keystore directory without opening it as a Keystore, so it is
 * safe while the node runs (published key files are immutable; temp files are ignored).
 * A restore verifies the whole backup with its password first, refuses a backup of another
 * node (peer id) and any key id the target keystore already holds, then installs each key
 * through Keystore.save (atomic, never overwrites), re-sealed under the target keystore's
 * password — which is also how the keystore password is rotated.
 *
 * The epoch state goes with it (version 2): reshare shares re-sealed like keys, then the
 * memberships and certificates byte for byte (certificates last: each is a commit). A restored
 * keystore serves what its certificates reach (node/epoch-store.ts); shares of an epoch a
 * certificate in the target keystore has left are erased when the node opens it.
 *
 * Version 3 adds the ceremony seed (sealed like a share, re-sealed under the target password, so a
 * restored node derives the seed it had: a ceremony in flight goes on) and the origins of moved keys
 * (public DKG results, verbatim).
 *
 * Version 4 adds the vote locks (node/backup-vote-locks.ts): the DKG votes in `<stateDir>/dkg` and
 * the approval ledger's approvals and votes. A restore installs them first, after checking that
 * none contradicts a lock the node holds; a backup of an earlier version carries none, and a node
 * restored from it may vote a second time (docs/operators.md, "Backups made before a change").
 *
 * Version 5 adds the DKG results the node holds without a share (node/backup-dkg-results.ts:
 * `<stateDir>/dkg/public.<keyId>.json`), verbatim, installed after the locks; a node restored from an
 * earlier version no longer knows those keys.
 */

export const BACKUP_FORMAT = 'tkms-keystore-backup';
/**
 * Version 2 adds the epoch state (node/epoch-store.ts): shares made by reshares (still sealed),
 * the committed handover certificates and the membership a joining member's first certificate
 * left. Version 1 backups (keys only) are still read and restored. Version 4 adds the vote locks;
 * versions 1 to 3 still restore, without any. Version 5 adds the DKG results held without a share;
 * versions 1 to 4 still restore, without any.
 */
export const BACKUP_VERSION = 5;
const READABLE_VERSIONS = [1, 2, 3, 4, 5];
export const MAX_BACKUP_HANDOVERS = 1024;
/** A backup holds at most this many keys (each key file is bounded by MAX_KEY_FILE_BYTES). */
export const MAX_BACKUP_KEYS = 1024;
export const MAX_BACKUP_BYTES = 64 * 1024 * 1024;
/** Epoch share files in one backup: a key has at most a served and a pending share. */
export const MAX_BACKUP_EPOCH_SHARES = 2 * MAX_BACKUP_KEYS;
const MAX_IDENTITY_BYTES = 16 * 1024;

const BACKUP_FIELDS_V1 = ['format', 'version', 'createdAt', 'node', 'keystore', 'keys', 'identity'] as const;
const BACKUP_FIELDS_V2 = [...BACKUP_FIELDS_V1, 'epochShares', 'handovers', 'memberships'] as const;
const BACKUP_FIELDS_V3 = [...BACKUP_FIELDS_V2, 'ceremonySeed', 'origins'] as const;
const BACKUP_FIELDS_V4 = [...BACKUP_FIELDS_V3, 'voteLocks'] as const;
const BACKUP_FIELDS_V5 = [...BACKUP_FIELDS_V4, 'dkgPublicResults'] as const;
const BACKUP_FIELDS = [BACKUP_FIELDS_V1, BACKUP_FIELDS_V2, BACKUP_FIELDS_V3, BACKUP_FIELDS_V4, BACKUP_FIELDS_V5];
const NODE_FIELDS = ['peerId', 'committeeId', 'memberId'] as const;
const IDENTITY_FIELDS = ['hkdfSalt', 'nonce', 'ciphertext'] as const;

export interface BackupNodeInfo {
  peerId: string;
  committeeId: string | null;
  memberId: number | null;
}

/** A backup file, parsed and structurally checked but not yet decrypted. */
export interface ParsedBackup {
  version: number;
  createdAt: string;
  node: BackupNodeInfo;
  header: KeystoreHeader;
  keys: KeyFile[];
  identity: { hkdfSalt: Uint8Array; nonce: Uint8Array; ciphertext: Uint8Array } | null;
  /** Shares made by reshares, sealed as in the keystore (empty in a version 1 backup). */
  epochShares: (EpochShareName & { file: KeyFile })[];
  /** Committed handover certificates by the epoch they leave. */
  handovers: HandoverCertificate[];
  /** membership.e<epoch>.json records, as their JSON text. */
  memberships: { epoch: number; text: string }[];
  /** The sealed ceremony seed (null before version 3, or when the node never made one). */
  ceremonySeed: SealedSeed | null;
  /** `<keyId>.origin.json` records: moved keys' DKG public results. */
  origins: Record<string, unknown>[];
  /** The vote locks (null before version 4: the backup carries none). */
  voteLocks: BackupVoteLocks | null;
  /** `<stateDir>/dkg/public.<keyId>.json` files (null before version 5: the backup carries none). */
  dkgPublicResults: BackupDkgPublicResult[] | null;
}

/** A backup whose every sealed part opened with the password. */
export interface OpenedBackup {
  parsed: ParsedBackup;
  keys: StoredKey[];
  /** The epoch shares, opened (secrets: never log them). */
  epochShares: (EpochShareName & { share: bigint; publicResult: Record<string, unknown> })[];
  /** The identity file's text (a secret: never log it). */
  identityText: string | null;
  /** The ceremony seed, opened (a secret: never log it). */
  ceremonySeed: Uint8Array | null;
}

function bad(message: string): TkmsError {
  return new TkmsError('bad_request', `backup: ${message}`);
}

/** Both bind the backup's own version: a backup is opened with the version it was sealed under. */
function identityAad(version: number, peerId: string): Uint8Array {
  return lengthPrefixed(utf8ToBytes('tkms-backup/identity'), utf8ToBytes(String(version)), utf8ToBytes(peerId));
}

function identityKeyInfo(version: number): Uint8Array {
  return lengthPrefixed(utf8ToBytes('tkms-backup/identity-key'), utf8ToBytes(String(version)));
}


// ---------------------------------------------------------------------------
// Making a backup

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
export async function createBackup(opts: CreateBackupOptions): Promise<{ bytes: Uint8Array; keyIds: string[]; peerId: string }> {
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
    return { bytes: utf8ToBytes(`${JSON.stringify(doc, null, 2)}\n`), keyIds: [...new Set([...keys.map((k) => k.keyId), ...epochNames.map((n) => n.keyId)])].sort(), peerId: identity.peerId };
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

/** The bytes the epoch store writes for a certificate and a membership record (node/epoch-store.ts). */
function storedJsonBytes(value: unknown): Uint8Array {
  return utf8ToBytes(`${JSON.stringify(value)}\n`);
}

// ---------------------------------------------------------------------------
// Reading a backup

const utf8 = new TextDecoder('utf-8', { fatal: true });

function exactFields(obj: Record<string, unknown>, fields: readonly string[], what: string): void {
  const actual = Object.keys(obj).sort();
  const expected = [...fields].sort();
  if (actual.length !== expected.length || actual.some((k, i) => k !== expected[i])) throw bad(`${what} must have exactly the fields ${expected.join(', ')}`);
}

function hexField(value: unknown, length: number, what: string): Uint8Array {
  try {
    return decodeHex(value, { name: what, length, maxLength: length });
  } catch {
    throw bad(`${what} must be ${length} bytes of hex`);
  }
}

/** Structural parse of a backup file (no password needed); every mistake is a typed bad_request. */
export function parseBackup(bytes: Uint8Array): ParsedBackup {
  if (bytes.length === 0) throw bad('file is empty');
  if (bytes.length > MAX_BACKUP_BYTES) throw bad(`file is larger than ${MAX_BACKUP_BYTES} bytes`);
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(bytes));
  } catch {
    throw bad('not a tkms keystore backup (not UTF-8 JSON)');
  }
  if (!isPlainObject(value)) throw bad('not a tkms keystore backup (not a JSON object)');
  if (value.format !== BACKUP_FORMAT) throw bad(`not a tkms keystore backup (format must be "${BACKUP_FORMAT}")`);
  if (!READABLE_VERSIONS.includes(value.version as number)) throw bad(`unsupported backup version (this tkms reads versions ${READABLE_VERSIONS.join(', ')})`);
  const version = value.version as number;
  exactFields(value, BACKUP_FIELDS[version - 1]!, 'the backup');
  if (typeof value.createdAt !== 'string' || value.createdAt.length > 64 || Number.isNaN(Date.parse(value.createdAt))) throw bad('createdAt must be an ISO date');

  const node = value.node;
  if (!isPlainObject(node)) throw bad('node must be an object');
  exactFields(node, NODE_FIELDS, 'node');
  if (typeof node.peerId !== 'string' || !/^[1-9A-HJ-NP-Za-km-z]{40,64}$/.test(node.peerId)) throw bad('node.peerId must be a peer id');
  if (node.committeeId !== null && (typeof node.committeeId !== 'string' || node.committeeId.length > 64)) throw bad('node.committeeId must be a string or null');
  if (node.memberId !== null && (typeof node.memberId !== 'number' || !Number.isInteger(node.memberId) || node.memberId < 1 || node.memberId > 65535)) {
    throw bad('node.memberId must be an integer in 1..65535 or null');
  }

  let header: KeystoreHeader;
  try {
    if (!isPlainObject(value.keystore)) throw bad('keystore must be an object');
    header = parseHeader(utf8ToBytes(JSON.stringify(value.keystore)));
  } catch (e) {
    throw bad(`keystore header: ${e instanceof Error ? e.message : 'invalid'}`);
  }

  if (!Array.isArray(value.keys) || value.keys.length > MAX_BACKUP_KEYS) throw bad(`keys must be an array of at most ${MAX_BACKUP_KEYS} key files`);
  const keys: KeyFile[] = [];
  const seen = new Set<string>();
  value.keys.forEach((k, i) => {
    if (!isPlainObject(k)) throw bad(`keys[${i}] must be an object`);
    const keyId = k.keyId;
    try {
      assertKeyId(keyId);
    } catch {
      throw bad(`keys[${i}].keyId is not a valid key id`);
    }
    if (seen.has(keyId)) throw bad(`key ${keyId} appears twice`);
    seen.add(keyId);
    try {
      keys.push(parseKeyFile(utf8ToBytes(JSON.stringify(k)), keyId));
    } catch (e) {
      throw bad(`keys[${i}]: ${e instanceof Error ? e.message : 'invalid'}`);
    }
  });

  let identity: ParsedBackup['identity'] = null;
  if (value.identity !== null) {
    if (!isPlainObject(value.identity)) throw bad('identity must be an object or null');
    exactFields(value.identity, IDENTITY_FIELDS, 'identity');
    const ciphertextHex = value.identity.ciphertext;
    if (typeof ciphertextHex !== 'string' || ciphertextHex.length > 2 * MAX_IDENTITY_BYTES + 2) throw bad('identity.ciphertext is too large');
    identity = {
      hkdfSalt: hexField(value.identity.hkdfSalt, SALT_LENGTH, 'identity.hkdfSalt'),
      nonce: hexField(value.identity.nonce, GCM_NONCE_LENGTH, 'identity.nonce'),
      ciphertext: (() => {
        try {
          const b = decodeHex(ciphertextHex, { name: 'identity.ciphertext', maxLength: MAX_IDENTITY_BYTES + GCM_TAG_LENGTH });
          if (b.length <= GCM_TAG_LENGTH) throw new Error('short');
          return b;
        } catch {
          throw bad('identity.ciphertext must be hex');
        }
      })(),
    };
  }
  const epochShares: ParsedBackup['epochShares'] = [];
  const handovers: HandoverCertificate[] = [];
  const memberships: ParsedBackup['memberships'] = [];
  if (value.version !== 1) {
    if (!Array.isArray(value.epochShares) || value.epochShares.length > MAX_BACKUP_EPOCH_SHARES) throw bad(`epochShares must be an array of at most ${MAX_BACKUP_EPOCH_SHARES} share files`);
    const names = new Set<string>();
    value.epochShares.forEach((entry: unknown, i: number) => {
      if (!isPlainObject(entry)) throw bad(`epochShares[${i}] must be an object`);
      exactFields(entry, ['name', 'file'], `epochShares[${i}]`);
      const name = typeof entry.name === 'string' ? parseEpochShareFileName(entry.name) : undefined;
      if (name === undefined) throw bad(`epochShares[${i}].name is not an epoch share file name`);
      if (names.has(entry.name as string)) throw bad(`epochShares[${i}] appears twice`);
      names.add(entry.name as string);
      try {
        epochShares.push({ ...name, file: parseKeyFile(utf8ToBytes(JSON.stringify(entry.file)), name.keyId) });
      } catch (e) {
        throw bad(`epochShares[${i}]: ${e instanceof Error ? e.message : 'invalid'}`);
      }
    });
    if (!Array.isArray(value.handovers) || value.handovers.length > MAX_BACKUP_HANDOVERS) throw bad(`handovers must be an array of at most ${MAX_BACKUP_HANDOVERS} certificates`);
    value.handovers.forEach((cert: unknown, i: number) => {
      try {
        handovers.push(parseHandoverCertificate(cert));
      } catch (e) {
        throw bad(`handovers[${i}]: ${e instanceof Error ? e.message : 'invalid'}`);
      }
    });
    if (new Set(handovers.map((h) => h.fromEpoch)).size !== handovers.length) throw bad('two handover certificates leave one epoch');
    if (!Array.isArray(value.memberships) || value.memberships.length > MAX_BACKUP_HANDOVERS) throw bad(`memberships must be an array of at most ${MAX_BACKUP_HANDOVERS} records`);
    value.memberships.forEach((record: unknown, i: number) => {
      const text = JSON.stringify(record);
      try {
        const epoch = isPlainObject(record) && typeof record.epoch === 'number' ? record.epoch : -1;
        memberships.push({ epoch: parseMembership(utf8ToBytes(text), epoch).epoch, text });
      } catch (e) {
        throw bad(`memberships[${i}]: ${e instanceof Error ? e.message : 'invalid'}`);
      }
    });
  }
  let ceremonySeed: SealedSeed | null = null;
  const origins: Record<string, unknown>[] = [];
  if (version >= 3) {
    if (value.ceremonySeed !== null) {
      try {
        ceremonySeed = parseSealedSeed(value.ceremonySeed);
      } catch (e) {
        throw bad(`ceremonySeed: ${e instanceof Error ? e.message : 'invalid'}`);
      }
    }
    if (!Array.isArray(value.origins) || value.origins.length > MAX_BACKUP_KEYS) throw bad(`origins must be an array of at most ${MAX_BACKUP_KEYS} DKG results`);
    const originIds = new Set<string>();
    value.origins.forEach((origin: unknown, i: number) => {
      const keyId = isPlainObject(origin) ? origin.keyId : undefined;
      try {
        assertKeyId(keyId);
        if (originIds.has(keyId)) throw new Error(`key ${keyId} appears twice`);
        originIds.add(keyId);
        origins.push(parseOrigin(serializeOrigin(origin as Record<string, unknown>), keyId));
      } catch (e) {
        throw bad(`origins[${i}]: ${e instanceof Error ? e.message : 'invalid'}`);
      }
    });
  }
  let voteLocks: BackupVoteLocks | null = null;
  if (version >= 4) {
    try {
      voteLocks = parseVoteLocks(value.voteLocks);
    } catch (e) {
      throw bad(e instanceof Error ? e.message : 'voteLocks: invalid');
    }
  }
  let dkgPublicResults: BackupDkgPublicResult[] | null = null;
  if (version >= 5) {
    try {
      dkgPublicResults = parseDkgPublicResults(value.dkgPublicResults);
    } catch (e) {
      throw bad(e instanceof Error ? e.message : 'dkgPublicResults: invalid');
    }
  }
  return { version, voteLocks, dkgPublicResults, ceremonySeed, origins, epochShares, handovers, memberships, createdAt: value.createdAt, node: { peerId: node.peerId, committeeId: node.committeeId as string | null, memberId: node.memberId as number | null }, header, keys, identity };
}

/** Opens every sealed part with the password: `keystore_locked` for a wrong one, `keystore_corrupt` for an altered part. */
export async function openBackup(parsed: ParsedBackup, password: string): Promise<OpenedBackup> {
  const masterKey = await unlockWithPassword(parsed.header, password);
  try {
    const keys = parsed.keys.map((file) => ({ keyId: file.keyId, share: decryptShare(masterKey, file), publicResult: file.publicResult }));
    const epochShares = parsed.epochShares.map(({ file, ...name }) => ({ ...name, share: decryptEpochShare(masterKey, file, name.epoch), publicResult: file.publicResult }));
    let identityText: string | null = null;
    if (parsed.identity !== null) {
      const idKey = deriveSubkey(masterKey, parsed.identity.hkdfSalt, identityKeyInfo(parsed.version));
      try {
        const plain = openAesGcm(idKey, parsed.identity.nonce, parsed.identity.ciphertext, identityAad(parsed.version, parsed.node.peerId));
        if (plain === undefined) throw new TkmsError('keystore_corrupt', 'the identity in the backup failed authentication (altered, or another peer id)');
        identityText = utf8.decode(plain);
        wipe(plain);
      } finally {
        wipe(idKey);
      }
    }
    const ceremonySeed = parsed.ceremonySeed === null ? null : openSeed(masterKey, parsed.ceremonySeed);
    return { parsed, keys, epochShares, identityText, ceremonySeed };
  } finally {
    wipe(masterKey);
  }
}

// ---------------------------------------------------------------------------
// Restoring

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

/** Verifies the backup, then installs its identity (if missing) and keys; see the module comment. */
export async function restoreBackup(opts: RestoreOptions): Promise<RestoreResult> {
  let bytes: Uint8Array;
  try {
    const b = await readBounded(resolve(opts.backupFile), MAX_BACKUP_BYTES, () => bad(`${opts.backupFile} is not a regular file of at most ${MAX_BACKUP_BYTES} bytes`));
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
