import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import {
  CURVE_ORDER,
  TkmsError,
  assertKeyId,
  decodeScalar,
  encodeScalar,
  equalBytes,
  isTkmsError,
  randomBytes,
} from '../core/index.ts';
import {
  DEFAULT_SCRYPT_PARAMS,
  GCM_NONCE_LENGTH,
  deriveMasterKey,
  deriveSubkey,
  openAesGcm,
  sealAesGcm,
  wipe,
  type ScryptParams,
} from './keystore-crypto.ts';
import {
  FORMAT_VERSION,
  HEADER_FILE_NAME,
  MAX_HEADER_BYTES,
  MAX_KEY_FILE_BYTES,
  SALT_LENGTH,
  SHARE_LENGTH,
  VERIFIER_PLAINTEXT,
  canonicalJson,
  epochShareAad,
  epochShareKeyInfo,
  isPlainObject,
  keyFileName,
  keyIdFromFileName,
  parseEpochShareFileName,
  parseHeader,
  parseKeyFile,
  serializeHeader,
  serializeKeyFile,
  shareAad,
  shareKeyInfo,
  verifierAad,
  verifierKeyInfo,
  type KeyFile,
  type KeystoreHeader,
} from './keystore-format.ts';
import { ensurePrivateDirectory } from '../storage/durable-fs.ts';
import { listDirectory, publishNewFile, readBounded, removeTempFiles, replaceFile } from './keystore-fs.ts';
import { CEREMONY_SEED_FILE_NAME, MAX_SEED_FILE_BYTES, CEREMONY_SEED_LENGTH, openSeed, parseSealedSeedBytes, sealSeed, serializeSealedSeed, type SealedSeed } from './keystore-seed.ts';

/**
 * The node's encrypted keystore: one directory holding `keystore.json` (scrypt parameters,
 * salt and a password verifier) and one `<keyId>.key.json` per DKG'd key, whose 32-byte
 * share is sealed with AES-256-GCM under HKDF(master key, per-file salt, key id).
 *
 * The AAD of every share binds the format version, the key id and a hash of the canonical
 * public result, so a share file moved to another key id, or an edited public result, fails
 * authentication. The master key lives only in this object's memory.
 *
 * Single-writer assumption: one process owns a keystore directory at a time. Saves are still
 * safe against a concurrent writer of the same key id (publication uses link(2), which never
 * replaces an existing name), but `open` removes leftover temp files it assumes are orphans.
 */

export interface StoredKey {
  keyId: string;
  share: bigint;
  /** The DKG public result as a JSON-able object. */
  publicResult: Record<string, unknown>;
}

export interface KeystoreOpenOptions {
  /** scrypt parameters if `open` creates the keystore (tests that make many pass cheaper ones); default DEFAULT_SCRYPT_PARAMS. */
  newKeystoreScrypt?: ScryptParams;
}

export class Keystore {
  readonly dir: string;
  #masterKey: Buffer | undefined;
  readonly #keyIds: Set<string>;

  private constructor(dir: string, masterKey: Buffer, keyIds: Iterable<string>) {
    this.dir = dir;
    this.#masterKey = masterKey;
    this.#keyIds = new Set(keyIds);
  }

  /**
   * Opens the keystore in `dir`, creating the directory (0700) and a header if neither exists.
   * A wrong password → `keystore_locked`; a damaged header, or key files without a header →
   * `keystore_corrupt` (a damaged header is never replaced by a fresh one).
   */
  static async open(dir: string, password: string | Uint8Array, options: KeystoreOpenOptions = {}): Promise<Keystore> {
    const root = resolve(dir);
    const passwordBytes = passwordToBytes(password);
    try {
      await ensurePrivateDirectory(root, 'keystore');
      const entries = await listDirectory(root);
      await removeTempFiles(root, entries);
      const keyIds = entries.map(keyIdFromFileName).filter((id): id is string => id !== undefined);

      let header = await readHeader(root);
      if (header === undefined) {
        // Shares a reshare made are sealed under the header too: a fresh header would orphan them.
        if (keyIds.length > 0 || entries.some((name) => parseEpochShareFileName(name) !== undefined || name === CEREMONY_SEED_FILE_NAME)) {
          throw new TkmsError('keystore_corrupt', 'keystore header is missing but key files are present');
        }
        const created = await createHeader(root, passwordBytes, options.newKeystoreScrypt ?? DEFAULT_SCRYPT_PARAMS);
        if (created !== undefined) return new Keystore(root, created, []);
        // Another process created the header first; unlock theirs like any existing keystore.
        header = await readHeader(root);
        if (header === undefined) throw new TkmsError('keystore_corrupt', 'keystore header disappeared while opening');
      }
      const masterKey = await unlock(header, passwordBytes);
      return new Keystore(root, masterKey, keyIds);
    } finally {
      wipe(passwordBytes);
    }
  }

  /** Key ids held, sorted. Only complete files are ever visible under a key file name. */
  list(): string[] {
    return [...this.#keyIds].sort();
  }

  async load(keyId: string): Promise<StoredKey> {
    assertKeyId(keyId);
    const masterKey = this.#requireMasterKey();
    const bytes = await readBounded(join(this.dir, keyFileName(keyId)), MAX_KEY_FILE_BYTES, () =>
      new TkmsError('keystore_corrupt', `key file for ${keyId} is not a regular file of at most ${MAX_KEY_FILE_BYTES} bytes`),
    );
    if (bytes === undefined) {
      this.#keyIds.delete(keyId);
      throw new TkmsError('unknown_key', `no key ${keyId} in this keystore`, { keyId });
    }
    const file = parseKeyFile(bytes, keyId);
    const share = decryptShare(masterKey, file);
    this.#keyIds.add(keyId);
    return { keyId, share, publicResult: file.publicResult };
  }

  async loadAll(): Promise<StoredKey[]> {
    const keys: StoredKey[] = [];
    for (const keyId of this.list()) keys.push(await this.load(keyId));
    return keys;
  }

  /** Stores a new key. An existing key id is never overwritten (`conflict`). */
  async save(key: StoredKey): Promise<void> {
    const masterKey = this.#requireMasterKey();
    if (typeof key !== 'object' || key === null) throw new TkmsError('bad_request', 'key must be an object');
    const { keyId, share, publicResult } = key;
    assertKeyId(keyId);
    if (typeof share !== 'bigint' || share <= 0n || share >= CURVE_ORDER) {
      throw new TkmsError('bad_scalar', 'share must be a bigint in [1, n)');
    }
    if (!isPlainObject(publicResult)) throw new TkmsError('bad_request', 'publicResult must be a plain JSON object');
    canonicalJson(publicResult); // rejects values JSON cannot carry before anything is written
    if (this.#keyIds.has(keyId)) throw conflict(keyId);

    const file = encryptShare(masterKey, keyId, share, publicResult);
    const data = serializeKeyFile(file);
    if (data.length > MAX_KEY_FILE_BYTES) {
      throw new TkmsError('payload_too_large', `key file for ${keyId} would exceed ${MAX_KEY_FILE_BYTES} bytes`);
    }
    let result;
    try {
      result = await publishNewFile(this.dir, keyFileName(keyId), data);
    } catch (err) {
      // A failure after publication (e.g. the directory fsync) still leaves the key on disk.
      if (await exists(join(this.dir, keyFileName(keyId)))) this.#keyIds.add(keyId);
      throw err;
    }
    this.#keyIds.add(keyId);
    if (result === 'exists') throw conflict(keyId);
  }

  /**
   * Re-seals a held key's share under a new public result (the same key with more or newer
   * member signatures), replacing its file atomically. The caller checks the new result is
   * the same key; the share is re-read and authenticated under the old result first, so a
   * damaged file is never re-sealed as if it were good.
   */
  async replacePublicResult(keyId: string, publicResult: Record<string, unknown>): Promise<void> {
    const masterKey = this.#requireMasterKey();
    if (!isPlainObject(publicResult)) throw new TkmsError('bad_request', 'publicResult must be a plain JSON object');
    canonicalJson(publicResult);
    const { share } = await this.load(keyId);
    const data = serializeKeyFile(encryptShare(masterKey, keyId, share, publicResult));
    if (data.length > MAX_KEY_FILE_BYTES) {
      throw new TkmsError('payload_too_large', `key file for ${keyId} would exceed ${MAX_KEY_FILE_BYTES} bytes`);
    }
    await replaceFile(this.dir, keyFileName(keyId), data);
  }

  /**
   * Seals a share made by a reshare at `epoch` as an epoch share file's bytes (node/epoch-files.ts
   * names and publishes it): the AAD binds the key id, the epoch and `publicResult`.
   */
  sealEpochShare(keyId: string, epoch: number, share: bigint, publicResult: Record<string, unknown>): Uint8Array {
    const masterKey = this.#requireMasterKey();
    assertKeyId(keyId);
    if (typeof share !== 'bigint' || share <= 0n || share >= CURVE_ORDER) throw new TkmsError('bad_scalar', 'share must be a bigint in [1, n)');
    canonicalJson(publicResult);
    const hkdfSalt = randomBytes(SALT_LENGTH);
    const nonce = randomBytes(GCM_NONCE_LENGTH);
    const fileKey = deriveSubkey(masterKey, hkdfSalt, epochShareKeyInfo(keyId, epoch));
    const plaintext = encodeScalar(share);
    try {
      const ciphertext = sealAesGcm(fileKey, nonce, plaintext, epochShareAad(keyId, epoch, publicResult));
      const data = serializeKeyFile({ version: FORMAT_VERSION, keyId, publicResult, hkdfSalt, nonce, ciphertext });
      if (data.length > MAX_KEY_FILE_BYTES) throw new TkmsError('payload_too_large', `share file for ${keyId} would exceed ${MAX_KEY_FILE_BYTES} bytes`);
      return data;
    } finally {
      wipe(fileKey, plaintext);
    }
  }

  /** Opens an epoch share file (parsed with parseKeyFile) as the share of `file.keyId` at `epoch`; keystore_corrupt when it fails authentication. */
  openEpochShare(file: KeyFile, epoch: number): bigint {
    return decryptEpochShare(this.#requireMasterKey(), file, epoch);
  }

  /**
   * The node's ceremony seed (node/keystore-seed.ts): read from its sealed file, or drawn at random and
   * published (link(2): never overwritten, so two racing callers end up with the one that won). A
   * fresh copy each call; the caller wipes it.
   */
  async ceremonySeed(): Promise<Uint8Array> {
    const masterKey = this.#requireMasterKey();
    const stored = await this.readSealedSeed();
    if (stored !== undefined) return openSeed(masterKey, stored);
    const seed = randomBytes(CEREMONY_SEED_LENGTH);
    if ((await publishNewFile(this.dir, CEREMONY_SEED_FILE_NAME, serializeSealedSeed(sealSeed(masterKey, seed)))) === 'written') return seed;
    wipe(seed);
    const winner = await this.readSealedSeed();
    if (winner === undefined) throw new TkmsError('keystore_corrupt', `${CEREMONY_SEED_FILE_NAME} disappeared while it was created`);
    return openSeed(masterKey, winner);
  }

  /** The sealed seed file as stored, or undefined before the first ceremonySeed(). */
  async readSealedSeed(): Promise<SealedSeed | undefined> {
    const bytes = await readBounded(join(this.dir, CEREMONY_SEED_FILE_NAME), MAX_SEED_FILE_BYTES, () =>
      new TkmsError('keystore_corrupt', `${CEREMONY_SEED_FILE_NAME} is not a regular file of at most ${MAX_SEED_FILE_BYTES} bytes`),
    );
    return bytes === undefined ? undefined : parseSealedSeedBytes(bytes);
  }

  /**
   * Installs a seed (a restore re-sealing the backup's under this keystore's password). One already
   * there is kept, never replaced: returns whether the installed seed is now the one held.
   */
  async installCeremonySeed(seed: Uint8Array): Promise<'installed' | 'same' | 'kept'> {
    const masterKey = this.#requireMasterKey();
    if ((await publishNewFile(this.dir, CEREMONY_SEED_FILE_NAME, serializeSealedSeed(sealSeed(masterKey, seed)))) === 'written') return 'installed';
    const held = await this.ceremonySeed();
    try {
      return equalBytes(held, seed) ? 'same' : 'kept';
    } finally {
      wipe(held);
    }
  }

  /** Forgets the master key; later calls fail with `keystore_locked`. */
  close(): void {
    wipe(this.#masterKey);
    this.#masterKey = undefined;
  }

  #requireMasterKey(): Buffer {
    if (this.#masterKey === undefined) throw new TkmsError('keystore_locked', 'keystore is closed');
    return this.#masterKey;
  }
}

function conflict(keyId: string): TkmsError {
  return new TkmsError('conflict', `key ${keyId} already exists in this keystore`, { keyId });
}

function passwordToBytes(password: string | Uint8Array): Buffer {
  let bytes: Buffer;
  // NFC, so the same password typed on systems that compose accents differently still unlocks.
  if (typeof password === 'string') bytes = Buffer.from(password.normalize('NFC'), 'utf8');
  else if (password instanceof Uint8Array) bytes = Buffer.from(password); // our copy, wiped after use
  else throw new TkmsError('bad_request', 'keystore password must be a string or bytes');
  if (bytes.length === 0) throw new TkmsError('bad_request', 'keystore password must not be empty');
  return bytes;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

async function readHeader(dir: string): Promise<KeystoreHeader | undefined> {
  const bytes = await readBounded(join(dir, HEADER_FILE_NAME), MAX_HEADER_BYTES, () =>
    new TkmsError('keystore_corrupt', `keystore header is not a regular file of at most ${MAX_HEADER_BYTES} bytes`),
  );
  return bytes === undefined ? undefined : parseHeader(bytes);
}

/** Writes a fresh header; returns the master key, or undefined if a header appeared meanwhile. */
async function createHeader(dir: string, password: Uint8Array, params: ScryptParams): Promise<Buffer | undefined> {
  const kdf = { name: 'scrypt' as const, N: params.N, r: params.r, p: params.p, salt: randomBytes(SALT_LENGTH) };
  const masterKey = await deriveMasterKey(password, kdf.salt, kdf);
  const verifierKey = deriveSubkey(masterKey, new Uint8Array(0), verifierKeyInfo());
  try {
    const nonce = randomBytes(GCM_NONCE_LENGTH);
    const ciphertext = sealAesGcm(verifierKey, nonce, VERIFIER_PLAINTEXT, verifierAad({ version: FORMAT_VERSION, kdf }));
    const header: KeystoreHeader = { version: FORMAT_VERSION, kdf, verifier: { nonce, ciphertext } };
    const result = await publishNewFile(dir, HEADER_FILE_NAME, serializeHeader(header));
    if (result === 'written') return masterKey;
    wipe(masterKey);
    return undefined;
  } catch (err) {
    wipe(masterKey);
    throw err;
  } finally {
    wipe(verifierKey);
  }
}

/** unlock() from a password as the operator gives it (backups and restores use this too). */
export async function unlockWithPassword(header: KeystoreHeader, password: string | Uint8Array): Promise<Buffer> {
  const bytes = passwordToBytes(password);
  try {
    return await unlock(header, bytes);
  } finally {
    wipe(bytes);
  }
}

/** Derives the master key and checks it against the verifier: failure means a wrong password. */
async function unlock(header: KeystoreHeader, password: Uint8Array): Promise<Buffer> {
  const masterKey = await deriveMasterKey(password, header.kdf.salt, header.kdf);
  const verifierKey = deriveSubkey(masterKey, new Uint8Array(0), verifierKeyInfo());
  try {
    const plaintext = openAesGcm(verifierKey, header.verifier.nonce, header.verifier.ciphertext, verifierAad(header));
    if (plaintext === undefined) throw new TkmsError('keystore_locked', 'wrong keystore password');
    // Authenticated yet different: only possible if the file was forged with our key.
    if (!equalBytes(plaintext, VERIFIER_PLAINTEXT)) throw new TkmsError('keystore_corrupt', 'keystore password verifier is invalid');
    return masterKey;
  } catch (err) {
    wipe(masterKey);
    throw err;
  } finally {
    wipe(verifierKey);
  }
}

function encryptShare(masterKey: Uint8Array, keyId: string, share: bigint, publicResult: Record<string, unknown>): KeyFile {
  const hkdfSalt = randomBytes(SALT_LENGTH);
  const nonce = randomBytes(GCM_NONCE_LENGTH);
  const fileKey = deriveSubkey(masterKey, hkdfSalt, shareKeyInfo(keyId));
  const plaintext = encodeScalar(share);
  try {
    const ciphertext = sealAesGcm(fileKey, nonce, plaintext, shareAad(keyId, publicResult));
    return { version: FORMAT_VERSION, keyId, publicResult, hkdfSalt, nonce, ciphertext };
  } finally {
    wipe(fileKey, plaintext);
  }
}

/** Opens one sealed key file with the master key; a failed tag or a bad scalar is keystore_corrupt. */
export function decryptShare(masterKey: Uint8Array, file: KeyFile): bigint {
  const fileKey = deriveSubkey(masterKey, file.hkdfSalt, shareKeyInfo(file.keyId));
  let plaintext: Buffer | undefined;
  try {
    plaintext = openAesGcm(fileKey, file.nonce, file.ciphertext, shareAad(file.keyId, file.publicResult));
    // The header already proved the password, so a failed tag means the file was altered.
    if (plaintext === undefined || plaintext.length !== SHARE_LENGTH) {
      throw new TkmsError('keystore_corrupt', `key file for ${file.keyId} failed authentication`, { keyId: file.keyId });
    }
    try {
      return decodeScalar(plaintext, { name: 'share' });
    } catch (err) {
      if (isTkmsError(err)) throw new TkmsError('keystore_corrupt', `key file for ${file.keyId} holds an invalid share`, { keyId: file.keyId });
      throw err;
    }
  } finally {
    wipe(fileKey, plaintext);
  }
}

/** Opens an epoch share file: the epoch is part of the subkey and the AAD, so a file renamed to another epoch fails. */
export function decryptEpochShare(masterKey: Uint8Array, file: KeyFile, epoch: number): bigint {
  const fileKey = deriveSubkey(masterKey, file.hkdfSalt, epochShareKeyInfo(file.keyId, epoch));
  let plaintext: Buffer | undefined;
  try {
    plaintext = openAesGcm(fileKey, file.nonce, file.ciphertext, epochShareAad(file.keyId, epoch, file.publicResult));
    if (plaintext === undefined || plaintext.length !== SHARE_LENGTH) {
      throw new TkmsError('keystore_corrupt', `share file for ${file.keyId} at epoch ${epoch} failed authentication`, { keyId: file.keyId });
    }
    try {
      return decodeScalar(plaintext, { name: 'share' });
    } catch (err) {
      if (isTkmsError(err)) throw new TkmsError('keystore_corrupt', `share file for ${file.keyId} at epoch ${epoch} holds an invalid share`, { keyId: file.keyId });
      throw err;
    }
  } finally {
    wipe(fileKey, plaintext);
  }
}
