import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encodeHex } from '../../core/bytes.ts';
import { curveBackend } from '../../core/curve-backend.ts';
import { handoverDigest, toleratedFaults, verifyHandover, voteQuorum, type CeremonyFaults } from '../../core/ceremony/index.ts';
import { makeScenario, simulate, type Scenario, type Schedule, type SimResult } from '../unit/ceremony-harness.ts';

/**
 * Random schedules against the agreement (README "Agreement"): random delivery order and delays,
 * duplicates, staggered starts, crashes of up to n′ − q members, and up to f lying members.
 * Safety always: honest members that finish hold the same handover (same digest) and it verifies.
 * Liveness when nothing crashes and honest messages arrive well before deadlines: all honest finish.
 */
type Lie = 'badSubShares' | 'equivocatingDealer' | 'equivocatingProposer' | 'silentProposer' | 'lateMessages' | 'withheldVotes';
const LIES: Lie[] = ['badSubShares', 'equivocatingDealer', 'equivocatingProposer', 'silentProposer', 'lateMessages', 'withheldVotes'];

interface Plan {
  n: number;
  t: number;
  nTo: number;
  tTo: number;
  stayCount: number;
  seed: number;
  liars: { node: number; lie: Lie; target: number }[];
  crashes: { node: number; at: number }[];
  stagger: number[];
  maxDelay: number;
  duplicate: number;
}

const PHASE = 1000;

function scenarioOf(p: Plan): Scenario {
  const stay = Array.from({ length: p.stayCount }, (_, i) => [i + 1, i + 1] as [number, number]);
  return makeScenario({ n: p.n, t: p.t, nTo: p.nTo, tTo: p.tTo, stay, seed: p.seed });
}

function scheduleOf(s: Scenario, p: Plan): Schedule {
  const faults = new Map<number, CeremonyFaults>();
  const lateSenders = new Set<number>();
  const withholdVotes = new Set<number>();
  for (const l of p.liars) {
    const node = s.nodes[l.node]!;
    if (l.lie === 'badSubShares') faults.set(node.index, { badSubShareTo: [1 + (l.target % p.nTo)] });
    if (l.lie === 'equivocatingDealer') faults.set(node.index, { equivocateDealing: true });
    if (l.lie === 'equivocatingProposer') faults.set(node.index, { equivocateProposal: true });
    if (l.lie === 'silentProposer') faults.set(node.index, { silent: true });
    if (l.lie === 'lateMessages') lateSenders.add(node.index);
    if (l.lie === 'withheldVotes') withholdVotes.add(node.index);
  }
  return {
    seed: p.seed,
    phaseMs: PHASE,
    minDelay: 1,
    maxDelay: p.maxDelay,
    duplicate: p.duplicate,
    faults,
    lateSenders,
    withholdVotes,
    startAt: new Map(p.stagger.map((at, i) => [i, at])),
    crashAt: new Map(p.crashes.map((c) => [c.node, c.at])),
  };
}

/** Committees 3..5 → 3..7 with f lying members among the arriving ones (and each liar's fault fitting its role). */
const plan = (opts: { crashes: boolean; slow: boolean }): fc.Arbitrary<Plan> =>
  fc
    .record({ n: fc.integer({ min: 3, max: 5 }), nTo: fc.integer({ min: 4, max: 7 }), seed: fc.integer({ min: 1, max: 1_000_000 }) })
    .chain(({ n, nTo, seed }) =>
      fc.record({ t: fc.integer({ min: 2, max: n - 1 }), tTo: fc.integer({ min: 2, max: Math.max(2, Math.ceil(nTo / 2)) }), stayCount: fc.integer({ min: 1, max: Math.min(n, nTo) }) }).chain(({ t, tTo, stayCount }) => {
        const f = toleratedFaults(nTo, tTo);
        const q = voteQuorum(nTo, tTo);
        // Node indexes: 0..n−1 are the leaving members (the first stayCount also arrive), then the new ones.
        const total = n + nTo - stayCount;
        const liars = fc.uniqueArray(fc.record({ node: fc.integer({ min: 0, max: total - 1 }), lie: fc.constantFrom(...LIES), target: fc.nat(10) }), { maxLength: Math.min(f, n - t), selector: (l) => l.node });
        const crashes = opts.crashes ? fc.uniqueArray(fc.record({ node: fc.integer({ min: 0, max: total - 1 }), at: fc.integer({ min: 0, max: 8 * PHASE }) }), { maxLength: nTo - q, selector: (c) => c.node }) : fc.constant([]);
        return fc.record({
          n: fc.constant(n),
          t: fc.constant(t),
          nTo: fc.constant(nTo),
          tTo: fc.constant(tTo),
          stayCount: fc.constant(stayCount),
          seed: fc.constant(seed),
          liars,
          crashes,
          stagger: fc.array(fc.integer({ min: 0, max: opts.slow ? PHASE : PHASE / 4 }), { minLength: total, maxLength: total }),
          maxDelay: opts.slow ? fc.integer({ min: 1, max: 3 * PHASE }) : fc.integer({ min: 1, max: PHASE / 4 }),
          duplicate: fc.constantFrom(0, 0.1),
        });
      }),
    )
    // A liar's fault must fit its role: dealer faults need a leaving member, proposer faults an arriving one.
    .map((p) => ({
      ...p,
      liars: p.liars.filter((l) => {
        const leaving = l.node < p.n;
        const arriving = l.node < p.stayCount || l.node >= p.n;
        if (l.lie === 'badSubShares' || l.lie === 'equivocatingDealer') return leaving;
        if (l.lie === 'equivocatingProposer') return arriving;
        return true;
      }),
      // Liars and crashed members are counted against the same f: crash only honest ones.
      crashes: (p.crashes as { node: number; at: number }[]).filter((c) => !p.liars.some((l) => l.node === c.node)),
    }));

function describePlan(p: Plan): string {
  return `${p.n}/${p.t}→${p.nTo}/${p.tTo} stay ${p.stayCount}, liars ${p.liars.map((l) => `${l.node}:${l.lie}`).join(',') || 'none'}, crashes ${p.crashes.map((c) => `${c.node}@${c.at}`).join(',') || 'none'}, delay ≤ ${p.maxDelay}`;
}

function honestIndexes(s: Scenario, p: Plan): number[] {
  const lying = new Set(p.liars.map((l) => l.node));
  const crashed = new Set(p.crashes.map((c) => c.node));
  return s.nodes.map((n) => n.index).filter((i) => !lying.has(i) && !crashed.has(i));
}

function assertSafe(s: Scenario, p: Plan, r: SimResult): void {
  const to = s.proposal.to;
  const digests = new Set<string>();
  for (const i of honestIndexes(s, p)) {
    const o = r.outcomes[i];
    if (o === undefined) continue;
    verifyHandover(o.certificate, s.proposal.from, new Map(s.keys.map((k) => [k.keyId, k])));
    digests.add(encodeHex(handoverDigest(o.certificate, s.proposal.from, to)));
    const node = s.nodes[i]!;
    if (node.toId !== undefined && o.newShares !== undefined) {
      for (const key of o.certificate.keys) {
        assert.equal(encodeHex(curveBackend().multiplyBaseSecret(o.newShares.get(key.keyId)!)), key.verificationShares[String(node.toId)]);
      }
    }
  }
  assert.ok(digests.size <= 1, `honest members hold ${digests.size} different handovers (${describePlan(p)})`);
}

describe('ceremony agreement properties (random schedules)', function () {
  this.timeout(120_000);

  it('safety: random delivery order and delays up to 3φ, duplicates, starts staggered up to φ, crashes of up to n′ − q members, up to f liars (bad sub-shares, equivocating dealer or proposer, silent proposer, messages only at/after deadlines, withheld votes): no two honest members hold different handovers, and every one verifies', () => {
    fc.assert(
      fc.property(plan({ crashes: true, slow: true }), (p) => {
        const s = scenarioOf(p);
        const r = simulate(s, scheduleOf(s, p));
        assertSafe(s, p, r);
      }),
      { numRuns: 8 },
    );
  });

  it('liveness: no crashes, honest messages within φ/4 and starts within φ/4, up to f liars: every honest member finishes with the same verified handover and its share', () => {
    fc.assert(
      fc.property(plan({ crashes: false, slow: false }), (p) => {
        const s = scenarioOf(p);
        const r = simulate(s, scheduleOf(s, p));
        assertSafe(s, p, r);
        for (const i of honestIndexes(s, p)) {
          const c = r.ceremonies[i]!;
          assert.equal(c.phase, 'done', `honest node ${i} ended ${c.phase} (${c.failureReason}); ${describePlan(p)}`);
          if (s.nodes[i]!.toId !== undefined) assert.ok(r.outcomes[i]!.newShares, `honest arriving node ${i} has its share; ${describePlan(p)}`);
        }
      }),
      { numRuns: 8 },
    );
  });
});
