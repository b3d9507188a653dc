import assert from 'node:assert/strict';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { Connection, MultiaddrConnection, PeerId } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import { ConnectionGate } from '../../net/connection-gate.ts';

/** Admission of inbound connections by peer and IP: the caps the daemon's libp2p host applies to outsiders. */
describe('ConnectionGate (outsider connection caps)', () => {
  const peer = async (): Promise<PeerId> => peerIdFromPrivateKey(await generateKeyPair('Ed25519'));
  const from = (ip: string): MultiaddrConnection => ({ remoteAddr: multiaddr(`/ip4/${ip}/tcp/4000`) }) as MultiaddrConnection;
  const open = (remotePeer: PeerId, ip: string): Connection => ({ remotePeer, remoteAddr: multiaddr(`/ip4/${ip}/tcp/4000`), direction: 'inbound', status: 'open' }) as Connection;

  it('caps outsiders per IP and in total, never members or gateways; exempt IPs only count toward the total', async () => {
    const gateway = await peer();
    const live: Connection[] = [];
    const gate = new ConnectionGate((p) => p === gateway.toString(), { total: 5, perIp: 2, pendingPerIp: 2 }, (ip) => ip.startsWith('127.'));
    gate.attach(() => live);
    for (let i = 0; i < 2; i++) {
      const p = await peer();
      assert.equal(gate.denyInbound(p, from('198.51.100.1')), false);
      live.push(open(p, '198.51.100.1'));
    }
    assert.equal(gate.denyInbound(await peer(), from('198.51.100.1')), true, 'a third outsider from one IP');
    assert.equal(gate.denyInbound(gateway, from('198.51.100.1')), false, 'the gateway from that IP');
    for (let i = 0; i < 3; i++) {
      const p = await peer();
      assert.equal(gate.denyInbound(p, from('127.0.0.1')), false);
      live.push(open(p, '127.0.0.1'));
    }
    assert.equal(gate.denyInbound(await peer(), from('203.0.113.9')), true, 'a sixth outsider, from a new IP');
    assert.equal(gate.denyInbound(gateway, from('203.0.113.9')), false, 'the gateway once outsiders are at their total');
    // Connections of trusted peers and closed ones do not count.
    live.push(open(gateway, '203.0.113.9'));
    live[0] = { ...live[0]!, status: 'closed' } as Connection;
    assert.equal(gate.denyInbound(await peer(), from('203.0.113.9')), false);
  });

  describe('handshakes pending per IP (before the peer is known)', () => {
    /** A connection whose handshake is under way: libp2p closes it when the handshake fails or times out. */
    class Handshake extends EventTarget {
      status = 'open';
      constructor(readonly remoteAddr = multiaddr('/ip4/198.51.100.7/tcp/4000')) {
        super();
      }
      close(): void {
        this.status = 'closed';
        this.dispatchEvent(new Event('close'));
      }
    }
    const conn = (h: Handshake): MultiaddrConnection => h as unknown as MultiaddrConnection;
    const IP = '198.51.100.7';
    const gateFor = (backstopMs = 30_000): ConnectionGate =>
      new ConnectionGate(() => false, { total: 64, perIp: 8, pendingPerIp: 2 }, () => false, (ip) => ip === '192.0.2.1', backstopMs);

    it('admits two at once from one IP, refuses a third, and counts each address apart', () => {
      const gate = gateFor();
      const [a, b] = [new Handshake(), new Handshake()];
      assert.equal(gate.denyPending(conn(a)), false);
      assert.equal(gate.denyPending(conn(b)), false);
      assert.equal(gate.pendingFrom(IP), 2);
      assert.equal(gate.denyPending(conn(new Handshake())), true, 'a third handshake from the same IP');
      assert.equal(gate.pendingFrom(IP), 2, 'a refused handshake holds nothing');
      assert.equal(gate.denyPending(conn(new Handshake(multiaddr('/ip4/198.51.100.8/tcp/1')))), false, 'another IP');
      for (let i = 0; i < 5; i++) assert.equal(gate.denyPending(conn(new Handshake(multiaddr('/ip4/192.0.2.1/tcp/1')))), false, 'an allow-listed IP');
      assert.equal(gate.pendingFrom('192.0.2.1'), 0);
    });

    it('ends the count when the handshake completes, fails or times out (libp2p closes it), once each', () => {
      const gate = gateFor();
      const done = new Handshake();
      const failed = new Handshake();
      gate.denyPending(conn(done));
      gate.denyPending(conn(failed));
      assert.equal(gate.upgraded(conn(done)), false, 'upgraded never refuses');
      assert.equal(gate.pendingFrom(IP), 1);
      // The finished connection closing later must not free a second slot.
      done.close();
      assert.equal(gate.pendingFrom(IP), 1);
      failed.close();
      assert.equal(gate.pendingFrom(IP), 0);
      // libp2p aborts a timed-out handshake's connection: the same close.
      const timedOut = new Handshake();
      const next = new Handshake();
      gate.denyPending(conn(timedOut));
      gate.denyPending(conn(next));
      assert.equal(gate.denyPending(conn(new Handshake())), true);
      timedOut.close();
      assert.equal(gate.denyPending(conn(new Handshake())), false, 'a slot freed by the timeout');
      assert.equal(gate.pendingFrom(IP), 2);
    });

    it('does not count a connection already closed, and ends a count libp2p never ends after the backstop', async () => {
      const gate = gateFor(50);
      const closed = new Handshake();
      closed.close();
      assert.equal(gate.denyPending(conn(closed)), false);
      assert.equal(gate.pendingFrom(IP), 0);
      gate.denyPending(conn(new Handshake()));
      gate.denyPending(conn(new Handshake()));
      assert.equal(gate.pendingFrom(IP), 2);
      await new Promise((r) => setTimeout(r, 120));
      assert.equal(gate.pendingFrom(IP), 0);
    });
  });
});
