import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, isTkmsError, LruCache, RsaPublicKeyCache, TkmsError, type ErrorCode, type RsaPublicKey } from '../core/index.ts';

/**
 * Requesters' RSA keys, checked only for delegations already authorized (the nodes check them
 * too; the gateway checks so a bad key fails before any fan-out). Keys that passed are kept
 * imported; keys that failed are remembered by SPKI digest for a while, so an authorized
 * requester who resends a bad key is refused without another import.
 */
export class RequesterKeys {
  private readonly accepted: RsaPublicKeyCache;
  private readonly refused: LruCache<string, { code: ErrorCode; message: string; until: number }>;
  private readonly refusedForMs: number;

  constructor(
    opts: { capacity: number; refusedCapacity: number; refusedForMs: number },
    private readonly onCheck: (outcome: 'accepted' | 'refused' | 'refused_cached') => void = () => undefined,
    private readonly now: () => number = Date.now,
  ) {
    this.accepted = new RsaPublicKeyCache(opts.capacity);
    this.refused = new LruCache(opts.refusedCapacity);
    this.refusedForMs = opts.refusedForMs;
  }

  async import(spki: Uint8Array): Promise<RsaPublicKey> {
    const digest = bytesToHex(sha256(spki));
    const known = this.refused.get(digest);
    if (known !== undefined && known.until > this.now()) {
      this.onCheck('refused_cached');
      throw new TkmsError(known.code, known.message);
    }
    try {
      const key = await this.accepted.import(spki);
      this.onCheck('accepted');
      return key;
    } catch (e) {
      this.onCheck('refused');
      if (isTkmsError(e)) this.refused.set(digest, { code: e.code, message: e.message, until: this.now() + this.refusedForMs });
      throw e;
    }
  }
}
