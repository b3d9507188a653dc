import { createRequire } from 'node:module';
import type { Ed25519SubgroupFastCheck } from './signing/validated-points.ts';

/**
 * Node-only: libsodium's `crypto_core_ed25519_is_valid_point` (the `sodium-native` addon, prebuilt)
 * as the fast "yes" of the Ed25519 prime-order subgroup check. It is true only for a canonical
 * encoding of a point on the curve, in the main subgroup, of large order; noble still decodes every
 * point itself, and decides every "no" (core/signing/validated-points.ts). Browsers never load this.
 */
interface SodiumAddon {
  crypto_core_ed25519_is_valid_point(p: Uint8Array): boolean;
}

/** The check, or why the addon could not be loaded (then noble's own check serves alone). */
export function loadSodiumSubgroupCheck(): { check: Ed25519SubgroupFastCheck } | { error: string } {
  try {
    const sodium = createRequire(import.meta.url)('sodium-native') as SodiumAddon;
    if (typeof sodium.crypto_core_ed25519_is_valid_point !== 'function') return { error: 'sodium-native has no crypto_core_ed25519_is_valid_point' };
    // The addon takes Buffers; a view over the same bytes costs no copy.
    return { check: (p) => p.length === 32 && sodium.crypto_core_ed25519_is_valid_point(Buffer.from(p.buffer, p.byteOffset, p.byteLength)) };
  } catch (e) {
    return { error: e instanceof Error ? e.message : String(e) };
  }
}
