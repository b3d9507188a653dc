// dist/ is its own package scope for `#platform`: the repository's package.json maps it to the
// TypeScript sources (run through tsx), the built files need the compiled ones. Node resolves
// `#` imports against the nearest package.json, so this one wins for everything under dist/.
import { writeFileSync } from 'node:fs';

const platform = {
  types: './core/platform/node.d.ts',
  browser: './core/platform/browser.js',
  node: './core/platform/node.js',
  default: './core/platform/browser.js',
};
writeFileSync(new URL('../dist/package.json', import.meta.url), `${JSON.stringify({ type: 'module', imports: { '#platform': platform } }, null, 2)}\n`);
