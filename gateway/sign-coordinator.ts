import type { Logger } from 'pino';
import type { FrostPublic } from '@noble/curves/abstract/frost.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { LruCache } from '../core/lru.ts';
import { isTkmsError, TkmsError, type ErrorCode } from '../core/errors.ts';
import { errorText } from '../core/errors.ts';
import type { SignMessage, SignRequest } from '../core/signing/sign-request.ts';
import { decodeSignFrameReply, encodeSignFrameRequest, MAX_COMMITMENTS_PER_REQUEST, SIGN_PROTOCOL, type NonceCommitmentPair, type SignerCommitments } from '../core/signing/sign-wire.ts';
import { yieldToEventLoop } from '../runtime/yield.ts';
import { frostIdentifier, frostOf, frostPublic, isValidElement, memberOfIdentifier, signingPublicKey, verifySignature, type SigningKeyShares, type SigningSuite } from '../core/signing/suites.ts';

/**
 * The gateway as FROST coordinator. It keeps a supply of each member's nonce commitments per key
 * version (asked for in batches, ahead of time), so an online signature is one round trip to t
 * members. It trusts no member's share: the aggregate is checked, and when it does not verify each
 * share is checked on its own, the members whose shares fail are named and left out, and the
 * signature is made again with others (identifiable abort). It is trusted for nothing by the
 * members either: each checks the requester's signed request and the key's policy itself.
 */

export interface SignTransport {
  sendRaw(memberId: number, protocol: string, frame: Uint8Array, timeoutMs: number): Promise<Uint8Array>;
}

export interface SignCoordinatorOptions {
  transport: SignTransport;
  log: Logger;
  timeoutMs: number;
  /** Commitments asked of a member at a time. */
  batch?: number;
  /** Below this many for a member, a refill starts in the background. */
  lowWater?: number;
  /** Commitments kept per member per key version at most (memory bound). */
  maxPerMember?: number;
  /** Key versions with a supply at most (the least recently used goes). */
  maxKeys?: number;
  /** Commitments older than this are dropped unused: members expire their nonces after 30 minutes. */
  maxAgeMs?: number;
  now?: () => number;
}

export interface SignFailure {
  nodeId: number;
  code: ErrorCode;
  message: string;
}

export interface SignOutcome {
  /** One per message, in order. */
  signatures: Uint8Array[];
  /** The members whose shares make the signatures. */
  signers: number[];
  /** Members that sent a share that did not verify (named, then replaced). */
  blamed: number[];
  /** Members asked that refused or did not answer. */
  failures: SignFailure[];
  /** The key the signatures verify under (Ed25519 raw, or the BIP340 x-only Taproot output key). */
  publicKey: Uint8Array;
}

export interface SignJob {
  materialId: string;
  key: SigningKeyShares;
  request: SignRequest;
  message: SignMessage;
  /** What FROST signs, derived by the gateway from the message exactly as the members derive it. */
  messages: Uint8Array[];
  /** Members to ask, best first. */
  members: number[];
  /** The committee epoch whose Y_i `key` holds: a member serving another refuses (stale_epoch) before it spends a nonce. */
  epoch: number;
}

/** Commitment pairs checked between two turns of the event loop. */
const PAIRS_CHECKED_AT_ONCE = 2;

/** A member's commitments, oldest first, with when they arrived (members expire unused nonces). */
type Supply = Map<number, { pair: NonceCommitmentPair; at: number }[]>;

export class SignCoordinator {
  private readonly supplies = new Map<string, Supply>();
  private readonly packages = new LruCache<string, { pub: FrostPublic; publicKey: Uint8Array }>(1024);
  private readonly refills = new Map<string, Promise<void>>();
  /** Bumped by forget(): a refill that started before it brings commitments the member no longer holds. */
  private readonly forgotten = new Map<string, number>();
  private readonly batch: number;
  private readonly lowWater: number;
  private readonly maxPerMember: number;
  private readonly maxKeys: number;
  private readonly maxAgeMs: number;
  private readonly now: () => number;

  constructor(private readonly o: SignCoordinatorOptions) {
    this.maxAgeMs = o.maxAgeMs ?? 25 * 60_000;
    this.now = o.now ?? Date.now;
    this.batch = Math.min(o.batch ?? 32, MAX_COMMITMENTS_PER_REQUEST);
    this.lowWater = o.lowWater ?? 8;
    this.maxPerMember = o.maxPerMember ?? 256;
    this.maxKeys = o.maxKeys ?? 1024;
  }

  /** The FROST public package and the verifying key of a key version, made once per version and group key and Y_i. */
  private packagesOf(materialId: string, key: SigningKeyShares): { pub: FrostPublic; publicKey: Uint8Array } {
    const id = `${materialId}/${key.t}/${bytesToHex(key.groupPublicKey)}/${[...key.verificationShares].map(([m, y]) => `${m}:${bytesToHex(y)}`).join(',')}`;
    let packages = this.packages.get(id);
    if (packages === undefined) {
      packages = { pub: frostPublic(key), publicKey: signingPublicKey(key) };
      this.packages.set(id, packages);
    }
    return packages;
  }

  /** Commitments held for a member of a key version (tests, metrics). */
  held(materialId: string, memberId: number): number {
    return this.supplies.get(materialId)?.get(memberId)?.length ?? 0;
  }

  async sign(job: SignJob): Promise<SignOutcome> {
    const { key, messages } = job;
    const frost = frostOf(key.suite);
    const { pub, publicKey } = this.packagesOf(job.materialId, key);
    const excluded = new Map<number, SignFailure>();
    const blamed: number[] = [];
    /** Members that had forgotten the commitments held here, asked again with fresh ones. */
    const renewed = new Set<number>();
    // Each round asks t members; a round that fails leaves out a member or renews one's commitments (once each), so there are at most 2n.
    for (;;) {
      const candidates = job.members.filter((id) => !excluded.has(id));
      if (candidates.length < key.t) throw shortfall(job, key.t, [...excluded.values()]);
      const signers = await this.pickSigners(job.materialId, key.suite, candidates, key.t, messages.length, excluded);
      if (signers === undefined) continue;
      const chosen = signers.map((s) => s.memberId);
      for (const memberId of chosen) this.refillIfLow(job.materialId, key.suite, memberId);
      const frame = encodeSignFrameRequest({ type: 'sign', request: job.request, message: job.message, signers, epoch: job.epoch });
      const replies = await Promise.all(chosen.map((memberId) => this.askShares(memberId, frame, messages.length, key.t === 1 ? 64 : 32)));
      const shares = new Map<number, Uint8Array[]>();
      replies.forEach((reply, i) => {
        const memberId = chosen[i]!;
        if (reply instanceof Error) {
          // It forgot its nonces (a restart, expiry): what is held for it here is dead. It is asked
          // again with fresh ones once in this call (a rolling restart leaves every member so).
          const stale = isTkmsError(reply, 'nonce_unknown') || isTkmsError(reply, 'nonce_spent');
          if (stale) this.forget(job.materialId, memberId);
          if (stale && !renewed.has(memberId)) renewed.add(memberId);
          else excluded.set(memberId, failureOf(memberId, reply));
        } else shares.set(memberId, reply);
      });
      if (shares.size < chosen.length) continue;
      const lists = messages.map((_, j) =>
        signers.map((s) => ({ identifier: frostIdentifier(key.suite, s.memberId), hiding: new Uint8Array(s.commitments[j]!.hiding), binding: new Uint8Array(s.commitments[j]!.binding) })),
      );
      const signatures: Uint8Array[] = [];
      const cheaters = new Set<number>();
      if (key.t === 1) {
        // One member holds the key and answers whole signatures (node/sign-service.ts): checked as they are.
        const [[memberId, whole]] = [...shares] as [[number, Uint8Array[]]];
        if (whole.every((sig, j) => verifySignature(key.suite, sig, messages[j]!, publicKey))) return { signatures: whole, signers: chosen, blamed, failures: [...excluded.values()], publicKey };
        cheaters.add(memberId);
      }
      if (key.t > 1) {
        messages.forEach((message, j) => {
          const byIdentifier: Record<string, Uint8Array<ArrayBuffer>> = {};
          for (const [memberId, z] of shares) byIdentifier[frostIdentifier(key.suite, memberId)] = new Uint8Array(z[j]!);
          const signature = aggregate(frost, pub, lists[j]!, message, byIdentifier, key, cheaters);
          if (signature !== undefined) signatures.push(signature);
          // noble names no one when a share is not even a scalar: then each share is checked on its own.
          else if (cheaters.size === 0) for (const [memberId, z] of shares) if (!shareVerifies(frost, pub, lists[j]!, message, key.suite, memberId, z[j]!)) cheaters.add(memberId);
        });
      }
      // aggregate() returns only a signature that verifies under the key (the client checks it again with the suite's plain verifier).
      if (cheaters.size === 0 && signatures.length === messages.length) return { signatures, signers: chosen, blamed, failures: [...excluded.values()], publicKey };
      for (const memberId of cheaters) {
        blamed.push(memberId);
        excluded.set(memberId, { nodeId: memberId, code: 'bad_signature_share', message: `member ${memberId} sent a signature share that does not verify against its verification share` });
        this.o.log.warn({ keyId: job.materialId, nodeId: memberId }, 'a member sent a bad signature share: it is named and replaced');
      }
      // Aggregation failed and no share was to blame: that is not something a retry mends.
      if (cheaters.size === 0) throw new TkmsError('internal', 'signature shares verified but do not aggregate');
    }
  }

  /**
   * t of the candidates with `count` commitments each, in the order given, their commitments taken
   * in the same synchronous step as the check (concurrent requests share refills). Members short of
   * commitments are asked for a batch now (together). Undefined when a member failed here (it is
   * excluded) or others took what a refill brought: the caller tries again.
   */
  private async pickSigners(materialId: string, suite: SigningSuite, candidates: number[], t: number, count: number, excluded: Map<number, SignFailure>): Promise<SignerCommitments[] | undefined> {
    const taken = this.takeFrom(materialId, candidates, t, count);
    if (taken !== undefined) return taken;
    const short = candidates.filter((id) => this.held(materialId, id) < count);
    const need = Math.max(count, this.batch);
    const results = await Promise.all(short.map((id) => this.refill(materialId, suite, id, need).then(() => undefined, (e: unknown) => e)));
    results.forEach((e, i) => {
      if (e !== undefined) excluded.set(short[i]!, failureOf(short[i]!, e));
    });
    return this.takeFrom(materialId, candidates.filter((id) => !excluded.has(id)), t, count);
  }

  /** The first t candidates holding `count` live commitments each, with those commitments taken; undefined when fewer hold enough. */
  private takeFrom(materialId: string, candidates: number[], t: number, count: number): SignerCommitments[] | undefined {
    const supply = this.supplies.get(materialId);
    if (supply === undefined) return undefined;
    const cutoff = this.now() - this.maxAgeMs;
    const ready: number[] = [];
    for (const id of candidates) {
      const list = supply.get(id);
      // What a member may have expired already is dropped, not tried.
      while (list !== undefined && list.length > 0 && list[0]!.at < cutoff) list.shift();
      if (list !== undefined && list.length >= count) ready.push(id);
      if (ready.length === t) break;
    }
    if (ready.length < t) return undefined;
    return ready.map((memberId) => ({ memberId, commitments: supply.get(memberId)!.splice(0, count).map((c) => c.pair) }));
  }

  private refillIfLow(materialId: string, suite: SigningSuite, memberId: number): void {
    if (this.held(materialId, memberId) >= this.lowWater) return;
    this.refill(materialId, suite, memberId, this.batch).catch((e: unknown) => this.o.log.debug({ keyId: materialId, nodeId: memberId, err: errorText(e) }, 'nonce commitment refill failed'));
  }

  /**
   * Asks a member for `count` commitments (one request in flight per member and key). Each is
   * checked as it arrives (bad_point: none of the batch is kept), so a member that hands out garbage
   * is named now, not by a signature that fails for everyone; and the check is then off the online path.
   */
  private refill(materialId: string, suite: SigningSuite, memberId: number, count: number): Promise<void> {
    const k = `${memberId}/${materialId}`;
    const running = this.refills.get(k);
    if (running !== undefined) return running;
    const asked = this.forgotten.get(k) ?? 0;
    const task = (async () => {
      const reply = decodeSignFrameReply(await this.o.transport.sendRaw(memberId, SIGN_PROTOCOL, encodeSignFrameRequest({ type: 'commit', keyId: materialId, count: Math.min(count, MAX_COMMITMENTS_PER_REQUEST) }), this.o.timeoutMs));
      if (!reply.ok) throw new TkmsError(reply.code, `member ${memberId}: ${reply.message}`);
      if (reply.type !== 'commitments' || reply.memberId !== memberId) throw new TkmsError('bad_request', `member ${memberId} answered a commit with something else`);
      // A few pairs at a time (about 2 ms of point arithmetic each for Ed25519), letting signing requests in between.
      for (let i = 0; i < reply.commitments.length; i++) {
        if (i > 0 && i % PAIRS_CHECKED_AT_ONCE === 0) await yieldToEventLoop();
        const c = reply.commitments[i]!;
        if (!isValidElement(suite, c.hiding) || !isValidElement(suite, c.binding)) {
          throw new TkmsError('bad_point', `member ${memberId} sent nonce commitments that are not points of the key's group (${suite})`);
        }
      }
      // Forgotten meanwhile (it restarted): what this batch brings died with the member's memory.
      if ((this.forgotten.get(k) ?? 0) !== asked) return;
      const list = this.supplyOf(materialId).get(memberId) ?? [];
      const at = this.now();
      list.push(...reply.commitments.map((pair) => ({ pair, at })));
      // The oldest go first: they are the likeliest to have expired at the member.
      if (list.length > this.maxPerMember) list.splice(0, list.length - this.maxPerMember);
      this.supplyOf(materialId).set(memberId, list);
    })().finally(() => {
      this.refills.delete(k);
      this.forgotten.delete(k);
    });
    this.refills.set(k, task);
    return task;
  }

  private supplyOf(materialId: string): Supply {
    let supply = this.supplies.get(materialId);
    if (supply === undefined) {
      if (this.supplies.size >= this.maxKeys) this.supplies.delete(this.supplies.keys().next().value!);
      supply = new Map();
      this.supplies.set(materialId, supply);
    } else {
      // Most recently used last, so the bound drops the least recently used.
      this.supplies.delete(materialId);
      this.supplies.set(materialId, supply);
    }
    return supply;
  }

  /** Drops a member's commitments for a key (it forgot them: restart, expiry). */
  forget(materialId: string, memberId: number): void {
    this.supplies.get(materialId)?.delete(memberId);
    const k = `${memberId}/${materialId}`;
    // Only a refill in flight needs to see it; the count is kept no longer than that.
    if (this.refills.has(k)) this.forgotten.set(k, (this.forgotten.get(k) ?? 0) + 1);
  }

  /** `shareLength`: 32 (a FROST share), or 64 (a whole signature, from the one member of a key with t = 1). */
  private async askShares(memberId: number, frame: Uint8Array, count: number, shareLength: number): Promise<Uint8Array[] | Error> {
    try {
      const reply = decodeSignFrameReply(await this.o.transport.sendRaw(memberId, SIGN_PROTOCOL, frame, this.o.timeoutMs));
      if (!reply.ok) return new TkmsError(reply.code, reply.message);
      if (reply.type !== 'shares' || reply.memberId !== memberId || reply.shares.length !== count || !reply.shares.every((z) => z.length === shareLength)) {
        return new TkmsError('bad_signature_share', `member ${memberId} answered with something other than ${count} signature shares of ${shareLength} bytes`);
      }
      return reply.shares;
    } catch (e) {
      return e instanceof Error ? e : new Error(String(e));
    }
  }
}

/**
 * noble's aggregate checks the signature and, only when it fails, each share (RFC 9591 §5.3: the
 * cheap path first). The members whose shares fail go into `cheaters`.
 */
function aggregate(
  frost: ReturnType<typeof frostOf>,
  pub: FrostPublic,
  list: { identifier: string; hiding: Uint8Array<ArrayBuffer>; binding: Uint8Array<ArrayBuffer> }[],
  message: Uint8Array,
  shares: Record<string, Uint8Array<ArrayBuffer>>,
  key: SigningKeyShares,
  cheaters: Set<number>,
): Uint8Array | undefined {
  try {
    return frost.aggregate(pub, list, new Uint8Array(message), shares);
  } catch (e) {
    const named = (e as { cheaters?: unknown }).cheaters;
    if (!Array.isArray(named)) throw new TkmsError('internal', `aggregation failed: ${errorText(e)}`);
    for (const identifier of named) {
      const memberId = typeof identifier === 'string' ? memberOfIdentifier(key.suite, identifier, key.verificationShares.keys()) : undefined;
      if (memberId !== undefined) cheaters.add(memberId);
    }
    return undefined;
  }
}

/** One member's share checked on its own (RFC 9591 §5.4); false also for bytes that are no scalar. */
function shareVerifies(frost: ReturnType<typeof frostOf>, pub: FrostPublic, list: Parameters<ReturnType<typeof frostOf>['verifyShare']>[1], message: Uint8Array, suite: SigningSuite, memberId: number, share: Uint8Array): boolean {
  try {
    return frost.verifyShare(pub, list, new Uint8Array(message), frostIdentifier(suite, memberId), new Uint8Array(share));
  } catch {
    return false;
  }
}

function failureOf(nodeId: number, e: unknown): SignFailure {
  if (isTkmsError(e)) return { nodeId, code: e.code, message: e.message };
  return { nodeId, code: 'unavailable', message: errorText(e) };
}

/**
 * Fewer than t members could sign. When every member asked refused for the same reason (a policy
 * rule, an expired request), that is the answer: the refusal names the rule. Else a shortfall that
 * lists each member's failure.
 */
function shortfall(job: SignJob, t: number, failures: SignFailure[]): TkmsError {
  const codes = new Set(failures.map((f) => f.code));
  const only = failures[0];
  if (codes.size === 1 && only !== undefined && only.code !== 'bad_signature_share' && only.code !== 'unavailable' && only.code !== 'timeout') {
    return new TkmsError(only.code, `every member asked refused: ${only.message}`, { failures });
  }
  return new TkmsError('insufficient_signers', `key ${job.materialId}: ${job.members.length - failures.length} of the members asked could sign, ${t} are needed`, { failures });
}
