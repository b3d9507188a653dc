import { envTypos } from '../config/env.ts';
import { stopSignal, UsageError, warningLine, type CommandRun, type TkmsCommand } from '../scripts/cli/command.ts';
import type { GatewayConfigOption } from './cli.ts';
import { GATEWAY_ENV_OVERRIDES, GATEWAY_ENV_VARS, loadGatewayConfig, type GatewayConfig } from './config.ts';

/** What the commands declared in gateway/cli.ts do. */

async function configFrom(opts: GatewayConfigOption, command: TkmsCommand): Promise<GatewayConfig> {
  for (const line of envTypos(process.env, GATEWAY_ENV_VARS)) process.stderr.write(warningLine(command.path, line));
  const file = opts.config === '' && command.getOptionValueSource('config') === 'env' ? undefined : opts.config;
  if (file === '') throw new UsageError('--config must name a file');
  if (file === undefined && !Object.keys(GATEWAY_ENV_OVERRIDES).some((name) => (process.env[name] ?? '') !== '')) {
    throw new UsageError('--config is required (or set TKMS_GATEWAY_CONFIG, or configure the gateway with TKMS_* environment variables)');
  }
  return loadGatewayConfig(file);
}

export const gatewayStart: CommandRun<GatewayConfigOption> = async (opts, command) => {
  const config = await configFrom(opts, command);
  // Loaded lazily: libp2p must not load before the polyfills the entry point installed.
  const { startGateway } = await import('./server.ts');
  const gateway = await startGateway(config);
  gateway.log.info({ signal: await stopSignal() }, 'signal received');
  await gateway.stop();
  return 0;
};

export const gatewayInit: CommandRun<GatewayConfigOption & { json?: true }> = async (opts, command) => {
  const { identityFile } = await configFrom(opts, command);
  if (identityFile === undefined) throw new UsageError('the config has no identityFile (or set TKMS_GATEWAY_IDENTITY_FILE)');
  const { loadOrCreateIdentityFile } = await import('../node/identity.ts');
  const { identity, created } = await loadOrCreateIdentityFile(identityFile);
  process.stdout.write(opts.json ? `${JSON.stringify({ peerId: identity.peerId, identityFile, created })}\n` : `${created ? 'created' : 'kept'} ${identityFile}\npeer id: ${identity.peerId}\n`);
  return 0;
};
