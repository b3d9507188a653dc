import { bytesToHex, decodePoint, encodeHex, isTkmsError, TkmsError, type Point } from '../core/index.ts';
import { dkgPublicResultDigest, parseDkgPublicResult, verifyDkgPublicResult, type DkgPublicResult } from '../core/dkg/index.ts';
import { encodePublicKeySpki } from '../core/spki.ts';
import type { Committee } from '../net/committee.ts';
import type { Logger } from 'pino';
import type { Counter } from 'prom-client';
import type { NodePool } from './node-pool.ts';

/**
 * The keys the committee holds, as the gateway publishes them. A member's answer counts only
 * when its result verifies on its own (verification shares on one degree-(t−1) polynomial
 * through the group key, t member signatures over the digest of the whole result), and a key
 * is published only once at least t members answered the same result (same digest: the
 * signature sets may differ, each member kept the confirmations it received). Two valid
 * results for one key id (a split DKG) withdraw the key for good: it is never served, and the
 * disagreement is logged and counted for operators to alert on.
 */
export interface PublishedKey {
  result: DkgPublicResult;
  groupPublicKey: Point;
  verificationShares: Map<number, Point>;
}

const REFRESH_MIN_INTERVAL_MS = 1_000;

/** reason: "invalid" (a member's result does not verify), "conflict" (members hold different valid results). */
export type KeyDisagreementCounter = Counter<'reason'>;

interface Answer {
  memberId: number;
  result: DkgPublicResult;
  digest: string;
}

export class KeyDirectory {
  private readonly keys = new Map<string, PublishedKey>();
  /** Key ids members disagree on: never served by this gateway process. */
  private readonly conflicted = new Set<string>();
  private lastRefresh = 0;
  private refreshing: Promise<void> | undefined;
  private readonly memberKeys: ReadonlyMap<number, Uint8Array>;

  constructor(
    private readonly committee: Committee,
    private readonly pool: NodePool,
    private readonly log: Logger,
    private readonly disagreements?: KeyDisagreementCounter,
  ) {
    this.memberKeys = new Map(committee.members.map((m) => [m.id, m.publicKey]));
  }

  list(): PublishedKey[] {
    return [...this.keys.values()].sort((a, b) => (a.result.keyId < b.result.keyId ? -1 : 1));
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
    return key;
  }

  refresh(force = false): Promise<void> {
    if (!force && Date.now() - this.lastRefresh < REFRESH_MIN_INTERVAL_MS) return this.refreshing ?? Promise.resolve();
    this.refreshing ??= this.load().finally(() => {
      this.lastRefresh = Date.now();
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private async load(): Promise<void> {
    const byKey = new Map<string, Answer[]>();
    for (const { memberId, keys } of await this.pool.fetchKeys(3_000)) {
      for (const raw of keys) {
        try {
          const parsed = parseDkgPublicResult(raw);
          if (parsed.committeeId !== this.committee.committeeId) throw new TkmsError('bad_request', `result is for committee ${parsed.committeeId}`);
          if (parsed.n !== this.committee.members.length || parsed.t !== this.committee.t) throw new TkmsError('bad_request', 'result t/n differ from the committee file');
          const result = verifyDkgPublicResult(parsed, this.memberKeys);
          const digest = encodeHex(dkgPublicResultDigest(result, this.memberKeys));
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
    for (const [keyId, answers] of byKey) this.consider(keyId, answers);
  }

  private consider(keyId: string, answers: Answer[]): void {
    if (this.conflicted.has(keyId)) return;
    const known = this.keys.get(keyId);
    const knownDigest = known === undefined ? undefined : encodeHex(dkgPublicResultDigest(known.result, this.memberKeys));
    const digests = new Set(answers.map((a) => a.digest));
    if (knownDigest !== undefined) digests.add(knownDigest);
    if (digests.size > 1) {
      this.conflicted.add(keyId);
      this.keys.delete(keyId);
      this.disagreements?.inc({ reason: 'conflict' });
      const byDigest = Object.fromEntries([...digests].map((d) => [d, answers.filter((a) => a.digest === d).map((a) => a.memberId)]));
      this.log.error({ keyId, members: byDigest }, 'members hold different valid DKG results for one key id; the key is withdrawn and not served');
      return;
    }
    if (known !== undefined) return;
    if (answers.length < this.committee.t) {
      this.log.info({ keyId, members: answers.map((a) => a.memberId) }, `key reported by fewer than t = ${this.committee.t} members; not published yet`);
      return;
    }
    // Same digest everywhere: merge the signatures members collected, all already verified.
    const signatures: Record<string, string> = {};
    for (const a of answers) Object.assign(signatures, a.result.signatures);
    const result = parseDkgPublicResult({ ...answers[0]!.result, signatures });
    const verificationShares = new Map(Object.entries(result.verificationShares).map(([id, y]) => [Number(id), decodePoint(y, `Y_${id}`)]));
    this.keys.set(keyId, { result, groupPublicKey: decodePoint(result.groupPublicKey, 'group public key'), verificationShares });
    this.log.info({ keyId, groupPublicKey: result.groupPublicKey, members: answers.map((a) => a.memberId) }, 'key published');
  }
}

/** The JSON the API returns for a key. */
export function keyToJson(key: PublishedKey, committee: Committee): Record<string, unknown> {
  const r = key.result;
  return {
    keyId: r.keyId,
    publicKey: r.groupPublicKey,
    publicKeySpki: bytesToHex(encodePublicKeySpki(key.groupPublicKey)),
    t: r.t,
    n: r.n,
    committeeId: r.committeeId,
    verificationShares: r.verificationShares,
    qualified: r.qualified,
    sessionId: r.sessionId,
    transcriptHash: r.transcriptHash,
    signatures: r.signatures,
    members: committee.members.map((m) => ({ id: m.id, peerId: m.peerId, publicKey: encodeHex(m.publicKey) })),
  };
}
