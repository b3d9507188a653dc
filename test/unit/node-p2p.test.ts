import assert from 'node:assert/strict';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import type { Libp2p } from 'libp2p';
import { parseCommittee, type Committee } from '../../net/committee.ts';
import type { NodeIdentity } from '../../node/identity.ts';
import { createLogger } from '../../runtime/logger.ts';
import { createHost, FrameClient, serveFrames, MemberConnections, requestFrame } from '../../net/p2p.ts';
import { freePorts, waitFor } from '../support/processes.ts';

const log = createLogger('silent');
const PROTOCOL = '/tkms/test-echo/1';

describe('node p2p: libp2p hosts on loopback', function () {
  this.timeout(30_000);
  let identities: NodeIdentity[] = [];
  let ports: number[] = [];
  let committee: Committee;
  const hosts = new Map<number, { libp2p: Libp2p; conns: MemberConnections }>();

  async function startMember(id: number): Promise<void> {
    const libp2p = await createHost(identities[id - 1]!, [`/ip4/127.0.0.1/tcp/${ports[id - 1]}`], committee);
    const conns = new MemberConnections(libp2p, committee, id, log);
    await serveFrames(
      libp2p,
      PROTOCOL,
      async (remote, body) => {
        const member = conns.memberFor(remote);
        const text = new TextDecoder().decode(body);
        if (text === 'fail') throw new Error('handler failed on purpose');
        const sleep = /^sleep:(\d+):/.exec(text);
        if (sleep) await new Promise((r) => setTimeout(r, Number(sleep[1])));
        return new TextEncoder().encode(`${id}<-${member?.id ?? 'stranger'}:${text}`);
      },
      { maxRequestBytes: 1024, timeoutMs: 5_000, log },
    );
    await libp2p.start();
    await conns.start();
    hosts.set(id, { libp2p, conns });
  }

  async function stopMember(id: number): Promise<void> {
    const h = hosts.get(id);
    hosts.delete(id);
    h?.conns.stop();
    await h?.libp2p.stop();
  }

  before(async () => {
    identities = [];
    for (let i = 0; i < 3; i++) {
      const privateKey = await generateKeyPair('Ed25519');
      identities.push({ privateKey, peerId: peerIdFromPrivateKey(privateKey).toString() });
    }
    ports = await freePorts(3);
    committee = parseCommittee({
      committeeId: 'p2p-test',
      t: 2,
      members: identities.map((x, i) => ({ id: i + 1, peerId: x.peerId, multiaddrs: [`/ip4/127.0.0.1/tcp/${ports[i]}`] })),
    });
    for (const id of [1, 2, 3]) await startMember(id);
  });

  after(async () => {
    for (const id of [...hosts.keys()]) await stopMember(id);
  });

  it('members dial each other and map authenticated peers to member ids', async () => {
    await waitFor('full mesh', () => ([1, 2, 3].every((id) => hosts.get(id)!.conns.connectedMembers().length === 2) ? true : undefined), { timeoutMs: 10_000 });
    assert.deepEqual(hosts.get(1)!.conns.connectedMembers(), [2, 3]);
    const reply = await requestFrame(hosts.get(1)!.libp2p, hosts.get(1)!.conns.peerIdOf(3)!, PROTOCOL, new TextEncoder().encode('hello'), { timeoutMs: 5_000 });
    assert.equal(new TextDecoder().decode(reply), '3<-1:hello');
  });

  it('carries many concurrent request streams without resets', async () => {
    const h = hosts.get(2)!;
    const peer = h.conns.peerIdOf(1)!;
    const replies = await Promise.all(
      Array.from({ length: 200 }, (_, i) => requestFrame(h.libp2p, peer, PROTOCOL, new TextEncoder().encode(String(i)), { timeoutMs: 10_000 })),
    );
    replies.forEach((r, i) => assert.equal(new TextDecoder().decode(r), `1<-2:${i}`));
  });

  it('a FrameClient keeps one stream for sequential requests, one per concurrent request, and never mixes replies', async () => {
    const h = hosts.get(2)!;
    const peer = h.conns.peerIdOf(1)!;
    const client = new FrameClient(h.libp2p);
    const openStreams = () => h.libp2p.getConnections(peer).flatMap((c) => c.streams).filter((st) => st.protocol === PROTOCOL && st.status === 'open').length;
    const ask = async (text: string) => new TextDecoder().decode(await client.request(peer, PROTOCOL, new TextEncoder().encode(text), { timeoutMs: 5_000 }));
    try {
      for (let i = 0; i < 20; i++) assert.equal(await ask(`seq ${i}`), `1<-2:seq ${i}`);
      assert.equal(openStreams(), 1, 'sequential requests reuse one kept-alive stream');
      // Replies come back in a different order than the requests went out; each must reach its caller.
      const texts = Array.from({ length: 40 }, (_, i) => `sleep:${(i * 7) % 30}:${i}`);
      const replies = await Promise.all(texts.map(ask));
      replies.forEach((r, i) => assert.equal(r, `1<-2:${texts[i]}`));
      assert.ok(openStreams() <= 40, `at most one stream per concurrent request (saw ${openStreams()})`);
      // A failed request aborts its stream; the next request is answered on a good one.
      await assert.rejects(() => ask('fail'));
      assert.equal(await ask('after'), '1<-2:after');
    } finally {
      await client.close();
    }
    await waitFor('idle streams closed', () => (openStreams() === 0 ? true : undefined), { timeoutMs: 5_000 });
  });

  it('redials a member that restarted', async () => {
    const pooled = new FrameClient(hosts.get(1)!.libp2p);
    const ask = async () => new TextDecoder().decode(await pooled.request(hosts.get(1)!.conns.peerIdOf(3)!, PROTOCOL, new TextEncoder().encode('pooled'), { timeoutMs: 5_000 }));
    assert.equal(await ask(), '3<-1:pooled');
    await stopMember(3);
    await waitFor('node 1 notices node 3 left', () => (hosts.get(1)!.conns.connectedMembers().includes(3) ? undefined : true), { timeoutMs: 10_000 });
    await startMember(3);
    await waitFor('node 1 reconnects to node 3', () => (hosts.get(1)!.conns.connectedMembers().includes(3) ? true : undefined), { timeoutMs: 15_000 });
    const reply = await requestFrame(hosts.get(1)!.libp2p, hosts.get(1)!.conns.peerIdOf(3)!, PROTOCOL, new TextEncoder().encode('again'), { timeoutMs: 5_000 });
    assert.equal(new TextDecoder().decode(reply), '3<-1:again');
    // The stream kept from before the restart is dead; the client must not send on it.
    assert.equal(await ask(), '3<-1:pooled');
    await pooled.close();
  });
});
