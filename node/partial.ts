import { constants, KeyObject, publicEncrypt } from 'node:crypto';
import {
  assertPointBytes,
  type Deployment,
  type GrantSource,
  authorizeDelegation,
  bytesToHex,
  CURVE_ORDER,
  computeProvenPartial,
  curveBackend,
  decodeHex,
  decodePartialBatchRequest,
  decodePartialRequest,
  DEFAULT_MAX_GRANT_LIFETIME_SECONDS,
  encodeDleqProof,
  encodePartialBatchReply,
  encodePartialReply,
  equalBytes,
  isTkmsError,
  randomBytes,
  requireOnChainGrant,
  RsaPublicKeyCache,
  TkmsError,
  wireErrorOf,
  type PartialReply,
  type PartialRequest,
  type AuthorizedDelegation,
} from '../core/index.ts';
import type { DkgPublicResult } from '../core/dkg/index.ts';
import { groupOf } from '../core/group.ts';
import type { EpochShare } from './epoch-types.ts';
import type { Logger } from '../runtime/logger.ts';
import type { NodeMetrics } from './metrics.ts';
import type { PartialFault } from './partial-faults.ts';
import type { RateLimiter } from '../runtime/rate-limit.ts';
import type { SpentRequestIds } from './spent-request-ids.ts';
import type { RevocationStore } from './revocations.ts';
import type { ChainAcl } from '../chain/chain-acl.ts';
import type { KeyBook } from '../core/keys/key-book.ts';
import { requireUsable, requireUsage, type ManagedKey } from '../core/keys/key-model.ts';
import { evaluateKeyPolicy, type KeyPolicy } from '../core/keys/policy.ts';
import { verifiedApprovers } from '../core/keys/decrypt-approval.ts';
import { KeyUsageCounters } from './key-usage.ts';

/**
 * /tkms/partial/1: one delegation request in, one wrapped partial out. Everything about
 * the request is checked (signatures, window, handle commitment, grant, revocation, replay,
 * the requester's RSA key) before the share is used.
 */

export interface HeldShare {
  share: bigint;
  /** Y_self = share·G as published by the DKG, encoded in the key's group. */
  verificationShare: Uint8Array;
  /** The key's group when not secp256k1 (a signing key: no partials, DLEQ or ECIES with it). */
  curve?: 'ed25519';
}

/**
 * The shares this node can answer with, by key id, at the committee epoch it serves, and its id
 * in that committee (a reshare may give it another). Swapped whole at a commit: until then the old
 * epoch keeps serving, so decryption never stops during a ceremony.
 */
export class ShareBook {
  private shares = new Map<string, HeldShare>();
  /** Keys served at an earlier epoch and not now (this node left, or the key moved without it): refused with stale_epoch. */
  private readonly retired = new Set<string>();
  private servedEpoch = 0;

  constructor(private id: number | undefined) {}

  /** This node's id in the committee served; undefined once it left it. */
  get selfId(): number | undefined {
    return this.id;
  }

  get epoch(): number {
    return this.servedEpoch;
  }

  add(result: DkgPublicResult, share: bigint): void {
    const Y = this.id === undefined ? undefined : result.verificationShares[String(this.id)];
    if (Y === undefined) throw new TkmsError('keystore_corrupt', `key ${result.keyId} has no verification share for this node`);
    const group = groupOf(result.curve);
    this.shares.set(result.keyId, checkedShare(result.keyId, share, decodeHex(Y, { name: 'verification share', length: group.pointLength }), result.curve));
  }

  /** After a commit: the new epoch's shares replace every other, under this node's id at that epoch (undefined: it left, nothing is served). */
  serveEpoch(selfId: number | undefined, epoch: number, shares: readonly EpochShare[]): void {
    const next = new Map<string, HeldShare>();
    if (selfId !== undefined) {
      for (const s of shares) {
        const Y = s.data.verificationShares.get(selfId);
        if (Y === undefined) throw new TkmsError('keystore_corrupt', `key ${s.keyId} has no verification share for member ${selfId} at epoch ${epoch}`);
        next.set(s.keyId, checkedShare(s.keyId, s.share, Y, s.data.curve));
      }
    }
    for (const keyId of this.shares.keys()) if (!next.has(keyId)) this.retired.add(keyId);
    for (const keyId of next.keys()) this.retired.delete(keyId);
    this.shares = next;
    this.id = selfId;
    this.servedEpoch = epoch;
  }

  get(keyId: string): HeldShare | undefined {
    return this.shares.get(keyId);
  }

  /** Whether the key was served here at an earlier epoch and is not now. */
  isRetired(keyId: string): boolean {
    return this.retired.has(keyId);
  }

  /** Stops serving partials for a key (members hold different results for its key id). */
  remove(keyId: string): void {
    this.shares.delete(keyId);
  }
}

function checkedShare(keyId: string, share: bigint, verificationShare: Uint8Array, curve?: 'ed25519'): HeldShare {
  if (curve !== undefined) {
    const group = groupOf(curve);
    group.decodePoint(verificationShare, 'verification share');
    // In the key's group (share·B on edwards25519): a share out of range or off its image is refused alike.
    if (share <= 0n || share >= group.order || !equalBytes(group.multiplyBaseSecret(share), verificationShare)) {
      throw new TkmsError('keystore_corrupt', `the stored share of key ${keyId} does not match its verification share`);
    }
    return { share, verificationShare, curve };
  }
  assertPointBytes(verificationShare, 'verification share');
  // A share that does not match its published image would make every proof fail; refuse it loudly.
  if (!equalBytes(curveBackend().multiplyBaseSecret(share), verificationShare)) {
    throw new TkmsError('keystore_corrupt', `the stored share of key ${keyId} does not match its verification share`);
  }
  return { share, verificationShare };
}

export interface PartialServiceOptions {
  /** This node's own deployment (its committee file): what every signature must be made for. */
  deployment: Deployment;
  shares: ShareBook;
  spentIds: SpentRequestIds;
  revocations: RevocationStore;
  metrics: NodeMetrics;
  log: Logger;
  clockSkewSeconds: number;
  /** Longest a grant may be valid (config maxGrantLifetimeSeconds; default DEFAULT_MAX_GRANT_LIFETIME_SECONDS). */
  maxGrantLifetimeSeconds?: number;
  /** Per requester account, charged after its signature verified (so nobody spends another's). */
  limiter: RateLimiter;
  fault: PartialFault | undefined;
  now?: () => number;
  /** Where grants come from (config acl.mode; default signed) and, unless signed, the chain reader. */
  acl?: PartialAcl;
  /** The managed keys (their state and origin); absent, every key id is served by its own share. */
  keys?: Pick<KeyBook, 'byMaterial'>;
}

export type PartialAcl = { mode: 'signed' } | { mode: Exclude<GrantSource, 'signed'>; chain: Pick<ChainAcl, 'isGrantedAt'> };

/** A requester's RSA key, checked once, in the form node:crypto encrypts with fastest. */
interface RequesterKey {
  modulusBits: number;
  keyObject: KeyObject;
}

/** Distinct requester keys kept imported; beyond this the least recently used is re-imported on use. */
const REQUESTER_KEY_CACHE_SIZE = 4096;

export class PartialService {
  private readonly requesterKeys = new RsaPublicKeyCache<RequesterKey>(REQUESTER_KEY_CACHE_SIZE, (key) => ({
    modulusBits: key.modulusBits,
    keyObject: KeyObject.from(key.key),
  }));

  private readonly acl: PartialAcl;
  private readonly clockSkewSeconds: number;
  private readonly deployment: Deployment;
  private readonly fault: PartialFault | undefined;
  private readonly limiter: RateLimiter;
  private readonly log: Logger;
  private readonly maxGrantLifetimeSeconds: number;
  private readonly metrics: NodeMetrics;
  private readonly now: () => number;
  private readonly revocations: RevocationStore;
  private readonly shares: ShareBook;
  private readonly spentIds: SpentRequestIds;
  private readonly keys: Pick<KeyBook, 'byMaterial'> | undefined;
  /** Decrypts per (key, requester) today, for policies with a daily limit. */
  private readonly usage = new KeyUsageCounters();

  constructor(options: PartialServiceOptions) {
    this.keys = options.keys;
    this.acl = options.acl ?? { mode: 'signed' };
    this.clockSkewSeconds = options.clockSkewSeconds;
    this.deployment = options.deployment;
    this.fault = options.fault;
    this.limiter = options.limiter;
    this.log = options.log;
    this.metrics = options.metrics;
    this.revocations = options.revocations;
    this.shares = options.shares;
    this.spentIds = options.spentIds;
    this.maxGrantLifetimeSeconds = options.maxGrantLifetimeSeconds ?? DEFAULT_MAX_GRANT_LIFETIME_SECONDS;
    this.now = options.now ?? Date.now;
  }

  /** One request frame on /tkms/partial/1. */
  async answerFrame(bytes: Uint8Array): Promise<Uint8Array> {
    let request: PartialRequest | TkmsError;
    try {
      request = decodePartialRequest(bytes);
    } catch (e) {
      request = isTkmsError(e) ? e : new TkmsError('bad_request', 'undecodable partial request');
    }
    return encodePartialReply(await this.serve(request));
  }

  /**
   * A batch frame on /tkms/partial-batch/1: every request is checked and answered on its own (a
   * refusal or malformed item affects only its own reply), concurrently, so appends to the
   * spent-id log group-commit. A malformed frame is refused whole.
   */
  async answerBatch(bytes: Uint8Array): Promise<Uint8Array> {
    let items: (PartialRequest | TkmsError)[];
    try {
      items = decodePartialBatchRequest(bytes);
    } catch (e) {
      const err = isTkmsError(e) ? e : new TkmsError('bad_request', 'undecodable partial batch');
      this.metrics.partialRequests.inc({ outcome: err.code });
      return encodePartialBatchReply({ ok: false, ...wireErrorOf(err) });
    }
    this.metrics.partialBatchSize.observe(items.length);
    return encodePartialBatchReply({ ok: true, replies: await Promise.all(items.map((item) => this.serve(item))) });
  }

  private async serve(request: PartialRequest | TkmsError): Promise<PartialReply> {
    const started = performance.now();
    let outcome = 'ok';
    try {
      if (request instanceof TkmsError) throw request;
      return await this.answer(request);
    } catch (e) {
      const err = isTkmsError(e) ? e : new TkmsError('internal', 'internal error');
      if (!isTkmsError(e)) this.log.error({ err: e instanceof Error ? e.message : 'error' }, 'partial request failed unexpectedly');
      outcome = err.code;
      return { ok: false, ...wireErrorOf(err) };
    } finally {
      this.metrics.partialRequests.inc({ outcome });
      this.metrics.partialSeconds.observe({ outcome: outcome === 'ok' ? 'ok' : 'refused' }, (performance.now() - started) / 1000);
    }
  }

  /**
   * The managed key `materialId` names, if any, checked usable (key_disabled, key_pending_deletion,
   * key_destroyed, unknown_key for a version it does not have), and the key id whose share answers:
   * the material id itself, or a derived key's root. A key id no managed key names is served as
   * before keys were managed.
   */
  private managedKeyOf(materialId: string, nowSeconds: number): { shareKeyId: string; key: ManagedKey | undefined } {
    const managed = this.keys?.byMaterial(materialId);
    if (managed === undefined) return { shareKeyId: materialId, key: undefined };
    requireUsage(managed.key, 'ENCRYPT_DECRYPT');
    requireUsable(managed.key, managed.version, nowSeconds);
    if (managed.key.origin.type !== 'derived') return { shareKeyId: materialId, key: managed.key };
    // A derived key is served with its root's share: never a signing key's.
    const root = this.keys?.byMaterial(managed.key.origin.root);
    if (root !== undefined) requireUsage(root.key, 'ENCRYPT_DECRYPT');
    return { shareKeyId: managed.key.origin.root, key: managed.key };
  }

  /**
   * The key's purpose-bound policy (core/keys/policy.ts), after the signatures verified: who asks,
   * through which grant, when, how often today, with whose co-signatures. The daily count is charged
   * in the same synchronous step, so concurrent requests cannot all pass on the same count.
   */
  private checkPolicy(key: ManagedKey, request: PartialRequest, auth: AuthorizedDelegation, nowSeconds: number): (() => void) | undefined {
    const policy = key.policy as KeyPolicy;
    const { delegation } = request;
    const grantSource = !auth.viaGrant ? 'owner' : auth.onChain !== undefined ? 'chain' : 'signed';
    evaluateKeyPolicy(policy, {
      keyId: key.keyId,
      operation: 'decrypt',
      requester: delegation.requester,
      grantSource,
      ...(grantSource === 'signed' && request.grant !== undefined ? { grantLifetimeSeconds: request.grant.notAfter - request.grant.issuedAt } : {}),
      nowSeconds,
      usedToday: policy.dailyLimitPerRequester === undefined ? 0 : this.usage.usedToday(key.keyId, delegation.requester, nowSeconds),
      approvers: () =>
        verifiedApprovers(
          request.approvals ?? [],
          { keyId: key.keyId, handle: delegation.handle, requester: delegation.requester, nowSeconds, clockSkewSeconds: this.clockSkewSeconds },
          this.deployment,
          policy.sensitive?.approvers ?? [],
        ),
    });
    if (policy.dailyLimitPerRequester === undefined) return undefined;
    this.usage.charge(key.keyId, delegation.requester, nowSeconds);
    return () => this.usage.refund(key.keyId, delegation.requester, nowSeconds);
  }

  private async answer(request: PartialRequest): Promise<PartialReply> {
    const { delegation } = request;
    // The share, the id and the epoch are read together, before any await: a commit while the checks
    // below wait (RSA key, on-chain grant, spent id) must not name the new epoch on a partial made
    // with the old share (test/integration/reshare-scenarios.md, "A partial named the new epoch").
    const nowSeconds = Math.floor(this.now() / 1000);
    // A managed key is checked before anything else is: a key its admins disabled or deleted costs
    // no signature check, and its refusal names the state. A derived key is served with its root's share.
    const { shareKeyId, key: managedKey } = this.managedKeyOf(delegation.keyId, nowSeconds);
    const held = this.shares.get(shareKeyId);
    const selfId = this.shares.selfId;
    const epoch = this.shares.epoch;
    if (held === undefined || selfId === undefined) {
      if (this.shares.isRetired(shareKeyId)) {
        throw new TkmsError('stale_epoch', `this node no longer serves key ${shareKeyId}: the committee it served moved to epoch ${this.shares.epoch}; ask the members of that epoch`);
      }
      throw new TkmsError('unknown_key', shareKeyId === delegation.keyId ? `this node holds no share of key ${delegation.keyId}` : `this node holds no share of key ${shareKeyId}, the root of ${delegation.keyId}`);
    }
    // An Ed25519 share is a signing key's: no partial (DLEQ, ECIES) is ever made with it, whatever the key book says.
    if (held.curve !== undefined) throw new TkmsError('key_usage_mismatch', `key ${delegation.keyId} is an ${held.curve} signing key: it decrypts nothing`);
    // The requester's text form names it to the rate limiter, the spent-id log and the log line: made once.
    let requester = '';
    const auth = authorizeDelegation({
      deployment: this.deployment,
      delegation,
      descriptor: request.descriptor,
      grant: request.grant,
      revokedAt: (h, g) => this.revocations.revokedAt(h, g, request.descriptor.owner),
      nowSeconds,
      clockSkewSeconds: this.clockSkewSeconds,
      maxGrantLifetimeSeconds: this.maxGrantLifetimeSeconds,
      onRequester: (bytes) => this.limiter.take((requester = `0x${bytesToHex(bytes)}`)),
      grantSource: this.acl.mode,
    });
    const refund = managedKey === undefined ? undefined : this.checkPolicy(managedKey, request, auth, nowSeconds);
    let rsaKey: RequesterKey;
    try {
      // After the signature verified and the limit was charged: nobody makes this node call its RPC for free.
      const acl = this.acl;
      if (auth.onChain !== undefined) {
        // authorizeDelegation never asks for the chain in mode signed; serving here would skip the grant check.
        if (acl.mode === 'signed') throw new TkmsError('internal', 'an on-chain grant check was asked for in acl.mode signed');
        await requireOnChainGrant(auth, { delegation, descriptor: request.descriptor, block: request.aclBlock, isGrantedAt: (q) => acl.chain.isGrantedAt(q) });
      }
      rsaKey = await this.requesterKeys.import(delegation.rsaSpki);
      // Spend the request id last among the checks, so a refused request does not burn it.
      await this.spentIds.claim(delegation.requestId, delegation.notAfter, nowSeconds, requester);
    } catch (e) {
      // Refused after the policy let it through (and counted it): not one of the day's served requests.
      refund?.();
      throw e;
    }

    const ctx = { keyId: delegation.keyId, nodeId: selfId, requestId: delegation.requestId };
    const fault = this.fault;
    // other_k: a correct partial with a valid proof, but for K + G instead of the handle's K.
    const K = fault === 'other_k' ? (curveBackend().linearCombination(1n, [auth.K], [1n]) ?? auth.K) : auth.K;
    let { partial, proof } = computeProvenPartial(ctx, held.share, held.verificationShare, K);
    if (fault === 'wrong_partial') partial = curveBackend().linearCombination(1n, [partial], [1n]) ?? partial;
    if (fault === 'wrong_proof') proof = { c: proof.c, s: (proof.s + 1n) % CURVE_ORDER };
    if (fault === 'late') await new Promise((r) => setTimeout(r, 3_000));
    const wrapped = fault === 'garbage' ? randomBytes(rsaKey.modulusBits / 8) : wrapForRequester(rsaKey, partial);
    this.log.debug(
      { keyId: delegation.keyId, requestId: bytesToHex(delegation.requestId), requester, viaGrant: auth.viaGrant, ...(auth.onChain ? { aclBlock: request.aclBlock } : {}) },
      'partial issued',
    );
    // Epoch 0 stays absent, as before epochs existed; later the client checks against that epoch's Y_i.
    return { ok: true, nodeId: selfId, wrapped, proof: encodeDleqProof(proof), ...(epoch > 0 ? { epoch } : {}) };
  }
}

/** RSA-OAEP-SHA-256 through node:crypto: the same bytes WebCrypto makes, at a third of its cost. */
function wrapForRequester(key: RequesterKey, partial: Uint8Array): Uint8Array {
  return new Uint8Array(publicEncrypt({ key: key.keyObject, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, partial));
}
