import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let cached: string | undefined;

/**
 * The tkms version from package.json, found by walking up from this module (the same code
 * runs from the source tree and from the compiled `dist/` of the container image).
 */
export function tkmsVersion(): string {
  if (cached !== undefined) return cached;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: unknown; version?: unknown };
      if (pkg.name === 'tkms' && typeof pkg.version === 'string') return (cached = pkg.version);
    } catch {
      // not here; try the parent
    }
    dir = dirname(dir);
  }
  return (cached = 'unknown');
}
