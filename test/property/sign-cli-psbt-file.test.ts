import assert from 'node:assert/strict';
import fc from 'fast-check';
import { psbtFromFile } from '../../client/sign-cli-commands.ts';
import { isTkmsError } from '../../core/errors.ts';
import { mutation } from '../support/byte-mutations.ts';
import { buildPsbt, HOT } from '../support/psbt-fixtures.ts';

/**
 * `tkms sign --psbt` reads whatever file it is given as a binary PSBT or its base64 text. Any
 * content gives PSBT bytes (starting with the BIP174 magic) or a bad_psbt; a PSBT reads the same
 * whichever way it was written.
 */
const MAGIC = [0x70, 0x73, 0x62, 0x74, 0xff];
const RUNS = 500;

function readOrRefuse(content: Uint8Array): Uint8Array | undefined {
  try {
    const bytes = psbtFromFile(content);
    assert.deepEqual([...bytes.subarray(0, 5)], MAGIC);
    return bytes;
  } catch (e) {
    assert.ok(isTkmsError(e) && e.code === 'bad_psbt' && e.httpStatus === 400, `expected bad_psbt, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    return undefined;
  }
}

const psbt = fc
  .array(fc.bigInt({ min: 1n, max: 10n ** 8n }), { minLength: 1, maxLength: 3 })
  .map((amounts) => buildPsbt(amounts.map((amount) => ({ amount })), [{ script: HOT.script, amount: 1n }]));

/** Base64 as tools write it: one line, or wrapped at some width with LF or CRLF, maybe with a final line break. */
const written = (bytes: Uint8Array) =>
  fc.record({ width: fc.constantFrom(0, 64, 76), eol: fc.constantFrom('\n', '\r\n'), final: fc.boolean() }).map(({ width, eol, final }) => {
    const b64 = Buffer.from(bytes).toString('base64');
    const lines = width === 0 ? [b64] : b64.match(new RegExp(`.{1,${width}}`, 'g'))!;
    return new TextEncoder().encode(lines.join(eol) + (final ? eol : ''));
  });

describe('property: PSBT file reader (client/sign-cli-commands.ts psbtFromFile)', () => {
  it('random bytes and text give PSBT bytes or a bad_psbt', () => {
    const base64ish = fc.array(fc.constantFrom(...'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/= \r\n\t'), { maxLength: 200 }).map((cs) => new TextEncoder().encode(cs.join('')));
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), base64ish, fc.uint8Array({ maxLength: 100 }).map((tail) => Uint8Array.from([...MAGIC, ...tail]))), (content) => {
        readOrRefuse(content);
      }),
      { numRuns: RUNS },
    );
  });

  it('a PSBT reads the same from its binary and from its base64 however wrapped; mutations of either read or are refused', () => {
    fc.assert(
      fc.property(
        psbt.chain((bytes) => fc.tuple(fc.constant(bytes), written(bytes))).chain(([bytes, text]) => fc.tuple(fc.constant(bytes), fc.constant(text), mutation(text))),
        ([bytes, text, mutated]) => {
          assert.deepEqual(psbtFromFile(bytes), bytes);
          assert.deepEqual(psbtFromFile(text), bytes);
          readOrRefuse(mutated);
        },
      ),
      { numRuns: 200 },
    );
  });
});
