import assert from 'node:assert/strict';
import { createPublicKey, generateKeyPairSync, verify as nodeVerify } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { ed25519 } from '@noble/curves/ed25519.js';
import { sha512 } from '@noble/hashes/sha2.js';
import { publicKeyFromRaw } from '@libp2p/crypto/keys';
import { peerIdFromPublicKey } from '@libp2p/peer-id';
import { pino } from 'pino';
import { generateAccount, TkmsClient } from '../../client/index.ts';
import { bytesToNumberLE, concatBytes, numberToBytesLE } from '@noble/curves/utils.js';
import { bytesToHex, encodeHex, isTkmsError } from '../../core/index.ts';
import { confirmMessage, dkgResultDigest, dkgSignedBytes, parseDkgPublicResult, verifyDkgPublicResult, verifyMemberSignature, type DkgPublicResult } from '../../core/dkg/index.ts';
import { encodePublicKeySpki } from '../../core/spki.ts';
import { decodePoint } from '../../core/curve.ts';
import { KeyDirectory } from '../../gateway/keys.ts';
import type { NodePool } from '../../gateway/node-pool.ts';
import { expectedCommittee, parseCommittee, pinnedClientOptions, type Committee } from '../../net/committee.ts';
import { makeDkgScenario, simulateDkg } from '../unit/ceremony-dkg-harness.ts';
import { makeTempDir, removeDir, runTkms } from '../support/processes.ts';

/**
 * Finding 12: nodes verified member signatures with node:crypto, gateways and clients with noble's
 * default (ZIP-215), and the two disagree, so a member could publish a result that gateways and
 * clients accept and nodes refuse (or, with a small-order key, "signatures" for any message that
 * both accept). One strict rule now (verifyMemberSignature), and no small-order member keys.
 */
const L = ed25519.Point.Fn.ORDER;
/** y = p + 1: a non-canonical encoding of the identity point (RFC 8032 decoding refuses y ≥ p). */
const NON_CANONICAL_IDENTITY = (() => {
  const b = new Uint8Array(32).fill(0xff);
  b[0] = 0xee;
  b[31] = 0x7f;
  return b;
})();
const SMALL_ORDER_KEY = (() => {
  const b = new Uint8Array(32);
  b[0] = 1; // the identity point, canonically
  return b;
})();

/** A signature with R encoded non-canonically: valid under ZIP-215, invalid under RFC 8032. */
function nonCanonicalSignature(seed: Uint8Array, message: Uint8Array): Uint8Array {
  const { scalar, pointBytes } = ed25519.utils.getExtendedPublicKey(seed);
  const signed = dkgSignedBytes(message);
  const k = bytesToNumberLE(sha512(concatBytes(NON_CANONICAL_IDENTITY, pointBytes, signed))) % L;
  return concatBytes(NON_CANONICAL_IDENTITY, numberToBytesLE((k * scalar) % L, 32));
}

describe('attack: a member signature valid under ZIP-215 but not RFC 8032, and small-order member keys', function () {
  this.timeout(120_000);
  let root: string | undefined;

  before(async () => {
    root = await makeTempDir('tkms-ed25519');
  });

  after(async () => {
    await removeDir(root);
  });

  it('the vectors split the old verifiers: noble ZIP-215 and node:crypto each accept one the strict rule refuses', () => {
    const seed = ed25519.utils.randomSecretKey();
    const publicKey = ed25519.getPublicKey(seed);
    const message = new Uint8Array([1, 2, 3]);
    const weird = nonCanonicalSignature(seed, message);
    assert.equal(ed25519.verify(weird, dkgSignedBytes(message), publicKey), true, 'ZIP-215 accepts the non-canonical R');
    assert.equal(verifyMemberSignature(publicKey, message, weird), false);
    const nodeKey = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKey).toString('base64url') }, format: 'jwk' });
    assert.equal(nodeVerify(null, dkgSignedBytes(message), nodeKey, weird), false, 'node:crypto refused what ZIP-215 accepted: the old split');
    // A small-order key "signs" every message with R = identity, s = 0; node:crypto and ZIP-215 agree it is valid.
    const forgery = concatBytes(SMALL_ORDER_KEY, new Uint8Array(32));
    const keyObject = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(SMALL_ORDER_KEY).toString('base64url') }, format: 'jwk' });
    assert.equal(nodeVerify(null, dkgSignedBytes(message), keyObject, forgery), true);
    assert.equal(ed25519.verify(forgery, dkgSignedBytes(message), SMALL_ORDER_KEY), true);
    assert.equal(verifyMemberSignature(SMALL_ORDER_KEY, message, forgery), false);
  });

  it('a DKG result counting such a signature towards t is refused by the node, the gateway and the client alike', async () => {
    // A genuine 2-of-3 result; member 2's signature is replaced by a ZIP-215-only one it made itself.
    const memberKeys = keyringFromSeeds().memberKeys;
    const honest = dkgWithSeedKeys(committeeFor(memberKeys));
    const { signatures: _s, ...unsigned } = honest;
    const message = confirmMessage(dkgResultDigest(unsigned, memberKeys));
    const result: DkgPublicResult = parseDkgPublicResult({
      ...unsigned,
      signatures: { '1': encodeHex(ed25519.sign(dkgSignedBytes(message), SEEDS.get(1)!)), '2': encodeHex(nonCanonicalSignature(SEEDS.get(2)!, message)) },
    });
    assert.equal(ed25519.verify(decodeHexBytes(result.signatures['2']!), dkgSignedBytes(message), memberKeys.get(2)!), true, 'ZIP-215 would count it');

    // Node: the one rule its engine and DKG runner verify member signatures with, and the check it applies before storing/loading.
    const committee = committeeFor(memberKeys);
    assert.equal(verifyMemberSignature(memberKeys.get(2)!, message, decodeHexBytes(result.signatures['2']!)), false);
    assert.throws(() => verifyDkgPublicResult(result, expectedCommittee(committee)), (e: unknown) => isTkmsError(e, 'dkg_failed'));

    // Gateway: its key directory, fed the result by every member.
    const pool = { committee, retarget: () => {}, fetchKeys: async () => [1, 2, 3].map((memberId) => ({ memberId, keys: [result] })) } as unknown as NodePool;
    let invalid = 0;
    const directory = new KeyDirectory(committee, pool, pino({ level: 'silent' }), { inc: () => invalid++ } as never);
    await assert.rejects(directory.get(result.keyId), (e: unknown) => isTkmsError(e, 'unknown_key'));
    assert.equal(invalid, 3);

    // Client: the library, pinned to the committee, reading the key from an HTTP server.
    const server = await serveKey(result, committee);
    try {
      const client = new TkmsClient({ gatewayUrl: server.url, account: generateAccount(), ...pinnedClientOptions(committee) });
      await assert.rejects(client.getKey(result.keyId), (e: unknown) => isTkmsError(e, 'bad_proof') && /does not verify/.test((e as Error).message));
    } finally {
      await new Promise<void>((r) => server.server.close(() => r()));
    }
  });

  it('a committee file with a small-order member key is refused by the parser, the node, the gateway and the CLI', async () => {
    const good = generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' }).x!;
    const goodPeer = peerIdFromPublicKey(publicKeyFromRaw(new Uint8Array(Buffer.from(good, 'base64url')))).toString();
    const badPeer = peerIdFromPublicKey(publicKeyFromRaw(SMALL_ORDER_KEY)).toString();
    const committee = {
      committeeId: 'small-order',
      t: 1,
      members: [
        { id: 1, peerId: goodPeer, multiaddrs: ['/ip4/127.0.0.1/tcp/1'] },
        { id: 2, peerId: badPeer, multiaddrs: ['/ip4/127.0.0.1/tcp/2'] },
      ],
    };
    const expected = /members\[1\]\.peerId carries a small-order or non-canonical Ed25519 key/;
    assert.throws(() => parseCommittee(committee), expected);
    const dir = join(root!, 'small-order');
    await mkdir(dir, { recursive: true });
    const committeeFile = join(dir, 'committee.json');
    await writeFile(committeeFile, JSON.stringify(committee));
    await writeFile(join(dir, 'node.json'), JSON.stringify({ listen: '/ip4/127.0.0.1/tcp/0', http: '127.0.0.1:0', admin: '127.0.0.1:0', identityFile: 'identity.json', keystoreDir: 'keystore', committeeFile: 'committee.json' }));
    await writeFile(join(dir, 'gateway.json'), JSON.stringify({ listen: '127.0.0.1:0', storeDir: 'store', committeeFile: 'committee.json' }));
    const account = join(dir, 'account.json');
    const password = join(dir, 'account-password');
    await writeFile(password, 'test password\n');
    assert.equal((await runTkms(['account', 'new', '--out', account, '--password-file', password])).code, 0);
    const runs = await Promise.all([
      runTkms(['node', 'start', '--config', join(dir, 'node.json')], { env: { TKMS_KEYSTORE_PASSWORD: 'x' } }),
      runTkms(['gateway', 'start', '--config', join(dir, 'gateway.json')]),
      runTkms(['encrypt', '--key', 'k', '--text', 'x', '--local', '--committee', committeeFile, '--account', account, '--password-file', password, '--gateway', 'http://127.0.0.1:1']),
    ]);
    for (const [i, r] of runs.entries()) {
      assert.notEqual(r.code, 0, `${['node', 'gateway', 'client'][i]} started`);
      assert.match(r.stderr, expected, `${['node', 'gateway', 'client'][i]}: ${r.stderr}`);
    }
  });
});

const SEEDS = new Map([1, 2, 3].map((id) => [id, sha512(new Uint8Array([id])).subarray(0, 32)] as const));

function keyringFromSeeds() {
  return { memberKeys: new Map([...SEEDS].map(([id, seed]) => [id, ed25519.getPublicKey(seed)] as const)) };
}

/** A genuine certified 2-of-3 result of the DKG engine, the members signing with the SEEDS keys. */
function dkgWithSeedKeys(committee: Committee): DkgPublicResult {
  const base = makeDkgScenario({ n: 3, t: 2, seed: 7 });
  const nodes = base.nodes.map((x) => ({ ...x, secretKey: SEEDS.get(x.fromId!)!, publicKey: ed25519.getPublicKey(SEEDS.get(x.fromId!)!) }));
  const scenario = { ...base, nodes, committee, memberKeys: new Map(committee.members.map((m) => [m.id, m.publicKey])) };
  const outcome = simulateDkg(scenario, { seed: 7, maxDelay: 20 }).outcomes[0];
  assert.ok(outcome, 'the DKG completed');
  return outcome.result;
}

function committeeFor(memberKeys: ReadonlyMap<number, Uint8Array>): Committee {
  return parseCommittee({
    committeeId: 'test-committee',
    t: 2,
    members: [...memberKeys].map(([id, key]) => ({ id, peerId: peerIdFromPublicKey(publicKeyFromRaw(key)).toString(), multiaddrs: [`/ip4/127.0.0.1/tcp/${id}`] })),
  });
}

function decodeHexBytes(hex: string): Uint8Array {
  return new Uint8Array(Buffer.from(hex.slice(2), 'hex'));
}

function serveKey(result: DkgPublicResult, committee: Committee): Promise<{ server: Server; url: string }> {
  const body = JSON.stringify({
    ...result,
    groupPublicKey: undefined,
    publicKey: result.groupPublicKey,
    publicKeySpki: bytesToHex(encodePublicKeySpki(decodePoint(result.groupPublicKey))),
    members: committee.members.map((m) => ({ id: m.id, peerId: m.peerId, publicKey: encodeHex(m.publicKey) })),
  });
  const server = createServer((req, res) => {
    // A gateway from before committee epochs: no /v1/committee (the client then follows no certificate).
    if (req.url?.startsWith('/v1/committee')) {
      res.writeHead(404, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: 'not_found', message: 'no such route' } }));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(body);
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}` })));
}
