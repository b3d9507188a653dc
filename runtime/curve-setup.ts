import { setCurveBackend } from '../core/curve-backend.ts';
import { curveBackendChoiceFromEnv, selectCurveBackend } from '../core/curve-native.ts';
import { installSodiumSubgroupCheck } from '../core/sodium-ed25519.ts';
import type { Logger } from './logger.ts';

/**
 * Node and gateway start-up. Importing core already picked libsecp256k1 when it loads
 * (core/platform/node.ts); a server decides again from its own environment so that an invalid
 * TKMS_CURVE_BACKEND, or `native` without the addon, stops it instead of passing silently, and
 * so the fallback is logged as a warning (noble gives the same answers, only slower).
 * Returns the backend's name for the start-up log and /health.
 */
export function installServerCurveBackend(log: Logger, env: Record<string, string | undefined> = process.env): string {
  const choice = curveBackendChoiceFromEnv(env);
  const { backend, fallbackReason } = selectCurveBackend(choice);
  setCurveBackend(backend);
  if (fallbackReason !== undefined) {
    log.warn({ reason: fallbackReason }, 'the libsecp256k1 addon did not load; using the pure-JS curve backend (same results, about 10x slower)');
  }
  const sodiumError = installSodiumSubgroupCheck(choice === 'noble');
  if (sodiumError !== undefined) log.warn({ reason: sodiumError }, "libsodium's Ed25519 subgroup check is not used; noble makes it (same results, about 20x slower)");
  return backend.name;
}
