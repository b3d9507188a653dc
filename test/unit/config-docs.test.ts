import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { envFields } from '../../config/config-schema.ts';
import { OPERATORS_DOC, withConfigTables } from '../../scripts/config-docs-tables.ts';
import { GATEWAY_CONFIG_FIELDS_HELP, GATEWAY_CONFIG_SCHEMA } from '../../gateway/config.ts';
import { NODE_CONFIG_FIELDS_HELP, NODE_CONFIG_SCHEMA } from '../../node/config.ts';
import { REPO_ROOT } from '../support/processes.ts';

/** The help text and the operators' guide come from the config schemas, and stay in step with them. */
describe('config docs and help from the schema', () => {
  it(`${OPERATORS_DOC}: the committed config tables are what "npm run docs:config" writes`, async () => {
    const text = await readFile(`${REPO_ROOT}/${OPERATORS_DOC}`, 'utf8');
    assert.ok(withConfigTables(text) === text, `${OPERATORS_DOC} is stale: run "npm run docs:config" (tsx scripts/config-docs.ts)`);
  });

  it('a changed field would make the committed tables stale', async () => {
    const text = await readFile(`${REPO_ROOT}/${OPERATORS_DOC}`, 'utf8');
    const edited = text.replace('| `clockSkewSeconds` | `TKMS_CLOCK_SKEW_SECONDS` | `30` |', '| `clockSkewSeconds` | `TKMS_CLOCK_SKEW_SECONDS` | `31` |');
    assert.notEqual(edited, text, 'the node table lists clockSkewSeconds with its default');
    assert.equal(withConfigTables(edited), text);
  });

  for (const [name, schema, help] of [
    ['node', NODE_CONFIG_SCHEMA, NODE_CONFIG_FIELDS_HELP],
    ['gateway', GATEWAY_CONFIG_SCHEMA, GATEWAY_CONFIG_FIELDS_HELP],
  ] as const) {
    it(`${name} help names every field and variable, with defaults and bounds`, () => {
      for (const { path, env } of envFields(schema)) {
        assert.match(help, new RegExp(`^  ${path.replaceAll('.', '\\.')} +${env}\\b`, 'm'), `${path} ${env}`);
      }
      for (const key of Object.keys(schema.properties)) assert.ok(help.includes(`  ${key}`), key);
      for (const line of help.split('\n')) assert.ok(line.length <= 100, `help lines fit a terminal: ${line}`);
    });
  }

  it('the help states defaults and bounds as the parser applies them', () => {
    assert.match(NODE_CONFIG_FIELDS_HELP, /dkg\.phaseTimeoutMs +TKMS_DKG_PHASE_TIMEOUT_MS\n +per-phase DKG deadline \(default 8000; 100\.\.600000 milliseconds\)/);
    assert.match(NODE_CONFIG_FIELDS_HELP, /listen +TKMS_LISTEN \(comma-separated\)/);
    assert.match(NODE_CONFIG_FIELDS_HELP, /TKMS_KEYSTORE_PASSWORD /);
    assert.match(GATEWAY_CONFIG_FIELDS_HELP, /cors\.allowedOrigins +TKMS_GATEWAY_CORS_ORIGINS \(comma-separated\)/);
    assert.match(GATEWAY_CONFIG_FIELDS_HELP, /basePath +TKMS_GATEWAY_BASE_PATH\n(?: {6}.*\n)*? {6}.*\(default \/\)/);
  });
});
