/**
 * Test support: an in-memory message router that drives n DkgSessions with real Ed25519
 * identities. Deterministic given its seed; optionally shuffles delivery order.
 */
import { generateKeyPairSync, sign as cryptoSign } from 'node:crypto';
import { ed25519 } from '@noble/curves/ed25519.js';
import { DkgSession, dkgSignedBytes, verifyMemberSignature, type DkgFaults, type DkgIdentity, type DkgOutbound, type DkgParams } from '../../core/dkg/index.ts';
import { seededRandom, shuffled } from '../support/seeded-random.ts';

export interface Keyring {
  identity(id: number): DkgIdentity;
  verify: DkgIdentity['verify'];
  /** Raw Ed25519 keys by member id, what verifyDkgPublicResult checks results against. */
  memberKeys: ReadonlyMap<number, Uint8Array>;
}

/** Ed25519 identities via noble (what the tests use); `makeNodeCryptoKeyring` is the faster node:crypto variant for timing. */
export function makeKeyring(ids: readonly number[]): Keyring {
  const secret = new Map<number, Uint8Array>();
  const publicKeys = new Map<number, Uint8Array>();
  for (const id of ids) {
    const sk = ed25519.utils.randomSecretKey();
    secret.set(id, sk);
    publicKeys.set(id, ed25519.getPublicKey(sk));
  }
  const verify = (memberId: number, message: Uint8Array, signature: Uint8Array): boolean => {
    const pk = publicKeys.get(memberId);
    return pk !== undefined && verifyMemberSignature(pk, message, signature);
  };
  return {
    verify,
    memberKeys: publicKeys,
    identity(id: number): DkgIdentity {
      const sk = secret.get(id);
      if (sk === undefined) throw new Error(`no key for ${id}`);
      return { sign: (message) => ed25519.sign(dkgSignedBytes(message), sk), verify, memberKeys: publicKeys };
    },
  };
}

export function makeNodeCryptoKeyring(ids: readonly number[]): Keyring {
  const pairs = new Map(ids.map((id) => [id, generateKeyPairSync('ed25519')] as const));
  const memberKeys = new Map([...pairs].map(([id, pair]) => [id, new Uint8Array(Buffer.from(pair.publicKey.export({ format: 'jwk' }).x!, 'base64url'))] as const));
  // Verification is the shared strict rule (as on nodes); only signing is node:crypto.
  const verify = (memberId: number, message: Uint8Array, signature: Uint8Array): boolean => {
    const pk = memberKeys.get(memberId);
    return pk !== undefined && verifyMemberSignature(pk, message, signature);
  };
  return {
    verify,
    memberKeys,
    identity(id: number): DkgIdentity {
      const pair = pairs.get(id);
      if (pair === undefined) throw new Error(`no key for ${id}`);
      return { sign: (message) => new Uint8Array(cryptoSign(null, dkgSignedBytes(message), pair.privateKey)), verify, memberKeys };
    },
  };
}


export interface Envelope {
  from: number;
  to: number;
  payload: Uint8Array;
  /** How many envelopes this sender had emitted before this one (a broadcast counts once per recipient). */
  seq: number;
}

export interface RunOptions {
  t: number;
  n: number;
  faults?: Record<number, DkgFaults>;
  /** Shuffle delivery order with this seed (default: FIFO). */
  seed?: number;
  /** Members started only after everyone else's first messages were delivered to them (tests buffering). */
  lateStarters?: number[];
  /** Called for every envelope before delivery; return false to drop it. */
  filter?: (envelope: Envelope) => boolean;
  /** Deliver this corrupted copy of every payload (same sender) before the genuine one. */
  tamper?: (payload: Uint8Array) => Uint8Array;
  /** Identities to use (default: fresh noble Ed25519 keys). */
  keyring?: (ids: readonly number[]) => Keyring;
  /** Upper bound on deadline rounds (each calls advance() on every unfinished session). */
  maxDeadlines?: number;
  /**
   * Needs `seed`. In each deadline round the members' deadlines fire one by one in random order,
   * with a random part of the messages in flight delivered before each: deadlines that are not
   * simultaneous, and messages still on their way when one fires.
   */
  jitter?: boolean;
}

export interface RunResult {
  sessions: Map<number, DkgSession>;
  keyring: Keyring;
  params: Omit<DkgParams, 'selfId'>;
  /** Every envelope that was delivered, in order (for codec tests). */
  delivered: Envelope[];
  deadlines: number;
}

export function runDkg(options: RunOptions): RunResult {
  const ids = Array.from({ length: options.n }, (_, i) => i + 1);
  const keyring = (options.keyring ?? makeKeyring)(ids);
  const params = {
    keyId: 'test-key',
    committeeId: 'test-committee',
    sessionId: Uint8Array.from({ length: 16 }, (_, i) => i + 1),
    t: options.t,
    memberIds: ids,
  };
  const sessions = new Map<number, DkgSession>();
  for (const id of ids) {
    const faults = options.faults?.[id];
    sessions.set(id, new DkgSession({ ...params, selfId: id }, keyring.identity(id), faults ? { faults } : {}));
  }
  const random = options.seed === undefined ? undefined : seededRandom(options.seed);
  const queue: Envelope[] = [];
  const delivered: Envelope[] = [];
  const sent = new Map<number, number>();
  const enqueue = (from: number, outs: DkgOutbound[]): void => {
    for (const out of outs) {
      const targets = out.to === 'all' ? ids.filter((id) => id !== from) : [out.to];
      for (const to of targets) {
        const seq = sent.get(from) ?? 0;
        sent.set(from, seq + 1);
        queue.push({ from, to, payload: out.payload, seq });
      }
    }
  };
  const late = new Set(options.lateStarters ?? []);
  for (const id of ids) if (!late.has(id)) enqueue(id, sessions.get(id)!.start());

  const deliverAll = (limit = Number.POSITIVE_INFINITY): void => {
    for (let steps = 0; queue.length > 0 && steps < limit; steps++) {
      if (steps > 1_000_000) throw new Error('router: too many deliveries');
      const index = random ? Math.floor(random() * queue.length) : 0;
      const envelope = queue.splice(index, 1)[0]!;
      if (options.filter && !options.filter(envelope)) continue;
      delivered.push(envelope);
      const target = sessions.get(envelope.to)!;
      if (options.tamper) enqueue(envelope.to, target.receive(envelope.from, options.tamper(envelope.payload)));
      enqueue(envelope.to, target.receive(envelope.from, envelope.payload));
    }
  };
  deliverAll();
  for (const id of late) enqueue(id, sessions.get(id)!.start());
  deliverAll();

  const unfinished = (): DkgSession[] => [...sessions.values()].filter((s) => s.phase !== 'done' && s.phase !== 'aborted');
  let deadlines = 0;
  const maxDeadlines = options.maxDeadlines ?? 12;
  if (options.jitter && random === undefined) throw new Error('jitter needs a seed');
  while (unfinished().length > 0 && deadlines < maxDeadlines) {
    deadlines++;
    const order = options.jitter ? shuffled([...sessions], random!) : [...sessions];
    for (const [id, session] of order) {
      if (options.jitter) deliverAll(Math.floor(random!() * (queue.length + 1)));
      if (session.phase !== 'done' && session.phase !== 'aborted') enqueue(id, session.advance());
    }
    deliverAll();
  }
  return { sessions, keyring, params, delivered, deadlines };
}
