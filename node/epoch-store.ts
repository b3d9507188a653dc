import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { TkmsError, curveBackend, decodeHex, equalBytes, isTkmsError, utf8ToBytes } from '../core/index.ts';
import { groupOf } from '../core/group.ts';
import { committeeFileDigest, type Committee, type CommitteeDecoders, type CommitteeMembership } from '../core/committee.ts';
import {
  followHandovers,
  handoverKeyJson,
  parseHandoverCertificate,
  verifyHandover,
  type HandoverCertificate,
  type KeyEpochData,
  type VerifiedHandover,
} from '../core/ceremony/handover.ts';
import type { EpochShare, NodeEpochStore, ServedEpoch, StoredApproval } from './epoch-types.ts';

export type { NodeEpochStore } from './epoch-types.ts';
import {
  MAX_HANDOVER_FILE_BYTES,
  MAX_MEMBERSHIP_FILE_BYTES,
  MAX_ORIGIN_FILE_BYTES,
  assertProposalId,
  originFileName,
  parseOrigin,
  serializeOrigin,
  handoverFileName,
  membershipFileName,
  parseHandoverFileName,
  parseMembership,
  sameBytes,
  serializeMembership,
} from './epoch-files.ts';
import { ApprovalLedger } from './epoch-approvals.ts';
import type { Keystore } from './keystore.ts';
import { MAX_KEY_FILE_BYTES, canonicalJson, epochShareFileName, isPlainObject, keyFileName, parseEpochShareFileName, parseKeyFile, type EpochShareName } from './keystore-format.ts';
import { listDirectory, publishNewFile, readBounded, removeFileDurably } from './keystore-fs.ts';

/**
 * The node's durable epoch state, kept in the keystore directory beside the DKG-time key files:
 * - `<keyId>.key.json` (the keystore's): a key at its DKG epoch (publicResult.epoch ?? 0);
 * - `<keyId>.e<epoch>.<proposal>.share.json`: a share a reshare made, sealed with the epoch in
 *   its subkey and AAD, public data {epoch, t, proposalId, key: handoverKeyJson};
 * - `handover.e<fromEpoch>.json`: a committed certificate. Storing it is the commit: what is served
 *   is always derived from the files, so a crash at any step reopens as the old epoch (no
 *   certificate) or the new one (certificate; what the old epoch left is erased on open);
 * - `approval.<seq>.json`, `vote.<proposal>.json`: the operator's approvals and the vote lock (node/epoch-approvals.ts);
 * - `<keyId>.origin.json`: the DKG public result of a key a certificate moved (public, never erased):
 *   the commit erases `<keyId>.key.json` (its share) but keeps this, and a joining member that never
 *   saw the DKG stores it from its peers (saveOrigin), so after any restart the node still publishes
 *   each key's origin beside the certificates that moved it.
 * Every file is published whole with link(2) and never rewritten; erasure is unlink + dir fsync.
 */

export interface EpochStoreOptions {
  /** Already open; the store uses its directory and master key. */
  keystore: Keystore;
  /** The node's committee file, at any epoch (a member that joined by a reshare has the arriving committee's). */
  committee: Committee;
  decoders?: CommitteeDecoders;
  /** The node's raw Ed25519 member key: finds its member id in each committee. */
  selfPublicKey: Uint8Array;
}

interface EpochFile extends EpochShareName {
  fileName: string;
}

function corrupt(message: string, cause?: unknown): TkmsError {
  return new TkmsError('keystore_corrupt', message, undefined, cause === undefined ? undefined : { cause });
}

/** A DKG-time key file's public result as epoch data; anything else is keystore_corrupt. */
export function dkgKeyData(keyId: string, publicResult: Record<string, unknown>): KeyEpochData {
  const epoch = publicResult['epoch'] ?? 0;
  const t = publicResult['t'];
  const shares = publicResult['verificationShares'];
  if (!Number.isSafeInteger(epoch) || (epoch as number) < 0 || !Number.isSafeInteger(t) || (t as number) < 1 || !isPlainObject(shares)) {
    throw corrupt(`key file for ${keyId} holds no DKG result (epoch, t, verificationShares)`);
  }
  const curve = publicResult['curve'];
  if (curve !== undefined && curve !== 'ed25519') throw corrupt(`key file for ${keyId} names an unknown curve`);
  const length = curve === 'ed25519' ? 32 : 33;
  try {
    return {
      keyId,
      epoch: epoch as number,
      t: t as number,
      groupPublicKey: decodeHex(publicResult['groupPublicKey'], { length, name: 'groupPublicKey' }),
      verificationShares: new Map(Object.entries(shares).map(([id, y]) => [Number(id), decodeHex(y, { length, name: 'verificationShare' })])),
      ...(curve === undefined ? {} : { curve }),
    };
  } catch (err) {
    throw corrupt(`key file for ${keyId} holds a malformed DKG result`, err);
  }
}

/** The public data an epoch share file is sealed with. */
export function epochSharePublicData(proposalId: string, key: KeyEpochData): Record<string, unknown> {
  return { epoch: key.epoch, t: key.t, proposalId, key: handoverKeyJson(key) as unknown as Record<string, unknown> };
}

function sameKeyData(a: KeyEpochData, b: KeyEpochData): boolean {
  return a.keyId === b.keyId && a.epoch === b.epoch && a.t === b.t && canonicalJson(handoverKeyJson(a)) === canonicalJson(handoverKeyJson(b));
}

function memberIdIn(committee: Committee, publicKey: Uint8Array): number | undefined {
  return committee.members.find((m) => equalBytes(m.publicKey, publicKey))?.id;
}

/** share·G is this member's Y_i at that epoch: a share that is not is never served. */
function shareMatches(share: bigint, data: KeyEpochData, memberId: number | undefined): boolean {
  const y = memberId === undefined ? undefined : data.verificationShares.get(memberId);
  if (y === undefined) return false;
  if (data.curve !== undefined) {
    const group = groupOf(data.curve);
    return share > 0n && share < group.order && equalBytes(group.multiplyBaseSecret(share), y);
  }
  return equalBytes(curveBackend().multiplyBaseSecret(share), y);
}

function certificateBytes(cert: HandoverCertificate): Uint8Array {
  return utf8ToBytes(`${JSON.stringify(cert)}\n`);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

class FileEpochStore implements NodeEpochStore {
  readonly #keystore: Keystore;
  readonly #dir: string;
  readonly #base: Committee;
  readonly #decoders: CommitteeDecoders | undefined;
  readonly #self: Uint8Array;
  #committee: Committee;
  #handovers: HandoverCertificate[] = [];
  /** True when the served epoch was reached by a stored certificate (its shares come from epoch files). */
  #reachedByCertificate = false;
  #keys = new Map<string, KeyEpochData>();
  #droppable: (keyId: string) => boolean = () => false;
  /** Every committee the stored chain names, by epoch (the file's and each certificate's both ends). */
  readonly #committees = new Map<number, CommitteeMembership>();
  /** When the served epoch was committed (the certificate file's mtime after a restart), or undefined at the file's epoch. */
  #committedAt: number | undefined;
  #shares = new Map<string, EpochShare>();
  /** DKG public results of the keys the last certificate moved here, by key id (those held). */
  #origins = new Map<string, Record<string, unknown>>();
  readonly #ledger: ApprovalLedger;
  /** One mutation at a time: commits, saves and erasures never interleave. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(options: EpochStoreOptions) {
    this.#keystore = options.keystore;
    this.#dir = options.keystore.dir;
    this.#base = options.committee;
    this.#committee = options.committee;
    this.#committees.set(options.committee.epoch, options.committee);
    this.#decoders = options.decoders;
    this.#self = Uint8Array.from(options.selfPublicKey);
    this.#ledger = new ApprovalLedger(this.#dir, () => this.#committee.epoch, (fn) => this.#serial(fn), options.decoders);
  }

  #serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  served(): ServedEpoch {
    return { committee: this.#committee, handovers: [...this.#handovers] };
  }

  shares(): EpochShare[] {
    return [...this.#shares.values()].sort((a, b) => (a.keyId < b.keyId ? -1 : 1));
  }

  epochKeys(): KeyEpochData[] {
    return [...this.#keys.values()].sort((a, b) => (a.keyId < b.keyId ? -1 : 1));
  }

  /** One key's public data at the served epoch. */
  keyData(keyId: string): KeyEpochData | undefined {
    return this.#keys.get(keyId);
  }

  memberId(): number | undefined {
    return memberIdIn(this.#committee, this.#self);
  }

  committeeAt(epoch: number): CommitteeMembership | undefined {
    return this.#committees.get(epoch);
  }

  committedAt(): number | undefined {
    return this.#committedAt;
  }

  // -------------------------------------------------------------------------
  // Opening: everything served is derived from the files.

  async load(): Promise<void> {
    const entries = await listDirectory(this.#dir);
    const certs = await this.#readCertificates(entries);
    const dkgKeys = await this.#readDkgKeys();
    await this.#follow(certs, dkgKeys);
    await this.#loadServedShares(entries, dkgKeys);
    const last = this.#handovers.at(-1);
    if (last !== undefined) this.#committedAt = await fileTime(join(this.#dir, handoverFileName(last.fromEpoch)));
    const firstCovered = this.#handovers[0]?.fromEpoch ?? this.#committee.epoch;
    const moved = [...dkgKeys.values()].filter(({ data }) => data.epoch < this.#committee.epoch && data.epoch >= firstCovered).map(({ data }) => data.keyId);
    await this.#eraseLeftovers(await listDirectory(this.#dir), moved);
    await this.#loadOrigins();
    await this.#ledger.load(entries);
  }

  async #readCertificates(entries: readonly string[]): Promise<HandoverCertificate[]> {
    const certs: HandoverCertificate[] = [];
    for (const name of entries) {
      const fromEpoch = parseHandoverFileName(name);
      if (fromEpoch === undefined) continue;
      const bytes = await readBounded(join(this.#dir, name), MAX_HANDOVER_FILE_BYTES, () => corrupt(`${name} is not a regular file of at most ${MAX_HANDOVER_FILE_BYTES} bytes`));
      if (bytes === undefined) continue;
      let cert: HandoverCertificate;
      try {
        cert = parseHandoverCertificate(JSON.parse(utf8.decode(bytes)));
      } catch (err) {
        throw corrupt(`${name} is not a handover certificate`, err);
      }
      if (cert.fromEpoch !== fromEpoch) throw corrupt(`${name} holds the certificate leaving epoch ${cert.fromEpoch}`);
      certs.push(cert);
    }
    return certs.sort((a, b) => a.fromEpoch - b.fromEpoch);
  }

  async #readDkgKeys(): Promise<Map<string, { data: KeyEpochData; share: bigint }>> {
    const keys = new Map<string, { data: KeyEpochData; share: bigint }>();
    for (const keyId of this.#keystore.list()) {
      let stored;
      try {
        stored = await this.#keystore.load(keyId);
      } catch (err) {
        if (isTkmsError(err, 'unknown_key')) continue; // erased by a commit since the keystore listed it
        throw err;
      }
      keys.set(keyId, { data: dkgKeyData(keyId, stored.publicResult), share: stored.share });
    }
    return keys;
  }

  /** Verifies the stored chain from the node's committee file; a certificate that does not verify was tampered with. */
  async #follow(certs: HandoverCertificate[], dkgKeys: Map<string, { data: KeyEpochData }>): Promise<void> {
    const base = this.#base;
    // A member that joined by a reshare holds the certificate that brought it in: its `to` must be this committee file.
    const join = certs.find((c) => c.fromEpoch === base.epoch - 1);
    let startKeys = new Map<string, KeyEpochData>();
    if (join !== undefined) {
      const from = await this.#readMembership(join.fromEpoch);
      let verified: VerifiedHandover;
      try {
        verified = verifyHandover(join, from, undefined, this.#decoders);
      } catch (err) {
        throw corrupt(`${handoverFileName(join.fromEpoch)} does not verify`, err);
      }
      if (!equalBytes(committeeFileDigest(verified.to), committeeFileDigest(base))) throw corrupt(`${handoverFileName(join.fromEpoch)} arrives at another committee than this node's committee file`);
      this.#handovers.push(join);
      this.#committees.set(verified.from.epoch, verified.from);
      this.#reachedByCertificate = true;
      startKeys = new Map(verified.keys.map((k) => [k.keyId, k]));
    } else {
      for (const { data } of dkgKeys.values()) if (data.epoch === base.epoch) startKeys.set(data.keyId, data);
    }
    const later = certs.filter((c) => c.fromEpoch >= base.epoch);
    let followed;
    try {
      followed = followHandovers(base, later, startKeys.size > 0 ? startKeys : undefined, this.#decoders);
    } catch (err) {
      throw corrupt('the stored handover certificates do not verify from this node\'s committee file', err);
    }
    // Keys a DKG made at a later epoch must be moved by every certificate after it.
    for (const { data } of dkgKeys.values()) {
      for (const step of followed.chain) {
        if (step.from.epoch < data.epoch) continue;
        const moved = step.keys.find((k) => k.keyId === data.keyId);
        if (moved === undefined || !equalBytes(moved.groupPublicKey, data.groupPublicKey)) {
          throw corrupt(`${handoverFileName(step.from.epoch)} does not move key ${data.keyId}`);
        }
      }
    }
    if (followed.chain.length > 0) {
      this.#handovers.push(...followed.chain.map((v) => v.certificate));
      for (const step of followed.chain) this.#committees.set(step.to.epoch, step.to);
      this.#committee = followed.chain.at(-1)!.to;
      this.#reachedByCertificate = true;
      this.#keys = new Map(followed.keys);
    } else {
      this.#keys = startKeys;
    }
    if (this.#reachedByCertificate) {
      // Keys a DKG made after the last commit, at the served epoch.
      for (const { data } of dkgKeys.values()) {
        if (data.epoch !== this.#committee.epoch) continue;
        if (this.#keys.has(data.keyId)) throw corrupt(`key ${data.keyId} was made by a DKG at epoch ${data.epoch} and also moved there by a reshare`);
        this.#keys.set(data.keyId, data);
      }
    }
  }

  async #readMembership(epoch: number): Promise<CommitteeMembership> {
    const name = membershipFileName(epoch);
    const bytes = await readBounded(join(this.#dir, name), MAX_MEMBERSHIP_FILE_BYTES, () => corrupt(`${name} is not a regular file of at most ${MAX_MEMBERSHIP_FILE_BYTES} bytes`));
    if (bytes === undefined) throw corrupt(`${name} is missing: the certificate that brought this member in cannot be verified`);
    return parseMembership(bytes, epoch);
  }

  async #loadServedShares(entries: readonly string[], dkgKeys: Map<string, { data: KeyEpochData; share: bigint }>): Promise<void> {
    const epoch = this.#committee.epoch;
    const self = this.memberId();
    this.#shares = new Map();
    for (const { data, share } of dkgKeys.values()) {
      if (data.epoch === epoch && this.#keys.get(data.keyId) === data) this.#shares.set(data.keyId, { keyId: data.keyId, share, data });
    }
    if (!this.#reachedByCertificate) return;
    for (const file of epochFiles(entries)) {
      if (file.epoch !== epoch || this.#shares.has(file.keyId)) continue;
      const data = this.#keys.get(file.keyId);
      if (data === undefined) continue;
      const opened = await this.#openEpochFile(file);
      if (opened !== undefined && sameKeyData(opened.data, data) && shareMatches(opened.share, data, self)) {
        this.#shares.set(file.keyId, { keyId: file.keyId, share: opened.share, data });
      }
    }
  }

  /** Erases what the served epoch left behind: shares of earlier epochs the chain moved, and other proposals' shares at this epoch. */
  async #eraseLeftovers(entries: readonly string[], movedKeyIds: readonly string[]): Promise<void> {
    if (!this.#reachedByCertificate) return;
    const epoch = this.#committee.epoch;
    const firstCovered = this.#handovers[0]!.fromEpoch;
    // A member that left serves nothing: it keeps no share and no origin.
    const serving = this.memberId() !== undefined;
    for (const keyId of movedKeyIds) {
      if (serving) await this.#keepOrigin(keyId);
      await this.#erase(keyFileName(keyId));
    }
    for (const file of epochFiles(entries)) {
      const served = this.#shares.get(file.keyId);
      const left = file.epoch < epoch && file.epoch >= firstCovered;
      const rival = file.epoch === epoch && !(served !== undefined && served.data.epoch === epoch && (await this.#isServedFile(file, served)));
      if (left || rival) await this.#erase(file.fileName);
    }
  }

  async #isServedFile(file: EpochFile, served: EpochShare): Promise<boolean> {
    const opened = await this.#openEpochFile(file).catch(() => undefined);
    return opened !== undefined && opened.share === served.share && sameKeyData(opened.data, served.data);
  }

  /** Publishes a moved key's DKG public result from its key file (no-op without one), before the file is erased. */
  async #keepOrigin(keyId: string): Promise<void> {
    if ((await fileTime(join(this.#dir, originFileName(keyId)))) !== undefined) return;
    const bytes = await readBounded(join(this.#dir, keyFileName(keyId)), MAX_KEY_FILE_BYTES, () => corrupt(`key file for ${keyId} is not a regular file of at most ${MAX_KEY_FILE_BYTES} bytes`));
    if (bytes === undefined) return;
    // An origin already there was written by an earlier pass of this same erasure (or saveOrigin): kept.
    await publishNewFile(this.#dir, originFileName(keyId), serializeOrigin(parseKeyFile(bytes, keyId).publicResult));
  }

  /** Key ids the last certificate moved to the served epoch: their origin is a DKG result of an earlier epoch. */
  #movedHere(): KeyEpochData[] {
    const last = this.#handovers.at(-1);
    if (last === undefined || last.fromEpoch + 1 !== this.#committee.epoch) return [];
    return last.keys.map((k) => this.#keys.get(k.keyId)).filter((k): k is KeyEpochData => k !== undefined);
  }

  /** Checks an origin against the key the chain certified: same key id, same group key, made before `epoch`. */
  #checkOrigin(data: KeyEpochData, publicResult: Record<string, unknown>, epoch = this.#committee.epoch): void {
    const made = dkgKeyData(data.keyId, publicResult);
    if (made.epoch >= epoch || !equalBytes(made.groupPublicKey, data.groupPublicKey)) {
      throw new TkmsError('bad_request', `the DKG result given for key ${data.keyId} is not the origin of the key the handover certificates moved here`);
    }
  }

  async #loadOrigins(): Promise<void> {
    this.#origins = await this.#readOrigins(this.#movedHere(), this.#committee.epoch);
  }

  /** The origin files of keys moved to `epoch`; one that does not match its key is keystore_corrupt. */
  async #readOrigins(keys: readonly KeyEpochData[], epoch: number): Promise<Map<string, Record<string, unknown>>> {
    const out = new Map<string, Record<string, unknown>>();
    for (const data of keys) {
      const name = originFileName(data.keyId);
      const bytes = await readBounded(join(this.#dir, name), MAX_ORIGIN_FILE_BYTES, () => corrupt(`${name} is not a regular file of at most ${MAX_ORIGIN_FILE_BYTES} bytes`));
      if (bytes === undefined) continue;
      const origin = parseOrigin(bytes, data.keyId);
      try {
        this.#checkOrigin(data, origin, epoch);
      } catch (err) {
        throw corrupt(`${name} is not the origin of the key the stored certificates moved here`, err);
      }
      out.set(data.keyId, origin);
    }
    return out;
  }

  origins(): Record<string, unknown>[] {
    return [...this.#origins.entries()].sort(([a], [b]) => (a < b ? -1 : 1)).map(([, origin]) => origin);
  }

  missingOrigins(): string[] {
    return this.#movedHere()
      .map((k) => k.keyId)
      .filter((keyId) => !this.#origins.has(keyId))
      .sort();
  }

  saveOrigin(publicResult: Record<string, unknown>): Promise<boolean> {
    return this.#serial(async () => {
      const keyId = publicResult['keyId'];
      const data = this.#movedHere().find((k) => k.keyId === keyId);
      if (typeof keyId !== 'string' || data === undefined) throw new TkmsError('bad_request', 'the DKG result names no key a certificate moved to the served epoch');
      if (this.#origins.has(keyId)) return false;
      this.#checkOrigin(data, publicResult);
      const bytes = serializeOrigin(publicResult);
      if (bytes.length > MAX_ORIGIN_FILE_BYTES) throw new TkmsError('payload_too_large', `the DKG result of ${keyId} exceeds ${MAX_ORIGIN_FILE_BYTES} bytes`);
      // One left by an earlier run that failed the check on open would have stopped the node: what is there is this key's.
      await publishNewFile(this.#dir, originFileName(keyId), bytes);
      await this.#loadOrigins();
      return this.#origins.has(keyId);
    });
  }

  async #erase(name: string): Promise<void> {
    await removeFileDurably(this.#dir, name);
  }

  /** Opens an epoch share file: name, content and seal must agree, else keystore_corrupt. */
  async #openEpochFile(file: EpochFile): Promise<{ share: bigint; data: KeyEpochData; proposalId: string } | undefined> {
    const bytes = await readBounded(join(this.#dir, file.fileName), MAX_KEY_FILE_BYTES, () => corrupt(`${file.fileName} is not a regular file of at most ${MAX_KEY_FILE_BYTES} bytes`));
    if (bytes === undefined) return undefined;
    const parsed = parseKeyFile(bytes, file.keyId);
    const share = this.#keystore.openEpochShare(parsed, file.epoch);
    const pub = parsed.publicResult;
    if (pub['epoch'] !== file.epoch || pub['proposalId'] !== file.proposalId || !isPlainObject(pub['key']) || !Number.isSafeInteger(pub['t'])) {
      throw corrupt(`${file.fileName} does not hold the share its name says`);
    }
    const key = pub['key'];
    const vs = key['verificationShares'];
    if (key['keyId'] !== file.keyId || !isPlainObject(vs)) throw corrupt(`${file.fileName} does not hold the share its name says`);
    const curve = key['curve'];
    if (curve !== undefined && curve !== 'ed25519') throw corrupt(`${file.fileName} names an unknown curve`);
    const length = curve === 'ed25519' ? 32 : 33;
    try {
      const data: KeyEpochData = {
        keyId: file.keyId,
        epoch: file.epoch,
        t: pub['t'] as number,
        groupPublicKey: decodeHex(key['groupPublicKey'], { length }),
        verificationShares: new Map(Object.entries(vs).map(([id, y]) => [Number(id), decodeHex(y, { length })])),
        ...(curve === undefined ? {} : { curve }),
      };
      return { share, data, proposalId: file.proposalId };
    } catch (err) {
      throw corrupt(`${file.fileName} holds malformed public data`, err);
    }
  }

  // -------------------------------------------------------------------------
  // Pending shares and the commit

  savePending(proposalId: string, shares: ReadonlyMap<string, bigint>, keys: readonly KeyEpochData[]): Promise<void> {
    assertProposalId(proposalId);
    return this.#serial(async () => {
      const served = this.#committee.epoch;
      for (const [keyId, share] of shares) {
        const key = keys.find((k) => k.keyId === keyId);
        if (key === undefined) throw new TkmsError('bad_request', `no public data given for key ${keyId}`);
        // A member that joined holds its committee file at the arriving epoch before the certificate that brings it in.
        const joining = !this.#reachedByCertificate && key.epoch === served && this.#shares.size === 0;
        if (key.epoch <= served && !joining) throw new TkmsError('stale_epoch', `pending shares for epoch ${key.epoch}; this node serves epoch ${served}`);
        const file: EpochShareName = { keyId, epoch: key.epoch, proposalId };
        const fileName = epochShareFileName(file);
        const publicData = epochSharePublicData(proposalId, key);
        const result = await publishNewFile(this.#dir, fileName, this.#keystore.sealEpochShare(keyId, key.epoch, share, publicData));
        if (result === 'exists') {
          const existing = await this.#openEpochFile({ ...file, fileName });
          if (existing === undefined || existing.share !== share || !sameKeyData(existing.data, key)) {
            throw new TkmsError('conflict', `other pending shares of key ${keyId} are stored for this proposal`, { keyId });
          }
        }
      }
    });
  }

  async loadPending(proposalId: string): Promise<Map<string, bigint> | undefined> {
    assertProposalId(proposalId);
    const out = new Map<string, bigint>();
    for (const file of epochFiles(await listDirectory(this.#dir))) {
      if (file.proposalId !== proposalId) continue;
      const opened = await this.#openEpochFile(file);
      if (opened !== undefined) out.set(file.keyId, opened.share);
    }
    return out.size > 0 ? out : undefined;
  }

  commit(handover: VerifiedHandover, proposalId: string): Promise<void> {
    assertProposalId(proposalId);
    return this.#serial(() => this.#commit(handover, proposalId));
  }

  async #commit(handover: VerifiedHandover, proposalId: string): Promise<void> {
    const cert = handover.certificate;
    const stored = this.#handovers.find((c) => c.fromEpoch === cert.fromEpoch);
    if (stored !== undefined) {
      if (canonicalJson(stored) !== canonicalJson(cert) && !sameHandover(stored, cert)) {
        throw new TkmsError('stale_epoch', `another handover certificate leaving epoch ${cert.fromEpoch} is already committed`);
      }
      if (this.#committee.epoch === cert.fromEpoch + 1) {
        await this.#eraseLeftovers(await listDirectory(this.#dir), movedKeyIds(stored));
        await this.#loadOrigins();
      }
      return;
    }
    const served = this.#committee;
    let verified: VerifiedHandover;
    const joining = !this.#reachedByCertificate && served.epoch === cert.fromEpoch + 1 && equalBytes(committeeFileDigest(handover.to), committeeFileDigest(served));
    if (joining) {
      verified = verifyHandover(cert, handover.from, undefined, this.#decoders);
    } else if (served.epoch === cert.fromEpoch) {
      const kept = new Map([...this.#keys].filter(([keyId]) => !this.#droppable(keyId)));
      verified = verifyHandover(cert, served, kept.size > 0 ? kept : undefined, this.#decoders);
    } else {
      throw new TkmsError('stale_epoch', `the handover leaves epoch ${cert.fromEpoch}; this node serves epoch ${served.epoch}`);
    }

    // The arriving shares, checked before the commit point: only a share on the certified polynomial is served.
    const self = memberIdIn(verified.to, this.#self);
    const next = new Map<string, EpochShare>();
    if (self !== undefined) {
      for (const data of verified.keys) {
        const fileName = epochShareFileName({ keyId: data.keyId, epoch: data.epoch, proposalId });
        const opened = await this.#openEpochFile({ keyId: data.keyId, epoch: data.epoch, proposalId, fileName });
        if (opened !== undefined && sameKeyData(opened.data, data) && shareMatches(opened.share, data, self)) {
          next.set(data.keyId, { keyId: data.keyId, share: opened.share, data });
        }
      }
    }

    // Origins before the commit point too (public, harmless if the commit never comes), so nothing but
    // the erasure runs between serving the new epoch here and the partial service swapping to it.
    if (self !== undefined) for (const data of verified.keys) await this.#keepOrigin(data.keyId);
    const origins = self === undefined ? new Map<string, Record<string, unknown>>() : await this.#readOrigins(verified.keys, verified.to.epoch);

    if (joining) {
      // Written before the certificate: on open the joining certificate is verified against it.
      const record = serializeMembership(verified.from);
      const name = membershipFileName(verified.from.epoch);
      if ((await publishNewFile(this.#dir, name, record)) === 'exists') {
        const onDisk = await this.#readMembership(verified.from.epoch);
        if (!sameBytes(serializeMembership(onDisk), record)) throw new TkmsError('conflict', `${name} already names another committee`);
      }
    }
    const name = handoverFileName(cert.fromEpoch);
    const bytes = certificateBytes(verified.certificate);
    if ((await publishNewFile(this.#dir, name, bytes)) === 'exists') {
      const onDisk = await readBounded(join(this.#dir, name), MAX_HANDOVER_FILE_BYTES, () => corrupt(`${name} is not a regular file`));
      if (onDisk === undefined || !sameBytes(onDisk, bytes)) throw corrupt(`${name} already holds another certificate`);
    }

    // Committed: serve the new epoch, then erase what the old one left.
    this.#handovers.push(verified.certificate);
    this.#committees.set(verified.from.epoch, verified.from);
    this.#committees.set(verified.to.epoch, verified.to);
    this.#committedAt = Date.now();
    this.#committee = verified.to;
    this.#reachedByCertificate = true;
    this.#keys = new Map(verified.keys.map((k) => [k.keyId, k]));
    this.#shares = next;
    this.#origins = origins;
    await this.#eraseLeftovers(await listDirectory(this.#dir), movedKeyIds(verified.certificate));
  }

  setDroppable(droppable: (keyId: string) => boolean): void {
    this.#droppable = droppable;
  }

  forgetShare(keyId: string): Promise<void> {
    return this.#serial(async () => {
      this.#shares.delete(keyId);
    });
  }

  async noteDkgKey(keyId: string): Promise<EpochShare> {
    return this.#serial(async () => {
      const stored = await this.#keystore.load(keyId);
      const data = dkgKeyData(keyId, stored.publicResult);
      if (data.epoch !== this.#committee.epoch) throw new TkmsError('stale_epoch', `key ${keyId} was made at epoch ${data.epoch}; this node serves epoch ${this.#committee.epoch}`);
      const known = this.#keys.get(keyId);
      if (known !== undefined && !sameKeyData(known, data)) throw new TkmsError('conflict', `key ${keyId} is already served at epoch ${data.epoch}`, { keyId });
      const share: EpochShare = { keyId, share: stored.share, data };
      this.#keys.set(keyId, data);
      this.#shares.set(keyId, share);
      return share;
    });
  }

  // -------------------------------------------------------------------------
  // Approvals and the vote lock (node/epoch-approvals.ts)

  approvals(): StoredApproval[] {
    return this.#ledger.approvals();
  }

  saveApproval(approval: StoredApproval): Promise<void> {
    return this.#ledger.saveApproval(approval);
  }

  recordVote(proposalId: string, vote: Uint8Array): Promise<void> {
    return this.#ledger.recordVote(proposalId, vote);
  }

  priorVote(proposalId: string): Uint8Array | undefined {
    return this.#ledger.priorVote(proposalId);
  }
}

/** The keys a certificate moved: their DKG-time files hold shares of the epoch it left (a no-op for keys that had none). */
function movedKeyIds(cert: HandoverCertificate): string[] {
  return cert.keys.map((k) => k.keyId);
}

function sameHandover(a: HandoverCertificate, b: HandoverCertificate): boolean {
  // The same handover may carry a different set of (valid) signatures; what was signed must match.
  return canonicalJson({ ...a, signatures: null }) === canonicalJson({ ...b, signatures: null });
}

async function fileTime(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).mtimeMs;
  } catch {
    return undefined;
  }
}

function epochFiles(entries: readonly string[]): EpochFile[] {
  const out: EpochFile[] = [];
  for (const fileName of entries) {
    const name = parseEpochShareFileName(fileName);
    if (name !== undefined) out.push({ ...name, fileName });
  }
  return out;
}

/** Opens the epoch state in an open keystore's directory (see the module comment). */
export async function openEpochStore(options: EpochStoreOptions): Promise<NodeEpochStore> {
  const store = new FileEpochStore(options);
  try {
    await store.load();
  } catch (err) {
    if (isTkmsError(err)) throw err;
    throw new TkmsError('internal', 'epoch store open failed');
  }
  return store;
}
