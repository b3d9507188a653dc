import assert from 'node:assert/strict';
import { createHash, randomBytes as nodeRandomBytes } from 'node:crypto';
import {
  decodeHandle,
  deriveHandle,
  encodeHandle,
  encodePoint,
  type ErrorCode,
  type HandleInput,
  isTkmsError,
  publicKeyFromSecret,
  randomScalar,
} from '../../core/index.ts';

/**
 * deriveHandle, checked against an independent recomputation of the documented layout:
 *   SHA-256( lp("tkms/handle/v1") ‖ lp(keyId) ‖ lp(K) ‖ lp(nonce) ‖ lp(SHA-256(ciphertext)) ‖ lp(owner) ),  lp(x) = u32be(|x|) ‖ x
 */
function sha256(...parts: Uint8Array[]): Buffer {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
}

function lp(bytes: Uint8Array): Buffer {
  const len = Buffer.alloc(4);
  len.writeUInt32BE(bytes.length);
  return Buffer.concat([len, bytes]);
}

function referenceHandle(input: HandleInput): Uint8Array {
  const fields = [Buffer.from('tkms/handle/v1', 'utf8'), Buffer.from(input.keyId, 'utf8'), input.K, input.nonce, sha256(input.ciphertext), input.owner];
  return new Uint8Array(sha256(Buffer.concat(fields.map(lp))));
}

function freshInput(): HandleInput {
  return {
    keyId: 'vault-key.2024_01',
    K: encodePoint(publicKeyFromSecret(randomScalar())),
    nonce: new Uint8Array(nodeRandomBytes(12)),
    ciphertext: new Uint8Array(nodeRandomBytes(16 + 45)),
    owner: new Uint8Array(nodeRandomBytes(20)),
  };
}

function flipBit(bytes: Uint8Array, bit: number): Uint8Array {
  const out = Uint8Array.from(bytes);
  out[bit >> 3]! ^= 1 << (bit & 7);
  return out;
}

function typed(...codes: ErrorCode[]): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(isTkmsError(e), `expected TkmsError, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    assert.ok(codes.includes(e.code), `code ${e.code} not in ${codes.join(',')}`);
    return true;
  };
}

describe('core: deriveHandle', () => {
  it('is 32 bytes, deterministic, and equals an independent recomputation of the documented encoding', () => {
    for (let run = 0; run < 20; run++) {
      const input = freshInput();
      const handle = deriveHandle(input);
      assert.equal(handle.length, 32);
      // Same values in fresh buffers: the handle depends on content only.
      const copy = { ...input, K: Uint8Array.from(input.K), nonce: Uint8Array.from(input.nonce), ciphertext: Uint8Array.from(input.ciphertext), owner: Uint8Array.from(input.owner) };
      assert.deepEqual(deriveHandle(copy), handle);
      assert.deepEqual(handle, referenceHandle(input));
      assert.deepEqual(decodeHandle(encodeHandle(handle)), handle);
      assert.match(encodeHandle(handle), /^0x[0-9a-f]{64}$/);
    }
  });

  it('accepts a tag-only (16-byte) ciphertext: the encryption of an empty plaintext', () => {
    const input = { ...freshInput(), ciphertext: new Uint8Array(16) };
    assert.deepEqual(deriveHandle(input), referenceHandle(input));
  });

  it('changes when any single bit of K, nonce, ciphertext or owner changes', () => {
    const input = freshInput();
    const handle = deriveHandle(input);
    const seen = new Set<string>([Buffer.from(handle).toString('hex')]);
    const record = (h: Uint8Array, what: string) => {
      const hex = Buffer.from(h).toString('hex');
      assert.ok(!seen.has(hex), `${what}: handle did not change (or collided)`);
      seen.add(hex);
    };
    for (let bit = 0; bit < 12 * 8; bit++) record(deriveHandle({ ...input, nonce: flipBit(input.nonce, bit) }), `nonce bit ${bit}`);
    for (let bit = 0; bit < 20 * 8; bit++) record(deriveHandle({ ...input, owner: flipBit(input.owner, bit) }), `owner bit ${bit}`);
    for (let bit = 0; bit < input.ciphertext.length * 8; bit += 7) record(deriveHandle({ ...input, ciphertext: flipBit(input.ciphertext, bit) }), `ciphertext bit ${bit}`);
    // K: flipping the parity byte gives −K (still valid); other bit flips usually leave the curve, so use other valid points.
    const negK = Uint8Array.from(input.K);
    negK[0] = negK[0] === 2 ? 3 : 2;
    record(deriveHandle({ ...input, K: negK }), 'K negated');
    for (let i = 0; i < 5; i++) record(deriveHandle({ ...input, K: encodePoint(publicKeyFromSecret(randomScalar())) }), `other K ${i}`);
  });

  it('changes when keyId or the ciphertext length changes', () => {
    const input = freshInput();
    const handle = deriveHandle(input);
    for (const keyId of ['vault-key.2024_02', 'vault-key.2024_0', 'vault-key.2024_01x', 'a']) {
      assert.notDeepEqual(deriveHandle({ ...input, keyId }), handle, keyId);
    }
    assert.notDeepEqual(deriveHandle({ ...input, ciphertext: input.ciphertext.subarray(0, input.ciphertext.length - 1) }), handle);
    assert.notDeepEqual(deriveHandle({ ...input, ciphertext: Uint8Array.from([...input.ciphertext, 0]) }), handle);
  });

  it('rejects bad field values with typed errors', () => {
    const input = freshInput();
    const uncompressed = publicKeyFromSecret(randomScalar()).toBytes(false);
    const offCurve = Uint8Array.from([2, ...new Uint8Array(32)]); // x = 0: 7 is not a square mod p
    const cases: Array<[string, Partial<HandleInput>, ErrorCode[]]> = [
      ['keyId upper case', { keyId: 'Vault' }, ['bad_key_id']],
      ['keyId empty', { keyId: '' }, ['bad_key_id']],
      ['keyId ..', { keyId: 'a..b' }, ['bad_key_id']],
      ['K 32 bytes', { K: input.K.subarray(0, 32) }, ['bad_length']],
      ['K uncompressed', { K: uncompressed }, ['bad_length']],
      ['K prefix 04', { K: Uint8Array.from([4, ...input.K.subarray(1)]) }, ['bad_point']],
      ['K off curve', { K: offCurve }, ['bad_point']],
      ['K all zero', { K: new Uint8Array(33) }, ['bad_point']],
      ['nonce 11', { nonce: new Uint8Array(11) }, ['bad_length']],
      ['nonce 13', { nonce: new Uint8Array(13) }, ['bad_length']],
      ['ciphertext 15', { ciphertext: new Uint8Array(15) }, ['bad_length']],
      ['ciphertext empty', { ciphertext: new Uint8Array(0) }, ['bad_length']],
      ['owner 19', { owner: new Uint8Array(19) }, ['bad_length']],
      ['owner 21', { owner: new Uint8Array(21) }, ['bad_length']],
    ];
    for (const [what, change, codes] of cases) {
      assert.throws(() => deriveHandle({ ...input, ...change }), typed(...codes), what);
    }
  });

  it('rejects fields of the wrong type (e.g. hex strings from JSON) with typed errors, never a TypeError', () => {
    const input = freshInput();
    const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
    const cases: Array<[string, Record<string, unknown>]> = [
      ['K as hex string', { K: `0x${hex(input.K)}` }],
      ['nonce as 12-char string', { nonce: 'abcdefghijkl' }],
      ['ciphertext as string', { ciphertext: hex(input.ciphertext) }],
      ['ciphertext as number[]', { ciphertext: Array.from(input.ciphertext) }],
      ['owner as hex string', { owner: `0x${hex(input.owner)}` }],
      ['owner missing', { owner: undefined }],
      ['nonce null', { nonce: null }],
      ['keyId number', { keyId: 7 }],
    ];
    const untyped: string[] = [];
    for (const [what, change] of cases) {
      try {
        deriveHandle({ ...input, ...change } as unknown as HandleInput);
        untyped.push(`${what}: accepted`);
      } catch (e) {
        if (!isTkmsError(e)) untyped.push(`${what}: ${e instanceof Error ? e.name : typeof e}`);
        else assert.ok(['bad_request', 'bad_length', 'bad_point', 'bad_key_id', 'bad_hex'].includes(e.code), `${what}: code ${e.code}`);
      }
    }
    assert.deepEqual(untyped, [], 'every wrong-typed field must give a TkmsError');
  });

  it('decodeHandle/encodeHandle reject malformed handles with typed errors', () => {
    for (const v of ['', '0x', `0x${'00'.repeat(31)}`, `0x${'00'.repeat(33)}`, `0x${'zz'.repeat(32)}`, 42, null]) {
      assert.throws(() => decodeHandle(v), typed('bad_hex', 'bad_length'), String(v));
    }
    assert.throws(() => encodeHandle(new Uint8Array(31)), typed('bad_handle'));
  });
});
