import assert from 'node:assert/strict';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { numberToBytesBE } from '@noble/curves/utils.js';
import { ethers } from 'ethers';
import fc from 'fast-check';
import {
  addressFromSecretKey,
  CURVE_ORDER,
  decodeSignature,
  encodeHex,
  type Eip712Domain,
  type Eip712Field,
  type Eip712FieldType,
  type Eip712Struct,
  type Eip712Value,
  type ErrorCode,
  hashTypedData,
  isTkmsError,
  recoverTypedDataSigner,
  signTypedData,
} from '../../core/index.ts';

/**
 * EIP-712 over random struct shapes and values against ethers v6, and the decoders'
 * contract: any input either works or fails with a TkmsError of an expected code.
 */

type Message = Record<string, Eip712Value>;

const FIELD_TYPES: readonly Eip712FieldType[] = ['address', 'bytes32', 'bytes16', 'string', 'bytes', 'uint64'];
const UINT64_MAX = (1n << 64n) - 1n;

function typedOrValue<T>(fn: () => T, codes: readonly ErrorCode[], label = ''): T | undefined {
  try {
    return fn();
  } catch (e) {
    assert.ok(isTkmsError(e), `${label}: expected TkmsError, got ${e instanceof Error ? `${e.name}: ${e.message}` : fc.stringify(e)}`);
    assert.ok(codes.includes(e.code), `${label}: code ${e.code} not in ${codes.join(',')}`);
    return undefined;
  }
}

// Struct names start upper-case so they never collide with an elementary type name (all lower-case).
const structName = fc.stringMatching(/^[A-Z][A-Za-z0-9_]{0,15}$/);
const fieldName = fc.stringMatching(/^[a-zA-Z_$][A-Za-z0-9_$]{0,15}$/);

const structArb: fc.Arbitrary<Eip712Struct> = fc
  .record({
    name: structName,
    fields: fc.uniqueArray(fc.record({ name: fieldName, type: fc.constantFrom(...FIELD_TYPES) }), {
      minLength: 1,
      maxLength: 8,
      selector: (f) => f.name,
    }),
  })
  .map((s) => s as Eip712Struct);

// 'binary' units are any code point, so astral characters appear but lone surrogates do not.
const wellFormedString = fc.oneof(fc.string({ unit: 'binary', maxLength: 40 }), fc.string({ maxLength: 40 }));

function valueArb(type: Eip712FieldType): fc.Arbitrary<Eip712Value> {
  switch (type) {
    case 'address':
      return fc.uint8Array({ minLength: 20, maxLength: 20 });
    case 'bytes32':
      return fc.uint8Array({ minLength: 32, maxLength: 32 });
    case 'bytes16':
      return fc.uint8Array({ minLength: 16, maxLength: 16 });
    case 'string':
      return wellFormedString;
    case 'bytes':
      return fc.uint8Array({ maxLength: 200 });
    case 'uint64':
      return fc.oneof(
        fc.bigInt({ min: 0n, max: UINT64_MAX }),
        fc.constantFrom(0n, UINT64_MAX, 0, Number.MAX_SAFE_INTEGER),
        fc.maxSafeNat(),
      );
  }
}

/** Values of the wrong kind for a field: wrong JS type, wrong length, out of range, ill-formed. */
function wrongValueArb(type: Eip712FieldType): fc.Arbitrary<unknown> {
  const notBytes = fc.oneof(fc.string(), fc.integer(), fc.bigInt(), fc.constantFrom(null, undefined, true, {}, [1, 2]));
  const bytesOtherThan = (n: number) => fc.uint8Array({ maxLength: 64 }).filter((b) => b.length !== n);
  switch (type) {
    case 'address':
      return fc.oneof(bytesOtherThan(20), notBytes, fc.constant('0x' + '11'.repeat(20)));
    case 'bytes32':
      return fc.oneof(bytesOtherThan(32), notBytes);
    case 'bytes16':
      return fc.oneof(bytesOtherThan(16), notBytes);
    case 'bytes':
      return notBytes;
    case 'string':
      return fc.oneof(
        fc.uint8Array(),
        fc.integer(),
        fc.bigInt(),
        fc.constantFrom(null, undefined, {}),
        fc.tuple(fc.string(), fc.integer({ min: 0xd800, max: 0xdfff }), fc.string()).map(([a, c, b]) => a + String.fromCharCode(c) + b.replace(/[\uD800-\uDFFF]/g, '')),
      );
    case 'uint64':
      return fc.oneof(
        fc.bigInt({ max: -1n }),
        fc.bigInt({ min: UINT64_MAX + 1n }),
        fc.integer({ max: -1 }),
        fc.double().filter((d) => !Number.isSafeInteger(d) || d < 0),
        fc.constantFrom(Number.MAX_SAFE_INTEGER + 1, 2 ** 64, Number.NaN, Infinity),
        fc.string(),
        fc.uint8Array(),
        fc.constantFrom(null, undefined),
      );
  }
}

const structAndMessage: fc.Arbitrary<{ struct: Eip712Struct; message: Message }> = structArb.chain((struct) =>
  fc.tuple(...struct.fields.map((f) => valueArb(f.type))).map((values) => ({
    struct,
    message: Object.fromEntries(struct.fields.map((f, i) => [f.name, values[i]!])),
  })),
);

const domainArb: fc.Arbitrary<Eip712Domain> = fc.record(
  {
    name: wellFormedString,
    version: wellFormedString,
    chainId: fc.bigInt({ min: 0n, max: (1n << 256n) - 1n }),
    salt: fc.uint8Array({ minLength: 32, maxLength: 32 }),
  },
  { requiredKeys: ['name', 'version'] },
);

function ethersTypes(struct: Eip712Struct): Record<string, ethers.TypedDataField[]> {
  return { [struct.name]: struct.fields.map((f: Eip712Field) => ({ name: f.name, type: f.type })) };
}

function ethersMessage(struct: Eip712Struct, message: Message): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of struct.fields) {
    const v = message[f.name]!;
    if (f.type === 'address') out[f.name] = ethers.getAddress(ethers.hexlify(v as Uint8Array));
    else if (v instanceof Uint8Array) out[f.name] = ethers.hexlify(v);
    else out[f.name] = v;
  }
  return out;
}

const FIXED_DOMAIN: Eip712Domain = { name: 'tkms', version: '1', chainId: 31337n };
const FIXED_STRUCT: Eip712Struct = {
  name: 'Grant',
  fields: [
    { name: 'handle', type: 'bytes32' },
    { name: 'grantee', type: 'address' },
    { name: 'notAfter', type: 'uint64' },
  ],
};
const FIXED_MESSAGE: Message = { handle: new Uint8Array(32).fill(0xab), grantee: new Uint8Array(20).fill(0x11), notAfter: 99n };

describe('property: EIP-712', () => {
  it('random valid structs, messages and domains: hashTypedData equals ethers.TypedDataEncoder.hash', () => {
    fc.assert(
      fc.property(structAndMessage, domainArb, ({ struct, message }, domain) => {
        const ethersDomain = {
          name: domain.name,
          version: domain.version,
          ...(domain.chainId === undefined ? {} : { chainId: domain.chainId }),
          ...(domain.salt === undefined ? {} : { salt: encodeHex(domain.salt) }),
        };
        const expected = ethers.TypedDataEncoder.hash(ethersDomain, ethersTypes(struct), ethersMessage(struct, message));
        assert.equal(encodeHex(hashTypedData(domain, struct, message)), expected);
      }),
      { numRuns: 300 },
    );
  });

  it('random messages with one wrong, missing or extra field give bad_request naming that field', () => {
    type Corruption = { kind: 'wrong'; index: number; value: unknown } | { kind: 'missing'; index: number } | { kind: 'extra'; key: string; value: unknown };
    const corrupted = structAndMessage.chain(({ struct, message }) => {
      const index = fc.nat({ max: struct.fields.length - 1 });
      const wrong = index.chain((i) => wrongValueArb(struct.fields[i]!.type).map((value): Corruption => ({ kind: 'wrong', index: i, value })));
      const missing = index.map((i): Corruption => ({ kind: 'missing', index: i }));
      const extra = fc
        .tuple(fc.string({ minLength: 1, maxLength: 20 }), fc.anything())
        .filter(([key]) => !struct.fields.some((f) => f.name === key) && key !== '__proto__')
        .map(([key, value]): Corruption => ({ kind: 'extra', key, value }));
      return fc.tuple(fc.constant({ struct, message }), fc.oneof(wrong, missing, extra));
    });
    fc.assert(
      fc.property(corrupted, ([{ struct, message }, c]) => {
        const m: Record<string, unknown> = { ...message };
        let field: string;
        if (c.kind === 'extra') {
          field = c.key;
          m[c.key] = c.value;
        } else {
          field = struct.fields[c.index]!.name;
          if (c.kind === 'missing') delete m[field];
          else m[field] = c.value;
        }
        assert.throws(
          () => hashTypedData(FIXED_DOMAIN, struct, m as Message),
          (e: unknown) => {
            assert.ok(isTkmsError(e, 'bad_request'), `expected bad_request, got ${e instanceof Error ? `${e.name}: ${e.message}` : fc.stringify(e)}`);
            assert.equal(e.details?.['field'], field);
            return true;
          },
        );
      }),
      { numRuns: 500 },
    );
  });

  it('random 65-byte signatures never throw anything but TkmsError; in-range ones recover or are unauthorized', () => {
    const n = CURVE_ORDER;
    const scalarBytes = (min: bigint, max: bigint) => fc.bigInt({ min, max }).map((x) => numberToBytesBE(x, 32));
    const inRange = fc
      .tuple(scalarBytes(1n, n - 1n), scalarBytes(1n, n >> 1n), fc.constantFrom(27, 28))
      .map(([r, s, v]) => Uint8Array.of(...r, ...s, v));
    const edgy = fc
      .tuple(
        fc.oneof(scalarBytes(0n, (1n << 256n) - 1n), fc.constantFrom(0n, 1n, n - 1n, n, n + 1n, (1n << 256n) - 1n).map((x) => numberToBytesBE(x, 32))),
        fc.oneof(scalarBytes(0n, (1n << 256n) - 1n), fc.constantFrom(0n, 1n, n >> 1n, (n >> 1n) + 1n, n - 1n, n).map((x) => numberToBytesBE(x, 32))),
        fc.oneof(fc.constantFrom(0, 1, 26, 27, 28, 29), fc.nat({ max: 255 })),
      )
      .map(([r, s, v]) => Uint8Array.of(...r, ...s, v));
    const raw = fc.uint8Array({ minLength: 65, maxLength: 65 });
    fc.assert(
      fc.property(fc.oneof(inRange, edgy, raw), (sig) => {
        const address = typedOrValue(() => recoverTypedDataSigner(FIXED_DOMAIN, FIXED_STRUCT, FIXED_MESSAGE, sig), ['unauthorized'], 'recover');
        if (address !== undefined) assert.equal(address.length, 20);
      }),
      { numRuns: 1000 },
    );
  });

  it('random non-signature inputs to recoverTypedDataSigner fail with a typed error', () => {
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 130 }).filter((b) => b.length !== 65), fc.anything()), (sig) => {
        typedOrValue(() => recoverTypedDataSigner(FIXED_DOMAIN, FIXED_STRUCT, FIXED_MESSAGE, sig as Uint8Array), ['bad_length', 'bad_request'], 'recover');
      }),
      { numRuns: 300 },
    );
  });

  it('random hex strings and values: decodeSignature returns 65 bytes or a bad_hex/bad_length TkmsError', () => {
    const hexChars = fc.string({ unit: fc.constantFrom(...'0123456789abcdefABCDEFxXg '), maxLength: 140 });
    const nearValid = fc.tuple(fc.constantFrom('0x', '0X', '', '0x0x'), fc.uint8Array({ minLength: 60, maxLength: 70 })).map(([p, b]) => p + Buffer.from(b).toString('hex'));
    fc.assert(
      fc.property(fc.oneof(hexChars, hexChars.map((s) => `0x${s}`), nearValid, fc.string(), fc.anything()), (value) => {
        const bytes = typedOrValue(() => decodeSignature(value), ['bad_hex', 'bad_length'], 'decodeSignature');
        if (bytes !== undefined) {
          assert.equal(bytes.length, 65);
          assert.equal(encodeHex(bytes), (value as string).toLowerCase());
          // A decoded signature then flows into recovery under the same contract.
          typedOrValue(() => recoverTypedDataSigner(FIXED_DOMAIN, FIXED_STRUCT, FIXED_MESSAGE, bytes), ['unauthorized'], 'recover');
        }
      }),
      { numRuns: 1000 },
    );
  });

  it('sign → recover round-trips for random keys, structs and messages', () => {
    fc.assert(
      fc.property(structAndMessage, domainArb, fc.bigInt({ min: 1n, max: CURVE_ORDER - 1n }), ({ struct, message }, domain, k) => {
        const sk = numberToBytesBE(k, 32);
        const sig = signTypedData(sk, domain, struct, message);
        assert.deepEqual(recoverTypedDataSigner(domain, struct, message, sig), addressFromSecretKey(sk));
        assert.deepEqual(addressFromSecretKey(sk).length, 20);
        assert.ok(secp256k1.utils.isValidSecretKey(sk));
      }),
      { numRuns: 100 },
    );
  });
});
