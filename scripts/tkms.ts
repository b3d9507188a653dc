import '../core/polyfills.ts';
import { CLIENT_HELP, runClientCommand } from '../client/cli.ts';
import { runCommitteeCommand } from '../deploy/committee-cli.ts';
import { runDevnetCommand } from '../deploy/devnet-cli.ts';
import { runGatewayCommand } from '../gateway/cli.ts';
import { runDkgCommand, runNodeCommand } from '../node/cli.ts';

/**
 * The `tkms` command line. Each command group lives with its component (node/cli.ts, …);
 * this file only dispatches and owns the process exit code.
 */
type Group = { summary: string; run: (argv: string[]) => Promise<number> };

const GROUPS: Record<string, Group> = {
  node: { summary: 'run and operate a KMS node: init, start, check, status, backup, restore', run: runNodeCommand },
  committee: { summary: 'write a committee file from the members\' peer ids and addresses, or show one with its fingerprint', run: runCommitteeCommand },
  dkg: { summary: 'start or inspect a distributed key generation through a node admin endpoint', run: runDkgCommand },
  gateway: { summary: 'start the HTTP gateway (handles, ACL, delegation fan-out)', run: runGatewayCommand },
  devnet: { summary: 'run n nodes and a gateway on loopback, with a DKG, until Ctrl-C', run: runDevnetCommand },
  account: { summary: 'create an account (secp256k1 key) for signing requests', run: (argv) => runClientCommand('account', argv) },
  encrypt: { summary: 'encrypt to a network key and store the ciphertext; prints the handle', run: (argv) => runClientCommand('encrypt', argv) },
  grant: { summary: 'grant another account the right to decrypt a handle', run: (argv) => runClientCommand('grant', argv) },
  revoke: { summary: 'revoke a grant (reaches every node)', run: (argv) => runClientCommand('revoke', argv) },
  decrypt: { summary: 'decrypt a handle: delegation, proofs checked, combined locally', run: (argv) => runClientCommand('decrypt', argv) },
};

function usage(): string {
  const width = Math.max(...Object.keys(GROUPS).map((k) => k.length));
  const lines = Object.entries(GROUPS).map(([name, g]) => `  ${name.padEnd(width)}  ${g.summary}`);
  return `Usage: tkms <command> [options]\n\nCommands:\n${lines.join('\n')}\n\nRun "tkms <command> --help" for the options of a command (every command takes --help).\nRunning nodes across machines: docs/operators.md\n\n${CLIENT_HELP}`;
}

process.on('unhandledRejection', (reason) => {
  // A stray rejection inside a network library must not take a node (and its peers' quorum) down.
  const text = reason instanceof Error ? `${reason.name}: ${reason.message}` : 'non-error rejection';
  process.stderr.write(`${JSON.stringify({ level: 50, time: new Date().toISOString(), msg: 'unhandled rejection', err: text })}\n`);
});

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(usage());
    return command === undefined ? 2 : 0;
  }
  const group = GROUPS[command];
  if (group === undefined) {
    process.stderr.write(`tkms: unknown command "${command}"\n\n${usage()}`);
    return 2;
  }
  return group.run(rest);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`tkms: ${e instanceof Error ? e.message : 'unexpected error'}\n`);
    process.exit(1);
  },
);
