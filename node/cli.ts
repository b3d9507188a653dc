import { InvalidArgumentError, Option } from 'commander';
import { jsonOption, positiveUpTo, type TkmsCommand } from '../scripts/cli/command.ts';

/**
 * `tkms node …` and `tkms dkg …`: the declarations. node/cli-commands.ts, loaded when a command
 * runs, implements them (so `tkms --help` loads neither libp2p nor the config parser).
 */

export interface NodeConfigOption {
  config?: string;
}

function configOption(): Option {
  return new Option(
    '--config <file>',
    "the node's config file (JSON); without it, TKMS_* environment variables alone configure the node (paths relative to the working directory)",
  ).env('TKMS_CONFIG');
}

/** Commander parser of an http(s) URL option (admin listeners). */
export function httpUrl(value: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new InvalidArgumentError('It must be a URL such as http://127.0.0.1:9200.');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InvalidArgumentError('It must be an http(s) URL.');
  return url;
}

function adminOption(): Option {
  return new Option('--admin <url>', "the node's admin listener, e.g. http://127.0.0.1:9200").argParser(httpUrl);
}

const load = () => import('./cli-commands.ts');

export function registerNodeCommands(program: TkmsCommand): void {
  const node = program
    .command('node')
    .description('run and operate a KMS node: init, start, check, status, approve, cancel-reshare, refresh, backup, restore')
    .addHelpText('after', '\nThe config fields and their environment variables: tkms node start --help. Operators\' guide: docs/operators.md')
    .examples('tkms node init --config node.json', 'tkms node check --config node.json && tkms node start --config node.json', 'tkms node status --config node.json');

  node
    .command('init')
    .description(
      "create this node's persistent Ed25519 libp2p identity (mode 0600; never overwrites) and print its peer id and the multiaddrs to put in the committee file",
    )
    .addOption(configOption())
    .addOption(new Option('--if-missing', 'keep an existing identity and print its peer id (exit 0), which suits container init steps'))
    .addOption(jsonOption())
    .examples('tkms node init --config node.json', 'tkms node init --config node.json --if-missing --json')
    .lazyAction(async () => (await load()).nodeInit);

  // The config fields' help is generated from the config schema, whose parser is too costly to
  // load for every `tkms --help`: it is imported only when `node start` is about to run or show help.
  node.hook('preSubcommand', async (_group, sub) => {
    if (sub.name() === 'start') sub.addHelpText('after', `\n${(await import('./config.ts')).NODE_CONFIG_FIELDS_HELP}`);
  });

  node
    .command('start')
    .description('run the node daemon (p2p host, DKG, /health, /metrics, admin API) until SIGINT/SIGTERM; every config mistake is printed on its own line (exit 1)')
    .addOption(configOption())
    .examples('tkms node start --config node.json', 'TKMS_KEYSTORE_PASSWORD_FILE=/run/secrets/pw tkms node start --config node.json')
    .lazyAction(async () => (await load()).nodeStart);

  node
    .command('check')
    .description(
      'check what "tkms node start" needs, without starting: the config (and environment overrides), the committee file, the identity (and that it is a member), the keystore password; every problem on its own line, exit 1 if any',
    )
    .addOption(configOption())
    .addOption(jsonOption())
    .examples('tkms node check --config node.json')
    .lazyAction(async () => (await load()).nodeCheck);

  node
    .command('status')
    .description(
      "ask the running node's admin listener and print version, uptime, member and peer id, the committee, its epoch and fingerprint (equal on every member and the gateway), connected members, keys held, the last DKG and any committee change approved, running or failed; exit 1 if the node cannot be reached",
    )
    .addOption(configOption())
    .addOption(adminOption())
    .addOption(jsonOption())
    .addHelpText('after', "\n--admin defaults to the config's admin address.")
    .examples('tkms node status --config node.json', 'tkms node status --admin http://127.0.0.1:9200 --json')
    .lazyAction(async () => (await load()).nodeStatus);

  node
    .command('approve')
    .description(
      "approve a committee change on THIS node: send the proposal file (tkms committee propose-reshare writes it) to the node's loopback admin listener and print the proposal id, its kind and status. Each operator approves the same file on their own node; a reshare starts once t members of the current committee approved it (a refresh needs no approval). Check the proposal id with the proposer before approving",
    )
    .argument('<proposal>', 'the proposal file')
    .addOption(configOption())
    .addOption(adminOption())
    .addOption(jsonOption())
    .addHelpText('after', "\n--admin defaults to the config's admin address. Progress: tkms node status.")
    .examples('tkms node approve --config node.json proposal-epoch1.json', 'tkms node approve --admin http://127.0.0.1:9200 proposal-epoch1.json --json')
    .lazyAction(async () => (await load()).nodeApprove);

  node
    .command('cancel-reshare')
    .description("withdraw this node's approval of a proposal (by its id, as approve and status print it); refused once the node has voted in its ceremony")
    .argument('<proposalId>', 'the proposal id (64 hex digits)')
    .addOption(configOption())
    .addOption(adminOption())
    .addOption(jsonOption())
    .addHelpText('after', "\n--admin defaults to the config's admin address.")
    .examples('tkms node cancel-reshare --admin http://127.0.0.1:9200 3f9c…')
    .lazyAction(async () => (await load()).nodeCancelReshare);

  node
    .command('refresh')
    .description(
      'start a refresh now: the same members and t get new shares of every key (the public keys stay), so shares stolen before are useless after it. Any member may start one; the committee file\'s refreshIntervalSeconds also starts them on a schedule',
    )
    .addOption(configOption())
    .addOption(adminOption())
    .addOption(jsonOption())
    .addHelpText('after', "\n--admin defaults to the config's admin address. Progress: tkms node status.")
    .examples('tkms node refresh --config node.json', 'tkms node refresh --admin http://127.0.0.1:9200 --json')
    .lazyAction(async () => (await load()).nodeRefresh);

  node
    .command('backup')
    .description(
      'write one file holding the keystore (every key share, still encrypted under the keystore password) and the identity (encrypted under the same password); every share is decrypted in memory first to prove the backup restores. Safe while the node runs; mode 0600, atomic, never replaces a file. Keep the password: the backup is useless without it',
    )
    .addOption(new Option('--out <file>', 'the backup file to create').makeOptionMandatory())
    .addOption(configOption())
    .addOption(jsonOption())
    .examples('tkms node backup --config node.json --out node1-2026-01-31.tkmsbak')
    .lazyAction(async () => (await load()).nodeBackup);

  node
    .command('restore')
    .description(
      "verify a backup, then install its identity if this node has none (an existing identity must have the backup's peer id) and its keys, re-encrypted under the node's current keystore password (a new keystore is created with it if needed), which is also how the keystore password is rotated. Refuses any key id the keystore already holds, and refuses to run while the node answers on its health address. Nothing is written unless the whole backup verifies",
    )
    .addOption(new Option('--in <file>', 'the backup file').makeOptionMandatory())
    .addOption(configOption())
    .addOption(new Option('--backup-password-file <file>', "file holding the backup's password (else TKMS_BACKUP_PASSWORD, else the node's own keystore password)"))
    .addOption(jsonOption())
    .examples('tkms node restore --config node.json --in node1-2026-01-31.tkmsbak --backup-password-file old-password')
    .lazyAction(async () => (await load()).nodeRestore);

  const dkg = program
    .command('dkg')
    .description('start or inspect a distributed key generation through a node admin endpoint')
    .examples('tkms dkg start --key default --admin http://127.0.0.1:9200', 'tkms dkg status --key default --admin http://127.0.0.1:9200');

  dkg
    .command('start')
    .description(
      'ask one member (its admin listener) to propose a DKG for a key to the whole committee, wait and print the outcome: the group public key, t of n and the qualified members. Start it once every member is up and connected ("tkms node status" shows the peers). Exit 0 when the key was generated, 1 when the DKG aborted',
    )
    .addOption(new Option('--key <id>', 'the key id').makeOptionMandatory())
    .addOption(adminOption().makeOptionMandatory())
    .addOption(new Option('--timeout <seconds>', 'how long to wait for the outcome').argParser(positiveUpTo(3600, 'seconds')).default(300))
    .addOption(jsonOption())
    .examples('tkms dkg start --key default --admin http://127.0.0.1:9200')
    .lazyAction(async () => (await load()).dkgStart);

  dkg
    .command('status')
    .description('print the state of the DKG for a key on that node: running (and its phase), done (with the public key) or aborted (with the reason and any disqualified members); exit 1 when aborted')
    .addOption(new Option('--key <id>', 'the key id').makeOptionMandatory())
    .addOption(adminOption().makeOptionMandatory())
    .addOption(jsonOption())
    .examples('tkms dkg status --key default --admin http://127.0.0.1:9200 --json')
    .lazyAction(async () => (await load()).dkgStatus);
}
