import { fileURLToPath } from 'node:url';
import { type CurveBackend, publicKeyFromSecret, randomScalar, setCurveBackend } from '../core/index.ts';
import { deriveKeyTweak, derivedPublicKey } from '../core/keys/derive.ts';

/**
 * The crypto of creating derived keys: τ and root + τ·G for `keys` distinct paths under one root,
 * per curve backend. Creating a derived key through the API adds a signed metadata change on top;
 * this is the part that replaces a DKG. Run alone: `npx tsx bench/derived-keys.ts [keys]`.
 */
export interface DerivedKeysRow {
  backend: CurveBackend['name'];
  keys: number;
  totalMs: number;
  msPerKey: number;
  keysPerSecond: number;
}

export function benchDerivedKeys(backends: readonly CurveBackend[], keys = 10_000): DerivedKeysRow[] {
  const root = publicKeyFromSecret(randomScalar()).toBytes(true);
  const paths = Array.from({ length: keys }, (_, i) => `wallets/user-${i}`);
  const rows: DerivedKeysRow[] = [];
  for (const backend of backends) {
    setCurveBackend(backend);
    // Warm-up outside the timing: JIT and the backend's first decompression of the root.
    for (let i = 0; i < 100; i++) derivedPublicKey(root, deriveKeyTweak(root, `warm-up/${i}`, 1));
    const distinct = new Set<string>();
    const start = performance.now();
    for (const path of paths) distinct.add(Buffer.from(derivedPublicKey(root, deriveKeyTweak(root, path, 1))).toString('hex'));
    const totalMs = performance.now() - start;
    if (distinct.size !== keys) throw new Error(`${keys} paths gave ${distinct.size} distinct derived keys`);
    rows.push({ backend: backend.name, keys, totalMs: Math.round(totalMs), msPerKey: Number((totalMs / keys).toFixed(4)), keysPerSecond: Math.round((keys * 1000) / totalMs) });
  }
  return rows;
}

export function printDerivedKeys(rows: readonly DerivedKeysRow[]): void {
  console.log('\nderived keys: τ = H(domain, root, path, version) and root + τ·G, distinct paths under one root');
  for (const r of rows) console.log(`  [${r.backend}] ${r.keys} keys in ${r.totalMs} ms: ${r.msPerKey} ms/key, ${r.keysPerSecond} keys/s`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { benchBackends } = await import('./core.ts');
  const { curveSelection } = await import('../core/index.ts');
  const keys = Number(process.argv[2] ?? 10_000);
  printDerivedKeys(benchDerivedKeys(benchBackends(), keys > 0 ? keys : 10_000));
  setCurveBackend(curveSelection.backend);
}
