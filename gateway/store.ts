import { hash, randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { link, open, readdir, realpath, rename, statfs, unlink, type FileHandle } from 'node:fs/promises';
import { join, resolve } from 'node:path';
// errors.ts and limits.ts only: the store needs no curve code, and crash-test children start faster without it.
import { TkmsError } from '../core/errors.ts';
import { MAX_CIPHERTEXT_BYTES } from '../core/limits.ts';
import { ensurePrivateDirectory, errnoCode, fsyncDirectory as durableFsync, ioError as durableIoError, PRIVATE_FILE_MODE } from '../storage/durable-fs.ts';
import type { OwnerLimits } from '../config/owner-limits.ts';
import { AclTable, pairKey } from './store-acl.ts';
import { openBucketKey, parseWatermarkLine, RevocationWatermarks, type Watermark } from '../storage/revocation-watermarks.ts';

/**
 * The gateway's embedded durable store: ciphertext handles (metadata and ciphertext bytes),
 * grants and revocations, in ONE append-only log file per store directory, plus a `LOCK` file.
 *
 *   dir/            mode 0700
 *     LOCK          "<pid>\n" of the gateway holding the store (single writer)
 *     store.log     mode 0600: MAGIC, then records
 *     store.bucket-key  mode 0600: the random key of the revocation watermark buckets (created at
 *                   first open; see storage/revocation-watermarks.ts). If it is lost, the log's
 *                   watermarks can no longer be placed and each covers every bucket until it expires.
 *
 * Record framing (all integers big-endian):
 *
 *   u32 metaLength ‖ u32 blobLength ‖ u64 batch ‖ check(32) ‖ meta (JSON, UTF-8) ‖ blob
 *   check = SHA-256(CHECK_DOMAIN ‖ the first 16 header bytes ‖ u64 fileOffset ‖ SHA-256(meta) ‖ SHA-256(blob))
 *
 * `meta` is `{"type":"handle"|"grant"|"revocation","value":{…}}`; `blob` is the ciphertext of a
 * handle record and empty otherwise. The check covers both lengths, the batch number and the
 * record's own file offset, so a header cut short, a record copied elsewhere and any flipped
 * byte are all detected. Hashing meta and blob separately lets open() keep each ciphertext's
 * digest (32 bytes) without a second pass, so `readCiphertext` re-verifies what it reads.
 *
 * In memory: the metadata of every handle and of the live grants and revocations, but never
 * ciphertext bytes — a handle maps to (offset, length, digest) of its blob, read back with a
 * positioned read.
 *
 * Durability ("acknowledged = durable"): writes go through one writer chain. Each turn takes
 * everything queued (up to MAX_BATCH_BYTES), writes it with one positioned write, fdatasyncs,
 * applies it to the in-memory index and only then resolves the callers. Writers that arrive
 * while an fdatasync is in flight wait in the queue and share the next one (group commit).
 * Every turn that writes gets the next batch number; they are consecutive in the file.
 *
 * Crash recovery at open: after kill -9 the kernel still has every byte a write() handed it, so
 * the damage can only be a torn tail — a prefix of the last batch, never acknowledged. A bad
 * record (short header, lengths out of range, extending past the end, check mismatch) is
 * therefore truncated only if it is within one batch of the end of the file and no intact
 * record after it belongs to another batch than the last one (with power loss an unsynced batch
 * can reach the disk with holes, so intact records of that same last batch may follow a hole).
 * Anything else is corruption in the middle of acknowledged data: open fails with `internal`,
 * naming the file and offset, and changes nothing. Intact records are checked strictly as well
 * (schema, batch sequence); a failure there also refuses to open. (Limit: bit rot inside the
 * last batch looks exactly like a torn tail, so it is truncated — with the warning.)
 *
 * Grants and revocations are bounded like the nodes' revocations (gateway/store-acl.ts): the
 * latest per (handle, grantee) is kept until it expires — a grant at min(notAfter, issuedAt +
 * maxGrantLifetimeSeconds) + skew (nodes refuse longer grants), a revocation at revokedAt +
 * maxGrantLifetimeSeconds + skew (nothing it cancels is valid after that) — in expiry order, and
 * each handle owner holds at most `perOwner` of each, all owners `max` (when full, grants by fair
 * share; revocations are folded into "revoked up to T" watermarks, never dropped or refused).
 * A grant whose issuedAt is later than now + skew is refused, and dropped at open (with a
 * warning naming the count): one stored before that check existed would otherwise hide every
 * later grant for its pair. Handles are never dropped (they are the product's data); new ones are
 * refused past a per-owner count and byte quota, past a total byte budget, and when the disk's
 * free space falls to a reserve kept for grants and revocations (`handles` limits), so an owner
 * can always still revoke. The write queue is bounded in bytes; grants and revocations have
 * headroom beyond the handles' share of it (docs/operators.md "The gateway's store").
 *
 * Compaction: superseded, expired and dropped grants and revocations are dead weight. When the
 * log is more than twice its live records by bytes or by record count (plus some slack; by count
 * only once the dead bytes also outweigh the ciphertexts, which every compaction copies), the
 * writer chain writes the live records (handles with their ciphertexts, re-verified, then grants
 * and revocations) into `.store.log.compact-<random>`, fsyncs it, renames it over store.log and
 * fsyncs the directory, between two batches. A crash leaves the old log or the new one, both
 * complete; a leftover temp file is removed at the next open. Readers of the old file finish
 * before it is closed. open() reads the whole log back (reading and hashing every byte) and
 * compacts it then if it is bloated or held future-dated grants.
 */

export interface StoredHandle {
  handle: string; // 0x + 64 lower-case hex
  keyId: string;
  K: string; // 0x + 66 hex (33-byte compressed point)
  nonce: string; // 0x + 24 hex
  ciphertextHash: string; // 0x + 64 hex, SHA-256 of ciphertext
  owner: string; // 0x + 40 lower-case hex
  kProof: string; // 0x + 128 hex: proof of the ephemeral key, binding K to the handle
  createdAt: number; // ms since epoch
}

export interface StoredGrant {
  handle: string;
  grantee: string;
  notAfter: number;
  issuedAt: number;
  signature: string;
}

export interface StoredRevocation {
  handle: string;
  grantee: string;
  revokedAt: number;
  signature: string;
}

export interface GatewayStoreLimits {
  /** Longest a grant may be valid (config maxGrantLifetimeSeconds): how long revocations matter. */
  maxGrantLifetimeSeconds: number;
  clockSkewSeconds: number;
  /** Live grants per handle owner and in all (config `grants`). */
  grants: OwnerLimits;
  /** Live revocations per handle owner and in all (config `revocations`). */
  revocations: OwnerLimits;
  /** Bounds on new handles (config `handles`); handles already stored are kept. */
  handles: HandleLimits;
  /** Bytes of records waiting for the writer; a handle past it is refused (`unavailable`). */
  writeQueueBytes: number;
}

export interface HandleLimits {
  /** Handles one owner may store. */
  perOwner: number;
  /** Bytes (records with their ciphertexts) one owner's handles may take in the log. */
  perOwnerBytes: number;
  /** Bytes all handles together may take in the log. */
  maxBytes: number;
  /** New handles are refused while the store's file system has less free space than this (0: not checked). */
  minFreeDiskBytes: number;
}

/**
 * maxGrantLifetimeSeconds and clockSkewSeconds are core/authz.ts's defaults (not imported: the
 * store loads without curve code); a unit test checks that they agree.
 */
export const DEFAULT_GATEWAY_STORE_LIMITS: GatewayStoreLimits = {
  maxGrantLifetimeSeconds: 90 * 86_400,
  clockSkewSeconds: 30,
  grants: { perOwner: 10_000, max: 500_000 },
  revocations: { perOwner: 10_000, max: 200_000 },
  handles: { perOwner: 100_000, perOwnerBytes: 1024 ** 3, maxBytes: 32 * 1024 ** 3, minFreeDiskBytes: 1024 ** 3 },
  writeQueueBytes: 64 * 1024 * 1024,
};

export interface GatewayStoreOptions {
  /** Recoveries worth an operator's attention: a truncated torn tail, a stale lock taken over. */
  onWarning?: (msg: string) => void;
  limits?: Partial<GatewayStoreLimits>;
  /** Unix seconds; Date.now() unless given (tests). */
  now?: () => number;
  /** Dead weight tolerated beyond twice the live log before compacting (tests make it small). */
  compactSlack?: { bytes: number; records: number };
}

export { MAX_CIPHERTEXT_BYTES };
export const LOG_FILE_NAME = 'store.log';
export const LOCK_FILE_NAME = 'LOCK';
export const BUCKET_KEY_FILE_NAME = 'store.bucket-key';
/** Upper bound on any string field, in UTF-16 code units (the HTTP layer's limits are far lower). */
export const MAX_FIELD_LENGTH = 4096;

const FILE_MODE = PRIVATE_FILE_MODE;
const MAGIC = Buffer.from('TKMSGWS1', 'latin1');
const CHECK_DOMAIN = Buffer.from('tkms/gateway-store/record/v1', 'utf8');
const HEADER_BYTES = 48;
/** 7 fields of at most MAX_FIELD_LENGTH UTF-16 units (≤ 3 UTF-8 bytes each) plus JSON syntax. */
const MAX_META_BYTES = 128 * 1024;
/**
 * A batch (one write, one fdatasync) is at most this large, so a torn tail is too. Every
 * record fits in it alone. Changing it changes how much damage open() may cut off.
 */
const MAX_BATCH_BYTES = 4 * 1024 * 1024;
const READ_CHUNK_BYTES = 4 * 1024 * 1024;
/** Lock temp files and compaction temp files a crash may leave; removed once the lock is held. */
const LOCK_TEMP_NAME = /^\.(?:LOCK\.(?:tmp|stale)|store\.log\.compact)-[0-9a-f]{32}$/;
const COMPACT_TEMP_PREFIX = '.store.log.compact-';
/** Small logs are not rewritten often: the node's revocation log uses the same slack. */
const DEFAULT_COMPACT_SLACK = { bytes: 256 * 1024, records: 1_000 };
/** About the bytes of one watermark record, header included. */
const WATERMARK_RECORD_BYTES = 120;
/** Queue bytes grants and revocations may use beyond the handles' share, so a flood of handles cannot keep them out. */
const ACL_QUEUE_HEADROOM_BYTES = MAX_BATCH_BYTES;
/** How long a free-space reading of the store's file system is reused. */
const DISK_PROBE_MS = 1_000;

/** Store directories (real paths) this process holds, so a second open here is refused. */
const HELD_DIRECTORIES = new Set<string>();

type StoreRecord =
  | { type: 'handle'; value: StoredHandle }
  | { type: 'grant'; value: StoredGrant }
  | { type: 'revocation'; value: StoredRevocation }
  /** Revocations a full table folded (store-acl.ts), written when compaction drops their records. */
  | { type: 'watermark'; value: Watermark };

interface HandleEntry {
  readonly meta: StoredHandle;
  /** Absolute file offset and length of the ciphertext bytes, and their SHA-256. */
  readonly offset: number;
  readonly length: number;
  readonly digest: Buffer;
}

interface PendingWrite {
  readonly record: StoreRecord;
  readonly meta: Buffer;
  readonly blob: Buffer;
  readonly metaDigest: Buffer;
  readonly blobDigest: Buffer;
  readonly resolve: (stored: boolean) => void;
  readonly reject: (err: unknown) => void;
}

/** Handles queued but not yet durable, so concurrent writes cannot overshoot a quota. */
interface HandleCharge {
  count: number;
  bytes: number;
}

interface LogReadState {
  size: number;
  lastBatch: number;
  /** Intact records in the log. */
  records: number;
}

export class GatewayStore {
  readonly dir: string;
  readonly #logPath: string;
  /** Replaced by compaction; a read uses the file it started with. */
  #file: FileHandle;
  readonly #lock: StoreLock;
  readonly #index: Index;
  readonly #handles: Map<string, HandleEntry>;
  readonly #grants: AclTable<StoredGrant>;
  readonly #revocations: AclTable<StoredRevocation>;
  readonly #now: () => number;
  readonly #slack: { bytes: number; records: number };
  readonly #warn: (msg: string) => void;
  /** Committed (fdatasynced) end of the log. */
  #size: number;
  #lastBatch: number;
  /** Records in the log, live or dead. */
  #records: number;
  /** After a failed compaction, the log size at which to try again (not at every batch). */
  #compactRetryAt = 0;

  readonly #queue: PendingWrite[] = [];
  /** Bytes of records queued or being written, until their callers are answered. */
  #queuedBytes = 0;
  readonly #pendingHandles = new Map<string, HandleCharge>();
  #pendingHandleBytes = 0;
  #disk: { at: number; free: number } | undefined;
  #diskProbe: Promise<void> | undefined;
  #draining = false;
  #drained: Promise<void> = Promise.resolve();
  /** Set after a failed write or fdatasync: the file's state is unknown, later writes refuse. */
  #failure: TkmsError | undefined;
  readonly #reads = new Set<Promise<unknown>>();
  #closed = false;
  #closing: Promise<void> | undefined;

  private constructor(dir: string, logPath: string, file: FileHandle, lock: StoreLock, index: Index, state: LogReadState, opts: OpenSettings) {
    this.dir = dir;
    this.#logPath = logPath;
    this.#file = file;
    this.#lock = lock;
    this.#index = index;
    this.#handles = index.handles;
    this.#grants = index.grants;
    this.#revocations = index.revocations;
    this.#now = opts.now;
    this.#slack = opts.slack;
    this.#warn = opts.warn;
    this.#size = state.size;
    this.#lastBatch = state.lastBatch;
    this.#records = state.records;
    this.#limits = opts.limits;
  }

  readonly #limits: GatewayStoreLimits;

  /**
   * Opens (creating) the store in `dir`: takes the lock, reads the log back, truncates a torn tail.
   * Refuses with `conflict` if a live process holds the store, `internal` if the log is corrupt.
   */
  static async open(dir: string, opts: GatewayStoreOptions = {}): Promise<GatewayStore> {
    if (typeof dir !== 'string' || dir.length === 0) throw new TkmsError('bad_request', 'store directory must be a non-empty string');
    if (typeof opts !== 'object' || opts === null) throw new TkmsError('bad_request', 'store options must be an object');
    const onWarning = opts.onWarning;
    if (onWarning !== undefined && typeof onWarning !== 'function') throw new TkmsError('bad_request', 'onWarning must be a function');
    const warn = (msg: string): void => {
      try {
        onWarning?.(msg);
      } catch {
        // A failing logger must not fail the store.
      }
    };

    const settings = openSettings(opts, warn);

    const root = await ensureDirectory(resolve(dir));
    const lock = await StoreLock.acquire(root, warn);
    try {
      const logPath = join(root, LOG_FILE_NAME);
      const { file, created } = await openLogFile(logPath);
      let store: GatewayStore;
      try {
        if (created) await fsyncDirectory(root);
        const bucketKey = await openBucketKey(join(root, BUCKET_KEY_FILE_NAME), 'store');
        const index = new Index(settings.limits, settings.now(), bucketKey.key, bucketKey.created);
        const state = await readLog(file, logPath, warn, index);
        index.finishLoad();
        if (index.futureGrants > 0) {
          warn(`gateway store: dropped ${index.futureGrants} grant(s) issued later than now + clockSkewSeconds (stored before such grants were refused); they would hide later grants`);
        }
        store = new GatewayStore(root, logPath, file, lock, index, state, settings);
      } catch (err) {
        await file.close().catch(() => undefined);
        throw err;
      }
      if (settings.limits.handles.minFreeDiskBytes > 0) {
        try {
          await store.#readFreeDisk();
        } catch (err) {
          await store.close();
          throw ioError('statfs', err);
        }
      }
      // Dropped future-dated grants must not come back once the clock reaches them.
      if (store.#index.futureGrants > 0 || store.#bloated()) {
        try {
          await store.#compact();
        } catch (err) {
          await store.close();
          throw err;
        }
      }
      return store;
    } catch (err) {
      await lock.release();
      throw err;
    }
  }

  /** Idempotent: an existing handle is left as is and {created:false} returned (a handle commits to its content). */
  async putHandle(meta: StoredHandle, ciphertext: Uint8Array): Promise<{ created: boolean }> {
    this.#requireOpen();
    const value = checkHandle(meta);
    if (!(ciphertext instanceof Uint8Array)) throw new TkmsError('bad_request', 'ciphertext must be bytes');
    if (ciphertext.length > MAX_CIPHERTEXT_BYTES) {
      throw new TkmsError('payload_too_large', `ciphertext is ${ciphertext.length} bytes, more than ${MAX_CIPHERTEXT_BYTES}`);
    }
    // Already durable: nothing to write or wait for.
    if (this.#handles.has(value.handle)) return { created: false };
    const freeDisk = this.#limits.handles.minFreeDiskBytes > 0 ? this.#freeDisk() : Infinity;
    const created = await this.#enqueue({ type: 'handle', value }, Buffer.from(ciphertext), (bytes) => this.#chargeHandle(value.owner, bytes, freeDisk));
    return { created };
  }

  /** Refuses a new handle past its owner's quota, the handles' budget or the disk reserve; else returns its release. */
  #chargeHandle(owner: string, bytes: number, freeDisk: number): () => void {
    const limits = this.#limits.handles;
    const committed = this.#index.ownerHandles.get(owner) ?? { count: 0, bytes: 0 };
    const pending = this.#pendingHandles.get(owner) ?? { count: 0, bytes: 0 };
    if (committed.count + pending.count + 1 > limits.perOwner) {
      throw new TkmsError('rate_limited', `owner ${owner} already stores ${committed.count} handles, the most one owner may store`, { reason: 'handles_per_owner', limit: limits.perOwner });
    }
    if (committed.bytes + pending.bytes + bytes > limits.perOwnerBytes) {
      throw new TkmsError('rate_limited', `owner ${owner}'s handles would take more than ${limits.perOwnerBytes} bytes`, { reason: 'handle_bytes_per_owner', limit: limits.perOwnerBytes });
    }
    if (this.#index.handleBytes + this.#pendingHandleBytes + bytes > limits.maxBytes) {
      throw new TkmsError('unavailable', 'the gateway store is full: no new handles are accepted (grants and revocations still are)', { reason: 'store_full' });
    }
    if (freeDisk - this.#queuedBytes - bytes < limits.minFreeDiskBytes) {
      throw new TkmsError('unavailable', 'the gateway store\'s disk is nearly full: no new handles are accepted (revocations still are, and grants until half the reserve is used)', { reason: 'disk_reserve' });
    }
    pending.count++;
    pending.bytes += bytes;
    this.#pendingHandles.set(owner, pending);
    this.#pendingHandleBytes += bytes;
    return () => {
      pending.count--;
      pending.bytes -= bytes;
      if (pending.count === 0) this.#pendingHandles.delete(owner);
      this.#pendingHandleBytes -= bytes;
    };
  }

  /**
   * Free bytes on the store's file system as last read (at open, then refreshed in the background
   * at most once a second), so a put never waits for it: writes since the reading are far below
   * the reserve it is compared with.
   */
  #freeDisk(): number {
    if (this.#diskProbe === undefined && Date.now() - (this.#disk?.at ?? 0) >= DISK_PROBE_MS) {
      this.#diskProbe = this.#readFreeDisk()
        .catch((err: unknown) => this.#warn(`gateway store: cannot read the free space of ${this.dir} (${errnoCode(err) ?? 'error'})`))
        .finally(() => {
          this.#diskProbe = undefined;
        });
    }
    return this.#disk?.free ?? Infinity;
  }

  async #readFreeDisk(): Promise<void> {
    const s = await statfs(this.dir);
    this.#disk = { at: Date.now(), free: s.bavail * s.bsize };
  }

  /** Metadata only, from memory. */
  getHandle(handle: string): StoredHandle | undefined {
    this.#requireOpen();
    const entry = this.#handles.get(handle);
    return entry === undefined ? undefined : { ...entry.meta };
  }

  /** Length of a handle's ciphertext, from memory (to budget an answer before reading it). */
  ciphertextLength(handle: string): number | undefined {
    this.#requireOpen();
    return this.#handles.get(handle)?.length;
  }

  /** The ciphertext bytes, by a positioned read from the log; verified against the digest taken when written. */
  async readCiphertext(handle: string): Promise<Uint8Array | undefined> {
    this.#requireOpen();
    const entry = this.#handles.get(handle);
    if (entry === undefined) return undefined;
    // The entry's offsets belong to the current file: both are taken together.
    const read = this.#readBlob(this.#file, entry);
    this.#reads.add(read);
    try {
      return await read;
    } finally {
      this.#reads.delete(read);
    }
  }

  /**
   * Keeps, per (handle, grantee), the grant with the greatest issuedAt (ties: keep existing) until
   * it expires. Returns whether it was stored: not when superseded or already expired. Refuses
   * an issuedAt later than now + skew (`bad_request`) and a grant past the owner's or the
   * store's bound (`rate_limited`, `unavailable`) or into the lower half of the disk reserve
   * (`unavailable`, reason `disk_reserve`).
   */
  async putGrant(grant: StoredGrant): Promise<boolean> {
    this.#requireOpen();
    const value = checkGrant(grant);
    const now = this.#prune();
    if (this.#index.grantFromFuture(value, now)) {
      throw new TkmsError('bad_request', `grant issuedAt ${value.issuedAt} is later than now + clockSkewSeconds`);
    }
    const existing = this.#grants.get(value.handle, value.grantee);
    if (existing !== undefined && !this.#grants.supersedes(value, existing)) return false;
    if (this.#grants.expired(value, now)) return false;
    // Re-grants append without bound while compaction (a full copy) cannot run on a full disk:
    // the lower half of the reserve is kept for revocations, which must always be written.
    const reserve = this.#limits.handles.minFreeDiskBytes;
    if (reserve > 0 && this.#freeDisk() - this.#queuedBytes < reserve / 2) {
      throw new TkmsError('unavailable', 'the gateway store\'s disk is nearly full: no new grants are accepted (revocations still are)', { reason: 'disk_reserve' });
    }
    return this.#enqueue({ type: 'grant', value }, Buffer.alloc(0));
  }

  getGrant(handle: string, grantee: string): StoredGrant | undefined {
    this.#requireOpen();
    this.#prune();
    const grant = this.#grants.get(handle, grantee);
    return grant === undefined ? undefined : { ...grant };
  }

  /** Grants held for a handle, expired ones not yet pruned included (to budget a listing before building it). */
  grantCount(handle: string): number {
    this.#requireOpen();
    return this.#grants.count(handle);
  }

  /** All live grants of a handle, one per grantee, sorted by grantee. */
  listGrants(handle: string): StoredGrant[] {
    this.#requireOpen();
    this.#prune();
    return this.#grants
      .list(handle)
      .sort((a, b) => compareStrings(a.grantee, b.grantee))
      .map((g) => ({ ...g }));
  }

  /**
   * Keeps, per (handle, grantee), the revocation with the greatest revokedAt (ties: keep existing)
   * until it expires. Returns whether it was stored: not when superseded, already expired or
   * already covered by its owner's watermark. Refuses past the owner's bound (`rate_limited`);
   * a full store folds an older revocation into a watermark rather than refuse (store-acl.ts).
   */
  async putRevocation(rev: StoredRevocation): Promise<boolean> {
    this.#requireOpen();
    const value = checkRevocation(rev);
    const now = this.#prune();
    const existing = this.#revocations.get(value.handle, value.grantee);
    if (existing !== undefined && !this.#revocations.supersedes(value, existing)) return false;
    if (this.#revocations.expired(value, now)) return false;
    if ((this.#revocations.watermarks!.upTo(this.#index.ownerOf(value.handle)) ?? -1) >= value.revokedAt) return false;
    return this.#enqueue({ type: 'revocation', value }, Buffer.alloc(0));
  }

  /**
   * The latest revocation in force for (handle, grantee): its own, or the watermark of the
   * handle owner's bucket, whichever is later. Check grants against this, not getRevocation.
   */
  revokedAt(handle: string, grantee: string): number | undefined {
    this.#requireOpen();
    const now = this.#prune();
    const own = this.#revocations.get(handle, grantee)?.revokedAt;
    const watermark = this.#revocations.watermarks!.upTo(this.#index.ownerOf(handle), now);
    return own === undefined ? watermark : watermark === undefined ? own : Math.max(own, watermark);
  }

  getRevocation(handle: string, grantee: string): StoredRevocation | undefined {
    this.#requireOpen();
    this.#prune();
    const rev = this.#revocations.get(handle, grantee);
    return rev === undefined ? undefined : { ...rev };
  }

  /** Counts of what is held, and the committed size of the log in bytes. */
  stats(): { handles: number; grants: number; revocations: number; logBytes: number } {
    this.#requireOpen();
    this.#prune();
    return { handles: this.#handles.size, grants: this.#grants.size, revocations: this.#revocations.size, logBytes: this.#size };
  }

  /** Waits for pending writes and reads, closes the log and releases the lock. Idempotent. */
  close(): Promise<void> {
    if (this.#closing === undefined) {
      this.#closed = true;
      this.#closing = (async () => {
        while (this.#draining) await this.#drained;
        await Promise.allSettled([...this.#reads]);
        await this.#file.close().catch(() => undefined);
        await this.#lock.release();
      })();
    }
    return this.#closing;
  }

  #requireOpen(): void {
    if (this.#closed) throw new TkmsError('unavailable', 'store is closed');
  }

  #enqueue(record: StoreRecord, blob: Buffer, charge?: (bytes: number) => () => void): Promise<boolean> {
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    const meta = Buffer.from(JSON.stringify(record), 'utf8');
    if (meta.length > MAX_META_BYTES) throw new TkmsError('bad_request', `${record.type} record is too large`);
    const bytes = HEADER_BYTES + meta.length + blob.length;
    const queueLimit = this.#limits.writeQueueBytes + (record.type === 'handle' ? 0 : ACL_QUEUE_HEADROOM_BYTES);
    if (this.#queuedBytes + bytes > queueLimit) {
      throw new TkmsError('unavailable', 'the gateway store\'s write queue is full; retry later', { retryAfterSeconds: 1, reason: 'store_queue_full' });
    }
    const uncharge = charge?.(bytes);
    this.#queuedBytes += bytes;
    const settle = (): void => {
      this.#queuedBytes -= bytes;
      uncharge?.();
    };
    return new Promise<boolean>((resolvePut, rejectPut) => {
      this.#queue.push({
        record,
        meta,
        blob,
        metaDigest: sha256(meta),
        blobDigest: sha256(blob),
        resolve: (stored) => {
          settle();
          resolvePut(stored);
        },
        reject: (err) => {
          settle();
          rejectPut(err);
        },
      });
      if (!this.#draining) {
        this.#draining = true;
        this.#drained = this.#drain();
      }
    });
  }

  /** The writer chain: one batch at a time, each written, fdatasynced and applied before the next. */
  async #drain(): Promise<void> {
    try {
      // Let callers in the current synchronous run (e.g. a Promise.all) join the first batch.
      await Promise.resolve();
      while (this.#queue.length > 0) {
        if (this.#failure !== undefined) {
          for (const w of this.#queue.splice(0)) w.reject(this.#failure);
          break;
        }
        let bytes = 0;
        let take = 0;
        while (take < this.#queue.length) {
          const w = this.#queue[take]!;
          const size = HEADER_BYTES + w.meta.length + w.blob.length;
          if (take > 0 && bytes + size > MAX_BATCH_BYTES) break;
          bytes += size;
          take++;
        }
        const batch = this.#queue.splice(0, take);
        try {
          await this.#commit(batch);
          // Between batches, so nothing is written to the old log while it is copied.
          this.#prune();
          if (this.#failure === undefined && this.#size >= this.#compactRetryAt && this.#bloated()) await this.#compact();
        } catch (err) {
          // Not an I/O failure (#commit handles those): never leave a caller hanging.
          this.#failure ??= new TkmsError('internal', 'gateway store writer failed; the store must be reopened', undefined, { cause: err });
          for (const w of batch) w.reject(this.#failure);
        }
      }
    } finally {
      this.#draining = false;
    }
  }

  async #commit(batch: PendingWrite[]): Promise<void> {
    // Decide against the committed index plus what this batch already holds, in queue order.
    // A write past a bound is refused alone (its error), the rest of the batch goes on.
    const staged = new Staging(this.#index, this.#now());
    const decisions = batch.map((w): boolean | TkmsError => {
      try {
        return staged.offer(w.record);
      } catch (err) {
        if (err instanceof TkmsError) return err;
        throw err;
      }
    });
    const writes = batch.filter((_, i) => decisions[i] === true);
    const offsets = new Map<PendingWrite, number>();
    if (writes.length > 0) {
      const start = this.#size;
      const batchNo = this.#lastBatch + 1;
      const parts: Buffer[] = [];
      let offset = start;
      for (const w of writes) {
        parts.push(encodeHeader(w.meta, w.blob, batchNo, offset, w.metaDigest, w.blobDigest), w.meta, w.blob);
        offsets.set(w, offset);
        offset += HEADER_BYTES + w.meta.length + w.blob.length;
      }
      try {
        await writeAll(this.#file, Buffer.concat(parts), start);
        await this.#file.datasync();
      } catch (err) {
        // The file's state past `start` is unknown (and after a failed fdatasync so is the page
        // cache's): refuse all further writes; reopening recovers from what is on disk.
        this.#failure = new TkmsError('internal', `gateway store write failed (${errnoCode(err) ?? 'error'}); the store must be reopened`, {
          errno: errnoCode(err) ?? 'unknown',
        });
        await this.#file.truncate(start).catch(() => undefined);
        for (const w of batch) w.reject(this.#failure);
        return;
      }
      this.#size = offset;
      this.#lastBatch = batchNo;
      this.#records += writes.length;
    }
    batch.forEach((w, i) => {
      const offset = offsets.get(w);
      if (offset !== undefined) {
        this.#index.apply(w.record, offset + HEADER_BYTES + w.meta.length, w.blob.length, w.blobDigest, HEADER_BYTES + w.meta.length + w.blob.length, false);
      }
      const decision = decisions[i]!;
      if (decision instanceof TkmsError) w.reject(decision);
      else w.resolve(decision);
    });
  }

  /** Drops what has expired (cheap when nothing has: one heap peek each); returns now. */
  #prune(): number {
    const now = this.#now();
    this.#grants.prune(now);
    this.#revocations.prune(now);
    return now;
  }

  /**
   * Dead records make up more than half the log, by bytes or by record count (beyond the slack).
   * A compaction copies every ciphertext, so one the record count asks for also waits until the
   * dead bytes outweigh the ciphertexts: re-sent records never make the gateway copy much more
   * than they wrote.
   */
  #bloated(): boolean {
    const watermarks = this.#revocations.watermarks!.size;
    const liveRecords = this.#handles.size + this.#grants.size + this.#revocations.size + watermarks;
    const liveBytes = MAGIC.length + this.#index.handleBytes + this.#grants.liveBytes + this.#revocations.liveBytes + watermarks * WATERMARK_RECORD_BYTES;
    const deadBytes = this.#size - liveBytes;
    if (deadBytes > liveBytes + this.#slack.bytes) return true;
    return this.#records > 2 * liveRecords + this.#slack.records && deadBytes > this.#index.handleBytes;
  }

  /**
   * Rewrites the log with only its live records (see the file comment). Runs in the writer chain
   * (or at open), so no batch is written meanwhile. An I/O failure before the rename leaves the
   * old log in use, with a warning; a later batch tries again.
   */
  async #compact(): Promise<void> {
    const temp = join(this.dir, `${COMPACT_TEMP_PREFIX}${randomBytes(16).toString('hex')}`);
    let out: FileHandle | undefined;
    let written: { size: number; lastBatch: number; records: number; handles: Map<string, HandleEntry> };
    try {
      out = await open(temp, fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW, FILE_MODE);
      await out.chmod(FILE_MODE);
      written = await this.#writeLive(out);
      await out.sync();
      await rename(temp, this.#logPath);
    } catch (err) {
      await out?.close().catch(() => undefined);
      await unlink(temp).catch(() => undefined);
      const why = err instanceof TkmsError ? err.message : `${errnoCode(err) ?? 'error'}`;
      this.#warn(`gateway store: compaction of ${this.#logPath} failed (${why}); the old log stays in use`);
      this.#compactRetryAt = this.#size + Math.max(this.#slack.bytes, 1024 * 1024);
      return;
    }
    const old = this.#file;
    this.#file = out;
    this.#size = written.size;
    this.#lastBatch = written.lastBatch;
    this.#records = written.records;
    for (const [handle, entry] of written.handles) this.#handles.set(handle, entry);
    this.#grants.resetExpiries();
    this.#revocations.resetExpiries();
    // Either name is a complete log, so a failed directory sync only risks keeping the old one.
    await fsyncDirectory(this.dir).catch((err: unknown) => this.#warn(`gateway store: directory sync after compaction failed (${errnoCode(err) ?? 'error'})`));
    // Reads started before the swap still use the old file.
    await Promise.allSettled([...this.#reads]);
    await old.close().catch(() => undefined);
  }

  /** Writes MAGIC and every live record to `out`, in batches of at most MAX_BATCH_BYTES. */
  async #writeLive(out: FileHandle): Promise<{ size: number; lastBatch: number; records: number; handles: Map<string, HandleEntry> }> {
    await writeAll(out, MAGIC, 0);
    let size = MAGIC.length;
    let batchNo = 0;
    let records = 0;
    let parts: Buffer[] = [];
    let partBytes = 0;
    const handles = new Map<string, HandleEntry>();
    const flush = async (): Promise<void> => {
      if (parts.length === 0) return;
      await writeAll(out, Buffer.concat(parts), size);
      size += partBytes;
      parts = [];
      partBytes = 0;
    };
    const add = async (record: StoreRecord, blob: Buffer): Promise<number> => {
      const meta = Buffer.from(JSON.stringify(record), 'utf8');
      const bytes = HEADER_BYTES + meta.length + blob.length;
      if (partBytes > 0 && partBytes + bytes > MAX_BATCH_BYTES) await flush();
      if (partBytes === 0) batchNo++;
      const offset = size + partBytes;
      parts.push(encodeHeader(meta, blob, batchNo, offset, sha256(meta), sha256(blob)), meta, blob);
      partBytes += bytes;
      records++;
      return offset + HEADER_BYTES + meta.length;
    };
    for (const [handle, entry] of this.#handles) {
      const blob = Buffer.from(await this.#readBlob(this.#file, entry));
      const blobOffset = await add({ type: 'handle', value: entry.meta }, blob);
      handles.set(handle, { meta: entry.meta, offset: blobOffset, length: entry.length, digest: entry.digest });
    }
    for (const value of this.#grants.values()) await add({ type: 'grant', value }, Buffer.alloc(0));
    // Folded revocations leave the log here: their watermarks stay.
    for (const value of this.#revocations.watermarks!.live(this.#now())) await add({ type: 'watermark', value }, Buffer.alloc(0));
    for (const value of this.#revocations.values()) await add({ type: 'revocation', value }, Buffer.alloc(0));
    await flush();
    return { size, lastBatch: batchNo, records, handles };
  }

  async #readBlob(file: FileHandle, entry: HandleEntry): Promise<Uint8Array> {
    const bytes = new Uint8Array(entry.length);
    let done = 0;
    try {
      while (done < entry.length) {
        const { bytesRead } = await file.read(bytes, done, entry.length - done, entry.offset + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
    } catch (err) {
      throw ioError('read', err);
    }
    if (done !== entry.length || !sha256(bytes).equals(entry.digest)) {
      throw new TkmsError('internal', `gateway store log ${this.#logPath}: ciphertext at offset ${entry.offset} no longer matches its checksum`, {
        file: this.#logPath,
        offset: entry.offset,
      });
    }
    return bytes;
  }
}

// ---------------------------------------------------------------------------------------------
// Validation. Values are opaque strings to the store; only their types and sizes are checked.

function requireObject(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new TkmsError('bad_request', `${what} must be an object`);
  return value as Record<string, unknown>;
}

function requireString(obj: Record<string, unknown>, field: string, what: string): string {
  const value = obj[field];
  if (typeof value !== 'string') throw new TkmsError('bad_request', `${what}.${field} must be a string`);
  if (value.length === 0 || value.length > MAX_FIELD_LENGTH) {
    throw new TkmsError('bad_request', `${what}.${field} must be 1 to ${MAX_FIELD_LENGTH} characters`);
  }
  return value;
}

function requireTime(obj: Record<string, unknown>, field: string, what: string): number {
  const value = obj[field];
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new TkmsError('bad_request', `${what}.${field} must be a non-negative integer (ms since epoch)`);
  }
  return value;
}

function checkHandle(value: unknown): StoredHandle {
  const o = requireObject(value, 'handle metadata');
  const w = 'handle metadata';
  return {
    handle: requireString(o, 'handle', w),
    keyId: requireString(o, 'keyId', w),
    K: requireString(o, 'K', w),
    nonce: requireString(o, 'nonce', w),
    ciphertextHash: requireString(o, 'ciphertextHash', w),
    owner: requireString(o, 'owner', w),
    kProof: requireString(o, 'kProof', w),
    createdAt: requireTime(o, 'createdAt', w),
  };
}

function checkGrant(value: unknown): StoredGrant {
  const o = requireObject(value, 'grant');
  return {
    handle: requireString(o, 'handle', 'grant'),
    grantee: requireString(o, 'grantee', 'grant'),
    notAfter: requireTime(o, 'notAfter', 'grant'),
    issuedAt: requireTime(o, 'issuedAt', 'grant'),
    signature: requireString(o, 'signature', 'grant'),
  };
}

function checkRevocation(value: unknown): StoredRevocation {
  const o = requireObject(value, 'revocation');
  return {
    handle: requireString(o, 'handle', 'revocation'),
    grantee: requireString(o, 'grantee', 'revocation'),
    revokedAt: requireTime(o, 'revokedAt', 'revocation'),
    signature: requireString(o, 'signature', 'revocation'),
  };
}

// ---------------------------------------------------------------------------------------------
// The in-memory index, shared by the log reader (at open) and the writer.

interface OpenSettings {
  limits: GatewayStoreLimits;
  now: () => number;
  slack: { bytes: number; records: number };
  warn: (msg: string) => void;
}

function openSettings(opts: GatewayStoreOptions, warn: (msg: string) => void): OpenSettings {
  const given = opts.limits ?? {};
  if (typeof given !== 'object' || given === null) throw new TkmsError('bad_request', 'limits must be an object');
  const limits: GatewayStoreLimits = { ...DEFAULT_GATEWAY_STORE_LIMITS, ...given };
  const count = (v: unknown): boolean => typeof v === 'number' && Number.isSafeInteger(v) && v >= 1;
  for (const kind of ['grants', 'revocations'] as const) {
    const l = limits[kind];
    if (typeof l !== 'object' || l === null || !count(l.perOwner) || !count(l.max)) throw new TkmsError('bad_request', `limits.${kind} must be { perOwner, max } (positive integers)`);
  }
  const h = limits.handles;
  if (typeof h !== 'object' || h === null || !count(h.perOwner) || !count(h.perOwnerBytes) || !count(h.maxBytes) || !Number.isSafeInteger(h.minFreeDiskBytes) || h.minFreeDiskBytes < 0) {
    throw new TkmsError('bad_request', 'limits.handles must be { perOwner, perOwnerBytes, maxBytes } (positive integers) and minFreeDiskBytes (a non-negative integer)');
  }
  if (!count(limits.writeQueueBytes) || limits.writeQueueBytes < MAX_BATCH_BYTES) throw new TkmsError('bad_request', `limits.writeQueueBytes must be an integer of at least ${MAX_BATCH_BYTES}`);
  for (const field of ['maxGrantLifetimeSeconds', 'clockSkewSeconds'] as const) {
    const v = limits[field];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new TkmsError('bad_request', `limits.${field} must be a non-negative integer`);
  }
  const now = opts.now ?? ((): number => Math.floor(Date.now() / 1000));
  if (typeof now !== 'function') throw new TkmsError('bad_request', 'now must be a function');
  const slack = opts.compactSlack ?? DEFAULT_COMPACT_SLACK;
  if (typeof slack !== 'object' || slack === null || !Number.isSafeInteger(slack.bytes) || !Number.isSafeInteger(slack.records) || slack.bytes < 0 || slack.records < 0) {
    throw new TkmsError('bad_request', 'compactSlack must be { bytes, records } (non-negative integers)');
  }
  return { limits, now, slack, warn };
}

/** Handles, and the grant and revocation tables with their expiry and bounds. */
class Index {
  readonly handles = new Map<string, HandleEntry>();
  readonly grants: AclTable<StoredGrant>;
  readonly revocations: AclTable<StoredRevocation>;
  /** Bytes of the handle records (live for good). */
  handleBytes = 0;
  /** Handles and their record bytes per owner (quotas on new handles). */
  readonly ownerHandles = new Map<string, HandleCharge>();
  /** Grants dropped at load because their issuedAt is later than now + skew. */
  futureGrants = 0;
  /** The latest watermark read under a bucket key that is gone (or none): it covers every bucket. */
  #unplaced: number | undefined;

  constructor(
    private readonly limits: GatewayStoreLimits,
    /** Time of the load, for what is read from the log. */
    private readonly loadedAt: number,
    bucketKey: Uint8Array,
    /** The bucket key was created by this open: watermarks in the log were bucketed under another. */
    private readonly bucketKeyCreated: boolean,
  ) {
    const { maxGrantLifetimeSeconds: lifetime, clockSkewSeconds: skew } = limits;
    // Nodes refuse a grant valid for longer than the lifetime, so it ends at issuedAt + lifetime.
    this.grants = new AclTable<StoredGrant>('grant', limits.grants, (g) => g.issuedAt, (g) => Math.min(g.notAfter, g.issuedAt + lifetime) + skew);
    this.revocations = new AclTable<StoredRevocation>(
      'revocation',
      limits.revocations,
      (r) => r.revokedAt,
      (r) => r.revokedAt + lifetime + skew,
      new RevocationWatermarks(bucketKey, (upTo) => upTo + lifetime + skew),
    );
  }

  /** Whose quota a grant or revocation counts against: its handle's owner. */
  ownerOf(handle: string): string {
    // Only a store used without the API holds grants for unknown handles: they count per handle.
    return this.handles.get(handle)?.meta.owner ?? handle;
  }

  grantFromFuture(grant: StoredGrant, nowSeconds: number): boolean {
    return grant.issuedAt > nowSeconds + this.limits.clockSkewSeconds;
  }

  /** Applies a durable record (`loading`: read from the log at open). */
  apply(record: StoreRecord, blobOffset: number, blobLength: number, blobDigest: Buffer, bytes: number, loading: boolean): void {
    switch (record.type) {
      case 'handle': {
        if (!this.handles.has(record.value.handle)) {
          this.handles.set(record.value.handle, { meta: record.value, offset: blobOffset, length: blobLength, digest: blobDigest });
          this.handleBytes += bytes;
          const mine = this.ownerHandles.get(record.value.owner) ?? { count: 0, bytes: 0 };
          mine.count++;
          mine.bytes += bytes;
          this.ownerHandles.set(record.value.owner, mine);
        }
        return;
      }
      case 'grant': {
        if (loading && this.grantFromFuture(record.value, this.loadedAt)) {
          this.futureGrants++;
          return;
        }
        if (loading && this.grants.expired(record.value, this.loadedAt)) return;
        this.grants.put(record.value, this.ownerOf(record.value.handle), bytes, loading);
        return;
      }
      case 'revocation': {
        if (loading && this.revocations.expired(record.value, this.loadedAt)) return;
        this.revocations.put(record.value, this.ownerOf(record.value.handle), bytes, loading);
        return;
      }
      case 'watermark':
        if (this.bucketKeyCreated) this.#unplaced = Math.max(this.#unplaced ?? record.value.upTo, record.value.upTo);
        else this.revocations.watermarks!.raiseBucket(record.value.bucket, record.value.upTo);
        return;
    }
  }

  finishLoad(): void {
    if (this.#unplaced !== undefined) this.revocations.watermarks!.raiseAll(this.#unplaced);
    this.grants.resetExpiries();
    this.revocations.resetExpiries();
  }
}

/** What a batch would change, so queued writes are decided in order before any is durable. */
class Staging {
  readonly #handles = new Set<string>();
  readonly #grants = new Map<string, StoredGrant>();
  readonly #revocations = new Map<string, StoredRevocation>();

  constructor(
    private readonly index: Index,
    private readonly nowSeconds: number,
  ) {}

  /** Whether `record` would be stored; if so it is staged. Throws when a bound refuses it. */
  offer(record: StoreRecord): boolean {
    switch (record.type) {
      case 'handle': {
        const h = record.value.handle;
        if (this.index.handles.has(h) || this.#handles.has(h)) return false;
        this.#handles.add(h);
        return true;
      }
      case 'grant':
        return this.#offerAcl(this.index.grants, this.#grants, record.value);
      case 'revocation':
        return this.#offerAcl(this.index.revocations, this.#revocations, record.value);
      case 'watermark':
        return false;
    }
  }

  #offerAcl<T extends StoredGrant | StoredRevocation>(table: AclTable<T>, staged: Map<string, T>, value: T): boolean {
    const key = pairKey(value.handle, value.grantee);
    const committed = table.get(value.handle, value.grantee);
    const existing = staged.get(key) ?? committed;
    if (existing !== undefined && !table.supersedes(value, existing)) return false;
    if (table.expired(value, this.nowSeconds)) return false;
    if (existing === undefined) table.admit(this.index.ownerOf(value.handle), value.handle, value.grantee);
    staged.set(key, value);
    return true;
  }
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

// ---------------------------------------------------------------------------------------------
// Framing.

function sha256(data: Uint8Array): Buffer {
  // One-shot hashing (no Hash object per call): reading the log hashes three times per record.
  return hash('sha256', data, 'buffer');
}

function frameCheck(header: Buffer, offset: number, metaDigest: Buffer, blobDigest: Buffer): Buffer {
  const input = Buffer.allocUnsafe(CHECK_DOMAIN.length + 16 + 8 + 32 + 32);
  let at = CHECK_DOMAIN.copy(input, 0);
  at += header.copy(input, at, 0, 16);
  at = input.writeBigUInt64BE(BigInt(offset), at);
  at += metaDigest.copy(input, at);
  blobDigest.copy(input, at);
  return sha256(input);
}

function encodeHeader(meta: Buffer, blob: Buffer, batch: number, offset: number, metaDigest: Buffer, blobDigest: Buffer): Buffer {
  const header = Buffer.alloc(HEADER_BYTES);
  header.writeUInt32BE(meta.length, 0);
  header.writeUInt32BE(blob.length, 4);
  header.writeBigUInt64BE(BigInt(batch), 8);
  frameCheck(header, offset, metaDigest, blobDigest).copy(header, 16);
  return header;
}

/** Reads a file front to back through one buffer; views stay valid until the next call. */
class SequentialReader {
  #buffer = Buffer.alloc(0);
  #start = 0; // file offset of #buffer[0]
  #length = 0; // valid bytes in #buffer

  constructor(
    private readonly file: FileHandle,
    readonly size: number,
  ) {}

  /** Bytes [pos, pos + n) of the file; the caller guarantees pos + n ≤ size. */
  async view(pos: number, n: number): Promise<Buffer> {
    if (pos >= this.#start && pos + n <= this.#start + this.#length) {
      return this.#buffer.subarray(pos - this.#start, pos - this.#start + n);
    }
    const want = Math.min(Math.max(n, READ_CHUNK_BYTES), this.size - pos);
    if (this.#buffer.length < want) this.#buffer = Buffer.alloc(want);
    let done = 0;
    try {
      while (done < want) {
        const { bytesRead } = await this.file.read(this.#buffer, done, want - done, pos + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
    } catch (err) {
      throw ioError('read', err);
    }
    this.#start = pos;
    this.#length = done;
    if (done < n) throw new TkmsError('internal', 'gateway store log shrank while it was being read');
    return this.#buffer.subarray(0, n);
  }
}

type Frame =
  | { intact: true; end: number; batch: number; meta: Buffer; blobOffset: number; blobLength: number; blobDigest: Buffer }
  | { intact: false; reason: string };

/**
 * Checks the frame at `at` in `buf`, which holds file bytes from `base` to the end of the file.
 * A returned `meta` is a view into `buf`.
 */
function checkFrame(buf: Buffer, at: number, base: number): Frame {
  const pos = base + at;
  const remaining = buf.length - at;
  if (remaining < HEADER_BYTES) return { intact: false, reason: `incomplete record header (${remaining} bytes)` };
  const metaLength = buf.readUInt32BE(at);
  const blobLength = buf.readUInt32BE(at + 4);
  if (metaLength === 0 || metaLength > MAX_META_BYTES || blobLength > MAX_CIPHERTEXT_BYTES) {
    return { intact: false, reason: `record lengths out of range (meta ${metaLength}, blob ${blobLength})` };
  }
  const batch = buf.readBigUInt64BE(at + 8);
  if (batch === 0n || batch > BigInt(Number.MAX_SAFE_INTEGER)) return { intact: false, reason: 'batch number out of range' };
  const size = HEADER_BYTES + metaLength + blobLength;
  if (size > remaining) return { intact: false, reason: `record of ${size} bytes extends past the end of the file` };
  const meta = buf.subarray(at + HEADER_BYTES, at + HEADER_BYTES + metaLength);
  const blobDigest = sha256(buf.subarray(at + HEADER_BYTES + metaLength, at + size));
  const header = buf.subarray(at, at + HEADER_BYTES);
  if (!frameCheck(header, pos, sha256(meta), blobDigest).equals(header.subarray(16))) {
    return { intact: false, reason: 'record checksum mismatch' };
  }
  return { intact: true, end: pos + size, batch: Number(batch), meta, blobOffset: pos + HEADER_BYTES + metaLength, blobLength, blobDigest };
}

/** Reads the frame at `pos` (header first, then exactly its body) and checks it. */
async function readFrame(reader: SequentialReader, pos: number): Promise<Frame> {
  const remaining = reader.size - pos;
  if (remaining < HEADER_BYTES) return { intact: false, reason: `incomplete record header (${remaining} bytes)` };
  const header = await reader.view(pos, HEADER_BYTES);
  const metaLength = header.readUInt32BE(0);
  const blobLength = header.readUInt32BE(4);
  // Lengths out of range or past the end: checkFrame reports them from the header alone.
  const length = Math.min(HEADER_BYTES + metaLength + blobLength, remaining, HEADER_BYTES + MAX_META_BYTES + MAX_CIPHERTEXT_BYTES);
  const frame = await reader.view(pos, length);
  // A frame shorter than its header claims is reported as extending past the end.
  return checkFrame(frame, 0, pos);
}

function corrupt(file: string, offset: number, reason: string): TkmsError {
  return new TkmsError('internal', `gateway store log ${file} is corrupt at offset ${offset}: ${reason}`, { file, offset });
}

/** Parses the meta of an intact record; any failure means corruption (or a newer format), never a torn write. */
function parseRecord(meta: Buffer, blobLength: number): StoreRecord {
  const parsed = requireObject(JSON.parse(meta.toString('utf8')) as unknown, 'record');
  const keys = Object.keys(parsed);
  if (keys.length !== 2 || !('type' in parsed) || !('value' in parsed)) throw new Error('unexpected record fields');
  switch (parsed['type']) {
    case 'handle':
      return { type: 'handle', value: checkHandle(parsed['value']) };
    case 'grant':
      if (blobLength !== 0) throw new Error('a grant record carries no blob');
      return { type: 'grant', value: checkGrant(parsed['value']) };
    case 'revocation':
      if (blobLength !== 0) throw new Error('a revocation record carries no blob');
      return { type: 'revocation', value: checkRevocation(parsed['value']) };
    case 'watermark':
      if (blobLength !== 0) throw new Error('a watermark record carries no blob');
      return { type: 'watermark', value: parseWatermarkLine({ watermark: parsed['value'] })! };
    default:
      throw new Error('unknown record type');
  }
}

/** Rebuilds the index from the log, truncating a torn tail; see the file comment for the rules. */
async function readLog(file: FileHandle, logPath: string, warn: (msg: string) => void, index: Index): Promise<LogReadState> {
  const state: LogReadState = { size: 0, lastBatch: 0, records: 0 };
  let size: number;
  try {
    size = (await file.stat()).size;
  } catch (err) {
    throw ioError('stat', err);
  }
  const reader = new SequentialReader(file, size);

  if (size < MAGIC.length) {
    const head = size === 0 ? Buffer.alloc(0) : Buffer.from(await reader.view(0, size));
    if (!head.equals(MAGIC.subarray(0, size))) throw corrupt(logPath, 0, 'not a tkms gateway store log (bad magic)');
    // A new log, or one whose creation was interrupted: (re)write the magic.
    if (size > 0) warn(`gateway store: ${logPath} held only ${size} bytes of its header; rewrote it`);
    await writeAll(file, MAGIC, 0).catch((err: unknown) => {
      throw ioError('write', err);
    });
    await syncFile(file);
    state.size = MAGIC.length;
    return state;
  }
  if (!Buffer.from(await reader.view(0, MAGIC.length)).equals(MAGIC)) {
    throw corrupt(logPath, 0, 'not a tkms gateway store log (bad magic)');
  }

  let pos = MAGIC.length;
  while (pos < size) {
    const frame = await readFrame(reader, pos);
    if (!frame.intact) {
      await checkTornTail(reader, logPath, pos, frame.reason, state.lastBatch);
      try {
        await file.truncate(pos);
      } catch (err) {
        throw ioError('truncate', err);
      }
      await syncFile(file);
      warn(`gateway store: truncated ${size - pos} bytes of a torn write at offset ${pos} of ${logPath} (${frame.reason})`);
      break;
    }
    if (frame.batch !== state.lastBatch && frame.batch !== state.lastBatch + 1) {
      throw corrupt(logPath, pos, `batch ${frame.batch} follows batch ${state.lastBatch}`);
    }
    let record: StoreRecord;
    try {
      record = parseRecord(frame.meta, frame.blobLength);
    } catch (err) {
      const why = err instanceof Error ? err.message : 'invalid';
      throw corrupt(logPath, pos, `intact record is not a valid store record (${why})`);
    }
    index.apply(record, frame.blobOffset, frame.blobLength, frame.blobDigest, frame.end - pos, true);
    state.lastBatch = frame.batch;
    state.records++;
    pos = frame.end;
  }
  state.size = pos;
  return state;
}

/**
 * Throws unless the damage at `pos` can be a torn last batch: at most one batch from the end,
 * and no intact record after it from a batch other than the last one (`lastBatch` or the next).
 */
async function checkTornTail(reader: SequentialReader, logPath: string, pos: number, reason: string, lastBatch: number): Promise<void> {
  const remaining = reader.size - pos;
  if (remaining > MAX_BATCH_BYTES) {
    throw corrupt(logPath, pos, `${reason}, with ${remaining} bytes after it (more than one write batch: not a torn write)`);
  }
  const tail = Buffer.from(await reader.view(pos, remaining));
  let found: number | undefined;
  for (let at = 1; at + HEADER_BYTES <= tail.length; ) {
    const frame = checkFrame(tail, at, pos);
    if (!frame.intact) {
      at++;
      continue;
    }
    const sameBatch = found === undefined ? frame.batch === lastBatch || frame.batch === lastBatch + 1 : frame.batch === found;
    if (!sameBatch) {
      throw corrupt(logPath, pos, `${reason}, followed by an intact record of batch ${frame.batch} at offset ${pos + at} (not a torn write)`);
    }
    found = frame.batch;
    at = frame.end - pos;
  }
}

// ---------------------------------------------------------------------------------------------
// Files and the lock.

/** I/O failures become typed errors naming the operation and errno. */
function ioError(operation: string, err: unknown): TkmsError {
  return durableIoError('gateway store', operation, err);
}

async function writeAll(file: FileHandle, data: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < data.length) {
    const { bytesWritten } = await file.write(data, done, data.length - done, position + done);
    done += bytesWritten;
  }
}

async function syncFile(file: FileHandle): Promise<void> {
  try {
    await file.datasync();
  } catch (err) {
    throw ioError('sync', err);
  }
}

function fsyncDirectory(dir: string): Promise<void> {
  return durableFsync(dir, 'gateway store');
}

/** Creates `dir` (0700, parents too) if needed and returns its real path. */
async function ensureDirectory(dir: string): Promise<string> {
  await ensurePrivateDirectory(dir, 'store');
  return realpath(dir).catch((err: unknown) => {
    throw ioError('directory realpath', err);
  });
}

async function openLogFile(path: string): Promise<{ file: FileHandle; created: boolean }> {
  const flags = fsConstants.O_RDWR | fsConstants.O_NOFOLLOW;
  let file: FileHandle;
  let created = false;
  try {
    file = await open(path, flags);
  } catch (err) {
    if (errnoCode(err) === 'ELOOP') throw new TkmsError('internal', `gateway store log ${path} is a symlink`, { file: path });
    if (errnoCode(err) !== 'ENOENT') throw ioError('log open', err);
    try {
      file = await open(path, flags | fsConstants.O_CREAT | fsConstants.O_EXCL, FILE_MODE);
      created = true;
    } catch (createErr) {
      throw ioError('log create', createErr);
    }
  }
  try {
    if (created) await file.chmod(FILE_MODE); // the umask may have narrowed it; make it exact
    if (!(await file.stat()).isFile()) throw new TkmsError('internal', `gateway store log ${path} is not a regular file`, { file: path });
  } catch (err) {
    await file.close().catch(() => undefined);
    throw ioError('log open', err);
  }
  return { file, created };
}

function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoCode(err) === 'EPERM'; // alive, owned by another user
  }
}

/**
 * The single-writer lock: `LOCK` holds the owner's pid. It is published atomically
 * (write a temp file, fsync, link(2) to `LOCK`, which fails if the name exists), so a reader
 * never sees it half-written. A lock whose pid is not running — or is our own pid while this
 * process does not hold the store, e.g. a container restarted with the same pid — is stale
 * and taken over: renamed away (only one contender wins the rename), checked, deleted.
 */
class StoreLock {
  #released = false;

  private constructor(
    readonly dir: string,
    readonly path: string,
  ) {}

  static async acquire(dir: string, warn: (msg: string) => void): Promise<StoreLock> {
    const path = join(dir, LOCK_FILE_NAME);
    if (HELD_DIRECTORIES.has(dir)) {
      throw new TkmsError('conflict', `gateway store ${dir} is already open in this process`, { dir });
    }
    HELD_DIRECTORIES.add(dir);
    try {
      const content = `${process.pid}\n`;
      for (let attempt = 0; attempt < 5; attempt++) {
        if (await publishLock(dir, path, content)) {
          const lock = new StoreLock(dir, path);
          await removeLockTemps(dir);
          return lock;
        }
        const existing = await readLock(path);
        if (existing === undefined) continue; // released meanwhile: try again
        const pid = parsePid(existing);
        if (pid !== undefined && pid !== process.pid && isProcessAlive(pid)) {
          throw new TkmsError(
            'conflict',
            `gateway store ${dir} is locked by running process ${pid} (${path}); two gateways cannot share one store`,
            { dir, pid },
          );
        }
        // Stale: move it aside, and make sure what we moved is what we judged stale.
        const aside = join(dir, `.LOCK.stale-${randomBytes(16).toString('hex')}`);
        try {
          await rename(path, aside);
        } catch (err) {
          if (errnoCode(err) === 'ENOENT') continue;
          throw ioError('lock takeover', err);
        }
        const moved = await readLock(aside);
        if (moved !== existing) {
          // Another opener took the store in between: put its lock back and give up.
          await link(aside, path).catch(() => undefined);
          await unlink(aside).catch(() => undefined);
          throw new TkmsError('conflict', `gateway store ${dir} was locked by another process while opening`, { dir });
        }
        await unlink(aside).catch(() => undefined);
        warn(`gateway store: took over the stale lock of ${pid === undefined ? 'an unknown process' : `process ${pid}`} in ${dir}`);
      }
      throw new TkmsError('conflict', `gateway store ${dir}: could not take the lock (contended)`, { dir });
    } catch (err) {
      HELD_DIRECTORIES.delete(dir);
      throw ioError('lock', err);
    }
  }

  async release(): Promise<void> {
    if (this.#released) return;
    this.#released = true;
    try {
      if ((await readLock(this.path)) === `${process.pid}\n`) await unlink(this.path);
    } catch {
      // Already gone (directory removed): nothing to release.
    } finally {
      HELD_DIRECTORIES.delete(this.dir);
    }
  }
}

function parsePid(content: string): number | undefined {
  const match = /^([1-9][0-9]{0,9})\n?$/.exec(content);
  if (match === null) return undefined;
  const pid = Number(match[1]);
  return pid <= 0x7fffffff ? pid : undefined;
}

/** Creates LOCK with `content`; false if it already exists. */
async function publishLock(dir: string, path: string, content: string): Promise<boolean> {
  const temp = join(dir, `.LOCK.tmp-${randomBytes(16).toString('hex')}`);
  try {
    const handle = await open(temp, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW, FILE_MODE);
    try {
      await handle.chmod(FILE_MODE);
      await handle.writeFile(content, 'utf8');
      await handle.sync();
    } finally {
      await handle.close();
    }
    try {
      await link(temp, path);
    } catch (err) {
      if (errnoCode(err) === 'EEXIST') return false;
      throw err;
    }
    return true;
  } catch (err) {
    throw ioError('lock create', err);
  } finally {
    await unlink(temp).catch(() => undefined);
  }
}

async function readLock(path: string): Promise<string | undefined> {
  let handle;
  try {
    handle = await open(path, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return undefined;
    throw ioError('lock read', err);
  }
  try {
    const buffer = Buffer.alloc(64);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    return buffer.subarray(0, bytesRead).toString('utf8');
  } catch (err) {
    throw ioError('lock read', err);
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/** Removes lock temp files a crashed opener left behind (we hold the lock: nobody else uses them). */
async function removeLockTemps(dir: string): Promise<void> {
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch {
    return;
  }
  for (const name of entries) {
    if (LOCK_TEMP_NAME.test(name)) await unlink(join(dir, name)).catch(() => undefined);
  }
}
