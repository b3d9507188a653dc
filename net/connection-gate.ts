import type { Connection, MultiaddrConnection, PeerId } from '@libp2p/interface';
import type { Multiaddr } from '@multiformats/multiaddr';

export interface OutsiderLimits {
  /** Inbound connections from peers that are neither members nor gateways, all together. */
  total: number;
  /** The same from one IP address (other than those exempt, e.g. loopback). */
  perIp: number;
  /**
   * Handshakes in progress at once from one IP address off the allow list (whoever it turns out to
   * be: the peer is unknown until the handshake ends).
   */
  pendingPerIp: number;
}

/** By default: well below the connection manager's maximum, so the rest stays for members and gateways. */
export const OUTSIDER_LIMITS: OutsiderLimits = { total: 64, perIp: 8, pendingPerIp: 2 };

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
  /** Handshakes in progress per IP, and how to end each one's count. */
  private readonly pending = new Map<string, number>();
  private readonly upgrading = new Map<MultiaddrConnection, () => void>();

  constructor(
    private readonly trusted: (peer: string) => boolean,
    private readonly limits: OutsiderLimits = OUTSIDER_LIMITS,
    /** Addresses the per-IP cap does not apply to. */
    private readonly perIpExempt: (ip: string) => boolean = () => false,
    /** Addresses the per-IP pending cap does not apply to: those on libp2p's allow list, which skip its pending limit. */
    private readonly pendingExempt: (ip: string) => boolean = () => false,
    /**
     * A handshake's count ends at the latest this long after it began, should libp2p neither finish
     * nor close it (it closes every failed or timed-out one): a leaked count would lock an IP out.
     */
    private readonly pendingBackstopMs = 30_000,
  ) {}

  /** Handshakes counted against `ip` now. */
  pendingFrom(ip: string): number {
    return this.pending.get(ip) ?? 0;
  }

  /**
   * Before the handshake (libp2p's denyInboundConnection; true to refuse): at most `pendingPerIp`
   * handshakes at once from one IP off the allow list. libp2p refuses every inbound connection
   * off its allow list once its pending limit is reached; without this, one address that opens
   * TCP connections and never finishes the handshake keeps that limit full, refilling it as
   * handshakes time out, and a reconnecting gateway is refused. The count ends when the handshake
   * does (`upgraded`), or when the connection closes (failed, timed out, refused later).
   */
  denyPending(maConn: MultiaddrConnection): boolean {
    const ip = ipOf(maConn.remoteAddr);
    if (ip === undefined || this.pendingExempt(ip)) return false;
    const held = this.pendingFrom(ip);
    if (held >= this.limits.pendingPerIp) return true;
    if (maConn.status !== 'open') return false;
    this.pending.set(ip, held + 1);
    const release = (): void => {
      if (!this.upgrading.delete(maConn)) return;
      clearTimeout(backstop);
      maConn.removeEventListener('close', release);
      const left = this.pendingFrom(ip) - 1;
      if (left > 0) this.pending.set(ip, left);
      else this.pending.delete(ip);
    };
    const backstop = setTimeout(release, this.pendingBackstopMs);
    backstop.unref?.();
    this.upgrading.set(maConn, release);
    maConn.addEventListener('close', release);
    return false;
  }

  /** The handshake of `maConn` has ended well (libp2p's denyInboundUpgradedConnection); never refuses. */
  upgraded(maConn: MultiaddrConnection): boolean {
    this.upgrading.get(maConn)?.();
    return false;
  }

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
