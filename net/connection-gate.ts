import type { Connection, MultiaddrConnection, PeerId } from '@libp2p/interface';
import type { Multiaddr } from '@multiformats/multiaddr';

export interface OutsiderLimits {
  /** Inbound connections from peers that are neither members nor gateways, all together. */
  total: number;
  /** The same from one IP address (other than those exempt, e.g. loopback). */
  perIp: number;
}

/** By default: well below the connection manager's maximum, so the rest stays for members and gateways. */
export const OUTSIDER_LIMITS: OutsiderLimits = { total: 64, perIp: 8 };

function ipOf(addr: Multiaddr): string | undefined {
  return addr.getComponents().find((c) => c.name === 'ip4' || c.name === 'ip6')?.value;
}

/**
 * Admission of inbound connections once the remote peer id is known (after the handshake):
 * members and gateways always, everyone else only while outsiders hold fewer than their share,
 * in total and per IP. Without it, idle connections from free peer ids fill libp2p's connection
 * limit and a reconnecting gateway is refused (or pruned) until they leave.
 *
 * Counts the connections that are open when a handshake ends; handshakes finishing at the same
 * moment can each pass, so the count may overshoot by the handshakes in flight (libp2p's pending
 * limit).
 */
export class ConnectionGate {
  private connections: () => Connection[] = () => [];

  constructor(
    private readonly trusted: (peer: string) => boolean,
    private readonly limits: OutsiderLimits = OUTSIDER_LIMITS,
    /** Addresses the per-IP cap does not apply to. */
    private readonly perIpExempt: (ip: string) => boolean = () => false,
  ) {}

  /** The host's live connections (the gate is built before the host). */
  attach(connections: () => Connection[]): void {
    this.connections = connections;
  }

  /** True to refuse, as libp2p's denyInboundEncryptedConnection expects. */
  denyInbound(peer: PeerId, maConn: MultiaddrConnection): boolean {
    if (this.trusted(peer.toString())) return false;
    const ip = ipOf(maConn.remoteAddr);
    let total = 0;
    let sameIp = 0;
    for (const c of this.connections()) {
      if (c.direction !== 'inbound' || c.status !== 'open' || this.trusted(c.remotePeer.toString())) continue;
      total++;
      if (ip !== undefined && ipOf(c.remoteAddr) === ip) sameIp++;
    }
    return total >= this.limits.total || (ip !== undefined && !this.perIpExempt(ip) && sameIp >= this.limits.perIp);
  }
}
