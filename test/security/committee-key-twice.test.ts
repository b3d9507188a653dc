import assert from 'node:assert/strict';
import { ed25519 } from '@noble/curves/ed25519.js';
import { base58btc } from 'multiformats/bases/base58';
import { parseCommittee as parsePure } from '../../core/committee.ts';
import { isTkmsError } from '../../core/index.ts';
import { parseCommittee } from '../../net/committee.ts';

/**
 * Attack: one key holder listed as two members of a t = 2 committee, the second time under a
 * non-canonical spelling of the same peer id (the libp2p PublicKey protobuf with its fields
 * reordered), which libp2p's decoder reads as the same key. Its two "members" would then count
 * as the t signatures a DKG result needs.
 */
const key = ed25519.getPublicKey(ed25519.utils.randomSecretKey());
const peerId = (protobuf: Uint8Array): string => base58btc.baseEncode(Uint8Array.from([0x00, protobuf.length, ...protobuf]));
const canonical = peerId(Uint8Array.from([0x08, 0x01, 0x12, 32, ...key]));
const reordered = peerId(Uint8Array.from([0x12, 32, ...key, 0x08, 0x01]));

const committeeOf = (second: string) => ({
  committeeId: 'key-twice',
  t: 2,
  members: [
    { id: 1, peerId: canonical, multiaddrs: ['/ip4/127.0.0.1/tcp/9001'] },
    { id: 2, peerId: second, multiaddrs: ['/ip4/127.0.0.1/tcp/9002'] },
  ],
});

describe('attack: one Ed25519 key listed as two committee members', () => {
  it('a non-canonical spelling of a peer id is refused by the server parser, as by the browser parser', () => {
    for (const parse of [parseCommittee, parsePure]) {
      assert.throws(
        () => parse(committeeOf(reordered)),
        (e) => isTkmsError(e, 'bad_request') && /members\[1\]\.peerId is not a valid libp2p peer id/.test(e.message),
      );
    }
  });

  it('the same peer id twice is refused as the same key, whatever the parser', () => {
    for (const parse of [parseCommittee, parsePure]) {
      assert.throws(() => parse(committeeOf(canonical)), (e) => isTkmsError(e, 'bad_request') && /same key as another member/.test(e.message));
    }
  });

  it('a different key is accepted (the refusals above are about the key, not the layout)', () => {
    const other = peerId(Uint8Array.from([0x08, 0x01, 0x12, 32, ...ed25519.getPublicKey(ed25519.utils.randomSecretKey())]));
    for (const parse of [parseCommittee, parsePure]) assert.equal(parse(committeeOf(other)).members.length, 2);
  });
});
