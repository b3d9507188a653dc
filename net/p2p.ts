import { isIPv6 } from 'node:net';
import { createLibp2p, type Libp2p } from 'libp2p';
import { tcp } from '@libp2p/tcp';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { peerIdFromString } from '@libp2p/peer-id';
import { lpStream } from '@libp2p/utils';
import { multiaddr } from '@multiformats/multiaddr';
import type { Connection, PeerId, PrivateKey, Stream } from '@libp2p/interface';
import type { Logger } from 'pino';
import { isTkmsError, MAX_NODE_FRAME_BYTES } from '../core/index.ts';
import { errorText } from '../core/errors.ts';
import type { Committee, CommitteeMember } from './committee.ts';
import { ConnectionGate, OUTSIDER_LIMITS, type OutsiderLimits } from './connection-gate.ts';
import { encodeLength, FrameReader } from './frame-reader.ts';
import { guardNegotiation } from './negotiation-guard.ts';
import { ReadBudget } from './read-budget.ts';

/**
 * Streams one connection may have open at once, over all protocols: the sum of what a node's
 * protocols allow one peer (see the daemon's PROTOCOL_STREAMS, 720 in all), rounded up. Each open
 * stream costs a few KiB of state even when idle; its frame bytes are bounded separately (budgets),
 * and what it may bring before its protocol is chosen by guardNegotiation.
 */
const CONNECTION_STREAM_LIMIT = 768;
/** Streams this process may open to one peer on one protocol (its own sends, e.g. a revocation flood). */
const OUTBOUND_STREAM_LIMIT = 1024;
/**
 * How long a remote peer has to name a stream's protocol. Honest peers need one round trip; the
 * bytes a stream may hold meanwhile are bounded too (guardNegotiation).
 */
const NEGOTIATION_TIMEOUT_MS = 1_500;
/** How long an inbound connection may take for its handshake before it is dropped. */
const INBOUND_UPGRADE_TIMEOUT_MS = 3_000;
/**
 * Handshakes in progress at once from addresses off the allow list (libp2p's default is 10); past
 * it libp2p refuses every such connection, a reconnecting gateway's too. The gate lets one IP hold
 * at most `pendingPerIp` (2) of them, so filling this takes 128 addresses, each keeping two stalled
 * handshakes going. An attacker with that many addresses can still keep off-list peers (gateways,
 * clients) out for as long as it keeps them all busy; members are on the allow list and are not
 * affected. A handshake costs a socket and a few KiB, so the limit can be this high.
 */
const PENDING_INBOUND_CONNECTIONS = 256;
/** Members of an approved reshare beyond the committee file (a committee arriving has at most 256). */
const MAX_CEREMONY_PARTICIPANTS = 256;

/** Connections a gateway may have to one node at once (a redial overlapping the old one). */
const CONNECTIONS_PER_GATEWAY = 4;

export interface HostOptions {
  /** Peers admitted whatever the outsider limits say: the committee's members and these (gateways). */
  gatewayPeerIds?: readonly string[];
  /**
   * Also admitted like members while it says so: the members of both committees of a reshare this
   * node's operator approved (they may not be in the committee file the node started with).
   */
  alsoTrusted?: (peer: string) => boolean;
  /** IPs the gateways connect from: allow-listed like members' (no pending or rate limit). */
  gatewayAddresses?: readonly string[];
  outsiders?: OutsiderLimits;
  /**
   * Whether loopback counts as allow-listed (default true: co-located processes such as a local
   * gateway or proxy share it). Tests set false to attack from 127.0.0.x like any other address.
   */
  exemptLoopback?: boolean;
  /**
   * How often libp2p pings each connection, closing it when a ping fails (libp2p's default: 10 s).
   * Nodes ping less often (NODE_PING_INTERVAL_MS); the gateway keeps the default.
   */
  pingIntervalMs?: number;
}

/**
 * A node's ping interval. Its connections carry ceremonies, which have their own delivery timeouts
 * and retransmits, and requests from gateways, which ping at the default 10 s and so find a node
 * that stopped answering as fast as before. Every ping opens a stream and negotiates a protocol on
 * both ends: at 10 s they were 80% of an idle node's CPU (8 nodes: 11.3 ms a second each, 2.2 ms
 * without them), and at n = 32 on one machine a third of a core that the ceremonies lacked.
 */
export const NODE_PING_INTERVAL_MS = 30_000;

/** IPs of loopback, the committee's own addresses and the gateways': never rate-limited or pruned. */
function allowList(committee: Committee, gatewayAddresses: readonly string[], exemptLoopback: boolean): string[] {
  const allow = new Set(exemptLoopback ? ['/ip4/127.0.0.0/ipcidr/8', '/ip6/::1/ipcidr/128'] : []);
  for (const ip of gatewayAddresses) allow.add(`/${isIPv6(ip) ? 'ip6' : 'ip4'}/${ip}`);
  for (const m of committee.members) {
    for (const addr of m.multiaddrs) {
      const ip = multiaddr(addr)
        .getComponents()
        .find((c) => c.name === 'ip4' || c.name === 'ip6');
      if (ip?.value !== undefined) allow.add(`/${ip.name}/${ip.value}`);
    }
  }
  return [...allow];
}

/** Local processes (tests, a co-located client) share loopback: only the outsiders' total applies to it. */
const isLoopback = (ip: string): boolean => ip.startsWith('127.') || ip === '::1';

export async function createHost(identity: { privateKey: PrivateKey }, listen: string[], committee: Committee, opts: HostOptions = {}): Promise<Libp2p> {
  const trusted = new Set([...committee.members.map((m) => m.peerId), ...(opts.gatewayPeerIds ?? [])]);
  const outsiders = opts.outsiders ?? OUTSIDER_LIMITS;
  const exemptLoopback = opts.exemptLoopback ?? true;
  const allow = allowList(committee, opts.gatewayAddresses ?? [], exemptLoopback);
  const allowedIps = new Set(allow.map((a) => multiaddr(a).getComponents()[0]!.value!));
  const loopbackExempt = (ip: string): boolean => exemptLoopback && isLoopback(ip);
  const alsoTrusted = opts.alsoTrusted ?? (() => false);
  const gate = new ConnectionGate((peer) => trusted.has(peer) || alsoTrusted(peer), outsiders, loopbackExempt, (ip) => loopbackExempt(ip) || allowedIps.has(ip));
  const libp2p = await createLibp2p({
    privateKey: identity.privateKey,
    addresses: { listen },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [
      guardNegotiation(
        yamux({
          maxEarlyStreams: 32,
          maxInboundStreams: CONNECTION_STREAM_LIMIT,
          maxOutboundStreams: 4096,
          // What a stream may buffer while nobody reads it (a paused reader): no more than a client
          // frame. Frame readers take the bytes as they come and hold them against a budget, so a
          // whole frame never waits here.
          streamOptions: { maxReadBufferLength: MAX_NODE_FRAME_BYTES },
        }),
      ),
    ],
    connectionManager: {
      allow,
      // Room for every member, gateway and admitted outsider (plus handshakes that pass the gate
      // together), so libp2p never refuses or prunes a member or gateway for lack of room:
      // outsiders are capped by the gate, well below this.
      maxConnections: committee.members.length + trusted.size * CONNECTIONS_PER_GATEWAY + outsiders.total + PENDING_INBOUND_CONNECTIONS + MAX_CEREMONY_PARTICIPANTS,
      maxIncomingPendingConnections: PENDING_INBOUND_CONNECTIONS,
      inboundUpgradeTimeout: INBOUND_UPGRADE_TIMEOUT_MS,
      inboundStreamProtocolNegotiationTimeout: NEGOTIATION_TIMEOUT_MS,
      dialTimeout: 5_000,
      // Our own redial loop owns reconnection to members; libp2p's would fight it.
      reconnectRetries: 0,
    },
    connectionGater: {
      // Members may run on one host during tests: never refuse loopback or private IPs.
      denyDialMultiaddr: () => false,
      denyInboundConnection: (maConn) => gate.denyPending(maConn),
      denyInboundEncryptedConnection: (peer, maConn) => gate.denyInbound(peer, maConn),
      denyInboundUpgradedConnection: (_peer, maConn) => gate.upgraded(maConn),
    },
    nodeInfo: { name: 'tkms-node' },
    ...(opts.pingIntervalMs === undefined ? {} : { connectionMonitor: { pingInterval: opts.pingIntervalMs } }),
  });
  gate.attach(() => libp2p.getConnections());
  return libp2p;
}

export interface RequestOptions {
  timeoutMs: number;
  maxReplyBytes?: number;
}

async function closeQuietly(stream: Stream): Promise<void> {
  try {
    await stream.close({ signal: AbortSignal.timeout(2_000) });
  } catch {
    stream.abort(new Error('close failed'));
  }
}

/** One request frame, one reply frame, on a fresh stream; bounded by a timeout. */
export async function requestFrame(
  libp2p: Libp2p,
  peer: PeerId,
  protocol: string,
  body: Uint8Array,
  opts: RequestOptions,
): Promise<Uint8Array> {
  const signal = AbortSignal.timeout(opts.timeoutMs);
  const stream = await libp2p.dialProtocol(peer, protocol, { signal });
  try {
    const lp = lpStream(stream, { maxDataLength: opts.maxReplyBytes ?? 4 * 1024 * 1024 });
    await lp.write(body, { signal });
    const reply = await lp.read({ signal });
    return reply.subarray();
  } finally {
    await closeQuietly(stream);
  }
}

export type FrameHandler = (remotePeer: string, body: Uint8Array) => Promise<Uint8Array>;

/** A kept-alive stream closes after this long without a request. Clients give up theirs sooner. */
const SERVER_IDLE_MS = 60_000;
const CLIENT_IDLE_MS = 20_000;

/** Requests all peers together may have in flight on one served protocol, by default. */
const DEFAULT_MAX_FRAMES_IN_FLIGHT = 512;
/** The same for peers that are not `trusted`, in a pool of their own, by default. */
const DEFAULT_MAX_OTHER_FRAMES_IN_FLIGHT = 64;

export interface ServeOptions {
  maxRequestBytes: number;
  timeoutMs: number;
  log: Logger;
  /** Requests `trusted` peers (all peers, without `trusted`) may have in flight at once. */
  maxInFlight?: number;
  /**
   * Peers with a pool of in-flight requests of their own (members, gateways): others can fill
   * theirs (free peer ids, replies held while they drain) but never make these `busy`.
   */
  trusted?: (peer: string) => boolean;
  /** Requests everyone else may have in flight at once, when `trusted` is given; default 64. */
  maxOtherInFlight?: number;
  /** Streams one connection may have open on this protocol at once (libp2p resets the rest); default 256. */
  maxInboundStreams?: number;
  /** Who may use the protocol at all; anyone else's stream is reset as it opens, before a byte is read. */
  allow?: (peer: string) => boolean;
  /**
   * The budget the peer's frame bytes are held against (e.g. one for members and gateways, one for
   * everyone else); by default one for this protocol, of 64 full frames per peer and 256 in all.
   */
  budgetFor?: (peer: string) => ReadBudget;
  /**
   * Streams one peer (over all its connections) may have open on this protocol, if fewer than
   * libp2p's per-connection limit: a refused stream still brings up to a yamux window (256 KiB) of
   * data in flight, so fewer streams for peers that need few bound that too.
   */
  maxStreamsOf?: (peer: string) => number;
  /** Told why a stream was refused ("not_allowed", "streams", "budget", "busy"), for metrics. */
  onRefused?: (protocol: string, reason: string) => void;
}

async function writeFrame(stream: Stream, body: Uint8Array, signal: AbortSignal): Promise<void> {
  const prefix = encodeLength(body.byteLength);
  const frame = new Uint8Array(prefix.byteLength + body.byteLength);
  frame.set(prefix);
  frame.set(body, prefix.byteLength);
  if (!stream.send(frame)) await stream.onDrain({ signal });
}

/**
 * Serves a request/reply protocol: one frame in, one frame out, then the next frame on the
 * same stream. A one-shot client sends one frame and closes; a FrameClient keeps the stream
 * for its next request, which saves opening a stream and negotiating the protocol each time
 * (most of the per-request cost of a small request over libp2p).
 *
 * Memory an outsider can make this hold is bounded before it is spent: a peer not allowed on the
 * protocol is refused when its stream opens, and every frame byte is held against the peer's
 * budget from the moment its length prefix arrives (see FrameReader).
 */
export async function serveFrames(libp2p: Libp2p, protocol: string, handler: FrameHandler, opts: ServeOptions): Promise<void> {
  // Bounds the CPU all peers together can claim at once on this protocol.
  const pools = {
    trusted: { max: opts.maxInFlight ?? DEFAULT_MAX_FRAMES_IN_FLIGHT, inFlight: 0 },
    others: { max: opts.maxOtherInFlight ?? DEFAULT_MAX_OTHER_FRAMES_IN_FLIGHT, inFlight: 0 },
  };
  const frame = Math.max(opts.maxRequestBytes, 4096);
  const ownBudget = opts.budgetFor === undefined ? new ReadBudget(64 * frame, 256 * frame) : undefined;
  const budgetFor = opts.budgetFor ?? (() => ownBudget!);
  const maxInboundStreams = opts.maxInboundStreams ?? 256;
  const openByPeer = new Map<string, number>();
  await libp2p.handle(
    protocol,
    async (stream: Stream, connection: Connection) => {
      const peer = connection.remotePeer.toString();
      if (opts.allow !== undefined && !opts.allow(peer)) {
        opts.onRefused?.(protocol, 'not_allowed');
        opts.log.debug({ protocol, peer }, 'stream from a peer not allowed on this protocol refused');
        stream.abort(new Error('not allowed'));
        return;
      }
      const open = openByPeer.get(peer) ?? 0;
      if (opts.maxStreamsOf !== undefined && open >= opts.maxStreamsOf(peer)) {
        opts.onRefused?.(protocol, 'streams');
        stream.abort(new Error('too many streams'));
        return;
      }
      openByPeer.set(peer, open + 1);
      const pool = opts.trusted === undefined || opts.trusted(peer) ? pools.trusted : pools.others;
      const budget = budgetFor(peer);
      const reader = new FrameReader(stream, opts.maxRequestBytes, {
        take: (bytes) => {
          if (budget.take(peer, bytes)) return true;
          opts.onRefused?.(protocol, 'budget');
          // Counted, not logged above debug: a flood of refusals must not become a flood of log lines.
          opts.log.debug({ protocol, peer, bytes, held: budget.held }, 'read budget exhausted; stream refused');
          return false;
        },
        give: (bytes) => budget.give(peer, bytes),
      });
      try {
        for (let served = 0; ; served++) {
          let request: Uint8Array | undefined;
          try {
            // The first frame must come promptly; later ones may wait for the client's next request.
            request = await reader.read(served === 0 ? opts.timeoutMs : SERVER_IDLE_MS, opts.timeoutMs);
          } catch (e) {
            // After at least one answer, idleness is the normal way out.
            if (served > 0 && isTkmsError(e) && e.code === 'timeout') await closeQuietly(stream);
            else {
              opts.log.debug({ protocol, peer, err: errorText(e) }, 'stream handler failed');
              stream.abort(e instanceof Error ? e : new Error('read failed'));
            }
            return;
          }
          if (request === undefined) {
            // After at least one answer, the end of the stream (or idleness) is the normal way out.
            if (served > 0) await closeQuietly(stream);
            else stream.abort(new Error('no request'));
            return;
          }
          if (pool.inFlight >= pool.max) {
            opts.onRefused?.(protocol, 'busy');
            opts.log.warn({ protocol, inFlight: pool.inFlight, trusted: pool === pools.trusted }, 'too many requests in flight; stream refused');
            stream.abort(new Error('busy'));
            return;
          }
          pool.inFlight++;
          try {
            const reply = await handler(peer, request);
            await writeFrame(stream, reply, AbortSignal.timeout(opts.timeoutMs));
          } catch (e) {
            opts.log.debug({ protocol, peer, err: errorText(e) }, 'stream handler failed');
            stream.abort(e instanceof Error ? e : new Error('handler failed'));
            return;
          } finally {
            pool.inFlight--;
            reader.release();
          }
        }
      } finally {
        reader.dispose();
        const left = (openByPeer.get(peer) ?? 1) - 1;
        if (left > 0) openByPeer.set(peer, left);
        else openByPeer.delete(peer);
      }
    },
    // Outbound streams are this process's own (a member's sends on the same protocol): not bounded here.
    { maxInboundStreams, maxOutboundStreams: OUTBOUND_STREAM_LIMIT },
  );
}

/** Open both ways: the server has not ended its side (idle timeout, restart). */
function reusable(stream: Stream): boolean {
  return stream.status === 'open' && stream.writeStatus === 'writable' && stream.remoteWriteStatus === 'writable';
}

interface PooledStream {
  stream: Stream;
  lp: ReturnType<typeof lpStream>;
  idleSince: number;
}

/**
 * Request/reply client that keeps streams open between requests, one pool per (peer,
 * protocol), so concurrent requests each have a stream and sequential ones reuse it. A stream
 * that failed or timed out is aborted, never reused: a late reply can never be read as the
 * answer to a later request.
 */
export class FrameClient {
  private readonly idle = new Map<string, PooledStream[]>();

  constructor(
    private readonly libp2p: Libp2p,
    private readonly maxIdlePerPeer = 64,
  ) {}

  async request(peer: PeerId, protocol: string, body: Uint8Array, opts: RequestOptions): Promise<Uint8Array> {
    const key = `${peer.toString()} ${protocol}`;
    const signal = AbortSignal.timeout(opts.timeoutMs);
    let entry = this.takeIdle(key);
    if (entry === undefined) {
      const stream = await this.libp2p.dialProtocol(peer, protocol, { signal });
      entry = { stream, lp: lpStream(stream, { maxDataLength: opts.maxReplyBytes ?? 4 * 1024 * 1024 }), idleSince: 0 };
    }
    try {
      await entry.lp.write(body, { signal });
      const reply = (await entry.lp.read({ signal })).subarray();
      this.release(key, entry);
      return reply;
    } catch (e) {
      entry.stream.abort(e instanceof Error ? e : new Error('request failed'));
      throw e;
    }
  }

  private takeIdle(key: string): PooledStream | undefined {
    const pool = this.idle.get(key);
    const now = Date.now();
    while (pool !== undefined && pool.length > 0) {
      const entry = pool.pop()!;
      if (reusable(entry.stream) && now - entry.idleSince < CLIENT_IDLE_MS) return entry;
      void closeQuietly(entry.stream);
    }
    return undefined;
  }

  private release(key: string, entry: PooledStream): void {
    let pool = this.idle.get(key);
    if (pool === undefined) this.idle.set(key, (pool = []));
    if (pool.length >= this.maxIdlePerPeer || !reusable(entry.stream)) {
      void closeQuietly(entry.stream);
      return;
    }
    entry.idleSince = Date.now();
    pool.push(entry);
  }

  /** Closes every idle stream (before stopping the host). */
  async close(): Promise<void> {
    const all = [...this.idle.values()].flat();
    this.idle.clear();
    await Promise.all(all.map((e) => closeQuietly(e.stream)));
  }
}


/**
 * Keeps a connection to every other committee member: dials at start, redials with
 * exponential backoff (0.25 s → 5 s) after a disconnect, e.g. when a peer restarts.
 */
interface MemberPeer {
  member: CommitteeMember;
  peerId: PeerId;
  nextDialAt: number;
  backoffMs: number;
  dialing: boolean;
}

function membersOtherThan(committee: Committee, selfId: number | undefined): Map<number, MemberPeer> {
  const peers = new Map<number, MemberPeer>();
  for (const member of committee.members) {
    if (member.id === selfId) continue;
    peers.set(member.id, { member, peerId: peerIdFromString(member.peerId), nextDialAt: 0, backoffMs: 250, dialing: false });
  }
  return peers;
}

export class MemberConnections {
  private peers: Map<number, MemberPeer>;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private readonly onChange: () => void;
  /** Called when a member's first connection opens (e.g. to pull state it may hold). */
  onMemberConnected: ((memberId: number) => void) | undefined;

  constructor(
    private readonly libp2p: Libp2p,
    committee: Committee,
    selfId: number | undefined,
    private readonly log: Logger,
    onChange: () => void = () => {},
  ) {
    this.onChange = onChange;
    this.peers = membersOtherThan(committee, selfId);
  }

  private started = false;

  /**
   * The committee changed (a reshare committed): dial the members of `committee` other than
   * `selfId` (undefined: this node left, it keeps no member connection) and forget the others.
   * Member ids may be reassigned, so every entry is rebuilt; a member already connected under its
   * new id counts as connected at once and is announced like a new connection.
   */
  async setCommittee(committee: Committee, selfId: number | undefined): Promise<void> {
    const before = new Set([...this.peers.values()].map((p) => `${p.member.id}/${p.member.peerId}`));
    this.peers = membersOtherThan(committee, selfId);
    if (!this.started) return;
    await this.rememberAddresses();
    for (const p of this.peers.values()) {
      if (!before.has(`${p.member.id}/${p.member.peerId}`) && this.isConnected(p.member.id)) this.onMemberConnected?.(p.member.id);
    }
    this.onChange();
  }

  private async rememberAddresses(): Promise<void> {
    for (const p of this.peers.values()) {
      await this.libp2p.peerStore.merge(p.peerId, { multiaddrs: p.member.multiaddrs.map((a) => multiaddr(a)) });
    }
  }

  async start(): Promise<void> {
    this.started = true;
    await this.rememberAddresses();
    this.libp2p.addEventListener('peer:connect', (evt) => {
      const member = this.memberFor(evt.detail.toString());
      const p = member === undefined ? undefined : this.peers.get(member.id);
      if (member !== undefined && p !== undefined) {
        p.backoffMs = 250;
        this.log.info({ member: member.id }, 'member connected');
        this.onMemberConnected?.(member.id);
      }
      this.onChange();
    });
    this.libp2p.addEventListener('peer:disconnect', (evt) => {
      const member = this.memberFor(evt.detail.toString());
      const p = member === undefined ? undefined : this.peers.get(member.id);
      if (p !== undefined) {
        this.log.warn({ member: p.member.id }, 'member disconnected; will redial');
        p.nextDialAt = Date.now() + p.backoffMs;
      }
      this.onChange();
    });
    this.tick();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
  }

  memberFor(peerId: string): CommitteeMember | undefined {
    for (const p of this.peers.values()) if (p.member.peerId === peerId) return p.member;
    return undefined;
  }

  peerIdOf(memberId: number): PeerId | undefined {
    return this.peers.get(memberId)?.peerId;
  }

  isConnected(memberId: number): boolean {
    const p = this.peers.get(memberId);
    return p !== undefined && this.libp2p.getConnections(p.peerId).some((c) => c.status === 'open');
  }

  connectedMembers(): number[] {
    return [...this.peers.keys()].filter((id) => this.isConnected(id)).sort((a, b) => a - b);
  }

  private tick(): void {
    if (this.stopped) return;
    const now = Date.now();
    for (const p of this.peers.values()) {
      if (p.dialing || now < p.nextDialAt || this.isConnected(p.member.id)) continue;
      p.dialing = true;
      this.libp2p
        .dial(p.peerId, { signal: AbortSignal.timeout(5_000) })
        .then(() => {
          p.backoffMs = 250;
        })
        .catch((e: unknown) => {
          p.nextDialAt = Date.now() + p.backoffMs;
          p.backoffMs = Math.min(p.backoffMs * 2, 5_000);
          this.log.debug({ member: p.member.id, err: errorText(e) }, 'dial failed');
        })
        .finally(() => {
          p.dialing = false;
        });
    }
    this.timer = setTimeout(() => this.tick(), 200);
    this.timer.unref();
  }
}
