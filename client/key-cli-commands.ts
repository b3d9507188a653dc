import { readFile } from 'node:fs/promises';
import { isoTime, type KeySpec, type KeyUsage } from '../core/keys/key-model.ts';
import { KeyChangeMessage, type KeyAction, type KeyActionBody, type KeyChange } from '../core/keys/key-change.ts';
import { encodeHex, TkmsError } from '../core/index.ts';
import { UsageError, warningLine, type CommandRun, type TkmsCommand } from '../scripts/cli/command.ts';
import type { ClientCommandOptions, GatewayCommandOptions } from './cli.ts';
import { client, pinnedCommittee, print, warnEnvTypos } from './cli-commands.ts';
import { GatewayHttp } from './gateway-http.ts';
import { KeyAdmin, type KeyListFilter } from './key-admin.ts';
import type { KeyChangeResult, KeyView } from './key-view.ts';

/** What the commands declared in client/key-cli.ts do. */

/** Reads need no account: a KeyAdmin without a signer. */
async function reader(opts: GatewayCommandOptions): Promise<KeyAdmin> {
  const pinned = await pinnedCommittee(opts);
  return new KeyAdmin({
    http: new GatewayHttp({ baseUrl: opts.gateway, ...(opts.insecure === true ? { insecure: true } : {}) }),
    // The pinned committee's keys let describe verify destruction receipts itself.
    ...(pinned ?? {}),
  });
}

const keyOf = (command: TkmsCommand): string => command.processedArgs[0] as string;

/** `k=v` pairs (a tag's value may be empty, and may hold "="). */
function parseTags(pairs: readonly string[], flag: string): Record<string, string> {
  const tags: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at < 1) throw new UsageError(`${flag} must be key=value, got ${JSON.stringify(pair)}`);
    tags[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return tags;
}

async function readPolicy(file: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new TkmsError('bad_request', `cannot read the policy file ${file}: ${(e as { code?: string }).code ?? 'error'}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new TkmsError('bad_request', `the policy file ${file} is not JSON`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new TkmsError('bad_request', `the policy file ${file} must hold a JSON object`);
  return value as Record<string, unknown>;
}

function describeChange(action: KeyAction, r: KeyChangeResult): string {
  const acked = r.acknowledgedBy.length === 0 ? 'no node' : `nodes ${r.acknowledgedBy.join(', ')}`;
  return `${action} of key ${r.key.keyId}: change ${r.key.sequence}, acknowledged by ${acked} (${r.effective ? 'effective' : `NOT yet effective: ${r.needed} needed`})`;
}

/** Prints the gateway's answer; exit 1 while the change is not yet effective (as `tkms revoke`). */
function reportChange(opts: { json?: true }, command: TkmsCommand, action: KeyAction, result: KeyChangeResult): number {
  print(opts, result, describeChange(action, result));
  for (const f of result.failures) process.stderr.write(warningLine(command.path, `node ${f.nodeId} did not apply it: [${f.code}] ${f.message}`));
  return result.effective ? 0 : 1;
}

type CreateOptions = ClientCommandOptions & {
  keyId: string;
  dkg?: true;
  spec?: KeySpec;
  usage?: KeyUsage;
  derivedFrom?: string;
  path?: string;
  admin?: string[];
  description?: string;
  tag?: string[];
  alias?: string[];
  policyFile?: string;
  rotationDays?: number;
};

export const create: CommandRun<CreateOptions> = async (opts, command) => {
  warnEnvTypos(command);
  if ((opts.derivedFrom === undefined) !== (opts.path === undefined)) throw new UsageError('a derived key needs both --derived-from <root> and --path <path>');
  const tags = opts.tag === undefined ? undefined : parseTags(opts.tag, '--tag');
  const policy = opts.policyFile === undefined ? undefined : await readPolicy(opts.policyFile);
  const keys = (await client(opts, command)).keys;
  const result = await keys.create({
    keyId: opts.keyId,
    origin: opts.derivedFrom === undefined ? { type: 'dkg' } : { type: 'derived', root: opts.derivedFrom, path: opts.path! },
    ...(opts.spec !== undefined ? { spec: opts.spec } : {}),
    ...(opts.usage !== undefined ? { usage: opts.usage } : {}),
    ...(opts.admin !== undefined ? { admins: opts.admin } : {}),
    ...(opts.description !== undefined ? { description: opts.description } : {}),
    ...(tags !== undefined ? { tags } : {}),
    ...(opts.alias !== undefined ? { aliases: opts.alias } : {}),
    ...(policy !== undefined ? { policy } : {}),
    ...(opts.rotationDays !== undefined ? { rotationPeriodDays: opts.rotationDays } : {}),
  });
  return reportChange(opts, command, 'create', result);
};

type ChangeOptions = ClientCommandOptions & {
  description?: string;
  alias?: string;
  from?: string;
  to?: string;
  tag?: string[];
  days?: number;
  seconds?: number;
  keyVersion?: number;
  off?: true;
  file?: string;
  admin?: string[];
};

const version = (opts: ChangeOptions) => (opts.keyVersion !== undefined ? { version: opts.keyVersion } : {});

/** Each action's body from its command's options (the options are declared in client/key-cli.ts). */
const BODIES: { [A in Exclude<KeyAction, 'create'>]: (opts: ChangeOptions) => KeyActionBody<A> | Promise<KeyActionBody<A>> } = {
  updateDescription: (o) => ({ description: o.description! }),
  createAlias: (o) => ({ alias: o.alias! }),
  renameAlias: (o) => ({ from: o.from!, to: o.to! }),
  deleteAlias: (o) => ({ alias: o.alias! }),
  tag: (o) => ({ tags: parseTags(o.tag!, '--tag') }),
  untag: (o) => ({ keys: o.tag! }),
  enable: () => ({}),
  disable: () => ({}),
  scheduleDeletion: (o) => ({ ...(o.days !== undefined ? { pendingWindowDays: o.days } : {}), ...(o.seconds !== undefined ? { pendingWindowSeconds: o.seconds } : {}), ...version(o) }),
  cancelDeletion: (o) => version(o),
  rotate: () => ({}),
  setRotation: (o) => {
    if ((o.days === undefined) === (o.off === undefined)) throw new UsageError('give exactly one of --days <n> or --off');
    return { rotationPeriodDays: o.days ?? null };
  },
  putPolicy: async (o) => ({ policy: await readPolicy(o.file!) }),
  updateAdmins: (o) => ({ admins: o.admin! }),
};

/** `tkms key <action> <key>`: the body from the options, signed by --account as the key's next change. */
export function keyChange<A extends Exclude<KeyAction, 'create'>>(action: A): CommandRun<ChangeOptions> {
  return async (opts, command) => {
    warnEnvTypos(command);
    // Built before the account is opened: a usage error never comes after a password prompt.
    const body = await (BODIES[action] as (o: ChangeOptions) => KeyActionBody<A> | Promise<KeyActionBody<A>>)(opts);
    const keys = (await client(opts, command)).keys;
    return reportChange(opts, command, action, await keys.change(keyOf(command), action, body));
  };
}

export const list: CommandRun<GatewayCommandOptions & KeyListFilter> = async (opts, command) => {
  warnEnvTypos(command);
  const filter: KeyListFilter = { ...(opts.tag !== undefined ? { tag: opts.tag } : {}), ...(opts.alias !== undefined ? { alias: opts.alias } : {}), ...(opts.state !== undefined ? { state: opts.state } : {}) };
  const keys = await (await reader(opts)).list(filter);
  const lines = keys.map((k) => [k.keyId, k.state, k.currentVersion === null ? '-' : `v${k.currentVersion}`, k.aliases.join(',') || '-', tagText(k.tags) || '-'].join('  '));
  print(opts, keys, keys.length === 0 ? 'no managed keys' : lines.join('\n'));
  return 0;
};

function tagText(tags: Record<string, string>): string {
  return Object.entries(tags)
    .map(([k, v]) => `${k}=${v}`)
    .join(', ');
}

/** The human view of `tkms key describe`. */
export function keyText(k: KeyView): string {
  const origin = k.origin.type === 'dkg' ? 'dkg (a key of its own)' : `derived from ${k.origin.root}, path ${k.origin.path}`;
  const state = k.deletionDate === null ? k.state : `${k.state} (${k.state === 'Destroyed' ? 'destroyed' : 'to be destroyed'} at ${isoTime(k.deletionDate)}${k.state === 'Destroyed' ? '' : ' unless cancelled'})`;
  const versions = k.versions.map((v) => {
    const marks = [v.state, `created ${isoTime(v.createdAt)}`, ...(v.deletionDate !== null ? [`deletion ${isoTime(v.deletionDate)}`] : []), `material ${v.materialKeyId}`];
    return `  v${v.version}${v.version === k.currentVersion ? ' (current)' : ''}: ${marks.join(', ')}${v.publicKey === undefined ? '' : `\n      public key ${v.publicKey}`}`;
  });
  return [
    `key          ${k.keyId}`,
    `state        ${state}`,
    `spec         ${k.spec}, ${k.usage}`,
    `origin       ${origin}`,
    `description  ${k.description || '-'}`,
    `aliases      ${k.aliases.join(', ') || '-'}`,
    `tags         ${tagText(k.tags) || '-'}`,
    `admins       ${k.admins.join(', ')}`,
    `rotation     ${k.rotationPeriodDays === null ? 'on demand' : `every ${k.rotationPeriodDays} days`}`,
    `created      ${isoTime(k.createdAt)} by ${k.creator}`,
    `changes      ${k.sequence} (head ${k.head})`,
    `versions`,
    ...versions,
    `policy       ${Object.keys(k.policy).length === 0 ? '{} (no rule beyond grants)' : JSON.stringify(k.policy, null, 2).replace(/\n/g, '\n             ')}`,
    ...(k.destruction ?? []).map(
      (d) =>
        `destruction  v${d.version}: receipts from members ${d.confirmedBy.join(', ') || 'none'} (${d.confirmedBy.length} of ${d.needed} needed${d.verified ? ', verified against the pinned committee' : ', the gateway\'s count: pin the committee to verify'}) → ${d.destroyed ? 'destroyed: fewer than t shares remain' : 'not yet confirmed destroyed'}`,
    ),
  ].join('\n');
}

export const describe: CommandRun<GatewayCommandOptions> = async (opts, command) => {
  warnEnvTypos(command);
  const key = await (await reader(opts)).describe(keyOf(command));
  print(opts, key, keyText(key));
  return 0;
};

/** Pages a history reads at most: a gateway that keeps answering `next` cannot keep the command running. */
const MAX_HISTORY_PAGES = 1000;

export const history: CommandRun<GatewayCommandOptions> = async (opts, command) => {
  warnEnvTypos(command);
  const keys = await reader(opts);
  const view = await keys.describe(keyOf(command));
  const changes: KeyChange[] = [];
  let after: number | null = 0;
  for (let page = 0; after !== null; page++) {
    if (page === MAX_HISTORY_PAGES) throw new TkmsError('bad_request', `gateway answered more than ${MAX_HISTORY_PAGES} pages of history`);
    const got = await keys.history(view.keyId, { after });
    changes.push(...got.changes);
    after = got.next;
  }
  const lines = changes.map((c) => `${String(c.sequence).padStart(4)}  ${isoTime(c.issuedAt)}  ${c.action.padEnd(17)}  by ${encodeHex(c.admin)}  ${c.body}`);
  print(opts, changes.map((c) => KeyChangeMessage.encode(c)), lines.length === 0 ? 'no changes' : lines.join('\n'));
  return 0;
};

export const getPolicy: CommandRun<GatewayCommandOptions> = async (opts, command) => {
  warnEnvTypos(command);
  const answer = await (await reader(opts)).getPolicy(keyOf(command));
  print(opts, answer, JSON.stringify(answer.policy, null, 2));
  return 0;
};
