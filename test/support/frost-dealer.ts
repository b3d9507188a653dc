import { ed25519 } from '@noble/curves/ed25519.js';
import { secp256k1 } from '@noble/curves/secp256k1.js';
import { bytesToNumberBE } from '@noble/curves/utils.js';
import { randomBytes } from '@noble/hashes/utils.js';
import type { SigningKeyShares, SigningSuite } from '../../core/signing/suites.ts';

/**
 * A signing key dealt in the test, as a DKG would leave it: a random secret Shamir-shared t-of-n
 * at x = member id, the group key and every verification share encoded as the DKG result encodes
 * them (ed25519 32 bytes, secp256k1 33-byte compressed). The dealing is independent of the code
 * under test, so a signature that verifies checks that code's share handling (and Taproot tweak).
 */
export interface DealtSigningKey extends SigningKeyShares {
  secret: bigint;
  shares: Map<number, bigint>;
  verificationShares: Map<number, Uint8Array>;
}

const curveOf = (suite: SigningSuite) => (suite === 'ed25519' ? ed25519.Point : secp256k1.Point);

function encodePoint(suite: SigningSuite, scalar: bigint): Uint8Array {
  const P = curveOf(suite).BASE.multiply(scalar);
  return suite === 'ed25519' ? P.toBytes() : P.toBytes(true);
}

function randomNonZeroScalar(suite: SigningSuite): bigint {
  const Fn = curveOf(suite).Fn;
  for (;;) {
    // 64 bytes reduced: no measurable bias against a 256-bit order.
    const s = Fn.create(bytesToNumberBE(randomBytes(64)));
    if (s !== 0n) return s;
  }
}

/** Deals a key; `parity` (bip340) loops until the group key's y is odd or even as asked. */
export function dealSigningKey(suite: SigningSuite, t: number, n: number, parity?: 'even' | 'odd'): DealtSigningKey {
  const Fn = curveOf(suite).Fn;
  for (;;) {
    const coefficients = Array.from({ length: t }, () => randomNonZeroScalar(suite));
    const secret = coefficients[0]!;
    const groupPublicKey = encodePoint(suite, secret);
    if (parity !== undefined && (groupPublicKey[0] === 0x02) !== (parity === 'even')) continue;
    const shares = new Map<number, bigint>();
    const verificationShares = new Map<number, Uint8Array>();
    for (let id = 1; id <= n; id++) {
      const x = BigInt(id);
      let y = 0n;
      for (let k = coefficients.length - 1; k >= 0; k--) y = Fn.add(Fn.mul(y, x), coefficients[k]!);
      shares.set(id, y);
      verificationShares.set(id, encodePoint(suite, y));
    }
    return { suite, t, n, secret, groupPublicKey, shares, verificationShares };
  }
}
