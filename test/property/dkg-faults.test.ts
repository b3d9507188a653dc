import assert from 'node:assert/strict';
import fc from 'fast-check';
import { bytesToHex } from '../../core/bytes.ts';
import { decodePoint, G } from '../../core/curve.ts';
import { interpolateSecret } from '../../core/shamir.ts';
import { encodeDkgPublicResult, verifyDkgPublicResult, type DkgFaults } from '../../core/dkg/index.ts';
import { runDkg, type Envelope } from '../unit/dkg-harness.ts';

type FaultKind = 'none' | 'badShare' | 'silent' | 'equivocate' | 'falseComplaint' | 'badJustification' | 'falseEvidence' | 'shiftedAnswer' | 'equivocateComplaints';
/** Scenarios per run; TKMS_DKG_FAULT_RUNS raises it for a longer soak. */
const RUNS = Number(process.env.TKMS_DKG_FAULT_RUNS ?? 25);
/** Faulty members that still follow the protocol closely enough to finish with the others. */
const FINISHING: ReadonlySet<FaultKind> = new Set<FaultKind>(['none', 'falseComplaint', 'falseEvidence']);

/**
 * Random committee sizes, delivery orders and one misbehaving member: every honest member ends
 * done with the same verifiable key, and the misbehaving dealer is excluded exactly when it should be.
 */
describe('DKG under random delivery order and one fault', function () {
  this.timeout(180_000 * Math.max(1, RUNS / 100));

  it('honest members always agree on a correct key', () => {
    const scenario = fc
      .record({
        n: fc.integer({ min: 2, max: 6 }),
        kind: fc.constantFrom<FaultKind>('none', 'badShare', 'silent', 'equivocate', 'falseComplaint', 'badJustification', 'falseEvidence', 'shiftedAnswer', 'equivocateComplaints'),
        seed: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
        pick: fc.nat(1000),
      })
      .chain((s) => fc.record({ s: fc.constant(s), t: fc.integer({ min: 1, max: FINISHING.has(s.kind) ? s.n : s.n - 1 }) }));

    fc.assert(
      fc.property(scenario, ({ s, t }) => {
        const ids = Array.from({ length: s.n }, (_, i) => i + 1);
        const bad = ids[s.pick % s.n]!;
        const victim = ids.filter((id) => id !== bad)[s.pick % (s.n - 1)]!;
        const faults: Record<number, DkgFaults> = {};
        if (s.kind === 'badShare') faults[bad] = { badShareTo: [victim] };
        if (s.kind === 'silent') faults[bad] = { silent: true };
        if (s.kind === 'equivocate') faults[bad] = { equivocateRound1: [victim] };
        if (s.kind === 'falseComplaint') faults[bad] = { falseComplaintAgainst: [victim] };
        if (s.kind === 'badJustification') faults[bad] = { badJustificationTo: [victim] };
        if (s.kind === 'falseEvidence') faults[bad] = { falseEvidenceAgainst: [victim] };
        // The victim complains against the bad dealer and (its share lost) against another dealer, whose answer the bad one shifts.
        const other = ids.find((id) => id !== bad && id !== victim);
        if (s.kind === 'shiftedAnswer') faults[bad] = { shiftedAnswer: { complainer: victim, victim: other ?? victim, offset: 1 + (s.pick % 97) } };
        // Complains against the victim, with one signed copy to some members and another to the rest.
        if (s.kind === 'equivocateComplaints') faults[bad] = { falseComplaintAgainst: [victim], equivocateComplaints: ids.filter((id) => id !== bad).slice(0, Math.ceil((s.n - 1) / 2)) };
        const lost = s.kind === 'shiftedAnswer' && other !== undefined ? (e: Envelope): boolean => !(e.from === other && e.to === victim && e.payload[1] === 3) : undefined;
        const run = runDkg({ t, n: s.n, seed: s.seed, faults, ...(lost ? { filter: lost } : {}) });

        const honest = ids.filter((id) => FINISHING.has(s.kind) || id !== bad);
        const results = honest.map((id) => {
          const session = run.sessions.get(id)!;
          assert.equal(session.phase, 'done', `member ${id}: ${session.abortReason}`);
          return session.result!;
        });
        assert.equal(new Set(results.map((r) => bytesToHex(encodeDkgPublicResult(r)))).size, 1, 'honest members disagree');
        const result = results[0]!;
        verifyDkgPublicResult(result, { ...run.params, memberKeys: run.keyring.memberKeys });
        const excluded = s.kind === 'badShare' || s.kind === 'silent' || s.kind === 'equivocate' || s.kind === 'badJustification' || s.kind === 'shiftedAnswer';
        assert.equal(result.qualified.includes(bad), !excluded, `dealer ${bad} qualified = ${result.qualified.includes(bad)} for ${s.kind}`);
        const shares = honest.slice(0, t).map((id) => ({ id, value: run.sessions.get(id)!.takeShare() }));
        assert.ok(G.multiply(interpolateSecret(shares)).equals(decodePoint(result.groupPublicKey)));
        return true;
      }),
      { numRuns: RUNS },
    );
  });
});
