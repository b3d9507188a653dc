/**
 * Test support: DKG ceremonies (core/ceremony/dkg.ts) on the same in-memory network as the reshare
 * ones (ceremony-harness.ts runNetwork), with real Ed25519 identities.
 */
import { ed25519 } from '@noble/curves/ed25519.js';
import type { Committee } from '../../core/committee.ts';
import { DkgCeremony, type DkgCeremonyFaults, type DkgCeremonyParams } from '../../core/ceremony/index.ts';
import { seededRandom } from '../support/seeded-random.ts';
import { committee, identityOf, runNetwork, type Schedule, type SimNode, type SimResult } from './ceremony-harness.ts';

export interface DkgScenario {
  committee: Committee;
  keyId: string;
  sessionId: Uint8Array;
  /** Node index i is member i + 1 (fromId = toId = its member id). */
  nodes: SimNode[];
  memberKeys: Map<number, Uint8Array>;
  /** The new key's group (absent = secp256k1). */
  curve?: 'ed25519';
}

export type DkgSchedule = Schedule<DkgCeremony, DkgCeremonyFaults>;
export type DkgSimResult = SimResult<DkgCeremony>;

export function makeDkgScenario(opts: { n: number; t: number; seed?: number; epoch?: number; keyId?: string; curve?: 'ed25519' }): DkgScenario {
  const random = seededRandom(opts.seed ?? 1);
  const bytes = (length: number) => Uint8Array.from({ length }, () => Math.floor(random() * 256));
  const nodes: SimNode[] = [];
  for (let id = 1; id <= opts.n; id++) {
    const secretKey = ed25519.utils.randomSecretKey(bytes(32));
    nodes.push({ index: id - 1, secretKey, publicKey: ed25519.getPublicKey(secretKey), fromId: id, toId: id, seed: bytes(32) });
  }
  const c = committee('dkg-ceremony-test', opts.epoch ?? 0, opts.t, nodes.map((x) => ({ id: x.fromId!, publicKey: x.publicKey })));
  return { committee: c, keyId: opts.keyId ?? 'key-dkg', sessionId: bytes(16), nodes, memberKeys: new Map(c.members.map((m) => [m.id, m.publicKey])), ...(opts.curve === undefined ? {} : { curve: opts.curve }) };
}

export function dkgParamsOf(s: DkgScenario, node: SimNode, priorVote?: Uint8Array): DkgCeremonyParams {
  return { keyId: s.keyId, committee: s.committee, sessionId: s.sessionId, seed: node.seed, ...(priorVote ? { priorVote } : {}), ...(s.curve === undefined ? {} : { curve: s.curve }) };
}

export function newDkgCeremony(s: DkgScenario, node: SimNode, opts: { phaseMs?: number; faults?: DkgCeremonyFaults; priorVote?: Uint8Array; signed?: Uint8Array[] } = {}): DkgCeremony {
  return new DkgCeremony(dkgParamsOf(s, node, opts.priorVote), identityOf(node, opts.signed), { timing: { phaseMs: opts.phaseMs ?? 1000 }, ...(opts.faults ? { faults: opts.faults } : {}) });
}

export function simulateDkg(s: DkgScenario, schedule: DkgSchedule = {}): DkgSimResult {
  const phaseMs = schedule.phaseMs ?? 1000;
  const ceremonies = s.nodes.map((node) => newDkgCeremony(s, node, { phaseMs, faults: schedule.faults?.get(node.index) }));
  return runNetwork(s.nodes, ceremonies, schedule);
}
