import type { TObject, TSchema } from 'typebox';
import { isObjectSchema, isOptional, listShape, notesOf } from './config-schema.ts';

/** Help text and the operators' guide tables, from a component's config schema. */

/** The field's variable, and how a list is written in it. */
const envLabel = (schema: TSchema): string | undefined => {
  const env = notesOf(schema).env;
  return env === undefined ? undefined : `${env}${listShape(schema) ? ' (comma-separated)' : ''}`;
};

function defaultText(schema: TSchema): string | undefined {
  const n = notesOf(schema);
  if (n.defaultText !== undefined) return n.defaultText;
  if (!('default' in n)) return undefined;
  return typeof n.default === 'string' ? n.default : JSON.stringify(n.default);
}

function leaves(schema: TObject, prefix = ''): { path: string; schema: TSchema }[] {
  return Object.entries(schema.properties).flatMap(([key, s]) => (isObjectSchema(s) ? leaves(s, `${prefix}${key}.`) : [{ path: prefix + key, schema: s }]));
}

/** Bounds and choices, for help and docs; other shapes are in the description. */
function allowed(schema: TSchema): string | undefined {
  const n = notesOf(schema);
  if (n.type === 'integer') return `${n.minimum}..${n.maximum}${n.unit ? ` ${n.unit}` : ''}`;
  if (n.type === 'boolean') return 'true or false';
  const choices = (schema as { enum?: string[] }).enum;
  return choices === undefined ? undefined : choices.join(', ');
}

function isRequired(schema: TSchema): boolean {
  const n = notesOf(schema);
  return !('default' in n) && !isOptional(schema) && n.defaultText === undefined;
}

function wrap(text: string, indent: string, width = 98): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line !== '' && indent.length + line.length + 1 + word.length > width) {
      lines.push(indent + line);
      line = word;
    } else line = line === '' ? word : `${line} ${word}`;
  }
  if (line !== '') lines.push(indent + line);
  return lines;
}

/** `--help` text: one entry per field (nested ones dotted), its variable, default and bounds. */
export function configFieldsHelp(schema: TObject): string {
  const lines: string[] = [];
  for (const { path, schema: s } of leaves(schema)) {
    const n = notesOf(s);
    const dflt = defaultText(s);
    const facts = [isRequired(s) ? 'required' : dflt !== undefined ? `default ${dflt}` : 'optional', allowed(s)].filter((f) => f !== undefined);
    lines.push(`  ${path.padEnd(30)} ${envLabel(s) ?? ''}`.trimEnd(), ...wrap(`${n.description} (${facts.join('; ')})`, '      '));
  }
  return `${lines.join('\n')}\n`;
}

const cell = (text: string): string => text.replaceAll('|', '\\|').replaceAll('\n', ' ');

/** The operators' guide table of a component's fields (docs/operators.md, between marker comments). */
export function configFieldsMarkdown(schema: TObject): string {
  const rows = ['| config field | environment variable | default | allowed | meaning |', '| --- | --- | --- | --- | --- |'];
  for (const { path, schema: s } of leaves(schema)) {
    const n = notesOf(s);
    const dflt = defaultText(s);
    rows.push(`| \`${path}\` | ${n.env ? `\`${n.env}\`${listShape(s) ? ' (comma-separated)' : ''}` : '—'} | ${isRequired(s) ? 'required' : dflt === undefined ? '—' : notesOf(s).defaultText !== undefined ? cell(dflt) : `\`${cell(dflt)}\``} | ${cell(allowed(s) ?? (n.path ? 'a path' : n.mustBe ?? ''))} | ${cell([n.description, n.details].filter(Boolean).join('. '))} |`);
  }
  return `${rows.join('\n')}\n`;
}
