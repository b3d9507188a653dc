import assert from 'node:assert/strict';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateAccount, TkmsClient, type Account } from '../../client/index.ts';
import { loadCommitteeFile, parseCommittee, pinnedClientOptions, type Committee } from '../../net/committee.ts';
import {
  combinePartials,
  decodeHex,
  decodePartialReply,
  encodePartialRequest,
  newRequestId,
  PARTIAL_PROTOCOL,
  rsaOaepUnwrap,
  signDelegation,
  verifyDleq,
  decodeDleqProof,
  type HandleDescriptor,
  type RsaKeyPair,
} from '../../core/index.ts';
import { createIdentityFile } from '../../node/identity.ts';
import type { P2pClient } from './p2p-client.ts';
import { freePorts, getJson, makeTempDir, ManagedProcess, NodeCluster, removeDir, TKMS_BIN, waitFor } from './processes.ts';

/**
 * Committee changes with real processes on loopback: a NodeCluster laid out with every node a test
 * will ever use (ids are member ids), of which the first `n` form the epoch-0 committee, a gateway
 * process on the epoch-0 committee file, and the operator's side of a reshare (committee files per
 * epoch, proposals, approvals through each node's admin API, waiting for the ceremony).
 */
export interface ReshareNetOptions {
  /** Nodes laid out (ids 1..nodes); the first `n` are the epoch-0 members. */
  nodes: number;
  n: number;
  t: number;
  /** reshare.phaseTimeoutMs of every node (the same on all). */
  phaseMs: number;
  /** testFaults per node id (sets TKMS_ENABLE_TEST_FAULTS for it). */
  faults?: Record<number, Record<string, unknown>>;
  prefix: string;
}

export type CommitteeJson = { committeeId: string; epoch: number; t: number; members: { id: number; peerId: string; multiaddrs: string[] }[] };
export type ProposalJson = { v: 1; from: CommitteeJson; to: CommitteeJson; keyIds: string[] };

export interface ProposalStatus {
  proposalId: string;
  kind: string;
  status: string;
  phase: string;
  attempt: number;
  durationMs?: number;
  failureReason?: string;
  /** Who was disqualified and why: `from:<id>` (a dealer) or `to:<id>` (an arriving member). */
  disqualified?: Record<string, string>;
}

export async function postJson(url: string, body: unknown): Promise<{ status: number; json: any }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body), signal: AbortSignal.timeout(10_000) });
  return { status: res.status, json: await res.json() };
}

export const committeeFileName = (epoch: number): string => (epoch === 0 ? 'committee.json' : `committee-${epoch}.json`);

export class ReshareNet {
  gateway: ManagedProcess | undefined;
  gatewayUrl = '';
  gatewayPeerId = '';
  private readonly files = new Map<number, CommitteeJson>();

  private constructor(
    readonly root: string,
    readonly cluster: NodeCluster,
    readonly options: ReshareNetOptions,
  ) {}

  /** Lays out the nodes and writes the epoch-0 committee file; starts nothing. */
  static async prepare(options: ReshareNetOptions): Promise<ReshareNet> {
    const root = await makeTempDir(options.prefix);
    const cluster = await NodeCluster.prepare({ n: options.nodes, t: options.t, rootDir: root, phaseTimeoutMs: 3_000, ...(options.faults ? { faults: options.faults } : {}) });
    const net = new ReshareNet(root, cluster, options);
    // The gateway's identity exists before the nodes start, so they know it as the gateway.
    await mkdir(join(root, 'gateway'), { recursive: true });
    net.gatewayPeerId = (await createIdentityFile(net.gatewayIdentityFile)).peerId;
    for (const node of cluster.nodes) await net.patchConfig(node.id, { reshare: { phaseTimeoutMs: options.phaseMs, minRefreshSpacingSeconds: 0 }, gatewayPeerIds: [net.gatewayPeerId], ...(process.env.TKMS_TEST_DEBUG === '1' ? { logLevel: 'debug' } : {}) });
    await net.writeCommittee(0, range(1, options.n), options.t);
    return net;
  }

  get gatewayIdentityFile(): string {
    return join(this.root, 'gateway', 'identity.json');
  }

  /** Starts the epoch-0 members, waits until they are healthy and runs a DKG for each key id. */
  async startWithKeys(keyIds: string[]): Promise<Map<string, string>> {
    const ids = range(1, this.options.n);
    await this.cluster.startAll(ids);
    await this.cluster.waitHealthy(ids);
    await Promise.all(ids.map((id) => waitFor(`node ${id} sees every member`, async () => ((await getJson(`${this.cluster.node(id).httpUrl}/health`)).json.peersConnected === ids.length - 1 ? true : undefined), { timeoutMs: 30_000 })));
    const keys = new Map<string, string>();
    for (const keyId of keyIds) {
      const started = await postJson(`${this.cluster.node(1).adminUrl}/admin/dkg`, { keyId });
      assert.equal(started.status, 202, JSON.stringify(started.json));
      for (const id of ids) {
        const s = await waitFor(`node ${id} holds ${keyId}`, async () => {
          const j = (await getJson(`${this.cluster.node(id).adminUrl}/admin/dkg/${keyId}`)).json;
          return j.status === 'running' ? undefined : j;
        }, { timeoutMs: 60_000, intervalMs: 100 });
        assert.equal(s.status, 'done', `DKG ${keyId} on node ${id}: ${s.abortReason}`);
        keys.set(keyId, s.result.groupPublicKey);
      }
    }
    return keys;
  }

  /** Starts a gateway process on the epoch-0 committee file; resolves once it serves `keyId`. */
  async startGateway(keyId: string, extra: Record<string, unknown> = {}): Promise<void> {
    const port = (await freePorts(1))[0]!;
    const path = join(this.root, 'gateway.json');
    await writeFile(path, JSON.stringify({ listen: `127.0.0.1:${port}`, storeDir: 'gateway/store', identityFile: 'gateway/identity.json', committeeFile: 'committee.json', logLevel: process.env.TKMS_TEST_DEBUG === '1' ? 'debug' : 'info', ...extra }, null, 2));
    this.gatewayUrl = `http://127.0.0.1:${port}`;
    const p = new ManagedProcess('gateway', [TKMS_BIN, 'gateway', 'start', '--config', path]);
    this.gateway = p;
    await waitFor('the gateway serves the key', async () => {
      if (!p.running) throw new Error(`gateway exited: ${p.stderr.slice(-2000)}`);
      return (await getJson(`${this.gatewayUrl}/v1/keys/${keyId}`).catch(() => undefined))?.status === 200 ? true : undefined;
    }, { timeoutMs: 60_000, intervalMs: 200 });
  }

  async patchConfig(id: number, fields: Record<string, unknown>): Promise<void> {
    const path = this.cluster.node(id).configPath;
    const config = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
    await writeFile(path, JSON.stringify({ ...config, ...fields }, null, 2));
  }

  member(id: number): CommitteeJson['members'][number] {
    const node = this.cluster.node(id);
    return { id, peerId: node.peerId, multiaddrs: [`/ip4/127.0.0.1/tcp/${node.p2pPort}`] };
  }

  /** Writes the committee file of `epoch` (node ids are member ids). */
  async writeCommittee(epoch: number, ids: number[], t: number): Promise<CommitteeJson> {
    const json: CommitteeJson = { committeeId: 'test-committee', epoch, t, members: ids.map((id) => this.member(id)) };
    await writeFile(join(this.root, committeeFileName(epoch)), JSON.stringify(json, null, 2));
    this.files.set(epoch, json);
    return json;
  }

  /** Writes the committee file a refresh reaches: the one of `epoch - 1`, at `epoch`. */
  async writeRefreshed(epoch: number): Promise<CommitteeJson> {
    const from = this.committeeJson(epoch - 1);
    return this.writeCommittee(epoch, from.members.map((m) => m.id), from.t);
  }

  committeeJson(epoch: number): CommitteeJson {
    const c = this.files.get(epoch);
    if (c === undefined) throw new Error(`no committee file for epoch ${epoch}`);
    return c;
  }

  committee(epoch: number): Committee {
    return parseCommittee(this.committeeJson(epoch));
  }

  /** The proposal moving `keyIds` from the committee of `toEpoch - 1` to that of `toEpoch`. */
  proposal(toEpoch: number, keyIds: string[]): ProposalJson {
    return { v: 1, from: this.committeeJson(toEpoch - 1), to: this.committeeJson(toEpoch), keyIds: [...keyIds].sort() };
  }

  /** Starts nodes that join at `epoch`: their committee file is that epoch's (they hold nothing yet). */
  async startJoining(ids: number[], epoch: number): Promise<void> {
    for (const id of ids) await this.patchConfig(id, { committeeFile: `../${committeeFileName(epoch)}` });
    await this.cluster.startAll(ids);
  }

  async reshareList(id: number): Promise<{ epoch: number; proposals: ProposalStatus[] }> {
    return (await getJson(`${this.cluster.node(id).adminUrl}/admin/reshare`)).json;
  }

  async proposalOn(id: number, proposalId: string): Promise<ProposalStatus | undefined> {
    return (await this.reshareList(id)).proposals.find((p) => p.proposalId === proposalId);
  }

  async approveOn(id: number, proposal: ProposalJson): Promise<string> {
    const r = await postJson(`${this.cluster.node(id).adminUrl}/admin/reshare/approve`, proposal);
    assert.equal(r.status, 202, `node ${id} approve: ${JSON.stringify(r.json)}`);
    return r.json.proposalId as string;
  }

  /**
   * Each operator approves on its own node: the joining members first, each past "preparing" (it
   * read the keys' public data) before the current members deal. Returns the proposal id.
   */
  async approve(proposal: ProposalJson, current: number[], joining: number[] = []): Promise<string> {
    const ids = await Promise.all(joining.map((id) => this.approveOn(id, proposal)));
    for (const id of joining) {
      await waitFor(`node ${id} past preparing`, async () => {
        const p = (await this.reshareList(id)).proposals.find((x) => x.proposalId === ids[0]);
        return p !== undefined && p.phase !== 'preparing' ? true : undefined;
      }, { timeoutMs: 30_000, intervalMs: 50 });
    }
    ids.push(...(await Promise.all(current.map((id) => this.approveOn(id, proposal)))));
    assert.ok(ids.every((x) => x === ids[0]), 'every node names the same proposal id');
    return ids[0]!;
  }

  /** Waits until the proposal finished on every node in `ids` and asserts it is done there; returns the statuses. */
  async waitDone(ids: number[], proposalId: string, timeoutMs = 90_000): Promise<ProposalStatus[]> {
    return Promise.all(
      ids.map(async (id) => {
        const s = await waitFor(`node ${id} ceremony ${proposalId.slice(0, 10)} finished`, async () => {
          const p = await this.proposalOn(id, proposalId);
          return p !== undefined && p.status !== 'approved' && p.status !== 'running' ? p : undefined;
        }, { timeoutMs, intervalMs: 150 });
        assert.equal(s.status, 'done', `node ${id}: ${s.status} ${s.failureReason ?? ''}`);
        return s;
      }),
    );
  }

  /** The gateway follows a handover on its own refresh (at most once a second): a test reading keys right after a commit waits for it. */
  async waitGatewayEpoch(epoch: number, timeoutMs = 30_000): Promise<void> {
    await waitFor(`the gateway serves epoch ${epoch}`, async () => ((await getJson(`${this.gatewayUrl}/v1/committee`)).json.epoch >= epoch ? true : undefined), { timeoutMs });
  }

  async waitEpoch(ids: number[], epoch: number, timeoutMs = 90_000): Promise<void> {
    await Promise.all(ids.map((id) => waitFor(`node ${id} at epoch ${epoch}`, async () => ((await this.reshareList(id)).epoch === epoch ? true : undefined), { timeoutMs, intervalMs: 150 })));
  }

  /** A client pinned to the committee file of `epoch` (what a user pinned then). */
  async client(account: Account = generateAccount(), epoch = 0): Promise<TkmsClient> {
    const pinned = pinnedClientOptions(await loadCommitteeFile(join(this.root, committeeFileName(epoch))));
    return new TkmsClient({ gatewayUrl: this.gatewayUrl, account, ...pinned });
  }

  /** Names of the files in a node's keystore that hold a share of `keyId` (its DKG key file or epoch share files). */
  async shareFiles(id: number, keyId: string): Promise<string[]> {
    const names = await readdir(this.cluster.node(id).keystoreDir);
    return names.filter((n) => n === `${keyId}.key.json` || (n.startsWith(`${keyId}.e`) && n.endsWith('.share.json')));
  }

  async stop(): Promise<void> {
    // TKMS_TEST_LOG_DIR keeps every process's output (for a failure's post-mortem).
    const keep = process.env.TKMS_TEST_LOG_DIR;
    if (keep !== undefined) {
      await mkdir(keep, { recursive: true });
      for (const node of this.cluster.nodes) if (node.process) await writeFile(join(keep, `${this.options.prefix}-node${node.id}.log`), node.process.stdout + node.process.stderr);
      if (this.gateway) await writeFile(join(keep, `${this.options.prefix}-gateway.log`), this.gateway.stdout + this.gateway.stderr);
    }
    await this.gateway?.stop();
    await this.cluster.stopAll();
    await removeDir(this.root);
  }
}

export function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

export const encode = (s: string): Uint8Array => new TextEncoder().encode(s);
export const decode = (b: Uint8Array): string => new TextDecoder().decode(b);

/** A handle's descriptor as the gateway publishes it (GET /v1/handles/{handle}). */
export async function handleDescriptor(gatewayUrl: string, handle: string): Promise<HandleDescriptor> {
  const { json } = await getJson(`${gatewayUrl}/v1/handles/${handle}`);
  return { keyId: json.keyId, K: decodeHex(json.K), nonce: decodeHex(json.nonce), ciphertextHash: decodeHex(json.ciphertextHash), owner: decodeHex(json.owner), kProof: decodeHex(json.kProof) };
}

export interface OpenedPartial {
  nodeId: number;
  epoch: number;
  /** P_i = K·share_i, unwrapped. */
  point: Uint8Array;
  requestId: Uint8Array;
  proof: Uint8Array;
}

/**
 * The owner asks one node directly (as the gateway would) for its partial of `handle` and unwraps
 * it: a refusal throws with its code.
 */
export async function ownerPartial(p2p: P2pClient, nodeId: number, owner: Account, rsa: RsaKeyPair, handle: string, descriptor: HandleDescriptor): Promise<OpenedPartial> {
  const now = Math.floor(Date.now() / 1000);
  const requestId = newRequestId();
  const delegation = signDelegation(
    owner.secretKey,
    { handle: decodeHex(handle), keyId: descriptor.keyId, requester: owner.addressBytes, rsaSpki: decodeHex(rsa.publicKey.spkiHex), notBefore: now - 5, notAfter: now + 300, requestId },
    { committeeId: 'test-committee' },
  );
  const reply = decodePartialReply(await p2p.request(nodeId, PARTIAL_PROTOCOL, encodePartialRequest({ delegation, descriptor, grant: undefined })));
  if (!reply.ok) throw Object.assign(new Error(`node ${nodeId}: ${reply.code}: ${reply.message}`), { code: reply.code });
  return { nodeId, epoch: reply.epoch ?? 0, point: await rsaOaepUnwrap(rsa.privateKey, reply.wrapped), requestId, proof: reply.proof };
}

/** Whether an opened partial's DLEQ proof holds against Y_i. */
export function partialMatches(p: OpenedPartial, keyId: string, K: Uint8Array, Y: Uint8Array): boolean {
  return verifyDleq({ keyId, nodeId: p.nodeId, requestId: p.requestId }, Y, K, p.point, decodeDleqProof(p.proof));
}

/** Lagrange-combines opened partials (any epochs) into K·secret, as hex. */
export function combineHex(parts: readonly OpenedPartial[]): string {
  return Buffer.from(combinePartials(parts.map((p) => ({ id: p.nodeId, point: p.point })))).toString('hex');
}
