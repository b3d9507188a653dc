import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AnvilChain } from '../chain/anvil.ts';
import { loadCommitteeFile, memberKeysHex, pinnedClientOptions } from '../net/committee.ts';
import { loadOrCreateIdentityFile } from '../node/identity.ts';
import { TkmsError } from '../core/errors.ts';
import { devnetChainEndpoint, fundDevnetAccount, startDevnetChain, type DevnetChainEndpoint } from './devnet-chain.ts';
import { completeChange } from './devnet-change.ts';
import { createLayout, planChange, writeConfigs, type DevnetOptions, type Layout } from './devnet-layout.ts';
import { freePorts, getJson, until } from './devnet-loopback.ts';

// Many tests and tools import these with the Devnet.
export { freePorts, getJson } from './devnet-loopback.ts';

/**
 * A local network on loopback: n node daemons and a gateway as separate processes, each
 * with its own config, identity, keystore and log file under one directory, plus a DKG for
 * one key. The same layout an operator would write by hand (see docs), generated.
 * Re-running against an existing directory restarts the same network with its keys.
 */
const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
let tkmsBin = join(REPO_ROOT, 'bin/tkms.js');

/** The tkms entry point devnets of this process spawn; `npm test` points it at the CLI bundled once (test/support/cli-bundle.ts). */
export function useDevnetTkmsBin(path: string): void {
  tkmsBin = path;
}

export interface DevnetNode {
  id: number;
  dir: string;
  configPath: string;
  httpUrl: string;
  adminUrl: string;
  peerId: string;
  process: ChildProcess | undefined;
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

export class Devnet {
  readonly nodes: DevnetNode[] = [];
  gatewayUrl = '';
  private gateway: ChildProcess | undefined;
  private readonly logs: WriteStream[] = [];
  private readonly exits = new Map<ChildProcess, string>();
  private anvil: AnvilChain | undefined;

  private constructor(
    readonly options: DevnetOptions,
    readonly layout: Layout,
  ) {}

  get dir(): string {
    return this.options.dir;
  }

  get keyId(): string {
    return this.layout.keyId;
  }

  /** What every signature for this devnet is bound to (random per devnet, so two never share it). */
  get deployment(): { committeeId: string } {
    return { committeeId: this.layout.committeeId };
  }

  get t(): number {
    return this.layout.t;
  }

  get n(): number {
    return this.layout.n;
  }

  /** The epoch of the committee the devnet serves (0 until a reshare or refresh completed). */
  get epoch(): number {
    return this.layout.epoch ?? 0;
  }

  /** The current committee file (committee.json, the one clients pin, stays the epoch-0 file). */
  get committeeFile(): string {
    return join(this.options.dir, this.layout.committeeFile ?? 'committee.json');
  }

  /** Members of the current committee (during a change, the nodes that join are in `nodes` but not here). */
  private get members(): DevnetNode[] {
    return this.nodes.filter((n) => this.layout.nodes.some((m) => m.id === n.id));
  }

  /** The gateway's process (tests check it is still running). */
  get gatewayProcess(): ChildProcess | undefined {
    return this.gateway;
  }

  /** The chain's RPC URL, chain id, contract and deployment block; undefined without a chain. */
  get chain(): DevnetChainEndpoint | undefined {
    return this.layout.chain === undefined ? undefined : devnetChainEndpoint(this.layout.chain);
  }

  /** Gives `address` `eth` ETH on the devnet's chain (its balance is set, not added to). */
  async fund(address: string, eth = '100'): Promise<bigint> {
    const chain = this.chain;
    if (chain === undefined) throw new TkmsError('not_found', 'this devnet has no chain (start it with chain: true)');
    return fundDevnetAccount(chain.rpcUrl, address, eth);
  }

  private progress(line: string): void {
    this.options.onProgress?.(line);
  }

  /** Prepares (or reuses) the directory, starts every process, runs the DKG if needed. */
  static async start(options: DevnetOptions): Promise<Devnet> {
    const devnet = await Devnet.prepare(options);
    try {
      devnet.progress(`starting ${devnet.n} nodes (t = ${devnet.t}${devnet.epoch === 0 ? '' : `, epoch ${devnet.epoch}`}) in ${devnet.dir}`);
      const joining = devnet.layout.change?.added ?? [];
      if (joining.length > 0) devnet.progress(`starting ${joining.length} new node(s) for the committee of epoch ${devnet.layout.change!.toEpoch}: ${joining.map((m) => m.id).join(', ')}`);
      await Promise.all(devnet.nodes.map((n) => devnet.startNode(n.id)));
      await devnet.waitNodesHealthy(devnet.members.map((n) => n.id), 60_000);
      await devnet.ensureKey();
      await devnet.startGateway();
      if (devnet.layout.change !== undefined) await devnet.completeChange();
    } catch (e) {
      await devnet.stop();
      throw e;
    }
    return devnet;
  }

  /**
   * Everything before the node and gateway processes: the directory, identities, the chain (when
   * asked for) and every config file. `stop()` ends what it started.
   */
  static async prepare(options: DevnetOptions): Promise<Devnet> {
    const dir = resolve(options.dir);
    if (options.fresh) await rm(dir, { recursive: true, force: true });
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const layoutPath = join(dir, 'devnet.json');
    let layout: Layout;
    if (await exists(layoutPath)) {
      layout = JSON.parse(await readFile(layoutPath, 'utf8')) as Layout;
      const target = layout.change ?? layout;
      const n = options.n ?? target.n;
      const t = options.t ?? Math.min(target.t, n);
      if (layout.change !== undefined && (n !== layout.change.n || t !== layout.change.t)) {
        throw new Error(`${dir} is moving from ${layout.t}-of-${layout.n} to ${layout.change.t}-of-${layout.change.n} (epoch ${layout.change.toEpoch}); re-run without --n/--t to finish that first`);
      }
      // Another n or t on an existing network is a reshare to a new committee (same keys).
      if (layout.change === undefined && (n !== layout.n || t !== layout.t)) {
        layout.change = await planChange(dir, layout, n, t);
        await writeFile(layoutPath, `${JSON.stringify(layout, null, 2)}\n`);
      }
      // Another key id on an existing network is just one more DKG.
      if (options.keyId !== undefined) layout = { ...layout, keyId: options.keyId };
    } else {
      layout = await createLayout(dir, options);
      await writeFile(layoutPath, `${JSON.stringify(layout, null, 2)}\n`);
    }
    if (layout.gatewayPeerId === undefined) {
      // A devnet made before gateways had an identity: give it one now.
      layout.gatewayPeerId = (await loadOrCreateIdentityFile(join(dir, 'gateway', 'identity.json'))).identity.peerId;
      await writeFile(layoutPath, `${JSON.stringify(layout, null, 2)}\n`);
    }
    const devnet = new Devnet({ ...options, dir }, layout);
    if ((options.chain !== undefined && options.chain !== false) || layout.chain !== undefined) {
      const blockTime = typeof options.chain === 'object' ? options.chain.blockTimeSeconds : undefined;
      const started = await startDevnetChain(dir, layout.chain, {
        freePort: async () => (await freePorts(1))[0]!,
        ...(blockTime !== undefined ? { blockTimeSeconds: blockTime } : {}),
        progress: (line) => devnet.progress(line),
      });
      devnet.anvil = started.anvil;
      layout.chain = started.chain;
      await writeFile(layoutPath, `${JSON.stringify(layout, null, 2)}\n`);
    }
    for (const node of [...layout.nodes, ...(layout.change?.added ?? [])]) {
      const nodeDir = join(dir, `node${node.id}`);
      devnet.nodes.push({
        id: node.id,
        dir: nodeDir,
        configPath: join(nodeDir, 'config.json'),
        httpUrl: `http://127.0.0.1:${node.httpPort}`,
        adminUrl: `http://127.0.0.1:${node.adminPort}`,
        peerId: node.peerId,
        process: undefined,
      });
    }
    try {
      devnet.gatewayUrl = await writeConfigs(devnet.options, devnet.layout);
    } catch (e) {
      await devnet.stop();
      throw e;
    }
    return devnet;
  }

  /** Runs the change planned in devnet.json (deploy/devnet-change.ts). */
  private completeChange(): Promise<void> {
    return completeChange({
      dir: this.options.dir,
      layout: this.layout,
      nodes: this.nodes,
      epoch: this.epoch,
      gatewayUrl: this.gatewayUrl,
      heldKeyIds: () => this.heldKeyIds(),
      killNode: (id, signal) => this.killNode(id, signal),
      progress: (line) => this.progress(line),
    });
  }

  private spawn(name: string, args: string[], logPath: string, env: Record<string, string> = {}): ChildProcess {
    const log = createWriteStream(logPath, { flags: 'a', mode: 0o600 });
    this.logs.push(log);
    // TKMS_PROFILE_DIR=<dir>: each process writes a V8 CPU profile there as it exits (how docs/signing.md's costs were found).
    const child = spawn(process.execPath, [...(process.env.TKMS_PROFILE_DIR ? ['--cpu-prof', `--cpu-prof-dir=${process.env.TKMS_PROFILE_DIR}`] : []), tkmsBin, ...args], {
      cwd: REPO_ROOT,
      env: { ...process.env, TKMS_KEYSTORE_PASSWORD: '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.pipe(log, { end: false });
    child.stderr!.pipe(log, { end: false });
    child.once('exit', (code, signal) => this.exits.set(child, `${name} exited (code ${code}, signal ${signal}); see ${logPath}`));
    return child;
  }

  private exitReason(child: ChildProcess | undefined): string | undefined {
    return child === undefined ? undefined : this.exits.get(child);
  }

  node(id: number): DevnetNode {
    const node = this.nodes.find((n) => n.id === id);
    if (node === undefined) throw new Error(`no node ${id}`);
    return node;
  }

  async startNode(id: number): Promise<void> {
    const node = this.node(id);
    const faults = this.options.nodeConfig?.[id]?.testFaults !== undefined;
    node.process = this.spawn(`node ${id}`, ['node', 'start', '--config', node.configPath], join(node.dir, 'node.log'), faults ? { TKMS_ENABLE_TEST_FAULTS: '1' } : {});
    const child = node.process;
    await until(`node ${id} to listen`, 60_000, async () => ((await getJson(`${node.httpUrl}/health`)) ? true : undefined), () => this.exitReason(child));
  }

  async waitNodesHealthy(ids: number[], timeoutMs = 30_000): Promise<void> {
    await Promise.all(
      ids.map((id) => {
        const node = this.node(id);
        return until(`node ${id} to be ready`, timeoutMs, async () => ((await getJson(`${node.httpUrl}/health`)).status === 200 ? true : undefined), () => this.exitReason(node.process));
      }),
    );
  }

  private async ensureKey(): Promise<void> {
    const first = this.members[0]!;
    // A DKG started before every member is connected waits out a phase deadline for the late ones.
    await Promise.all(
      this.members.map((node) =>
        // Every member of the committee in the node's own file (after a reshare, a member that was
        // there before keeps its epoch-0 file, which its health answer counts in).
        until(`node ${node.id} to see every member`, 30_000, async () => {
          const health = (await getJson(`${node.httpUrl}/health`)).json;
          return health.peersConnected >= Math.min(this.n, health.n ?? this.n) - 1 ? true : undefined;
        }),
      ),
    );
    if ((await this.heldKeyIds()).includes(this.keyId)) {
      this.progress(`key "${this.keyId}" already generated; reusing it`);
      return;
    }
    this.progress(`running the DKG for key "${this.keyId}"`);
    const started = Date.now();
    const proposed = await getJson(`${first.adminUrl}/admin/dkg`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ keyId: this.keyId }) });
    if (proposed.status !== 202) throw new Error(`DKG could not start: ${JSON.stringify(proposed.json)}`);
    const status = await until(`the DKG of key ${this.keyId}`, 120_000, async () => {
      const s = await getJson(`${first.adminUrl}/admin/dkg/${encodeURIComponent(this.keyId)}`);
      return s.json.status === 'running' ? undefined : s.json;
    });
    if (status.status !== 'done') throw new Error(`DKG aborted: ${status.abortReason}`);
    this.progress(`DKG done in ${Date.now() - started} ms: public key ${status.result.groupPublicKey}`);
    await this.rememberKeys([this.keyId]);
  }

  /**
   * The keys this devnet generated: those devnet.json remembers, and those the first member lists
   * (GET /admin/keys). After a reshare and a restart a member may list only keys of its own DKGs,
   * so the record is what keeps a key from being generated twice.
   */
  private async heldKeyIds(): Promise<string[]> {
    const listed = ((await getJson(`${this.members[0]!.adminUrl}/admin/keys`)).json.keys as { keyId: string }[]).map((k) => k.keyId);
    const all = [...new Set([...(this.layout.keys ?? []), ...listed])].sort();
    if (all.some((k) => !(this.layout.keys ?? []).includes(k))) await this.rememberKeys(all);
    return all;
  }

  private async rememberKeys(keyIds: string[]): Promise<void> {
    this.layout.keys = [...new Set([...(this.layout.keys ?? []), ...keyIds])].sort();
    await writeFile(join(this.options.dir, 'devnet.json'), `${JSON.stringify(this.layout, null, 2)}\n`);
  }

  async startGateway(): Promise<void> {
    this.gateway = this.spawn('gateway', ['gateway', 'start', '--config', join(this.options.dir, 'gateway.json')], join(this.options.dir, 'gateway', 'gateway.log'), this.options.gatewayEnv);
    const child = this.gateway;
    await until('the gateway to be ready', 60_000, async () => ((await getJson(`${this.gatewayUrl}/v1/keys/${this.keyId}`)).status === 200 ? true : undefined), () => this.exitReason(child));
  }

  /** The committee's Ed25519 member keys (id → 0x hex), for clients to pin. */
  async memberKeys(): Promise<Record<number, string>> {
    return memberKeysHex(await loadCommitteeFile(join(this.options.dir, 'committee.json')));
  }

  /** Client options pinning this devnet's committee (member keys, t, committee id): what local encryption needs. */
  async pinned(): Promise<ReturnType<typeof pinnedClientOptions>> {
    return pinnedClientOptions(await loadCommitteeFile(join(this.options.dir, 'committee.json')));
  }

  /** SIGKILL a node (a crash); `restartNode` brings it back with its keystore. */
  async killNode(id: number, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.node(id).process;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill(signal);
    await exited;
  }

  async restartNode(id: number): Promise<void> {
    await this.killNode(id, 'SIGTERM');
    await this.startNode(id);
  }

  async stop(): Promise<void> {
    const children = [this.gateway, ...this.nodes.map((n) => n.process)].filter((c): c is ChildProcess => c !== undefined && c.exitCode === null && c.signalCode === null);
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((r) => {
            const timer = setTimeout(() => c.kill('SIGKILL'), 5_000);
            c.once('exit', () => {
              clearTimeout(timer);
              r();
            });
            c.kill('SIGTERM');
          }),
      ),
    );
    // After the processes that read it; Anvil writes its state file as it exits.
    await this.anvil?.stop();
    this.anvil = undefined;
    await Promise.all(this.logs.map((l) => new Promise<void>((r) => l.end(() => r()))));
  }

  /** Everything the processes logged, for tests that grep it. */
  async readLogs(): Promise<string> {
    const parts = await Promise.all([
      ...this.nodes.map((n) => readFile(join(n.dir, 'node.log'), 'utf8').catch(() => '')),
      readFile(join(this.options.dir, 'gateway', 'gateway.log'), 'utf8').catch(() => ''),
    ]);
    return parts.join('');
  }
}
