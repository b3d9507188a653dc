import { ed25519 } from '@noble/curves/ed25519.js';
import { base58btc } from 'multiformats/bases/base58';

/** A committee member for tests that build committees by hand: a fresh Ed25519 identity. */
export interface Member {
  id: number;
  secret: Uint8Array;
  publicKey: Uint8Array;
}

export function member(id: number): Member {
  const secret = ed25519.utils.randomSecretKey();
  return { id, secret, publicKey: ed25519.getPublicKey(secret) };
}

/** The libp2p peer id (base58btc identity multihash of the protobuf key) of a raw Ed25519 public key. */
export function peerId(publicKey: Uint8Array): string {
  const proto = new Uint8Array([0x08, 0x01, 0x12, 0x20, ...publicKey]);
  return base58btc.baseEncode(new Uint8Array([0x00, proto.length, ...proto]));
}
