import type { CurveBackendSelection } from '../curve-native.ts';
import { nobleCurveBackend } from '../curve-noble.ts';

/**
 * What `#platform` is in browsers and other non-Node runtimes (package.json "imports",
 * condition `browser` or default): @noble/curves and WebCrypto, which are core's defaults, so
 * nothing is installed and no Node module reaches a bundle.
 */
export const platformName = 'browser';
export const curveSelection: CurveBackendSelection = { backend: nobleCurveBackend };
