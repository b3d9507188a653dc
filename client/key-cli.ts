import { Option } from 'commander';
import type { KeyAction } from '../core/keys/key-change.ts';
import { integerIn, type TkmsCommand } from '../scripts/cli/command.ts';
import { withClientOptions, withGatewayOptions } from './cli.ts';

/**
 * `tkms key …`: managed keys on the command line. This file declares the commands, each once;
 * client/key-cli-commands.ts, loaded when one runs, implements them. The help of an option that
 * sets a change's parameter is the description core gives that field (KEY_ACTION_BODIES), filled
 * in when the subcommand is about to run or show help: core's schemas are too costly to load for
 * every `tkms --help`, and the limits they state are checked there, before anything is signed.
 */

const KEY_STATES = ['Enabled', 'Disabled', 'PendingDeletion', 'Destroyed'] as const;

/** Which body field an option sets, and the words before core's description of it. */
const fromBody = new WeakMap<Option, { action: KeyAction; field: string; origin?: 'root' | 'path'; prefix: string }>();

function bodyOption(flags: string, action: KeyAction, field: string, prefix = '', origin?: 'root' | 'path'): Option {
  const option = new Option(flags, prefix.replace(/[.:;] ?$/, ''));
  fromBody.set(option, { action, field, prefix, ...(origin !== undefined ? { origin } : {}) });
  return option;
}

/** A schema's description as option help: no final stop, and lower case first (not a name in capitals) where it starts the help or follows a colon. */
function helpText(description: string | undefined, prefix: string): string {
  const text = (description ?? '').replace(/\.$/, '');
  return (prefix === '' || prefix.endsWith(': ')) && !/^[A-Z0-9_]{2}/.test(text) ? text.charAt(0).toLowerCase() + text.slice(1) : text;
}

async function describeFromBodies(sub: TkmsCommand): Promise<void> {
  const { KEY_ACTION_BODIES } = await import('../core/keys/key-change.ts');
  type Described = { description?: string; enum?: string[]; anyOf?: { properties?: Record<string, Described> }[] };
  for (const option of sub.options) {
    const from = fromBody.get(option);
    if (from === undefined) continue;
    let schema = (KEY_ACTION_BODIES[from.action].properties as Record<string, Described>)[from.field];
    if (from.origin !== undefined) schema = schema?.anyOf?.[1]?.properties?.[from.origin];
    option.description = `${from.prefix}${helpText(schema?.description, from.prefix)}`;
    // A field core declares as one of a few values takes only those on the line, too.
    if (schema?.enum !== undefined) option.choices(schema.enum);
  }
}

/** Counts and sizes are bounded by core's declarations, checked before signing; the parser only wants an integer. */
const positiveInteger = integerIn(1, Number.MAX_SAFE_INTEGER);

const repeatable = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];

const keyArgument = (cmd: TkmsCommand): TkmsCommand => cmd.argument('<key>', 'the key id, or one of its aliases (alias/…)');

const tagOption = (what: string) => bodyOption('--tag <key=value>', 'tag', 'tags', `${what}; repeat for more. `).argParser(repeatable);

const load = () => import('./key-cli-commands.ts');

/** A change command: `tkms key <name> <key> [options]`, signed by --account, posted to --gateway. */
function changeCommand(group: TkmsCommand, name: string, action: Exclude<KeyAction, 'create'>, description: string, options: Option[], examples: string[]): void {
  const cmd = withClientOptions(keyArgument(group.command(name).description(description)));
  for (const o of options) cmd.addOption(o);
  cmd
    .addHelpText('after', '\nSigned by --account, which must be one of the key\'s admins. Exit 1 while fewer nodes than needed acknowledged the change.')
    .examples(...examples.map((e) => `tkms key ${name} ${e}`))
    .lazyAction(async () => (await load()).keyChange(action));
}

export function registerKeyCommands(program: TkmsCommand): void {
  const key = program
    .command('key')
    .description('managed keys: create, list, describe, alias, tag, enable/disable, rotate, schedule deletion, policy; every change is signed by one of the key\'s admins')
    .examples('tkms key create --account alice.json --key-id payroll --alias alias/payroll', 'tkms key describe alias/payroll', 'tkms key disable payroll --account alice.json');
  key.hook('preSubcommand', (_group, sub) => describeFromBodies(sub as TkmsCommand));

  withClientOptions(
    key
      .command('create')
      .description('create a managed key: its own DKG (--dkg, the default) or derived from a root key (--derived-from, --path), with the signing account as its admin unless --admin is given')
      .addOption(new Option('--key-id <id>', "the new key's id: a-z 0-9 . _ -, starting with a letter or digit, not ending in .v<digits> (that names a version)").makeOptionMandatory())
      .addOption(new Option('--dkg', 'a key of its own, made by a DKG of the committee (the default)').conflicts('derivedFrom'))
      .addOption(bodyOption('--spec <spec>', 'create', 'spec'))
      .addOption(bodyOption('--usage <usage>', 'create', 'usage'))
      .addOption(bodyOption('--derived-from <root>', 'create', 'origin', 'a derived key: ', 'root'))
      .addOption(bodyOption('--path <path>', 'create', 'origin', 'with --derived-from: ', 'path'))
      .addOption(bodyOption('--admin <address>', 'create', 'admins', 'an admin of the key; repeat for more (default: the signing account). ').argParser(repeatable))
      .addOption(new Option('--description <text>', 'what the key is for'))
      .addOption(tagOption('a tag'))
      .addOption(bodyOption('--alias <alias>', 'createAlias', 'alias', 'an alias; repeat for more. ').argParser(repeatable))
      .addOption(new Option('--policy-file <file>', 'a JSON file with the key\'s purpose-bound policy (docs/key-policy.md)'))
      .addOption(bodyOption('--rotation-days <n>', 'setRotation', 'rotationPeriodDays', '').argParser(positiveInteger)),
  )
    .examples(
      'tkms key create --account alice.json --key-id payroll --description "payroll exports" --tag team=finance --alias alias/payroll',
      'tkms key create --account alice.json --key-id user-42 --derived-from root --path users/42',
      'tkms key create --account alice.json --key-id release --spec ECC_NIST_EDWARDS25519 --usage SIGN_VERIFY --policy-file sign-policy.json',
    )
    .lazyAction(async () => (await load()).create);

  withGatewayOptions(
    key
      .command('list')
      .description('list the managed keys, filtered by tag, alias or state')
      .addOption(new Option('--tag <key[=value]>', 'only keys with this tag (any value, or this value)'))
      .addOption(new Option('--alias <alias>', 'only the key with this alias'))
      .addOption(new Option('--state <state>', 'only keys in this state').choices(KEY_STATES)),
  )
    .examples('tkms key list', 'tkms key list --tag team=finance --state Enabled --json')
    .lazyAction(async () => (await load()).list);

  withGatewayOptions(keyArgument(key.command('describe').description('show a managed key: state, versions, aliases, tags, admins, rotation, policy')))
    .examples('tkms key describe payroll', 'tkms key describe alias/payroll --json')
    .lazyAction(async () => (await load()).describe);

  withGatewayOptions(keyArgument(key.command('history').description("show the key's signed changes in order: who signed what, when")))
    .examples('tkms key history payroll', 'tkms key history payroll --json')
    .lazyAction(async () => (await load()).history);

  withGatewayOptions(keyArgument(key.command('get-policy').description("print the key's purpose-bound policy (JSON)")))
    .examples('tkms key get-policy payroll > policy.json')
    .lazyAction(async () => (await load()).getPolicy);

  changeCommand(key, 'update-description', 'updateDescription', "replace the key's description", [new Option('--description <text>', 'the new description').makeOptionMandatory()], [
    'payroll --account alice.json --description "payroll exports, 2027"',
  ]);
  changeCommand(key, 'create-alias', 'createAlias', 'give the key another alias', [bodyOption('--alias <alias>', 'createAlias', 'alias').makeOptionMandatory()], [
    'payroll --account alice.json --alias alias/salaries',
  ]);
  changeCommand(
    key,
    'rename-alias',
    'renameAlias',
    'rename one of the key\'s aliases',
    [new Option('--from <alias>', 'the alias the key has').makeOptionMandatory(), bodyOption('--to <alias>', 'renameAlias', 'to', 'its new name: ').makeOptionMandatory()],
    ['payroll --account alice.json --from alias/salaries --to alias/wages'],
  );
  changeCommand(key, 'delete-alias', 'deleteAlias', 'remove one of the key\'s aliases', [new Option('--alias <alias>', 'the alias to remove').makeOptionMandatory()], [
    'payroll --account alice.json --alias alias/wages',
  ]);
  changeCommand(key, 'tag', 'tag', 'add tags, or change their values', [tagOption('a tag to set').makeOptionMandatory()], ['payroll --account alice.json --tag env=prod --tag owner=finance']);
  changeCommand(key, 'untag', 'untag', 'remove tags', [new Option('--tag <key>', 'the key of a tag to remove; repeat for more').argParser(repeatable).makeOptionMandatory()], [
    'payroll --account alice.json --tag env',
  ]);
  changeCommand(key, 'enable', 'enable', 'enable the key: it encrypts and decrypts again', [], ['payroll --account alice.json']);
  changeCommand(key, 'disable', 'disable', 'disable the key: every node refuses to decrypt with it and clients refuse to encrypt to it, until enabled', [], ['payroll --account alice.json']);
  const version = (what: string) => new Option('--key-version <n>', `${what} only this version of the key, not the whole key`).argParser(positiveInteger);
  changeCommand(
    key,
    'schedule-deletion',
    'scheduleDeletion',
    'schedule the key (or one version) for destruction: refused for use at once, destroyed when the window ends unless cancelled',
    [
      bodyOption('--days <n>', 'scheduleDeletion', 'pendingWindowDays').argParser(positiveInteger).conflicts('seconds'),
      bodyOption('--seconds <n>', 'scheduleDeletion', 'pendingWindowSeconds').argParser(positiveInteger),
      version('delete'),
    ],
    ['payroll --account alice.json --days 7', 'payroll --account alice.json --key-version 1'],
  );
  changeCommand(key, 'cancel-deletion', 'cancelDeletion', 'cancel a scheduled deletion; the key comes back Disabled (enable it to use it)', [version('cancel for')], ['payroll --account alice.json']);
  changeCommand(key, 'rotate', 'rotate', 'make a new version: new encryptions use it, handles of older versions keep decrypting', [], ['payroll --account alice.json']);
  changeCommand(
    key,
    'set-rotation',
    'setRotation',
    'set automatic rotation (derived keys), or turn it off',
    [
      bodyOption('--days <n>', 'setRotation', 'rotationPeriodDays').argParser(positiveInteger).conflicts('off'),
      new Option('--off', 'rotate on demand only'),
    ],
    ['user-42 --account alice.json --days 365', 'user-42 --account alice.json --off'],
  );
  changeCommand(key, 'put-policy', 'putPolicy', "replace the key's purpose-bound policy", [new Option('--file <file>', 'the policy, a JSON file (docs/key-policy.md)').makeOptionMandatory()], [
    'payroll --account alice.json --file policy.json',
  ]);
  changeCommand(
    key,
    'update-admins',
    'updateAdmins',
    "replace the key's admins",
    [bodyOption('--admin <address>', 'updateAdmins', 'admins', 'an admin; repeat for each. ').argParser(repeatable).makeOptionMandatory()],
    ['payroll --account alice.json --admin 0xA11ce… --admin 0xB0b…'],
  );
}
