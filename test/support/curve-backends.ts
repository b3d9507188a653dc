import { loadNativeCurveBackend } from '../../core/curve-native.ts';
import { nobleCurveBackend, setCurveBackend, type CurveBackend } from '../../core/index.ts';

/**
 * Every backend the protocol code must give identical answers with: noble (browsers, and the
 * fallback) and libsecp256k1 (servers). The addon is a declared dependency with prebuilt
 * binaries, so failing to load it here is a test failure, not a skip.
 */
export function backendsUnderTest(): CurveBackend[] {
  const native = loadNativeCurveBackend();
  if ('error' in native) throw new Error(`the libsecp256k1 addon did not load: ${native.error}`);
  return [nobleCurveBackend, native];
}

/** Runs a describe block's tests with `backend` installed, restoring noble afterwards. */
export function withCurveBackend(backend: CurveBackend): void {
  before(() => setCurveBackend(backend));
  after(() => setCurveBackend(nobleCurveBackend));
}
