import { TkmsError, assertKeyId, decodeHex, lengthPrefixed, utf8ToBytes } from '../core/index.ts';
import { decryptEpochShare, decryptShare, unlockWithPassword, type StoredKey } from './keystore.ts';
import { parseHandoverCertificate, type HandoverCertificate } from '../core/ceremony/handover.ts';
import { parseMembership, parseOrigin, serializeOrigin } from './epoch-files.ts';
import { openSeed, parseSealedSeed, type SealedSeed } from './keystore-seed.ts';
import { GCM_NONCE_LENGTH, GCM_TAG_LENGTH, deriveSubkey, openAesGcm, wipe } from './keystore-crypto.ts';
import { SALT_LENGTH, isPlainObject, parseEpochShareFileName, parseHeader, parseKeyFile, type EpochShareName, type KeyFile, type KeystoreHeader } from './keystore-format.ts';
import { parseVoteLocks, type BackupVoteLocks } from './backup-vote-locks.ts';
import { parseDkgPublicResults, type BackupDkgPublicResult } from './backup-dkg-results.ts';

/**
 * The keystore backup file (node/keystore-backup.ts): its fields by format version, the structural
 * parse (no password needed) and the opening of its sealed parts with the password.
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
export const MAX_IDENTITY_BYTES = 16 * 1024;

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

export function badBackup(message: string): TkmsError {
  return new TkmsError('bad_request', `backup: ${message}`);
}

/** Both bind the backup's own version: a backup is opened with the version it was sealed under. */
export function identityAad(version: number, peerId: string): Uint8Array {
  return lengthPrefixed(utf8ToBytes('tkms-backup/identity'), utf8ToBytes(String(version)), utf8ToBytes(peerId));
}

export function identityKeyInfo(version: number): Uint8Array {
  return lengthPrefixed(utf8ToBytes('tkms-backup/identity-key'), utf8ToBytes(String(version)));
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function exactFields(obj: Record<string, unknown>, fields: readonly string[], what: string): void {
  const actual = Object.keys(obj).sort();
  const expected = [...fields].sort();
  if (actual.length !== expected.length || actual.some((k, i) => k !== expected[i])) throw badBackup(`${what} must have exactly the fields ${expected.join(', ')}`);
}

function hexField(value: unknown, length: number, what: string): Uint8Array {
  try {
    return decodeHex(value, { name: what, length, maxLength: length });
  } catch {
    throw badBackup(`${what} must be ${length} bytes of hex`);
  }
}

/** Structural parse of a backup file (no password needed); every mistake is a typed bad_request. */
export function parseBackup(bytes: Uint8Array): ParsedBackup {
  if (bytes.length === 0) throw badBackup('file is empty');
  if (bytes.length > MAX_BACKUP_BYTES) throw badBackup(`file is larger than ${MAX_BACKUP_BYTES} bytes`);
  let value: unknown;
  try {
    value = JSON.parse(utf8.decode(bytes));
  } catch {
    throw badBackup('not a tkms keystore backup (not UTF-8 JSON)');
  }
  if (!isPlainObject(value)) throw badBackup('not a tkms keystore backup (not a JSON object)');
  if (value.format !== BACKUP_FORMAT) throw badBackup(`not a tkms keystore backup (format must be "${BACKUP_FORMAT}")`);
  if (!READABLE_VERSIONS.includes(value.version as number)) throw badBackup(`unsupported backup version (this tkms reads versions ${READABLE_VERSIONS.join(', ')})`);
  const version = value.version as number;
  exactFields(value, BACKUP_FIELDS[version - 1]!, 'the backup');
  if (typeof value.createdAt !== 'string' || value.createdAt.length > 64 || Number.isNaN(Date.parse(value.createdAt))) throw badBackup('createdAt must be an ISO date');

  const node = value.node;
  if (!isPlainObject(node)) throw badBackup('node must be an object');
  exactFields(node, NODE_FIELDS, 'node');
  if (typeof node.peerId !== 'string' || !/^[1-9A-HJ-NP-Za-km-z]{40,64}$/.test(node.peerId)) throw badBackup('node.peerId must be a peer id');
  if (node.committeeId !== null && (typeof node.committeeId !== 'string' || node.committeeId.length > 64)) throw badBackup('node.committeeId must be a string or null');
  if (node.memberId !== null && (typeof node.memberId !== 'number' || !Number.isInteger(node.memberId) || node.memberId < 1 || node.memberId > 65535)) {
    throw badBackup('node.memberId must be an integer in 1..65535 or null');
  }

  let header: KeystoreHeader;
  try {
    if (!isPlainObject(value.keystore)) throw badBackup('keystore must be an object');
    header = parseHeader(utf8ToBytes(JSON.stringify(value.keystore)));
  } catch (e) {
    throw badBackup(`keystore header: ${e instanceof Error ? e.message : 'invalid'}`);
  }

  if (!Array.isArray(value.keys) || value.keys.length > MAX_BACKUP_KEYS) throw badBackup(`keys must be an array of at most ${MAX_BACKUP_KEYS} key files`);
  const keys: KeyFile[] = [];
  const seen = new Set<string>();
  value.keys.forEach((k, i) => {
    if (!isPlainObject(k)) throw badBackup(`keys[${i}] must be an object`);
    const keyId = k.keyId;
    try {
      assertKeyId(keyId);
    } catch {
      throw badBackup(`keys[${i}].keyId is not a valid key id`);
    }
    if (seen.has(keyId)) throw badBackup(`key ${keyId} appears twice`);
    seen.add(keyId);
    try {
      keys.push(parseKeyFile(utf8ToBytes(JSON.stringify(k)), keyId));
    } catch (e) {
      throw badBackup(`keys[${i}]: ${e instanceof Error ? e.message : 'invalid'}`);
    }
  });

  let identity: ParsedBackup['identity'] = null;
  if (value.identity !== null) {
    if (!isPlainObject(value.identity)) throw badBackup('identity must be an object or null');
    exactFields(value.identity, IDENTITY_FIELDS, 'identity');
    const ciphertextHex = value.identity.ciphertext;
    if (typeof ciphertextHex !== 'string' || ciphertextHex.length > 2 * MAX_IDENTITY_BYTES + 2) throw badBackup('identity.ciphertext is too large');
    identity = {
      hkdfSalt: hexField(value.identity.hkdfSalt, SALT_LENGTH, 'identity.hkdfSalt'),
      nonce: hexField(value.identity.nonce, GCM_NONCE_LENGTH, 'identity.nonce'),
      ciphertext: (() => {
        try {
          const b = decodeHex(ciphertextHex, { name: 'identity.ciphertext', maxLength: MAX_IDENTITY_BYTES + GCM_TAG_LENGTH });
          if (b.length <= GCM_TAG_LENGTH) throw new Error('short');
          return b;
        } catch {
          throw badBackup('identity.ciphertext must be hex');
        }
      })(),
    };
  }
  const epochShares: ParsedBackup['epochShares'] = [];
  const handovers: HandoverCertificate[] = [];
  const memberships: ParsedBackup['memberships'] = [];
  if (value.version !== 1) {
    if (!Array.isArray(value.epochShares) || value.epochShares.length > MAX_BACKUP_EPOCH_SHARES) throw badBackup(`epochShares must be an array of at most ${MAX_BACKUP_EPOCH_SHARES} share files`);
    const names = new Set<string>();
    value.epochShares.forEach((entry: unknown, i: number) => {
      if (!isPlainObject(entry)) throw badBackup(`epochShares[${i}] must be an object`);
      exactFields(entry, ['name', 'file'], `epochShares[${i}]`);
      const name = typeof entry.name === 'string' ? parseEpochShareFileName(entry.name) : undefined;
      if (name === undefined) throw badBackup(`epochShares[${i}].name is not an epoch share file name`);
      if (names.has(entry.name as string)) throw badBackup(`epochShares[${i}] appears twice`);
      names.add(entry.name as string);
      try {
        epochShares.push({ ...name, file: parseKeyFile(utf8ToBytes(JSON.stringify(entry.file)), name.keyId) });
      } catch (e) {
        throw badBackup(`epochShares[${i}]: ${e instanceof Error ? e.message : 'invalid'}`);
      }
    });
    if (!Array.isArray(value.handovers) || value.handovers.length > MAX_BACKUP_HANDOVERS) throw badBackup(`handovers must be an array of at most ${MAX_BACKUP_HANDOVERS} certificates`);
    value.handovers.forEach((cert: unknown, i: number) => {
      try {
        handovers.push(parseHandoverCertificate(cert));
      } catch (e) {
        throw badBackup(`handovers[${i}]: ${e instanceof Error ? e.message : 'invalid'}`);
      }
    });
    if (new Set(handovers.map((h) => h.fromEpoch)).size !== handovers.length) throw badBackup('two handover certificates leave one epoch');
    if (!Array.isArray(value.memberships) || value.memberships.length > MAX_BACKUP_HANDOVERS) throw badBackup(`memberships must be an array of at most ${MAX_BACKUP_HANDOVERS} records`);
    value.memberships.forEach((record: unknown, i: number) => {
      const text = JSON.stringify(record);
      try {
        const epoch = isPlainObject(record) && typeof record.epoch === 'number' ? record.epoch : -1;
        memberships.push({ epoch: parseMembership(utf8ToBytes(text), epoch).epoch, text });
      } catch (e) {
        throw badBackup(`memberships[${i}]: ${e instanceof Error ? e.message : 'invalid'}`);
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
        throw badBackup(`ceremonySeed: ${e instanceof Error ? e.message : 'invalid'}`);
      }
    }
    if (!Array.isArray(value.origins) || value.origins.length > MAX_BACKUP_KEYS) throw badBackup(`origins must be an array of at most ${MAX_BACKUP_KEYS} DKG results`);
    const originIds = new Set<string>();
    value.origins.forEach((origin: unknown, i: number) => {
      const keyId = isPlainObject(origin) ? origin.keyId : undefined;
      try {
        assertKeyId(keyId);
        if (originIds.has(keyId)) throw new Error(`key ${keyId} appears twice`);
        originIds.add(keyId);
        origins.push(parseOrigin(serializeOrigin(origin as Record<string, unknown>), keyId));
      } catch (e) {
        throw badBackup(`origins[${i}]: ${e instanceof Error ? e.message : 'invalid'}`);
      }
    });
  }
  let voteLocks: BackupVoteLocks | null = null;
  if (version >= 4) {
    try {
      voteLocks = parseVoteLocks(value.voteLocks);
    } catch (e) {
      throw badBackup(e instanceof Error ? e.message : 'voteLocks: invalid');
    }
  }
  let dkgPublicResults: BackupDkgPublicResult[] | null = null;
  if (version >= 5) {
    try {
      dkgPublicResults = parseDkgPublicResults(value.dkgPublicResults);
    } catch (e) {
      throw badBackup(e instanceof Error ? e.message : 'dkgPublicResults: invalid');
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
