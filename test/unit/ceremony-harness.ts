/**
 * Test support: an in-memory network of ceremonies (reshare/refresh here, the DKG through
 * ceremony-dkg-harness.ts: both run on `runNetwork`) with real Ed25519 identities.
 * Simulated time (no timers): messages are delivered after a per-message delay drawn from a seeded
 * source, members are ticked at their own deadlines, and a schedule can delay, drop, duplicate or
 * crash. Deterministic given its seed.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import { createPrivateKey, sign as cryptoSign } from 'node:crypto';
import { base58btc } from 'multiformats/bases/base58';
import { curveBackend } from '../../core/curve-backend.ts';
import { dkgSignedBytes } from '../../core/dkg/member-signatures.ts';
import { isTkmsError } from '../../core/errors.ts';
import { splitSecret, type ScalarShare } from '../../core/shamir.ts';
import type { Committee } from '../../core/committee.ts';
import { ceremonyMessageKind, type CeremonyMessageKind } from '../../core/ceremony/codec.ts';
import { proposalDigest, ReshareCeremony, type CeremonyFaults, type CeremonyIdentity, type CeremonyApi, type KeyEpochData, type ReshareParams, type ReshareProposal } from '../../core/ceremony/index.ts';
import { seededRandom } from '../support/seeded-random.ts';

export interface SimNode {
  index: number;
  secretKey: Uint8Array;
  publicKey: Uint8Array;
  fromId?: number;
  toId?: number;
  seed: Uint8Array;
}

export interface Scenario {
  proposal: ReshareProposal;
  proposalId: Uint8Array;
  keys: KeyEpochData[];
  /** Per key id: the old shares by from-id (what the test interpolates). */
  oldShares: Map<string, ScalarShare[]>;
  secrets: Map<string, bigint>;
  nodes: SimNode[];
}

export function peerIdOf(publicKey: Uint8Array): string {
  return base58btc.baseEncode(Uint8Array.from([0x00, 36, 0x08, 0x01, 0x12, 0x20, ...publicKey]));
}

export function committee(id: string, epoch: number, t: number, members: { id: number; publicKey: Uint8Array }[]): Committee {
  return {
    committeeId: id,
    epoch,
    t,
    members: members.map((m) => ({ id: m.id, publicKey: m.publicKey, peerId: peerIdOf(m.publicKey), multiaddrs: [`/ip4/127.0.0.1/tcp/${5000 + m.id}`] })).sort((a, b) => a.id - b.id),
  };
}

/**
 * from = ids 1..n (threshold t), to = ids 1..nTo (threshold tTo). `stay` maps a from-id to the
 * to-id the same node has in `to` (a refresh: every i → i with n = nTo, t = tTo); other to-ids are
 * new nodes.
 */
export function makeScenario(opts: { n: number; t: number; nTo: number; tTo: number; stay: [number, number][]; keyIds?: string[]; seed?: number }): Scenario {
  const random = seededRandom(opts.seed ?? 1);
  const keyIds = opts.keyIds ?? ['key-1'];
  const nodes: SimNode[] = [];
  const newNode = (): SimNode => {
    const secretKey = ed25519.utils.randomSecretKey();
    const seed = Uint8Array.from({ length: 32 }, () => Math.floor(random() * 256));
    const node: SimNode = { index: nodes.length, secretKey, publicKey: ed25519.getPublicKey(secretKey), seed };
    nodes.push(node);
    return node;
  };
  for (let i = 1; i <= opts.n; i++) newNode().fromId = i;
  for (const [fromId, toId] of opts.stay) nodes[fromId - 1]!.toId = toId;
  for (let j = 1; j <= opts.nTo; j++) if (!nodes.some((x) => x.toId === j)) newNode().toId = j;
  const from = committee('ceremony-test', 4, opts.t, nodes.filter((x) => x.fromId !== undefined).map((x) => ({ id: x.fromId!, publicKey: x.publicKey })));
  const to = committee('ceremony-test', 5, opts.tTo, nodes.filter((x) => x.toId !== undefined).map((x) => ({ id: x.toId!, publicKey: x.publicKey })));
  const proposal: ReshareProposal = { from, to, keyIds };
  const oldShares = new Map<string, ScalarShare[]>();
  const secrets = new Map<string, bigint>();
  const keys: KeyEpochData[] = keyIds.map((keyId) => {
    const secret = BigInt(Math.floor(random() * 2 ** 48)) * 1_000_003n + 7n;
    const shares = splitSecret(secret, opts.t, opts.n);
    oldShares.set(keyId, shares);
    secrets.set(keyId, secret);
    return {
      keyId,
      epoch: from.epoch,
      t: opts.t,
      groupPublicKey: curveBackend().multiplyBaseSecret(secret),
      verificationShares: new Map(shares.map((s) => [s.id, curveBackend().multiplyBaseSecret(s.value)])),
    };
  });
  return { proposal, proposalId: proposalDigest(proposal), keys, oldShares, secrets, nodes };
}

/**
 * Signs as a node does (node/ceremony-identity.ts: node:crypto, the same deterministic RFC 8032
 * signature noble makes, many times faster on the large proposal and certificate messages), so
 * simulated members spend their time where real ones do.
 */
export function identityOf(node: SimNode, signed?: Uint8Array[]): CeremonyIdentity {
  const privateKey = createPrivateKey({ key: { kty: 'OKP', crv: 'Ed25519', d: Buffer.from(node.secretKey).toString('base64url'), x: Buffer.from(node.publicKey).toString('base64url') }, format: 'jwk' });
  return {
    publicKey: node.publicKey,
    sign: (message) => {
      signed?.push(message);
      return new Uint8Array(cryptoSign(null, dkgSignedBytes(message), privateKey));
    },
  };
}

export function paramsOf(s: Scenario, node: SimNode, priorVote?: Uint8Array): ReshareParams {
  const oldShares = node.fromId === undefined ? undefined : new Map(s.keys.map((k) => [k.keyId, s.oldShares.get(k.keyId)!.find((x) => x.id === node.fromId)!.value]));
  return { proposal: s.proposal, proposalId: s.proposalId, keys: s.keys, seed: node.seed, ...(oldShares ? { oldShares } : {}), ...(priorVote ? { priorVote } : {}) };
}

export type MessageKind = CeremonyMessageKind;
/** A message's kind by its type byte, reshare or DKG. */
export function kindOf(payload: Uint8Array): MessageKind | undefined {
  return ceremonyMessageKind(payload)?.kind;
}

/** What the simulator drives: ReshareCeremonyApi and DkgCeremonyApi alike. */
export type SimCeremony = CeremonyApi<unknown>;

export interface Schedule<C extends SimCeremony = ReshareCeremony, F extends { silent?: boolean } = CeremonyFaults> {
  seed?: number;
  phaseMs?: number;
  /** Delivery delay range (ms) for messages of honest members. */
  minDelay?: number;
  maxDelay?: number;
  /** Probability that a delivery is duplicated. */
  duplicate?: number;
  /** Per node index: when it starts (default 0). */
  startAt?: Map<number, number>;
  faults?: Map<number, F>;
  /** Node indexes that crash (stop for good) at the given time. */
  crashAt?: Map<number, number>;
  /** Lying nodes whose messages are delivered only at the next multiple of phaseMs (at/after a deadline). */
  lateSenders?: Set<number>;
  /** Lying nodes whose messages reach only these node indexes (a liar that sends to some members only). */
  sendOnlyTo?: Map<number, Set<number>>;
  /** Lying nodes whose votes (and certificates) are never delivered. */
  withholdVotes?: Set<number>;
  /** Only these kinds reach these nodes (a member that sees nothing but the certificate). */
  onlyKinds?: Map<number, Set<MessageKind>>;
  /** Stop simulating at this time. */
  until?: number;
  /** Called at every step: a test injects its own (lying) messages with `push`. */
  hook?: (now: number, ceremonies: C[], push: (to: number, payload: Uint8Array, at: number) => void) => void;
}

export interface SimResult<C extends SimCeremony = ReshareCeremony> {
  ceremonies: C[];
  outcomes: ReturnType<C['outcome']>[];
  persisted: (Uint8Array | undefined)[];
  errors: string[];
  deliveries: number;
  endMs: number;
  /** Up to 4 distinct payloads of each kind that were sent (codec tests). */
  samples: Map<MessageKind, Uint8Array[]>;
}

interface Delivery {
  at: number;
  seq: number;
  to: number;
  payload: Uint8Array;
}

export function simulate(s: Scenario, schedule: Schedule = {}, make?: (node: SimNode, phaseMs: number) => ReshareCeremony): SimResult {
  const phaseMs = schedule.phaseMs ?? 1000;
  const ceremonies = s.nodes.map((node) => (make ? make(node, phaseMs) : new ReshareCeremony(paramsOf(s, node), identityOf(node), { timing: { phaseMs }, faults: schedule.faults?.get(node.index) })));
  return runNetwork(s.nodes, ceremonies, schedule);
}

/** Runs one ceremony per node (aligned with nodes) over the simulated network until all finish or `until`. */
export function runNetwork<C extends SimCeremony, F extends { silent?: boolean }>(nodes: readonly SimNode[], ceremonies: C[], schedule: Schedule<C, F>): SimResult<C> {
  const s = { nodes };
  const random = seededRandom(schedule.seed ?? 7);
  const phaseMs = schedule.phaseMs ?? 1000;
  const minDelay = schedule.minDelay ?? 1;
  const maxDelay = schedule.maxDelay ?? 1;
  const until = schedule.until ?? 10 ** 9;
  const persisted: (Uint8Array | undefined)[] = s.nodes.map(() => undefined);
  const samples = new Map<MessageKind, Uint8Array[]>();
  const errors: string[] = [];
  const queue: Delivery[] = [];
  let seq = 0;
  let deliveries = 0;
  const started = new Set<number>();
  const crashed = (i: number, now: number) => (schedule.crashAt?.get(i) ?? Infinity) <= now;
  const byKey = new Map(s.nodes.map((n) => [Buffer.from(n.publicKey).toString('hex'), n.index]));

  const send = (from: number, now: number, step: { persistVote?: Uint8Array; outbound: { payload: Uint8Array; to?: Uint8Array[] }[] }) => {
    if (step.persistVote !== undefined) persisted[from] = step.persistVote;
    for (const out of step.outbound) {
      const kind = kindOf(out.payload);
      const list = samples.get(kind!) ?? [];
      if (list.length < 4 && !list.some((p) => Buffer.compare(p, out.payload) === 0)) list.push(out.payload);
      samples.set(kind!, list);
      // A member withholding its vote withholds the certificates carrying it too.
      if ((kind === 'vote' || kind === 'certificate') && schedule.withholdVotes?.has(from)) continue;
      const targets = out.to ? out.to.map((k) => byKey.get(Buffer.from(k).toString('hex'))!) : s.nodes.map((n) => n.index).filter((i) => i !== from);
      for (const to of targets) {
        if (schedule.sendOnlyTo?.get(from)?.has(to) === false) continue;
        if (schedule.onlyKinds?.get(to) !== undefined && !schedule.onlyKinds.get(to)!.has(kind!)) continue;
        const copies = random() < (schedule.duplicate ?? 0) ? 2 : 1;
        for (let c = 0; c < copies; c++) {
          let at = now + minDelay + Math.floor(random() * (maxDelay - minDelay + 1));
          if (schedule.lateSenders?.has(from)) at = (Math.floor(now / phaseMs) + 1) * phaseMs + Math.floor(random() * 3);
          queue.push({ at, seq: seq++, to, payload: out.payload });
        }
      }
    }
  };

  let now = 0;
  for (let guard = 0; guard < 5_000_000; guard++) {
    const pendingStarts = s.nodes.filter((n) => !started.has(n.index) && !crashed(n.index, schedule.startAt?.get(n.index) ?? 0)).map((n) => schedule.startAt?.get(n.index) ?? 0);
    const deadlines = ceremonies.map((c, i) => (started.has(i) && !crashed(i, now) ? c.nextDeadline() : undefined)).filter((d): d is number => d !== undefined);
    const nextDelivery = queue.reduce((m, d) => Math.min(m, d.at), Infinity);
    const next = Math.min(nextDelivery, ...deadlines, ...pendingStarts);
    if (next === Infinity || next > until) break;
    now = Math.max(now, next);
    for (const n of s.nodes) {
      const at = schedule.startAt?.get(n.index) ?? 0;
      if (!started.has(n.index) && at <= now && !crashed(n.index, now)) {
        started.add(n.index);
        send(n.index, now, ceremonies[n.index]!.start(now));
      }
    }
    const due = queue.filter((d) => d.at <= now).sort((a, b) => a.at - b.at || a.seq - b.seq);
    const rest = queue.filter((d) => d.at > now);
    queue.length = 0;
    queue.push(...rest);
    schedule.hook?.(now, ceremonies, (to, payload, at) => queue.push({ at, seq: seq++, to, payload }));
    for (const d of due) {
      // A member that has not started yet still takes messages (the runner hands them over as they come).
      if (crashed(d.to, now)) continue;
      deliveries++;
      try {
        send(d.to, now, ceremonies[d.to]!.receive(d.payload, now));
      } catch (error) {
        if (!isTkmsError(error)) throw error;
        errors.push(`${d.to}: ${error.message}`);
      }
    }
    ceremonies.forEach((c, i) => {
      if (!started.has(i) || crashed(i, now)) return;
      const deadline = c.nextDeadline();
      if (deadline !== undefined && deadline <= now) send(i, now, c.tick(now));
    });
    const active = s.nodes.filter((n) => !crashed(n.index, now) && !schedule.faults?.get(n.index)?.silent);
    if (queue.length === 0 && active.every((n) => ceremonies[n.index]!.phase === 'done' || ceremonies[n.index]!.phase === 'failed')) break;
  }
  return { ceremonies, outcomes: ceremonies.map((c) => c.outcome() as ReturnType<C['outcome']>), persisted, errors, deliveries, endMs: now, samples };
}
