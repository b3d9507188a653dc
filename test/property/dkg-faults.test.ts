import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encodeHex } from '../../core/bytes.ts';
import { curveBackend } from '../../core/curve-backend.ts';
import { interpolateSecret } from '../../core/shamir.ts';
import { verifyDkgPublicResult } from '../../core/dkg/index.ts';
import { voteQuorum, type DkgCeremonyFaults } from '../../core/ceremony/index.ts';
import { makeDkgScenario, simulateDkg } from '../unit/ceremony-dkg-harness.ts';

type FaultKind = 'none' | 'badSubShare' | 'silent' | 'equivocateDealing' | 'equivocateProposal' | 'falseComplaint' | 'badProofOfKnowledge';
/** Scenarios per run; TKMS_DKG_FAULT_RUNS raises it for a longer soak. */
const RUNS = Number(process.env.TKMS_DKG_FAULT_RUNS ?? 20);
const PHASE_MS = 1000;
/** Dealers every honest member leaves out whatever the schedule (a complaint or a failed proof is public). */
const EXCLUDED: ReadonlySet<FaultKind> = new Set<FaultKind>(['badSubShare', 'silent', 'badProofOfKnowledge']);

/**
 * The DKG on the ceremony engine (core/ceremony DkgCeremony) under random committee sizes,
 * thresholds, delivery orders, delays up to φ/4, duplicated deliveries, starts staggered up to φ/4,
 * one lying member (bad sub-shares to one member, silence, two signed dealings, two signed
 * proposals, a false complaint, a proof of knowledge that fails) and, when the vote quorum allows
 * it, one honest member crashing at a random time: every other honest member ends with the same
 * certified result, which verifies; its share matches its Y_i, and t shares give the group key.
 * (The engine's own agreement properties, with up to f liars timing messages at deadlines, are in
 * ceremony-agreement.test.ts.) Scenarios: test/integration/dkg-scenarios.md.
 */
describe('DKG under random schedules, one lying member and a crash', function () {
  this.timeout(300_000 * Math.max(1, RUNS / 20));

  it('honest members that do not crash always finish with one correct, certified key', () => {
    const scenario = fc
      .record({
        n: fc.integer({ min: 3, max: 6 }),
        kind: fc.constantFrom<FaultKind>('none', 'badSubShare', 'silent', 'equivocateDealing', 'equivocateProposal', 'falseComplaint', 'badProofOfKnowledge'),
        seed: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
        pick: fc.nat(1000),
        crashAt: fc.option(fc.integer({ min: 0, max: 8 * PHASE_MS }), { nil: undefined }),
        duplicate: fc.constantFrom(0, 0.1),
      })
      .chain((s) => fc.record({ s: fc.constant(s), t: fc.integer({ min: 1, max: s.n - 1 }) }));

    fc.assert(
      fc.property(scenario, ({ s, t }) => {
        const d = makeDkgScenario({ n: s.n, t, seed: s.seed });
        const indexes = d.nodes.map((x) => x.index);
        const bad = s.pick % s.n;
        const victim = indexes.filter((i) => i !== bad)[s.pick % (s.n - 1)]!;
        const faults = new Map<number, DkgCeremonyFaults>();
        if (s.kind === 'badSubShare') faults.set(bad, { badSubShareTo: [victim + 1] });
        if (s.kind === 'silent') faults.set(bad, { silent: true });
        if (s.kind === 'equivocateDealing') faults.set(bad, { equivocateDealing: true });
        if (s.kind === 'equivocateProposal') faults.set(bad, { equivocateProposal: true });
        if (s.kind === 'falseComplaint') faults.set(bad, { falseComplaintAgainst: [victim + 1] });
        if (s.kind === 'badProofOfKnowledge') faults.set(bad, { badProofOfKnowledge: true });
        // A crash only where the members left can still form a vote quorum (the liar votes unless
        // silent) and t dealers remain without the liar and the crashed member.
        const voters = s.n - (s.kind === 'silent' ? 1 : 0);
        const crashes = s.crashAt !== undefined && s.kind !== 'badSubShare' && voters - 1 >= voteQuorum(s.n, t) && s.n - 2 >= t;
        const crashed = crashes ? indexes.filter((i) => i !== bad)[(s.pick + 1) % (s.n - 1)] : undefined;
        const startAt = new Map(indexes.map((i) => [i, (s.seed + i * 97) % (PHASE_MS / 4)]));
        const r = simulateDkg(d, {
          seed: s.seed,
          phaseMs: PHASE_MS,
          maxDelay: PHASE_MS / 4,
          duplicate: s.duplicate,
          startAt,
          faults,
          ...(crashed === undefined ? {} : { crashAt: new Map([[crashed, s.crashAt!]]) }),
        });
        assert.deepEqual(r.errors, []);

        const honest = indexes.filter((i) => i !== bad && i !== crashed);
        const expected = { committeeId: d.committee.committeeId, t, memberKeys: d.memberKeys };
        const results = honest.map((i) => {
          const o = r.outcomes[i];
          assert.ok(o, `member ${i + 1} (${s.kind}, crashed ${crashed === undefined ? 'none' : crashed + 1}) finished: ${r.ceremonies[i]!.phase} ${r.ceremonies[i]!.failureReason ?? ''}`);
          return o;
        });
        const { signatures: _s, ...first } = results[0]!.result;
        for (const o of results) {
          const { signatures: _o, ...unsigned } = o.result;
          assert.deepEqual(unsigned, first, 'honest members disagree');
          verifyDkgPublicResult(o.result, expected);
        }
        // A dealer of bad sub-shares is out, unless its victim's complaint came after the agreement (a
        // delay past the complaint grace, core/ceremony/deadlines.ts): then the victim holds no share.
        const lateComplaint = s.kind === 'badSubShare' && first.qualified.includes(bad + 1);
        if (lateComplaint) assert.equal(r.outcomes[victim]?.share, undefined, `the victim ${victim + 1} of dealer ${bad + 1}, agreed before the complaint, holds no share`);
        if (EXCLUDED.has(s.kind) && !lateComplaint) assert.ok(!first.qualified.includes(bad + 1), `dealer ${bad + 1} (${s.kind}) is out: ${JSON.stringify(first.qualified)}`);
        const shares = honest.flatMap((i) => {
          const share = r.outcomes[i]!.share;
          if (share === undefined) return [];
          assert.equal(encodeHex(curveBackend().multiplyBaseSecret(share)), first.verificationShares[String(i + 1)], `member ${i + 1} share matches its Y_i`);
          return [{ id: i + 1, value: share }];
        });
        // Only the victim of bad sub-shares may lack a share (when the liar's dealing was agreed before its complaint arrived).
        assert.ok(shares.length >= honest.length - 1, `${shares.length} of ${honest.length} honest members hold a share`);
        if (shares.length >= t) assert.equal(encodeHex(curveBackend().multiplyBaseSecret(interpolateSecret(shares.slice(0, t)))), first.groupPublicKey);
        return true;
      }),
      { numRuns: RUNS },
    );
  });
});
