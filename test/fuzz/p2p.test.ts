import { signKeyChange, ZERO_DIGEST } from '../../core/keys/key-change.ts';
import { encodeKeyChangeRequest, KEY_CHANGES_PROTOCOL } from '../../core/keys/key-wire.ts';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import fc from 'fast-check';
import { byteStream } from '@libp2p/utils';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { generateAccount, TkmsClient, type Account } from '../../client/index.ts';
import {
  ACL_PROTOCOL,
  decodeHex,
  encodeAclRequest,
  encodePartialBatchRequest,
  encodePartialRequest,
  ERROR_CODES,
  generateRsaKeyPair,
  isErrorCode,
  KEYS_PROTOCOL,
  MAX_NODE_FRAME_BYTES,
  newRequestId,
  MAX_PARTIAL_BATCH,
  PARTIAL_BATCH_PROTOCOL,
  PARTIAL_PROTOCOL,
  sealToHandle,
  signDelegation,
  signGrant,
  signRevocation,
  type HandleDescriptor,
} from '../../core/index.ts';
import { decodePoint } from '../../core/curve.ts';
import { Devnet, getJson } from '../../deploy/devnet.ts';
import { loadCommitteeFile, type Committee } from '../../net/committee.ts';
import { DKG_PROTOCOL, encodeDkgFrame, MAX_DKG_FRAME_BYTES } from '../../node/dkg-wire.ts';
import { loadIdentityFile } from '../../node/identity.ts';
import { bytesSecret, findSecrets, nodeSecrets, readLogFiles } from '../support/log-secrets.ts';
import { P2pClient } from '../support/p2p-client.ts';
import { makeTempDir, removeDir } from '../support/processes.ts';
import { bodyArb, Tally } from './support.ts';

/**
 * Input fuzzing of every libp2p protocol of a node (/tkms/partial/1, /tkms/acl/1, /tkms/keys/1,
 * /tkms/dkg/2), against real node processes (a devnet of 3 nodes, t = 2): mutated valid frames
 * (fields replaced by wrong types, huge numbers, unicode, bad hex, deleted or added), truncated and
 * random frames, frames at and over the size bound, and raw streams that lie about their length,
 * stop half-way or never finish. The test client is accepted as a gateway (so /tkms/acl/1 reads
 * its frames). /tkms/dkg/2 (binary frames: bytes changed, cut, added) is fuzzed twice: from a non-member (its streams reset as they open,
 * before a byte is read) and from a member — the test takes over member 3's identity after stopping its process,
 * so the frames reach the DKG decoder and the session routing of nodes 1 and 2.
 * Every frame within the size bound must get a typed reply frame (`ok:true`, or `ok:false` with a
 * known, non-internal error code) within 5 s; frames over it, a typed refusal or a stream reset.
 * Afterwards every process is up and a real decryption works.
 */
const nowS = (): number => Math.floor(Date.now() / 1000);
const RUNS = { partial: 200, batch: 120, acl: 150, keys: 50, keyChanges: 120, dkgOutsider: 50, dkgMember: 150 };

type Outcome = { kind: 'reply'; json: any } | { kind: 'reset'; error: string };

const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));
const template = (bytes: Uint8Array): unknown => JSON.parse(Buffer.from(bytes).toString('utf8'));
/** A valid binary frame with bytes changed, cut short or added to, or random bytes. */
const binaryArb = (valid: Uint8Array): fc.Arbitrary<Buffer> =>
  fc.oneof(
    { weight: 6, arbitrary: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }).map((edits) => {
      const b = Buffer.from(valid);
      for (const [at, byte] of edits) b[at % b.length] = byte;
      return b;
    }) },
    { weight: 2, arbitrary: fc.nat().map((n) => Buffer.from(valid.subarray(0, n % valid.length))) },
    { weight: 1, arbitrary: fc.uint8Array({ minLength: 1, maxLength: 64 }).map((extra) => Buffer.concat([valid, extra])) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }).map((b) => Buffer.from(b)) },
  );

describe('fuzz: libp2p protocols of the nodes (real devnet: 3 nodes, t = 2)', function () {
  this.timeout(120_000);
  let dir: string | undefined;
  let devnet: Devnet | undefined;
  let committee: Committee;
  let client: P2pClient | undefined;
  let member: P2pClient | undefined;
  const tally = new Tally();
  let alice: Account;
  let bob: Account;
  const templates: Record<string, unknown> = {};
  /** /tkms/dkg/2 frames are binary (node/dkg-wire.ts): a valid proposal and payload to mutate. */
  let dkgProposal: Uint8Array;
  let dkgPayload: (keyId: string, sessionId?: Uint8Array, payload?: Uint8Array) => Uint8Array;
  let handle = '';
  const plaintext = `p2p fuzz ${Math.random()}`;

  before(async function () {
    this.timeout(120_000);
    dir = await makeTempDir('tkms-fuzz-p2p');
    const unlimited = { partialRateLimit: { perMinute: 10_000_000, burst: 10_000_000 } };
    const clientKey = await generateKeyPair('Ed25519');
    devnet = await Devnet.start({ dir, n: 3, t: 2, gatewayPort: 0, nodeConfig: { 1: unlimited, 2: unlimited, 3: unlimited }, extraGatewayPeerIds: [peerIdFromPrivateKey(clientKey).toString()] });
    committee = await loadCommitteeFile(join(dir, 'committee.json'));
    client = await P2pClient.start(committee, clientKey);
    [alice, bob] = [generateAccount(), generateAccount()];
    const aliceClient = new TkmsClient({ gatewayUrl: devnet.gatewayUrl, account: alice, trustedMemberKeys: await devnet.memberKeys() });
    handle = (await aliceClient.encrypt(new TextEncoder().encode(plaintext), { keyId: devnet.keyId })).handle;
    await aliceClient.grant(handle, bob.address);

    const key = await aliceClient.getKey(devnet.keyId);
    const sealed = await sealToHandle({ publicKey: decodePoint(key.publicKeyHex), keyId: devnet.keyId, owner: alice.addressBytes, plaintext: new TextEncoder().encode('x') });
    const descriptor: HandleDescriptor = { keyId: devnet.keyId, K: sealed.K, nonce: sealed.nonce, ciphertextHash: sealed.ciphertextHash, owner: alice.addressBytes, kProof: sealed.kProof };
    const rsa = await generateRsaKeyPair();
    const grant = signGrant(alice.secretKey, { handle: sealed.handle, grantee: bob.addressBytes, notAfter: nowS() + 600, issuedAt: nowS() }, devnet.deployment);
    const delegation = signDelegation(bob.secretKey, {
      handle: sealed.handle,
      keyId: devnet.keyId,
      requester: bob.addressBytes,
      rsaSpki: decodeHex(rsa.publicKey.spkiHex),
      notBefore: nowS(),
      notAfter: nowS() + 600,
      requestId: newRequestId(),
    }, devnet.deployment);
    templates.partial = template(encodePartialRequest({ delegation, descriptor, grant }));
    // Two requests, the second with its own request id, so an untouched batch gets two partials.
    const second = signDelegation(bob.secretKey, { ...delegation, requestId: newRequestId() }, devnet.deployment);
    templates.batch = template(encodePartialBatchRequest([{ delegation, descriptor, grant }, { delegation: second, descriptor, grant }]));
    templates.revoke = template(encodeAclRequest({ type: 'revoke', item: { descriptor, revocation: signRevocation(alice.secretKey, { handle: sealed.handle, grantee: bob.addressBytes, revokedAt: nowS() }, devnet.deployment) } }));
    templates.sync = template(encodeAclRequest({ type: 'sync', offset: 0 }));
    templates.keys = { v: 1 };
    // A valid create of a managed key (devnets let anyone create), and the other /tkms/key-changes/1 requests.
    const create = signKeyChange(alice.secretKey, { keyId: 'fuzz-key', sequence: 1, previous: ZERO_DIGEST, action: 'create', body: JSON.stringify({ origin: { type: 'derived', root: devnet.keyId, path: 'fuzz' }, admins: [alice.address] }), issuedAt: nowS(), admin: alice.addressBytes }, devnet.deployment);
    templates.keyChange = template(encodeKeyChangeRequest({ type: 'change', change: create }));
    templates.keySync = template(encodeKeyChangeRequest({ type: 'sync', after: 0 }));
    templates.keyHistory = template(encodeKeyChangeRequest({ type: 'history', keyId: 'fuzz-key', after: 0 }));
    templates.keyReceipts = template(encodeKeyChangeRequest({ type: 'receipts', keyId: 'fuzz-key' }));
    const sessionId = new Uint8Array(16).fill(7);
    dkgProposal = encodeDkgFrame({ type: 'proposal', keyId: devnet.keyId, sessionId, committeeId: committee.committeeId, epoch: 0, t: 2, proposer: 3 });
    dkgPayload = (keyId, sid, payload = new Uint8Array(120).fill(1)) => encodeDkgFrame({ type: 'payload', keyId, sessionId: sid ?? sessionId, payload });
  });

  after(async function () {
    this.timeout(60_000);
    console.log(tally.table('protocol (target node)'));
    await member?.stop().catch(() => undefined);
    await client?.stop().catch(() => undefined);
    await devnet?.stop();
    if (dir !== undefined && devnet !== undefined) {
      const { needles } = await nodeSecrets(dir);
      for (const a of [alice, bob]) needles.push(bytesSecret(`account ${a.address}`, a.secretKey));
      assert.deepEqual(findSecrets(await readLogFiles(dir), needles), []);
    }
    await removeDir(dir);
  });


  // A raw stream: bytes as given, then end (or stall). The node must end every stream by
  // itself — at once when the bytes are bad, at its 10 s handler timeout when they stall.
  const rawStream = async (protocol: string, bytes: Uint8Array, close: boolean): Promise<string> => {
    const signal = AbortSignal.timeout(12_000);
    const started = Date.now();
    let stream;
    try {
      stream = await client!.libp2p.dialProtocol(client!.peer(2), protocol, { signal });
    } catch (e) {
      return `dial failed (${e instanceof Error ? e.name : 'error'})`;
    }
    const bs = byteStream(stream);
    const took = (): string => (Date.now() - started < 1_000 ? 'at once' : `after ${Math.round((Date.now() - started) / 1000)} s`);
    try {
      if (bytes.length > 0) await bs.write(bytes, { signal });
      if (close) await stream.close({ signal });
      const reply = await bs.read({ signal });
      if (reply === null) return `closed ${took()}`;
      const text = Buffer.from(reply.subarray()).toString('utf8');
      return `${/"ok":false/.test(text) ? `refused (${/"code":"([a-z_]+)"/.exec(text)?.[1] ?? '?'})` : 'answered'} ${took()}`;
    } catch {
      assert.ok(!signal.aborted, `${protocol}: the node left a raw stream open for 12 s`);
      return `reset ${took()}`;
    } finally {
      stream.abort(new Error('done'));
    }
  };
  const varint = (n: number): number[] => {
    const out: number[] = [];
    while (n >= 0x80) {
      out.push((n & 0x7f) | 0x80);
      n = Math.floor(n / 128);
    }
    out.push(n);
    return out;
  };
  const rawCases = (): [string, Uint8Array, boolean][] => {
    const valid = json(templates.keys);
    return [
      ['length prefix of 2^31, no data', Uint8Array.from(varint(2 ** 31)), true],
      ['overlong varint', Uint8Array.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), true],
      ['prefix 100, 10 bytes, end', Uint8Array.from([...varint(100), ...Buffer.alloc(10, 0x7b)]), true],
      ['prefix 100, 10 bytes, stall', Uint8Array.from([...varint(100), ...Buffer.alloc(10, 0x7b)]), false],
      ['nothing, end', new Uint8Array(0), true],
      ['nothing, stall', new Uint8Array(0), false],
      ['zero-length frame', Uint8Array.from([0]), true],
      ['a valid frame, then garbage', Uint8Array.from([...varint(valid.length), ...valid, 0xde, 0xad, 0xbe, 0xef]), true],
    ];
  };

  /** Streams that stall, started first and checked last: the node must end them at its own timeout. */
  let stalls: Promise<(readonly [string, string, string])[]> | undefined;

  it('raw streams that stall (started now; the node must end them by itself, checked at the end)', () => {
    stalls = Promise.all(
      [PARTIAL_PROTOCOL, PARTIAL_BATCH_PROTOCOL, ACL_PROTOCOL, KEYS_PROTOCOL, KEY_CHANGES_PROTOCOL, DKG_PROTOCOL].flatMap((protocol) => rawCases().filter(([name]) => name.includes('stall')).map(async ([name, bytes, close]) => [protocol, name, await rawStream(protocol, bytes, close)] as const)),
    );
    stalls.catch(() => undefined); // awaited (and reported) in the last test
  });

  async function ask(via: P2pClient, node: number, protocol: string, body: Uint8Array): Promise<Outcome> {
    try {
      const reply = await via.request(node, protocol, body, 5_000);
      return { kind: 'reply', json: JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(reply)) };
    } catch (e) {
      return { kind: 'reset', error: e instanceof Error ? `${e.name}: ${e.message}` : String(e) };
    }
  }

  /** A typed reply frame: ok, or a refusal with a known code that is the sender's fault (or, for DKG, "busy"). */
  function checkReply(what: string, protocol: string, outcome: Outcome): string {
    assert.equal(outcome.kind, 'reply', `${what}: no reply frame (${outcome.kind === 'reset' ? outcome.error : ''})`);
    const r = (outcome as { json: any }).json;
    assert.ok(typeof r === 'object' && r !== null && !Array.isArray(r), `${what}: reply is not an object`);
    if (r.ok === true) return 'ok';
    assert.equal(r.ok, false, `${what}: reply.ok is ${String(r.ok)}`);
    assert.ok(isErrorCode(r.error?.code), `${what}: unknown error code ${JSON.stringify(r.error)}`);
    assert.equal(typeof r.error.message, 'string');
    const code = r.error.code as keyof typeof ERROR_CODES;
    assert.notEqual(code, 'internal', `${what}: internal error: ${r.error.message}`);
    const busy = protocol === DKG_PROTOCOL && code === 'unavailable';
    assert.ok(ERROR_CODES[code] < 500 || busy, `${what}: ${code}: ${r.error.message}`);
    return code;
  }

  async function fuzz(label: string, via: () => P2pClient, nodes: number[], protocol: string, arb: fc.Arbitrary<Buffer>, numRuns: number): Promise<void> {
    await fc.assert(
      fc.asyncProperty(arb, fc.constantFrom(...nodes), async (body, node) => {
        const outcome = await ask(via(), node, protocol, body);
        tally.add(label, checkReply(`${label} → node ${node}: ${body.subarray(0, 160).toString('latin1')}`, protocol, outcome));
      }),
      { numRuns, endOnFailure: true },
    );
  }

  it(`${PARTIAL_PROTOCOL}: mutated, truncated and random delegation requests`, async () => {
    await fuzz(PARTIAL_PROTOCOL, () => client!, [1, 2, 3], PARTIAL_PROTOCOL, bodyArb(templates.partial), RUNS.partial);
  });

  it(`${PARTIAL_BATCH_PROTOCOL}: mutated, truncated and random batches; every item answered on its own`, async () => {
    await fc.assert(
      fc.asyncProperty(bodyArb(templates.batch), fc.constantFrom(1, 2, 3), async (body, node) => {
        const what = `batch → node ${node}: ${body.subarray(0, 160).toString('latin1')}`;
        const outcome = await ask(client!, node, PARTIAL_BATCH_PROTOCOL, body);
        const code = checkReply(what, PARTIAL_BATCH_PROTOCOL, outcome);
        tally.add(PARTIAL_BATCH_PROTOCOL, code);
        if (code !== 'ok') return;
        const replies = (outcome as { json: { replies: unknown } }).json.replies;
        assert.ok(Array.isArray(replies) && replies.length >= 1 && replies.length <= MAX_PARTIAL_BATCH, `${what}: replies ${JSON.stringify(replies)?.slice(0, 200)}`);
        for (const item of replies) tally.add(`${PARTIAL_BATCH_PROTOCOL} items`, checkReply(`${what} (item)`, PARTIAL_PROTOCOL, { kind: 'reply', json: item }));
      }),
      { numRuns: RUNS.batch, endOnFailure: true },
    );
  });

  it(`${ACL_PROTOCOL}: mutated revocations and sync requests (odd offsets)`, async () => {
    const offsets = fc.oneof(fc.integer(), fc.constantFrom(-1, 1e308, 2 ** 53, 2 ** 53 + 2, 0.5, -0, '0', null, [], 1e21));
    const arb = fc.oneof(bodyArb(templates.revoke), bodyArb(templates.sync), offsets.map((offset) => json({ v: 1, type: 'sync', offset })));
    await fuzz(ACL_PROTOCOL, () => client!, [1, 2, 3], ACL_PROTOCOL, arb, RUNS.acl);
  });

  it(`${KEY_CHANGES_PROTOCOL}: mutated key changes, sync, history and receipts requests`, async () => {
    const arb = fc.oneof(bodyArb(templates.keyChange), bodyArb(templates.keySync), bodyArb(templates.keyHistory), bodyArb(templates.keyReceipts));
    await fuzz(KEY_CHANGES_PROTOCOL, () => client!, [1, 2, 3], KEY_CHANGES_PROTOCOL, arb, RUNS.keyChanges);
  });

  it(`${KEYS_PROTOCOL}: odd requests`, async () => {
    await fuzz(KEYS_PROTOCOL, () => client!, [1, 2, 3], KEYS_PROTOCOL, bodyArb(templates.keys), RUNS.keys);
  });

  it(`${DKG_PROTOCOL} from a non-member: every stream reset as it opens, valid frame or not`, async () => {
    const arb = fc.oneof(binaryArb(dkgProposal), binaryArb(dkgPayload('fuzzed')), fc.constant(Buffer.from(dkgProposal)));
    await fc.assert(
      fc.asyncProperty(arb, fc.constantFrom(1, 2, 3), async (body, node) => {
        const outcome = await ask(client!, node, DKG_PROTOCOL, body);
        assert.equal(outcome.kind, 'reset', `dkg non-member → node ${node}: ${JSON.stringify(outcome)}`);
        tally.add(`${DKG_PROTOCOL} (non-member)`, 'reset');
      }),
      { numRuns: RUNS.dkgOutsider, endOnFailure: true },
    );
  });

  it('every protocol: frames at and over the size bound, and raw streams that lie about their length', async () => {
    for (const [protocol, max] of [
      [PARTIAL_PROTOCOL, MAX_NODE_FRAME_BYTES],
      [PARTIAL_BATCH_PROTOCOL, MAX_NODE_FRAME_BYTES],
      [ACL_PROTOCOL, MAX_NODE_FRAME_BYTES],
      [KEYS_PROTOCOL, MAX_NODE_FRAME_BYTES],
      [DKG_PROTOCOL, MAX_DKG_FRAME_BYTES],
    ] as const) {
      // Exactly at the bound: a JSON object padded with spaces. Decoded, refused as a bad request (DKG: reset, the client is no member).
      const atBound = Buffer.alloc(max, 0x20);
      atBound.write(protocol === DKG_PROTOCOL ? '\u0002' : '{"v":1,"x":1}', 0);
      const at = await ask(client!, 1, protocol, atBound);
      if (protocol === DKG_PROTOCOL) assert.equal(at.kind, 'reset');
      tally.add(`${protocol} size bound`, `at bound: ${protocol === DKG_PROTOCOL ? 'reset' : checkReply(`${protocol} at bound`, protocol, at)}`);
      // One byte over: a typed refusal or a stream reset, and quickly.
      const started = Date.now();
      const over = await ask(client!, 1, protocol, Buffer.alloc(max + 1, 0x41));
      assert.ok(Date.now() - started < 5_000, `${protocol} over the bound took ${Date.now() - started} ms`);
      tally.add(`${protocol} size bound`, over.kind === 'reset' ? 'over bound: reset' : `over bound: ${checkReply(`${protocol} over bound`, protocol, over)}`);
    }
    const results = await Promise.all(
      [PARTIAL_PROTOCOL, PARTIAL_BATCH_PROTOCOL, ACL_PROTOCOL, KEYS_PROTOCOL, KEY_CHANGES_PROTOCOL, DKG_PROTOCOL].flatMap((protocol) => rawCases().filter(([name]) => !name.includes('stall')).map(async ([name, bytes, close]) => [protocol, name, await rawStream(protocol, bytes, close)] as const)),
    );
    // One row per case, over the five protocols.
    for (const [, name, outcome] of results) tally.add(`raw stream: ${name}`, outcome);
    // The nodes still answer at once.
    for (const id of [1, 2, 3]) checkReply(`keys after raw streams, node ${id}`, KEYS_PROTOCOL, await ask(client!, id, KEYS_PROTOCOL, json({ v: 1 })));
  });

  it(`${DKG_PROTOCOL} from a member (member 3's identity, its process stopped): decoder and session routing`, async () => {
    const net = devnet!;
    await net.killNode(3, 'SIGTERM');
    const identity = await loadIdentityFile(join(net.node(3).dir, 'identity.json'));
    member = await P2pClient.start(committee, identity.privateKey);
    const arb = fc.oneof(
      binaryArb(dkgProposal),
      binaryArb(dkgPayload('fuzzed')),
      fc.uint8Array({ minLength: 1, maxLength: 600 }).map((payload) => Buffer.from(dkgPayload('fuzzed', undefined, payload))),
      fc.uint8Array({ minLength: 16, maxLength: 16 }).map((sid) => Buffer.from(dkgPayload('fuzzed', sid))),
    );
    await fuzz(`${DKG_PROTOCOL} (member)`, () => member!, [1, 2], DKG_PROTOCOL, arb, RUNS.dkgMember);
    // Payloads for sessions the node does not run are held, but at most 64 per member (node/reshare-inbox.ts): then "unavailable".
    const codes: string[] = [];
    for (let i = 0; i < 70; i++) {
      const sessionId = crypto.getRandomValues(new Uint8Array(16));
      const code = checkReply('early payload', DKG_PROTOCOL, await ask(member, 1, DKG_PROTOCOL, Buffer.from(dkgPayload('fuzzed', sessionId))));
      tally.add(`${DKG_PROTOCOL} (member) unknown sessions`, code);
      codes.push(code);
    }
    assert.ok(codes.every((c) => c === 'ok' || c === 'unavailable'), codes.join(','));
    assert.equal(codes[codes.length - 1], 'unavailable', 'the buffer of early DKG payloads is bounded');
    await member.stop();
    member = undefined;
    await net.startNode(3);
    await net.waitNodesHealthy([1, 2, 3]);
  });

  it('afterwards every process is up and serving: health, keys, and a real decryption', async () => {
    const net = devnet!;
    for (const [protocol, name, outcome] of await stalls!) {
      tally.add(`raw stream: ${name}`, outcome);
      // A non-member's DKG stream is reset as it opens; every other stall ends at the node's timeout.
      assert.match(outcome, protocol === DKG_PROTOCOL ? /^(reset|closed) at once$/ : /^(reset|closed) after (9|10|11|12) s$/, `${protocol} ${name}: ${outcome}`);
    }
    for (const node of net.nodes) {
      assert.equal(node.process?.exitCode, null, `node ${node.id} exited`);
      assert.equal(node.process?.signalCode, null, `node ${node.id} was killed`);
      assert.equal((await getJson(`${node.httpUrl}/health`)).status, 200, `node ${node.id} health`);
    }
    assert.equal((await getJson(`${net.gatewayUrl}/health`)).status, 200, 'gateway health');
    const bobClient = new TkmsClient({ gatewayUrl: net.gatewayUrl, account: bob, trustedMemberKeys: await net.memberKeys() });
    assert.equal(new TextDecoder().decode((await bobClient.decrypt(handle)).plaintext), plaintext);
    const logs = await readFile(join(net.node(1).dir, 'node.log'), 'utf8');
    assert.doesNotMatch(logs, /unexpected error handling a DKG frame|partial request failed unexpectedly/, 'a fuzzed frame reached an unexpected-error path');
    console.log(`      ${tally.total()} libp2p inputs in total`);
  });
});
