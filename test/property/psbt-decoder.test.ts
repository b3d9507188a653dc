import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isTkmsError, type ErrorCode } from '../../core/errors.ts';
import { parseKeyPolicy } from '../../core/keys/policy.ts';
import { keyInputIndexes, keyPathSighashes, parsePsbt } from '../../core/signing/psbt.ts';
import { planSigning } from '../../core/signing/sign-policy.ts';
import { mutation } from '../support/byte-mutations.ts';
import { buildPsbt, HOT, INTERNAL_KEY, KEY, OTHER, STRANGER } from '../support/psbt-fixtures.ts';

/**
 * The PSBT decoder takes bytes from anyone who may ask a node to sign. Whatever they are, parsing
 * gives a parse or a `bad_psbt` (never another exception), and planning a signature over them gives
 * a plan or a 4xx refusal.
 */
const RUNS = 400;

const warm = parseKeyPolicy({ sign: { psbt: { network: 'testnet', allowedAddresses: [HOT.address!], dailyValueCapSats: '100000' } } });

function typed<T>(fn: () => T, codes: readonly ErrorCode[] | 'any4xx', label: string): T | undefined {
  try {
    return fn();
  } catch (e) {
    assert.ok(isTkmsError(e), `${label}: expected a TkmsError, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    if (codes === 'any4xx') assert.ok(e.httpStatus >= 400 && e.httpStatus < 500, `${label}: ${e.code} ${e.message}`);
    else assert.ok(codes.includes(e.code), `${label}: ${e.code} not in ${codes.join(', ')}: ${e.message}`);
    return undefined;
  }
}

/** Valid PSBTs of a few shapes: the key's inputs and another's, allowed, foreign and change outputs. */
const validPsbt = fc
  .record({
    inputs: fc.array(fc.record({ amount: fc.bigInt({ min: 1n, max: 10n ** 9n }), other: fc.boolean() }), { minLength: 1, maxLength: 3 }),
    outputs: fc.array(fc.record({ amount: fc.bigInt({ min: 0n, max: 10n ** 9n }), to: fc.constantFrom(HOT.script, KEY.script, STRANGER.script) }), { minLength: 1, maxLength: 3 }),
  })
  .map(({ inputs, outputs }) =>
    buildPsbt(
      inputs.map((i) => (i.other ? { amount: i.amount, script: OTHER.script } : { amount: i.amount })),
      outputs.map((o) => ({ script: o.to, amount: o.amount })),
    ),
  );

function decodeAll(bytes: Uint8Array, label: string): void {
  const parsed = typed(() => parsePsbt(bytes, 'testnet'), ['bad_psbt'], label);
  if (parsed === undefined) return;
  assert.ok(parsed.inputs.length > 0 && parsed.outputs.length > 0);
  assert.match(parsed.txid, /^[0-9a-f]{64}$/);
  const mine = keyInputIndexes(parsed, INTERNAL_KEY);
  const sighashes = typed(() => keyPathSighashes(parsed, mine), ['bad_psbt'], label);
  if (sighashes !== undefined) for (const h of sighashes) assert.equal(h.length, 32);
}

describe('property: PSBT decoder (core/signing/psbt.ts)', () => {
  it('random bytes are a parse or a bad_psbt', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ minLength: 1, maxLength: 300 }), fc.uint8Array({ maxLength: 200 }).map((tail) => Uint8Array.from([0x70, 0x73, 0x62, 0x74, 0xff, ...tail]))), (bytes) => {
        decodeAll(bytes, `random ${Buffer.from(bytes).toString('hex').slice(0, 80)}`);
      }),
      { numRuns: RUNS },
    );
  });

  it('mutated valid PSBTs are a parse or a bad_psbt, and a signing plan or a 4xx refusal', () => {
    fc.assert(
      fc.property(validPsbt.chain((psbt) => fc.tuple(fc.constant(psbt), mutation(psbt))), ([, mutated]) => {
        const label = `mutated ${Buffer.from(mutated).toString('hex').slice(0, 80)}`;
        decodeAll(mutated, label);
        if (mutated.length === 0) return;
        typed(() => planSigning(warm, 'warm', 'bip340', { kind: 'psbt', psbt: mutated }, { internalKey: INTERNAL_KEY }, 0n), 'any4xx', label);
      }),
      { numRuns: RUNS },
    );
  });

  it('valid PSBTs parse, and a plan or a policy refusal follows from their outputs', () => {
    fc.assert(
      fc.property(validPsbt, (psbt) => {
        const parsed = parsePsbt(psbt, 'testnet');
        const strangers = parsed.outputs.filter((o) => Buffer.compare(o.script, STRANGER.script) === 0);
        const mine = keyInputIndexes(parsed, INTERNAL_KEY);
        const outcome = typed(() => planSigning(warm, 'warm', 'bip340', { kind: 'psbt', psbt }, { internalKey: INTERNAL_KEY }, 0n), 'any4xx', 'valid');
        if (mine.length === 0 || strangers.length > 0) assert.equal(outcome, undefined);
        else {
          // What leaves the key: outputs to others, and the fee (inputs less outputs).
          const fee = parsed.inputs.reduce((s, i) => s + (i.witnessUtxo?.amount ?? 0n), 0n) - parsed.outputs.reduce((s, o) => s + o.valueSats, 0n);
          const sent = parsed.outputs.filter((o) => Buffer.compare(o.script, HOT.script) === 0).reduce((s, o) => s + o.valueSats, 0n) + fee;
          if (fee < 0n || sent > 100_000n) assert.equal(outcome, undefined);
          else assert.deepEqual({ inputs: outcome?.inputIndexes, value: outcome?.valueSats }, { inputs: mine, value: sent });
        }
      }),
      { numRuns: 100 },
    );
  });
});
