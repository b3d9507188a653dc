import assert from 'node:assert/strict';
import fc from 'fast-check';
import { build } from 'esbuild';
import { fileURLToPath } from 'node:url';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromMultihash, peerIdFromPrivateKey } from '@libp2p/peer-id';
import { sha256 } from 'multiformats/hashes/sha2';
import { parseCommittee as parsePure, pinnedClientOptions } from '../../core/committee.ts';
import { parseCommittee as parseLibp2p } from '../../net/committee.ts';

/**
 * The committee file parses the same in a browser (core/committee.ts: its own base58btc and
 * multihash decoding) as on a server (net/committee.ts: libp2p's decoders), without libp2p in
 * the browser's bundle.
 */
function outcome(parse: (v: unknown) => unknown, value: unknown): { ok: unknown } | { error: string } {
  try {
    return { ok: parse(value) };
  } catch (e) {
    return { error: (e as Error).message };
  }
}

function file(peerIds: string[], addr = (i: number) => `/ip4/127.0.0.1/tcp/${4000 + i}`): unknown {
  return { committeeId: 'committee-file-test', t: Math.min(2, peerIds.length), members: peerIds.map((peerId, i) => ({ id: i + 1, peerId, multiaddrs: [addr(i)] })) };
}

describe('committee file: browser-safe parser', function () {
  this.timeout(60_000);
  let ed25519Ids: string[] = [];
  let otherIds: string[] = [];

  before(async () => {
    ed25519Ids = await Promise.all(Array.from({ length: 8 }, async () => peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString()));
    otherIds = [
      peerIdFromPrivateKey(await generateKeyPair('secp256k1')).toString(),
      // An RSA peer id is a sha2-256 multihash (Qm…) and carries no key.
      peerIdFromMultihash(await sha256.digest(new Uint8Array([1, 2, 3]))).toString(),
    ];
  });

  it('gives the same committee (member keys included) as the libp2p parser', () => {
    const value = file(ed25519Ids.slice(0, 5), (i) => `/ip4/127.0.0.1/tcp/${4000 + i}/p2p/${ed25519Ids[i]}`);
    const pure = parsePure(value);
    assert.deepEqual(pure, parseLibp2p(value));
    assert.equal(pinnedClientOptions(pure).trustedThreshold, 2);
  });

  it('refuses what the libp2p parser refuses, with the same message (other key types, mutated ids, foreign /p2p/)', () => {
    for (const id of otherIds) assert.deepEqual(outcome(parsePure, file([id])), outcome(parseLibp2p, file([id])), id);
    const foreign = file([ed25519Ids[0]!], () => `/ip4/127.0.0.1/tcp/1/p2p/${ed25519Ids[1]}`);
    assert.match((outcome(parsePure, foreign) as { error: string }).error, /different peer id/);
    assert.deepEqual(outcome(parsePure, foreign), outcome(parseLibp2p, foreign));
    const alphabet = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz0OIl';
    fc.assert(
      fc.property(fc.nat(ed25519Ids.length - 1), fc.nat(60), fc.nat(alphabet.length - 1), fc.boolean(), (which, at, c, truncate) => {
        const id = ed25519Ids[which]!;
        const i = at % id.length;
        const mutated = truncate ? id.slice(0, i) : id.slice(0, i) + alphabet[c] + id.slice(i + 1);
        const pure = outcome(parsePure, file([mutated]));
        const libp2p = outcome(parseLibp2p, file([mutated]));
        assert.deepEqual(pure, libp2p, mutated);
      }),
      { numRuns: 400 },
    );
  });

  it('bundles for the browser without libp2p, multiaddr or Node built-ins (multiformats only for base58)', async () => {
    const entry = fileURLToPath(new URL('../../core/committee.ts', import.meta.url));
    const result = await build({ entryPoints: [entry], bundle: true, platform: 'browser', format: 'esm', write: false, logLevel: 'silent', metafile: true });
    const inputs = Object.keys(result.metafile.inputs);
    assert.ok(!inputs.some((p) => /libp2p|multiaddr|multiformats\/dist\/src\/(?!bases\/|bytes|vendor\/base-x)/.test(p) || p.startsWith('node:')), inputs.join(', '));
  });
});
