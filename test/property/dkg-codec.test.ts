import assert from 'node:assert/strict';
import fc from 'fast-check';
import { utf8ToBytes } from '../../core/bytes.ts';
import { isTkmsError } from '../../core/errors.ts';
import { decodeDkgMessage, decodeDkgPublicResult, DkgSession, encodeDkgPublicResult, verifyDkgPublicResult, type DkgPublicResult } from '../../core/dkg/index.ts';
import { complaintsUnsigned, DKG_WIRE_VERSION, justificationUnsigned, MESSAGE_TYPES, verdictUnsigned, withSignature, type JustificationEvidence } from '../../core/dkg/codec.ts';
import { CURVE_ORDER, encodePoint, G } from '../../core/curve.ts';
import { runDkg, type Envelope, type RunResult } from '../unit/dkg-harness.ts';

const LIMITS = { t: 2, n: 3 };

/** Only TkmsError may escape a decoder. */
function typedOrOk(f: () => unknown): boolean {
  try {
    f();
    return true;
  } catch (error) {
    if (isTkmsError(error)) return true;
    throw error;
  }
}

/** Byte-level corruptions of a valid message: flip, truncate, extend, splice. */
const mutation = (bytes: Uint8Array): fc.Arbitrary<Uint8Array> =>
  fc.oneof(
    fc.tuple(fc.nat(bytes.length - 1), fc.integer({ min: 1, max: 255 })).map(([i, x]) => {
      const out = bytes.slice();
      out[i] = out[i]! ^ x;
      return out;
    }),
    fc.nat(bytes.length - 1).map((n) => bytes.slice(0, n)),
    fc.uint8Array({ minLength: 1, maxLength: 40 }).map((tail) => Uint8Array.from([...bytes, ...tail])),
    fc.tuple(fc.nat(bytes.length), fc.uint8Array({ minLength: 1, maxLength: 8 })).map(([i, ins]) => Uint8Array.from([...bytes.slice(0, i), ...ins, ...bytes.slice(i)])),
    fc.tuple(fc.nat(bytes.length - 1), fc.nat(bytes.length - 1)).map(([a, b]) => Uint8Array.from([...bytes.slice(0, Math.min(a, b)), ...bytes.slice(Math.max(a, b) + 1)])),
  );

describe('DKG codec properties', function () {
  this.timeout(120_000);
  let run: RunResult;
  const byType = new Map<number, Envelope[]>();
  let samples: Envelope[] = [];
  before(() => {
    // One faulty run yields every message type: round1, echo, share, complaints with evidence,
    // justification, a verdict withdrawing a complaint, confirm; a second one a verdict with evidence.
    run = runDkg({ t: 2, n: 3, seed: 1, faults: { 1: { badShareTo: [2] }, 3: { falseComplaintAgainst: [2] } } });
    for (const e of run.delivered) byType.set(e.payload[1]!, [...(byType.get(e.payload[1]!) ?? []), e]);
    samples = [...byType.values()].map((list) => list[0]!);
    const proving = runDkg({ t: 2, n: 3, seed: 4, faults: { 2: { badJustificationTo: [3] } } });
    const evidence = proving.delivered.find((e) => e.payload[1] === MESSAGE_TYPES.verdict && e.payload[6] === 1);
    assert.ok(evidence, 'a verdict with evidence');
    samples.push(evidence);
  });

  it('the sample run produced every message type and decodes them', () => {
    assert.deepEqual([...byType.keys()].sort(), Object.values(MESSAGE_TYPES).sort());
    for (const e of samples) assert.equal(decodeDkgMessage(e.payload, LIMITS).kind.length > 0, true);
    for (const s of run.sessions.values()) assert.equal(s.phase, 'done');
  });

  it('random bytes decode or fail with a TkmsError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => typedOrOk(() => decodeDkgMessage(bytes, LIMITS))),
      { numRuns: 2000 },
    );
    // Random bodies behind every valid header reach the type-specific parsers.
    fc.assert(
      fc.property(fc.constantFrom(...Object.values(MESSAGE_TYPES)), fc.uint8Array({ maxLength: 300 }), (type, body) =>
        typedOrOk(() => decodeDkgMessage(Uint8Array.from([DKG_WIRE_VERSION, type, ...body]), LIMITS)),
      ),
      { numRuns: 2000 },
    );
  });

  it('mutated valid messages decode or fail with a TkmsError', () => {
    for (const e of samples) {
      fc.assert(fc.property(mutation(e.payload), (bytes) => typedOrOk(() => decodeDkgMessage(bytes, LIMITS))), { numRuns: 300 });
    }
  });

  it('complaints, justifications and verdicts round-trip through their encoders and decoders', () => {
    const id = fc.integer({ min: 1, max: LIMITS.n });
    const point = fc.bigInt({ min: 1n, max: CURVE_ORDER - 1n }).map((k) => encodePoint(G.multiply(k)));
    const scalar = fc.bigInt({ min: 0n, max: CURVE_ORDER - 1n });
    const signature = fc.uint8Array({ minLength: 1, maxLength: 80 });
    const roundTrip = (unsigned: Uint8Array, sig: Uint8Array): ReturnType<typeof decodeDkgMessage> => {
      const decoded = decodeDkgMessage(withSignature(unsigned, sig), LIMITS) as { signed: Uint8Array; signature: Uint8Array };
      assert.deepEqual(decoded.signed, unsigned);
      assert.deepEqual(decoded.signature, sig);
      return decoded as ReturnType<typeof decodeDkgMessage>;
    };
    fc.assert(
      fc.property(id, fc.array(fc.record({ accused: id, encryptionKey: point, evidence: fc.option(fc.uint8Array({ maxLength: 40 }), { nil: undefined }) }), { maxLength: LIMITS.n }), signature, (complainer, complaints, sig) => {
        const m = roundTrip(complaintsUnsigned(complainer, complaints), sig);
        assert.deepEqual(m, { ...m, kind: 'complaints', complainer, complaints: complaints.map((c) => ({ ...c })) });
      }),
      { numRuns: 200 },
    );
    fc.assert(
      fc.property(id, id, point, point, scalar, signature, (dealer, recipient, recipientKey, ephemeralKey, ciphertext, sig) => {
        const m = roundTrip(justificationUnsigned(dealer, recipient, recipientKey, ephemeralKey, ciphertext), sig);
        assert.deepEqual(m, { ...m, kind: 'justification', dealer, recipient, recipientKey, ephemeralKey, ciphertext });
      }),
      { numRuns: 200 },
    );
    const evidence: fc.Arbitrary<JustificationEvidence | undefined> = fc.option(
      fc.record({ justification: fc.uint8Array({ maxLength: 200 }), pairKey: point, proof: fc.record({ c: scalar, s: scalar }) }),
      { nil: undefined },
    );
    fc.assert(
      fc.property(id, id, evidence, signature, (complainer, dealer, ev, sig) => {
        const m = roundTrip(verdictUnsigned(complainer, dealer, ev), sig);
        const expected = ev === undefined ? undefined : { justification: ev.justification, pairKey: ev.pairKey, proof: { ...ev.proof } };
        assert.deepEqual(m, { ...m, kind: 'verdict', complainer, dealer, evidence: expected });
      }),
      { numRuns: 200 },
    );
  });

  it('wrong limits are rejected with a TkmsError', () => {
    for (const e of samples) {
      assert.ok(typedOrOk(() => decodeDkgMessage(e.payload, { t: 3, n: 3 })));
      assert.ok(typedOrOk(() => decodeDkgMessage(e.payload, { t: 2, n: 1 })));
    }
  });

  it('receive() never throws on corrupted messages from any sender', () => {
    fc.assert(
      fc.property(fc.constantFrom(...samples), fc.integer({ min: -1, max: 5 }), fc.nat(), (sample, from, k) => {
        const params = { ...run.params, selfId: sample.to };
        const session = new DkgSession(params, run.keyring.identity(sample.to));
        session.start();
        const corrupted = fc.sample(mutation(sample.payload), { numRuns: 1, seed: k })[0]!;
        const out = session.receive(from, corrupted);
        assert.ok(Array.isArray(out));
        assert.equal(session.phase === 'round1' || session.phase === 'echo', true);
        return true;
      }),
      { numRuns: 150 },
    );
  });

  it('a run with a corrupted copy of every message still completes identically everywhere', () => {
    let counter = 0;
    const noisy = runDkg({
      t: 2,
      n: 3,
      seed: 2,
      tamper: (payload) => fc.sample(mutation(payload), { numRuns: 1, seed: counter++ })[0]!,
    });
    const results = [...noisy.sessions.values()].map((s) => {
      assert.equal(s.phase, 'done', s.abortReason);
      return Buffer.from(encodeDkgPublicResult(s.result!)).toString('hex');
    });
    assert.equal(new Set(results).size, 1);
  });
});

describe('DKG public result decoding properties', function () {
  this.timeout(60_000);
  let run: RunResult;
  let result: DkgPublicResult;
  let encoded: Uint8Array;
  let text: string;
  before(() => {
    run = runDkg({ t: 2, n: 3, seed: 3 });
    result = run.sessions.get(2)!.result!;
    encoded = encodeDkgPublicResult(result);
    text = new TextDecoder().decode(encoded);
  });

  it('random bytes and random JSON fail with a TkmsError', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 200 }), (b) => typedOrOk(() => decodeDkgPublicResult(b))), { numRuns: 1000 });
    fc.assert(fc.property(fc.jsonValue(), (v) => typedOrOk(() => decodeDkgPublicResult(utf8ToBytes(JSON.stringify(v) ?? 'null')))), { numRuns: 1000 });
  });

  it('mutated encodings either decode to a canonical result or fail with a TkmsError', () => {
    fc.assert(
      fc.property(mutation(encoded), (bytes) => {
        let decoded;
        try {
          decoded = decodeDkgPublicResult(bytes);
        } catch (error) {
          if (isTkmsError(error)) return true;
          throw error;
        }
        // Whatever decodes is canonical: re-encoding reproduces the input exactly.
        assert.equal(new TextDecoder().decode(encodeDkgPublicResult(decoded)), new TextDecoder().decode(bytes));
        return true;
      }),
      { numRuns: 1000 },
    );
  });

  it('verification of a result with one field replaced by a random JSON value fails with a TkmsError only', () => {
    const fields = Object.keys(result);
    fc.assert(
      fc.property(fc.constantFrom(...fields), fc.jsonValue(), (field, value) => {
        const candidate = { ...JSON.parse(text), [field]: value };
        try {
          verifyDkgPublicResult(candidate, { ...run.params, memberKeys: run.keyring.memberKeys });
        } catch (error) {
          if (isTkmsError(error)) return true;
          throw error;
        }
        // Only a no-op replacement may verify.
        assert.deepEqual(candidate, JSON.parse(text));
        return true;
      }),
      { numRuns: 500 },
    );
  });
});
