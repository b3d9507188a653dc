import { constants, createPublicKey, publicEncrypt } from 'node:crypto';
import { loadNativeCurveBackend } from '../core/curve-native.ts';
import {
  combinePartials,
  computeProvenPartial,
  curveBackend,
  decodeDleqProof,
  decryptWithSharedSecretX,
  eciesEncrypt,
  encodeDleqProof,
  encodePoint,
  G,
  generateRsaKeyPair,
  importRsaPublicKey,
  newRequestId,
  nobleCurveBackend,
  publicKeyFromSecret,
  randomScalar,
  hashTypedData,
  rsaOaepUnwrap,
  rsaOaepWrap,
  setCurveBackend,
  signTypedData,
  splitSecret,
  tkmsDomain,
  DelegationMessage,
  verifyDleq,
  type CurveBackend,
} from '../core/index.ts';
import { installNodeCryptoPaths, uninstallNodeCryptoPaths } from '../core/node-crypto.ts';
import { measure, type Measurement, printTable } from './harness.ts';

/**
 * Core crypto figures, each measured once per curve backend in the same process, so the
 * noble and libsecp256k1 rows of one run compare directly.
 */
export function benchBackends(): CurveBackend[] {
  const native = loadNativeCurveBackend();
  if ('error' in native) {
    console.log(`  (libsecp256k1 addon not loaded: ${native.error}; noble only)`);
    return [nobleCurveBackend];
  }
  return [nobleCurveBackend, native];
}

export async function benchCore(opts: { minMs: number }): Promise<Measurement[]> {
  const sk = randomScalar();
  const pk = publicKeyFromSecret(sk);
  const plaintext = new Uint8Array(1024);
  const K = G.multiply(randomScalar()).toBytes(true);
  const share = splitSecret(sk, 3, 5)[0]!;
  const Y = publicKeyFromSecret(share.value).toBytes(true);
  const ctx = { keyId: 'bench', nodeId: share.id, requestId: newRequestId() };
  const rsa = await generateRsaKeyPair(2048);
  const spki = Buffer.from(rsa.publicKey.spkiHex, 'hex');
  const keyObject = createPublicKey({ key: spki, format: 'der', type: 'spki' });
  const accountKey = new Uint8Array(32).fill(7);
  const message = {
    handle: new Uint8Array(32).fill(1),
    keyId: 'bench',
    requester: new Uint8Array(20).fill(2),
    rsaSpki: spki,
    notBefore: 1n,
    notAfter: 2n,
    requestId: new Uint8Array(16).fill(3),
  };
  const domain = tkmsDomain({ committeeId: 'bench' });
  const signature = signTypedData(accountKey, domain, DelegationMessage.struct, message);

  const rows: Measurement[] = [];
  const m = async (name: string, fn: () => unknown) => rows.push(await measure(name, fn, { minMs: opts.minMs }));

  for (const backend of benchBackends()) {
    setCurveBackend(backend);
    const tag = `[${backend.name}]`;
    const proven = computeProvenPartial(ctx, share.value, Y, K);
    await m(`${tag} K·share (constant-time)`, () => curveBackend().multiplySecret(K, share.value));
    await m(`${tag} partial with DLEQ proof`, () => computeProvenPartial(ctx, share.value, Y, K));
    await m(`${tag} DLEQ verify`, () => verifyDleq(ctx, Y, K, proven.partial, decodeDleqProof(encodeDleqProof(proven.proof))));
    // The raw recovery: recoverTypedDataSigner would answer repeats of one signature from its cache.
    const digest = hashTypedData(domain, DelegationMessage.struct, message);
    const v = signature[64] === 27 ? 0 : 1;
    await m(`${tag} ECDSA public-key recovery (EIP-712 signer)`, () => curveBackend().recoverPublicKey(digest, signature.subarray(0, 64), v));
    await m(`${tag} ECIES encrypt 1 KiB`, () => eciesEncrypt(pk, plaintext));
    // A random t-subset of a larger committee (ids 1..t give tiny Lagrange coefficients) and fresh points.
    for (const t of [3, 11, 33]) {
      const n = 2 * t + 1;
      const tShares = splitSecret(sk, t, n);
      const sets = Array.from({ length: 4 }, () => {
        const Kx = G.multiply(randomScalar());
        const chosen = [...tShares].sort(() => Math.random() - 0.5).slice(0, t);
        return chosen.map((s) => ({ id: s.id, point: Kx.multiply(s.value).toBytes(true) }));
      });
      let next = 0;
      await m(`${tag} combine t=${t}`, () => combinePartials(sets[next++ % sets.length]!));
    }
  }
  setCurveBackend(nobleCurveBackend);

  const partial = encodePoint(G.multiply(randomScalar()));
  const wrapped = await rsaOaepWrap(rsa.publicKey, partial);
  await m('RSA-2048 SPKI import and checks (uncached)', () => importRsaPublicKey(spki));
  await m('RSA-OAEP-2048 wrap (WebCrypto)', () => rsaOaepWrap(rsa.publicKey, partial));
  await m('RSA-OAEP-2048 wrap (node:crypto)', () => publicEncrypt({ key: keyObject, padding: constants.RSA_PKCS1_OAEP_PADDING, oaepHash: 'sha256' }, partial));
  await m('RSA-OAEP-2048 unwrap (WebCrypto)', () => rsaOaepUnwrap(rsa.privateKey, wrapped));
  const sealed = await eciesEncrypt(pk, plaintext);
  const x = curveBackend().multiplySecret(sealed.K, sk).slice(1);
  await m('HKDF + AES-GCM decrypt 1 KiB given x(K·sk) (WebCrypto)', () => decryptWithSharedSecretX(x, sealed.nonce, sealed.ciphertext));
  installNodeCryptoPaths();
  try {
    await m('RSA-OAEP-2048 unwrap (node:crypto)', () => rsaOaepUnwrap(rsa.privateKey, wrapped));
    await m('HKDF + AES-GCM decrypt 1 KiB given x(K·sk) (node:crypto)', () => decryptWithSharedSecretX(x, sealed.nonce, sealed.ciphertext));
  } finally {
    uninstallNodeCryptoPaths();
  }

  printTable('core crypto (one process, side by side; ratios against the first row)', rows, rows[0]!.name);
  return rows;
}
