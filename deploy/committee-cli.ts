import { Option } from 'commander';
import { integerIn, jsonOption, type TkmsCommand } from '../scripts/cli/command.ts';

/**
 * `tkms committee new|show`: write the committee file from what each operator's
 * `tkms node init` printed, and show a committee file with its fingerprint, which every
 * member compares (it must be the same file on every node and on the gateway).
 * deploy/committee-commands.ts, loaded when a command runs, implements them.
 */

const load = () => import('./committee-commands.ts');

export function registerCommitteeCommands(program: TkmsCommand): void {
  const committee = program
    .command('committee')
    .description("write a committee file from the members' peer ids and addresses, or show one with its fingerprint")
    .addHelpText(
      'after',
      '\nEvery member and the gateway must load byte-for-byte the same committee: compare the\nfingerprint ("tkms committee show", "tkms node status") across operators.',
    )
    .examples('tkms committee new --id acme-prod --t 2 --out committee.json --member 1=… --member 2=… --member 3=…', 'tkms committee show --file committee.json');

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
}
