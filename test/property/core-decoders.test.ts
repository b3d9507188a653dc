import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import fc from 'fast-check';
import { Compile } from 'typebox/compile';
import {
  addressField,
  type AnyWireField,
  base64Field,
  decodeBase64,
  decodeSignature,
  hexBytesField,
  hexBytesUpToField,
  keyIdField,
  MAX_TIMESTAMP,
  TkmsError,
  unixSecondsField,
  assertKeyId,
  bytesToHex,
  CURVE_ORDER,
  decodeAddress,
  decodeDleqProof,
  decodeHandle,
  decodeHex,
  decodePoint,
  decodeRequestId,
  decodeScalar,
  deriveHandle,
  encodeDleqProof,
  encodeHandle,
  encodeHex,
  encodePoint,
  encodeScalar,
  type ErrorCode,
  importRsaPublicKey,
  isTkmsError,
  normalizeAddress,
  publicKeyFromSecret,
  toChecksumAddress,
} from '../../core/index.ts';

/**
 * Every decoder of outside input: malformed input is a TkmsError with one of the expected
 * codes, never another exception; valid input round-trips.
 */

/** Runs `fn`; a throw must be a TkmsError with one of `codes`. Returns the value, or undefined on a typed throw. */
function typedOrValue<T>(fn: () => T, codes: readonly ErrorCode[], label = ''): T | undefined {
  try {
    return fn();
  } catch (e) {
    assert.ok(isTkmsError(e), `${label}: expected TkmsError, got ${e instanceof Error ? `${e.name}: ${e.message}` : fc.stringify(e)}`);
    assert.ok(codes.includes(e.code), `${label}: code ${e.code} not in ${codes.join(',')}`);
    return undefined;
  }
}

function throwsTyped(fn: () => unknown, codes: readonly ErrorCode[], label = ''): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isTkmsError(e), `${label}: expected TkmsError, got ${e instanceof Error ? `${e.name}: ${e.message}` : fc.stringify(e)}`);
    assert.ok(codes.includes(e.code), `${label}: code ${e.code} not in ${codes.join(',')}`);
    return true;
  });
}

async function rejectsTyped(fn: () => Promise<unknown>, codes: readonly ErrorCode[], label = ''): Promise<void> {
  await assert.rejects(fn, (e: unknown) => {
    assert.ok(isTkmsError(e), `${label}: expected TkmsError, got ${e instanceof Error ? `${e.name}: ${e.message}` : fc.stringify(e)}`);
    assert.ok(codes.includes(e.code), `${label}: code ${e.code} not in ${codes.join(',')}`);
    return true;
  });
}

const P = 2n ** 256n - 2n ** 32n - 977n; // secp256k1 field prime, written out independently of core

function modPow(base: bigint, exp: bigint, m: bigint): bigint {
  let result = 1n;
  let b = base % m;
  let e = exp;
  while (e > 0n) {
    if (e & 1n) result = (result * b) % m;
    b = (b * b) % m;
    e >>= 1n;
  }
  return result;
}

/** Euler's criterion: is x³ + 7 a square mod p, i.e. is x the abscissa of a curve point? */
function isCurveX(x: bigint): boolean {
  const rhs = (x ** 3n + 7n) % P;
  return rhs === 0n || modPow(rhs, (P - 1n) / 2n, P) === 1n;
}

function bigintTo32(value: bigint): Uint8Array {
  return Uint8Array.from(Buffer.from(value.toString(16).padStart(64, '0'), 'hex'));
}

const nonString = fc.anything().filter((v) => typeof v !== 'string');
const hexBytes = (min: number, max: number) => fc.uint8Array({ minLength: min, maxLength: max });
const scalarInRange = fc.bigInt({ min: 1n, max: CURVE_ORDER - 1n });
const NON_ASCII_DIGITS = ['０１', 'ａｂ', '٠١', '߀߁', 'é0', '0é', '\u00000', '0\u0000', '💥💥', ' 00', '00 ', '0\n', 'g0', '0x-1'];

describe('core decoders (property)', function () {
  this.timeout(60_000);

  describe('decodeHex', () => {
    it('non-strings are bad_hex', () => {
      fc.assert(fc.property(nonString, (v) => throwsTyped(() => decodeHex(v), ['bad_hex'])), { numRuns: 300 });
    });

    it('any string either decodes to bytes that re-encode to it, or is bad_hex', () => {
      fc.assert(
        fc.property(fc.oneof(fc.string({ unit: 'binary' }), fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEFxX') })), (s) => {
          const bytes = typedOrValue(() => decodeHex(s), ['bad_hex'], JSON.stringify(s));
          if (bytes !== undefined) {
            const body = s.startsWith('0x') || s.startsWith('0X') ? s.slice(2) : s;
            assert.equal(encodeHex(bytes), `0x${body.toLowerCase()}`);
          }
        }),
        { numRuns: 500 },
      );
    });

    it('odd length and non-hex characters (incl. unicode digits, whitespace, NUL) are bad_hex', () => {
      fc.assert(
        fc.property(hexBytes(0, 40), fc.nat(), fc.constantFrom(...'gGzZ-+ .\n\t\u0000\u00e9\uff10\u0660', '💥'), (bytes, pos, bad) => {
          const hex = bytesToHex(bytes);
          throwsTyped(() => decodeHex(`${hex}0`), ['bad_hex'], 'odd');
          const at = pos % (hex.length + 1);
          throwsTyped(() => decodeHex(hex.slice(0, at) + bad + hex.slice(at)), ['bad_hex'], 'non-hex');
        }),
        { numRuns: 300 },
      );
      for (const s of NON_ASCII_DIGITS) throwsTyped(() => decodeHex(s), ['bad_hex'], JSON.stringify(s));
    });

    it('wrong length is bad_length; maxLength is enforced; allowPrefix:false refuses 0x', () => {
      fc.assert(
        fc.property(hexBytes(0, 64), fc.integer({ min: 0, max: 64 }), (bytes, length) => {
          const hex = bytesToHex(bytes);
          const out = typedOrValue(() => decodeHex(hex, { length }), ['bad_length']);
          assert.equal(out !== undefined, bytes.length === length);
          const capped = typedOrValue(() => decodeHex(`0x${hex}`, { maxLength: length }), ['bad_length']);
          assert.equal(capped !== undefined, bytes.length <= length);
          throwsTyped(() => decodeHex(`0x${hex}`, { allowPrefix: false }), ['bad_hex']);
          assert.deepEqual(decodeHex(hex, { allowPrefix: false }), bytes);
        }),
        { numRuns: 300 },
      );
      // The cap is checked before the body is scanned: a huge non-hex string is still bad_length.
      throwsTyped(() => decodeHex('z'.repeat(1_000_000), { maxLength: 1024 }), ['bad_length']);
    });

    it('round trip: decodeHex(encodeHex(b)) = b, and upper case decodes the same', () => {
      fc.assert(
        fc.property(hexBytes(0, 100), (bytes) => {
          assert.deepEqual(decodeHex(encodeHex(bytes)), bytes);
          assert.deepEqual(decodeHex(bytesToHex(bytes).toUpperCase()), bytes);
          assert.match(encodeHex(bytes), /^0x[0-9a-f]*$/);
        }),
        { numRuns: 200 },
      );
    });
  });

  describe('decodePoint', () => {
    it('byte arrays of the wrong length (incl. 65-byte uncompressed) are bad_length', () => {
      fc.assert(
        fc.property(hexBytes(0, 100).filter((b) => b.length !== 33), (bytes) => {
          throwsTyped(() => decodePoint(bytes), ['bad_length']);
          throwsTyped(() => decodePoint(encodeHex(bytes)), ['bad_length']);
        }),
        { numRuns: 200 },
      );
      fc.assert(
        fc.property(scalarInRange, (sk) => {
          const uncompressed = publicKeyFromSecret(sk).toBytes(false);
          assert.equal(uncompressed.length, 65);
          throwsTyped(() => decodePoint(uncompressed), ['bad_length']);
          // The uncompressed prefix squeezed into 33 bytes is refused by prefix, not parsed.
          throwsTyped(() => decodePoint(Uint8Array.from([0x04, ...uncompressed.subarray(1, 33)])), ['bad_point']);
        }),
        { numRuns: 20 },
      );
    });

    it('a first byte other than 02/03 is bad_point', () => {
      fc.assert(
        fc.property(fc.integer({ min: 0, max: 255 }).filter((b) => b !== 2 && b !== 3), hexBytes(32, 32), (prefix, x) => {
          throwsTyped(() => decodePoint(Uint8Array.from([prefix, ...x])), ['bad_point']);
        }),
        { numRuns: 200 },
      );
    });

    it('random x decodes iff x³+7 is a square mod p (independent Euler check); otherwise bad_point', () => {
      fc.assert(
        fc.property(fc.constantFrom(2, 3), fc.bigInt({ min: 0n, max: P - 1n }), (prefix, x) => {
          const bytes = Uint8Array.from([prefix, ...bigintTo32(x)]);
          const point = typedOrValue(() => decodePoint(bytes), ['bad_point']);
          assert.equal(point !== undefined, isCurveX(x), `x = ${x}`);
          if (point) {
            assert.deepEqual(encodePoint(point), bytes);
            assert.equal(point.y % 2n, BigInt(prefix - 2));
          }
        }),
        { numRuns: 200 },
      );
    });

    it('x ≥ p is bad_point even when x − p is a valid abscissa', () => {
      fc.assert(
        fc.property(fc.constantFrom(2, 3), fc.bigInt({ min: P, max: 2n ** 256n - 1n }), (prefix, x) => {
          throwsTyped(() => decodePoint(Uint8Array.from([prefix, ...bigintTo32(x)])), ['bad_point']);
        }),
        { numRuns: 100 },
      );
      // x = p + 1 aliases x = 1 mod p, and 1³ + 7 = 8 is a square mod p.
      assert.ok(isCurveX(1n));
      decodePoint(Uint8Array.from([2, ...bigintTo32(1n)]));
      throwsTyped(() => decodePoint(Uint8Array.from([2, ...bigintTo32(P + 1n)])), ['bad_point']);
    });

    it('identity encodings are refused: [0x00], 33 zero bytes, 02/03 ‖ 0³²', () => {
      throwsTyped(() => decodePoint(Uint8Array.of(0)), ['bad_length']);
      throwsTyped(() => decodePoint('0x00'), ['bad_length']);
      throwsTyped(() => decodePoint(new Uint8Array(33)), ['bad_point']);
      assert.equal(isCurveX(0n), false);
      throwsTyped(() => decodePoint(Uint8Array.from([2, ...new Uint8Array(32)])), ['bad_point']);
      throwsTyped(() => decodePoint(Uint8Array.from([3, ...new Uint8Array(32)])), ['bad_point']);
    });

    it('non-bytes, non-hex and malformed hex inputs are typed', () => {
      fc.assert(
        fc.property(fc.anything().filter((v) => typeof v !== 'string' && !(v instanceof Uint8Array)), (v) => {
          throwsTyped(() => decodePoint(v as Uint8Array), ['bad_point']);
        }),
        { numRuns: 200 },
      );
      fc.assert(
        fc.property(fc.string({ unit: 'binary' }), (s) => {
          typedOrValue(() => decodePoint(s), ['bad_hex', 'bad_length', 'bad_point'], JSON.stringify(s));
        }),
        { numRuns: 300 },
      );
    });

    it('round trip: encodePoint/decodePoint for random points, as bytes and as hex', () => {
      fc.assert(
        fc.property(scalarInRange, (sk) => {
          const point = publicKeyFromSecret(sk);
          const bytes = encodePoint(point);
          assert.equal(bytes.length, 33);
          assert.ok(decodePoint(bytes).equals(point));
          assert.ok(decodePoint(encodeHex(bytes)).equals(point));
          assert.ok(decodePoint(bytesToHex(bytes)).equals(point));
        }),
        { numRuns: 30 },
      );
    });
  });

  describe('decodeScalar / encodeScalar', () => {
    it('values ≥ n are bad_scalar (no silent reduction)', () => {
      fc.assert(
        fc.property(fc.bigInt({ min: CURVE_ORDER, max: 2n ** 256n - 1n }), (v) => {
          throwsTyped(() => decodeScalar(bigintTo32(v)), ['bad_scalar']);
          throwsTyped(() => decodeScalar(bigintTo32(v), { allowZero: true }), ['bad_scalar']);
          throwsTyped(() => decodeScalar(encodeHex(bigintTo32(v))), ['bad_scalar']);
          throwsTyped(() => encodeScalar(v), ['bad_scalar']);
        }),
        { numRuns: 100 },
      );
      throwsTyped(() => decodeScalar(bigintTo32(CURVE_ORDER)), ['bad_scalar']);
      assert.equal(decodeScalar(bigintTo32(CURVE_ORDER - 1n)), CURVE_ORDER - 1n);
      throwsTyped(() => encodeScalar(-1n), ['bad_scalar']);
    });

    it('zero is bad_scalar unless allowZero', () => {
      throwsTyped(() => decodeScalar(new Uint8Array(32)), ['bad_scalar']);
      throwsTyped(() => decodeScalar(`0x${'00'.repeat(32)}`), ['bad_scalar']);
      assert.equal(decodeScalar(new Uint8Array(32), { allowZero: true }), 0n);
    });

    it('wrong lengths are bad_length; other junk is typed', () => {
      fc.assert(
        fc.property(hexBytes(0, 80).filter((b) => b.length !== 32), (bytes) => {
          throwsTyped(() => decodeScalar(bytes), ['bad_length']);
          throwsTyped(() => decodeScalar(bytesToHex(bytes)), ['bad_length']);
        }),
        { numRuns: 200 },
      );
      fc.assert(
        fc.property(fc.anything().filter((v) => !(v instanceof Uint8Array)), (v) => {
          typedOrValue(() => decodeScalar(v as Uint8Array), ['bad_scalar', 'bad_hex', 'bad_length']);
        }),
        { numRuns: 200 },
      );
    });

    it('round trip in [1, n−1]', () => {
      fc.assert(
        fc.property(scalarInRange, (v) => {
          const bytes = encodeScalar(v);
          assert.equal(bytes.length, 32);
          assert.equal(decodeScalar(bytes), v);
          assert.equal(decodeScalar(encodeHex(bytes)), v);
        }),
        { numRuns: 300 },
      );
    });
  });

  describe('decodeDleqProof', () => {
    it('any byte array: a 64-byte pair of canonical scalars round-trips, anything else is typed', () => {
      const interesting = fc.oneof(
        hexBytes(0, 100),
        fc.tuple(fc.bigInt({ min: 0n, max: 2n ** 256n - 1n }), fc.bigInt({ min: 0n, max: 2n ** 256n - 1n })).map(([c, s]) =>
          Uint8Array.from([...bigintTo32(c), ...bigintTo32(s)]),
        ),
        fc.tuple(fc.bigInt({ min: 0n, max: CURVE_ORDER - 1n }), fc.bigInt({ min: 0n, max: CURVE_ORDER - 1n })).map(([c, s]) =>
          Uint8Array.from([...bigintTo32(c), ...bigintTo32(s)]),
        ),
      );
      fc.assert(
        fc.property(interesting, (bytes) => {
          const proof = typedOrValue(() => decodeDleqProof(bytes), ['bad_length', 'bad_scalar']);
          const c = bytes.length === 64 ? BigInt(`0x${bytesToHex(bytes.subarray(0, 32))}`) : -1n;
          const s = bytes.length === 64 ? BigInt(`0x${bytesToHex(bytes.subarray(32))}`) : -1n;
          const valid = bytes.length === 64 && c < CURVE_ORDER && s < CURVE_ORDER;
          assert.equal(proof !== undefined, valid);
          if (proof) {
            assert.equal(proof.c, c);
            assert.equal(proof.s, s);
            assert.deepEqual(encodeDleqProof(proof), bytes);
          }
        }),
        { numRuns: 300 },
      );
    });

    it('non-bytes are typed', () => {
      fc.assert(
        fc.property(fc.anything().filter((v) => !(v instanceof Uint8Array)), (v) => {
          throwsTyped(() => decodeDleqProof(v as Uint8Array), ['bad_length', 'bad_request']);
        }),
        { numRuns: 200 },
      );
    });
  });

  describe('decodeHandle / decodeRequestId', () => {
    const cases: Array<[string, (v: unknown) => Uint8Array, number]> = [
      ['decodeHandle', decodeHandle, 32],
      ['decodeRequestId', decodeRequestId, 16],
    ];
    for (const [name, decode, length] of cases) {
      it(`${name}: exactly ${length} bytes of hex round-trips; anything else is bad_hex/bad_length`, () => {
        fc.assert(
          fc.property(fc.oneof(fc.anything(), fc.string({ unit: 'binary' }), hexBytes(0, 64).map(encodeHex), hexBytes(0, 64).map(bytesToHex)), (v) => {
            const out = typedOrValue(() => decode(v), ['bad_hex', 'bad_length'], `${name}(${fc.stringify(v).slice(0, 60)})`);
            if (out !== undefined) {
              assert.equal(out.length, length);
              assert.equal(typeof v, 'string');
            }
          }),
          { numRuns: 300 },
        );
        fc.assert(
          fc.property(hexBytes(length, length), (bytes) => {
            assert.deepEqual(decode(encodeHex(bytes)), bytes);
            assert.deepEqual(decode(bytesToHex(bytes)), bytes);
          }),
          { numRuns: 50 },
        );
      });
    }

    it('encodeHandle refuses non-32-byte input with bad_handle', () => {
      fc.assert(
        fc.property(hexBytes(0, 64).filter((b) => b.length !== 32), (b) => throwsTyped(() => encodeHandle(b), ['bad_handle'])),
        { numRuns: 100 },
      );
    });
  });

  describe('decodeAddress (EIP-55)', () => {
    // The EIP-55 specification's own examples (independent of core's keccak use).
    const EIP55 = [
      '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed',
      '0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359',
      '0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB',
      '0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb',
    ];

    it('accepts the EIP-55 examples, their all-lower and all-upper forms, and reproduces their checksum', () => {
      for (const address of EIP55) {
        const bytes = decodeAddress(address);
        assert.equal(bytes.length, 20);
        assert.equal(toChecksumAddress(bytes), address);
        assert.deepEqual(decodeAddress(address.toLowerCase()), bytes);
        assert.deepEqual(decodeAddress(`0x${address.slice(2).toUpperCase()}`), bytes);
        assert.equal(normalizeAddress(address), address.toLowerCase());
      }
    });

    it('one letter with flipped case in a checksummed address is bad_address (when still mixed case)', () => {
      fc.assert(
        fc.property(hexBytes(20, 20), fc.nat(), (bytes, pick) => {
          const good = toChecksumAddress(bytes);
          assert.deepEqual(decodeAddress(good), bytes);
          const letters = [...good.slice(2)].map((ch, i) => [ch, i + 2] as const).filter(([ch]) => /[a-fA-F]/.test(ch));
          fc.pre(letters.length > 0);
          const [ch, at] = letters[pick % letters.length]!;
          const flipped = good.slice(0, at) + (ch === ch.toUpperCase() ? ch.toLowerCase() : ch.toUpperCase()) + good.slice(at + 1);
          const body = flipped.slice(2);
          const mixed = body !== body.toLowerCase() && body !== body.toUpperCase();
          if (mixed) throwsTyped(() => decodeAddress(flipped), ['bad_address'], flipped);
          else assert.deepEqual(decodeAddress(flipped), bytes);
        }),
        { numRuns: 200 },
      );
      throwsTyped(() => decodeAddress('0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD'), ['bad_address']);
    });

    it('wrong length, missing or upper 0X prefix, non-hex, non-strings are bad_address', () => {
      fc.assert(
        fc.property(fc.oneof(fc.anything(), fc.string({ unit: 'binary' }), hexBytes(0, 30).map(encodeHex)), (v) => {
          const out = typedOrValue(() => decodeAddress(v), ['bad_address'], fc.stringify(v).slice(0, 60));
          if (out !== undefined) assert.equal(out.length, 20);
        }),
        { numRuns: 300 },
      );
      const body = EIP55[0]!.slice(2).toLowerCase();
      for (const v of [body, `0X${body}`, `0x${body}00`, `0x${body.slice(2)}`, `0x${body.slice(1)}g`, `0x${body} `, undefined, 1, null]) {
        throwsTyped(() => decodeAddress(v), ['bad_address'], String(v));
      }
    });
  });

  describe('assertKeyId', () => {
    it('any string is accepted iff it matches the documented rule; otherwise bad_key_id', () => {
      const keyIdChar = fc.constantFrom(...'abcz09._-AZ/ ä\u0000'.split(''));
      fc.assert(
        fc.property(fc.oneof(fc.string({ unit: keyIdChar, maxLength: 70 }), fc.string({ unit: 'binary', maxLength: 70 }), fc.anything()), (v) => {
          let accepted = true;
          try {
            assertKeyId(v);
          } catch (e) {
            assert.ok(isTkmsError(e, 'bad_key_id'), `unexpected ${String(e)}`);
            accepted = false;
          }
          const rule = typeof v === 'string' && v.length >= 1 && v.length <= 64 && /^[a-z0-9]/.test(v) && /^[a-z0-9._-]*$/.test(v) && !v.includes('..');
          assert.equal(accepted, rule, fc.stringify(v));
        }),
        { numRuns: 500 },
      );
      for (const bad of ['', 'A', '-a', '.a', '_a', 'a..b', 'a/b', 'a b', 'ä', 'a'.repeat(65), 'key\n']) {
        throwsTyped(() => assertKeyId(bad), ['bad_key_id'], JSON.stringify(bad));
      }
      for (const good of ['a', '0', 'a.b', 'a-b_c.1', 'a'.repeat(64)]) assertKeyId(good);
    });
  });

  describe('importRsaPublicKey', () => {
    let spkiHex = '';
    before(() => {
      spkiHex = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'der' }).toString('hex');
    });

    it('random bytes as hex are bad_rsa_key (or bad_length past the size cap)', async () => {
      await fc.assert(
        fc.asyncProperty(hexBytes(0, 1100), async (bytes) => {
          await rejectsTyped(() => importRsaPublicKey(bytesToHex(bytes)), bytes.length > 1024 ? ['bad_length'] : ['bad_rsa_key']);
        }),
        { numRuns: 100 },
      );
    });

    it('every truncation of a valid SPKI is bad_rsa_key', async () => {
      const der = decodeHex(spkiHex);
      for (let length = 0; length < der.length; length++) {
        await rejectsTyped(() => importRsaPublicKey(bytesToHex(der.subarray(0, length))), ['bad_rsa_key'], `length ${length}`);
      }
    });

    it('random single-byte corruption of a valid SPKI is typed or still a 2048-bit e=65537 key', async () => {
      const der = decodeHex(spkiHex);
      await fc.assert(
        fc.asyncProperty(fc.nat({ max: der.length - 1 }), fc.integer({ min: 1, max: 255 }), async (index, mask) => {
          const corrupt = Uint8Array.from(der);
          corrupt[index]! ^= mask;
          try {
            const key = await importRsaPublicKey(bytesToHex(corrupt));
            assert.ok(key.modulusBits >= 2048 && key.modulusBits <= 4096);
          } catch (e) {
            assert.ok(isTkmsError(e, 'bad_rsa_key'), `byte ${index} ^ ${mask}: ${String(e)}`);
          }
        }),
        { numRuns: 150 },
      );
    });

    it('non-strings and bad hex are bad_hex', async () => {
      await fc.assert(
        fc.asyncProperty(fc.oneof(nonString, fc.constant(`${'0'.repeat(3)}`), fc.constant('0xzz')), async (v) => {
          await rejectsTyped(() => importRsaPublicKey(v), ['bad_hex']);
        }),
        { numRuns: 100 },
      );
    });
  });

  describe('deriveHandle (property)', () => {
    const handleInput = fc.record({
      keyId: fc.stringMatching(/^[a-z0-9][a-z0-9_-]{0,20}$/),
      k: scalarInRange,
      nonce: hexBytes(12, 12),
      ciphertext: hexBytes(16, 80),
      owner: hexBytes(20, 20),
    });

    it('is deterministic, 32 bytes, and changes when any field changes', () => {
      fc.assert(
        fc.property(handleInput, scalarInRange, fc.nat(), ({ keyId, k, nonce, ciphertext, owner }, k2, pick) => {
          fc.pre(k2 !== k && k2 !== CURVE_ORDER - k);
          const input = { keyId, K: encodePoint(publicKeyFromSecret(k)), nonce, ciphertext, owner };
          const h = deriveHandle(input);
          assert.equal(h.length, 32);
          assert.deepEqual(deriveHandle({ ...input, nonce: Uint8Array.from(nonce), ciphertext: Uint8Array.from(ciphertext) }), h);
          assert.deepEqual(decodeHandle(encodeHandle(h)), h);
          const flip = (b: Uint8Array): Uint8Array => {
            const out = Uint8Array.from(b);
            out[pick % out.length]! ^= 1 << (pick % 8);
            return out;
          };
          const changed = [
            { ...input, keyId: `${keyId}x` },
            { ...input, K: encodePoint(publicKeyFromSecret(k2)) },
            { ...input, nonce: flip(nonce) },
            { ...input, ciphertext: flip(ciphertext) },
            { ...input, ciphertext: Uint8Array.from([...ciphertext, 0]) },
            { ...input, owner: flip(owner) },
          ];
          for (const other of changed) assert.notDeepEqual(deriveHandle(other), h);
        }),
        { numRuns: 50 },
      );
    });
  });
});

/**
 * The field declarations of core/schema.ts decide with a compiled validator and explain a
 * refusal with the hand-written decoders: together they must be those decoders exactly, the
 * same value for what they accept and the same code and message for what they refuse.
 */
describe('declared fields agree with the hand-written decoders (property)', function () {
  this.timeout(60_000);

  type Outcome = { value: unknown } | { code: string; message: string };
  const outcome = (fn: () => unknown): Outcome => {
    try {
      return { value: fn() };
    } catch (e) {
      assert.ok(isTkmsError(e), `expected TkmsError, got ${e instanceof Error ? `${e.name}: ${e.message}` : fc.stringify(e)}`);
      return { code: e.code, message: e.message };
    }
  };
  /** A field used as messageCodec uses it: the validator decides, explain says why not. */
  const viaField = (field: AnyWireField, name: string) => {
    const validator = Compile(field.schema);
    return (value: unknown): unknown => {
      if (validator.Check(value)) return field.decode(value, name);
      field.explain(value, name);
      throw new Error(`the schema refused ${fc.stringify(value)} but explain accepted it`);
    };
  };
  const timestamp = (value: unknown): number => {
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > MAX_TIMESTAMP) throw new TkmsError('bad_request', 'when must be a unix time in whole seconds');
    return value;
  };
  const hexDigits = fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEF'), maxLength: 140 });
  const nearHex = fc.oneof(
    hexDigits,
    hexDigits.map((h) => `0x${h}`),
    hexDigits.map((h) => `0X${h}`),
    fc.tuple(hexDigits, fc.constantFrom(...NON_ASCII_DIGITS, 'g', 'x', ' ')).map(([h, c]) => `0x${h}${c}`),
  );
  const exactHex = (n: number) => fc.oneof(hexBytes(n, n).map(encodeHex), hexBytes(n, n).map((b) => encodeHex(b).slice(2)), hexBytes(n, n).map((b) => encodeHex(b).toUpperCase()), hexBytes(n - 1, n + 1).map(encodeHex));
  const values = (...arbs: fc.Arbitrary<unknown>[]) => fc.oneof(nonString, fc.string({ maxLength: 40 }), nearHex, ...arbs);

  const cases: { label: string; field: AnyWireField; reference: (v: unknown) => unknown; arb: fc.Arbitrary<unknown>; name?: string }[] = [
    { label: 'hex 32', field: hexBytesField(32, { description: 'x' }), reference: (v) => decodeHex(v, { name: 'f', length: 32 }), arb: values(exactHex(32)) },
    { label: 'hex 12', field: hexBytesField(12, { description: 'x' }), reference: (v) => decodeHex(v, { name: 'f', length: 12 }), arb: values(exactHex(12)) },
    {
      label: 'signature',
      name: 'signature',
      field: hexBytesField(65, { description: 'x', prefix: 'required' }),
      reference: decodeSignature,
      arb: values(exactHex(65), fc.constant(`0x${'00'.repeat(5000)}`)),
    },
    {
      label: 'hex up to 64, no prefix',
      field: hexBytesUpToField(64, { description: 'x', prefix: 'forbidden' }),
      reference: (v) => decodeHex(v, { name: 'f', maxLength: 64, allowPrefix: false }),
      arb: values(hexBytes(0, 66).map((b) => encodeHex(b).slice(2)), hexBytes(0, 66).map(encodeHex)),
    },
    {
      label: 'hex up to 64',
      field: hexBytesUpToField(64, { description: 'x' }),
      reference: (v) => decodeHex(v, { name: 'f', maxLength: 64 }),
      arb: values(hexBytes(0, 66).map((b) => encodeHex(b).slice(2)), hexBytes(0, 66).map(encodeHex), hexBytes(0, 66).map((b) => `0X${encodeHex(b).slice(2)}`)),
    },
    {
      label: 'address',
      field: addressField({ description: 'x' }),
      reference: (v) => decodeAddress(v, 'f'),
      arb: values(
        exactHex(20),
        hexBytes(20, 20).map(toChecksumAddress),
        fc.tuple(hexBytes(20, 20), fc.nat(39)).map(([b, i]) => {
          const s = toChecksumAddress(b);
          const c = s[i + 2]!;
          return s.slice(0, i + 2) + (c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase()) + s.slice(i + 3);
        }),
      ),
    },
    {
      label: 'key id',
      field: keyIdField({ description: 'x' }),
      reference: (v) => (assertKeyId(v), v),
      arb: values(fc.stringMatching(/^[a-z0-9._-]{0,66}$/), fc.constantFrom('a..b', '..', 'a.', 'A', 'a\n', 'é')),
    },
    {
      label: 'unix seconds',
      field: unixSecondsField({ description: 'x' }),
      reference: timestamp,
      arb: fc.oneof(fc.anything(), fc.integer({ min: -10, max: MAX_TIMESTAMP + 10 }), fc.constantFrom(0, -0, MAX_TIMESTAMP, MAX_TIMESTAMP + 1, 1.5, 2 ** 53, NaN, Infinity), fc.double()),
    },
    {
      label: 'base64',
      field: base64Field(10, { description: 'x' }),
      reference: (v) => decodeBase64(v, { name: 'f', maxLength: 10 }),
      arb: values(fc.uint8Array({ maxLength: 14 }).map((b) => Buffer.from(b).toString('base64')), fc.constantFrom('AB==', 'AAB=', 'A', 'AA==AA==')),
    },
  ];

  for (const c of cases) {
    it(`${c.label}: same value or same refusal as the hand-written decoder`, () => {
      const decode = viaField(c.field, c.name ?? 'f');
      fc.assert(
        fc.property(c.arb, (v) => {
          const reference = outcome(() => c.reference(v));
          const declared = outcome(() => decode(v));
          // Only the name differs where the reference names its own subject.
          if (c.label === 'unix seconds' && 'message' in declared) assert.equal(declared.message, 'f must be a unix time in whole seconds');
          if (c.label === 'unix seconds' && 'message' in reference) (reference as { message: string }).message = 'f must be a unix time in whole seconds';
          assert.deepStrictEqual(declared, reference, fc.stringify(v));
          // Hex is written lower-case, whatever case it was read in.
          if ('value' in declared && declared.value instanceof Uint8Array && c.field.kind.kind.startsWith('hex')) assert.equal((c.field.encode(declared.value) as string).toLowerCase(), c.field.encode(declared.value));
        }),
        { numRuns: 1000 },
      );
    });
  }
});
