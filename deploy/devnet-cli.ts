import { Option } from 'commander';
import { integerIn, type TkmsCommand } from '../scripts/cli/command.ts';

/** `tkms devnet`: the declaration; deploy/devnet-command.ts, loaded when it runs, implements it. */

export interface DevnetCommandOptions {
  n?: number;
  t?: number;
  dir: string;
  key?: string;
  gatewayPort: number;
  fresh?: true;
  chain?: true;
}

export interface DevnetFundOptions {
  address: string;
  eth: string;
}

export function registerDevnetCommand(program: TkmsCommand): void {
  const devnet = program
    .command('devnet')
    .description('run n nodes and a gateway on loopback, with a DKG, until Ctrl-C')
    .addOption(
      new Option(
        '--n <nodes>',
        'how many node processes (default 5 for a new devnet); another n on an existing devnet reshares its keys to a new committee: new nodes join (or the highest ids leave), same public keys',
      ).argParser(integerIn(0, 1_000)),
    )
    .addOption(new Option('--t <threshold>', 'how many nodes decrypt together (default 3 for a new devnet); another t on an existing devnet reshares its keys to it').argParser(integerIn(0, 1_000)))
    .addOption(new Option('--dir <dir>', 'where identities, keystores, stores and logs live; re-running with the same directory restarts the same network and keys').default('.devnet'))
    .addOption(new Option('--key <keyId>', 'the key to generate unless the directory already holds it (default "default")'))
    .addOption(new Option('--gateway-port <port>', 'the gateway port; 0 picks a free one').argParser(integerIn(0, 65_535)).default(8080))
    .addOption(new Option('--fresh', 'remove the directory first: a new committee and new keys'))
    .addOption(
      new Option(
        '--chain',
        'also run a local EVM (Anvil, one block a second, state kept in <dir>/chain) with the TkmsAcl contract, and configure every node and the gateway with acl.mode "either" (on-chain grants beside signed ones); a devnet made with --chain keeps its chain on restart',
      ),
    )
    .addHelpText(
      'after',
      '\nEach node runs as its own process on 127.0.0.1 with its own identity, keystore and log file under\n<dir>; the command prints the endpoints and "tkms devnet ready", then runs until Ctrl-C.\nWith --chain it also prints the RPC URL and the contract address; "tkms devnet fund" gives an\naccount gas money and "tkms grant --chain --devnet <dir>" sends on-chain grants.\n\nRe-run on an existing directory with another --n or --t to change the committee: the devnet\nwrites the next committee file (committee-epoch<N>.json) and the proposal (proposal-epoch<N>.json),\napproves it on every node (its operator is every operator), waits for the handover and keeps\nrunning; the directory remembers the epoch. committee.json stays the epoch-0 file clients pin.',
    )
    .examples(
      'tkms devnet',
      'tkms devnet --n 7 --t 4 --dir /tmp/net --gateway-port 0 --fresh',
      'tkms devnet --chain --dir /tmp/net',
      'tkms devnet --dir /tmp/net --n 7 --t 4      # on a 3-of-5 devnet: two nodes join, the keys are reshared to 4 of 7',
    )
    .lazyAction(async () => (await import('./devnet-command.ts')).devnet);
  // --dir is the parent's option (commander reads it wherever it stands on the line).
  devnet
    .command('fund')
    .description('give an account gas money on the chain of a running "tkms devnet --chain" (sets its balance)')
    .addOption(new Option('--address <address>', 'the account to fund (0x + 40 hex)').makeOptionMandatory())
    .addOption(new Option('--eth <amount>', 'the balance to set, in ETH').default('100'))
    .examples('tkms devnet fund --address 0xB0b…', 'tkms devnet --dir /tmp/net fund --address 0xB0b… --eth 5')
    .lazyAction(async () => (await import('./devnet-command.ts')).devnetFund);
}
