import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { TkmsError, assertKeyId, decodeHex, encodeHex, isTkmsError, lengthPrefixed, randomBytes, utf8ToBytes } from '../core/index.ts';
import { ensurePrivateDirectory } from '../storage/durable-fs.ts';
import { loadIdentityFile } from './identity.ts';
import { decryptShare, Keystore, unlockWithPassword, type StoredKey } from './keystore.ts';
import { GCM_NONCE_LENGTH, GCM_TAG_LENGTH, deriveSubkey, openAesGcm, sealAesGcm, wipe } from './keystore-crypto.ts';
import {
  HEADER_FILE_NAME,
  MAX_HEADER_BYTES,
  MAX_KEY_FILE_BYTES,
  SALT_LENGTH,
  isPlainObject,
  keyFileName,
  keyIdFromFileName,
  parseHeader,
  parseKeyFile,
  serializeHeader,
  serializeKeyFile,
  type KeyFile,
  type KeystoreHeader,
} from './keystore-format.ts';
import { listDirectory, publishNewFile, readBounded } from './keystore-fs.ts';

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
 */

export const BACKUP_FORMAT = 'tkms-keystore-backup';
export const BACKUP_VERSION = 1;
/** A backup holds at most this many keys (each key file is bounded by MAX_KEY_FILE_BYTES). */
export const MAX_BACKUP_KEYS = 1024;
export const MAX_BACKUP_BYTES = 64 * 1024 * 1024;
const MAX_IDENTITY_BYTES = 16 * 1024;

const BACKUP_FIELDS = ['format', 'version', 'createdAt', 'node', 'keystore', 'keys', 'identity'] as const;
const NODE_FIELDS = ['peerId', 'committeeId', 'memberId'] as const;
const IDENTITY_FIELDS = ['hkdfSalt', 'nonce', 'ciphertext'] as const;

export interface BackupNodeInfo {
  peerId: string;
  committeeId: string | null;
  memberId: number | null;
}

/** A backup file, parsed and structurally checked but not yet decrypted. */
export interface ParsedBackup {
  createdAt: string;
  node: BackupNodeInfo;
  header: KeystoreHeader;
  keys: KeyFile[];
  identity: { hkdfSalt: Uint8Array; nonce: Uint8Array; ciphertext: Uint8Array } | null;
}

/** A backup whose every sealed part opened with the password. */
export interface OpenedBackup {
  parsed: ParsedBackup;
  keys: StoredKey[];
  /** The identity file's text (a secret: never log it). */
  identityText: string | null;
}

function bad(message: string): TkmsError {
  return new TkmsError('bad_request', `backup: ${message}`);
}

function identityAad(peerId: string): Uint8Array {
  return lengthPrefixed(utf8ToBytes('tkms-backup/identity'), utf8ToBytes(String(BACKUP_VERSION)), utf8ToBytes(peerId));
}

function identityKeyInfo(): Uint8Array {
  return lengthPrefixed(utf8ToBytes('tkms-backup/identity-key'), utf8ToBytes(String(BACKUP_VERSION)));
}


// ---------------------------------------------------------------------------
// Making a backup

export interface CreateBackupOptions {
  keystoreDir: string;
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
    const hkdfSalt = randomBytes(SALT_LENGTH);
    const nonce = randomBytes(GCM_NONCE_LENGTH);
    const idKey = deriveSubkey(masterKey, hkdfSalt, identityKeyInfo());
    let ciphertext: Uint8Array;
    try {
      ciphertext = sealAesGcm(idKey, nonce, utf8ToBytes(identityText), identityAad(identity.peerId));
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
    };
    return { bytes: utf8ToBytes(`${JSON.stringify(doc, null, 2)}\n`), keyIds: keys.map((k) => k.keyId), peerId: identity.peerId };
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
  if (value.version !== BACKUP_VERSION) throw bad(`unsupported backup version (this tkms reads version ${BACKUP_VERSION})`);
  exactFields(value, BACKUP_FIELDS, 'the backup');
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
  return { createdAt: value.createdAt, node: { peerId: node.peerId, committeeId: node.committeeId as string | null, memberId: node.memberId as number | null }, header, keys, identity };
}

/** Opens every sealed part with the password: `keystore_locked` for a wrong one, `keystore_corrupt` for an altered part. */
export async function openBackup(parsed: ParsedBackup, password: string): Promise<OpenedBackup> {
  const masterKey = await unlockWithPassword(parsed.header, password);
  try {
    const keys = parsed.keys.map((file) => ({ keyId: file.keyId, share: decryptShare(masterKey, file), publicResult: file.publicResult }));
    let identityText: string | null = null;
    if (parsed.identity !== null) {
      const idKey = deriveSubkey(masterKey, parsed.identity.hkdfSalt, identityKeyInfo());
      try {
        const plain = openAesGcm(idKey, parsed.identity.nonce, parsed.identity.ciphertext, identityAad(parsed.node.peerId));
        if (plain === undefined) throw new TkmsError('keystore_corrupt', 'the identity in the backup failed authentication (altered, or another peer id)');
        identityText = utf8.decode(plain);
        wipe(plain);
      } finally {
        wipe(idKey);
      }
    }
    return { parsed, keys, identityText };
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
  /** Password of the target keystore (created with it if the directory holds none). */
  keystorePassword: string;
  identityFile: string;
}

export interface RestoreResult {
  restored: string[];
  identity: 'installed' | 'kept';
  peerId: string;
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
  const clashes = opened.keys.map((k) => k.keyId).filter((id) => present.has(id));
  if (clashes.length > 0) {
    throw new TkmsError('conflict', `the keystore already holds ${clashes.join(', ')}; a restore never overwrites a key (move the keystore aside first)`);
  }

  // 3. Unlock (or create) the target keystore first, so a wrong target password stops the restore
  //    before anything else is written; then the identity atomically (0600); then each key, sealed
  //    under the target password.
  const keystore = await Keystore.open(dir, opts.keystorePassword);
  try {
    if (identity === 'installed') await installIdentity(opts.identityFile, opened.identityText!, peerId);
    for (const key of opened.keys) await keystore.save(key);
  } finally {
    keystore.close();
  }
  return { restored: opened.keys.map((k) => k.keyId), identity, peerId };
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
