import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';

/**
 * TCP proxies on the links of a devnet, for real network partitions on one machine.
 *
 * Every node (and the gateway) gets a committee file of its own (Devnet `linkAddress`), in which
 * member j's address is a proxy that only `from` dials: one listener per directed link
 * from → to. Libp2p on the nodes has no identify service, so peers never learn the real listen
 * addresses and every node-to-node and gateway-to-node connection runs through exactly one of
 * these proxies. Cutting every link that touches node i isolates it from everyone while its
 * process keeps running, with its state, its timers and its own dial attempts:
 *
 *   - `blackhole`: bytes stop flowing both ways on the open connections (reads are paused, so
 *     what was sent waits in the kernel buffers, as TCP retransmissions would), and new
 *     connections are accepted but never forwarded (the dialer times out). On heal, held data
 *     flows again and held connections are forwarded late (or dropped if the dialer gave up).
 *   - `reset`: open connections are reset (RST) and new ones are reset at once, like a firewall
 *     that rejects.
 */
export type LinkEnd = number | 'gateway';
export type PartitionMode = 'blackhole' | 'reset';

interface Direction {
  src: Socket;
  dst: Socket;
  /** Read while the link was cut: delivered on heal, in order. */
  queued: Buffer[];
  endQueued: boolean;
}

interface Pipe {
  client: Socket;
  upstream: Socket | undefined;
  directions: Direction[];
  /** A side closed while the link was cut: the other side learns it on heal. */
  closePending: boolean;
}

interface Link {
  from: LinkEnd;
  to: number;
  targetPort: number;
  server: Server;
  port: number;
  cut: PartitionMode | undefined;
  pipes: Set<Pipe>;
}

export interface LinkProxyStats {
  links: number;
  connections: number;
  resets: number;
  heldConnections: number;
}

export class LinkProxies {
  private readonly links: Link[] = [];
  private readonly cuts = new Map<number, PartitionMode>();
  private readonly stats: LinkProxyStats = { links: 0, connections: 0, resets: 0, heldConnections: 0 };

  /** Opens the proxy for from → to (forwarding to 127.0.0.1:targetPort); returns its multiaddr. */
  async open(from: LinkEnd, to: number, targetPort: number): Promise<string> {
    const server = createServer({ noDelay: true });
    const link: Link = { from, to, targetPort, server, port: 0, cut: undefined, pipes: new Set() };
    server.on('connection', (client) => this.accept(link, client));
    server.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    link.port = (server.address() as AddressInfo).port;
    // A node already cut off keeps its new links cut too.
    link.cut = this.cutFor(link);
    this.links.push(link);
    this.stats.links++;
    return `/ip4/127.0.0.1/tcp/${link.port}`;
  }

  /** The hook for Devnet's `linkAddress`. */
  readonly linkAddress = async (from: LinkEnd, to: number, listen: string): Promise<string> => {
    const port = Number(/\/tcp\/(\d+)/.exec(listen)?.[1]);
    if (!Number.isInteger(port) || port <= 0) throw new Error(`cannot proxy ${listen}`);
    return this.open(from, to, port);
  };

  private cutFor(link: Link): PartitionMode | undefined {
    const modes = [typeof link.from === 'number' ? this.cuts.get(link.from) : undefined, this.cuts.get(link.to)];
    return modes.includes('reset') ? 'reset' : modes.includes('blackhole') ? 'blackhole' : undefined;
  }

  private accept(link: Link, client: Socket): void {
    this.stats.connections++;
    client.setNoDelay(true);
    client.on('error', () => undefined);
    if (link.cut === 'reset') {
      this.stats.resets++;
      client.resetAndDestroy();
      return;
    }
    const pipe: Pipe = { client, upstream: undefined, directions: [], closePending: false };
    link.pipes.add(pipe);
    client.once('close', () => this.onClose(link, pipe));
    if (link.cut === 'blackhole') {
      // Accepted but never forwarded while cut: the dialer waits, as for a SYN into the void.
      this.stats.heldConnections++;
      client.pause();
      return;
    }
    this.connect(link, pipe);
  }

  private connect(link: Link, pipe: Pipe): void {
    const upstream = createConnection({ host: '127.0.0.1', port: link.targetPort, noDelay: true });
    pipe.upstream = upstream;
    upstream.on('error', () => undefined);
    upstream.once('close', () => this.onClose(link, pipe));
    pipe.directions = [this.forward(link, pipe.client, upstream), this.forward(link, upstream, pipe.client)];
    pipe.client.resume();
  }

  /** Manual forwarding (not pipe()): while the link is cut nothing gets through, whatever backpressure says. */
  private forward(link: Link, src: Socket, dst: Socket): Direction {
    const d: Direction = { src, dst, queued: [], endQueued: false };
    src.on('data', (chunk: Buffer) => {
      if (link.cut !== undefined) {
        d.queued.push(chunk);
        src.pause();
        return;
      }
      if (!dst.write(chunk)) {
        src.pause();
        dst.once('drain', () => {
          if (link.cut === undefined) src.resume();
        });
      }
    });
    src.on('end', () => {
      if (link.cut !== undefined) d.endQueued = true;
      else if (!dst.destroyed) dst.end();
    });
    return d;
  }

  private onClose(link: Link, pipe: Pipe): void {
    if (!link.pipes.has(pipe)) return;
    if (link.cut === 'blackhole') {
      pipe.closePending = true;
      return;
    }
    this.finish(link, pipe);
  }

  private finish(link: Link, pipe: Pipe): void {
    link.pipes.delete(pipe);
    if (!pipe.client.destroyed) pipe.client.destroy();
    if (pipe.upstream !== undefined && !pipe.upstream.destroyed) pipe.upstream.destroy();
  }

  private release(link: Link, pipe: Pipe): void {
    if (pipe.closePending) {
      this.finish(link, pipe);
      return;
    }
    if (pipe.upstream === undefined) {
      this.connect(link, pipe);
      return;
    }
    for (const d of pipe.directions) {
      for (const chunk of d.queued.splice(0)) if (!d.dst.destroyed) d.dst.write(chunk);
      if (d.endQueued && !d.dst.destroyed) d.dst.end();
      d.src.resume();
    }
  }

  private linksOf(node: number): Link[] {
    return this.links.filter((l) => l.to === node || l.from === node);
  }

  /** Cuts node `node` off from every other node and from the gateway. */
  partition(node: number, mode: PartitionMode): void {
    this.cuts.set(node, mode);
    for (const link of this.linksOf(node)) {
      // A reset wins over a blackhole on a link both ends of which are cut.
      link.cut = link.cut === 'reset' ? 'reset' : mode;
      for (const pipe of [...link.pipes]) {
        if (link.cut === 'reset') {
          this.stats.resets++;
          link.pipes.delete(pipe);
          pipe.client.resetAndDestroy();
          pipe.upstream?.resetAndDestroy();
        } else {
          pipe.client.pause();
          pipe.upstream?.pause();
        }
      }
    }
  }

  /** Restores every link of `node` (links still cut because the other end is cut stay cut). */
  heal(node: number): void {
    this.cuts.delete(node);
    for (const link of this.linksOf(node)) {
      link.cut = this.cutFor(link);
      if (link.cut !== undefined) continue;
      for (const pipe of [...link.pipes]) this.release(link, pipe);
    }
  }

  isCut(node: number): boolean {
    return this.cuts.has(node);
  }

  summary(): LinkProxyStats {
    return { ...this.stats };
  }

  async close(): Promise<void> {
    for (const link of this.links) {
      for (const pipe of link.pipes) {
        pipe.client.destroy();
        pipe.upstream?.destroy();
      }
      link.pipes.clear();
    }
    await Promise.all(this.links.map((l) => new Promise<void>((r) => l.server.close(() => r()))));
  }
}
