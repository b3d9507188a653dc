import { setCurveBackend } from '../core/curve-backend.ts';
import { curveBackendChoiceFromEnv, selectCurveBackend } from '../core/curve-native.ts';
import { loadSodiumSubgroupCheck } from '../core/sodium-ed25519.ts';
import { setEd25519SubgroupFastCheck } from '../core/signing/validated-points.ts';
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
  installEd25519SubgroupCheck(log, choice === 'noble');
  return backend.name;
}

/** libsodium's Ed25519 subgroup check (FROST Ed25519 signing), unless the pure-JS curves were asked for. */
function installEd25519SubgroupCheck(log: Logger, pureJs: boolean): void {
  if (pureJs) {
    setEd25519SubgroupFastCheck(undefined);
    return;
  }
  const sodium = loadSodiumSubgroupCheck();
  setEd25519SubgroupFastCheck('check' in sodium ? sodium.check : undefined);
  if ('error' in sodium) log.warn({ reason: sodium.error }, 'the libsodium addon did not load; Ed25519 subgroup checks use noble (same results, about 20x slower)');
}
