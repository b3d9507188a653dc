import { Option } from 'commander';
import { httpUrl } from '../node/cli.ts';
import { integerIn, jsonOption, type TkmsCommand } from '../scripts/cli/command.ts';

/**
 * `tkms committee new|show|next|propose-reshare`: write the committee file from what each
 * operator's `tkms node init` printed, show a committee file with its fingerprint, which every
 * member compares (it must be the same file on every node and on the gateway), and prepare a
 * committee change: the next epoch's file and the proposal each operator approves on its node.
 * deploy/committee-commands.ts, loaded when a command runs, implements them.
 */

const load = () => import('./committee-commands.ts');

export function registerCommitteeCommands(program: TkmsCommand): void {
  const committee = program
    .command('committee')
    .description("write a committee file from the members' peer ids and addresses, show one with its fingerprint, or prepare a committee change (next epoch, reshare proposal)")
    .addHelpText(
      'after',
      '\nEvery member and the gateway must load byte-for-byte the same committee: compare the\nfingerprint ("tkms committee show", "tkms node status") across operators.',
    )
    .examples(
      'tkms committee new --id acme-prod --t 2 --out committee.json --member 1=… --member 2=… --member 3=…',
      'tkms committee show --file committee.json',
      'tkms committee next --from committee.json --add 4=/ip4/10.0.0.4/tcp/9000/p2p/12D3KooW… --t 3 --out committee-epoch1.json',
      'tkms committee propose-reshare --from committee.json --to committee-epoch1.json --admin http://127.0.0.1:9200 --out proposal.json',
    );

  committee
    .command('new')
    .description('write a committee file (refuses to overwrite it)')
    .addOption(
      new Option(
        '--id <name>',
        'the committee id is <name> plus a random suffix, e.g. acme-prod-3f9c1a7be2: signatures (grants, revocations) are bound to it, so deployments must never share one; ids containing "example" are placeholders nodes refuse',
      ).makeOptionMandatory(),
    )
    .addOption(new Option('--exact-id', 'use <name> as the id unchanged (only to rewrite the file of an existing committee, e.g. with new addresses)'))
    .addOption(new Option('--t <threshold>', 'how many members decrypt together').argParser(integerIn(0, 99_999)).makeOptionMandatory())
    .addOption(
      new Option(
        '--member <member>',
        '<id>=<multiaddr>/p2p/<peerId>, one per node: the member id (1..65535, the Shamir x-coordinate; never reuse one) and the multiaddr its operator\'s "tkms node init" printed, with the host replaced by an address the other members can reach; repeat with the same id for several addresses',
      )
        .argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value])
        .makeOptionMandatory(),
    )
    .addOption(new Option('--out <file>', 'the committee file to create').makeOptionMandatory())
    .addOption(jsonOption())
    .examples(
      `tkms committee new --id acme-prod --t 2 --out committee.json \\
      --member 1=/ip4/10.0.0.1/tcp/9000/p2p/12D3KooW… \\
      --member 2=/ip4/10.0.0.2/tcp/9000/p2p/12D3KooW… \\
      --member 3=/dns4/kms3.example.org/tcp/9000/p2p/12D3KooW…`,
    )
    .lazyAction(async () => (await load()).committeeNew);

  committee
    .command('show')
    .description('validate a committee file (as a node would at start) and print the committee id, t, the members with their peer ids and addresses, and the fingerprint (SHA-256 of its canonical form)')
    .addOption(new Option('--file <file>', 'the committee file').makeOptionMandatory())
    .addOption(jsonOption())
    .examples('tkms committee show --file committee.json --json')
    .lazyAction(async () => (await load()).committeeShow);

  committee
    .command('next')
    .description(
      "write the committee file of the next epoch (epoch + 1, same committee id) from the current one: members added or removed, a new t, a new refresh schedule. Nothing changes until a reshare proposal for it is approved and its ceremony completes (tkms committee propose-reshare); refuses to overwrite --out",
    )
    .addOption(new Option('--from <file>', 'the current committee file (the epoch the nodes serve now)').makeOptionMandatory())
    .addOption(
      new Option('--add <member>', '<id>=<multiaddr>/p2p/<peerId> of a new member, as for "tkms committee new --member" (an id never used before in this committee); repeat for several')
        .argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]),
    )
    .addOption(
      new Option('--remove <id>', 'the id of a member that leaves (its shares are erased after the handover); repeat for several')
        .argParser((value: string, previous: number[] | undefined) => [...(previous ?? []), integerIn(1, 65_535)(value)]),
    )
    .addOption(new Option('--t <threshold>', 'the new threshold (default: unchanged)').argParser(integerIn(1, 65_535)))
    .addOption(new Option('--refresh-interval <seconds>', 'members refresh their shares this often (at least 60); 0 removes the schedule (default: unchanged)').argParser(integerIn(0, 0xffff_ffff)))
    .addOption(new Option('--out <file>', 'the committee file to create').makeOptionMandatory())
    .addOption(jsonOption())
    .addHelpText('after', '\nWithout --add, --remove, --t or --refresh-interval the file describes a refresh: the same members and t, new shares.')
    .examples(
      'tkms committee next --from committee.json --add 6=/ip4/10.0.0.6/tcp/9000/p2p/12D3KooW… --add 7=/ip4/10.0.0.7/tcp/9000/p2p/12D3KooW… --t 4 --out committee-epoch1.json',
      'tkms committee next --from committee-epoch1.json --remove 3 --add 8=/dns4/kms8.acme.org/tcp/9000/p2p/12D3KooW… --out committee-epoch2.json',
    )
    .lazyAction(async () => (await load()).committeeNext);

  committee
    .command('propose-reshare')
    .description(
      'write the proposal file that moves every listed key from the committee of --from to that of --to (epoch + 1, same committee id, same public keys), and print its proposal id and what it changes (a refresh when members and t stay). Each operator then approves this same file on their own node: tkms node approve. Refuses to overwrite --out',
    )
    .addOption(new Option('--from <file>', 'the current committee file (the epoch the nodes serve now)').makeOptionMandatory())
    .addOption(new Option('--to <file>', 'the next committee file (tkms committee next writes it; without an epoch it gets --from\'s + 1)').makeOptionMandatory())
    .addOption(new Option('--admin <url>', "a member's admin listener, e.g. http://127.0.0.1:9200: every key it holds is reshared, and it must serve the epoch of --from").argParser(httpUrl).conflicts('keys'))
    .addOption(
      new Option('--keys <keyIds>', 'the key ids to reshare, comma-separated (instead of --admin)').argParser((value: string) =>
        value
          .split(',')
          .map((k) => k.trim())
          .filter((k) => k.length > 0),
      ),
    )
    .addOption(new Option('--out <file>', 'the proposal file to create').makeOptionMandatory())
    .addOption(jsonOption())
    .addHelpText('after', '\nGive --admin or --keys. The proposal id is the SHA-256 of both committee files and the key ids: operators compare it before approving.')
    .examples(
      'tkms committee propose-reshare --from committee.json --to committee-epoch1.json --admin http://127.0.0.1:9200 --out proposal-epoch1.json',
      'tkms committee propose-reshare --from committee.json --to committee-epoch1.json --keys default,payroll --out proposal-epoch1.json --json',
    )
    .lazyAction(async () => (await load()).committeeProposeReshare);
}

