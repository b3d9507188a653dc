import { sha512 } from '@noble/hashes/sha2.js';
import { mapHashToField } from '@noble/curves/abstract/modular.js';
import { bytesToNumberBE } from '@noble/curves/utils.js';
import { lengthPrefixed, utf8ToBytes } from '../bytes.ts';
import { COMPRESSED_POINT_LENGTH, CURVE_ORDER } from '../curve.ts';
import { assertPointBytes, curveBackend } from '../curve-backend.ts';
import { TkmsError } from '../errors.ts';
import { lagrangeCoefficientsAtZero, type PartialPoint } from '../shamir.ts';

/**
 * Derived keys: many keys from one DKG'd root without a ceremony each. The secret of the key at
 * (path, version) is root + τ with τ = H(domain, root public key, path, version), so
 *  - anyone computes its public key, rootPK + τ·G (τ is public);
 *  - nodes answer with the root share, P_i = K·root_i, proven against the root's Y_i;
 *  - the client adds τ·K after combining: Σ λ_i·P_i + τ·K = K·(root + τ).
 * See docs/derived-keys.md, including why deleting a derived key cannot erase anything.
 */

/** Separates this hash from every other use of SHA-512 in the project; bumping it re-keys every derived key. */
const TWEAK_DOMAIN = utf8ToBytes('tkms/derived-key/v1');

/** In Unicode code points; long enough for a wallet-style or URL-like name, short enough to bound the hash. */
export const DERIVATION_PATH_MAX_LENGTH = 256;

/**
 * The path rule, as a JSON Schema pattern (ECMA-262 with the u flag) so an API schema can state
 * it too: 1..256 code points, none a control character (U+0000–U+001F, U+007F–U+009F) and no
 * unpaired surrogate. Unpaired surrogates are refused because UTF-8 encoding replaces each with
 * U+FFFD: two different strings would name one key. Paths are not Unicode-normalised: "é"
 * precomposed and decomposed are two keys, so applications taking paths from people normalise
 * them (NFC) first.
 */
export const DERIVATION_PATH_PATTERN = `^[^\\u0000-\\u001f\\u007f-\\u009f\\ud800-\\udfff]{1,${DERIVATION_PATH_MAX_LENGTH}}$`;
const DERIVATION_PATH = new RegExp(DERIVATION_PATH_PATTERN, 'u');

export const MAX_DERIVATION_VERSION = 0xffff_ffff;

export function assertDerivationPath(path: unknown): asserts path is string {
  // A code point is at most two UTF-16 units: longer strings fail without running the pattern.
  if (typeof path !== 'string' || path.length > 2 * DERIVATION_PATH_MAX_LENGTH || !DERIVATION_PATH.test(path)) {
    throw new TkmsError(
      'bad_request',
      `derivation path must be 1-${DERIVATION_PATH_MAX_LENGTH} characters with no control characters or unpaired surrogates`,
    );
  }
}

export function assertDerivationVersion(version: unknown): asserts version is number {
  if (typeof version !== 'number' || !Number.isInteger(version) || version < 0 || version > MAX_DERIVATION_VERSION) {
    throw new TkmsError('bad_request', `derivation version must be an integer in 0..${MAX_DERIVATION_VERSION}`);
  }
}

function assertTweak(tweak: unknown): asserts tweak is bigint {
  if (typeof tweak !== 'bigint' || tweak <= 0n || tweak >= CURVE_ORDER) {
    throw new TkmsError('bad_scalar', 'derivation tweak must be a scalar in 1..n-1');
  }
}

/**
 * τ for the key at (path, version) under the root: SHA-512 over the length-prefixed fields, then
 * noble's mapHashToField, which maps 64 uniform bytes into 1..n−1 with bias far below 2^-128.
 * τ is never zero, so a derived key is never the root itself.
 */
export function deriveKeyTweak(rootPublicKey: Uint8Array, path: string, version: number): bigint {
  assertPointBytes(rootPublicKey, 'root public key');
  assertDerivationPath(path);
  assertDerivationVersion(version);
  const versionBytes = new Uint8Array(4);
  new DataView(versionBytes.buffer).setUint32(0, version, false);
  const digest = sha512(lengthPrefixed(TWEAK_DOMAIN, rootPublicKey, utf8ToBytes(path), versionBytes));
  return bytesToNumberBE(mapHashToField(digest, CURVE_ORDER));
}

/**
 * rootPK + τ·G, compressed. Public inputs only, so the backend's variable-time path. The sum is the
 * identity only when τ = −root, a key nobody can use: refused rather than encoded.
 */
export function derivedPublicKey(rootPublicKey: Uint8Array, tweak: bigint): Uint8Array {
  assertPointBytes(rootPublicKey, 'root public key');
  assertTweak(tweak);
  const sum = curveBackend().linearCombination(tweak, [rootPublicKey], [1n]);
  if (sum === null) throw new TkmsError('bad_point', 'the derived public key is the identity point');
  return sum;
}

/**
 * Σ λ_i(0)·P_i + τ·K over exactly the given partials, compressed: K·(root + τ) when the partials are
 * t valid partials of K under the root (each already checked against the ROOT's Y_i). The
 * counterpart of combinePartials (core/shamir.ts) for a derived key, in one multi-scalar product.
 */
export function combineDerivedPartials(partials: readonly PartialPoint[], K: Uint8Array, tweak: bigint): Uint8Array {
  assertTweak(tweak);
  assertPointBytes(K, 'K');
  const coefficients = lagrangeCoefficientsAtZero(partials.map((p) => p.id));
  for (const p of partials) {
    if (!(p.point instanceof Uint8Array) || p.point.length !== COMPRESSED_POINT_LENGTH) {
      throw new TkmsError('bad_point', `partial from node ${p.id} is not a compressed point`);
    }
  }
  const sum = curveBackend().linearCombination(0n, [...partials.map((p) => p.point), K], [...coefficients, tweak]);
  // Valid partials give K·(root + τ), never the identity (derivedPublicKey refuses root + τ = 0).
  if (sum === null) throw new TkmsError('bad_point', 'the partials and the tweak combine to the identity point');
  return sum;
}
