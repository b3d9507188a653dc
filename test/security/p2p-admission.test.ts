import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { setMaxListeners } from 'node:events';
import { readFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PrivateKey, Stream, StreamMuxer } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { tcp } from '@libp2p/tcp';
import { multiaddr } from '@multiformats/multiaddr';
import { createLibp2p, type Libp2p } from 'libp2p';
import { generateAccount, TkmsClient, type Account } from '../../client/index.ts';
import { Devnet } from '../../deploy/devnet.ts';
import { loadCommitteeFile, type Committee } from '../../net/committee.ts';
import { OUTSIDER_LIMITS } from '../../net/connection-gate.ts';
import { createHost } from '../../net/p2p.ts';
import { P2pClient } from '../support/p2p-client.ts';
import { makeTempDir, removeDir, waitFor } from '../support/processes.ts';

/**
 * Attacks on what a node admits before any protocol handler runs: bytes parked on streams whose
 * protocol is never agreed, and idle connections from free peer ids that used to fill the node's
 * connection limit and keep the gateway out. Real node and gateway processes (a devnet: 3 nodes,
 * t = 2), attacked over real libp2p connections.
 */
const MiB = 1024 * 1024;

async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)![1]) / 1024;
}

/** `count` copies of the multistream header, length-prefixed: each one the node answers in kind. */
function headers(count: number): Uint8Array {
  const line = new TextEncoder().encode('/multistream/1.0.0\n');
  const one = new Uint8Array(1 + line.length);
  one[0] = line.length;
  one.set(line, 1);
  const out = new Uint8Array(count * one.length);
  for (let i = 0; i < count; i++) out.set(one, i * one.length);
  return out;
}

/** Sends as much of `bytes` as the node lets through; stops when the node ends the stream. */
async function push(stream: Stream, bytes: Uint8Array, signal: AbortSignal): Promise<void> {
  try {
    for (let at = 0; at < bytes.length; at += 64 * 1024) {
      if (stream.status !== 'open' || stream.writeStatus !== 'writable') return;
      if (!stream.send(bytes.subarray(at, at + 64 * 1024))) await stream.onDrain({ signal });
    }
  } catch {
    // The node reset the stream: what the attack wants to find out.
  }
}

describe('attacks on a node\'s libp2p admission by outsiders (devnet: 3 nodes, t = 2)', function () {
  this.timeout(240_000);
  let dir: string | undefined;
  let devnet: Devnet | undefined;
  let committee: Committee;
  const clients: P2pClient[] = [];
  let alice: Account;
  let bob: Account;
  let handle = '';

  const outsider = async (): Promise<P2pClient> => {
    const c = await P2pClient.start(committee);
    clients.push(c);
    return c;
  };
  const stopClients = async (): Promise<void> => {
    await Promise.all(clients.splice(0).map((c) => c.stop().catch(() => undefined)));
  };
  const decryptsStill = async (): Promise<void> => {
    const bobClient = new TkmsClient({ gatewayUrl: devnet!.gatewayUrl, account: bob, trustedMemberKeys: await devnet!.memberKeys() });
    assert.equal(new TextDecoder().decode((await bobClient.decrypt(handle)).plaintext), 'still served');
  };

  before(async function () {
    this.timeout(180_000);
    dir = await makeTempDir('tkms-sec-p2p-admission');
    devnet = await Devnet.start({ dir, n: 3, t: 2, gatewayPort: 0, logLevel: 'warn' });
    committee = await loadCommitteeFile(join(dir, 'committee.json'));
    [alice, bob] = [generateAccount(), generateAccount()];
    const aliceClient = new TkmsClient({ gatewayUrl: devnet.gatewayUrl, account: alice, trustedMemberKeys: await devnet.memberKeys() });
    handle = (await aliceClient.encrypt(new TextEncoder().encode('still served'), { keyId: devnet.keyId })).handle;
    await aliceClient.grant(handle, bob.address);
  });

  afterEach(stopClients);

  after(async function () {
    this.timeout(60_000);
    await stopClients();
    await devnet?.stop();
    if (dir !== undefined) await removeDir(dir);
  });

  describe('attack: streams that never finish protocol negotiation, each stuffed with megabytes', () => {
    /**
     * The attacker pauses its side of each stream, so it never grants the node window for
     * replies; it sends thousands of multistream headers, which the node answers until its send
     * window runs out and its negotiation stalls; everything sent after that used to sit in
     * libp2p's negotiation buffer (up to 4 MiB a stream) for the 10 s negotiation timeout.
     */
    const STREAMS = 48;
    const PER_STREAM = headers(Math.floor((4 * MiB - 64 * 1024) / 20));

    it('the node resets each stream after a few KiB, and its resident memory barely grows', async () => {
      const pid = devnet!.node(1).process!.pid!;
      const c = await outsider();
      const connection = await c.libp2p.dial(c.peer(1), { signal: AbortSignal.timeout(10_000) });
      const muxer = (connection as unknown as { muxer: StreamMuxer }).muxer;
      const before = await rssMiB(pid);
      let peak = before;
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          peak = Math.max(peak, await rssMiB(pid));
          await new Promise((r) => setTimeout(r, 100));
        }
      })();
      const started = Date.now();
      const streams: Stream[] = [];
      const ended: Promise<number>[] = [];
      for (let i = 0; i < STREAMS; i++) {
        // A raw yamux stream: no protocol negotiated, as a hand-made peer would open it.
        const s = await muxer.createStream();
        s.send(headers(1));
        streams.push(s);
        ended.push(new Promise((resolve) => s.addEventListener('close', () => resolve(Date.now() - started), { once: true })));
      }
      // Paused once the node has acknowledged the stream (the acknowledgement would undo it): from
      // now on the attacker grants the node no window for its replies.
      await new Promise((r) => setTimeout(r, 300));
      for (const s of streams) s.pause();
      const signal = AbortSignal.timeout(30_000);
      setMaxListeners(Infinity, signal);
      await Promise.all(streams.map((s) => push(s, PER_STREAM, signal)));
      // Bytes past the bound end a stream at once; the old node kept every one open, holding what
      // it was sent, until libp2p's 10 s negotiation timeout.
      const endedAfter = await Promise.race([Promise.all(ended), new Promise<undefined>((r) => setTimeout(() => r(undefined), 9_000))]);
      sampling = false;
      await sampler;
      const grewMiB = peak - before;
      console.log(`      ${STREAMS} streams x ${(PER_STREAM.length / MiB).toFixed(1)} MiB offered: node RSS ${before.toFixed(0)} -> peak ${peak.toFixed(0)} MiB (+${grewMiB.toFixed(0)} MiB)`);
      assert.ok(endedAfter !== undefined, `the node kept ${streams.filter((s) => s.status === 'open').length} of ${STREAMS} attack streams open while they "negotiated"`);
      assert.ok(grewMiB < 96, `node RSS grew by ${grewMiB.toFixed(0)} MiB`);
      await decryptsStill();
    });
  });

  describe('attack: idle outsider connections fill the node so the gateway cannot reconnect', () => {
    it(`outsiders get ${OUTSIDER_LIMITS.total} connections to a node and no more; a restarted gateway still connects and a decryption succeeds`, async () => {
      // Nodes 1 and 2 full: any two of three nodes answer, so the gateway needs one of them.
      const full = [1, 2];
      const connect = async (c: P2pClient): Promise<void> => {
        await Promise.all(full.map((id) => c.libp2p.dial(c.peer(id), { signal: AbortSignal.timeout(20_000) }).catch(() => undefined)));
      };
      for (let i = 0; i < OUTSIDER_LIMITS.total; i += 8) {
        const batch = await Promise.all(Array.from({ length: Math.min(8, OUTSIDER_LIMITS.total - i) }, () => outsider()));
        await Promise.all(batch.map(connect));
      }
      const openTo = (c: P2pClient, id: number): boolean => c.libp2p.getConnections(c.peer(id)).some((x) => x.status === 'open');
      for (const id of full) {
        assert.equal(clients.filter((c) => openTo(c, id)).length, OUTSIDER_LIMITS.total, `outsiders connected to node ${id}`);
      }
      const late = await outsider();
      await connect(late);
      // The node refuses once the handshake names the peer; the dialer may see its side open briefly.
      for (const id of full) await waitFor(`node ${id} to refuse the outsider past the cap`, async () => (openTo(late, id) ? undefined : true), { timeoutMs: 15_000 });

      const gateway = (devnet as unknown as { gateway: ChildProcess }).gateway;
      const exited = new Promise((r) => gateway.once('exit', r));
      gateway.kill('SIGTERM');
      await exited;
      await devnet!.startGateway();
      // Every earlier outsider still holds its connection: the gateway got in beside them.
      for (const id of full) assert.equal(clients.filter((c) => c !== late && openTo(c, id)).length, OUTSIDER_LIMITS.total);
      await decryptsStill();
    });
  });
});

describe('attack: stalled handshakes keep the node\'s pending handshakes full so a gateway cannot reconnect', function () {
  this.timeout(60_000);
  /**
   * libp2p refuses every connection from off its allow list once its pending handshakes are full;
   * the attacker opens TCP connections and never says a word, refilling them as they time out.
   * The host is built as the daemon builds it, except that loopback is not exempt, so the attack
   * comes from 127.0.0.2 (its own address as far as the node can tell); the member's address,
   * 127.0.0.9, is the only one allow-listed, and the gateway dials from 127.0.0.1.
   */
  const ip = '127.0.0.2';
  const listenIp = '127.0.0.1';
  let host: Libp2p | undefined;
  let target = '';
  let port = 0;
  let gatewayKey: PrivateKey;
  const sockets: Socket[] = [];
  type Stalled = { socket: Socket; closed: () => boolean };

  /** A TCP connection from `ip` that never starts the handshake; resolves once connected. */
  const stall = async (): Promise<Stalled> => {
    const socket = connect({ host: listenIp, port, localAddress: ip });
    sockets.push(socket);
    let closed = false;
    socket.on('close', () => (closed = true));
    socket.on('error', () => undefined);
    // A refusal can reset the connection before the connect callback runs.
    await new Promise<void>((resolve) => {
      socket.once('connect', resolve);
      socket.once('close', resolve);
    });
    return { socket, closed: () => closed };
  };
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

  before(async function () {
    const key = await generateKeyPair('Ed25519');
    gatewayKey = await generateKeyPair('Ed25519');
    const self = peerIdFromPrivateKey(key).toString();
    const committee: Committee = { committeeId: 'pending-handshakes', epoch: 0, t: 1, members: [{ id: 1, peerId: self, multiaddrs: ['/ip4/127.0.0.9/tcp/1'], publicKey: key.publicKey.raw }] };
    host = await createHost({ privateKey: key }, [`/ip4/${listenIp}/tcp/0`], committee, { gatewayPeerIds: [peerIdFromPrivateKey(gatewayKey).toString()], exemptLoopback: false });
    await host.start();
    port = Number(host.getMultiaddrs()[0]!.getComponents().find((c) => c.name === 'tcp')!.value);
    target = `/ip4/${listenIp}/tcp/${port}/p2p/${self}`;
  });

  after(async () => {
    for (const s of sockets) s.destroy();
    await host?.stop();
  });

  it(`one address holds at most ${OUTSIDER_LIMITS.pendingPerIp} handshakes; each slot returns when its handshake times out, fails or completes`, async () => {
    const cap = OUTSIDER_LIMITS.pendingPerIp;
    // Within libp2p's own rate of 5 new connections per address per second.
    const first: Stalled[] = [];
    for (let i = 0; i < cap + 2; i++) first.push(await stall());
    // Refused ones are closed at once; the old node held every one until the 3 s handshake timeout.
    await sleep(1_500);
    assert.deepEqual(
      first.map((s) => s.closed()),
      [...Array(cap).fill(false), true, true],
      'handshakes left pending by the attacker (false = still held by the node)',
    );
    // Timed out: the node drops the stalled ones, and their address may try again.
    await waitFor('the node to time out the stalled handshakes', async () => (first.every((s) => s.closed()) ? true : undefined), { timeoutMs: 15_000 });
    const second: Stalled[] = [];
    for (let i = 0; i < cap; i++) second.push(await stall());
    await sleep(1_500);
    assert.ok(second.every((s) => !s.closed()), 'slots freed by the timeout');
    // Failed (the attacker hangs up): slots return, and a gateway from the same address connects.
    for (const s of second) s.socket.destroy();
    await sleep(300);
    const gateway = await createLibp2p({ privateKey: gatewayKey, transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] });
    try {
      const conn = await gateway.dial(multiaddr(target), { signal: AbortSignal.timeout(10_000) });
      assert.equal(conn.status, 'open');
      // Completed: the gateway's handshake holds no slot once done.
      await sleep(300);
      const third: Stalled[] = [];
      for (let i = 0; i < cap + 1; i++) third.push(await stall());
      await sleep(1_500);
      assert.deepEqual(
        third.map((s) => s.closed()),
        [...Array(cap).fill(false), true],
      );
      assert.equal(conn.status, 'open', 'the gateway stays connected');
    } finally {
      await gateway.stop();
    }
  });

  it('an address in gatewayAddresses is allow-listed: no pending cap applies to it', async () => {
    const key = await generateKeyPair('Ed25519');
    const self = peerIdFromPrivateKey(key).toString();
    const committee: Committee = { committeeId: 'pending-handshakes', epoch: 0, t: 1, members: [{ id: 1, peerId: self, multiaddrs: ['/ip4/127.0.0.9/tcp/1'], publicKey: key.publicKey.raw }] };
    const listed = await createHost({ privateKey: key }, [`/ip4/${listenIp}/tcp/0`], committee, { gatewayAddresses: [ip], exemptLoopback: false });
    const savedPort = port;
    try {
      await listed.start();
      port = Number(listed.getMultiaddrs()[0]!.getComponents().find((c) => c.name === 'tcp')!.value);
      const held: Stalled[] = [];
      for (let i = 0; i < OUTSIDER_LIMITS.pendingPerIp + 2; i++) held.push(await stall());
      await sleep(1_500);
      assert.ok(held.every((s) => !s.closed()), 'every handshake from the listed address is still pending');
    } finally {
      port = savedPort;
      await listed.stop();
    }
  });
});
