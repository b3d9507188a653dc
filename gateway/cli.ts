import { Option } from 'commander';
import { jsonOption, type TkmsCommand } from '../scripts/cli/command.ts';

/**
 * `tkms gateway start|init`: the declarations; gateway/cli-commands.ts, loaded when one runs,
 * implements them.
 */

export interface GatewayConfigOption {
  config?: string;
}

function configOption(): Option {
  return new Option(
    '--config <file>',
    "the gateway's config file (JSON); without it, TKMS_GATEWAY_* environment variables alone configure the gateway (paths relative to the working directory)",
  ).env('TKMS_GATEWAY_CONFIG');
}

const load = () => import('./cli-commands.ts');

export function registerGatewayCommands(program: TkmsCommand): void {
  const gateway = program
    .command('gateway')
    .description('set up (init) and run (start) the HTTP gateway: handles, ACL, delegation fan-out')
    .addHelpText('after', "\nThe config fields and their environment variables: tkms gateway start --help. Operators' guide: docs/operators.md")
    .examples('tkms gateway init --config gateway.json', 'tkms gateway start --config gateway.json');

  // Generated from the config schema; loaded only for `gateway start` (see node/cli.ts).
  gateway.hook('preSubcommand', async (_group, sub) => {
    if (sub.name() === 'start') sub.addHelpText('after', `\n${(await import('./config.ts')).GATEWAY_CONFIG_FIELDS_HELP}`);
  });

  gateway
    .command('start')
    .description(
      "run the tkms HTTP gateway until SIGINT/SIGTERM: stores ciphertext handles and grants, checks the ACL and fans delegation requests out to the committee's nodes",
    )
    .addOption(configOption())
    .addHelpText(
      'after',
      `
Endpoints: the API (GET /openapi.json describes it), GET /health (200 when at least t nodes
are connected), GET /metrics (Prometheus). Operators' guide: docs/operators.md`,
    )
    .examples('tkms gateway start --config gateway.json', 'TKMS_GATEWAY_LISTEN=127.0.0.1:8080 TKMS_COMMITTEE_FILE=committee.json tkms gateway start')
    .lazyAction(async () => (await load()).gatewayStart);

  gateway
    .command('init')
    .description("create the gateway's libp2p identity (identityFile) if it has none and print its peer id: list it in every node's gatewayPeerIds, so nodes accept the revocations it pushes")
    .addOption(configOption())
    .addOption(jsonOption())
    .examples('tkms gateway init --config gateway.json')
    .lazyAction(async () => (await load()).gatewayInit);
}
