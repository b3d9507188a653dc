import assert from 'node:assert/strict';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import type { Libp2p } from 'libp2p';
import pino from 'pino';
import { freePorts } from '../../deploy/devnet.ts';
import type { Committee } from '../../net/committee.ts';
import { createHost, serveFrames, requestFrame } from '../../net/p2p.ts';
import { waitFor } from '../support/processes.ts';

/**
 * Attack on the requests a node works on at once: outsiders (free peer ids) keep requests in
 * flight until the protocol's cap is reached, so the gateway's next request would be refused
 * `busy`. Real libp2p hosts over TCP; the served protocol's handler holds outsiders' requests
 * for as long as the test likes (as slow work or a reply waiting to drain would).
 */
const PROTOCOL = '/tkms-test/inflight/1.0.0';
const TRUSTED_IN_FLIGHT = 8;
const OTHER_IN_FLIGHT = 4;

describe('attack: outsiders fill the in-flight cap so the gateway is answered busy', function () {
  this.timeout(60_000);
  const hosts: Libp2p[] = [];
  let node: Libp2p;
  let gatewayKey: PrivateKey;
  let committee: Committee;
  let release: () => void = () => {};
  const held = new Promise<void>((r) => (release = r));

  const client = async (key?: PrivateKey): Promise<Libp2p> => {
    const h = await createHost({ privateKey: key ?? (await generateKeyPair('Ed25519')) }, [], committee);
    await h.start();
    const m = committee.members[0]!;
    await h.peerStore.merge(node.peerId, { multiaddrs: m.multiaddrs.map((a) => multiaddr(a)) });
    hosts.push(h);
    return h;
  };
  const ask = (from: Libp2p, hold: boolean): Promise<Uint8Array> => requestFrame(from, node.peerId, PROTOCOL, Uint8Array.of(hold ? 1 : 0), { timeoutMs: 15_000 });

  before(async () => {
    const nodeKey = await generateKeyPair('Ed25519');
    gatewayKey = await generateKeyPair('Ed25519');
    const [port] = await freePorts(1);
    const listen = `/ip4/127.0.0.1/tcp/${port}`;
    committee = { committeeId: 'inflight-test', epoch: 0, t: 1, members: [{ id: 1, peerId: peerIdFromPrivateKey(nodeKey).toString(), multiaddrs: [listen], publicKey: nodeKey.publicKey.raw }] };
    const gatewayPeer = peerIdFromPrivateKey(gatewayKey).toString();
    node = await createHost({ privateKey: nodeKey }, [listen], committee, { gatewayPeerIds: [gatewayPeer] });
    hosts.push(node);
    await serveFrames(
      node,
      PROTOCOL,
      async (_peer, body) => {
        if (body[0] === 1) await held;
        return Uint8Array.of(7);
      },
      {
        maxRequestBytes: 64,
        timeoutMs: 15_000,
        log: pino({ level: 'silent' }),
        maxInFlight: TRUSTED_IN_FLIGHT,
        maxOtherInFlight: OTHER_IN_FLIGHT,
        trusted: (peer) => peer === gatewayPeer,
      },
    );
    await node.start();
  });

  after(async () => {
    release();
    await Promise.all(hosts.map(async (h) => h.stop()));
  });

  it('outsiders past their own pool are refused, and the gateway is still served', async () => {
    // As many held requests as the whole trusted pool, from fresh peer ids: all of them would fit
    // in one shared pool and leave the gateway nothing.
    const outsiders = await Promise.all(Array.from({ length: TRUSTED_IN_FLIGHT }, () => client()));
    let settled = 0;
    const pending = outsiders.map((o) =>
      ask(o, true).then(
        () => 'answered',
        () => 'refused',
      ).finally(() => settled++),
    );
    // The requests past the outsiders' pool are refused as they arrive; the rest stay in flight.
    await waitFor('outsiders past their pool to be refused', () => (settled >= TRUSTED_IN_FLIGHT - OTHER_IN_FLIGHT ? true : undefined), { timeoutMs: 15_000 });
    const gateway = await client(gatewayKey);
    // The gateway fills its own pool but one, then asks once more: all in flight beside the outsiders'.
    const gatewayHeld = Array.from({ length: TRUSTED_IN_FLIGHT - 1 }, () =>
      ask(gateway, true).then(
        () => 'answered',
        () => 'refused',
      ),
    );
    assert.deepEqual([...(await ask(gateway, false))], [7], 'the gateway\'s request was answered');
    release();
    assert.deepEqual(await Promise.all(gatewayHeld), Array(TRUSTED_IN_FLIGHT - 1).fill('answered'));
    const outcomes = await Promise.all(pending);
    assert.equal(outcomes.filter((o) => o === 'answered').length, OTHER_IN_FLIGHT, `outsiders' outcomes: ${outcomes.join(', ')}`);
  });
});
