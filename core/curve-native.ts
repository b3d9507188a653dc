import { createRequire } from 'node:module';
import { randomBytes } from 'node:crypto';
import { numberToBytesBE } from '@noble/curves/utils.js';
import { CURVE_ORDER, mod } from './curve.ts';
import type { CurveBackend } from './curve-backend.ts';
import { nobleCurveBackend } from './curve-noble.ts';
import { TkmsError } from './errors.ts';

/**
 * libsecp256k1 (the `secp256k1` package's N-API addon, prebuilt for linux/darwin/win32) as a
 * CurveBackend, for node, gateway and Node clients. Node.js only: browsers keep noble.
 *
 * Which libsecp256k1 call serves which need:
 * - secret·P: `secp256k1_ecdh` with a hash function that returns the compressed point. ECDH
 *   multiplies with `secp256k1_ecmult_const`, libsecp256k1's constant-time ladder. The
 *   package's `publicKeyTweakMul` would be faster but uses the variable-time `ecmult`, so it
 *   only ever sees public scalars here.
 * - secret·G: `publicKeyCreate` (`ecmult_gen`, constant time, blinded; re-randomized at load).
 * - public combinations: `publicKeyCreate` + `publicKeyTweakMul` + `publicKeyCombine`.
 * - ECDSA recovery and signing: `ecdsaRecover`, `ecdsaSign` (RFC 6979, low s).
 *
 * The package's main entry silently falls back to `elliptic` (pure JS, not constant time)
 * when the addon does not load; this module loads the addon directly and never that fallback.
 */
interface Secp256k1Addon {
  contextRandomize(seed: Uint8Array): void;
  publicKeyVerify(pubkey: Uint8Array): boolean;
  publicKeyConvert(pubkey: Uint8Array, compressed: boolean): Uint8Array;
  publicKeyCreate(seckey: Uint8Array, compressed?: boolean): Uint8Array;
  publicKeyTweakMul(pubkey: Uint8Array, tweak: Uint8Array, compressed?: boolean): Uint8Array;
  publicKeyCombine(pubkeys: Uint8Array[], compressed?: boolean): Uint8Array;
  ecdsaRecover(sig: Uint8Array, recid: number, msg32: Uint8Array, compressed?: boolean): Uint8Array;
  ecdsaSign(msg32: Uint8Array, seckey: Uint8Array): { signature: Uint8Array; recid: number };
  ecdh(
    pubkey: Uint8Array,
    seckey: Uint8Array,
    options: { hashfn: (x: Uint8Array, y: Uint8Array) => Uint8Array },
    output: Uint8Array,
  ): Uint8Array;
}

/** Writes the shared point P as compressed SEC1 instead of hashing it. */
function compressedPoint(x: Uint8Array, y: Uint8Array): Uint8Array {
  const out = new Uint8Array(33);
  out[0] = 0x02 | (y[31]! & 1);
  out.set(x, 1);
  return out;
}

class LibSecp256k1Backend implements CurveBackend {
  readonly name = 'libsecp256k1' as const;

  constructor(private readonly lib: Secp256k1Addon) {}

  isValidPoint(compressed: Uint8Array): boolean {
    return compressed.length === 33 && (compressed[0] === 0x02 || compressed[0] === 0x03) && this.lib.publicKeyVerify(compressed);
  }

  decompress(compressed: Uint8Array): Uint8Array {
    // libsecp256k1's square root: about fifty times noble's; the parse rejects x off the curve.
    return this.lib.publicKeyConvert(compressed, false);
  }

  multiplySecret(point: Uint8Array, secret: bigint): Uint8Array {
    const scalar = secretBytes(secret);
    try {
      return this.lib.ecdh(point, scalar, { hashfn: compressedPoint }, new Uint8Array(33));
    } finally {
      scalar.fill(0);
    }
  }

  multiplyBaseSecret(secret: bigint): Uint8Array {
    const scalar = secretBytes(secret);
    try {
      return this.lib.publicKeyCreate(scalar, true);
    } finally {
      scalar.fill(0);
    }
  }

  linearCombination(baseScalar: bigint, points: readonly Uint8Array[], scalars: readonly bigint[]): Uint8Array | null {
    const terms: Uint8Array[] = [];
    const base = mod(baseScalar);
    if (base !== 0n) terms.push(this.lib.publicKeyCreate(numberToBytesBE(base, 32), true));
    points.forEach((point, i) => {
      const scalar = mod(scalars[i]!);
      // A zero tweak is refused by libsecp256k1; its term is the identity anyway.
      if (scalar !== 0n) terms.push(this.lib.publicKeyTweakMul(point, numberToBytesBE(scalar, 32), true));
    });
    if (terms.length === 0) return null;
    if (terms.length === 1) return terms[0]!;
    try {
      return this.lib.publicKeyCombine(terms, true);
    } catch {
      // The only way two valid points fail to combine: their sum is the identity.
      return null;
    }
  }

  recoverPublicKey(digest: Uint8Array, rs: Uint8Array, recovery: 0 | 1): Uint8Array | null {
    try {
      return this.lib.ecdsaRecover(rs, recovery, digest, false);
    } catch {
      return null;
    }
  }

  signRecoverable(digest: Uint8Array, secretKey: Uint8Array): { rs: Uint8Array; recovery: number } {
    const { signature, recid } = this.lib.ecdsaSign(digest, secretKey);
    return { rs: signature, recovery: recid };
  }
}

function secretBytes(secret: bigint): Uint8Array {
  if (typeof secret !== 'bigint' || secret <= 0n || secret >= CURVE_ORDER) throw new TkmsError('bad_scalar', 'secret scalar must be in 1..n-1');
  return numberToBytesBE(secret, 32);
}

export type CurveBackendChoice = 'auto' | 'native' | 'noble';

export interface CurveBackendSelection {
  backend: CurveBackend;
  /** Why the native backend is not in use, when it was wanted but did not load. */
  fallbackReason?: string;
}

/** Loads the addon, or says why it could not. */
export function loadNativeCurveBackend(): CurveBackend | { error: string } {
  try {
    const require = createRequire(import.meta.url);
    // The addon itself, not the package's index (which would fall back to elliptic).
    const lib = require('secp256k1/bindings') as Secp256k1Addon;
    // Blinds ecmult_gen with fresh randomness, as libsecp256k1 recommends for signing contexts.
    lib.contextRandomize(randomBytes(32));
    return new LibSecp256k1Backend(lib);
  } catch (e) {
    return { error: e instanceof Error ? e.message : String(e) };
  }
}

/**
 * Picks a backend without installing it. `auto` prefers libsecp256k1 and falls back to noble
 * with a reason the caller should log; `native` fails when the addon does not load; `noble`
 * forces the pure-JS path.
 */
export function selectCurveBackend(choice: CurveBackendChoice): CurveBackendSelection {
  if (choice === 'noble') return { backend: nobleCurveBackend };
  const loaded = loadNativeCurveBackend();
  if ('error' in loaded) {
    if (choice === 'native') throw new TkmsError('internal', `the libsecp256k1 addon did not load: ${loaded.error}`);
    return { backend: nobleCurveBackend, fallbackReason: loaded.error };
  }
  return { backend: loaded };
}

export function curveBackendChoiceFromEnv(env: NodeJS.ProcessEnv = process.env): CurveBackendChoice {
  const value = env.TKMS_CURVE_BACKEND;
  if (value === undefined || value === '') return 'auto';
  if (value === 'auto' || value === 'native' || value === 'noble') return value;
  throw new TkmsError('bad_request', `TKMS_CURVE_BACKEND must be auto, native or noble, got "${value.slice(0, 32)}"`);
}
