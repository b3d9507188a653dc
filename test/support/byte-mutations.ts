import fc from 'fast-check';

/** Byte-level corruptions of a valid encoding: flip, truncate, extend, insert, delete (decoder property tests). */
export const mutation = (bytes: Uint8Array): fc.Arbitrary<Uint8Array> =>
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
