import { generateKeyPair } from '@libp2p/crypto/keys';
import type { Libp2p } from 'libp2p';
import type { PrivateKey } from '@libp2p/interface';
import {
  ACL_PROTOCOL,
  decodeAclReply,
  decodeKeysReply,
  decodePartialBatchReply,
  decodePartialReply,
  encodeAclRequest,
  encodePartialBatchOfJson,
  encodeKeysRequest,
  encodePartialRequest,
  isTkmsError,
  KEYS_PROTOCOL,
  MAX_PARTIAL_BATCH,
  PARTIAL_BATCH_PROTOCOL,
  PARTIAL_PROTOCOL,
  partialRequestJson,
  TkmsError,
  type ErrorCode,
  type PartialAnswer,
  type PartialReply,
  type PartialRequest,
  type RevocationEnvelope,
} from '../core/index.ts';
import { decodeKeyChangeReply, encodeKeyChangeRequest, KEY_CHANGES_PROTOCOL, type KeyChangeRequest } from '../core/keys/key-wire.ts';
import type { KeyChange } from '../core/keys/key-change.ts';
import type { Committee } from '../net/committee.ts';
import { createHost, FrameClient, MemberConnections } from '../net/p2p.ts';
import { errorText } from '../core/errors.ts';
import type { Logger } from 'pino';
import { RequestBatcher } from './request-batcher.ts';

/**
 * The gateway's libp2p side: its identity (nodes authorize partial requests by their signatures,
 * not by who carries them; revocations only from the gateway peer ids they know), a connection to every committee member, and
 * the fan-out of a delegation: ask exactly t nodes (fastest healthy first), replace any that
 * fail, and hedge to one more whenever the adaptive delay (at most hedgeDelayMs) passes
 * without t answers.
 */
export interface NodeFailure {
  nodeId: number;
  code: ErrorCode;
  message: string;
  /** The node's own retry hint, when it refused with rate_limited. */
  retryAfterSeconds?: number;
}

/** A member that applied a key change: now, or before (`known`). */
export interface KeyChangeAck {
  nodeId: number;
  known: boolean;
}

export interface FanOutResult {
  answers: PartialAnswer[];
  failures: NodeFailure[];
  /** Node ids asked, in order. */
  asked: number[];
  /**
   * Nodes whose failure is their own answer (a refusal), not a transport failure: a node that
   * says `unavailable` (its chain) differs from one that could not be reached.
   */
  refusedBy: number[];
}

/** One member's keys reply: its DKG results, the epoch it serves and the certificates that lead there. */
export interface KeysReport {
  memberId: number;
  keys: unknown[];
  epoch?: number;
  handovers?: unknown[];
}

export interface FanOutOptions {
  t: number;
  exclude: ReadonlySet<number>;
  timeoutMs: number;
  /** Upper bound of the hedge delay; the delay itself follows the chosen members' latency. 0 disables hedging. */
  hedgeDelayMs: number;
}

/**
 * Latency per member, smoothed the way TCP estimates round-trip time (RFC 6298: mean and mean
 * deviation), so fan-out asks the fastest healthy members first and hedges once a member is
 * clearly slower than it usually is, instead of after a fixed delay.
 */
class MemberStats {
  private readonly latency = new Map<number, { mean: number; deviation: number }>();
  private readonly failedAt = new Map<number, number>();

  record(id: number, ms: number): void {
    const prev = this.latency.get(id);
    if (prev === undefined) this.latency.set(id, { mean: ms, deviation: ms / 2 });
    else this.latency.set(id, { mean: 0.875 * prev.mean + 0.125 * ms, deviation: 0.75 * prev.deviation + 0.25 * Math.abs(prev.mean - ms) });
    this.failedAt.delete(id);
  }

  forget(id: number): void {
    this.latency.delete(id);
    this.failedAt.delete(id);
  }

  fail(id: number): void {
    this.failedAt.set(id, Date.now());
  }

  failedLately(id: number): boolean {
    const failed = this.failedAt.get(id);
    return failed !== undefined && Date.now() - failed < 10_000;
  }

  /** Lower is better: recently failed members go last for 10 s, then by latency. */
  score(id: number): number {
    const penalty = this.failedLately(id) ? 1e9 : 0;
    return penalty + (this.latency.get(id)?.mean ?? 50);
  }

  /**
   * How long to wait for the slowest of `ids` before asking one more: its mean plus four mean
   * deviations (what TCP waits before retransmitting), between MIN_HEDGE_MS and `maxMs`.
   * Without a measurement for one of them, `maxMs`.
   */
  hedgeDelay(ids: readonly number[], maxMs: number): number {
    let delay = MIN_HEDGE_MS;
    for (const id of ids) {
      const l = this.latency.get(id);
      if (l === undefined) return maxMs;
      delay = Math.max(delay, l.mean + 4 * l.deviation);
    }
    return Math.min(maxMs, Math.ceil(delay));
  }
}

/** A node's own refusal (not a transport failure), with its retry hint. */
function nodeRefusal(reply: { code: ErrorCode; message: string; retryAfterSeconds?: number }): TkmsError {
  return new TkmsError(reply.code, reply.message, { refusedByNode: true, ...(reply.retryAfterSeconds === undefined ? {} : { retryAfterSeconds: reply.retryAfterSeconds }) });
}

/** Below this, a hedge would mostly duplicate work that was about to answer anyway. */
const MIN_HEDGE_MS = 10;

/**
 * Batch frames in flight to one member before further partial requests queue for the next frame.
 * A node answers one request at a time anyway, so on a short link one frame in flight costs little
 * waiting and makes the fullest frames: measured on a loopback 3-of-5 devnet, 119 decrypts/s
 * against 105 with two.
 */
export const DEFAULT_PARTIAL_FRAMES_IN_FLIGHT = 1;
/** How long a member that lacked the batch protocol gets single requests before batching is tried again. */
const SINGLE_ONLY_RECHECK_MS = 5 * 60_000;

export class NodePool {
  private readonly stats = new MemberStats();
  /** Where membersInTurn starts next. */
  private turn = 0;
  private readonly frames: FrameClient;
  private readonly batchers = new Map<number, RequestBatcher<string, PartialReply | TkmsError>>();
  /** Members that did not serve the batch protocol: until when to send them single requests. */
  private readonly singleOnlyUntil = new Map<number, number>();

  private constructor(
    private current: Committee,
    private readonly libp2p: Libp2p,
    private conns: MemberConnections,
    private readonly log: Logger,
    private readonly partialFramesInFlight: number,
  ) {
    this.frames = new FrameClient(libp2p);
  }

  static async start(committee: Committee, log: Logger, opts: { partialFramesInFlight?: number; privateKey?: PrivateKey } = {}): Promise<NodePool> {
    const privateKey = opts.privateKey ?? (await generateKeyPair('Ed25519'));
    const libp2p = await createHost({ privateKey }, [], committee);
    const conns = new MemberConnections(libp2p, committee, 0, log);
    await libp2p.start();
    await conns.start();
    return new NodePool(committee, libp2p, conns, log, opts.partialFramesInFlight ?? DEFAULT_PARTIAL_FRAMES_IN_FLIGHT);
  }

  /** The committee asked: the gateway's file at first, then each later epoch the gateway reaches (KeyDirectory). */
  get committee(): Committee {
    return this.current;
  }

  /**
   * Asks another committee's members from now on (a handover moved the keys to them). A member id may
   * name another peer at the new epoch, so nothing learnt of a changed member is kept: its batcher,
   * latency and protocol notes go.
   */
  async retarget(committee: Committee): Promise<void> {
    const before = new Map(this.current.members.map((m) => [m.id, m.peerId]));
    const conns = new MemberConnections(this.libp2p, committee, 0, this.log);
    await conns.start();
    this.conns.stop();
    this.conns = conns;
    this.current = committee;
    for (const id of before.keys()) {
      if (committee.members.find((m) => m.id === id)?.peerId === before.get(id)) continue;
      this.batchers.get(id)?.close();
      this.batchers.delete(id);
      this.singleOnlyUntil.delete(id);
      this.stats.forget(id);
    }
  }

  connectedMembers(): number[] {
    return this.conns.connectedMembers();
  }

  private async send(memberId: number, protocol: string, frame: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    const peer = this.conns.peerIdOf(memberId);
    if (peer === undefined) throw new TkmsError('bad_request', `no member ${memberId}`);
    return this.frames.request(peer, protocol, frame, { timeoutMs });
  }

  /** Public DKG results, epoch and a page of handover certificates (leaving `handoversFrom` and later) as each reachable member reports them (unvalidated: see KeyDirectory). */
  async fetchKeys(timeoutMs: number, handoversFrom = 0): Promise<KeysReport[]> {
    const members = this.committee.members.map((m) => m.id);
    const replies = await Promise.all(
      members.map(async (memberId): Promise<KeysReport | undefined> => {
        try {
          const reply = decodeKeysReply(await this.send(memberId, KEYS_PROTOCOL, encodeKeysRequest(handoversFrom), timeoutMs));
          if (!reply.ok) return undefined;
          return { memberId, keys: reply.keys, ...(reply.epoch === undefined ? {} : { epoch: reply.epoch }), ...(reply.handovers === undefined ? {} : { handovers: reply.handovers }) };
        } catch (e) {
          this.log.debug({ member: memberId, err: errorText(e) }, 'keys request failed');
          return undefined;
        }
      }),
    );
    return replies.filter((r): r is KeysReport => r !== undefined);
  }

  /** Every member, connected and fastest first (the order a fan-out asks them in). */
  membersBestFirst(): number[] {
    return this.order(new Set());
  }

  /**
   * Every member for a threshold signature: the connected ones that have not failed lately first, in
   * an order that turns by one at each call, then the rest best first. Each signature costs its t
   * signers CPU and a nonce each; turning spreads both over every healthy member instead of the
   * fastest t (a signature takes about as long from any of them on one network).
   */
  membersInTurn(): number[] {
    const order = this.order(new Set());
    const connected = new Set(this.conns.connectedMembers());
    const healthy = order.filter((id) => connected.has(id) && !this.stats.failedLately(id));
    const rest = order.filter((id) => !healthy.includes(id));
    const k = healthy.length === 0 ? 0 : this.turn++ % healthy.length;
    return [...healthy.slice(k), ...healthy.slice(0, k), ...rest];
  }

  private order(exclude: ReadonlySet<number>): number[] {
    const connected = new Set(this.conns.connectedMembers());
    return this.committee.members
      .map((m) => m.id)
      .filter((id) => !exclude.has(id))
      .sort((a, b) => (connected.has(a) ? 0 : 1e12) + this.stats.score(a) - ((connected.has(b) ? 0 : 1e12) + this.stats.score(b)));
  }

  /** One partial request to one member, batched with others to that member under load. */
  private askForPartial(memberId: number, requestJson: string, timeoutMs: number): Promise<PartialReply | TkmsError> {
    let batcher = this.batchers.get(memberId);
    if (batcher === undefined) {
      batcher = new RequestBatcher<string, PartialReply | TkmsError>((items, frameTimeoutMs) => this.sendPartialBatch(memberId, items, frameTimeoutMs), {
        maxBatch: MAX_PARTIAL_BATCH,
        maxInFlight: this.partialFramesInFlight,
      });
      this.batchers.set(memberId, batcher);
    }
    return batcher.request(requestJson, timeoutMs);
  }

  private async sendPartialBatch(memberId: number, items: string[], timeoutMs: number): Promise<(PartialReply | TkmsError)[]> {
    if ((this.singleOnlyUntil.get(memberId) ?? 0) <= Date.now()) {
      try {
        const reply = decodePartialBatchReply(await this.send(memberId, PARTIAL_BATCH_PROTOCOL, encodePartialBatchOfJson(items), timeoutMs), items.length);
        if (!reply.ok) throw nodeRefusal(reply);
        return reply.replies;
      } catch (e) {
        // A node from before batching: one request per frame for a while (it may be upgraded).
        if (!(e instanceof Error && e.name === 'UnsupportedProtocolError')) throw e;
        this.singleOnlyUntil.set(memberId, Date.now() + SINGLE_ONLY_RECHECK_MS);
        this.log.info({ member: memberId }, 'member does not serve batched partial requests; sending them one by one');
      }
    }
    // Each request on its own frame, and each failure its own reply: one request's transport error
    // must not fail the others that happened to share the batch.
    const encoder = new TextEncoder();
    const settled = await Promise.allSettled(items.map(async (item) => decodePartialReply(await this.send(memberId, PARTIAL_PROTOCOL, encoder.encode(item), timeoutMs))));
    return settled.map((r): PartialReply | TkmsError => {
      if (r.status === 'fulfilled') return r.value;
      return isTkmsError(r.reason) ? r.reason : new TkmsError('unavailable', errorText(r.reason));
    });
  }

  async requestPartials(request: PartialRequest, opts: FanOutOptions): Promise<FanOutResult> {
    const requestJson = partialRequestJson(request);
    const queue = this.order(opts.exclude);
    const answers: PartialAnswer[] = [];
    const failures: NodeFailure[] = [];
    const asked: number[] = [];
    const refusedBy: number[] = [];
    let inFlight = 0;

    return new Promise<FanOutResult>((resolve) => {
      let done = false;
      let hedgeDelayMs = opts.hedgeDelayMs;
      let hedgeTimer: NodeJS.Timeout | undefined;
      const finish = (): void => {
        if (done) return;
        done = true;
        if (hedgeTimer !== undefined) clearTimeout(hedgeTimer);
        resolve({ answers, failures, asked, refusedBy });
      };
      const settleIfDone = (): void => {
        if (answers.length >= opts.t) finish();
        else if (inFlight === 0 && queue.length === 0) finish();
      };
      const armHedge = (): void => {
        if (hedgeTimer !== undefined) clearTimeout(hedgeTimer);
        if (hedgeDelayMs <= 0) return;
        hedgeTimer = setTimeout(() => {
          if (done) return;
          if (queue.length > 0) launch(queue.shift()!);
          armHedge();
        }, hedgeDelayMs);
      };
      const launch = (memberId: number): void => {
        asked.push(memberId);
        inFlight++;
        const started = performance.now();
        this.askForPartial(memberId, requestJson, opts.timeoutMs)
          .then((reply) => {
            if (reply instanceof TkmsError) throw reply;
            if (!reply.ok) throw nodeRefusal(reply);
            if (reply.nodeId !== memberId) throw new TkmsError('bad_request', `member ${memberId} answered as node ${reply.nodeId}`);
            this.stats.record(memberId, performance.now() - started);
            if (!done) answers.push({ nodeId: reply.nodeId, wrapped: reply.wrapped, proof: reply.proof, ...(reply.epoch === undefined ? {} : { epoch: reply.epoch }) });
          })
          .catch((e: unknown) => {
            const err = isTkmsError(e) ? e : new TkmsError('unavailable', errorText(e));
            // A refusal is the node doing its job; only transport failures mark it unhealthy.
            const transport = err.code === 'internal' || err.code === 'unavailable' || (err.code === 'timeout' && err.details?.queued !== true);
            if (!isTkmsError(e) || transport) this.stats.fail(memberId);
            if (err.details?.refusedByNode === true) refusedBy.push(memberId);
            const retry = err.details?.retryAfterSeconds;
            failures.push({ nodeId: memberId, code: err.code, message: err.message, ...(typeof retry === 'number' ? { retryAfterSeconds: retry } : {}) });
            if (!done && queue.length > 0) launch(queue.shift()!);
          })
          .finally(() => {
            inFlight--;
            settleIfDone();
          });
      };
      hedgeDelayMs = this.stats.hedgeDelay(queue.slice(0, opts.t), opts.hedgeDelayMs);
      for (let i = 0; i < opts.t && queue.length > 0; i++) launch(queue.shift()!);
      if (inFlight === 0) finish();
      else armHedge();
    });
  }

  /** One partial request to one member, no fan-out (tests and tools that address a node directly). */
  async askNode(memberId: number, request: PartialRequest, timeoutMs: number): Promise<ReturnType<typeof decodePartialReply>> {
    return decodePartialReply(await this.send(memberId, PARTIAL_PROTOCOL, encodePartialRequest(request), timeoutMs));
  }

  /** Raw frame to a member on any protocol (fuzzing and diagnostics). */
  async sendRaw(memberId: number, protocol: string, frame: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    return this.send(memberId, protocol, frame, timeoutMs);
  }

  /** Pushes a revocation to every member; returns who acknowledged storing (or already holding) it. */
  async broadcastRevocation(item: RevocationEnvelope, timeoutMs: number): Promise<{ acked: number[]; failures: NodeFailure[] }> {
    const frame = encodeAclRequest({ type: 'revoke', item });
    const { answers, failures } = await this.toEveryMember(async (memberId) => {
      const reply = decodeAclReply(await this.send(memberId, ACL_PROTOCOL, frame, timeoutMs));
      if (!reply.ok) throw new TkmsError(reply.code, reply.message);
    });
    return { acked: answers.map((a) => a.nodeId), failures };
  }

  /**
   * Asks every member at once; each answer or refusal (a transport failure as `unavailable`), in
   * member order.
   */
  private async toEveryMember<T>(ask: (memberId: number) => Promise<T>): Promise<{ answers: { nodeId: number; value: T }[]; failures: NodeFailure[] }> {
    const answers: { nodeId: number; value: T }[] = [];
    const failures: NodeFailure[] = [];
    await Promise.all(
      this.committee.members.map(async (m) => {
        try {
          answers.push({ nodeId: m.id, value: await ask(m.id) });
        } catch (e) {
          const err = isTkmsError(e) ? e : new TkmsError('unavailable', errorText(e));
          failures.push({ nodeId: m.id, code: err.code, message: err.message });
        }
      }),
    );
    answers.sort((a, b) => a.nodeId - b.nodeId);
    failures.sort((a, b) => a.nodeId - b.nodeId);
    return { answers, failures };
  }

  /**
   * Sends a key change to every member at once; returns who applied it (now, or before: `known`).
   * An answer for another key or an earlier sequence is no acknowledgement.
   */
  async broadcastKeyChange(change: KeyChange, timeoutMs: number): Promise<{ acked: KeyChangeAck[]; failures: NodeFailure[] }> {
    const frame = encodeKeyChangeRequest({ type: 'change', change });
    const { answers, failures } = await this.toEveryMember(async (memberId) => {
      const reply = decodeKeyChangeReply(await this.send(memberId, KEY_CHANGES_PROTOCOL, frame, timeoutMs));
      if (!reply.ok) throw new TkmsError(reply.code, reply.message);
      if (reply.type !== 'applied' || reply.keyId !== change.keyId || reply.sequence < change.sequence) {
        throw new TkmsError('bad_request', `member ${memberId} answered a key change with something else than its application`);
      }
      return reply.known;
    });
    return { acked: answers.map((a) => ({ nodeId: a.nodeId, known: a.value })), failures };
  }

  /** A page of key changes from one member: everything it holds (`sync`) or one key's history. */
  async keyChangePage(memberId: number, request: Extract<KeyChangeRequest, { type: 'sync' | 'history' }>, timeoutMs: number): Promise<{ changes: KeyChange[]; next: number | null }> {
    const reply = decodeKeyChangeReply(await this.send(memberId, KEY_CHANGES_PROTOCOL, encodeKeyChangeRequest(request), timeoutMs));
    if (!reply.ok) throw new TkmsError(reply.code, reply.message);
    if (reply.type !== 'page') throw new TkmsError('bad_request', `member ${memberId} answered a key change page request with something else than a page`);
    return { changes: reply.changes, next: reply.next };
  }

  async stop(): Promise<void> {
    for (const batcher of this.batchers.values()) batcher.close();
    this.conns.stop();
    await this.frames.close();
    await this.libp2p.stop();
  }
}
