import { CommanderError } from 'commander';
import { registerClientCommands } from '../../client/cli.ts';
import { registerKeyCommands } from '../../client/key-cli.ts';
import { registerCommitteeCommands } from '../../deploy/committee-cli.ts';
import { registerDevnetCommand } from '../../deploy/devnet-cli.ts';
import { registerGatewayCommands } from '../../gateway/cli.ts';
import { tkmsVersion } from '../../runtime/version.ts';
import { registerNodeCommands } from '../../node/cli.ts';
import { errorLine, TkmsCommand } from './command.ts';

/** The whole `tkms` command tree: declarations only; each command loads its code when it runs. */
export function tkmsProgram(): TkmsCommand {
  const program = new TkmsCommand('tkms')
    .description('threshold key management network: t-of-n secp256k1 decryption delegation')
    .version(tkmsVersion(), '-V, --version', 'print the tkms version')
    .showSuggestionAfterError(true)
    .exitOverride();
  registerNodeCommands(program);
  registerCommitteeCommands(program);
  registerGatewayCommands(program);
  registerDevnetCommand(program);
  registerClientCommands(program);
  registerKeyCommands(program);
  program
    .addHelpText('after', '\nRun "tkms <command> --help" for the options of a command (every command takes --help).\nRunning nodes across machines: docs/operators.md')
    .examples(
      'tkms devnet',
      'tkms account new --out alice.json',
      'tkms encrypt --account alice.json --key default --text "hello"',
      'tkms grant --account alice.json --handle <handle> --to <address>',
      'tkms decrypt --account bob.json --handle <handle>',
    );
  return program;
}

/**
 * Runs `tkms` with these arguments and returns the exit code: 0, 1 for a failure, 2 for a usage
 * error (commander's own included). Writes only through process.stdout/stderr.
 */
export async function runTkmsCli(argv: string[]): Promise<number> {
  const program = tkmsProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
    return program.outcome;
  } catch (e) {
    // Help and --version end parsing with exit code 0; everything else commander stops on is a usage error.
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : 2;
    process.stderr.write(errorLine('tkms', 'failed', e instanceof Error ? e.message : 'unexpected error'));
    return 1;
  }
}
