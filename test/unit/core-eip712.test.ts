import assert from 'node:assert/strict';
import { randomBytes as nodeRandomBytes } from 'node:crypto';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { bytesToNumberBE, numberToBytesBE } from '@noble/curves/utils.js';
import { ethers } from 'ethers';
import {
  addressFromPublicKey,
  addressFromSecretKey,
  CURVE_ORDER,
  decodeSignature,
  domainSeparator,
  encodeHex,
  encodeType,
  type Eip712Domain,
  type Eip712Struct,
  type Eip712Value,
  type ErrorCode,
  hashStruct,
  hashTypedData,
  isTkmsError,
  recoverTypedDataSigner,
  SIGNATURE_LENGTH,
  signTypedData,
} from '../../core/index.ts';

/**
 * EIP-712 against ethers v6 as an independent implementation: same digests, and signatures
 * made by either side verify on the other.
 */

type Message = Record<string, Eip712Value>;

const GRANT: Eip712Struct = {
  name: 'Grant',
  fields: [
    { name: 'handle', type: 'bytes32' },
    { name: 'grantee', type: 'address' },
    { name: 'notAfter', type: 'uint64' },
  ],
};

const DELEGATION: Eip712Struct = {
  name: 'Delegation',
  fields: [
    { name: 'handle', type: 'bytes32' },
    { name: 'keyId', type: 'string' },
    { name: 'requester', type: 'address' },
    { name: 'rsaSpki', type: 'bytes' },
    { name: 'notBefore', type: 'uint64' },
    { name: 'notAfter', type: 'uint64' },
    { name: 'requestId', type: 'bytes16' },
  ],
};

const SINGLE_STRING: Eip712Struct = { name: 'Note', fields: [{ name: 'text', type: 'string' }] };

const DOMAINS: readonly Eip712Domain[] = [
  { name: 'tkms', version: '1' },
  { name: 'tkms', version: '1', chainId: 1n },
  { name: 'Ünïcode ✓ 𝄞', version: '', chainId: 0n },
  { name: '', version: '2.0.0-beta', chainId: (1n << 256n) - 1n },
  { name: 'tkms', version: '2', salt: Uint8Array.from({ length: 32 }, (_, i) => i + 1) },
  { name: 'tkms', version: '2', chainId: 31337n, salt: new Uint8Array(32).fill(0xff) },
];

function rand(n: number): Uint8Array {
  return new Uint8Array(nodeRandomBytes(n));
}

function grantMessage(): Message {
  return { handle: rand(32), grantee: rand(20), notAfter: 1_700_000_000n };
}

function delegationMessage(): Message {
  return {
    handle: rand(32),
    keyId: 'vault-key.2024_01',
    requester: rand(20),
    rsaSpki: rand(294),
    notBefore: 1_700_000_000,
    notAfter: (1n << 64n) - 1n,
    requestId: rand(16),
  };
}

function randomSecretKey(): Uint8Array {
  return secp256k1.utils.randomSecretKey();
}

/** Our value model → the JSON-ish values ethers expects (hex strings for bytes, checksummed addresses). */
function ethersTypes(struct: Eip712Struct): Record<string, ethers.TypedDataField[]> {
  return { [struct.name]: struct.fields.map((f) => ({ name: f.name, type: f.type })) };
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

function ethersDomain(domain: Eip712Domain): ethers.TypedDataDomain {
  return {
    name: domain.name,
    version: domain.version,
    ...(domain.chainId === undefined ? {} : { chainId: domain.chainId }),
    ...(domain.salt === undefined ? {} : { salt: encodeHex(domain.salt) }),
  };
}

function ethersHash(domain: Eip712Domain, struct: Eip712Struct, message: Message): string {
  return ethers.TypedDataEncoder.hash(ethersDomain(domain), ethersTypes(struct), ethersMessage(struct, message));
}

function typed(code: ErrorCode, field?: string): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(isTkmsError(e), `expected TkmsError, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    assert.equal(e.code, code, e.message);
    if (field !== undefined) {
      assert.equal(e.details?.['field'], field);
      assert.ok(e.message.includes(field), `message "${e.message}" should name ${field}`);
    }
    return true;
  };
}

const CASES: ReadonlyArray<[Eip712Struct, () => Message]> = [
  [GRANT, grantMessage],
  [DELEGATION, delegationMessage],
  [SINGLE_STRING, () => ({ text: 'hello 🌍, ñ and \u0000' })],
];

describe('core: EIP-712 encoding', () => {
  it('encodeType is Name(type name,…) in declaration order', () => {
    assert.equal(encodeType(GRANT), 'Grant(bytes32 handle,address grantee,uint64 notAfter)');
    assert.equal(
      encodeType(DELEGATION),
      'Delegation(bytes32 handle,string keyId,address requester,bytes rsaSpki,uint64 notBefore,uint64 notAfter,bytes16 requestId)',
    );
    assert.equal(encodeType(GRANT), ethers.TypedDataEncoder.from(ethersTypes(GRANT)).encodeType('Grant'));
  });

  it('hashStruct and domainSeparator equal ethers', () => {
    for (const [struct, make] of CASES) {
      const m = make();
      const encoder = ethers.TypedDataEncoder.from(ethersTypes(struct));
      assert.equal(encodeHex(hashStruct(struct, m)), encoder.hashStruct(struct.name, ethersMessage(struct, m)));
    }
    for (const d of DOMAINS) assert.equal(encodeHex(domainSeparator(d)), ethers.TypedDataEncoder.hashDomain(ethersDomain(d)));
  });

  it('hashTypedData equals ethers.TypedDataEncoder.hash for every struct × domain (with and without chainId)', () => {
    for (const [struct, make] of CASES) {
      for (const domain of DOMAINS) {
        for (let i = 0; i < 5; i++) {
          const m = make();
          assert.equal(encodeHex(hashTypedData(domain, struct, m)), ethersHash(domain, struct, m), `${struct.name} / ${domain.name}`);
        }
      }
    }
  });

  it('uint64 accepts bigint and safe-integer numbers with the same encoding, at both ends of the range', () => {
    const m = grantMessage();
    for (const [n, b] of [[0, 0n], [1, 1n], [Number.MAX_SAFE_INTEGER, BigInt(Number.MAX_SAFE_INTEGER)]] as const) {
      assert.deepEqual(hashStruct(GRANT, { ...m, notAfter: n }), hashStruct(GRANT, { ...m, notAfter: b }));
    }
    const max = { ...m, notAfter: (1n << 64n) - 1n };
    assert.equal(encodeHex(hashTypedData(DOMAINS[1]!, GRANT, max)), ethersHash(DOMAINS[1]!, GRANT, max));
  });

  it('the domain with chainId differs from the one without, and chainId binds', () => {
    const m = grantMessage();
    const a = hashTypedData({ name: 'tkms', version: '1' }, GRANT, m);
    const b = hashTypedData({ name: 'tkms', version: '1', chainId: 1n }, GRANT, m);
    const c = hashTypedData({ name: 'tkms', version: '1', chainId: 2n }, GRANT, m);
    assert.notDeepEqual(a, b);
    assert.notDeepEqual(b, c);
  });

  it('salt binds: a domain with a salt differs from one without and from one with another salt', () => {
    const m = grantMessage();
    const none = hashTypedData({ name: 'tkms', version: '2' }, GRANT, m);
    const one = hashTypedData({ name: 'tkms', version: '2', salt: new Uint8Array(32).fill(1) }, GRANT, m);
    const two = hashTypedData({ name: 'tkms', version: '2', salt: new Uint8Array(32).fill(2) }, GRANT, m);
    assert.notDeepEqual(none, one);
    assert.notDeepEqual(one, two);
    // The cache is keyed by value, so a salt written into after use hashes as its new value, not a stale one.
    const salt = new Uint8Array(32).fill(1);
    const domain = { name: 'tkms', version: '2', salt };
    assert.deepEqual(hashTypedData(domain, GRANT, m), one);
    salt[0] = 2;
    assert.notDeepEqual(hashTypedData(domain, GRANT, m), one);
  });

  it('rejects missing, extra and mistyped fields with bad_request naming the field', () => {
    const m = delegationMessage();
    const without = (k: string): Message => Object.fromEntries(Object.entries(m).filter(([key]) => key !== k));
    assert.throws(() => hashStruct(DELEGATION, without('keyId')), typed('bad_request', 'keyId'));
    assert.throws(() => hashStruct(DELEGATION, { ...m, extra: 1n }), typed('bad_request', 'extra'));
    const bad: Array<[string, unknown]> = [
      ['handle', rand(31)],
      ['handle', rand(33)],
      ['handle', encodeHex(rand(32))],
      ['keyId', rand(4)],
      ['keyId', 5n],
      ['keyId', 'lone \uD800 surrogate'],
      ['requester', rand(32)],
      ['requester', '0x' + '11'.repeat(20)],
      ['rsaSpki', '0x00'],
      ['rsaSpki', null],
      ['rsaSpki', undefined],
      ['notBefore', -1n],
      ['notBefore', 1n << 64n],
      ['notBefore', -1],
      ['notBefore', 1.5],
      ['notBefore', Number.MAX_SAFE_INTEGER + 1],
      ['notBefore', Number.NaN],
      ['notBefore', '5'],
      ['requestId', rand(32)],
      ['requestId', rand(15)],
    ];
    for (const [field, value] of bad) {
      assert.throws(() => hashStruct(DELEGATION, { ...m, [field]: value as Eip712Value }), typed('bad_request', field), `${field}=${String(value)}`);
    }
    for (const notObject of [null, 'x', 5, [1], rand(3)]) {
      assert.throws(() => hashStruct(GRANT, notObject as unknown as Message), typed('bad_request'));
    }
    // Inherited properties are not sent fields.
    const inherited = Object.create({ notAfter: 1n }) as Message;
    Object.assign(inherited, { handle: rand(32), grantee: rand(20) });
    assert.throws(() => hashStruct(GRANT, inherited), typed('bad_request', 'notAfter'));
  });

  it('rejects unsupported or malformed domains with bad_request', () => {
    const m = grantMessage();
    const bad: unknown[] = [
      { name: 'tkms', version: '1', verifyingContract: '0x' + '00'.repeat(20) },
      { name: 'tkms', version: '1', chainId: 1 },
      { name: 'tkms', version: '1', chainId: -1n },
      { name: 'tkms', version: '1', chainId: 1n << 256n },
      { name: 'tkms', version: '2', salt: new Uint8Array(31) },
      { name: 'tkms', version: '2', salt: new Uint8Array(33) },
      { name: 'tkms', version: '2', salt: '0x' + '00'.repeat(32) },
      { name: 5, version: '1' },
      { version: '1' },
      { name: 'tkms', version: '\uDC00' },
      null,
    ];
    for (const d of bad) assert.throws(() => hashTypedData(d as Eip712Domain, GRANT, m), typed('bad_request'), JSON.stringify(d, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v)));
  });

  it('rejects malformed struct definitions as internal errors (they are code, not input)', () => {
    const bad: unknown[] = [
      { name: 'Grant', fields: [{ name: 'a', type: 'uint256' }] },
      { name: 'Grant', fields: [{ name: 'a b', type: 'uint64' }] },
      { name: 'Grant', fields: [{ name: 'a', type: 'uint64' }, { name: 'a', type: 'bytes' }] },
      { name: 'Grant(uint64 x)', fields: [] },
      { name: 'EIP712Domain', fields: [{ name: 'name', type: 'string' }] },
      { name: 'Grant' },
    ];
    for (const s of bad) assert.throws(() => encodeType(s as Eip712Struct), typed('internal'), JSON.stringify(s));
  });
});

describe('core: EIP-712 signatures', () => {
  it('signTypedData produces exactly the signature ethers.Wallet produces, and ethers verifies it', async () => {
    for (const [struct, make] of CASES) {
      for (const domain of DOMAINS) {
        const sk = randomSecretKey();
        const wallet = new ethers.Wallet(ethers.hexlify(sk));
        const m = make();
        const sig = signTypedData(sk, domain, struct, m);
        assert.equal(sig.length, SIGNATURE_LENGTH);
        assert.ok(sig[64] === 27 || sig[64] === 28);
        assert.ok(bytesToNumberBE(sig.subarray(32, 64)) <= CURVE_ORDER >> 1n, 'low s');
        assert.deepEqual(signTypedData(sk, domain, struct, m), sig, 'deterministic');
        const types = ethersTypes(struct);
        const value = ethersMessage(struct, m);
        assert.equal(ethers.verifyTypedData(ethersDomain(domain), types, value, encodeHex(sig)), wallet.address);
        // Both are RFC 6979 + low-s, so the bytes agree, not only the signer.
        assert.equal(encodeHex(sig), await wallet.signTypedData(ethersDomain(domain), types, value));
      }
    }
  });

  it('recoverTypedDataSigner recovers the signer of an ethers.Wallet signature', async () => {
    for (const [struct, make] of CASES) {
      for (const domain of DOMAINS) {
        const wallet = ethers.Wallet.createRandom();
        const m = make();
        const sigHex = await wallet.signTypedData(ethersDomain(domain), ethersTypes(struct), ethersMessage(struct, m));
        const signer = recoverTypedDataSigner(domain, struct, m, decodeSignature(sigHex));
        assert.equal(ethers.getAddress(encodeHex(signer)), wallet.address);
      }
    }
  });

  it('addressFromSecretKey and addressFromPublicKey (33 and 65 bytes) equal ethers', () => {
    for (let i = 0; i < 20; i++) {
      const sk = randomSecretKey();
      const expected = new ethers.Wallet(ethers.hexlify(sk)).address;
      const address = addressFromSecretKey(sk);
      assert.equal(address.length, 20);
      assert.equal(ethers.getAddress(encodeHex(address)), expected);
      assert.deepEqual(addressFromPublicKey(secp256k1.getPublicKey(sk, true)), address);
      assert.deepEqual(addressFromPublicKey(secp256k1.getPublicKey(sk, false)), address);
      assert.equal(ethers.computeAddress(encodeHex(secp256k1.getPublicKey(sk, true))), expected);
    }
  });

  it('a signature over a different message, domain or struct recovers a different address', () => {
    const sk = randomSecretKey();
    const address = addressFromSecretKey(sk);
    const domain = DOMAINS[1]!;
    const m = grantMessage();
    const sig = signTypedData(sk, domain, GRANT, m);
    assert.deepEqual(recoverTypedDataSigner(domain, GRANT, m, sig), address);
    const others: Array<[Eip712Domain, Eip712Struct, Message]> = [
      [domain, GRANT, { ...m, notAfter: 1_700_000_001n }],
      [domain, GRANT, { ...m, grantee: rand(20) }],
      [DOMAINS[0]!, GRANT, m],
      [{ ...domain, chainId: 5n }, GRANT, m],
      [{ ...domain, version: '2' }, GRANT, m],
      [domain, { name: 'Grant2', fields: GRANT.fields }, m],
    ];
    for (const [d, s, msg] of others) {
      let recovered: Uint8Array | undefined;
      try {
        recovered = recoverTypedDataSigner(d, s, msg, sig);
      } catch (e) {
        assert.ok(isTkmsError(e, 'unauthorized'), String(e));
      }
      if (recovered !== undefined) assert.notDeepEqual(recovered, address);
    }
  });

  it('rejects the high-s twin of a valid signature (malleability), though it is mathematically valid', () => {
    for (let i = 0; i < 10; i++) {
      const sk = randomSecretKey();
      const m = grantMessage();
      const domain = DOMAINS[i % DOMAINS.length]!;
      const sig = signTypedData(sk, domain, GRANT, m);
      const s = bytesToNumberBE(sig.subarray(32, 64));
      const twin = Uint8Array.from(sig);
      twin.set(numberToBytesBE(CURVE_ORDER - s, 32), 32);
      twin[64] = sig[64] === 27 ? 28 : 27;
      // The twin recovers the same key when malleability is allowed, so rejecting it is a policy, not an accident.
      const recoveredTwin = secp256k1.recoverPublicKey(Uint8Array.of(twin[64]! - 27, ...twin.subarray(0, 64)), hashTypedData(domain, GRANT, m), { prehash: false });
      assert.deepEqual(addressFromPublicKey(recoveredTwin), addressFromSecretKey(sk));
      assert.throws(() => recoverTypedDataSigner(domain, GRANT, m, twin), (e: unknown) => typed('unauthorized')(e) && /malleable/.test((e as Error).message));
    }
  });

  it('rejects v outside {27, 28} (including 0/1), out-of-range r and s, and wrong lengths', () => {
    const sk = randomSecretKey();
    const domain = DOMAINS[0]!;
    const m = grantMessage();
    const sig = signTypedData(sk, domain, GRANT, m);
    const withV = (v: number) => Uint8Array.of(...sig.subarray(0, 64), v);
    // The message check pins the reason: v = 29 would otherwise also fail later, in recovery.
    for (const v of [29, 0, 1, 26, 255]) {
      assert.throws(() => recoverTypedDataSigner(domain, GRANT, m, withV(v)), (e: unknown) => typed('unauthorized')(e) && /v must be 27 or 28/.test((e as Error).message), `v=${v}`);
    }
    const withR = (r: bigint) => Uint8Array.of(...numberToBytesBE(r, 32), ...sig.subarray(32));
    const withS = (s: bigint) => Uint8Array.of(...sig.subarray(0, 32), ...numberToBytesBE(s, 32), sig[64]!);
    for (const x of [0n, CURVE_ORDER, (1n << 256n) - 1n]) {
      assert.throws(() => recoverTypedDataSigner(domain, GRANT, m, withR(x)), typed('unauthorized'));
      assert.throws(() => recoverTypedDataSigner(domain, GRANT, m, withS(x)), typed('unauthorized'));
    }
    for (const len of [0, 64, 66]) assert.throws(() => recoverTypedDataSigner(domain, GRANT, m, new Uint8Array(len)), typed('bad_length'));
    assert.throws(() => recoverTypedDataSigner(domain, GRANT, m, encodeHex(sig) as unknown as Uint8Array), typed('bad_request'));
    // A message error is still a bad request, not a signature failure.
    assert.throws(() => recoverTypedDataSigner(domain, GRANT, { ...m, notAfter: -1n }, sig), typed('bad_request', 'notAfter'));
  });

  it('rejects an r that is not the x-coordinate of any point as unauthorized', () => {
    const domain = DOMAINS[0]!;
    const m = grantMessage();
    let found = 0;
    for (let x = 1n; found < 5; x++) {
      let onCurve = true;
      try {
        secp256k1.Point.fromBytes(Uint8Array.of(2, ...numberToBytesBE(x, 32)));
      } catch {
        onCurve = false;
      }
      if (onCurve) continue;
      found++;
      const sig = Uint8Array.of(...numberToBytesBE(x, 32), ...numberToBytesBE(1n, 32), 27);
      assert.throws(() => recoverTypedDataSigner(domain, GRANT, m, sig), typed('unauthorized'));
    }
  });

  it('rejects invalid secret keys with typed errors', () => {
    const m = grantMessage();
    const bad: Array<[unknown, ErrorCode]> = [
      [new Uint8Array(32), 'bad_scalar'],
      [numberToBytesBE(CURVE_ORDER, 32), 'bad_scalar'],
      [rand(31), 'bad_length'],
      [encodeHex(rand(32)), 'bad_scalar'],
    ];
    for (const [sk, code] of bad) {
      assert.throws(() => signTypedData(sk as Uint8Array, DOMAINS[0]!, GRANT, m), typed(code));
      assert.throws(() => addressFromSecretKey(sk as Uint8Array), typed(code));
    }
  });

  it('addressFromPublicKey rejects non-points and wrong lengths', () => {
    const pk = secp256k1.getPublicKey(randomSecretKey(), true);
    assert.throws(() => addressFromPublicKey(pk.subarray(1)), typed('bad_length'));
    assert.throws(() => addressFromPublicKey(Uint8Array.of(5, ...pk.subarray(1))), typed('bad_point'));
    assert.throws(() => addressFromPublicKey(Uint8Array.of(4, ...new Uint8Array(64))), typed('bad_point'));
    assert.throws(() => addressFromPublicKey('0x02' as unknown as Uint8Array), typed('bad_point'));
  });

  it('decodeSignature reads 0x + 130 hex digits and nothing else', () => {
    const sig = rand(65);
    assert.deepEqual(decodeSignature(encodeHex(sig)), sig);
    assert.deepEqual(decodeSignature(encodeHex(sig).toUpperCase().replace('0X', '0x')), sig);
    assert.throws(() => decodeSignature(encodeHex(sig).slice(2)), typed('bad_hex'));
    assert.throws(() => decodeSignature(encodeHex(sig).slice(0, -2)), typed('bad_length'));
    assert.throws(() => decodeSignature(encodeHex(sig) + '00'), typed('bad_length'));
    assert.throws(() => decodeSignature(encodeHex(sig).slice(0, -1)), typed('bad_hex'));
    assert.throws(() => decodeSignature(encodeHex(sig).slice(0, -1) + 'g'), typed('bad_hex'));
    assert.throws(() => decodeSignature(sig), typed('bad_hex'));
    assert.throws(() => decodeSignature('0x' + '00'.repeat(100_000)), typed('bad_length'));
  });
});
