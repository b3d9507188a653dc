import { parseArgs } from 'node:util';
import { isTkmsError, TkmsError } from '../core/index.ts';
import { loadConfig } from './config.ts';
import { createIdentityFile } from './identity.ts';

/**
 * `tkms node …` and `tkms dkg …`. Each command returns its exit code; scripts/tkms.ts
 * owns the process. Usage errors exit 2, operational failures 1.
 */
export type CommandResult = number;

export class UsageError extends Error {}

function parse(argv: string[], options: Record<string, { type: 'string' | 'boolean' }>): Record<string, string | boolean | undefined> {
  try {
    const { values } = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false });
    return values as Record<string, string | boolean | undefined>;
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : 'bad arguments');
  }
}

export const NODE_HELP = `Usage: tkms node <command> [options]

Commands:
  init  --config <file> [--json]   create this node's persistent Ed25519 libp2p identity (mode 0600;
                                   never overwrites) and print its peer id and multiaddr
  start --config <file>            run the node daemon (p2p host, DKG, /health, /metrics, admin API)

Config (JSON; paths relative to the config file):
  listen            libp2p multiaddr(s), e.g. "/ip4/127.0.0.1/tcp/9000"
  http              "host:port" for GET /health and GET /metrics
  admin             "host:port" for the admin API (loopback only unless "adminAllowRemote": true)
  identityFile      identity written by "tkms node init"
  keystoreDir       encrypted keystore directory
  committeeFile     committee file: { committeeId, t, members: [{ id, peerId, multiaddrs }] }
  keystorePasswordFile   optional; env TKMS_KEYSTORE_PASSWORD takes precedence
  dkg.phaseTimeoutMs     per-phase DKG deadline (default 8000)
  logLevel          fatal|error|warn|info|debug|trace|silent (default info)
  testFaults        test only; refused unless TKMS_ENABLE_TEST_FAULTS=1

Environment overrides: TKMS_LISTEN, TKMS_HTTP_LISTEN, TKMS_ADMIN_LISTEN, TKMS_IDENTITY_FILE,
  TKMS_KEYSTORE_DIR, TKMS_COMMITTEE_FILE, TKMS_KEYSTORE_PASSWORD, TKMS_KEYSTORE_PASSWORD_FILE,
  TKMS_LOG_LEVEL, TKMS_DKG_PHASE_TIMEOUT_MS
`;

export const DKG_HELP = `Usage: tkms dkg <command> [options]

Commands:
  start  --key <id> --admin <url> [--timeout <seconds>] [--json]
         ask the node behind <url> (its admin listener, e.g. http://127.0.0.1:9200) to propose a
         DKG for key <id> to its committee, wait for the outcome and print it.
         Exit 0 when the key was generated, 1 when the DKG aborted (the reason is printed).
  status --key <id> --admin <url> [--json]
         print the state of the DKG for key <id> on that node
`;

const INIT_HELP = 'Usage: tkms node init --config <file> [--json]\n\nCreates the identity file named by the config (mode 0600; refuses to overwrite) and prints the peer id and multiaddrs.\n';
const START_HELP = 'Usage: tkms node start --config <file>\n\nRuns the node daemon until SIGINT/SIGTERM. See "tkms node --help" for the config fields.\n';
const DKG_START_HELP = 'Usage: tkms dkg start --key <id> --admin <url> [--timeout <seconds>] [--json]\n';
const DKG_STATUS_HELP = 'Usage: tkms dkg status --key <id> --admin <url> [--json]\n';

function requireString(value: unknown, flag: string): string {
  if (typeof value !== 'string' || value.length === 0) throw new UsageError(`${flag} is required`);
  return value;
}

async function nodeInit(argv: string[]): Promise<CommandResult> {
  const args = parse(argv, { config: { type: 'string' }, json: { type: 'boolean' } });
  if (args.help) {
    process.stdout.write(INIT_HELP);
    return 0;
  }
  const config = await loadConfig(requireString(args.config, '--config'));
  const identity = await createIdentityFile(config.identityFile);
  const multiaddrs = config.listen.map((m) => `${m}/p2p/${identity.peerId}`);
  if (args.json) process.stdout.write(`${JSON.stringify({ peerId: identity.peerId, multiaddrs, identityFile: config.identityFile })}\n`);
  else process.stdout.write(`peer id:   ${identity.peerId}\n${multiaddrs.map((m) => `multiaddr: ${m}`).join('\n')}\nidentity:  ${config.identityFile} (mode 0600)\n`);
  return 0;
}

async function nodeStart(argv: string[]): Promise<CommandResult> {
  const args = parse(argv, { config: { type: 'string' } });
  if (args.help) {
    process.stdout.write(START_HELP);
    return 0;
  }
  const config = await loadConfig(requireString(args.config, '--config'));
  // Loaded lazily: libp2p must not load before the polyfills the entry point installed.
  const { startNode } = await import('./daemon.ts');
  const node = await startNode(config);
  await new Promise<void>((resolve) => {
    const onSignal = (signal: string) => {
      node.log.info({ signal }, 'signal received');
      node.stop().finally(resolve);
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  });
  return 0;
}

function adminUrl(value: unknown): URL {
  const text = requireString(value, '--admin');
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError('--admin must be a URL such as http://127.0.0.1:9200');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError('--admin must be an http(s) URL');
  return url;
}

async function adminRequest(base: URL, method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  let res: Response;
  try {
    res = await fetch(new URL(path, base), {
      method,
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      signal: AbortSignal.timeout(10_000),
    });
  } catch {
    throw new TkmsError('unavailable', `cannot reach the admin endpoint at ${base.origin}`);
  }
  let json: unknown;
  try {
    json = await res.json();
  } catch {
    throw new TkmsError('internal', `admin endpoint answered ${res.status} without JSON`);
  }
  if (typeof json !== 'object' || json === null) throw new TkmsError('internal', 'admin endpoint answered unexpected JSON');
  return { status: res.status, json: json as Record<string, unknown> };
}

function adminError(json: Record<string, unknown>, status: number): TkmsError {
  const error = json.error as { code?: unknown; message?: unknown } | undefined;
  const message = typeof error?.message === 'string' ? error.message : `admin endpoint answered HTTP ${status}`;
  return new TkmsError('bad_request', message);
}

function printOutcome(status: Record<string, unknown>, asJson: boolean): void {
  if (asJson) {
    process.stdout.write(`${JSON.stringify(status)}\n`);
    return;
  }
  const result = status.result as Record<string, unknown> | undefined;
  const lines = [`key id:      ${String(status.keyId)}`, `status:      ${String(status.status)} (phase ${String(status.phase)})`];
  if (status.durationMs !== undefined) lines.push(`duration:    ${String(status.durationMs)} ms`);
  if (result !== undefined) {
    lines.push(`public key:  ${String(result.groupPublicKey)}`, `t of n:      ${String(result.t)} of ${String(result.n)}`, `qualified:   ${JSON.stringify(result.qualified)}`);
  }
  const dq = status.disqualified as Record<string, string> | undefined;
  if (dq !== undefined && Object.keys(dq).length > 0) lines.push(`disqualified: ${JSON.stringify(dq)}`);
  if (status.abortReason !== undefined) lines.push(`abort reason: ${String(status.abortReason)}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

async function dkgStart(argv: string[]): Promise<CommandResult> {
  const args = parse(argv, { key: { type: 'string' }, admin: { type: 'string' }, timeout: { type: 'string' }, json: { type: 'boolean' } });
  if (args.help) {
    process.stdout.write(DKG_START_HELP);
    return 0;
  }
  const keyId = requireString(args.key, '--key');
  const base = adminUrl(args.admin);
  const timeoutS = args.timeout === undefined ? 300 : Number(args.timeout);
  if (!Number.isFinite(timeoutS) || timeoutS <= 0 || timeoutS > 3600) throw new UsageError('--timeout must be a number of seconds in (0, 3600]');
  const started = await adminRequest(base, 'POST', '/admin/dkg', { keyId });
  if (started.status !== 202) throw adminError(started.json, started.status);
  const deadline = Date.now() + timeoutS * 1000;
  let status = started.json;
  while (status.status === 'running') {
    if (Date.now() > deadline) throw new TkmsError('timeout', `DKG for ${keyId} still running after ${timeoutS} s`);
    await new Promise((r) => setTimeout(r, 200));
    const polled = await adminRequest(base, 'GET', `/admin/dkg/${encodeURIComponent(keyId)}`);
    if (polled.status !== 200) throw adminError(polled.json, polled.status);
    status = polled.json;
  }
  printOutcome(status, args.json === true);
  if (status.status !== 'done') {
    process.stderr.write(`tkms dkg: DKG for ${keyId} aborted: ${String(status.abortReason)}\n`);
    return 1;
  }
  return 0;
}

async function dkgStatus(argv: string[]): Promise<CommandResult> {
  const args = parse(argv, { key: { type: 'string' }, admin: { type: 'string' }, json: { type: 'boolean' } });
  if (args.help) {
    process.stdout.write(DKG_STATUS_HELP);
    return 0;
  }
  const keyId = requireString(args.key, '--key');
  const res = await adminRequest(adminUrl(args.admin), 'GET', `/admin/dkg/${encodeURIComponent(keyId)}`);
  if (res.status !== 200) throw adminError(res.json, res.status);
  printOutcome(res.json, args.json === true);
  return res.json.status === 'aborted' ? 1 : 0;
}

type Sub = (argv: string[]) => Promise<CommandResult>;

async function dispatch(group: string, help: string, subs: Record<string, Sub>, argv: string[]): Promise<CommandResult> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    process.stdout.write(help);
    return sub === undefined ? 2 : 0;
  }
  const fn = subs[sub];
  if (fn === undefined) {
    process.stderr.write(`tkms ${group}: unknown command "${sub}"\n\n${help}`);
    return 2;
  }
  try {
    return await fn(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`tkms ${group} ${sub}: ${e.message} (see --help)\n`);
      return 2;
    }
    const message = isTkmsError(e) ? e.message : e instanceof Error ? e.message : 'unexpected error';
    const code = isTkmsError(e) ? ` [${e.code}]` : '';
    process.stderr.write(`tkms ${group} ${sub}: error${code}: ${message}\n`);
    return 1;
  }
}

export function runNodeCommand(argv: string[]): Promise<CommandResult> {
  return dispatch('node', NODE_HELP, { init: nodeInit, start: nodeStart }, argv);
}

export function runDkgCommand(argv: string[]): Promise<CommandResult> {
  return dispatch('dkg', DKG_HELP, { start: dkgStart, status: dkgStatus }, argv);
}
