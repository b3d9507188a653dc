import { readFile, stat } from 'node:fs/promises';
import { ERROR_CODES, isTkmsError, TkmsError, type ErrorCode } from '../core/index.ts';
import { envTypos } from '../config/env.ts';
import { loadCommitteeFile } from '../net/committee.ts';
import { errorLine, stopSignal, UsageError, warningLine, type CommandRun, type TkmsCommand } from '../scripts/cli/command.ts';
import { readPasswordFile } from '../scripts/cli/password.ts';
import type { NodeConfigOption } from './cli.ts';
import { ENV_OVERRIDES, loadConfig, NODE_ENV_VARS, resolveKeystorePassword, type NodeConfig } from './config.ts';
import { createIdentityFile, loadIdentityFile } from './identity.ts';
import { createBackup, restoreBackup, writeBackupFile } from './keystore-backup.ts';
import { dkgStateDir } from './dkg-state.ts';
import type { ReshareStatus } from './epoch-types.ts';
import type { NodeStatus } from './status.ts';
import { createLogger } from '../runtime/logger.ts';
import { ServiceRunner } from '../runtime/lifecycle.ts';

/** What the commands declared in node/cli.ts do. */

/** --config (or TKMS_CONFIG), else undefined: configured by the environment alone. */
function configPath(opts: NodeConfigOption, command: TkmsCommand): string | undefined {
  const fromEnv = command.getOptionValueSource('config') === 'env';
  if (opts.config !== undefined && opts.config !== '') return opts.config;
  if (opts.config === '' && !fromEnv) throw new UsageError('--config must name a file');
  // Configuring by environment alone is deliberate: at least one config variable must be set.
  if (!Object.keys(ENV_OVERRIDES).some((name) => (process.env[name] ?? '') !== '')) {
    throw new UsageError('--config is required (or set TKMS_CONFIG, or configure the node with TKMS_* environment variables)');
  }
  return undefined;
}

/** Warns on stderr about TKMS_* variables that look like misspelt config variables. */
function warnEnvTypos(command: TkmsCommand): void {
  for (const line of envTypos(process.env, [...NODE_ENV_VARS, 'TKMS_BACKUP_PASSWORD'])) process.stderr.write(warningLine(command.path, line));
}

export const nodeInit: CommandRun<NodeConfigOption & { ifMissing?: true; json?: true }> = async (args, command) => {
  const config = await loadConfig(configPath(args, command));
  let identity: { peerId: string };
  let created = true;
  if (args.ifMissing === true && (await stat(config.identityFile).then(() => true, () => false))) {
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
};

export const nodeStart: CommandRun<NodeConfigOption> = async (args, command) => {
  warnEnvTypos(command);
  const config = await loadConfig(configPath(args, command));
  // Loaded lazily: libp2p must not load before the polyfills the entry point installed.
  const { startNode } = await import('./daemon.ts');
  const node = await startNode(config);
  node.log.info({ signal: await stopSignal() }, 'signal received');
  await node.stop();
  return 0;
};

export const nodeCheck: CommandRun<NodeConfigOption & { json?: true }> = async (args, command) => {
  warnEnvTypos(command);
  const problems: string[] = [];
  const notes: string[] = [];
  const message = (e: unknown): string => (e instanceof Error ? e.message : 'unexpected error');
  let config: NodeConfig | undefined;
  try {
    config = await loadConfig(configPath(args, command));
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
    // What start checks before serving a partial: a chain it cannot read stops the node there.
    if (config.acl.mode !== 'signed') {
      try {
        notes.push(await checkChainAcl(config));
      } catch (e) {
        problems.push(`chain acl: ${message(e)}`);
      }
    } else if (config.acl.chain !== undefined) notes.push('chain acl: acl.chain is set but ignored (acl.mode is "signed")');
  }
  if (args.json) process.stdout.write(`${JSON.stringify({ ok: problems.length === 0, problems, notes })}\n`);
  else {
    for (const n of notes) process.stdout.write(`ok       ${n}\n`);
    for (const p of problems) process.stdout.write(`PROBLEM  ${p}\n`);
  }
  return problems.length === 0 ? 0 : 1;
};

/** Starts the on-chain ACL reader as the daemon does (chain id, contract code, version), reads the head once, stops it. */
async function checkChainAcl(config: NodeConfig): Promise<string> {
  const chain = config.acl.chain;
  if (chain === undefined) throw new TkmsError('bad_request', `acl.mode is ${config.acl.mode} but acl.chain is not configured`);
  const { openChainAcl } = await import('../chain/open-chain-acl.ts');
  const log = createLogger('silent');
  const services = new ServiceRunner({ log });
  const noMetrics = { call: () => undefined, head: () => undefined, cache: () => undefined };
  try {
    const opened = await openChainAcl(config.acl, { services, metrics: noMetrics, log });
    const head = await opened.chain?.head();
    return `chain acl: chain ${chain.chainId}, contract ${chain.contract} (code and version ok)${head === undefined ? '' : `, head block ${head.block}, ${Math.round(head.ageSeconds)} s old`}`;
  } finally {
    await services.stop();
  }
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

/** What GET /admin/status adds once nodes have epochs: the committee served (its epoch, n and t). */
type EpochStatus = { epoch?: number | { epoch: number; n: number; t: number } };

function epochLine(e: EpochStatus['epoch']): string[] {
  if (e === undefined) return [];
  if (typeof e === 'number') return [`epoch:       ${e}`];
  return [`epoch:       ${e.epoch} (the committee served: ${e.t} of ${e.n})`];
}

function printStatus(s: NodeStatus & EpochStatus): void {
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
    ...epochLine(s.epoch),
    `listen:      ${s.listen.join(', ')}`,
    `peers:       ${s.peers.connected} of ${s.peers.members.length} connected (${peers})`,
    `keys:        ${s.keys.length === 0 ? 'none' : `${s.keys.length}`}`,
    ...s.keys.map((k) => `  ${k.keyId}: public key ${short(k.publicKey)}, ${k.t} of ${k.n}, stored ${k.storedAt ?? 'unknown'}`),
    `last DKG:    ${lastText}`,
    `DKG sessions since start: ${Object.entries(s.dkgSessionsSinceStart).map(([k, v]) => `${v} ${k}`).join(', ')}`,
    `grants:      acl.mode ${s.acl?.mode ?? 'signed'}${s.acl?.head ? `, chain head ${s.acl.head.block} (${Math.round(s.acl.head.ageSeconds)} s old)` : s.acl?.head === null ? `, chain head unreadable: ${s.acl.headError ?? 'unknown'}` : ''}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

type AdminArgs = NodeConfigOption & { admin?: URL };

/** --admin, else the admin address of the node's config. */
async function adminBase(args: AdminArgs, command: TkmsCommand): Promise<URL> {
  return args.admin ?? adminUrlFromConfig(await loadConfig(configPath(args, command)));
}

/** adminRequest, with the hint an operator needs when the node does not answer at all. */
async function askNode(base: URL, method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
  try {
    return await adminRequest(base, method, path, body);
  } catch (e) {
    if (isTkmsError(e, 'unavailable')) {
      throw new TkmsError('unavailable', `${e.message}: is the node running? (it answers a few seconds after "tkms node start"; see its log)`);
    }
    throw e;
  }
}

export const nodeStatus: CommandRun<AdminArgs & { json?: true }> = async (args, command) => {
  const base = await adminBase(args, command);
  const res = await askNode(base, 'GET', '/admin/status');
  if (res.status !== 200) throw adminError(res.json, res.status);
  // A node older than committee changes has no /admin/reshare: its status is printed without it.
  const reshare = await askNode(base, 'GET', '/admin/reshare');
  const changes = reshare.status === 200 ? (reshare.json as unknown as ReshareOverview) : undefined;
  if (args.json) process.stdout.write(`${JSON.stringify(changes === undefined ? res.json : { ...res.json, reshare: changes })}\n`);
  else {
    printStatus(res.json as unknown as NodeStatus & EpochStatus);
    if (changes !== undefined) printReshareOverview(changes);
  }
  return 0;
};

/** GET /admin/reshare (node/epoch-types.ts). */
interface ReshareOverview {
  epoch: number;
  handovers: number;
  proposals: ReshareStatus[];
}

function printReshareOverview(o: ReshareOverview): void {
  const open = o.proposals.filter((p) => p.status !== 'done' && p.status !== 'cancelled');
  const done = o.proposals.filter((p) => p.status === 'done');
  const lines = [`handovers:   ${o.handovers} (committee changes this node took part in or followed)`];
  if (done.length > 0) {
    const last = done[done.length - 1]!;
    lines.push(`last change: ${last.kind} ${last.proposalId.slice(0, 16)}…, epoch ${last.fromEpoch} → ${last.toEpoch}${last.durationMs === null ? '' : `, ${last.durationMs} ms`}`);
  }
  lines.push(`changes:     ${open.length === 0 ? 'none pending' : `${open.length} pending`}`);
  for (const p of open) {
    const since = p.startedAt === null ? '' : `, since ${p.startedAt}`;
    const detail = p.status === 'failed' ? `: ${p.failureReason ?? 'no reason given'}` : p.status === 'running' ? ` (phase ${p.phase}, attempt ${p.attempt}${since})` : ' (waiting for t approvals)';
    lines.push(`  ${p.proposalId} ${p.kind}, epoch ${p.fromEpoch} → ${p.toEpoch}: ${p.status.toUpperCase()}${detail}`);
    const dq = Object.entries(p.disqualified);
    if (dq.length > 0) lines.push(`    disqualified: ${dq.map(([id, why]) => `member ${id} (${why})`).join(', ')}`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
}

/** What approve and refresh answer (202): the proposal, its kind, its status on this node. */
function printAccepted(answer: Record<string, unknown>, extra: string[], asJson: boolean): void {
  if (asJson) {
    process.stdout.write(`${JSON.stringify(answer)}\n`);
    return;
  }
  const lines = [`proposal:    ${String(answer.proposalId)}`, `kind:        ${String(answer.kind)}`, `status:      ${String(answer.status)}`, ...extra];
  process.stdout.write(`${lines.join('\n')}\n`);
}

export const nodeApprove: CommandRun<AdminArgs & { json?: true }> = async (args, command) => {
  const file = command.processedArgs[0] as string;
  const { parseReshareProposal } = await import('../core/ceremony/proposal.ts');
  const { libp2pCommitteeDecoders } = await import('../net/committee.ts');
  const { describeChange, proposalIdHex, sameProposalId, summarizeChange } = await import('../deploy/committee-change.ts');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new TkmsError('bad_request', `cannot read proposal file ${file}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new TkmsError('bad_request', `${file} is not JSON (a proposal file from "tkms committee propose-reshare")`);
  }
  // Checked here first, as the node will: a wrong file is named before anything is sent.
  const proposal = parseReshareProposal(body, libp2pCommitteeDecoders);
  const id = proposalIdHex(proposal);
  const base = await adminBase(args, command);
  const res = await askNode(base, 'POST', '/admin/reshare/approve', body);
  if (res.status !== 202 && res.status !== 200) throw adminError(res.json, res.status);
  if (typeof res.json.proposalId !== 'string' || !sameProposalId(res.json.proposalId, id)) {
    throw new TkmsError('internal', `the node approved proposal ${String(res.json.proposalId)}, but ${file} has id ${id}`);
  }
  printAccepted(res.json, [...describeChange(summarizeChange(proposal.from, proposal.to)), `keys:        ${proposal.keyIds.join(', ')}`], args.json === true);
  return 0;
};

const PROPOSAL_ID = /^(0x)?[0-9a-fA-F]{64}$/;

export const nodeCancelReshare: CommandRun<AdminArgs & { json?: true }> = async (args, command) => {
  const typed = command.processedArgs[0] as string;
  if (!PROPOSAL_ID.test(typed)) throw new UsageError(`"${typed}" is not a proposal id (0x and 64 hex digits, as "tkms node approve" and "tkms node status" print it)`);
  const { canonicalProposalId } = await import('../deploy/committee-change.ts');
  const proposalId = canonicalProposalId(typed);
  const res = await askNode(await adminBase(args, command), 'POST', '/admin/reshare/cancel', { proposalId });
  if (res.status !== 200) throw adminError(res.json, res.status);
  if (args.json) process.stdout.write(`${JSON.stringify(res.json)}\n`);
  else process.stdout.write(`proposal:    ${String(res.json.proposalId)}\nstatus:      ${String(res.json.status)}\n`);
  return 0;
};

export const nodeRefresh: CommandRun<AdminArgs & { json?: true }> = async (args, command) => {
  const res = await askNode(await adminBase(args, command), 'POST', '/admin/refresh', {});
  if (res.status !== 202 && res.status !== 200) throw adminError(res.json, res.status);
  printAccepted(res.json, ['progress:    tkms node status (every member runs the refresh; the epoch moves up by one when it completes)'], args.json === true);
  return 0;
};

export const nodeBackup: CommandRun<NodeConfigOption & { out: string; json?: true }> = async (args, command) => {
  const out = args.out;
  const config = await loadConfig(configPath(args, command));
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
    dkgStateDir: dkgStateDir(config.stateDir),
    password,
    identityFile: config.identityFile,
    ...(committeeId !== undefined ? { committeeId } : {}),
    ...(memberId !== undefined ? { memberId } : {}),
  });
  await writeBackupFile(out, backup.bytes);
  if (args.json) process.stdout.write(`${JSON.stringify({ file: out, peerId: backup.peerId, keys: backup.keyIds, keysWithoutShare: backup.keyIdsWithoutShare })}\n`);
  else {
    process.stdout.write(
      `backup:    ${out} (mode 0600)\npeer id:   ${backup.peerId}\nkeys:      ${backup.keyIds.length === 0 ? 'none' : backup.keyIds.join(', ')}\n` +
        (backup.keyIdsWithoutShare.length === 0 ? '' : `keys held without a share: ${backup.keyIdsWithoutShare.join(', ')}\n`) +
        'encrypted: under the keystore password; keep that password, separately from the file\n',
    );
  }
  return 0;
};

export const nodeRestore: CommandRun<NodeConfigOption & { in: string; backupPasswordFile?: string; json?: true }> = async (args, command) => {
  const file = args.in;
  const config = await loadConfig(configPath(args, command));
  const health = healthUrlFromConfig(config);
  const running = await fetch(health, { signal: AbortSignal.timeout(1_000) }).then(
    () => true,
    () => false,
  );
  if (running) throw new TkmsError('conflict', `something answers on ${health.origin} (this node's health address): stop the node before restoring`);
  const keystorePassword = await resolveKeystorePassword(config);
  let backupPassword = keystorePassword;
  if (args.backupPasswordFile !== undefined) backupPassword = await readPasswordFile(args.backupPasswordFile, 'backup password file');
  else if (process.env.TKMS_BACKUP_PASSWORD) backupPassword = process.env.TKMS_BACKUP_PASSWORD;
  const result = await restoreBackup({ backupFile: file, backupPassword, keystoreDir: config.keystoreDir, dkgStateDir: dkgStateDir(config.stateDir), keystorePassword, identityFile: config.identityFile });
  if (args.json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else {
    process.stdout.write(
      `restored:  ${result.restored.length === 0 ? 'no keys' : result.restored.join(', ')} into ${config.keystoreDir}\n` +
        `identity:  ${result.peerId} (${result.identity === 'installed' ? `installed at ${config.identityFile}` : 'already in place'})\n` +
        (result.ceremonySeed === 'kept' ? 'ceremony seed: the keystore already held another one, kept (a reshare in flight completes without this node)\n' : '') +
        voteLocksLine(result.voteLocks, result.backupVersion) +
        dkgPublicResultsLine(result.dkgPublicResults, result.backupVersion),
    );
  }
  return 0;
};

function voteLocksLine(locks: Awaited<ReturnType<typeof restoreBackup>>['voteLocks'], version: number): string {
  if (locks === null) {
    return (
      `vote locks: none (a version ${version} backup carries none): this node may vote again in a DKG or reshare it had voted in;\n` +
      '            start it only once every ceremony in flight when the backup was made has ended (docs/operators.md, "Backups made before a change")\n'
    );
  }
  const ids = locks.dkgKeyIds;
  const dkg = ids.length === 0 ? 'no DKG votes' : `DKG votes for ${ids.slice(0, 10).join(', ')}${ids.length > 10 ? ` and ${ids.length - 10} more key ids` : ''}`;
  return `vote locks: ${dkg}; ${locks.reshareProposalIds.length} reshare vote(s), ${locks.approvalRecords} approval record(s)\n`;
}

function dkgPublicResultsLine(keyIds: string[] | null, version: number): string {
  if (keyIds === null) return `keys held without a share: none (a version ${version} backup carries none): this node no longer knows keys it held no share of\n`;
  if (keyIds.length === 0) return '';
  return `keys held without a share: ${keyIds.slice(0, 10).join(', ')}${keyIds.length > 10 ? ` and ${keyIds.length - 10} more` : ''}\n`;
}

/** One admin API call: JSON in and out, 10 s bound; an unreachable node is `unavailable`. */
export async function adminRequest(base: URL, method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; json: Record<string, unknown> }> {
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

/** The node's error answer as a TkmsError with the node's code (bad_request when it names none we know). */
export function adminError(json: Record<string, unknown>, status: number): TkmsError {
  const error = json.error as { code?: unknown; message?: unknown } | undefined;
  const message = typeof error?.message === 'string' ? error.message : `admin endpoint answered HTTP ${status}`;
  const code = typeof error?.code === 'string' && Object.hasOwn(ERROR_CODES, error.code) ? (error.code as ErrorCode) : 'bad_request';
  return new TkmsError(code, message);
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
  if (status.share === false) lines.push('share:       none here (this node missed the hello or a sub-share): it serves no partials for this key');
  const dq = status.disqualified as Record<string, string> | undefined;
  if (dq !== undefined && Object.keys(dq).length > 0) lines.push(`disqualified: ${JSON.stringify(dq)}`);
  if (status.errorCode !== undefined) lines.push(`error code:  ${String(status.errorCode)}`);
  if (status.abortReason !== undefined) lines.push(`abort reason: ${String(status.abortReason)}`);
  process.stdout.write(`${lines.join('\n')}\n`);
}

export const dkgStart: CommandRun<{ key: string; admin: URL; timeout: number; json?: true }> = async (args, command) => {
  const keyId = args.key;
  const base = args.admin;
  const timeoutS = args.timeout;
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
    const code = typeof status.errorCode === 'string' ? status.errorCode : 'dkg_failed';
    process.stderr.write(errorLine(command.path, code, `DKG for ${keyId} aborted: ${String(status.abortReason)}`));
    return 1;
  }
  return 0;
};

export const dkgStatus: CommandRun<{ key: string; admin: URL; json?: true }> = async (args) => {
  const keyId = args.key;
  const res = await adminRequest(args.admin, 'GET', `/admin/dkg/${encodeURIComponent(keyId)}`);
  if (res.status !== 200) throw adminError(res.json, res.status);
  printOutcome(res.json, args.json === true);
  return res.json.status === 'aborted' ? 1 : 0;
};

