import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeBase64, TkmsError } from '../../core/index.ts';

describe('decodeBase64 (canonical spelling)', () => {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=';
  const nearBase64 = fc.array(fc.constantFrom(...alphabet), { maxLength: 24 }).map((cs) => cs.join(''));

  it('accepts exactly the strings node:buffer writes for the bytes they decode to', () => {
    fc.assert(
      fc.property(fc.oneof(nearBase64, fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b).toString('base64'))), (value) => {
        const canonical = /^[A-Za-z0-9+/]*={0,2}$/.test(value) && value.length % 4 === 0 && Buffer.from(Buffer.from(value, 'base64')).toString('base64') === value;
        let decoded: Uint8Array | undefined;
        try {
          decoded = decodeBase64(value);
        } catch (e) {
          assert.ok(e instanceof TkmsError && e.code === 'bad_request', `untyped or wrong error: ${String(e)}`);
        }
        assert.equal(decoded !== undefined, canonical, value);
        if (decoded !== undefined) assert.deepEqual(Buffer.from(decoded), Buffer.from(value, 'base64'));
      }),
      { numRuns: 3000 },
    );
  });

  it('refuses non-zero padding bits', () => {
    assert.throws(() => decodeBase64('AB=='), TkmsError);
    assert.throws(() => decodeBase64('AAB='), TkmsError);
    assert.deepEqual(decodeBase64('AA=='), Uint8Array.of(0));
    assert.deepEqual(decodeBase64('AAA='), Uint8Array.of(0, 0));
  });
});
