import assert from 'node:assert/strict';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ed25519 } from '@noble/curves/ed25519.js';
import type { Libp2p } from 'libp2p';
import { pino } from 'pino';
import { generateAccount, TkmsClient } from '../../client/index.ts';
import { multiaddr } from '@multiformats/multiaddr';
import { peerIdFromString } from '@libp2p/peer-id';
import { bytesToHex, decodeHex, decodePoint, encodeHex, encodeKeysReply, encodePoint, G, isTkmsError, KEYS_PROTOCOL, mod, randomBytes, randomScalar } from '../../core/index.ts';
import { confirmMessage, dkgResultDigest, dkgSignedBytes, parseDkgPublicResult, type DkgPublicResult } from '../../core/dkg/index.ts';
import { encodePublicKeySpki } from '../../core/spki.ts';
import { loadCommitteeFile, memberKeysHex, pinnedClientOptions, type Committee } from '../../net/committee.ts';
import { createHost, serveFrames, requestFrame } from '../../net/p2p.ts';
import { DKG_PROTOCOL, encodeDkgFrame } from '../../node/dkg-wire.ts';
import { decodeCeremonyReply as decodeDkgReply } from '../../node/reshare-wire.ts';
import { loadIdentityFile } from '../../node/identity.ts';
import { freePorts, getJson, makeTempDir, ManagedProcess, NodeCluster, removeDir, runTkms, TKMS_BIN, waitFor } from '../support/processes.ts';

/**
 * Finding 1: members used to sign only (keyId, committeeId, sessionId, transcriptHash), so anyone
 * holding a genuine signed result could swap the group key for x·G and every Y_i for f(i)·G (f a
 * polynomial with f(0) = x) and keep every signature. Against a real 2-of-3 committee and gateway:
 * a member (a fake libp2p host with member 1's identity) answers the gateway with such a forgery,
 * then with a different result that t colluding members really signed; and an HTTP proxy in front
 * of the gateway swaps the key for clients (the client library and the `tkms` CLI).
 */
const KEY_ID = 'victim';

/** The genuine result with the key swapped for one the forger knows, signatures untouched. */
function forge(result: DkgPublicResult): DkgPublicResult {
  const coefficients = [randomScalar(), ...Array.from({ length: result.t - 1 }, () => randomScalar())];
  const at = (i: number): bigint => coefficients.reduceRight((acc, c) => mod(acc * BigInt(i) + c), 0n);
  const verificationShares = Object.fromEntries(Object.keys(result.verificationShares).map((id) => [id, encodeHex(encodePoint(G.multiply(at(Number(id)))))]));
  return { ...result, groupPublicKey: encodeHex(encodePoint(G.multiply(coefficients[0]!))), verificationShares };
}

/** What t colluding members could publish: a different key, really signed by them. */
function signedBy(result: DkgPublicResult, committee: Committee, seeds: Map<number, Uint8Array>): DkgPublicResult {
  const memberKeys = new Map(committee.members.map((m) => [m.id, m.publicKey]));
  const { signatures: _old, ...unsigned } = result;
  const message = dkgSignedBytes(confirmMessage(dkgResultDigest(unsigned, memberKeys)));
  return parseDkgPublicResult({ ...unsigned, signatures: Object.fromEntries([...seeds].map(([id, seed]) => [String(id), encodeHex(ed25519.sign(message, seed))])) });
}

/**
 * Finding C1 of the review: what one member alone can sign. t = 1, one qualified dealer, every
 * Y_i = x·G: a consistent degree-0 "polynomial" through a key only the forger knows.
 */
function t1Forgery(genuine: DkgPublicResult, committee: Committee, seed: Uint8Array, sessionId = genuine.sessionId): DkgPublicResult {
  const x = encodeHex(encodePoint(G.multiply(randomScalar())));
  const verificationShares = Object.fromEntries(Object.keys(genuine.verificationShares).map((id) => [id, x]));
  return signedBy({ ...genuine, sessionId, t: 1, qualified: [1], groupPublicKey: x, verificationShares, signatures: {} }, committee, new Map([[1, seed]]));
}

/** A gateway in the middle: forwards everything, but serves `forged` as the key's public data. */
function keySwappingProxy(gatewayUrl: string, forged: () => DkgPublicResult): Promise<{ server: Server; url: string }> {
  const target = new URL(gatewayUrl);
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const upstream = httpRequest({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers }, (up) => {
        const body: Buffer[] = [];
        up.on('data', (c: Buffer) => body.push(c));
        up.on('end', () => {
          let out = Buffer.concat(body);
          if (req.method === 'GET' && req.url === `/v1/keys/${KEY_ID}` && up.statusCode === 200) {
            const json = JSON.parse(out.toString('utf8')) as Record<string, unknown>;
            const f = forged();
            json.publicKey = f.groupPublicKey;
            json.publicKeySpki = bytesToHex(encodePublicKeySpki(decodePoint(f.groupPublicKey)));
            json.verificationShares = f.verificationShares;
            for (const field of ['t', 'n', 'committeeId', 'sessionId', 'qualified', 'transcriptHash', 'signatures'] as const) json[field] = f[field];
            out = Buffer.from(JSON.stringify(json));
          }
          const { 'transfer-encoding': _te, connection: _c, ...upHeaders } = up.headers;
          const headers = { ...upHeaders, 'content-length': String(out.length) };
          res.writeHead(up.statusCode ?? 502, headers);
          res.end(out);
        });
      });
      upstream.on('error', () => res.destroy());
      upstream.end(Buffer.concat(chunks));
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}` })));
}

async function nodeMetric(url: string, kind: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = new RegExp(`^tkms_dkg_conflicts_total\\{kind="${kind}"\\} (\\d+)`, 'm').exec(text);
  return m === null ? 0 : Number(m[1]);
}

async function metric(gatewayUrl: string, reason: string): Promise<number> {
  const text = await (await fetch(`${gatewayUrl}/metrics`)).text();
  const m = new RegExp(`^tkms_gateway_key_disagreements_total\\{reason="${reason}"\\} (\\d+)`, 'm').exec(text);
  return m === null ? 0 : Number(m[1]);
}

describe('attack: forge a DKG result by swapping the group key and verification shares while keeping the signatures', function () {
  this.timeout(180_000);
  let root: string | undefined;
  let cluster: NodeCluster | undefined;
  let committee: Committee;
  let committeePath: string;
  let genuine: DkgPublicResult;
  let forged: DkgPublicResult;
  let fakeMember: Libp2p | undefined;
  /** What the fake member 1 answers on /tkms/keys/1. */
  let fakeAnswer: DkgPublicResult;
  let gateway: ManagedProcess | undefined;
  let gatewayUrl: string;
  let proxy: { server: Server; url: string } | undefined;
  /** What the key-swapping proxy serves. */
  let proxied: DkgPublicResult;
  let seeds: Map<number, Uint8Array>;

  /** One frame on /tkms/dkg/2 from the hostile member 1 to a real node; its reply. */
  async function fromMember1(to: number, frame: Uint8Array): Promise<ReturnType<typeof decodeDkgReply>> {
    const member = committee.members.find((m) => m.id === to)!;
    await fakeMember!.dial(multiaddr(`${member.multiaddrs[0]}/p2p/${member.peerId}`));
    return decodeDkgReply(await requestFrame(fakeMember!, peerIdFromString(member.peerId), DKG_PROTOCOL, frame, { timeoutMs: 10_000 }));
  }

  /** Nodes 2 and 3 (node 1 is the forger) still hold and serve the genuine key: status, and a decrypt needing both. */
  async function honestNodesServe(label: string): Promise<void> {
    for (const id of [2, 3]) {
      const status = await getJson(`${cluster!.node(id).adminUrl}/admin/dkg/${KEY_ID}`);
      assert.equal(status.json.status, 'done', `${label}: node ${id} ${JSON.stringify(status.json)}`);
      assert.equal(status.json.errorCode, undefined, `${label}: node ${id}`);
      assert.equal(status.json.result.groupPublicKey, genuine.groupPublicKey);
    }
    const client = new TkmsClient({ gatewayUrl, account: generateAccount(), ...pinnedClientOptions(committee) });
    const info = await client.encrypt(new TextEncoder().encode(label), { keyId: KEY_ID });
    assert.equal(new TextDecoder().decode((await client.decrypt(info.handle)).plaintext), label);
  }

  before(async () => {
    root = await makeTempDir('tkms-forgery');
    cluster = await NodeCluster.prepare({ n: 3, t: 2, rootDir: root, phaseTimeoutMs: 2_000 });
    await cluster.startAll();
    await cluster.waitHealthy([1, 2, 3]);
    const proposed = await getJson(`${cluster.node(2).adminUrl}/admin/dkg`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ keyId: KEY_ID }) });
    assert.equal(proposed.status, 202);
    const statuses = await Promise.all(
      [1, 2, 3].map((id) =>
        waitFor(`DKG on node ${id}`, async () => {
          const s = await getJson(`${cluster!.node(id).adminUrl}/admin/dkg/${KEY_ID}`);
          return s.status === 200 && s.json.status !== 'running' ? s.json : undefined;
        }, { timeoutMs: 60_000 }),
      ),
    );
    for (const s of statuses) assert.equal(s.status, 'done', JSON.stringify(s));
    genuine = parseDkgPublicResult(statuses[1].result);
    forged = forge(genuine);
    fakeAnswer = forged;
    proxied = forged;
    committeePath = join(root, 'committee.json');
    committee = await loadCommitteeFile(committeePath);

    // Member 1 turns hostile: its process is replaced by a host with its identity that lies about the key.
    await cluster.node(1).process!.stop();
    const identity = await loadIdentityFile(join(cluster.node(1).dir, 'identity.json'));
    fakeMember = await createHost(identity, [`/ip4/127.0.0.1/tcp/${cluster.node(1).p2pPort}`], committee);
    await serveFrames(fakeMember, KEYS_PROTOCOL, async () => encodeKeysReply({ ok: true, keys: [fakeAnswer] }), { maxRequestBytes: 64 * 1024, timeoutMs: 5_000, log: pino({ level: 'silent' }) });
    await fakeMember.start();

    const [port] = await freePorts(1);
    gatewayUrl = `http://127.0.0.1:${port}`;
    await mkdir(join(root, 'gateway'), { recursive: true });
    const config = join(root, 'gateway', 'gateway.json');
    await writeFile(config, JSON.stringify({ listen: `127.0.0.1:${port}`, storeDir: 'store', committeeFile: '../committee.json', logLevel: 'info' }));
    gateway = new ManagedProcess('gateway', [TKMS_BIN, 'gateway', 'start', '--config', config], { env: {} });
    await waitFor('gateway to serve the key', async () => ((await getJson(`${gatewayUrl}/v1/keys/${KEY_ID}`).catch(() => undefined))?.status === 200 ? true : undefined), { timeoutMs: 60_000 });
    proxy = await keySwappingProxy(gatewayUrl, () => proxied);
    seeds = new Map();
    for (const id of [1, 2]) seeds.set(id, (await loadIdentityFile(join(cluster.node(id).dir, 'identity.json'))).privateKey.raw.subarray(0, 32));
  });

  after(async () => {
    await new Promise<void>((r) => (proxy === undefined ? r() : proxy.server.close(() => r())));
    await gateway?.stop();
    await fakeMember?.stop();
    await cluster?.stopAll();
    await removeDir(root);
  });

  it('a member answering the gateway with the forged result: the genuine key is published, the bad answer counted', async () => {
    const key = await getJson(`${gatewayUrl}/v1/keys/${KEY_ID}`);
    assert.equal(key.json.publicKey, genuine.groupPublicKey);
    assert.deepEqual(key.json.verificationShares, genuine.verificationShares);
    assert.ok((await metric(gatewayUrl, 'invalid')) >= 1, 'the forged answer is counted');
  });

  it('the client library with pinned member keys refuses the forged key from a lying gateway', async () => {
    const client = new TkmsClient({ gatewayUrl: proxy!.url, account: generateAccount(), ...pinnedClientOptions(committee) });
    await assert.rejects(
      client.encryptLocally(new TextEncoder().encode('for the committee only'), { keyId: KEY_ID }),
      (e: unknown) => isTkmsError(e, 'bad_proof') && /DKG result does not verify/.test((e as Error).message),
    );
  });

  it('`tkms encrypt --local --committee` through the key-swapping proxy fails: the key\'s DKG result does not verify', async () => {
    const account = join(root!, 'account.json');
    const password = join(root!, 'account-password');
    await writeFile(password, 'test password\n');
    assert.equal((await runTkms(['account', 'new', '--out', account, '--password-file', password])).code, 0);
    const args = ['encrypt', '--key', KEY_ID, '--text', 'for the committee only', '--local', '--committee', committeePath, '--account', account, '--password-file', password];
    const attacked = await runTkms([...args, '--gateway', proxy!.url]);
    assert.equal(attacked.code, 1, attacked.stdout);
    assert.match(attacked.stderr, /DKG result does not verify/);
    assert.equal(attacked.stdout, '');
    // The same command against the real gateway works: the refusal is the forgery's doing.
    const honest = await runTkms([...args, '--gateway', gatewayUrl, '--json']);
    assert.equal(honest.code, 0, honest.stderr);
  });

  describe('attack: one member signs a result with t = 1 (its own key as the group key)', () => {
    it('the client library pinned to the committee file (member keys, t, committee id) refuses it', async () => {
      proxied = t1Forgery(genuine, committee, seeds.get(1)!);
      const client = new TkmsClient({ gatewayUrl: proxy!.url, account: generateAccount(), ...pinnedClientOptions(committee) });
      await assert.rejects(
        client.encryptLocally(new TextEncoder().encode('for the committee only'), { keyId: KEY_ID }),
        (e: unknown) => isTkmsError(e, 'bad_proof') && /DKG result does not verify.*t = 1/.test((e as Error).message),
      );
      // Member keys alone pin nothing about t: such a client does not encrypt locally at all. Here the
      // one signature is refused even before that: a result needs a vote quorum of its own n and t (2 of 3).
      const keysOnly = new TkmsClient({ gatewayUrl: proxy!.url, account: generateAccount(), trustedMemberKeys: memberKeysHex(committee) });
      await assert.rejects(
        keysOnly.encryptLocally(new TextEncoder().encode('x'), { keyId: KEY_ID }),
        (e: unknown) => isTkmsError(e, 'bad_proof') && /need 2 \(a vote quorum of n = 3, t = 1\)/.test((e as Error).message),
      );
      const keysOnlyHonest = new TkmsClient({ gatewayUrl, account: generateAccount(), trustedMemberKeys: memberKeysHex(committee) });
      await assert.rejects(keysOnlyHonest.encryptLocally(new TextEncoder().encode('x'), { keyId: KEY_ID }), (e: unknown) => isTkmsError(e, 'unauthorized'));
    });

    it('`tkms encrypt --local --committee` through the key-swapping proxy fails: the key\'s DKG result does not verify', async () => {
      proxied = t1Forgery(genuine, committee, seeds.get(1)!);
      const account = join(root!, 'account-t1.json');
      const password = join(root!, 'account-t1-password');
      await writeFile(password, 'test password\n');
      assert.equal((await runTkms(['account', 'new', '--out', account, '--password-file', password])).code, 0);
      const attacked = await runTkms(['encrypt', '--key', KEY_ID, '--text', 'for the committee only', '--local', '--committee', committeePath, '--account', account, '--password-file', password, '--gateway', proxy!.url]);
      assert.equal(attacked.code, 1, attacked.stdout);
      assert.match(attacked.stderr, /DKG result does not verify/);
      assert.equal(attacked.stdout, '');
    });

    it('real nodes sent the forgery over /tkms/dkg/2 by member 1 (same and another session) keep serving the key', async () => {
      for (const sessionId of [genuine.sessionId, encodeHex(randomBytes(16))]) {
        const result = t1Forgery(genuine, committee, seeds.get(1)!, sessionId);
        for (const id of [2, 3]) {
          const reply = await fromMember1(id, encodeDkgFrame({ type: 'result', keyId: KEY_ID, sessionId: decodeHex(sessionId), result }));
          assert.equal(reply.ok ? 'ok' : reply.code, 'dkg_conflict', `node ${id}`);
        }
      }
      await honestNodesServe('after the t = 1 forgery');
    });

    it('the gateway counts a member answering with it as invalid and keeps serving the genuine key', async () => {
      const before = await metric(gatewayUrl, 'invalid');
      fakeAnswer = t1Forgery(genuine, committee, seeds.get(1)!);
      await waitFor('the gateway to see the forgery', async () => {
        await getJson(`${gatewayUrl}/v1/keys`);
        return (await metric(gatewayUrl, 'invalid')) > before ? true : undefined;
      }, { timeoutMs: 20_000, intervalMs: 500 });
      assert.equal((await getJson(`${gatewayUrl}/v1/keys/${KEY_ID}`)).json.publicKey, genuine.groupPublicKey);
    });
  });

  describe('attack: a valid result of a second DKG session for a key id already held (finding H3)', () => {
    it('holders answer dkg_conflict and keep serving the key; the gateway keeps serving it and counts other_session', async () => {
      // t genuine member signatures (members 1 and 2 colluding, or two members led through a second DKG).
      const second = signedBy({ ...forge(genuine), sessionId: encodeHex(randomBytes(16)) }, committee, seeds);
      const before = await Promise.all([2, 3].map((id) => nodeMetric(cluster!.node(id).httpUrl, 'other_session')));
      for (const id of [2, 3]) {
        const reply = await fromMember1(id, encodeDkgFrame({ type: 'result', keyId: KEY_ID, sessionId: decodeHex(second.sessionId), result: second }));
        assert.equal(reply.ok ? 'ok' : reply.code, 'dkg_conflict', `node ${id}`);
        assert.ok((await nodeMetric(cluster!.node(id).httpUrl, 'other_session')) > before[id - 2]!, `node ${id} counts it`);
        assert.equal(await nodeMetric(cluster!.node(id).httpUrl, 'withdrawn'), 0, `node ${id} withdrew nothing`);
      }
      const gatewayBefore = await metric(gatewayUrl, 'other_session');
      fakeAnswer = second;
      await waitFor('the gateway to see the second session', async () => {
        await getJson(`${gatewayUrl}/v1/keys`);
        return (await metric(gatewayUrl, 'other_session')) > gatewayBefore ? true : undefined;
      }, { timeoutMs: 20_000, intervalMs: 500 });
      assert.equal((await getJson(`${gatewayUrl}/v1/keys/${KEY_ID}`)).json.publicKey, genuine.groupPublicKey);
      await honestNodesServe('after a second session\'s result');
    });
  });

  describe('attack: a split inside one session (t members signed two results of it)', () => {
    it('a member answering a different valid result of the same session (signed by t colluding members): the key is withdrawn and the conflict counted', async () => {
      fakeAnswer = signedBy(forge(genuine), committee, seeds);
      const before = await metric(gatewayUrl, 'conflict');
      await waitFor(
        'the gateway to withdraw the key',
        async () => {
          await getJson(`${gatewayUrl}/v1/keys`); // refreshes from the members (at most once a second)
          return (await getJson(`${gatewayUrl}/v1/keys/${KEY_ID}`)).status === 404 ? true : undefined;
        },
        { timeoutMs: 20_000, intervalMs: 500 },
      );
      const refused = await getJson(`${gatewayUrl}/v1/keys/${KEY_ID}`);
      assert.equal(refused.json.error.code, 'unknown_key');
      assert.match(refused.json.error.message, /different DKG results/);
      assert.equal((await getJson(`${gatewayUrl}/v1/keys`)).json.keys.length, 0);
      assert.ok((await metric(gatewayUrl, 'conflict')) > before);
    });
  });
});
