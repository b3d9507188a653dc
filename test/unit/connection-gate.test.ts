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
    const gate = new ConnectionGate((p) => p === gateway.toString(), { total: 5, perIp: 2 }, (ip) => ip.startsWith('127.'));
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
});
