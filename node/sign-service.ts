import type { Logger } from 'pino';
import type { FrostPublic, FrostSecret } from '@noble/curves/abstract/frost.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import type { Deployment } from '../core/authz.ts';
import { encodeHex } from '../core/bytes.ts';
import { isTkmsError, TkmsError } from '../core/errors.ts';
import { LruCache } from '../core/lru.ts';
import type { KeyBook } from '../core/keys/key-book.ts';
import { requireUsable, type ManagedKey } from '../core/keys/key-model.ts';
import type { KeyPolicy } from '../core/keys/policy.ts';
import { wireErrorOf } from '../core/node-wire.ts';
import { authorizeSigner, planSigning, type SigningPlan } from '../core/signing/sign-policy.ts';
import { verifySignRequest } from '../core/signing/sign-request.ts';
import { decodeSignFrameRequest, encodeSignFrameReply, MAX_MESSAGES_PER_REQUEST, type NonceCommitmentPair, type SignFrameReply, type SignFrameRequest, type SignerCommitments } from '../core/signing/sign-wire.ts';
import { frostIdentifier, frostOf, frostPublic, frostSecret, isValidElement, suiteOfKey, taprootInternalKey, type SigningKeyShares, type SigningSuite } from '../core/signing/suites.ts';
import type { RateLimiter } from '../runtime/rate-limit.ts';
import type { KeyEpochData } from '../core/ceremony/handover.ts';
import type { ShareBook } from './partial.ts';
import { KeyUsageCounters } from './key-usage.ts';
import type { NodeMetrics } from './metrics.ts';
import type { SignFault } from './partial-faults.ts';
import { commitmentId, NoncePool, type NonceSpentLog } from './sign-nonces.ts';
import type { SignValueLedger } from './sign-value-ledger.ts';
import { rememberEd25519Element } from '../core/signing/validated-points.ts';
import { yieldToEventLoop } from '../runtime/yield.ts';

/** Nonce pairs made between two turns of the event loop (about 1 ms each for Ed25519). */
const NONCES_MADE_AT_ONCE = 4;


/** What the node holds of one signing key version at the epoch it serves. */
export interface HeldSigningKey {
  selfId: number;
  epoch: number;
  share: bigint;
  t: number;
  groupPublicKey: Uint8Array;
  verificationShares: ReadonlyMap<number, Uint8Array>;
}

export interface SignServiceOptions {
  keys: Pick<KeyBook, 'byMaterial'>;
  /** This node's share and the key's public data, or undefined when it holds none (the message says why). */
  held: (materialId: string) => HeldSigningKey | { missing: TkmsError };
  deployment: Deployment;
  spent: NonceSpentLog;
  ledger: SignValueLedger;
  limiter: RateLimiter;
  metrics: NodeMetrics;
  log: Logger;
  clockSkewSeconds: number;
  fault?: SignFault | undefined;
  now?: () => number;
  pool?: NoncePool;
}

/**
 * /tkms/sign/1 at a member: nonce commitments made ahead of time, and signature shares for requests
 * that pass every check here (the requester's signature over the message, the key's state, who may
 * sign, the key's signing rules) — the coordinator's word counts for nothing.
 */
export class SignService {
  private readonly pool: NoncePool;
  private readonly usage = new KeyUsageCounters();
  /** Requests already counted against a daily limit (bounded; an evicted one may count twice, never zero times). */
  private readonly chargedRequests = new LruCache<string, true>(65_536);
  /** FROST packages by key version, epoch and member id (bounded: the least recently used go past a few thousand). */
  private readonly packages = new LruCache<string, { pub: FrostPublic; secret: FrostSecret }>(4096);
  private readonly now: () => number;

  constructor(private readonly o: SignServiceOptions) {
    this.pool = o.pool ?? new NoncePool();
    this.now = o.now ?? Date.now;
  }

  get noncesHeld(): number {
    return this.pool.size;
  }

  /** One frame from a gateway. */
  async answer(bytes: Uint8Array): Promise<Uint8Array> {
    const started = performance.now();
    let outcome = 'ok';
    let reply: SignFrameReply;
    let kind = 'unknown';
    try {
      const request = decodeSignFrameRequest(bytes);
      kind = request.type;
      reply = request.type === 'commit' ? await this.commit(request) : await this.sign(request);
    } catch (e) {
      const err = isTkmsError(e) ? e : new TkmsError('internal', 'internal error');
      if (!isTkmsError(e)) this.o.log.error({ err: e instanceof Error ? e.message : 'error' }, 'sign request failed unexpectedly');
      outcome = err.code;
      reply = { ok: false, ...wireErrorOf(err) };
    }
    this.o.metrics.signRequests.inc({ kind, outcome });
    this.o.metrics.signSeconds.observe({ kind, outcome: outcome === 'ok' ? 'ok' : 'refused' }, (performance.now() - started) / 1000);
    return encodeSignFrameReply(reply);
  }

  private signingKey(materialId: string, nowSeconds: number): { key: ManagedKey; suite: SigningSuite; held: HeldSigningKey } {
    const managed = this.o.keys.byMaterial(materialId);
    if (managed === undefined) throw new TkmsError('unknown_key', `no managed key has material ${materialId}: only managed SIGN_VERIFY keys sign`);
    const suite = suiteOfKey(managed.key.keyId, managed.key.spec, managed.key.usage);
    requireUsable(managed.key, managed.version, nowSeconds);
    const held = this.o.held(materialId);
    if ('missing' in held) throw held.missing;
    return { key: managed.key, suite, held };
  }

  /**
   * The FROST packages of a key version at the epoch served, made once: a Taproot key's tweak costs
   * a few point operations per member, more than the rest of a request's checks.
   */
  private packagesOf(materialId: string, suite: SigningSuite, held: HeldSigningKey): { pub: FrostPublic; secret: FrostSecret } {
    const cacheKey = `${materialId}@${held.epoch}/${held.selfId}`;
    let packages = this.packages.get(cacheKey);
    if (packages === undefined) {
      const shares = sharesOf(suite, held);
      packages = { pub: frostPublic(shares), secret: frostSecret(shares, held.selfId, held.share) };
      this.packages.set(cacheKey, packages);
    }
    return packages;
  }

  /**
   * A batch is made a few pairs at a time, letting signing requests in between: a whole batch is
   * tens of milliseconds of base-point multiplications, which would otherwise hold up every
   * signature this member is asked for meanwhile.
   */
  private async commit(r: Extract<SignFrameRequest, { type: 'commit' }>): Promise<SignFrameReply> {
    const { suite, held } = this.signingKey(r.keyId, Math.floor(this.now() / 1000));
    const commitments: NonceCommitmentPair[] = [];
    while (commitments.length < r.count) {
      if (commitments.length > 0) await yieldToEventLoop();
      const made = this.pool.make(r.keyId, frostOf(suite), this.packagesOf(r.keyId, suite, held).secret, Math.min(NONCES_MADE_AT_ONCE, r.count - commitments.length), (id) => this.o.spent.has(id));
      // Made here as d·B: valid by construction, so the signing step need not check them again.
      if (suite === 'ed25519') for (const c of made) for (const point of [c.hiding, c.binding]) rememberEd25519Element(point);
      commitments.push(...made);
    }
    this.o.metrics.signNoncesHeld.set(this.pool.size);
    return { ok: true, type: 'commitments', memberId: held.selfId, commitments };
  }

  private async sign(r: Extract<SignFrameRequest, { type: 'sign' }>): Promise<SignFrameReply> {
    const nowSeconds = Math.floor(this.now() / 1000);
    const materialId = r.request.keyId;
    const { key, suite, held } = this.signingKey(materialId, nowSeconds);
    // Before anything costs more: shares made at another epoch would fail the coordinator's checks and name this member a cheater.
    if (r.epoch !== held.epoch) throw new TkmsError('stale_epoch', `this node serves key ${materialId} at committee epoch ${held.epoch}, not ${r.epoch}`);
    const requester = verifySignRequest(r.request, r.message, { nowSeconds, clockSkewSeconds: this.o.clockSkewSeconds }, this.o.deployment);
    this.o.limiter.take(requester);
    const refund = this.checkWhoMaySign(key, requester, r.request.requester, r.request.requestId, nowSeconds);
    try {
      const policy = key.policy as KeyPolicy;
      // The value cap counts per managed key (every version), per UTC day; a transaction signed before counts once.
      const plan = planSigning(policy, key.keyId, suite, r.message, suite === 'bip340' ? { internalKey: taprootInternalKey(held.groupPublicKey) } : {}, (txid) => this.o.ledger.spentToday(key.keyId, nowSeconds, txid));
      const sessions = sessionsOf(r.signers, plan, held, suite);
      const nonces = this.takeNonces(materialId, sessions.own);
      let out: Uint8Array[];
      try {
        // Durable before anything that depends on the nonce exists: a crash from here on loses the nonce, never reuses it.
        await this.o.spent.spend(sessions.own.map((c) => commitmentId(materialId, c.hiding)));
        if (plan.txid !== undefined) {
          const cap = policy.sign?.psbt === undefined ? undefined : BigInt(policy.sign.psbt.dailyValueCapSats);
          // Checks the cap and counts in one step: two transactions signed at once cannot both fit on the same total.
          await this.o.ledger.record(key.keyId, plan.txid, plan.valueSats, nowSeconds, cap);
        }
        if (this.o.fault === 'stall_after_spend') await new Promise((resolve) => setTimeout(resolve, 60_000));
        const frost = frostOf(suite);
        const { pub, secret } = this.packagesOf(materialId, suite, held);
        out = plan.messages.map((message, j) => {
          // With t = 1 this member's share is the key: FROST has no threshold to run (noble refuses
          // min = 1), so it signs whole with a fresh nonce of the suite's own; the pair taken is wiped below.
          if (held.t === 1) return frost.sign(message, secret.signingShare);
          const z = frost.signShare(secret, pub, nonces[j]!, sessions.lists[j]!, message);
          return this.o.fault === 'bad_share' ? frost.utils.Fn.toBytes(frost.utils.Fn.add(frost.utils.Fn.fromBytes(z), 1n)) : z;
        });
      } finally {
        // Spent either way: wiped now, whatever failed after the spend (signShare wipes the ones it used).
        for (const n of nonces) {
          n.hiding.fill(0);
          n.binding.fill(0);
        }
      }
      this.o.log.debug({ keyId: materialId, requester, requestId: bytesToHex(r.request.requestId), messages: out.length, signers: r.signers.map((s) => s.memberId) }, 'signature shares issued');
      return { ok: true, type: 'shares', memberId: held.selfId, shares: out };
    } catch (e) {
      refund?.();
      throw e;
    }
  }

  /**
   * Who may sign: the policy's allowed requesters when it lists them, else the key's admins; then
   * the rest of the policy (windows, daily limit, co-signatures). The daily count is charged here,
   * once per request id, in the same synchronous step as the check.
   */
  private checkWhoMaySign(key: ManagedKey, requester: string, requesterBytes: Uint8Array, requestId: Uint8Array, nowSeconds: number): (() => void) | undefined {
    const policy = key.policy as KeyPolicy;
    authorizeSigner(key, requester, requesterBytes, nowSeconds, policy.dailyLimitPerRequester === undefined ? 0 : this.usage.usedToday(key.keyId, requesterBytes, nowSeconds));
    // A coordinator that replaces a faulty signer asks again with the same request: counted once.
    const charged = `${key.keyId}/${bytesToHex(requestId)}`;
    if (policy.dailyLimitPerRequester === undefined || this.chargedRequests.get(charged) !== undefined) return undefined;
    this.usage.charge(key.keyId, requesterBytes, nowSeconds);
    this.chargedRequests.set(charged, true);
    return () => {
      this.chargedRequests.delete(charged);
      this.usage.refund(key.keyId, requesterBytes, nowSeconds);
    };
  }

  /** Takes this node's nonce for every message at once: all or none stay in the pool. */
  private takeNonces(materialId: string, own: readonly { hiding: Uint8Array; binding: Uint8Array }[]) {
    const taken = [];
    for (const c of own) {
      const nonce = this.pool.take(materialId, c.hiding, c.binding);
      if (nonce === undefined) {
        const id = commitmentId(materialId, c.hiding);
        // The ones already taken are gone too (wiped, recorded spent): a request that named them may have reached other members.
        for (const t of taken) {
          t.hiding.fill(0);
          t.binding.fill(0);
        }
        if (taken.length > 0) this.o.spent.spend(own.slice(0, taken.length).map((x) => commitmentId(materialId, x.hiding))).catch((e: unknown) => this.o.log.error({ err: e instanceof Error ? e.message : String(e) }, 'could not record nonces as spent'));
        throw this.o.spent.has(id)
          ? new TkmsError('nonce_spent', `nonce commitment ${encodeHex(c.hiding)} of key ${materialId} was spent already: a nonce signs once`)
          : new TkmsError('nonce_unknown', `this node holds no nonce for commitment ${encodeHex(c.hiding)} of key ${materialId} (never made here, expired, or discarded at a restart): ask for fresh commitments`);
      }
      taken.push(nonce.nonces);
    }
    this.o.metrics.signNoncesHeld.set(this.pool.size);
    return taken;
  }
}

function sharesOf(suite: SigningSuite, held: HeldSigningKey): SigningKeyShares {
  return { suite, t: held.t, n: held.verificationShares.size, groupPublicKey: held.groupPublicKey, verificationShares: held.verificationShares };
}

/**
 * The signing sessions a request describes, checked against the key: at least t distinct members
 * of the key's committee, this node among them, one commitment each per message, points of the
 * suite's length. Returns this node's commitments and each message's FROST commitment list.
 */
function sessionsOf(signers: readonly SignerCommitments[], plan: SigningPlan, held: HeldSigningKey, suite: SigningSuite) {
  const count = plan.messages.length;
  if (count === 0 || count > MAX_MESSAGES_PER_REQUEST) throw new TkmsError('bad_request', `a request signs 1 to ${MAX_MESSAGES_PER_REQUEST} messages, this one ${count}`);
  if (signers.length < held.t) throw new TkmsError('bad_request', `a signing session needs at least ${held.t} signers, this one names ${signers.length}`);
  const seen = new Set<number>();
  for (const s of signers) {
    if (seen.has(s.memberId)) throw new TkmsError('bad_request', `member ${s.memberId} is named twice among the signers`);
    seen.add(s.memberId);
    if (!held.verificationShares.has(s.memberId)) throw new TkmsError('bad_request', `member ${s.memberId} holds no share of this key`);
    if (s.commitments.length !== count) throw new TkmsError('bad_request', `member ${s.memberId} brings ${s.commitments.length} commitments for ${count} messages`);
    // Before any nonce is taken: a commitment FROST cannot parse would otherwise fail after the nonce is spent.
    for (const c of s.commitments) {
      if (!isValidElement(suite, c.hiding) || !isValidElement(suite, c.binding)) throw new TkmsError('bad_point', `member ${s.memberId}'s commitments are not points of the key's group (${suite})`);
    }
  }
  const mine = signers.find((s) => s.memberId === held.selfId);
  if (mine === undefined) throw new TkmsError('bad_request', `this node (member ${held.selfId}) is not among the signers`);
  const lists = plan.messages.map((_, j) =>
    signers.map((s) => ({ identifier: frostIdentifier(suite, s.memberId), hiding: new Uint8Array(s.commitments[j]!.hiding), binding: new Uint8Array(s.commitments[j]!.binding) })),
  );
  return { own: mine.commitments, lists };
}

/**
 * This node's share of a key version and the key's public data at the epoch it serves, read together
 * (a reshare's commit swaps both). key_not_ready while its DKG has not finished here; stale_epoch
 * when the key moved on without this node.
 */
export function heldSigningKey(shares: Pick<ShareBook, 'get' | 'selfId' | 'epoch' | 'isRetired'>, epochs: { keyData(keyId: string): KeyEpochData | undefined }, materialId: string): HeldSigningKey | { missing: TkmsError } {
  const held = shares.get(materialId);
  const selfId = shares.selfId;
  const data = epochs.keyData(materialId);
  if (held === undefined || selfId === undefined || data === undefined) {
    if (shares.isRetired(materialId)) return { missing: new TkmsError('stale_epoch', `this node no longer serves key ${materialId}: the committee moved to epoch ${shares.epoch}; ask the members of that epoch`) };
    return { missing: new TkmsError('key_not_ready', `this node holds no share of key ${materialId} yet: its DKG has not finished here`) };
  }
  return { selfId, epoch: shares.epoch, share: held.share, t: data.t, groupPublicKey: data.groupPublicKey, verificationShares: data.verificationShares };
}
