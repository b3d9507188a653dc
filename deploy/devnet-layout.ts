import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadCommitteeFile } from '../net/committee.ts';
import { createIdentityFile, loadOrCreateIdentityFile } from '../node/identity.ts';
import { committeeFileText, nextCommittee } from './committee-change.ts';
import { devnetAclConfig, type DevnetChainLayout, type DevnetChainOptions } from './devnet-chain.ts';
import { freePorts } from './devnet-loopback.ts';

/**
 * A devnet on disk: devnet.json (the layout: members, ports, epoch, a change under way), the
 * committee files, identities, and each process's config, as an operator would write them.
 */

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
  /**
   * The committee's managed-key settings (config `keys`), the same for every node and the gateway.
   * A devnet lets anyone create keys (`creators: "open"`); production configs name the creators.
   */
  keys?: Record<string, unknown>;
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

export interface LayoutNode {
  id: number;
  p2pPort: number;
  httpPort: number;
  adminPort: number;
  peerId: string;
  /** The committee file its config names (relative to the devnet directory): the one of the epoch it joined; absent = committee.json. */
  committeeFile?: string;
}

/** A committee change under way: re-running the devnet resumes it. */
export interface LayoutChange {
  toEpoch: number;
  /** The next committee's file and the proposal's, relative to the devnet directory. */
  committeeFile: string;
  proposalFile: string;
  n: number;
  t: number;
  added: LayoutNode[];
  removed: number[];
}

export interface Layout {
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

/** A new network in `dir`: identities, ports, the committee file and the keystore password; the layout to write as devnet.json. */
export async function createLayout(dir: string, options: DevnetOptions): Promise<Layout> {
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
export async function planChange(dir: string, layout: Layout, n: number, t: number): Promise<LayoutChange> {
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

/** Writes a committee file for `from` whose member addresses come from the linkAddress hook. */
async function writeLinkCommittee(options: DevnetOptions, from: number | 'gateway', path: string): Promise<void> {
  const hook = options.linkAddress!;
  const shared = JSON.parse(await readFile(join(options.dir, 'committee.json'), 'utf8')) as { members: { id: number; multiaddrs: string[] }[] };
  for (const member of shared.members) {
    if (member.id === from) continue;
    member.multiaddrs = [await hook(from, member.id, member.multiaddrs[0]!)];
  }
  await writeFile(path, `${JSON.stringify(shared, null, 2)}\n`);
}

/** Every node's config.json and gateway.json (rewritten on each start); returns the gateway's URL. */
export async function writeConfigs(options: DevnetOptions, layout: Layout): Promise<string> {
  const logLevel = options.logLevel ?? 'info';
  const chain = layout.chain;
  const chainOptions = typeof options.chain === 'object' ? options.chain : {};
  const acl = (who: number | 'gateway') => (chain === undefined ? {} : { acl: devnetAclConfig(chain, who, chainOptions) });
  const linked = options.linkAddress !== undefined;
  const keySettings = { creators: 'open', ...(options.keys ?? {}) };
  for (const node of [...layout.nodes, ...(layout.change?.added ?? [])]) {
    if (linked) await writeLinkCommittee(options, node.id, join(options.dir, `node${node.id}`, 'committee.json'));
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
      gatewayPeerIds: [layout.gatewayPeerId!, ...(options.extraGatewayPeerIds ?? [])],
      keys: keySettings,
      ...acl(node.id),
      ...(options.nodeConfig?.[node.id] ?? {}),
    };
    await writeFile(join(options.dir, `node${node.id}`, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
  }
  await mkdir(join(options.dir, 'gateway'), { recursive: true, mode: 0o700 });
  if (linked) await writeLinkCommittee(options, 'gateway', join(options.dir, 'gateway', 'committee.json'));
  const gateway = {
    listen: `127.0.0.1:${options.gatewayPort ? options.gatewayPort : layout.gatewayPort}`,
    storeDir: 'gateway/store',
    identityFile: 'gateway/identity.json',
    committeeFile: linked ? 'gateway/committee.json' : 'committee.json',
    logLevel,
    keys: keySettings,
    ...acl('gateway'),
    ...(options.gatewayConfig ?? {}),
  };
  await writeFile(join(options.dir, 'gateway.json'), `${JSON.stringify(gateway, null, 2)}\n`);
  // A gateway mounted under a path (gatewayConfig.basePath) is reached under it.
  const mount = (gateway as { basePath?: unknown }).basePath;
  const basePath = typeof mount === 'string' ? mount.replace(/\/+$/, '') : '';
  return `http://${gateway.listen}${basePath}`;
}
