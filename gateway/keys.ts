import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, encodeHex, isTkmsError, TkmsError, utf8ToBytes, type Point } from '../core/index.ts';
import { groupOf, type Group, type GroupPoint } from '../core/group.ts';
import { dkgPublicResultDigest, parseDkgPublicResult, verifyDkgPublicResult, type DkgPublicResult } from '../core/dkg/index.ts';
import { encodeEd25519Spki, encodePublicKeySpki } from '../core/spki.ts';
import { expectedCommittee, libp2pCommitteeDecoders, type Committee } from '../net/committee.ts';
import type { Logger } from 'pino';
import type { Counter, Gauge } from 'prom-client';
import { MAX_HANDOVERS_PER_REPLY } from '../core/node-messages.ts';
import { CommitteeEpochs } from './epochs.ts';
import type { NodePool } from './node-pool.ts';

/**
 * The keys the committee holds, as the gateway publishes them. A member's answer counts only
 * when its result verifies on its own (verification shares on one degree-(t−1) polynomial
 * through the group key, a vote quorum of member signatures over the digest of the whole result), and a key
 * is published only once at least t members answered the same result (same digest: the
 * signature sets may differ, each member kept the confirmations it received).
 *
 * Two valid results of the same DKG session with different digests are a proven split (members
 * stored different keys under one session): the key is withdrawn for good in this process and
 * never served. A valid result of another session for a key already published is not: members
 * that missed a DKG can be led through a second one by a malicious member, and that must not
 * disable a key the committee holds; it is refused (logged and counted, reason "other_session").
 * Before publication, a key id for which two sessions each reached t members is not published.
 * Every disagreement is logged and counted for operators to alert on.
 *
 * Keys are served at the committee's current epoch (gateway/epochs.ts): a result is checked against
 * the committee of the epoch it was made at, and a key made before the current epoch is served only
 * when every certificate since moved it with its group key, with the Y_i of the last one.
 */
export interface PublishedKey {
  result: DkgPublicResult;
  /** The key's group (its result's curve): secp256k1 for decryption and BIP340 keys, ed25519 for Ed25519 keys. */
  group: Group;
  groupPublicKey: GroupPoint;
  /** The epoch served, and the key's threshold and Y_i at it. */
  epoch: number;
  t: number;
  verificationShares: Map<number, GroupPoint>;
}

/** A decryption key's public key as a secp256k1 point (key_usage_mismatch for a key of another group). */
export function secp256k1PublicKey(key: PublishedKey): Point {
  if (key.group.name !== 'secp256k1') throw new TkmsError('key_usage_mismatch', `key ${key.result.keyId} is an ${key.group.name} key: it does not encrypt`);
  return key.groupPublicKey as Point;
}

/** What the directory needs of the node pool: the members' reports, and re-targeting when the committee moves. */
export type KeySource = Pick<NodePool, 'committee' | 'fetchKeys' | 'retarget'>;

const REFRESH_MIN_INTERVAL_MS = 1_000;
/** Keys requests per refresh for each direction of the chain (forward from the epoch reached, backward before the file): at most this many pages of certificates. */
const MAX_HANDOVER_ROUNDS = 64;

/**
 * reason: "invalid" (a member's result does not verify), "conflict" (different valid results of one
 * session, or two sessions each held by t members), "other_session" (a valid result of another
 * session for a published key; ignored).
 */
export type KeyDisagreementCounter = Counter<'reason'>;

interface StoredKey {
  result: DkgPublicResult;
  group: Group;
  groupPublicKey: GroupPoint;
  /** The key as last served, and the epoch it was served at: decoding its Y_i again each request would cost more than the request. */
  served?: { epoch: number; key: PublishedKey };
}

interface Answer {
  memberId: number;
  result: DkgPublicResult;
  digest: string;
}

export class KeyDirectory {
  private readonly keys = new Map<string, StoredKey>();
  /** Key ids members disagree on: never served by this gateway process. */
  private readonly conflicted = new Set<string>();
  private lastRefresh = 0;
  /** When the latest read of the members began (refreshEpoch asks for one begun after a member's answer). */
  private lastLoadStart = 0;
  private refreshing: Promise<void> | undefined;
  /** The epochs followed from the gateway's committee file. */
  readonly epochs: CommitteeEpochs;

  constructor(
    committee: Committee,
    private readonly pool: KeySource,
    private readonly log: Logger,
    private readonly disagreements?: KeyDisagreementCounter,
    private readonly epochGauge?: Gauge,
  ) {
    this.epochs = new CommitteeEpochs(committee, log, libp2pCommitteeDecoders);
    this.epochGauge?.set(committee.epoch);
  }

  private get committee(): Committee {
    return this.epochs.current;
  }

  /** What tells members' copies of a result apart: its digest under its committee's member keys, when the gateway knows that committee. */
  private resultDigest(result: DkgPublicResult): string {
    const made = result.epoch ?? 0;
    const at = this.epochs.committeeAt(made) ?? this.epochs.committeeBefore(made);
    if (at !== undefined) return encodeHex(dkgPublicResultDigest(result, expectedCommittee(at).memberKeys));
    // Signers unknown (made before the file, committee not reached back): the result without its signatures.
    const { signatures: _signatures, ...unsigned } = result;
    return encodeHex(sha256(utf8ToBytes(JSON.stringify(unsigned))));
  }

  /**
   * A key made before the gateway's file: its DKG result's signers are not known here, so the key
   * is taken from the certificate arriving at the file's committee (a vote quorum of it signed it,
   * CommitteeEpochs.arrivedKey), which must name the result's group key.
   */
  private madeBeforeFile(result: DkgPublicResult): boolean {
    const arrived = this.epochs.arrivedKey(result.keyId);
    return arrived !== undefined && encodeHex(arrived.groupPublicKey) === result.groupPublicKey;
  }

  /** The key at the current epoch, or undefined when the chain did not carry it there. */
  private atCurrentEpoch(stored: StoredKey): PublishedKey | undefined {
    const epoch = this.epochs.epoch;
    if (stored.served?.epoch === epoch) return stored.served.key;
    const key = this.decodeAtEpoch(stored, epoch);
    // Not a miss: the certificates that carry a key to this epoch may arrive later.
    if (key !== undefined) stored.served = { epoch, key };
    return key;
  }

  private decodeAtEpoch(stored: StoredKey, epoch: number): PublishedKey | undefined {
    const { result, group, groupPublicKey } = stored;
    const base = { result, group, groupPublicKey };
    const decode = (y: Uint8Array | string, id: number) => group.decodePoint(y, `Y_${id}`);
    let made = stored.result.epoch ?? 0;
    if (made < this.epochs.file.epoch) {
      // Made before the file: served from the certificate arriving at the file, then as a key of the file's epoch.
      const arrived = this.epochs.arrivedKey(stored.result.keyId);
      if (arrived === undefined || encodeHex(arrived.groupPublicKey) !== stored.result.groupPublicKey) return undefined;
      if (epoch === this.epochs.file.epoch) {
        const verificationShares = new Map([...arrived.verificationShares].map(([id, y]) => [id, decode(y, id)]));
        return { ...base, epoch, t: arrived.t, verificationShares };
      }
      made = this.epochs.file.epoch;
    } else if (made === epoch) {
      const verificationShares = new Map(Object.entries(stored.result.verificationShares).map(([id, y]) => [Number(id), decode(y, Number(id))]));
      return { ...base, epoch, t: stored.result.t, verificationShares };
    }
    const data = this.epochs.keyData(stored.result.keyId);
    if (made > epoch || data === undefined || !this.epochs.carried(stored.result.keyId, made, stored.result.groupPublicKey)) return undefined;
    const verificationShares = new Map([...data.verificationShares].map(([id, y]) => [id, decode(y, id)]));
    return { ...base, epoch, t: data.t, verificationShares };
  }

  /** The committee that made a key (its result's epoch): its members' keys sign the result. */
  madeBy(key: PublishedKey): Committee {
    const made = key.result.epoch ?? 0;
    // Before the file: the committee a verified certificate arrived at, else the file's (clients check such keys by the certificate, not the result's signers).
    return this.epochs.committeeAt(made) ?? this.epochs.committeeBefore(made) ?? this.epochs.file;
  }

  list(): PublishedKey[] {
    return [...this.keys.values()]
      .map((k) => this.atCurrentEpoch(k))
      .filter((k): k is PublishedKey => k !== undefined)
      .sort((a, b) => (a.result.keyId < b.result.keyId ? -1 : 1));
  }

  /** The key, refreshing from the nodes once if it is not known yet. */
  async get(keyId: string): Promise<PublishedKey> {
    let key = this.keys.get(keyId);
    if (key === undefined) {
      await this.refresh();
      key = this.keys.get(keyId);
    }
    if (this.conflicted.has(keyId)) {
      // Answered like an unknown key (every route already documents unknown_key); the message says why.
      throw new TkmsError('unknown_key', `members of committee ${this.committee.committeeId} hold different DKG results for key ${keyId}; it is not served`);
    }
    if (key === undefined) throw new TkmsError('unknown_key', `no key ${keyId} in committee ${this.committee.committeeId}`);
    const served = this.atCurrentEpoch(key);
    if (served === undefined) throw new TkmsError('unknown_key', `key ${keyId} was not handed over to epoch ${this.epochs.epoch} of committee ${this.committee.committeeId}`);
    return served;
  }

  /**
   * Re-reads the members' epochs and keys when a member said at `seenAt` (ms) that it moved on
   * (stale_epoch, or a partial of a later epoch). Only a read begun at or after `seenAt` can hold
   * its handover: a read already under way (the periodic one, another request's) or finished less
   * than a second ago may predate the commit, and answering from it left the gateway at the old
   * epoch while its members served the new one. So this waits for such a read, then out the
   * interval, and reads again: still at most one read a second, shared by every caller, so a member
   * cannot make the gateway loop.
   */
  async refreshEpoch(seenAt: number): Promise<void> {
    const epoch = this.epochs.epoch;
    for (;;) {
      if (this.epochs.epoch !== epoch || this.lastLoadStart >= seenAt) {
        // A read begun after the member's answer: its result (or the one under way) is current enough.
        if (this.refreshing !== undefined) await this.refreshing;
        return;
      }
      if (this.refreshing !== undefined) {
        // Another caller's read, begun too early: its failure is that caller's; this one reads again.
        await this.refreshing.catch(() => undefined);
        continue;
      }
      const wait = this.lastRefresh + REFRESH_MIN_INTERVAL_MS - Date.now();
      if (wait > 0) {
        await new Promise((r) => setTimeout(r, wait));
        continue;
      }
      await this.refresh();
      return;
    }
  }

  refresh(force = false): Promise<void> {
    if (!force && Date.now() - this.lastRefresh < REFRESH_MIN_INTERVAL_MS) return this.refreshing ?? Promise.resolve();
    if (this.refreshing === undefined) this.lastLoadStart = Date.now();
    this.refreshing ??= this.load().finally(() => {
      this.lastRefresh = Date.now();
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private async load(): Promise<void> {
    const byKey = new Map<string, Answer[]>();
    const asked = this.pool.committee;
    const start = this.epochs.epoch;
    const loadStarted = Date.now();
    // Members send a page of certificates: ask again from the epoch reached while a page moved it.
    let replies = await this.pool.fetchKeys(3_000, start);
    let moved = this.epochs.consider(replies);
    for (let round = 1; moved && round < MAX_HANDOVER_ROUNDS; round++) {
      const more = await this.pool.fetchKeys(3_000, this.epochs.epoch);
      if (more.length > 0) replies = more;
      moved = this.epochs.consider(more);
    }
    // Then the certificates before the file (for clients pinned earlier), walked back a page at a time.
    for (let round = 0, step = MAX_HANDOVERS_PER_REPLY; this.epochs.walkingBack && round < MAX_HANDOVER_ROUNDS; round++) {
      const earliest = this.epochs.earliest;
      this.epochs.consider(await this.pool.fetchKeys(3_000, Math.max(0, earliest - step)));
      if (this.epochs.earliest === earliest) {
        // A page cut by its byte bound may stop short of the certificate needed next: ask for that one first, once.
        if (step === 1) break;
        step = 1;
      }
    }
    this.log.debug({ from: start, epoch: this.epochs.epoch, answered: replies.length, ms: Date.now() - loadStarted }, 'keys and epochs read from the members');
    if (this.epochs.epoch !== start) {
      this.epochGauge?.set(this.epochs.epoch);
      await this.pool.retarget(this.epochs.current);
    }
    for (const { memberId, keys } of replies) {
      for (const raw of keys) {
        try {
          const parsed = parseDkgPublicResult(raw);
          const made = parsed.epoch ?? 0;
          const at = this.epochs.committeeAt(made);
          let result: DkgPublicResult;
          if (at !== undefined) result = verifyDkgPublicResult(parsed, expectedCommittee(at));
          else if (made < this.epochs.file.epoch && this.madeBeforeFile(parsed)) result = parsed;
          else throw new TkmsError('dkg_failed', `the result is of epoch ${made}, which the gateway has not reached from its committee file (epoch ${this.epochs.file.epoch})`);
          const digest = this.resultDigest(result);
          const list = byKey.get(result.keyId) ?? [];
          if (list.some((a) => a.memberId === memberId)) throw new TkmsError('bad_request', `member listed key ${result.keyId} twice`);
          list.push({ memberId, result, digest });
          byKey.set(result.keyId, list);
        } catch (e) {
          this.disagreements?.inc({ reason: 'invalid' });
          this.log.warn({ member: memberId, err: isTkmsError(e) ? `${e.code}: ${e.message}` : 'invalid' }, 'member reported an invalid DKG result; ignored');
        }
      }
    }
    for (const [keyId, answers] of byKey) this.consider(keyId, answers, asked.t);
  }

  /** `t`: of the committee whose members answered. */
  private consider(keyId: string, answers: Answer[], t: number): void {
    if (this.conflicted.has(keyId)) return;
    const known = this.keys.get(keyId);
    const bySession = new Map<string, Answer[]>();
    for (const a of answers) bySession.set(a.result.sessionId, [...(bySession.get(a.result.sessionId) ?? []), a]);
    if (known !== undefined) {
      const knownDigest = this.resultDigest(known.result);
      const same = bySession.get(known.result.sessionId) ?? [];
      if (same.some((a) => a.digest !== knownDigest)) {
        this.withdraw(keyId, [...same, { memberId: 0, result: known.result, digest: knownDigest }]);
        return;
      }
      const others = answers.filter((a) => a.result.sessionId !== known.result.sessionId);
      if (others.length > 0) {
        this.disagreements?.inc({ reason: 'other_session' });
        this.log.error(
          { keyId, sessionId: known.result.sessionId, others: others.map((a) => ({ member: a.memberId, sessionId: a.result.sessionId })) },
          'members report a valid result of another DKG session for a published key; ignored, the published key is kept',
        );
      }
      return;
    }
    for (const list of bySession.values()) {
      if (new Set(list.map((a) => a.digest)).size > 1) {
        this.withdraw(keyId, list);
        return;
      }
    }
    const agreed = [...bySession.values()].filter((list) => list.length >= t);
    if (agreed.length === 0) {
      this.log.info({ keyId, members: answers.map((a) => a.memberId) }, `key reported by fewer than t = ${t} members; not published yet`);
      return;
    }
    if (agreed.length > 1) {
      this.disagreements?.inc({ reason: 'conflict' });
      this.log.error({ keyId, sessions: agreed.map((list) => ({ sessionId: list[0]!.result.sessionId, members: list.map((a) => a.memberId) })) }, 'two DKG sessions for one key id are each held by t members; not published');
      return;
    }
    const chosen = agreed[0]!;
    if (chosen.length < answers.length) {
      this.disagreements?.inc({ reason: 'other_session' });
      this.log.error({ keyId, sessionId: chosen[0]!.result.sessionId, others: answers.filter((a) => !chosen.includes(a)).map((a) => ({ member: a.memberId, sessionId: a.result.sessionId })) }, 'some members report another DKG session for this key id; publishing the one t members hold');
    }
    // Same digest within the session: merge the signatures members collected, all already verified.
    const signatures: Record<string, string> = {};
    for (const a of chosen) Object.assign(signatures, a.result.signatures);
    const result = parseDkgPublicResult({ ...chosen[0]!.result, signatures });
    const group = groupOf(result.curve);
    this.keys.set(keyId, { result, group, groupPublicKey: group.decodePoint(result.groupPublicKey, 'group public key') });
    this.log.info({ keyId, groupPublicKey: result.groupPublicKey, members: chosen.map((a) => a.memberId) }, 'key published');
  }

  /** Two valid results of one session with different digests: a proven split, never served by this process. */
  private withdraw(keyId: string, answers: Answer[]): void {
    this.conflicted.add(keyId);
    this.keys.delete(keyId);
    this.disagreements?.inc({ reason: 'conflict' });
    const byDigest: Record<string, number[]> = {};
    for (const a of answers) (byDigest[a.digest] ??= []).push(a.memberId);
    this.log.error({ keyId, members: byDigest }, 'members hold different valid DKG results of one session for one key id; the key is withdrawn and not served');
  }
}

/**
 * The JSON the API returns for a key: its DKG result as made (with the members of the committee
 * that made it, whose keys sign it) and the epoch served. The Y_i at that epoch come from the
 * handover certificates (GET /v1/committee), which clients check themselves.
 */
export function keyToJson(key: PublishedKey, madeBy: Committee): Record<string, unknown> {
  const r = key.result;
  return {
    epoch: key.epoch,
    ...(r.epoch === undefined ? {} : { resultEpoch: r.epoch }),
    keyId: r.keyId,
    ...(r.curve === undefined ? {} : { curve: r.curve }),
    publicKey: r.groupPublicKey,
    publicKeySpki: bytesToHex(key.group.name === 'ed25519' ? encodeEd25519Spki(key.group.encodePoint(key.groupPublicKey)) : encodePublicKeySpki(key.groupPublicKey as Point)),
    t: r.t,
    n: r.n,
    committeeId: r.committeeId,
    verificationShares: r.verificationShares,
    qualified: r.qualified,
    sessionId: r.sessionId,
    transcriptHash: r.transcriptHash,
    signatures: r.signatures,
    members: madeBy.members.map((m) => ({ id: m.id, peerId: m.peerId, publicKey: encodeHex(m.publicKey) })),
  };
}
