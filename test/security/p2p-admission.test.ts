import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { setMaxListeners } from 'node:events';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Stream, StreamMuxer } from '@libp2p/interface';
import { generateAccount, TkmsClient, type Account } from '../../client/index.ts';
import { Devnet } from '../../deploy/devnet.ts';
import { loadCommitteeFile, type Committee } from '../../net/committee.ts';
import { OUTSIDER_LIMITS } from '../../net/connection-gate.ts';
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
