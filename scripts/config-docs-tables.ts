import type { TObject } from 'typebox';
import { GATEWAY_CONFIG_SCHEMA } from '../gateway/config.ts';
import { NODE_CONFIG_SCHEMA } from '../node/config.ts';
import { configFieldsMarkdown } from '../config/field-docs.ts';

/** The guide whose config tables are generated from the schemas (`npm run docs:config`). */
export const OPERATORS_DOC = 'docs/operators.md';

const TABLES: Record<string, TObject> = { node: NODE_CONFIG_SCHEMA, gateway: GATEWAY_CONFIG_SCHEMA };

const begin = (name: string): string => `<!-- config-fields:${name} (generated from the config schema by "npm run docs:config"; do not edit by hand) -->`;
const end = (name: string): string => `<!-- /config-fields:${name} -->`;

/** `text` with every config table between its marker comments rewritten from the schema. */
export function withConfigTables(text: string): string {
  let out = text;
  for (const [name, schema] of Object.entries(TABLES)) {
    const from = out.indexOf(begin(name));
    const to = out.indexOf(end(name));
    if (from < 0 || to < from) throw new Error(`${OPERATORS_DOC} lacks the markers ${begin(name)} … ${end(name)}`);
    out = `${out.slice(0, from)}${begin(name)}\n${configFieldsMarkdown(schema)}${out.slice(to)}`;
  }
  return out;
}
