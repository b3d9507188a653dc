import { readFile, writeFile } from 'node:fs/promises';
import { OPERATORS_DOC, withConfigTables } from './config-docs-tables.ts';

/**
 * Rewrites the config-field tables of docs/operators.md from the node's and the gateway's config
 * schemas. With --check, changes nothing and exits 1 when the committed tables are stale.
 */
const text = await readFile(OPERATORS_DOC, 'utf8');
const fresh = withConfigTables(text);
if (process.argv.includes('--check')) {
  if (fresh !== text) {
    process.stderr.write(`${OPERATORS_DOC}: the config tables are stale; run "npm run docs:config"\n`);
    process.exit(1);
  }
} else if (fresh !== text) {
  await writeFile(OPERATORS_DOC, fresh);
  process.stdout.write(`${OPERATORS_DOC}: config tables rewritten\n`);
}
