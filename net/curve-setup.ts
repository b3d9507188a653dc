import { curveBackendChoiceFromEnv, installCurveBackend } from '../core/curve-native.ts';
import type { Logger } from './logger.ts';

/**
 * Node and gateway start-up: libsecp256k1 when it loads (TKMS_CURVE_BACKEND=noble forces the
 * pure-JS path), with a warning rather than a refusal when it does not, since noble gives the
 * same answers, only slower. Returns the backend's name for the start-up log and /health.
 */
export function installServerCurveBackend(log: Logger, env: Record<string, string | undefined> = process.env): string {
  const { backend, fallbackReason } = installCurveBackend(curveBackendChoiceFromEnv(env));
  if (fallbackReason !== undefined) {
    log.warn({ reason: fallbackReason }, 'the libsecp256k1 addon did not load; using the pure-JS curve backend (same results, about 10x slower)');
  }
  return backend.name;
}
