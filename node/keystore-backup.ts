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

// The entry point importers use: the file and its parse (backup-format.ts), making one (backup-create.ts), restoring one (backup-restore.ts).
export { BACKUP_FORMAT, BACKUP_VERSION, MAX_BACKUP_BYTES, MAX_BACKUP_EPOCH_SHARES, MAX_BACKUP_HANDOVERS, MAX_BACKUP_KEYS, openBackup, parseBackup, type BackupNodeInfo, type OpenedBackup, type ParsedBackup } from './backup-format.ts';
export { createBackup, writeBackupFile, type CreateBackupOptions } from './backup-create.ts';
export { restoreBackup, type RestoreOptions, type RestoreResult } from './backup-restore.ts';
