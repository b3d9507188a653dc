import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PrivateKey, Stream } from '@libp2p/interface';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { generateAccount, TkmsClient, type Account } from '../../client/index.ts';
import { ACL_PROTOCOL, decodeHex, encodeAclRequest, KEYS_PROTOCOL, MAX_NODE_FRAME_BYTES, PARTIAL_PROTOCOL, signRevocation, type HandleDescriptor } from '../../core/index.ts';
import { Devnet, getJson } from '../../deploy/devnet.ts';
import { loadCommitteeFile, type Committee } from '../../net/committee.ts';
import { DKG_PROTOCOL, MAX_DKG_FRAME_BYTES } from '../../node/dkg-wire.ts';
import { P2pClient } from '../support/p2p-client.ts';
import { makeTempDir, removeDir, waitFor } from '../support/processes.ts';

/**
 * Attacks on a node's libp2p side by peers that are not members: memory held by unfinished frames,
 * the member-only DKG protocol, revocation pushes, and the read budgets and stream limits that
 * bound what any one peer (and all outsiders together) can make a node hold. Real node processes
 * (a devnet: 3 nodes, t = 2, and a gateway), attacked over real libp2p connections.
 */
const MiB = 1024 * 1024;
/** What the node charges for one whole 1 MiB client frame in progress: its body and (3-byte) length prefix. */
const PREFIX = 3;

function varint(n: number): Uint8Array {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  out.push(n);
  return Uint8Array.from(out);
}

/** Resident memory of a process, in MiB (Linux). */
async function rssMiB(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)![1]) / 1024;
}

/** A raw stream: `ended` resolves (with ms since open) once the node resets or closes it. */
interface RawStream {
  stream: Stream;
  ended: Promise<number>;
  isOpen(): boolean;
}

async function openRaw(client: P2pClient, node: number, protocol: string): Promise<RawStream> {
  const started = Date.now();
  const stream = await client.libp2p.dialProtocol(client.peer(node), protocol, { signal: AbortSignal.timeout(10_000), maxOutboundStreams: 1024 });
  // The node may have reset it already, during protocol negotiation.
  let open = stream.status === 'open';
  const ended = new Promise<number>((resolve) => {
    if (!open) resolve(Date.now() - started);
    const done = (): void => {
      open = false;
      resolve(Date.now() - started);
    };
    stream.addEventListener('close', done);
    stream.addEventListener('remoteCloseWrite', done);
  });
  return { stream, ended, isOpen: () => open && stream.status === 'open' };
}

/** Writes `bytes` in chunks, honouring backpressure; false when the node ended the stream first. */
async function writeAll(s: RawStream, bytes: Uint8Array, signal: AbortSignal): Promise<boolean> {
  try {
    for (let at = 0; at < bytes.length; at += 64 * 1024) {
      if (!s.isOpen()) return false;
      if (!s.stream.send(bytes.subarray(at, at + 64 * 1024))) await s.stream.onDrain({ signal });
    }
    return true;
  } catch {
    return false;
  }
}

/** A frame's length prefix and all of its body but the last byte: the node waits for the rest. */
function unfinishedFrame(length: number): Uint8Array {
  const prefix = varint(length);
  const out = new Uint8Array(prefix.length + length - 1).fill(0x20);
  out.set(prefix);
  return out;
}

async function metric(url: string, pattern: RegExp): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = pattern.exec(text);
  return m === null ? 0 : Number(m[1]);
}

describe('attacks on a node\'s libp2p protocols by non-members (devnet: 3 nodes, t = 2)', function () {
  this.timeout(180_000);
  let dir: string | undefined;
  let devnet: Devnet | undefined;
  let committee: Committee;
  const clients: P2pClient[] = [];
  let alice: Account;
  let bob: Account;
  let handle = '';
  /** Identities the nodes accept as gateways (the devnet's own gateway is another). */
  const gatewayKeys: PrivateKey[] = [];

  const outsider = async (key?: PrivateKey): Promise<P2pClient> => {
    const c = await P2pClient.start(committee, key);
    clients.push(c);
    return c;
  };
  const heldBy = (peers: 'trusted' | 'others'): Promise<number> => metric(devnet!.node(1).httpUrl, new RegExp(`^tkms_p2p_frame_bytes_held\\{peers="${peers}"\\} (\\d+)$`, 'm'));
  const refused = (protocol: string, reason: string): Promise<number> =>
    metric(devnet!.node(1).httpUrl, new RegExp(`^tkms_p2p_streams_refused_total\\{protocol="${protocol.replace(/\//g, '\\/')}",reason="${reason}"\\} (\\d+)$`, 'm'));
  const stopClients = async (): Promise<void> => {
    await Promise.all(clients.splice(0).map((c) => c.stop().catch(() => undefined)));
  };
  const decryptsStill = async (): Promise<void> => {
    const bobClient = new TkmsClient({ gatewayUrl: devnet!.gatewayUrl, account: bob, trustedMemberKeys: await devnet!.memberKeys() });
    assert.equal(new TextDecoder().decode((await bobClient.decrypt(handle)).plaintext), 'still served');
  };

  before(async function () {
    this.timeout(180_000);
    dir = await makeTempDir('tkms-sec-p2p');
    for (let i = 0; i < 5; i++) gatewayKeys.push(await generateKeyPair('Ed25519'));
    devnet = await Devnet.start({ dir, n: 3, t: 2, gatewayPort: 0, logLevel: 'warn', extraGatewayPeerIds: gatewayKeys.map((k) => peerIdFromPrivateKey(k).toString()) });
    committee = await loadCommitteeFile(join(dir, 'committee.json'));
    [alice, bob] = [generateAccount(), generateAccount()];
    const aliceClient = new TkmsClient({ gatewayUrl: devnet.gatewayUrl, account: alice, trustedMemberKeys: await devnet.memberKeys() });
    handle = (await aliceClient.encrypt(new TextEncoder().encode('still served'), { keyId: devnet.keyId })).handle;
    await aliceClient.grant(handle, bob.address);
  });

  afterEach(async () => {
    await stopClients();
    // Every byte an attack made the node hold is given back once its streams are gone.
    await waitFor('frame bytes given back', async () => ((await heldBy('others')) === 0 && (await heldBy('trusted')) === 0 ? true : undefined), { timeoutMs: 20_000 });
  });

  after(async function () {
    this.timeout(60_000);
    await stopClients();
    await devnet?.stop();
    await removeDir(dir);
  });

  describe('attack: an outsider opens many streams with unfinished large frames to exhaust a node\'s memory', () => {
    it('the node\'s resident memory grows by less than 64 MiB, and it still serves a decryption afterwards', async () => {
      const pid = devnet!.node(1).process!.pid!;
      const c = await outsider();
      const partialRefusals = async (): Promise<number> => (await refused(PARTIAL_PROTOCOL, 'budget')) + (await refused(PARTIAL_PROTOCOL, 'streams'));
      const refusedBefore = { dkg: await refused(DKG_PROTOCOL, 'not_allowed'), partial: await partialRefusals() };
      const before = await rssMiB(pid);
      let peak = before;
      let sampling = true;
      const sampler = (async () => {
        while (sampling) {
          peak = Math.max(peak, await rssMiB(pid).catch(() => peak));
          await new Promise((r) => setTimeout(r, 50));
        }
      })();
      // One connection; 48 streams on the member-only DKG protocol with 4 MiB frames and 48 on the
      // open partial protocol with 1 MiB frames, each one byte short (about 240 MiB if all were read).
      const signal = AbortSignal.timeout(60_000);
      const streams = await Promise.all([
        ...Array.from({ length: 48 }, () => openRaw(c, 1, DKG_PROTOCOL)),
        ...Array.from({ length: 48 }, () => openRaw(c, 1, PARTIAL_PROTOCOL)),
      ]);
      const dkgFrame = unfinishedFrame(MAX_DKG_FRAME_BYTES);
      const partialFrame = unfinishedFrame(MAX_NODE_FRAME_BYTES);
      await Promise.all(streams.map((s, i) => writeAll(s, i < 48 ? dkgFrame : partialFrame, signal)));
      // Let the node take in what it was sent before the last reading.
      await new Promise((r) => setTimeout(r, 1_000));
      sampling = false;
      await sampler;
      const growth = peak - before;
      const held = await heldBy('others');
      console.log(`      RSS of node 1: ${before.toFixed(0)} MiB before, peak ${peak.toFixed(0)} MiB (+${growth.toFixed(0)} MiB); frame bytes held for outsiders: ${(held / MiB).toFixed(1)} MiB`);
      assert.ok(growth < 64, `node 1 grew by ${growth.toFixed(0)} MiB under the attack`);
      // Every DKG stream refused as it opened; past 32 streams or four 1 MiB frames, the partial ones too.
      assert.equal((await refused(DKG_PROTOCOL, 'not_allowed')) - refusedBefore.dkg, 48);
      assert.ok((await partialRefusals()) - refusedBefore.partial >= 44);
      assert.ok(held <= 4 * (MAX_NODE_FRAME_BYTES + PREFIX), `${held} bytes held for one outsider`);
      for (const s of streams) s.stream.abort(new Error('done'));
      await decryptsStill();
    });
  });

  describe('attack: an outsider sends a 4 MiB frame on the member-only DKG protocol', () => {
    it('the stream is reset as it opens: no reply frame, nothing read or held, refusal counted', async () => {
      const c = await outsider();
      const refusedBefore = await refused(DKG_PROTOCOL, 'not_allowed');
      const s = await openRaw(c, 1, DKG_PROTOCOL);
      const frame = new Uint8Array(MAX_DKG_FRAME_BYTES).fill(0x20);
      frame.set(new TextEncoder().encode('{"v":1,"type":"proposal"}'));
      const whole = await writeAll(s, Uint8Array.from([...varint(frame.length), ...frame]), AbortSignal.timeout(30_000));
      const endedAfterMs = await s.ended;
      assert.equal(whole, false, 'the node took the whole 4 MiB frame');
      assert.ok(endedAfterMs < 5_000, `stream ended after ${endedAfterMs} ms`);
      assert.equal(await heldBy('others'), 0);
      assert.equal(await refused(DKG_PROTOCOL, 'not_allowed'), refusedBefore + 1);
      // A one-shot request gets no reply frame either (the old code answered "unauthorized" after reading it all).
      await assert.rejects(c.request(1, DKG_PROTOCOL, frame, 5_000));
    });
  });

  describe('attack: an outsider pushes revocations on /tkms/acl/1', () => {
    it('its streams are reset before anything is read; revocations through the gateway still reach every node', async () => {
      const c = await outsider();
      const mallory = generateAccount();
      // A revocation for a handle the sender invents, signed by its own key.
      const descriptor: HandleDescriptor = { keyId: devnet!.keyId, K: decodeHex(`02${'11'.repeat(32)}`), nonce: new Uint8Array(12), ciphertextHash: new Uint8Array(32), owner: mallory.addressBytes, kProof: new Uint8Array(64) };
      const frame = encodeAclRequest({ type: 'revoke', item: { descriptor, revocation: signRevocation(mallory.secretKey, { handle: new Uint8Array(32).fill(9), grantee: generateAccount().addressBytes, revokedAt: Math.floor(Date.now() / 1000) }, devnet!.deployment) } });
      const before = await refused(ACL_PROTOCOL, 'not_allowed');
      for (const node of [1, 2, 3]) await assert.rejects(c.request(node, ACL_PROTOCOL, frame, 5_000), `node ${node} answered an outsider on ${ACL_PROTOCOL}`);
      await assert.rejects(c.request(1, ACL_PROTOCOL, encodeAclRequest({ type: 'sync', offset: 0 }), 5_000), 'an outsider read the revocation log');
      assert.equal(await refused(ACL_PROTOCOL, 'not_allowed'), before + 2);
      // The real gateway (its persistent identity is in the nodes' gatewayPeerIds) pushes a real owner's revocation.
      const carol = generateAccount();
      const aliceClient = new TkmsClient({ gatewayUrl: devnet!.gatewayUrl, account: alice, trustedMemberKeys: await devnet!.memberKeys() });
      await aliceClient.grant(handle, carol.address);
      const revoked = await aliceClient.revoke(handle, carol.address);
      assert.deepEqual([...revoked.acknowledgedBy].sort(), [1, 2, 3], 'every node took the gateway\'s revocation');
      const carolClient = new TkmsClient({ gatewayUrl: devnet!.gatewayUrl, account: carol, trustedMemberKeys: await devnet!.memberKeys() });
      await assert.rejects(carolClient.decrypt(handle));
    });
  });

  describe('attack: outsiders hold read budget with frames they never finish', () => {
    const prefix = varint(MAX_NODE_FRAME_BYTES);
    const per = MAX_NODE_FRAME_BYTES + PREFIX;
    /** Opens `count` streams from `via`, each with a 1 MiB frame's length prefix only, and waits until the node holds them. */
    const hold = async (via: P2pClient, count: number, peers: 'trusted' | 'others'): Promise<RawStream[]> => {
      const target = (await heldBy(peers)) + count * per;
      const streams: RawStream[] = [];
      for (let i = 0; i < count; i++) {
        const s = await openRaw(via, 1, PARTIAL_PROTOCOL);
        s.stream.send(prefix);
        streams.push(s);
      }
      await waitFor(`${count} frames held`, async () => ((await heldBy(peers)) >= target ? true : undefined), { timeoutMs: 20_000 });
      return streams;
    };
    /** A further frame from `via` is refused: its stream is reset at once, before any body byte is sent. */
    const refusedNext = async (via: P2pClient, what: string): Promise<void> => {
      const s = await openRaw(via, 1, PARTIAL_PROTOCOL);
      if (s.isOpen()) s.stream.send(prefix);
      assert.ok((await s.ended) < 5_000, what);
    };

    it('one outsider: a fifth 1 MiB frame in progress is refused (four per peer), before its body is read', async () => {
      const c = await outsider();
      const first = await hold(c, 4, 'others');
      const budgetRefusals = await refused(PARTIAL_PROTOCOL, 'budget');
      await refusedNext(c, 'a fifth frame from one outsider was taken');
      assert.equal(await refused(PARTIAL_PROTOCOL, 'budget'), budgetRefusals + 1);
      assert.ok(first.every((s) => s.isOpen()), 'the first four frames are still being read');
      assert.equal(await heldBy('others'), 4 * per);
      // Another outsider has a budget of its own.
      await hold(await outsider(), 1, 'others');
      assert.equal(await heldBy('others'), 5 * per);
    });

    it('many outsiders: past 32 frames for all outsiders together, frames are refused; a gateway\'s are not', async () => {
      for (let i = 0; i < 8; i++) await hold(await outsider(), 4, 'others');
      assert.equal(await heldBy('others'), 32 * per);
      await refusedNext(await outsider(), 'a fresh outsider got past the outsiders\' total');
      // Members and gateways have a budget of their own: a gateway's frame is read meanwhile.
      await hold(await outsider(gatewayKeys[0]), 1, 'trusted');
      await decryptsStill();
    });

    it('gateways: past 64 frames of one gateway, and past 256 of all members and gateways together, frames are refused', async () => {
      const gws = await Promise.all(gatewayKeys.map((k) => outsider(k)));
      await hold(gws[0]!, 64, 'trusted');
      await refusedNext(gws[0]!, 'one gateway got past its own 64 frames');
      for (let g = 1; g < 4; g++) await hold(gws[g]!, 64, 'trusted');
      assert.equal(await heldBy('trusted'), 256 * per);
      await refusedNext(gws[4]!, 'gateways together got past 256 frames');
    });
  });

  describe('attack: an outsider opens more streams on one protocol than a gateway or member needs', () => {
    it('the 17th concurrent stream on /tkms/keys/1 from one connection is reset; the node still answers', async () => {
      const c = await outsider();
      const open: RawStream[] = [];
      for (let i = 0; i < 16; i++) open.push(await openRaw(c, 1, KEYS_PROTOCOL));
      assert.deepEqual(open.map((s) => s.isOpen()), Array(16).fill(true));
      const extra = await openRaw(c, 1, KEYS_PROTOCOL);
      assert.ok((await extra.ended) < 5_000, 'a 17th keys stream stayed open');
      assert.deepEqual(open.map((s) => s.isOpen()), Array(16).fill(true), 'one of the first 16 was refused instead');
      for (const s of open) s.stream.abort(new Error('done'));
      assert.ok((await c.request(1, KEYS_PROTOCOL, new TextEncoder().encode('{"v":1}'))).length > 0);
      assert.equal((await getJson(`${devnet!.node(1).httpUrl}/health`)).status, 200);
    });

    it('an outsider\'s 33rd concurrent stream on /tkms/partial/1 is reset as it opens, over all its connections; a gateway may open more', async () => {
      const key = await generateKeyPair('Ed25519');
      const [a, b] = [await outsider(key), await outsider(key)];
      const before = await refused(PARTIAL_PROTOCOL, 'streams');
      const open: RawStream[] = [];
      for (let i = 0; i < 32; i++) open.push(await openRaw(i % 2 === 0 ? a : b, 1, PARTIAL_PROTOCOL));
      assert.deepEqual(open.map((s) => s.isOpen()), Array(32).fill(true));
      const extra = await openRaw(a, 1, PARTIAL_PROTOCOL);
      assert.ok((await extra.ended) < 5_000, 'a 33rd partial stream stayed open');
      assert.equal(await refused(PARTIAL_PROTOCOL, 'streams'), before + 1);
      const gw = await outsider(gatewayKeys[1]);
      const many: RawStream[] = [];
      for (let i = 0; i < 40; i++) many.push(await openRaw(gw, 1, PARTIAL_PROTOCOL));
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(many.map((s) => s.isOpen()), Array(40).fill(true));
    });
  });
});
