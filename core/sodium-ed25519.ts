import { createRequire } from 'node:module';
import { ed25519 } from '@noble/curves/ed25519.js';
import { setEd25519SubgroupFastCheck, type Ed25519SubgroupFastCheck } from './signing/validated-points.ts';

/**
 * Node-only: libsodium's `crypto_core_ed25519_is_valid_point` (the `sodium-native` addon, prebuilt)
 * as the fast "yes" of the Ed25519 prime-order subgroup check. It is true only for a canonical
 * encoding of a point on the curve, in the main subgroup, of large order; noble still decodes every
 * point itself, and decides every "no" (core/signing/validated-points.ts). Browsers never load this.
 *
 * Its "yes" is only as good as the libsodium inside the addon: releases before December 2025
 * looked at one coordinate of ℓ·P and so passed a point plus the point of order 2. The check is
 * tried on such points when it loads, and not used when it passes any of them.
 */
interface SodiumAddon {
  crypto_core_ed25519_is_valid_point(p: Uint8Array): boolean;
}

let loaded: { check: Ed25519SubgroupFastCheck } | { error: string } | undefined;

/** The check, or why it is not used (the addon did not load, or failed its test); loaded and tested once per process. */
export function loadSodiumSubgroupCheck(): { check: Ed25519SubgroupFastCheck } | { error: string } {
  loaded ??= load();
  return loaded;
}

/**
 * Puts the check in place for FROST Ed25519 (core/signing/validated-points.ts), or takes it away
 * when the pure-JS curves were asked for (TKMS_CURVE_BACKEND=noble). Returns why it is not used
 * when the addon was wanted and could not serve.
 */
export function installSodiumSubgroupCheck(pureJs: boolean): string | undefined {
  const sodium = pureJs ? undefined : loadSodiumSubgroupCheck();
  setEd25519SubgroupFastCheck(sodium !== undefined && 'check' in sodium ? sodium.check : undefined);
  return sodium !== undefined && 'error' in sodium ? sodium.error : undefined;
}

function load(): { check: Ed25519SubgroupFastCheck } | { error: string } {
  try {
    const sodium = createRequire(import.meta.url)('sodium-native') as SodiumAddon;
    if (typeof sodium.crypto_core_ed25519_is_valid_point !== 'function') return { error: 'sodium-native has no crypto_core_ed25519_is_valid_point' };
    const check: Ed25519SubgroupFastCheck = (p) => p.length === 32 && sodium.crypto_core_ed25519_is_valid_point(p);
    const wrong = subgroupCheckFault(check);
    return wrong === undefined ? { check } : { error: `libsodium's crypto_core_ed25519_is_valid_point ${wrong}: not used` };
  } catch (e) {
    return { error: e instanceof Error ? e.message : String(e) };
  }
}

/** A point of order 8 (its multiples are every small-order point but the identity). */
const ORDER_8 = 'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a';

/** What a subgroup check gets wrong on the base point, the small-order points and the base point plus each; undefined when nothing. */
export function subgroupCheckFault(check: Ed25519SubgroupFastCheck): string | undefined {
  const B = ed25519.Point.BASE;
  if (!check(B.toBytes())) return 'refuses the base point';
  const T = ed25519.Point.fromHex(ORDER_8);
  for (let k = 1n; k < 8n; k++) {
    const torsion = T.multiplyUnsafe(k);
    if (check(torsion.toBytes())) return `accepts a point of small order (${k}·T8)`;
    if (check(B.add(torsion).toBytes())) return `accepts the base point plus a point of small order (${k}·T8)`;
  }
  return undefined;
}
