import '../core/polyfills.ts';
import { runTkmsCli } from './cli/program.ts';

/** The `tkms` command line (the tree is in scripts/cli/program.ts); this file owns the process. */

process.on('unhandledRejection', (reason) => {
  // A stray rejection inside a network library must not take a node (and its peers' quorum) down.
  const text = reason instanceof Error ? `${reason.name}: ${reason.message}` : 'non-error rejection';
  process.stderr.write(`${JSON.stringify({ level: 50, time: new Date().toISOString(), msg: 'unhandled rejection', err: text })}\n`);
});

process.exitCode = await runTkmsCli(process.argv.slice(2));
// Long-running commands (node, gateway, devnet) return only once stopped; nothing else should
// keep the process alive, but a lingering handle in a library must not hold a finished command.
process.exit();
