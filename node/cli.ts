import { readFile, stat } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { isTkmsError, TkmsError } from '../core/index.ts';
import { envTypos } from '../net/env-config.ts';
import { loadCommitteeFile } from '../net/committee.ts';
import { ENV_OVERRIDES, loadConfig, NODE_ENV_VARS, resolveKeystorePassword, type NodeConfig } from './config.ts';
import { createIdentityFile, loadIdentityFile } from './identity.ts';
import { createBackup, restoreBackup, writeBackupFile } from './keystore-backup.ts';
import type { NodeStatus } from './status.ts';

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
  init    [--config <file>] [--if-missing] [--json]
          create this node's persistent Ed25519 libp2p identity (mode 0600; never overwrites)
          and print its peer id and multiaddrs (--if-missing: print the existing one instead)
  start   [--config <file>]       run the node daemon (p2p host, DKG, /health, /metrics, admin API)
  check   [--config <file>]       check the config, committee file, identity and keystore password
                                  without starting; every mistake on its own line
  status  [--config <file> | --admin <url>] [--json]
          peers seen, keys held, last DKG, version (from the running node's admin listener)
  backup  --out <file> [--config <file>] [--json]
          write an encrypted backup of the keystore and identity (works while the node runs)
  restore --in <file> [--config <file>] [--backup-password-file <file>] [--json]
          verify a backup, then install its identity and keys (the node must be stopped;
          existing keys are never overwritten)

--config defaults to the TKMS_CONFIG environment variable; without either, the node is
configured by environment variables alone (paths relative to the working directory).

Config (JSON; paths relative to the config file)   environment override
  listen            libp2p multiaddr(s), e.g. "/ip4/0.0.0.0/tcp/9000"   TKMS_LISTEN (comma-separated)
  http              "host:port" for GET /health and GET /metrics         TKMS_HTTP_LISTEN
  admin             "host:port" for the admin API (loopback only)        TKMS_ADMIN_LISTEN
  adminAllowRemote  allow a non-loopback admin address (default false)   TKMS_ADMIN_ALLOW_REMOTE
  identityFile      identity written by "tkms node init"                 TKMS_IDENTITY_FILE
  keystoreDir       encrypted keystore directory                         TKMS_KEYSTORE_DIR
  stateDir          revocations and replay logs (default ../state)       TKMS_STATE_DIR
  committeeFile     { committeeId, t, members: [{ id, peerId, multiaddrs }] }   TKMS_COMMITTEE_FILE
  keystorePasswordFile   file holding the keystore password              TKMS_KEYSTORE_PASSWORD_FILE
                    (TKMS_KEYSTORE_PASSWORD, the password itself, wins over both)
  dkg.phaseTimeoutMs     per-phase DKG deadline (default 8000)           TKMS_DKG_PHASE_TIMEOUT_MS
  clockSkewSeconds  tolerance for signed validity windows (default 30)   TKMS_CLOCK_SKEW_SECONDS
  partialRateLimit  { perMinute: 12000, burst: 1000 } per requester      TKMS_PARTIAL_RATE_PER_MINUTE,
                                                                         TKMS_PARTIAL_RATE_BURST
  logLevel          fatal|error|warn|info|debug|trace|silent (default info)   TKMS_LOG_LEVEL
  testFaults        test only; refused unless TKMS_ENABLE_TEST_FAULTS=1

Run "tkms node <command> --help" for one command. Operators' guide: docs/operators.md
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

const INIT_HELP = `Usage: tkms node init [--config <file>] [--if-missing] [--json]

Creates the identity file named by the config (mode 0600; refuses to overwrite) and prints the
peer id and the multiaddrs to put in the committee file. With --if-missing, an existing identity
is kept and its peer id printed (exit 0), which suits container init steps.
`;
const START_HELP = `Usage: tkms node start [--config <file>]

Runs the node daemon until SIGINT/SIGTERM. Every config mistake is printed on its own line and
the process exits 1. See "tkms node --help" for the config fields and environment variables.
`;
const CHECK_HELP = `Usage: tkms node check [--config <file>] [--json]

Checks what "tkms node start" needs, without starting: the config (and environment overrides),
the committee file, the identity (and that it is a member), the keystore password (it unlocks
the keystore if one exists). Prints every problem; exit 0 when all is well, 1 otherwise.
`;
const STATUS_HELP = `Usage: tkms node status [--config <file> | --admin <url>] [--json]

Asks the running node's admin listener (GET /admin/status) and prints: version, uptime, member id
and peer id, the committee and its fingerprint (must be equal on every member and the gateway),
which members are connected, the keys held and the last DKG. --admin defaults to the config's
admin address. Exit 1 if the node cannot be reached.
`;
const BACKUP_HELP = `Usage: tkms node backup --out <file> [--config <file>] [--json]

Writes one file holding the keystore (every key share, still encrypted under the keystore
password) and the node's identity (encrypted under the same password). Every share is
decrypted in memory first to prove the backup restores. Safe while the node runs. The file is
written with mode 0600, atomically, and never replaces an existing file. Keep the password: the
backup is useless without it.
`;
const RESTORE_HELP = `Usage: tkms node restore --in <file> [--config <file>] [--backup-password-file <file>] [--json]

Verifies the backup with its password (--backup-password-file, else TKMS_BACKUP_PASSWORD, else
the node's own keystore password), then installs its identity if this node has none (an
existing identity must have the backup's peer id) and its keys, re-encrypted under the node's
current keystore password (a new keystore is created with it if needed) — which is also how the
keystore password is rotated. Refuses any key id the keystore already holds, and refuses to run
while the node answers on its health address. Nothing is written unless the whole backup verifies.
`;
const DKG_START_HELP = `Usage: tkms dkg start --key <id> --admin <url> [--timeout <seconds>] [--json]

Asks one member (its admin listener, e.g. http://127.0.0.1:9200) to propose a DKG for key <id>
to the whole committee, waits (default 300 s) and prints the outcome: the group public key,
t of n and the qualified members. Start it once every member is up and connected ("tkms node
status" shows the peers). Exit 0 when the key was generated, 1 when the DKG aborted.
`;
const DKG_STATUS_HELP = `Usage: tkms dkg status --key <id> --admin <url> [--json]

Prints the state of the DKG for key <id> on that node: running (and its phase), done (with the
public key) or aborted (with the reason and any disqualified members). Exit 1 when aborted.
`;

function requireString(value: unknown, flag: string): string {
  if (typeof value !== 'string' || value.length === 0) throw new UsageError(`${flag} is required`);
  return value;
}

/** --config, else TKMS_CONFIG, else undefined (configured by the environment alone). */
function configPath(args: Record<string, string | boolean | undefined>): string | undefined {
  if (typeof args.config === 'string') {
    if (args.config.length === 0) throw new UsageError('--config must name a file');
    return args.config;
  }
  const fromEnv = process.env.TKMS_CONFIG;
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  // Configuring by environment alone is deliberate: at least one config variable must be set.
  if (!Object.keys(ENV_OVERRIDES).some((name) => (process.env[name] ?? '') !== '')) {
    throw new UsageError('--config is required (or set TKMS_CONFIG, or configure the node with TKMS_* environment variables)');
  }
  return undefined;
}

/** Warns on stderr about TKMS_* variables that look like misspelt config variables. */
function warnEnvTypos(): void {
  for (const line of envTypos(process.env, [...NODE_ENV_VARS, 'TKMS_BACKUP_PASSWORD'])) process.stderr.write(`tkms node: warning: ${line}\n`);
}

async function nodeInit(argv: string[]): Promise<CommandResult> {
  const args = parse(argv, { config: { type: 'string' }, json: { type: 'boolean' }, 'if-missing': { type: 'boolean' } });
  if (args.help) {
    process.stdout.write(INIT_HELP);
    return 0;
  }
  const config = await loadConfig(configPath(args));
  let identity: { peerId: string };
  let created = true;
  if (args['if-missing'] === true && (await stat(config.identityFile).then(() => true, () => false))) {
    identity = await loadIdentityFile(config.identityFile);
    created = false;
  } else {
    identity = await createIdentityFile(config.identityFile);
  }
  const multiaddrs = config.listen.map((m) => `${m}/p2p/${identity.peerId}`);
  if (args.json) process.stdout.write(`${JSON.stringify({ peerId: identity.peerId, multiaddrs, identityFile: config.identityFile, created })}\n`);
  else {
    process.stdout.write(
      `peer id:   ${identity.peerId}\n${multiaddrs.map((m) => `multiaddr: ${m}`).join('\n')}\nidentity:  ${config.identityFile} (mode 0600${created ? '' : ', already existed'})\n`,
    );
    if (config.listen.some((m) => m.includes('/0.0.0.0/') || m.includes('/::/'))) {
      process.stdout.write('note:      the listen address is a wildcard; in the committee file, use an address the other members can reach\n');
    }
  }
  return 0;
}

async function nodeStart(argv: string[]): Promise<CommandResult> {
  const args = parse(argv, { config: { type: 'string' } });
  if (args.help) {
    process.stdout.write(START_HELP);
    return 0;
  }
  warnEnvTypos();
  const config = await loadConfig(configPath(args));
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

async function nodeCheck(argv: string[]): Promise<CommandResult> {
  const args = parse(argv, { config: { type: 'string' }, json: { type: 'boolean' } });
  if (args.help) {
    process.stdout.write(CHECK_HELP);
    return 0;
  }
  warnEnvTypos();
  const problems: string[] = [];
  const notes: string[] = [];
  const message = (e: unknown): string => (e instanceof Error ? e.message : 'unexpected error');
  let config: NodeConfig | undefined;
  try {
    config = await loadConfig(configPath(args));
    notes.push('config: ok');
  } catch (e) {
    const list = isTkmsError(e) && Array.isArray(e.details?.problems) ? (e.details.problems as string[]) : [message(e)];
    problems.push(...list.map((p) => `config: ${p}`));
  }
  if (config !== undefined) {
    let committee;
    try {
      committee = await loadCommitteeFile(config.committeeFile);
      notes.push(`committee: ${committee.committeeId}, ${committee.t} of ${committee.members.length}`);
    } catch (e) {
      problems.push(message(e));
    }
    try {
      const identity = await loadIdentityFile(config.identityFile);
      const member = committee?.members.find((m) => m.peerId === identity.peerId);
      if (committee !== undefined && member === undefined) problems.push(`identity: peer id ${identity.peerId} is not a member of committee ${committee.committeeId}`);
      else notes.push(`identity: ${identity.peerId}${member ? ` (member ${member.id})` : ''}`);
    } catch (e) {
      problems.push(message(e));
    }
    try {
      const password = await resolveKeystorePassword(config);
      const hasKeystore = await stat(config.keystoreDir).then(() => true, () => false);
      if (hasKeystore) {
        const { Keystore } = await import('./keystore.ts');
        const ks = await Keystore.open(config.keystoreDir, password);
        notes.push(`keystore: unlocked, ${ks.list().length} key(s)`);
        ks.close();
      } else notes.push('keystore: none yet (created at first start)');
    } catch (e) {
      problems.push(`keystore: ${message(e)}`);
    }
  }
  if (args.json) process.stdout.write(`${JSON.stringify({ ok: problems.length === 0, problems, notes })}\n`);
  else {
    for (const n of notes) process.stdout.write(`ok       ${n}\n`);
    for (const p of problems) process.stdout.write(`PROBLEM  ${p}\n`);
  }
  return problems.length === 0 ? 0 : 1;
}

/** The admin URL of the node a config describes (a wildcard host is reached on loopback). */
function adminUrlFromConfig(config: NodeConfig): URL {
  let host = config.admin.host;
  if (host === '0.0.0.0') host = '127.0.0.1';
  if (host === '::') host = '::1';
  return new URL(`http://${host.includes(':') ? `[${host}]` : host}:${config.admin.port}`);
}

function healthUrlFromConfig(config: NodeConfig): URL {
  let host = config.http.host;
  if (host === '0.0.0.0') host = '127.0.0.1';
  if (host === '::') host = '::1';
  return new URL(`http://${host.includes(':') ? `[${host}]` : host}:${config.http.port}/health`);
}

function printStatus(s: NodeStatus): void {
  const short = (hex: string) => `${hex.slice(0, 16)}…`;
  const peers = s.peers.members.map((m) => `member ${m.id}: ${m.connected ? 'connected' : 'NOT connected'}`).join(', ');
  const last = s.lastDkg;
  const lastText =
    last === null
      ? 'none'
      : last.source === 'session'
        ? `${last.keyId}, completed ${last.completedAt ?? 'unknown'}${last.durationMs === null ? '' : ` in ${last.durationMs} ms`}`
        : `${last.keyId}, before this start (key file written ${last.completedAt ?? 'unknown'}, by the DKG or a restore)`;
  const lines = [
    `node:        member ${s.selfId}, peer id ${s.peerId}`,
    `version:     tkms ${s.version} (Node.js ${s.nodeVersion}), up ${s.uptimeSeconds} s since ${s.startedAt}`,
    `committee:   ${s.committee.committeeId}, ${s.committee.t} of ${s.committee.n}, fingerprint ${s.committee.fingerprint}`,
    `listen:      ${s.listen.join(', ')}`,
    `peers:       ${s.peers.connected} of ${s.peers.members.length} connected (${peers})`,
    `keys:        ${s.keys.length === 0 ? 'none' : `${s.keys.length}`}`,
    ...s.keys.map((k) => `  ${k.keyId}: public key ${short(k.publicKey)}, ${k.t} of ${k.n}, stored ${k.storedAt ?? 'unknown'}`),
    `last DKG:    ${lastText}`,
    `DKG sessions since start: ${Object.entries(s.dkgSessionsSinceStart).map(([k, v]) => `${v} ${k}`).join(', ')}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

async function nodeStatus(argv: string[]): Promise<CommandResult> {
  const args = parse(argv, { config: { type: 'string' }, admin: { type: 'string' }, json: { type: 'boolean' } });
  if (args.help) {
    process.stdout.write(STATUS_HELP);
    return 0;
  }
  const base = args.admin !== undefined ? adminUrl(args.admin) : adminUrlFromConfig(await loadConfig(configPath(args)));
  let res;
  try {
    res = await adminRequest(base, 'GET', '/admin/status');
  } catch (e) {
    if (isTkmsError(e, 'unavailable')) {
      throw new TkmsError('unavailable', `${e.message}: is the node running? (it answers a few seconds after "tkms node start"; see its log)`);
    }
    throw e;
  }
  if (res.status !== 200) throw adminError(res.json, res.status);
  if (args.json) process.stdout.write(`${JSON.stringify(res.json)}\n`);
  else printStatus(res.json as unknown as NodeStatus);
  return 0;
}

async function readPasswordFile(path: string, what: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new TkmsError('bad_request', `cannot read ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  const password = text.replace(/\r?\n$/, '');
  if (password.length === 0) throw new TkmsError('bad_request', `${what} ${path} is empty`);
  return password;
}

async function nodeBackup(argv: string[]): Promise<CommandResult> {
  const args = parse(argv, { config: { type: 'string' }, out: { type: 'string' }, json: { type: 'boolean' } });
  if (args.help) {
    process.stdout.write(BACKUP_HELP);
    return 0;
  }
  const out = requireString(args.out, '--out');
  const config = await loadConfig(configPath(args));
  const password = await resolveKeystorePassword(config);
  let committeeId: string | undefined;
  let memberId: number | undefined;
  try {
    const committee = await loadCommitteeFile(config.committeeFile);
    const identity = await loadIdentityFile(config.identityFile);
    committeeId = committee.committeeId;
    memberId = committee.members.find((m) => m.peerId === identity.peerId)?.id;
  } catch {
    // informational only; the backup itself does not need the committee
  }
  const backup = await createBackup({
    keystoreDir: config.keystoreDir,
    password,
    identityFile: config.identityFile,
    ...(committeeId !== undefined ? { committeeId } : {}),
    ...(memberId !== undefined ? { memberId } : {}),
  });
  await writeBackupFile(out, backup.bytes);
  if (args.json) process.stdout.write(`${JSON.stringify({ file: out, peerId: backup.peerId, keys: backup.keyIds })}\n`);
  else {
    process.stdout.write(
      `backup:    ${out} (mode 0600)\npeer id:   ${backup.peerId}\nkeys:      ${backup.keyIds.length === 0 ? 'none' : backup.keyIds.join(', ')}\n` +
        'encrypted: under the keystore password; keep that password, separately from the file\n',
    );
  }
  return 0;
}

async function nodeRestore(argv: string[]): Promise<CommandResult> {
  const args = parse(argv, { config: { type: 'string' }, in: { type: 'string' }, 'backup-password-file': { type: 'string' }, json: { type: 'boolean' } });
  if (args.help) {
    process.stdout.write(RESTORE_HELP);
    return 0;
  }
  const file = requireString(args.in, '--in');
  const config = await loadConfig(configPath(args));
  const health = healthUrlFromConfig(config);
  const running = await fetch(health, { signal: AbortSignal.timeout(1_000) }).then(
    () => true,
    () => false,
  );
  if (running) throw new TkmsError('conflict', `something answers on ${health.origin} (this node's health address): stop the node before restoring`);
  const keystorePassword = await resolveKeystorePassword(config);
  let backupPassword = keystorePassword;
  if (typeof args['backup-password-file'] === 'string') backupPassword = await readPasswordFile(args['backup-password-file'], 'backup password file');
  else if (process.env.TKMS_BACKUP_PASSWORD) backupPassword = process.env.TKMS_BACKUP_PASSWORD;
  const result = await restoreBackup({ backupFile: file, backupPassword, keystoreDir: config.keystoreDir, keystorePassword, identityFile: config.identityFile });
  if (args.json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else {
    process.stdout.write(
      `restored:  ${result.restored.length === 0 ? 'no keys' : result.restored.join(', ')} into ${config.keystoreDir}\n` +
        `identity:  ${result.peerId} (${result.identity === 'installed' ? `installed at ${config.identityFile}` : 'already in place'})\n`,
    );
  }
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
  if (status.errorCode !== undefined) lines.push(`error code:  ${String(status.errorCode)}`);
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
  return dispatch('node', NODE_HELP, { init: nodeInit, start: nodeStart, check: nodeCheck, status: nodeStatus, backup: nodeBackup, restore: nodeRestore }, argv);
}

export function runDkgCommand(argv: string[]): Promise<CommandResult> {
  return dispatch('dkg', DKG_HELP, { start: dkgStart, status: dkgStatus }, argv);
}
