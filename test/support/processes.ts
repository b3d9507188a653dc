import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePorts, getJson } from '../../deploy/devnet.ts';

/**
 * Helpers for integration tests and benchmarks that run REAL tkms processes on loopback:
 * spawn and stop processes, find free ports, poll endpoints, and lay out a node committee.
 */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** The tkms CLI spawned: bin/tkms.js, or under `npm test` the same sources bundled (cli-bundle.ts). */
export let TKMS_BIN = join(REPO_ROOT, 'bin/tkms.js');

export function useTkmsBin(path: string): void {
  TKMS_BIN = path;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export class ManagedProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<ExitInfo>;
  private stdoutText = '';
  private stderrText = '';
  private exitInfo: ExitInfo | undefined;

  constructor(
    readonly name: string,
    args: string[],
    opts: { env?: Record<string, string | undefined>; cwd?: string } = {},
  ) {
    // TKMS_TEST_NODE_FLAGS (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof") profiles child processes.
    const flags = (process.env.TKMS_TEST_NODE_FLAGS ?? '').split(' ').filter((f) => f.length > 0);
    this.child = spawn(process.execPath, [...flags, ...args], {
      cwd: opts.cwd ?? REPO_ROOT,
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      this.stdoutText += d;
    });
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      this.stderrText += d;
    });
    this.exited = new Promise((resolveExit) => {
      this.child.once('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        resolveExit(this.exitInfo);
      });
    });
  }

  get stdout(): string {
    return this.stdoutText;
  }

  get stderr(): string {
    return this.stderrText;
  }

  get running(): boolean {
    return this.exitInfo === undefined;
  }

  /** Parsed JSON log lines from stdout (non-JSON lines skipped). */
  logLines(): Record<string, unknown>[] {
    const out: Record<string, unknown>[] = [];
    for (const line of this.stdoutText.split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        out.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // partial line at the end of the buffer
      }
    }
    return out;
  }

  /** Sends `signal`; after `graceMs` without exit, SIGKILL. Resolves when the process is gone. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 5_000): Promise<ExitInfo> {
    if (this.exitInfo !== undefined) return this.exitInfo;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Runs `node bin/tkms.js …` to completion (bounded by timeoutMs). */
export async function runTkms(args: string[], opts: { env?: Record<string, string | undefined>; timeoutMs?: number } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = new ManagedProcess(`tkms ${args.join(' ')}`, [TKMS_BIN, ...args], { env: opts.env ?? {} });
  const timer = setTimeout(() => p.child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
  const info = await p.exited;
  clearTimeout(timer);
  return { code: info.code, stdout: p.stdout, stderr: p.stderr };
}

export async function stopAll(processes: Iterable<ManagedProcess>, graceMs = 5_000): Promise<void> {
  await Promise.all([...processes].map((p) => p.stop('SIGTERM', graceMs)));
}

export { freePorts, getJson };

export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined> | T | undefined,
  opts: { timeoutMs?: number; intervalMs?: number; signal?: AbortSignal } = {},
): Promise<T> {
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  let lastError: unknown;
  for (;;) {
    if (opts.signal?.aborted) throw new Error(`gave up waiting for ${what}`);
    try {
      const v = await fn();
      if (v !== undefined) return v;
    } catch (e) {
      lastError = e;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}${lastError instanceof Error ? ` (last error: ${lastError.message})` : ''}`);
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 100));
  }
}

export async function makeTempDir(prefix: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `${prefix}-`));
}

export async function removeDir(dir: string | undefined): Promise<void> {
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
}

// ---------------------------------------------------------------------------------------
// A committee of tkms node processes on 127.0.0.1.

export interface ClusterNode {
  id: number;
  dir: string;
  configPath: string;
  p2pPort: number;
  httpPort: number;
  adminPort: number;
  peerId: string;
  httpUrl: string;
  adminUrl: string;
  keystoreDir: string;
  process: ManagedProcess | undefined;
}

export interface ClusterOptions {
  n: number;
  t: number;
  rootDir: string;
  committeeId?: string;
  phaseTimeoutMs?: number;
  /** testFaults per member id (enables TKMS_ENABLE_TEST_FAULTS for those processes). */
  faults?: Record<number, Record<string, unknown>>;
  logLevel?: string;
  /** Peer ids the nodes accept as gateways (revocation pushes on /tkms/acl/1). */
  gatewayPeerIds?: string[];
}

export const CLUSTER_PASSWORD = 'integration-test-password';

export class NodeCluster {
  readonly nodes: ClusterNode[] = [];

  private constructor(readonly options: ClusterOptions) {}

  /** Writes configs, runs `tkms node init` for each member and writes the committee file. */
  static async prepare(options: ClusterOptions): Promise<NodeCluster> {
    const cluster = new NodeCluster(options);
    const committeePath = join(options.rootDir, 'committee.json');
    await cluster.addMembers(Array.from({ length: options.n }, (_, i) => i + 1), 'committee.json');
    const committee = {
      committeeId: options.committeeId ?? 'test-committee',
      t: options.t,
      members: cluster.nodes.map((node) => ({ id: node.id, peerId: node.peerId, multiaddrs: [`/ip4/127.0.0.1/tcp/${node.p2pPort}`] })),
    };
    await writeFile(committeePath, JSON.stringify(committee, null, 2));
    return cluster;
  }

  /**
   * Lays out more nodes (config, identity via `tkms node init`, ports) whose config names
   * `committeeFile` (a file name in rootDir, e.g. the next epoch's committee file for members that
   * join in a reshare). Nothing is started; the caller writes that committee file.
   */
  async addMembers(ids: number[], committeeFile: string): Promise<ClusterNode[]> {
    const options = this.options;
    const ports = await freePorts(ids.length * 3);
    const added: ClusterNode[] = [];
    for (const [i, id] of ids.entries()) {
      if (this.nodes.some((n) => n.id === id)) throw new Error(`node ${id} already exists`);
      const dir = join(options.rootDir, `node${id}`);
      await mkdir(dir, { recursive: true });
      const [p2pPort, httpPort, adminPort] = ports.slice(i * 3, i * 3 + 3) as [number, number, number];
      const config: Record<string, unknown> = {
        listen: `/ip4/127.0.0.1/tcp/${p2pPort}`,
        http: `127.0.0.1:${httpPort}`,
        admin: `127.0.0.1:${adminPort}`,
        identityFile: 'identity.json',
        keystoreDir: 'keystore',
        committeeFile: `../${committeeFile}`,
        dkg: { phaseTimeoutMs: options.phaseTimeoutMs ?? 5_000 },
        // Tests and benchmarks refresh back to back; a deployment keeps the 60 s default.
        reshare: { minRefreshSpacingSeconds: 0 },
        logLevel: options.logLevel ?? 'info',
        ...(options.gatewayPeerIds !== undefined ? { gatewayPeerIds: options.gatewayPeerIds } : {}),
      };
      const faults = options.faults?.[id];
      if (faults !== undefined) config.testFaults = faults;
      const configPath = join(dir, 'config.json');
      await writeFile(configPath, JSON.stringify(config, null, 2));
      added.push({
        id,
        dir,
        configPath,
        p2pPort,
        httpPort,
        adminPort,
        peerId: '',
        httpUrl: `http://127.0.0.1:${httpPort}`,
        adminUrl: `http://127.0.0.1:${adminPort}`,
        keystoreDir: join(dir, 'keystore'),
        process: undefined,
      });
    }
    this.nodes.push(...added);
    // What `tkms node init` does (its own tests run the command: node-cli, operations), in this
    // process: a CLI process per member cost about a second of CPU each, on every cluster.
    const { loadConfig } = await import('../../node/config.ts');
    const { createIdentityFile } = await import('../../node/identity.ts');
    for (const node of added) {
      const config = await loadConfig(node.configPath, this.envFor(node.id));
      node.peerId = (await createIdentityFile(config.identityFile)).peerId;
    }
    return added;
  }

  /** The committee file the cluster was prepared with (epoch 0). */
  get committeePath(): string {
    return join(this.options.rootDir, 'committee.json');
  }

  /**
   * Writes the next committee file (epoch + 1 of `fromFile`, in rootDir) with these members added
   * (already laid out with addMembers) and removed, and the proposal for `keyIds`; returns the
   * proposal's JSON (what each operator approves) and its id.
   */
  async writeReshare(opts: { fromFile?: string; toFile: string; add?: number[]; remove?: number[]; t?: number; keyIds: string[] }): Promise<{ proposal: unknown; proposalId: string; toEpoch: number }> {
    const { buildProposal, committeeFileText, nextCommittee, proposalFileText, proposalIdHex } = await import('../../deploy/committee-change.ts');
    const { loadCommitteeFile } = await import('../../net/committee.ts');
    const fromPath = join(this.options.rootDir, opts.fromFile ?? 'committee.json');
    const from = await loadCommitteeFile(fromPath);
    const to = nextCommittee(from, {
      add: (opts.add ?? []).map((id) => {
        const n = this.node(id);
        return { id, peerId: n.peerId, multiaddrs: [`/ip4/127.0.0.1/tcp/${n.p2pPort}`] };
      }),
      remove: opts.remove ?? [],
      ...(opts.t !== undefined ? { t: opts.t } : {}),
    });
    await writeFile(join(this.options.rootDir, opts.toFile), committeeFileText(to));
    const proposal = buildProposal(JSON.parse(await readFile(fromPath, 'utf8')), JSON.parse(committeeFileText(to)), opts.keyIds);
    return { proposal: JSON.parse(proposalFileText(proposal)), proposalId: proposalIdHex(proposal), toEpoch: to.epoch };
  }

  /**
   * Each node's operator approves the proposal on its own admin API (POST /admin/reshare/approve),
   * the members in `joining` first (they must be past "preparing" before the others deal).
   */
  async approve(proposal: unknown, ids: number[] = this.nodes.map((n) => n.id), joining: number[] = []): Promise<void> {
    const { approveEverywhere } = await import('../../deploy/reshare-driver.ts');
    await approveEverywhere(ids.map((id) => this.node(id)), proposal, joining);
  }

  /** Resolves once every node in `ids` serves `epoch` (GET /admin/reshare); ms after the call each got there. */
  async waitEpoch(epoch: number, ids: number[] = this.nodes.map((n) => n.id), timeoutMs = 120_000): Promise<Map<number, number>> {
    const { waitForEpoch } = await import('../../deploy/reshare-driver.ts');
    return waitForEpoch(ids.map((id) => this.node(id)), epoch, { timeoutMs });
  }

  node(id: number): ClusterNode {
    const node = this.nodes.find((n) => n.id === id);
    if (node === undefined) throw new Error(`no node ${id}`);
    return node;
  }

  envFor(id: number, extra: Record<string, string | undefined> = {}): Record<string, string | undefined> {
    return {
      TKMS_KEYSTORE_PASSWORD: CLUSTER_PASSWORD,
      ...(this.options.faults?.[id] !== undefined ? { TKMS_ENABLE_TEST_FAULTS: '1' } : {}),
      ...extra,
    };
  }

  /** Spawns `tkms node start` for a member; resolves once its HTTP listener answers. */
  async start(id: number, extraEnv: Record<string, string | undefined> = {}): Promise<ManagedProcess> {
    const node = this.node(id);
    const p = new ManagedProcess(`node${id}`, [TKMS_BIN, 'node', 'start', '--config', node.configPath], { env: this.envFor(id, extraEnv) });
    node.process = p;
    const giveUp = new AbortController();
    const listening = waitFor(
      `node ${id} HTTP listener`,
      async () => ((await getJson(`${node.httpUrl}/health`).catch(() => undefined)) === undefined ? undefined : true),
      { timeoutMs: 60_000, intervalMs: 100, signal: giveUp.signal },
    );
    const exitedEarly = p.exited.then((info) => {
      giveUp.abort();
      throw new Error(`node ${id} exited early (code ${info.code}, signal ${info.signal}): ${p.stderr.slice(-2000)}`);
    });
    try {
      await Promise.race([listening, exitedEarly]);
    } catch (e) {
      await p.stop('SIGKILL');
      throw e;
    } finally {
      exitedEarly.catch(() => undefined);
      listening.catch(() => undefined);
    }
    return p;
  }

  async startAll(ids: number[] = this.nodes.map((n) => n.id)): Promise<void> {
    await Promise.all(ids.map((id) => this.start(id)));
  }

  async waitHealthy(ids: number[], timeoutMs = 30_000): Promise<void> {
    await Promise.all(
      ids.map((id) =>
        waitFor(`node ${id} healthy`, async () => ((await getJson(`${this.node(id).httpUrl}/health`)).status === 200 ? true : undefined), { timeoutMs }),
      ),
    );
  }

  async stopAll(): Promise<void> {
    await stopAll(this.nodes.map((n) => n.process).filter((p): p is ManagedProcess => p !== undefined));
  }
}
