import { generateKeyPair } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import type { Libp2p } from 'libp2p';
import type { Committee } from '../../net/committee.ts';
import { createHost, requestFrame } from '../../net/p2p.ts';

/**
 * A bare libp2p client for tests that talk to nodes directly, as a compromised gateway or any
 * outsider could: the committee's addresses, one request frame out, one reply frame back.
 * `privateKey` defaults to a fresh identity (an outsider); pass a member's to speak as it.
 */
export class P2pClient {
  private constructor(
    readonly libp2p: Libp2p,
    private readonly committee: Committee,
  ) {}

  static async start(committee: Committee, privateKey?: PrivateKey): Promise<P2pClient> {
    const libp2p = await createHost({ privateKey: privateKey ?? (await generateKeyPair('Ed25519')) }, [], committee);
    await libp2p.start();
    for (const m of committee.members) await libp2p.peerStore.merge(peerIdFromString(m.peerId), { multiaddrs: m.multiaddrs.map((a) => multiaddr(a)) });
    return new P2pClient(libp2p, committee);
  }

  peer(memberId: number) {
    const m = this.committee.members.find((x) => x.id === memberId);
    if (m === undefined) throw new Error(`no member ${memberId}`);
    return peerIdFromString(m.peerId);
  }

  /** The reply frame's bytes; throws on a reset stream or after timeoutMs. */
  request(memberId: number, protocol: string, body: Uint8Array, timeoutMs = 5_000): Promise<Uint8Array> {
    return requestFrame(this.libp2p, this.peer(memberId), protocol, body, { timeoutMs });
  }

  async stop(): Promise<void> {
    await this.libp2p.stop();
  }
}
