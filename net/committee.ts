import { readFile } from 'node:fs/promises';
import { multiaddr } from '@multiformats/multiaddr';
import { peerIdFromPublicKey, peerIdFromString } from '@libp2p/peer-id';
import {
  ed25519KeyFromPeerId as parsePeerIdKey,
  parseCommittee as parseCommitteeWith,
  parseCommitteeJson as parseCommitteeJsonWith,
  type Committee,
  type CommitteeDecoders,
} from '../core/committee.ts';
import { TkmsError } from '../core/index.ts';

export {
  expectedCommittee,
  memberKeysHex,
  pinnedClientOptions,
  refusePlaceholderCommitteeId,
  type Committee,
  type CommitteeMember,
} from '../core/committee.ts';

/**
 * The committee file as servers read it (core/committee.ts has the parser): libp2p's own
 * decoders for peer ids (every form libp2p accepts) and multiaddrs (which nodes dial), and the
 * file read from disk.
 */
export const libp2pCommitteeDecoders: CommitteeDecoders = {
  peerIdKey(peerId) {
    const { publicKey } = peerIdFromString(peerId);
    // libp2p also reads non-canonical encodings (reordered or extra protobuf fields) and keeps the
    // text it was given; a committee file names each member in the one form libp2p derives from
    // the key, as the browser parser requires.
    if (publicKey !== undefined && peerIdFromPublicKey(publicKey).toString() !== peerId) throw new Error('not the canonical form of this peer id');
    return publicKey;
  },
  multiaddr(value) {
    const ma = multiaddr(value);
    return { text: ma.toString(), p2p: ma.getComponents().filter((c) => c.name === 'p2p').map((c) => c.value ?? '') };
  },
};

/** Ed25519 public key of a peer id string; non-Ed25519 or malformed ids are refused. */
export function ed25519KeyFromPeerId(value: string, where: string): Uint8Array {
  return parsePeerIdKey(value, where, libp2pCommitteeDecoders);
}

/** Strict parser: every mistake is a TkmsError('bad_request') naming the field. */
export function parseCommittee(value: unknown): Committee {
  return parseCommitteeWith(value, libp2pCommitteeDecoders);
}

/** Parses committee file text (JSON). */
export function parseCommitteeJson(text: string): Committee {
  return parseCommitteeJsonWith(text, libp2pCommitteeDecoders);
}

/** Reads and validates a committee file; a missing or unreadable file is a clear bad_request. */
export async function loadCommitteeFile(path: string): Promise<Committee> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new TkmsError('bad_request', `cannot read committee file ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  return parseCommitteeJson(text);
}
