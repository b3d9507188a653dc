import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomBytes } from 'node:crypto';
import type { AnvilChain } from '../chain/anvil.ts';
import { loadCommitteeFile, memberKeysHex, pinnedClientOptions } from '../net/committee.ts';
import { createIdentityFile, loadOrCreateIdentityFile } from '../node/identity.ts';
import { TkmsError } from '../core/errors.ts';
import { buildProposal, committeeFileText, nextCommittee, proposalFileText, proposalIdHex, summarizeChange } from './committee-change.ts';
import { approveEverywhere, pastHandover, reshareOverview, waitForEpoch } from './reshare-driver.ts';
import { devnetAclConfig, devnetChainEndpoint, fundDevnetAccount, startDevnetChain, type DevnetChainEndpoint, type DevnetChainLayout, type DevnetChainOptions } from './devnet-chain.ts';

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

export interface DevnetOptions {
  dir: string;
  n?: number;
  t?: number;
  keyId?: string;
  /** Gateway port; 0 picks a free one. */
  gatewayPort?: number;
  /** Remove the directory first (a new committee and new keys). */
  fresh?: boolean;
  logLevel?: string;
  /** Extra fields merged into a node's config (e.g. testFaults; also sets TKMS_ENABLE_TEST_FAULTS). */
  nodeConfig?: Record<number, Record<string, unknown>>;
  /** Extra gateway config fields (e.g. `cors: { allowedOrigins: [...] }` for a test page). */
  gatewayConfig?: Record<string, unknown>;
  /** Extra environment variables for the gateway process (e.g. TKMS_GATEWAY_CORS_ORIGINS). */
  gatewayEnv?: Record<string, string>;
  /** Test hook: more peer ids the nodes accept as gateways (a test that pushes revocations itself). */
  extraGatewayPeerIds?: string[];
  /**
   * Test hook (chaos, partitions): the multiaddr that `from` (a node id, or the gateway) dials to
   * reach member `to`, whose own listen address is `listen`. When set, every node and the gateway
   * get a committee file of their own (same committee id, t, members and peer ids; only these
   * addresses differ), so a test can put a proxy on each link. The shared committee.json keeps the
   * real addresses (clients read member keys from it).
   */
  linkAddress?: (from: number | 'gateway', to: number, listen: string) => string | Promise<string>;
  /**
   * A local EVM (Anvil, state kept in <dir>/chain) with TkmsAcl deployed, and every node and the
   * gateway configured with acl.mode "either". A devnet made with a chain keeps it on restart.
   */
  chain?: boolean | DevnetChainOptions;
  onProgress?: (line: string) => void;
}

interface LayoutNode {
  id: number;
  p2pPort: number;
  httpPort: number;
  adminPort: number;
  peerId: string;
  /** The committee file its config names (relative to the devnet directory): the one of the epoch it joined; absent = committee.json. */
  committeeFile?: string;
}

/** A committee change under way: re-running the devnet resumes it. */
interface LayoutChange {
  toEpoch: number;
  /** The next committee's file and the proposal's, relative to the devnet directory. */
  committeeFile: string;
  proposalFile: string;
  n: number;
  t: number;
  added: LayoutNode[];
  removed: number[];
}

interface Layout {
  version: 1;
  /** The current committee (until a change completes, the one before it). */
  n: number;
  t: number;
  keyId: string;
  committeeId: string;
  gatewayPort: number;
  /** The gateway's libp2p peer id (gateway/identity.json); nodes accept revocations from it. */
  gatewayPeerId?: string;
  nodes: LayoutNode[];
  /** Present once the devnet was started with a chain. */
  chain?: DevnetChainLayout;
  /** The epoch of the current committee and its file (relative to the directory); absent = 0 and committee.json, which clients pin. */
  epoch?: number;
  committeeFile?: string;
  /** Key ids this devnet generated (a DKG done), so that none is generated twice. */
  keys?: string[];
  /** Ids of members that left: never given to a new member (an id is a Shamir x-coordinate). */
  retiredIds?: number[];
  change?: LayoutChange;
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

/**
 * Ports that were free a moment ago: all bound at once (so they differ), then released. They are
 * taken below the kernel's ephemeral range when it can be read, so that a port released here is
 * not handed to some other socket that binds port 0 or dials out before the process meant to use
 * it binds it (the chaos test's link proxies bind port 0 while the devnet starts).
 */
export async function freePorts(count: number): Promise<number[]> {
  const below = await ephemeralRangeStart();
  const held: Server[] = [];
  try {
    if (below === undefined) {
      for (let i = 0; i < count; i++) held.push((await listenOn(0))!);
    } else {
      const tried = new Set<number>();
      while (held.length < count) {
        if (tried.size >= below - FIRST_PORT) throw new Error(`no ${count} free ports in ${FIRST_PORT}..${below - 1}`);
        const port = FIRST_PORT + Math.floor(Math.random() * (below - FIRST_PORT));
        if (tried.has(port)) continue;
        tried.add(port);
        const server = await listenOn(port);
        if (server !== undefined) held.push(server);
      }
    }
    return held.map((s) => (s.address() as AddressInfo).port);
  } finally {
    await Promise.all(held.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}

/** Lowest port handed to devnet processes when the ephemeral range is known. */
const FIRST_PORT = 20_000;

/** Where the kernel's ephemeral ports start, when that leaves room above FIRST_PORT (Linux). */
async function ephemeralRangeStart(): Promise<number | undefined> {
  try {
    const low = Number((await readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')).trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > FIRST_PORT + 1_000 ? low : undefined;
  } catch {
    return undefined;
  }
}

/** A server listening on 127.0.0.1:port, or undefined when that port is taken (port 0: any). */
function listenOn(port: number): Promise<Server | undefined> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', (e: NodeJS.ErrnoException) => (e.code === 'EADDRINUSE' && port !== 0 ? resolve(undefined) : reject(e)));
    s.listen(port, '127.0.0.1', () => resolve(s));
  });
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/** GET/POST with a 5 s bound; the body parsed as JSON when it is JSON, else kept as text. */
export async function getJson(url: string, init: RequestInit = {}): Promise<{ status: number; json: any; headers: Headers }> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(5_000) });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, json, headers: res.headers };
}

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>, failed?: () => string | undefined): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const why = failed?.();
    if (why !== undefined) throw new Error(`${what}: ${why}`);
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
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
        layout.change = await Devnet.planChange(dir, layout, n, t);
        await writeFile(layoutPath, `${JSON.stringify(layout, null, 2)}\n`);
      }
      // Another key id on an existing network is just one more DKG.
      if (options.keyId !== undefined) layout = { ...layout, keyId: options.keyId };
    } else {
      layout = await Devnet.create(dir, options);
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
      await devnet.writeConfigs();
    } catch (e) {
      await devnet.stop();
      throw e;
    }
    return devnet;
  }

  private static async create(dir: string, options: DevnetOptions): Promise<Layout> {
    const n = options.n ?? 5;
    const t = options.t ?? Math.min(n, 3);
    if (!Number.isInteger(n) || n < 1 || n > 64 || !Number.isInteger(t) || t < 1 || t > n) throw new Error('devnet needs 1 ≤ t ≤ n ≤ 64');
    const nodes: Layout['nodes'] = [];
    const ports = await freePorts(3 * n + 1);
    for (let id = 1; id <= n; id++) {
      const nodeDir = join(dir, `node${id}`);
      await mkdir(nodeDir, { recursive: true, mode: 0o700 });
      const identity = await createIdentityFile(join(nodeDir, 'identity.json'));
      const [p2pPort, httpPort, adminPort] = ports.slice(3 * (id - 1), 3 * id) as [number, number, number];
      nodes.push({ id, p2pPort, httpPort, adminPort, peerId: identity.peerId });
    }
    const committeeId = `devnet-${randomBytes(4).toString('hex')}`;
    const committee = {
      committeeId,
      t,
      members: nodes.map((m) => ({ id: m.id, peerId: m.peerId, multiaddrs: [`/ip4/127.0.0.1/tcp/${m.p2pPort}`] })),
    };
    await writeFile(join(dir, 'committee.json'), `${JSON.stringify(committee, null, 2)}\n`);
    // One password for the devnet's keystores, in a 0600 file: a local network, not production.
    await writeFile(join(dir, 'keystore-password'), `${randomBytes(24).toString('base64url')}\n`, { mode: 0o600 });
    const gatewayPort = options.gatewayPort === undefined || options.gatewayPort === 0 ? ports[3 * n]! : options.gatewayPort;
    await mkdir(join(dir, 'gateway'), { recursive: true, mode: 0o700 });
    const gatewayPeerId = (await createIdentityFile(join(dir, 'gateway', 'identity.json'))).peerId;
    return { version: 1, n, t, keyId: options.keyId ?? 'default', committeeId, gatewayPort, gatewayPeerId, nodes };
  }

  /**
   * The next committee for n and t: the members with the highest ids leave when it shrinks; new
   * members (new identities and ports, ids never used before) join when it grows. Writes the next
   * committee file; the proposal is written when the change runs (it names the keys held then).
   */
  private static async planChange(dir: string, layout: Layout, n: number, t: number): Promise<LayoutChange> {
    if (!Number.isInteger(n) || n < 1 || n > 64 || !Number.isInteger(t) || t < 1 || t > n) throw new Error('devnet needs 1 ≤ t ≤ n ≤ 64');
    const from = await loadCommitteeFile(join(dir, layout.committeeFile ?? 'committee.json'));
    const ids = layout.nodes.map((m) => m.id).sort((a, b) => a - b);
    const removed = ids.slice(Math.min(n, ids.length));
    const added: LayoutNode[] = [];
    const toEpoch = from.epoch + 1;
    const committeeFile = `committee-epoch${toEpoch}.json`;
    if (n > ids.length) {
      const ports = await freePorts(3 * (n - ids.length));
      let next = Math.max(...ids, ...(layout.retiredIds ?? [])) + 1;
      for (let i = 0; i < n - ids.length; i++, next++) {
        const nodeDir = join(dir, `node${next}`);
        await mkdir(nodeDir, { recursive: true, mode: 0o700 });
        const { identity } = await loadOrCreateIdentityFile(join(nodeDir, 'identity.json'));
        const [p2pPort, httpPort, adminPort] = ports.slice(3 * i, 3 * i + 3) as [number, number, number];
        added.push({ id: next, p2pPort, httpPort, adminPort, peerId: identity.peerId, committeeFile });
      }
    }
    const to = nextCommittee(from, {
      add: added.map((m) => ({ id: m.id, peerId: m.peerId, multiaddrs: [`/ip4/127.0.0.1/tcp/${m.p2pPort}`] })),
      remove: removed,
      t,
    });
    await writeFile(join(dir, committeeFile), committeeFileText(to));
    return { toEpoch, committeeFile, proposalFile: `proposal-epoch${toEpoch}.json`, n, t, added, removed };
  }

  /**
   * Runs the planned change as its operators would: the proposal for every key the committee
   * holds, approved on every node (here one operator runs them all), then waits until every member
   * of the new committee serves the new epoch. Members that left are stopped and their directories
   * removed once they saw the handover. The gateway keeps its committee file and follows.
   */
  private async completeChange(): Promise<void> {
    const change = this.layout.change!;
    const dir = this.options.dir;
    const fromEpoch = this.epoch;
    const readJson = async (file: string): Promise<unknown> => JSON.parse(await readFile(join(dir, file), 'utf8'));
    const keyIds = await this.heldKeyIds();
    const proposal = buildProposal(await readJson(this.layout.committeeFile ?? 'committee.json'), await readJson(change.committeeFile), keyIds);
    await writeFile(join(dir, change.proposalFile), proposalFileText(proposal));
    const proposalId = proposalIdHex(proposal);
    const summary = summarizeChange(proposal.from, proposal.to);
    const list = (ids: number[]) => (ids.length === 0 ? 'none' : ids.join(', '));
    this.progress(
      `${summary.kind} to epoch ${change.toEpoch}: ${summary.from.t} of ${summary.from.n} → ${summary.to.t} of ${summary.to.n} (added: ${list(summary.added)}; removed: ${list(summary.removed)}), keys ${proposal.keyIds.join(', ')}`,
    );
    this.progress(`proposal ${proposalId} (${change.proposalFile}); approving it on every node`);
    const started = performance.now();
    const body = JSON.parse(proposalFileText(proposal)) as unknown;
    // A restart may find nodes already past the change: nothing left to approve there.
    const served = await Promise.all(this.nodes.map((node) => reshareOverview(node.adminUrl).catch(() => undefined)));
    const approving = this.nodes.filter((_, i) => served[i] === undefined || !pastHandover(served[i]!, change.toEpoch));
    await approveEverywhere(approving, body, change.added.map((m) => m.id));
    const arriving = this.nodes.filter((n) => !change.removed.includes(n.id));
    await waitForEpoch(arriving, change.toEpoch, { proposalId, timeoutMs: 300_000 });
    const doneMs = Math.round(performance.now() - started);
    const leaving = this.nodes.filter((n) => change.removed.includes(n.id));
    if (leaving.length > 0) {
      await waitForEpoch(leaving, change.toEpoch, { proposalId, timeoutMs: 30_000 }).catch((e: Error) => this.progress(`members that left did not all report the handover (${e.message}); stopping them anyway`));
      await Promise.all(leaving.map((n) => this.killNode(n.id, 'SIGTERM')));
      await Promise.all(leaving.map((n) => rm(n.dir, { recursive: true, force: true })));
    }
    const layoutPath = join(dir, 'devnet.json');
    const kept = this.layout.nodes.filter((m) => !change.removed.includes(m.id));
    this.layout.nodes = [...kept, ...change.added].sort((a, b) => a.id - b.id);
    this.layout.n = change.n;
    this.layout.t = change.t;
    this.layout.epoch = change.toEpoch;
    this.layout.committeeFile = change.committeeFile;
    this.layout.retiredIds = [...(this.layout.retiredIds ?? []), ...change.removed];
    delete this.layout.change;
    await writeFile(layoutPath, `${JSON.stringify(this.layout, null, 2)}\n`);
    this.nodes.splice(0, this.nodes.length, ...this.nodes.filter((n) => !change.removed.includes(n.id)));
    this.progress(
      `handover from epoch ${fromEpoch} to ${change.toEpoch} done in ${doneMs} ms (first approval → last member serving it)${leaving.length > 0 ? `; members ${list(change.removed)} stopped and removed` : ''}`,
    );
    await this.reportGatewayEpoch(change.toEpoch);
  }

  /** The gateway keeps its epoch-0 committee file and follows the certificates (GET /v1/committee): say when it got there. */
  private async reportGatewayEpoch(epoch: number): Promise<void> {
    const started = performance.now();
    try {
      await until(`the gateway to follow to epoch ${epoch}`, 60_000, async () => {
        const answer = await getJson(`${this.gatewayUrl}/v1/committee`);
        return answer.status === 200 && typeof answer.json.epoch === 'number' && answer.json.epoch >= epoch ? true : undefined;
      });
      this.progress(`the gateway follows: it serves epoch ${epoch} (${Math.round(performance.now() - started)} ms after the handover)`);
    } catch (e) {
      this.progress(`the gateway does not report epoch ${epoch} yet: ${(e as Error).message}`);
    }
  }

  /** Writes a committee file for `from` whose member addresses come from the linkAddress hook. */
  private async writeLinkCommittee(from: number | 'gateway', path: string): Promise<void> {
    const hook = this.options.linkAddress!;
    const shared = JSON.parse(await readFile(join(this.options.dir, 'committee.json'), 'utf8')) as { members: { id: number; multiaddrs: string[] }[] };
    for (const member of shared.members) {
      if (member.id === from) continue;
      member.multiaddrs = [await hook(from, member.id, member.multiaddrs[0]!)];
    }
    await writeFile(path, `${JSON.stringify(shared, null, 2)}\n`);
  }

  private async writeConfigs(): Promise<void> {
    const logLevel = this.options.logLevel ?? 'info';
    const chain = this.layout.chain;
    const chainOptions = typeof this.options.chain === 'object' ? this.options.chain : {};
    const acl = (who: number | 'gateway') => (chain === undefined ? {} : { acl: devnetAclConfig(chain, who, chainOptions) });
    const linked = this.options.linkAddress !== undefined;
    for (const node of [...this.layout.nodes, ...(this.layout.change?.added ?? [])]) {
      if (linked) await this.writeLinkCommittee(node.id, join(this.options.dir, `node${node.id}`, 'committee.json'));
      const config = {
        listen: `/ip4/127.0.0.1/tcp/${node.p2pPort}`,
        http: `127.0.0.1:${node.httpPort}`,
        admin: `127.0.0.1:${node.adminPort}`,
        identityFile: 'identity.json',
        keystoreDir: 'keystore',
        stateDir: 'state',
        committeeFile: linked ? 'committee.json' : `../${node.committeeFile ?? 'committee.json'}`,
        keystorePasswordFile: '../keystore-password',
        dkg: { phaseTimeoutMs: 5_000 },
        logLevel,
        gatewayPeerIds: [this.layout.gatewayPeerId!, ...(this.options.extraGatewayPeerIds ?? [])],
        ...acl(node.id),
        ...(this.options.nodeConfig?.[node.id] ?? {}),
      };
      await writeFile(join(this.options.dir, `node${node.id}`, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
    }
    await mkdir(join(this.options.dir, 'gateway'), { recursive: true, mode: 0o700 });
    if (linked) await this.writeLinkCommittee('gateway', join(this.options.dir, 'gateway', 'committee.json'));
    const gateway = {
      listen: `127.0.0.1:${this.options.gatewayPort ? this.options.gatewayPort : this.layout.gatewayPort}`,
      storeDir: 'gateway/store',
      identityFile: 'gateway/identity.json',
      committeeFile: linked ? 'gateway/committee.json' : 'committee.json',
      logLevel,
      ...acl('gateway'),
      ...(this.options.gatewayConfig ?? {}),
    };
    await writeFile(join(this.options.dir, 'gateway.json'), `${JSON.stringify(gateway, null, 2)}\n`);
    // A gateway mounted under a path (gatewayConfig.basePath) is reached under it.
    const mount = (gateway as { basePath?: unknown }).basePath;
    const basePath = typeof mount === 'string' ? mount.replace(/\/+$/, '') : '';
    this.gatewayUrl = `http://${gateway.listen}${basePath}`;
  }

  private spawn(name: string, args: string[], logPath: string, env: Record<string, string> = {}): ChildProcess {
    const log = createWriteStream(logPath, { flags: 'a', mode: 0o600 });
    this.logs.push(log);
    const child = spawn(process.execPath, [tkmsBin, ...args], {
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
