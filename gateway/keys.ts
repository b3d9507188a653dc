import { bytesToHex, decodePoint, encodeHex, isTkmsError, TkmsError, type Point } from '../core/index.ts';
import { memberSignatureVerifier, parseDkgPublicResult, verifyDkgPublicResult, type DkgPublicResult } from '../core/dkg/index.ts';
import { encodePublicKeySpki } from '../core/spki.ts';
import type { Committee } from '../net/committee.ts';
import type { Logger } from 'pino';
import type { NodePool } from './node-pool.ts';

/**
 * The keys the committee holds, as the gateway publishes them. A DKG result is accepted
 * only when it verifies on its own: verification shares on one degree-(t−1) polynomial
 * through the group key, and transcript signatures by at least t members whose Ed25519
 * keys are in the committee file. Members that report different results for one key id
 * are logged and the first verified one is kept.
 */
export interface PublishedKey {
  result: DkgPublicResult;
  groupPublicKey: Point;
  verificationShares: Map<number, Point>;
}

const REFRESH_MIN_INTERVAL_MS = 1_000;

export class KeyDirectory {
  private readonly keys = new Map<string, PublishedKey>();
  private lastRefresh = 0;
  private refreshing: Promise<void> | undefined;
  private readonly verify: ReturnType<typeof memberSignatureVerifier>;

  constructor(
    private readonly committee: Committee,
    private readonly pool: NodePool,
    private readonly log: Logger,
  ) {
    this.verify = memberSignatureVerifier(new Map(committee.members.map((m) => [m.id, m.publicKey])));
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
    for (const { memberId, keys } of await this.pool.fetchKeys(3_000)) {
      for (const raw of keys) {
        try {
          const result = parseDkgPublicResult(raw);
          if (result.committeeId !== this.committee.committeeId) throw new TkmsError('bad_request', `result is for committee ${result.committeeId}`);
          if (result.n !== this.committee.members.length || result.t !== this.committee.t) throw new TkmsError('bad_request', 'result t/n differ from the committee file');
          const known = this.keys.get(result.keyId);
          if (known !== undefined) {
            if (known.result.transcriptHash !== result.transcriptHash || known.result.groupPublicKey !== result.groupPublicKey) {
              this.log.error({ keyId: result.keyId, member: memberId }, 'member reports a different DKG result for a known key; ignored');
            }
            continue;
          }
          verifyDkgPublicResult(result, this.verify);
          const verificationShares = new Map(Object.entries(result.verificationShares).map(([id, y]) => [Number(id), decodePoint(y, `Y_${id}`)]));
          this.keys.set(result.keyId, { result, groupPublicKey: decodePoint(result.groupPublicKey, 'group public key'), verificationShares });
          this.log.info({ keyId: result.keyId, groupPublicKey: result.groupPublicKey, from: memberId }, 'key published');
        } catch (e) {
          this.log.warn({ member: memberId, err: isTkmsError(e) ? `${e.code}: ${e.message}` : 'invalid' }, 'member reported an invalid DKG result; ignored');
        }
      }
    }
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
