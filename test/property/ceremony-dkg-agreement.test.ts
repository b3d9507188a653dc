import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encodeHex } from '../../core/bytes.ts';
import { curveBackend } from '../../core/curve-backend.ts';
import { verifyDkgPublicResult } from '../../core/dkg/result.ts';
import { toleratedFaults, voteQuorum, type DkgCeremonyFaults } from '../../core/ceremony/index.ts';
import { makeDkgScenario, simulateDkg, type DkgSchedule, type DkgScenario, type DkgSimResult } from '../unit/ceremony-dkg-harness.ts';

/**
 * Random schedules against the DKG on the ceremony engine (README "DKG"): random delivery order and
 * delays, duplicates, staggered starts, crashes, and up to f lying members, each with one lie.
 * Safety always: honest members that finish hold the same result (same unsigned fields, so the same
 * QUAL and key), it verifies as every verifier checks it, and each share matches its Y_i; never two
 * results. Liveness when nothing crashes and honest messages arrive well before deadlines: every
 * honest member finishes with its share.
 */
type Lie = 'badSubShares' | 'equivocatingDealer' | 'equivocatingProposer' | 'silent' | 'lateMessages' | 'withheldVotes' | 'sendToSome' | 'badProofOfKnowledge' | 'falseComplaint';
const LIES: Lie[] = ['badSubShares', 'equivocatingDealer', 'equivocatingProposer', 'silent', 'lateMessages', 'withheldVotes', 'sendToSome', 'badProofOfKnowledge', 'falseComplaint'];

interface Plan {
  n: number;
  t: number;
  seed: number;
  liars: { node: number; lie: Lie; target: number }[];
  crashes: { node: number; at: number }[];
  stagger: number[];
  maxDelay: number;
  duplicate: number;
}

const PHASE = 1000;

function scheduleOf(s: DkgScenario, p: Plan): DkgSchedule {
  const faults = new Map<number, DkgCeremonyFaults>();
  const lateSenders = new Set<number>();
  const withholdVotes = new Set<number>();
  const sendOnlyTo = new Map<number, Set<number>>();
  for (const l of p.liars) {
    const target = 1 + (l.target % p.n);
    if (l.lie === 'badSubShares') faults.set(l.node, { badSubShareTo: [target] });
    if (l.lie === 'equivocatingDealer') faults.set(l.node, { equivocateDealing: true });
    if (l.lie === 'equivocatingProposer') faults.set(l.node, { equivocateProposal: true });
    if (l.lie === 'silent') faults.set(l.node, { silent: true });
    if (l.lie === 'badProofOfKnowledge') faults.set(l.node, { badProofOfKnowledge: true });
    if (l.lie === 'falseComplaint') faults.set(l.node, { falseComplaintAgainst: [target] });
    if (l.lie === 'lateMessages') lateSenders.add(l.node);
    if (l.lie === 'withheldVotes') withholdVotes.add(l.node);
    // Every message of the liar reaches a subset of the others picked by `target`'s bits.
    if (l.lie === 'sendToSome') sendOnlyTo.set(l.node, new Set(s.nodes.map((x) => x.index).filter((i) => ((l.target + 3) >> i) % 2 === 1)));
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
    sendOnlyTo,
    startAt: new Map(p.stagger.map((at, i) => [i, at])),
    crashAt: new Map(p.crashes.map((c) => [c.node, c.at])),
  };
}

/** Committees of 4..7 with up to f liars (and, for safety, crashes of honest members). */
const plan = (opts: { crashes: boolean; slow: boolean }): fc.Arbitrary<Plan> =>
  fc
    .record({ n: fc.integer({ min: 4, max: 7 }), seed: fc.integer({ min: 1, max: 1_000_000 }) })
    .chain(({ n, seed }) =>
      fc.integer({ min: 2, max: Math.ceil(n / 2) + 1 }).chain((t) => {
        const f = toleratedFaults(n, t);
        const q = voteQuorum(n, t);
        const liars = fc.uniqueArray(fc.record({ node: fc.integer({ min: 0, max: n - 1 }), lie: fc.constantFrom(...LIES), target: fc.nat(255) }), { maxLength: f, selector: (l) => l.node });
        const crashes = opts.crashes ? fc.uniqueArray(fc.record({ node: fc.integer({ min: 0, max: n - 1 }), at: fc.integer({ min: 0, max: 8 * PHASE }) }), { maxLength: n - q, selector: (c) => c.node }) : fc.constant([]);
        return fc.record({
          n: fc.constant(n),
          t: fc.constant(t),
          seed: fc.constant(seed),
          liars,
          crashes,
          stagger: fc.array(fc.integer({ min: 0, max: opts.slow ? PHASE : PHASE / 4 }), { minLength: n, maxLength: n }),
          maxDelay: opts.slow ? fc.integer({ min: 1, max: 3 * PHASE }) : fc.integer({ min: 1, max: PHASE / 4 }),
          duplicate: fc.constantFrom(0, 0.1),
        });
      }),
    )
    // Liars and crashed members count against the same f: crash only honest ones.
    .map((p) => ({ ...p, crashes: (p.crashes as { node: number; at: number }[]).filter((c) => !p.liars.some((l) => l.node === c.node)) }));

function describePlan(p: Plan): string {
  return `${p.t}-of-${p.n} seed ${p.seed}, liars ${p.liars.map((l) => `${l.node}:${l.lie}/${l.target}`).join(',') || 'none'}, crashes ${p.crashes.map((c) => `${c.node}@${c.at}`).join(',') || 'none'}, delay ≤ ${p.maxDelay}, stagger ${p.stagger.join(',')}`;
}

function honestIndexes(s: DkgScenario, p: Plan): number[] {
  const out = new Set([...p.liars.map((l) => l.node), ...p.crashes.map((c) => c.node)]);
  return s.nodes.map((n) => n.index).filter((i) => !out.has(i));
}

function assertSafe(s: DkgScenario, p: Plan, r: DkgSimResult): void {
  const expected = { committeeId: s.committee.committeeId, t: s.committee.t, memberKeys: s.memberKeys };
  const results = new Set<string>();
  for (const i of honestIndexes(s, p)) {
    const o = r.outcomes[i];
    if (o === undefined) continue;
    verifyDkgPublicResult(o.result, expected);
    const { signatures: _s, ...unsigned } = o.result;
    results.add(JSON.stringify(unsigned));
    if (o.share !== undefined) assert.equal(encodeHex(curveBackend().multiplyBaseSecret(o.share)), o.result.verificationShares[String(i + 1)], `node ${i}'s share is on its Y_i (${describePlan(p)})`);
  }
  assert.ok(results.size <= 1, `honest members hold ${results.size} different results (${describePlan(p)})`);
}

describe('DKG ceremony agreement properties (random schedules, lying members)', function () {
  this.timeout(600_000);

  it('safety: random delivery order and delays up to 3φ, duplicates, starts staggered up to φ, crashes of up to n − q honest members, up to f liars (bad sub-shares, equivocating dealer or proposer, silent, messages timed at deadlines, withheld votes, messages to some members only, bad proof of knowledge, false complaints): no two honest members hold different results, and every one verifies', () => {
    fc.assert(
      fc.property(plan({ crashes: true, slow: true }), (p) => {
        const s = makeDkgScenario({ n: p.n, t: p.t, seed: p.seed });
        assertSafe(s, p, simulateDkg(s, scheduleOf(s, p)));
      }),
      { numRuns: 12 },
    );
  });

  it('liveness: no crashes, honest messages within φ/4 and starts within φ/4, up to f liars: every honest member finishes with the same verified result and its share', () => {
    fc.assert(
      fc.property(plan({ crashes: false, slow: false }), (p) => {
        const s = makeDkgScenario({ n: p.n, t: p.t, seed: p.seed });
        const r = simulateDkg(s, scheduleOf(s, p));
        assertSafe(s, p, r);
        for (const i of honestIndexes(s, p)) {
          const c = r.ceremonies[i]!;
          assert.equal(c.phase, 'done', `honest node ${i} ended ${c.phase} (${c.failureReason}); ${describePlan(p)}`);
          assert.ok(r.outcomes[i]!.share !== undefined, `honest node ${i} has its share; ${describePlan(p)}`);
        }
      }),
      { numRuns: 12 },
    );
  });
});
