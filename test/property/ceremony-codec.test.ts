import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isTkmsError } from '../../core/errors.ts';
import { encodeUnsigned, withSignature } from '../../core/ceremony/codec.ts';
import { decodeCeremonyMessage, maxAttempts, ReshareCeremony, type CeremonyShape } from '../../core/ceremony/index.ts';
import { mutation } from '../support/byte-mutations.ts';
import { identityOf, makeScenario, paramsOf, simulate, type MessageKind, type Scenario, type SimResult } from '../unit/ceremony-harness.ts';

const KINDS: MessageKind[] = ['hello', 'dealing', 'complaint', 'proposal', 'echo', 'vote', 'certificate'];

describe('ceremony codec properties', function () {
  this.timeout(120_000);
  let s: Scenario;
  let run: SimResult;
  let shape: CeremonyShape;

  before(() => {
    // A member in both committees (its votes carry two ids) and a dealer with bad sub-shares (so complaints exist).
    s = makeScenario({ n: 4, t: 2, nTo: 4, tTo: 2, stay: [[1, 1], [2, 2]], keyIds: ['key-a', 'key-b'] });
    run = simulate(s, { seed: 2, maxDelay: 3, faults: new Map([[0, { badSubShareTo: [3] }]]) });
    shape = { n: 4, t: 2, nTo: 4, tTo: 2, keys: 2, maxAttempts: maxAttempts(4) };
    for (const kind of KINDS) assert.ok((run.samples.get(kind) ?? []).length > 0, `a ${kind} was sent`);
  });

  const fresh = () => new ReshareCeremony(paramsOf(s, s.nodes[5]!), identityOf(s.nodes[5]!), { timing: { phaseMs: 1000 } });

  for (const kind of KINDS) {
    it(`${kind}: decodes and re-encodes byte for byte`, () => {
      for (const raw of run.samples.get(kind)!) {
        const m = decodeCeremonyMessage(raw, shape);
        assert.equal(m.body.kind, kind);
        assert.deepEqual(withSignature(encodeUnsigned(m.body), m.signature), raw);
      }
    });

    it(`${kind}: every flipped, truncated, extended, spliced encoding is refused with a TkmsError (bad_request)`, () => {
      const ceremony = fresh();
      const samples = run.samples.get(kind)!;
      fc.assert(
        fc.property(
          fc.nat(samples.length - 1).chain((i) => mutation(samples[i]!)),
          (mutated) => {
            fc.pre(!samples.some((x) => Buffer.compare(x, mutated) === 0));
            assert.throws(() => ceremony.receive(mutated, 0), (e: unknown) => isTkmsError(e, 'bad_request'));
          },
        ),
        { numRuns: kind === 'certificate' || kind === 'proposal' ? 60 : 150 },
      );
    });
  }

  it('random bytes only ever raise a TkmsError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.constantFrom(...KINDS.map((_, i) => i + 1)), (bytes, type) => {
        const input = bytes.length >= 2 ? Uint8Array.from([1, type, ...bytes.slice(2)]) : bytes;
        try {
          decodeCeremonyMessage(input, shape);
        } catch (e) {
          assert.ok(isTkmsError(e), String(e));
        }
      }),
      { numRuns: 500 },
    );
  });
});
