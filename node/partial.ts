import {
  authorizeDelegation,
  bytesToHex,
  CURVE_ORDER,
  computeProvenPartial,
  decodePartialRequest,
  decodePoint,
  encodeDleqProof,
  encodePartialReply,
  encodePoint,
  G,
  publicKeyFromSecret,
  importRsaPublicKey,
  isTkmsError,
  randomBytes,
  rsaOaepWrap,
  TkmsError,
  type Point,
} from '../core/index.ts';
import type { DkgPublicResult } from '../core/dkg/index.ts';
import type { Logger } from '../net/logger.ts';
import type { NodeMetrics } from './metrics.ts';
import type { PartialFault } from './partial-faults.ts';
import type { RateLimiter } from '../net/rate-limit.ts';
import type { ReplayCache } from './replay-cache.ts';
import type { RevocationStore } from './revocations.ts';

/**
 * /tkms/partial/1: one delegation request in, one wrapped partial out. Everything about
 * the request is checked (signatures, window, handle commitment, grant, revocation, replay,
 * the requester's RSA key) before the share is used.
 */

export interface HeldShare {
  share: bigint;
  /** Y_self = share·G as published by the DKG. */
  verificationShare: Point;
}

/** The shares this node can answer with, by key id. */
export class ShareBook {
  private readonly shares = new Map<string, HeldShare>();

  constructor(private readonly selfId: number) {}

  add(result: DkgPublicResult, share: bigint): void {
    const Y = result.verificationShares[String(this.selfId)];
    if (Y === undefined) throw new TkmsError('keystore_corrupt', `key ${result.keyId} has no verification share for this node`);
    const verificationShare = decodePoint(Y, 'verification share');
    // A share that does not match its published image would make every proof fail; refuse it loudly.
    if (!publicKeyFromSecret(share).equals(verificationShare)) {
      throw new TkmsError('keystore_corrupt', `the stored share of key ${result.keyId} does not match its verification share`);
    }
    this.shares.set(result.keyId, { share, verificationShare });
  }

  get(keyId: string): HeldShare | undefined {
    return this.shares.get(keyId);
  }
}

export interface PartialServiceOptions {
  selfId: number;
  shares: ShareBook;
  replay: ReplayCache;
  revocations: RevocationStore;
  metrics: NodeMetrics;
  log: Logger;
  clockSkewSeconds: number;
  /** Per requester account, charged after its signature verified (so nobody spends another's). */
  limiter: RateLimiter;
  fault: PartialFault | undefined;
  now?: () => number;
}

export class PartialService {
  constructor(private readonly o: PartialServiceOptions) {}

  async handle(bytes: Uint8Array): Promise<Uint8Array> {
    const started = performance.now();
    let outcome = 'ok';
    try {
      return await this.answer(bytes);
    } catch (e) {
      const err = isTkmsError(e) ? e : new TkmsError('internal', 'internal error');
      if (!isTkmsError(e)) this.o.log.error({ err: e instanceof Error ? e.message : 'error' }, 'partial request failed unexpectedly');
      outcome = err.code;
      return encodePartialReply({ ok: false, code: err.code, message: err.message });
    } finally {
      this.o.metrics.partialRequests.inc({ outcome });
      this.o.metrics.partialSeconds.observe({ outcome: outcome === 'ok' ? 'ok' : 'refused' }, (performance.now() - started) / 1000);
    }
  }

  private async answer(bytes: Uint8Array): Promise<Uint8Array> {
    const request = decodePartialRequest(bytes);
    const { delegation } = request;
    const held = this.o.shares.get(delegation.keyId);
    if (held === undefined) throw new TkmsError('unknown_key', `this node holds no share of key ${delegation.keyId}`);
    const nowSeconds = Math.floor((this.o.now?.() ?? Date.now()) / 1000);
    const auth = authorizeDelegation({
      delegation,
      descriptor: request.descriptor,
      grant: request.grant,
      revokedAt: (h, g) => this.o.revocations.revokedAt(h, g),
      nowSeconds,
      clockSkewSeconds: this.o.clockSkewSeconds,
      onRequester: (requester) => this.o.limiter.take(`0x${bytesToHex(requester)}`),
    });
    const rsaKey = await importRsaPublicKey(delegation.rsaSpki);
    // Spend the request id last among the checks, so a refused request does not burn it.
    await this.o.replay.claim(delegation.requestId, delegation.notAfter, nowSeconds);

    const ctx = { keyId: delegation.keyId, nodeId: this.o.selfId, requestId: delegation.requestId };
    let { partial, proof } = computeProvenPartial(ctx, held.share, held.verificationShare, auth.K);
    const fault = this.o.fault;
    if (fault === 'wrong_partial') partial = partial.add(G);
    if (fault === 'wrong_proof') proof = { c: proof.c, s: (proof.s + 1n) % CURVE_ORDER };
    if (fault === 'late') await new Promise((r) => setTimeout(r, 3_000));
    const wrapped = fault === 'garbage' ? randomBytes(rsaKey.modulusBits / 8) : await rsaOaepWrap(rsaKey, encodePoint(partial));
    this.o.log.debug(
      { keyId: delegation.keyId, requestId: bytesToHex(delegation.requestId), requester: `0x${bytesToHex(auth.requester)}`, viaGrant: auth.viaGrant },
      'partial issued',
    );
    return encodePartialReply({ ok: true, nodeId: this.o.selfId, wrapped, proof: encodeDleqProof(proof) });
  }
}
