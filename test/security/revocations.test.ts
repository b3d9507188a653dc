import assert from 'node:assert/strict';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { generateAccount, TkmsClient, type Account } from '../../client/index.ts';
import {
  ACL_PROTOCOL,
  checkGrantTimes,
  decodeAclReply,
  decodeHandle,
  deriveHandleFromDigest,
  encodeAclRequest,
  encodePoint,
  generateRsaKeyPair,
  GrantMessage,
  publicKeyFromSecret,
  randomBytes,
  randomScalar,
  RevocationMessage,
  signGrant,
  signRevocation,
  type Grant,
  type HandleDescriptor,
  type RsaKeyPair,
} from '../../core/index.ts';
import { Devnet, getJson } from '../../deploy/devnet.ts';
import { loadCommitteeFile } from '../../net/committee.ts';
import { askPartial, ownedHandle, type OwnedHandle } from '../support/devnet-requests.ts';
import { P2pClient } from '../support/p2p-client.ts';
import { makeTempDir, removeDir } from '../support/processes.ts';

/**
 * Attacks on revocation, against a real devnet (3 nodes, t = 2) configured with small bounds so
 * they run fast: each node holds at most MAX live revocations, PER_OWNER per handle owner, and
 * grants may be valid for at most LIFETIME seconds (the gateway and the nodes agree on it).
 */
const nowS = (): number => Math.floor(Date.now() / 1000);
const PER_OWNER = 3;
const MAX = 8;
const LIFETIME = 3_600;
const N = 3;


describe('security: revocations (devnet: 3 nodes, t = 2, small revocation bounds)', function () {
  this.timeout(180_000);
  let dir: string | undefined;
  let devnet: Devnet | undefined;
  let p2p: P2pClient | undefined;
  let rsa: RsaKeyPair;

  const clientFor = async (a: Account): Promise<TkmsClient> => new TkmsClient({ gatewayUrl: devnet!.gatewayUrl, account: a, trustedMemberKeys: await devnet!.memberKeys(), rsaKey: rsa });

  const ownHandle = async (owner: Account): Promise<OwnedHandle> => ownedHandle(await clientFor(owner), devnet!.keyId, `revocations ${Math.random()}`);

  /** DELETE through the gateway, signed by `owner`; the gateway's answer. */
  async function revokeVia(owner: Account, h: OwnedHandle, grantee: Uint8Array, revokedAt = nowS()): Promise<{ status: number; json: any }> {
    const revocation = signRevocation(owner.secretKey, { handle: decodeHandle(h.handle), grantee, revokedAt }, devnet!.deployment);
    return getJson(`${devnet!.gatewayUrl}/v1/handles/${h.handle}/grants/0x${Buffer.from(grantee).toString('hex')}`, {
      method: 'DELETE',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(RevocationMessage.encode(revocation)),
    });
  }

  /** The grantee's partial request straight to a node: 'ok' or the refusal code. */
  const askNode = (node: number, grantee: Account, h: OwnedHandle, grant: Grant | undefined): Promise<string> =>
    askPartial({ p2p: p2p!, deployment: devnet!.deployment, keyId: devnet!.keyId, rsa, windowSeconds: 300 }, node, grantee, h, grant);

  const held = async (node: number): Promise<number> => {
    const text = await (await fetch(`${devnet!.node(node).httpUrl}/metrics`)).text();
    const m = /^tkms_revocations_held (\d+)$/m.exec(text);
    assert.ok(m, 'tkms_revocations_held is exported');
    return Number(m[1]);
  };

  const grantFor = (owner: Account, h: OwnedHandle, grantee: Account, over: Partial<Grant> = {}): Grant =>
    signGrant(owner.secretKey, { handle: decodeHandle(h.handle), grantee: grantee.addressBytes, notAfter: nowS() + 600, issuedAt: nowS(), ...over }, devnet!.deployment);

  before(async function () {
    this.timeout(180_000);
    dir = await makeTempDir('tkms-revocations');
    const nodeConfig = { revocations: { perOwner: PER_OWNER, max: MAX }, maxGrantLifetimeSeconds: LIFETIME, partialRateLimit: { perMinute: 10_000, burst: 10_000 } };
    devnet = await Devnet.start({
      dir,
      n: N,
      t: 2,
      gatewayPort: 0,
      nodeConfig: { 1: nodeConfig, 2: nodeConfig, 3: nodeConfig },
      // The gateway's store as small as the nodes' (its per-owner bound above theirs, so the nodes' answer shows).
      gatewayConfig: { rateLimit: { perMinute: 100_000, burst: 10_000 }, maxGrantLifetimeSeconds: LIFETIME, revocations: { perOwner: MAX, max: MAX } },
    });
    p2p = await P2pClient.start(await loadCommitteeFile(join(dir, 'committee.json')));
    rsa = await generateRsaKeyPair();
  });

  after(async function () {
    this.timeout(60_000);
    await p2p?.stop().catch(() => undefined);
    await devnet?.stop();
    await removeDir(dir);
  });

  it('attack: flood revocations for invented handles until the store refuses the owner\'s real revocation', async () => {
    // Invented handles (no proof that their maker knows K's discrete log) are refused outright.
    const mallory = generateAccount();
    const k = randomScalar();
    const digest = { keyId: devnet!.keyId, K: encodePoint(publicKeyFromSecret(k)), nonce: randomBytes(12), ciphertextHash: randomBytes(32), owner: mallory.addressBytes };
    const invented: HandleDescriptor = { ...digest, kProof: randomBytes(64) };
    const inventedHandle = deriveHandleFromDigest(invented);
    const before1 = await held(1);
    const frame = encodeAclRequest({ type: 'revoke', item: { descriptor: invented, revocation: signRevocation(mallory.secretKey, { handle: inventedHandle, grantee: randomBytes(20), revokedAt: nowS() }, devnet!.deployment) } });
    // An outsider may also be refused when the stream opens; either way nothing is stored.
    const reply = await p2p!.request(1, ACL_PROTOCOL, frame).then(decodeAclReply, () => undefined);
    if (reply !== undefined) assert.deepEqual(reply.ok ? reply : { ok: false, code: reply.code }, { ok: false, code: 'unauthorized' });
    assert.equal(await held(1), before1);

    // Real handles are cheap too: flood from several accounts, each up to its quota, then past it.
    const flooders = Array.from({ length: 4 }, () => generateAccount());
    const floodHandles = await Promise.all(flooders.map((a) => ownHandle(a)));
    const refusals: string[][] = [];
    for (const [i, owner] of flooders.entries()) {
      for (let j = 0; j < PER_OWNER + 1; j++) {
        const r = await revokeVia(owner, floodHandles[i]!, randomBytes(20));
        if (r.status === 200) continue;
        // Refused by every node, so not effective: past its quota. A full store refuses no one.
        assert.equal(r.status, 202, JSON.stringify(r.json));
        assert.deepEqual(r.json.acknowledgedBy, []);
        refusals.push((r.json.failures as { code: string }[]).map((f) => f.code));
      }
    }
    // Each account's 4th is past its quota; nothing else is refused.
    assert.deepEqual(refusals, Array(flooders.length).fill(Array(N).fill('rate_limited')));
    // The store filled: at most MAX held however many accounts flood.
    for (let node = 1; node <= N; node++) assert.equal(await held(node), MAX, `node ${node} holds MAX`);

    // The real owner: a grant that works, then its revocation, into a full store.
    const [alice, bob] = [generateAccount(), generateAccount()];
    const h = await ownHandle(alice);
    const grant = grantFor(alice, h, bob);
    assert.equal((await (await clientFor(alice)).http.request('POST', `/v1/handles/${h.handle}/grants`, GrantMessage.encode(grant))).status, 201);
    for (let node = 1; node <= N; node++) assert.equal(await askNode(node, bob, h, grant), 'ok');
    const revoked = await revokeVia(alice, h, bob.addressBytes);
    assert.equal(revoked.status, 200, JSON.stringify(revoked.json));
    assert.deepEqual(revoked.json.acknowledgedBy, [1, 2, 3]);
    assert.equal(revoked.json.effective, true);
    for (let node = 1; node <= N; node++) {
      assert.equal(await askNode(node, bob, h, grant), 'revoked', `node ${node}`);
      assert.equal(await held(node), MAX, `node ${node} still holds MAX`);
    }
    await assert.rejects((await clientFor(bob)).decrypt(h.handle), (e: any) => e.code === 'revoked');
  });

  it('attack: grow the revocation log by re-sending revocations with later revokedAt until the node cannot restart', async () => {
    const [carol, dave] = [generateAccount(), generateAccount()];
    const h = await ownHandle(carol);
    const grant = grantFor(carol, h, dave, { issuedAt: nowS() - 2_000 });
    const start = nowS() - 1_000;
    // 600 revocations of one pair, each later than the last: one live entry, 600 log lines.
    const SENDS = 600;
    for (let i = 0; i < SENDS; i += 20) {
      const batch = await Promise.all(Array.from({ length: 20 }, (_, j) => revokeVia(carol, h, dave.addressBytes, start + i + j)));
      for (const r of batch) assert.ok(r.status === 200 || r.status === 202, JSON.stringify(r.json));
    }
    const logPath = join(devnet!.node(1).dir, 'state', 'revocations.log');
    const { size } = await stat(logPath);
    // Live: at most MAX lines of under 1 KiB. Compaction keeps the file within twice that plus 256 KiB.
    assert.ok(size <= 2 * MAX * 1024 + 256 * 1024 + 64 * 1024, `revocation log is ${size} bytes after ${SENDS} re-sends`);
    console.log(`      revocation log after ${SENDS} re-sends: ${size} bytes`);

    await devnet!.restartNode(1);
    await devnet!.waitNodesHealthy([1], 60_000);
    // The latest revocation survived the restart: the old grant is refused.
    assert.equal(await askNode(1, dave, h, grant), 'revoked');
    assert.ok((await stat(logPath)).size <= size, 'the log did not grow across the restart');
  });

  it('attack: future-dated grant outlives its revocation', async () => {
    const [erin, frank] = [generateAccount(), generateAccount()];
    const h = await ownHandle(erin);
    const future = grantFor(erin, h, frank, { issuedAt: nowS() + 10 * 365 * 86_400, notAfter: nowS() + 10 * 365 * 86_400 + 600 });
    const gw = await clientFor(erin);
    // The gateway does not store it (it would also hide every later grant: it keeps the greatest issuedAt).
    await assert.rejects(gw.http.request('POST', `/v1/handles/${h.handle}/grants`, GrantMessage.encode(future)), (e: any) => e.code === 'bad_request' && /future/.test(e.message));
    // Presented straight to the nodes, before and after the owner revokes: refused either way.
    for (let node = 1; node <= N; node++) assert.equal(await askNode(node, frank, h, future), 'bad_request', `node ${node}`);
    const revoked = await revokeVia(erin, h, frank.addressBytes);
    assert.equal(revoked.status, 200, JSON.stringify(revoked.json));
    for (let node = 1; node <= N; node++) assert.equal(await askNode(node, frank, h, future), 'bad_request', `node ${node}`);
    // Within the skew it is fine: a grant issued now works until revoked, and a re-grant after the revocation works.
    const regrant = grantFor(erin, h, frank, { issuedAt: nowS() + 1 });
    assert.equal(await askNode(1, frank, h, regrant), 'ok');
  });

  it('a grant valid for longer than maxGrantLifetimeSeconds is refused by the gateway and by every node', async () => {
    const [gina, hank] = [generateAccount(), generateAccount()];
    const h = await ownHandle(gina);
    const long = grantFor(gina, h, hank, { notAfter: nowS() + LIFETIME + 1 });
    await assert.rejects(
      (await clientFor(gina)).http.request('POST', `/v1/handles/${h.handle}/grants`, GrantMessage.encode(long)),
      (e: any) => e.code === 'bad_request' && /at most 3600 s/.test(e.message),
    );
    for (let node = 1; node <= N; node++) assert.equal(await askNode(node, hank, h, long), 'bad_request', `node ${node}`);
    assert.equal(await askNode(1, hank, h, grantFor(gina, h, hank, { notAfter: nowS() + LIFETIME })), 'ok');
  });

  it('checkGrantTimes: issuedAt up to now + skew and a lifetime up to the bound pass; one second more does not', () => {
    const time = { nowSeconds: 1_000_000, clockSkewSeconds: 30 };
    const ok = (issuedAt: number, notAfter: number): boolean => {
      try {
        checkGrantTimes({ handle: new Uint8Array(32), grantee: new Uint8Array(20), issuedAt, notAfter }, time, LIFETIME);
        return true;
      } catch (e: any) {
        assert.equal(e.code, 'bad_request');
        return false;
      }
    };
    assert.deepEqual([ok(1_000_030, 1_000_030 + LIFETIME), ok(1_000_031, 1_000_100), ok(1_000_000, 1_000_000 + LIFETIME + 1)], [true, false, false]);
  });

  it('attack: many fresh accounts displace alice\'s revocation so bob\'s grant works again', async () => {
    const [alice, bob] = [generateAccount(), generateAccount()];
    const h = await ownHandle(alice);
    const grant = grantFor(alice, h, bob, { issuedAt: nowS() - 5 });
    assert.equal((await (await clientFor(alice)).http.request('POST', `/v1/handles/${h.handle}/grants`, GrantMessage.encode(grant))).status, 201);
    const revoked = await revokeVia(alice, h, bob.addressBytes);
    assert.equal(revoked.json.effective, true, JSON.stringify(revoked.json));
    for (let node = 1; node <= N; node++) assert.equal(await askNode(node, bob, h, grant), 'revoked', `node ${node} before the flood`);

    // Fresh accounts are free: one revocation each, through the gateway (stored there, then at
    // every node), three times as many as a full store holds, so every older entry must give way.
    const accounts = Array.from({ length: 3 * MAX }, () => generateAccount());
    // Sixteen at a time: all at once, a slow moment keeps more open than the gateway admits from one address.
    const handles = [];
    for (let i = 0; i < accounts.length; i += 16) handles.push(...(await Promise.all(accounts.slice(i, i + 16).map((a) => ownHandle(a)))));
    for (const [i, a] of accounts.entries()) {
      const r = await revokeVia(a, handles[i]!, randomBytes(20));
      // A full store (the gateway's or a node's) never refuses a revocation.
      assert.equal(r.status, 200, JSON.stringify(r.json));
    }
    for (let node = 1; node <= N; node++) assert.equal(await held(node), MAX, `node ${node} holds MAX`);

    // Bob stays refused: directly at every node, and at the gateway.
    for (let node = 1; node <= N; node++) assert.equal(await askNode(node, bob, h, grant), 'revoked', `node ${node} after the flood`);
    await assert.rejects((await clientFor(bob)).decrypt(h.handle), (e: any) => e.code === 'revoked');
    const listed = await getJson(`${devnet!.gatewayUrl}/v1/handles/${h.handle}/grants`);
    assert.deepEqual(listed.json.grants.map((g: { status: string }) => g.status), ['revoked']);
    // Alice can grant again: a grant issued after her revocation works.
    await new Promise((r) => setTimeout(r, 1_100));
    const regrant = grantFor(alice, h, bob, { issuedAt: nowS() });
    assert.equal((await (await clientFor(alice)).http.request('POST', `/v1/handles/${h.handle}/grants`, GrantMessage.encode(regrant))).status, 201);
    for (let node = 1; node <= N; node++) assert.equal(await askNode(node, bob, h, regrant), 'ok', `node ${node} after a re-grant`);

    // And across a restart of a node.
    await devnet!.restartNode(2);
    await devnet!.waitNodesHealthy([2], 60_000);
    assert.equal(await askNode(2, bob, h, grant), 'revoked', 'node 2 after a restart');
  });
});
