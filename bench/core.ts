import { mulAddUnsafe, pippenger } from '@noble/curves/abstract/curve.js';
import {
  combinePartials,
  computeProvenPartial,
  decodeDleqProof,
  decryptWithSharedSecretX,
  eciesEncrypt,
  encodeDleqProof,
  G,
  generateRsaKeyPair,
  lagrangeCoefficientsAtZero,
  multiplySecret,
  newRequestId,
  Point,
  publicKeyFromSecret,
  randomScalar,
  rsaOaepUnwrap,
  rsaOaepWrap,
  splitSecret,
  verifyDleq,
  xCoordinate,
  encodePoint,
} from '../core/index.ts';
import { measure, type Measurement, printTable } from './harness.ts';

/** Core crypto figures: what one node, one gateway and one client spend per operation. */
export async function benchCore(opts: { minMs: number }): Promise<Measurement[]> {
  const sk = randomScalar();
  const pk = publicKeyFromSecret(sk);
  const plaintext = new Uint8Array(1024);
  const K = G.multiply(randomScalar());
  const shares = splitSecret(sk, 3, 5);
  const share = shares[0]!;
  const Y = publicKeyFromSecret(share.value);
  const ctx = { keyId: 'bench', nodeId: share.id, requestId: newRequestId() };
  const proven = computeProvenPartial(ctx, share.value, Y, K);
  const rsa = await generateRsaKeyPair(2048);
  const wrapped = await rsaOaepWrap(rsa.publicKey, encodePoint(proven.partial));
  const { K: Kbytes, nonce, ciphertext } = await eciesEncrypt(pk, plaintext);
  const sharedX = xCoordinate(Point.fromBytes(Kbytes).multiply(sk));

  const rows: Measurement[] = [];
  const m = async (name: string, fn: () => unknown) => rows.push(await measure(name, fn, { minMs: opts.minMs }));

  await m('secp256k1 K·share (constant-time, noble)', () => multiplySecret(K, share.value));
  await m('ECIES encrypt 1 KiB', () => eciesEncrypt(pk, plaintext));
  await m('AES-GCM decrypt given x(K·sk) 1 KiB', () => decryptWithSharedSecretX(sharedX, nonce, ciphertext));
  await m('partial with DLEQ proof', () => computeProvenPartial(ctx, share.value, Y, K));
  await m('DLEQ verify', () => verifyDleq(ctx, Y, K, proven.partial, decodeDleqProof(encodeDleqProof(proven.proof))));
  await m('RSA-OAEP-2048 wrap (WebCrypto)', () => rsaOaepWrap(rsa.publicKey, encodePoint(proven.partial)));
  await m('RSA-OAEP-2048 unwrap (WebCrypto)', () => rsaOaepUnwrap(rsa.privateKey, wrapped));

  // Realistic combination inputs: a random t-subset of a larger committee (ids 1..t would give
  // integer Lagrange coefficients that GLV shrinks to a few bits) and fresh points per call.
  for (const t of [3, 11, 33]) {
    const n = 2 * t + 1;
    const tShares = splitSecret(sk, t, n);
    const sets = Array.from({ length: 8 }, () => {
      const Kx = G.multiply(randomScalar());
      const chosen = [...tShares].sort(() => Math.random() - 0.5).slice(0, t);
      return chosen.map((s) => ({ id: s.id, point: Kx.multiply(s.value) }));
    });
    let next = 0;
    const pick = () => sets[next++ % sets.length]!;
    await m(`combine t=${t} (combinePartials)`, () => combinePartials(pick()));
    await m(`combine t=${t} (pippenger)`, () => {
      const set = pick();
      return pippenger(Point, set.map((p) => p.point), lagrangeCoefficientsAtZero(set.map((p) => p.id)));
    });
    await m(`combine t=${t} (Strauss mulAddUnsafe)`, () => {
      const set = pick();
      return mulAddUnsafe(Point, set.map((p) => p.point), lagrangeCoefficientsAtZero(set.map((p) => p.id)));
    });
    await m(`combine t=${t} (t separate multiplyUnsafe)`, () => {
      const set = pick();
      const lambdas = lagrangeCoefficientsAtZero(set.map((p) => p.id));
      return set.reduce((acc, p, i) => acc.add(p.point.multiplyUnsafe(lambdas[i]!)), Point.ZERO);
    });
  }
  printTable('core crypto (one process, side by side; ratios against the constant-time K·share)', rows, rows[0]!.name);
  return rows;
}
