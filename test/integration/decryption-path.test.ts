import assert from 'node:assert/strict';
import { testGateway } from '../support/gateway-pool.ts';
import { generateAccount, TkmsClient, type Account } from '../../client/index.ts';
import {
  ACL_PROTOCOL,
  decodeBase64,
  decodeHandle,
  deriveHandleFromDigest,
  RegisterHandleMessage,
  signRegisterHandle,
  decodeHex,
  encodeHex,
  generateRsaKeyPair,
  KEYS_PROTOCOL,
  newRequestId,
  PARTIAL_PROTOCOL,
  GrantMessage,
  signDelegation,
  signGrant,
  type Delegation,
  type Grant,
  type HandleDescriptor,
  type RsaKeyPair,
} from '../../core/index.ts';
import { Devnet } from '../../deploy/devnet.ts';
import { NodePool } from '../../gateway/node-pool.ts';
import { spawn } from 'node:child_process';
import { chmod, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTempDir, removeDir, runTkms, TKMS_BIN, waitFor } from '../support/processes.ts';
import { expectRefusal } from '../support/refusal.ts';

/**
 * The decryption path end to end on a real devnet: 5 node processes (t = 3) and a gateway
 * on loopback, driven through the client library, and through a libp2p client that talks to
 * the nodes directly, as a compromised gateway would.
 */
const nowS = (): number => Math.floor(Date.now() / 1000);

interface Scene {
  devnet: Devnet;
  pool: NodePool;
  alice: Account;
  bob: Account;
  carol: Account;
  aliceClient: TkmsClient;
  bobClient: TkmsClient;
  carolClient: TkmsClient;
  rsa: RsaKeyPair;
}

async function startScene(dir: string, nodeConfig?: Record<number, Record<string, unknown>>): Promise<Scene> {
  // The test's own pool speaks to nodes as a second gateway would (revocations included).
  const gateway = await testGateway();
  const devnet = await Devnet.start({ dir, n: 5, t: 3, gatewayPort: 0, logLevel: 'info', extraGatewayPeerIds: [gateway.peerId], ...(nodeConfig ? { nodeConfig } : {}) });
  const pool = await gateway.connect(devnet);
  const [alice, bob, carol] = [generateAccount(), generateAccount(), generateAccount()];
  const pinned = await devnet.pinned();
  const client = (account: Account): TkmsClient => new TkmsClient({ gatewayUrl: devnet.gatewayUrl, account, ...pinned });
  return { devnet, pool, alice, bob, carol, aliceClient: client(alice), bobClient: client(bob), carolClient: client(carol), rsa: await generateRsaKeyPair() };
}

async function stopScene(scene: Scene | undefined): Promise<void> {
  if (scene === undefined) return;
  await scene.pool.stop().catch(() => undefined);
  await scene.devnet.stop();
}

/** The descriptor and stored grant of a handle, read from the gateway's public API. */
async function handleParts(scene: Scene, handle: string, grantee?: string): Promise<{ descriptor: HandleDescriptor; grant: Grant | undefined }> {
  const { json } = await scene.aliceClient.http.request<Record<string, string>>('GET', `/v1/handles/${handle}`);
  const descriptor: HandleDescriptor = {
    keyId: json.keyId!,
    K: decodeHex(json.K),
    nonce: decodeHex(json.nonce),
    ciphertextHash: decodeHex(json.ciphertextHash),
    owner: decodeHex(json.owner),
    kProof: decodeHex(json.kProof),
  };
  let grant: Grant | undefined;
  if (grantee !== undefined) {
    const grants = await scene.aliceClient.http.request<{ grants: Record<string, unknown>[] }>('GET', `/v1/handles/${handle}/grants`);
    const g = grants.json.grants.find((x) => x.grantee === grantee);
    if (g !== undefined) grant = GrantMessage.decode({ handle: g.handle, grantee: g.grantee, notAfter: g.notAfter, issuedAt: g.issuedAt, signature: g.signature });
  }
  return { descriptor, grant };
}

function delegationFor(scene: Scene, who: Account, handle: string, window: { notBefore: number; notAfter: number } = { notBefore: nowS(), notAfter: nowS() + 300 }): Delegation {
  return signDelegation(who.secretKey, {
    handle: decodeHandle(handle),
    keyId: scene.devnet.keyId,
    requester: who.addressBytes,
    rsaSpki: decodeHex(scene.rsa.publicKey.spkiHex),
    ...window,
    requestId: newRequestId(),
  }, scene.devnet.deployment);
}

/** Sends one request to every node directly; returns each node's outcome (ok or the refusal code). */
async function askEveryNode(scene: Scene, delegation: Delegation, descriptor: HandleDescriptor, grant: Grant | undefined): Promise<Record<number, string>> {
  const out: Record<number, string> = {};
  await Promise.all(
    scene.devnet.nodes.map(async (node) => {
      const reply = await scene.pool.askNode(node.id, { delegation, descriptor, grant }, 5_000);
      out[node.id] = reply.ok ? 'ok' : reply.code;
    }),
  );
  return out;
}

const all = (code: string): Record<number, string> => ({ 1: code, 2: code, 3: code, 4: code, 5: code });

describe('integration: decryption path (devnet: 5 nodes, t = 3, gateway, client)', function () {
  this.timeout(180_000);
  let dir: string;
  let scene: Scene | undefined;
  let s: Scene;

  before(async () => {
    dir = await makeTempDir('tkms-e2e');
    scene = await startScene(dir);
    s = scene;
  });

  after(async () => {
    await stopScene(scene);
    await removeDir(dir);
  });

  it('round trip: alice encrypts, grants bob, bob decrypts; a client-side ciphertext decrypts too', async () => {
    const text = 'hello threshold world';
    const info = await s.aliceClient.encrypt(new TextEncoder().encode(text), { keyId: s.devnet.keyId });
    assert.match(info.handle, /^0x[0-9a-f]{64}$/);
    assert.equal(info.owner, s.alice.address);
    await s.aliceClient.grant(info.handle, s.bob.address);
    const result = await s.bobClient.decrypt(info.handle);
    assert.equal(new TextDecoder().decode(result.plaintext), text);
    assert.equal(result.usedNodeIds.length, 3);
    assert.deepEqual(result.rejected, []);

    const local = await s.aliceClient.encryptLocally(new TextEncoder().encode('never seen by the gateway'), { keyId: s.devnet.keyId });
    await s.aliceClient.grant(local.handle, s.bob.address);
    const bobView = new TkmsClient({ gatewayUrl: s.devnet.gatewayUrl, account: s.bob, ...(await s.devnet.pinned()) });
    assert.equal(new TextDecoder().decode((await bobView.decrypt(local.handle)).plaintext), 'never seen by the gateway');
    // The owner decrypts without a grant.
    assert.equal(new TextDecoder().decode((await s.aliceClient.decrypt(local.handle)).plaintext), 'never seen by the gateway');
  });

  it('the CLI does the same round trip: account new, encrypt, grant, decrypt, revoke (--json)', async () => {
    const passwordFile = join(dir, 'account-password');
    await writeFile(passwordFile, 'cli round trip\n');
    const env = { TKMS_GATEWAY_URL: s.devnet.gatewayUrl, TKMS_ACCOUNT_PASSWORD_FILE: passwordFile };
    const owner = join(dir, 'owner.json');
    const reader = join(dir, 'reader.json');
    const addresses: string[] = [];
    for (const file of [owner, reader]) {
      const r = await runTkms(['account', 'new', '--out', file, '--json'], { env });
      assert.equal(r.code, 0, r.stderr);
      addresses.push((JSON.parse(r.stdout) as { address: string }).address);
    }
    const readerAddress = addresses[1]!;
    const unpinned = await runTkms(['encrypt', '--account', owner, '--key', s.devnet.keyId, '--text', 'x', '--local'], { env });
    assert.equal(unpinned.code, 1);
    assert.match(unpinned.stderr, /not pinned/);
    const enc = await runTkms(['encrypt', '--account', owner, '--committee', join(s.devnet.dir, 'committee.json'), '--local', '--key', s.devnet.keyId, '--text', 'from the command line', '--json'], { env });
    assert.equal(enc.code, 0, enc.stderr);
    const handle = (JSON.parse(enc.stdout) as { handle: string }).handle;
    const denied = await runTkms(['decrypt', '--account', reader, '--handle', handle, '--json'], { env });
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /\[unauthorized\]/);
    const granted = await runTkms(['grant', '--account', owner, '--handle', handle, '--to', readerAddress, '--json'], { env });
    assert.equal(granted.code, 0, granted.stderr);
    const dec = await runTkms(['decrypt', '--account', reader, '--handle', handle, '--json'], { env });
    assert.equal(dec.code, 0, dec.stderr);
    const out = JSON.parse(dec.stdout) as { plaintext: string; usedNodeIds: number[] };
    assert.equal(Buffer.from(out.plaintext, 'base64').toString(), 'from the command line');
    assert.equal(out.usedNodeIds.length, 3);
    const revoked = await runTkms(['revoke', '--account', owner, '--handle', handle, '--to', readerAddress, '--json'], { env });
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.equal((JSON.parse(revoked.stdout) as { effective: boolean }).effective, true);
    const usage = await runTkms(['encrypt', '--account', owner], { env });
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /--key is required/);
  });

  it('the CLI encrypts from standard input, decrypts to a file it never overwrites without --force, and still reads a plaintext account file', async () => {
    const passwordFile = join(dir, 'stdin-password');
    await writeFile(passwordFile, 'stdin round trip\n');
    const owner = join(dir, 'stdin-owner.json');
    const env = { TKMS_GATEWAY_URL: s.devnet.gatewayUrl, TKMS_ACCOUNT_PASSWORD_FILE: passwordFile };
    assert.equal((await runTkms(['account', 'new', '--out', owner], { env })).code, 0);
    const plaintext = Buffer.from(Array.from({ length: 3000 }, (_, i) => i % 251));
    const child = spawn(process.execPath, [TKMS_BIN, 'encrypt', '--account', owner, '--key', s.devnet.keyId, '--in', '-', '--json'], { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdin.end(plaintext);
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    assert.equal(code, 0, stderr);
    const { handle } = JSON.parse(stdout) as { handle: string };
    // An account file from before keystore v3: loads with a warning, no password asked.
    const legacy = generateAccount();
    const legacyFile = join(dir, 'legacy-reader.json');
    await writeFile(legacyFile, JSON.stringify({ address: legacy.address, secretKey: encodeHex(legacy.secretKey) }), { mode: 0o600 });
    assert.equal((await runTkms(['grant', '--account', owner, '--handle', handle, '--to', legacy.address], { env })).code, 0);
    const out = join(dir, 'stdin-plaintext.bin');
    const first = await runTkms(['decrypt', '--account', legacyFile, '--handle', handle, '--out', out], { env: { TKMS_GATEWAY_URL: s.devnet.gatewayUrl } });
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stderr, /warning: account file .* is not encrypted/);
    assert.deepEqual(await readFile(out), plaintext);
    await writeFile(out, 'keep me');
    const refused = await runTkms(['decrypt', '--account', legacyFile, '--handle', handle, '--out', out], { env: { TKMS_GATEWAY_URL: s.devnet.gatewayUrl } });
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /\[conflict\].*already exists; give --force/);
    assert.equal(await readFile(out, 'utf8'), 'keep me');
    // --force on a world-readable file: the plaintext lands in a 0600 file, not in the old mode.
    await chmod(out, 0o644);
    const forced = await runTkms(['decrypt', '--account', legacyFile, '--handle', handle, '--out', out, '--force'], { env: { TKMS_GATEWAY_URL: s.devnet.gatewayUrl } });
    assert.equal(forced.code, 0, forced.stderr);
    assert.deepEqual(await readFile(out), plaintext);
    assert.equal((await stat(out)).mode & 0o777, 0o600);
  });

  it('a requester without a grant is refused by the gateway and, asked directly, by every node', async () => {
    const info = await s.aliceClient.encrypt(new TextEncoder().encode('not for carol'), { keyId: s.devnet.keyId });
    await expectRefusal(s.carolClient.decrypt(info.handle), 'unauthorized');

    const { descriptor } = await handleParts(s, info.handle);
    // No grant at all.
    assert.deepEqual(await askEveryNode(s, delegationFor(s, s.carol, info.handle), descriptor, undefined), all('unauthorized'));
    // A grant carol signed for herself.
    const selfGrant = signGrant(s.carol.secretKey, { handle: decodeHandle(info.handle), grantee: s.carol.addressBytes, notAfter: nowS() + 600, issuedAt: nowS() }, s.devnet.deployment);
    assert.deepEqual(await askEveryNode(s, delegationFor(s, s.carol, info.handle), descriptor, selfGrant), all('unauthorized'));
    // Alice's real grant for ANOTHER handle.
    const other = await s.aliceClient.encrypt(new TextEncoder().encode('other'), { keyId: s.devnet.keyId });
    await s.aliceClient.grant(other.handle, s.carol.address);
    const { grant: otherGrant } = await handleParts(s, other.handle, s.carol.address);
    assert.ok(otherGrant);
    assert.deepEqual(await askEveryNode(s, delegationFor(s, s.carol, info.handle), descriptor, otherGrant), all('unauthorized'));
    // A delegation signed by carol but naming bob as requester.
    const forged = { ...delegationFor(s, s.carol, info.handle), requester: s.bob.addressBytes };
    assert.deepEqual(await askEveryNode(s, forged, descriptor, undefined), all('unauthorized'));
    // K swapped under a valid handle: the commitment no longer matches.
    const swapped = { ...descriptor, K: (await handleParts(s, other.handle)).descriptor.K };
    assert.deepEqual(await askEveryNode(s, delegationFor(s, s.alice, info.handle), swapped, undefined), all('unauthorized'));
  });

  it('copying a victim\'s K into a new handle owned by the attacker gets nothing (K is bound to its handle)', async () => {
    const victim = await s.aliceClient.encrypt(new TextEncoder().encode('victim secret'), { keyId: s.devnet.keyId });
    const { json } = await s.carolClient.http.request<Record<string, string>>('GET', `/v1/handles/${victim.handle}`);
    const ciphertext = decodeBase64(json.ciphertext);
    const copied = { keyId: s.devnet.keyId, K: decodeHex(json.K), nonce: decodeHex(json.nonce), ciphertextHash: decodeHex(json.ciphertextHash), owner: s.carol.addressBytes, kProof: decodeHex(json.kProof) };
    const copiedHandle = deriveHandleFromDigest(copied);
    const registration = signRegisterHandle(s.carol.secretKey, { handle: copiedHandle, keyId: s.devnet.keyId, owner: s.carol.addressBytes }, s.devnet.deployment);
    // The gateway refuses to register it…
    await expectRefusal(
      s.carolClient.http.request('POST', '/v1/handles', { registration: RegisterHandleMessage.encode(registration), K: json.K, nonce: json.nonce, ciphertext: json.ciphertext, kProof: json.kProof }),
      'unauthorized',
    );
    assert.equal(ciphertext.length > 16, true);
    // …and every node refuses it when asked directly, as a compromised gateway would.
    const asOwner = signDelegation(s.carol.secretKey, {
      handle: copiedHandle,
      keyId: s.devnet.keyId,
      requester: s.carol.addressBytes,
      rsaSpki: decodeHex(s.rsa.publicKey.spkiHex),
      notBefore: nowS(),
      notAfter: nowS() + 300,
      requestId: newRequestId(),
    }, s.devnet.deployment);
    assert.deepEqual(await askEveryNode(s, asOwner, copied, undefined), all('unauthorized'));
  });

  it('a revoked grant is refused by every node within 2 s, and the revocation persists across restarts and reaches a node that was down', async () => {
    const info = await s.aliceClient.encrypt(new TextEncoder().encode('revocable'), { keyId: s.devnet.keyId });
    await s.aliceClient.grant(info.handle, s.bob.address);
    await s.bobClient.decrypt(info.handle);
    const { descriptor, grant } = await handleParts(s, info.handle, s.bob.address);
    assert.ok(grant);

    await s.devnet.killNode(5);
    const revokedAt = Date.now();
    const revoke = await s.aliceClient.revoke(info.handle, s.bob.address);
    assert.deepEqual(revoke.acknowledgedBy, [1, 2, 3, 4]);
    assert.equal(revoke.effective, true);
    const live = [1, 2, 3, 4];
    await waitFor(
      'every live node to refuse the revoked grant',
      async () => {
        const outcomes = await Promise.all(live.map((id) => s.pool.askNode(id, { delegation: delegationFor(s, s.bob, info.handle), descriptor, grant }, 3_000)));
        return outcomes.every((r) => !r.ok && r.code === 'revoked') ? true : undefined;
      },
      { timeoutMs: 2_000, intervalMs: 50 },
    );
    assert.ok(Date.now() - revokedAt < 2_000 + 1_000);
    await expectRefusal(s.bobClient.decrypt(info.handle), 'revoked');

    // Node 5 was down; it pulls the revocation from its peers when it reconnects.
    await s.devnet.startNode(5);
    await s.devnet.waitNodesHealthy([5]);
    await waitFor(
      'node 5 to learn the revocation',
      async () => {
        const r = await s.pool.askNode(5, { delegation: delegationFor(s, s.bob, info.handle), descriptor, grant }, 3_000);
        return !r.ok && r.code === 'revoked' ? true : undefined;
      },
      { timeoutMs: 15_000, intervalMs: 200 },
    );
    // Persisted: node 1 restarted still refuses.
    await s.devnet.restartNode(1);
    await s.devnet.waitNodesHealthy([1]);
    await waitFor('test client reconnected to node 1', () => (s.pool.connectedMembers().includes(1) ? true : undefined), { timeoutMs: 15_000 });
    const after = await s.pool.askNode(1, { delegation: delegationFor(s, s.bob, info.handle), descriptor, grant }, 5_000);
    assert.equal(after.ok ? 'ok' : after.code, 'revoked');
  });

  it('a replayed delegation request is refused by every node; so are expired and not-yet-valid ones', async () => {
    const info = await s.aliceClient.encrypt(new TextEncoder().encode('replay me'), { keyId: s.devnet.keyId });
    const { descriptor } = await handleParts(s, info.handle);
    const delegation = delegationFor(s, s.alice, info.handle);
    assert.deepEqual(await askEveryNode(s, delegation, descriptor, undefined), all('ok'));
    assert.deepEqual(await askEveryNode(s, delegation, descriptor, undefined), all('replayed'));

    const expired = delegationFor(s, s.alice, info.handle, { notBefore: nowS() - 1_000, notAfter: nowS() - 400 });
    assert.deepEqual(await askEveryNode(s, expired, descriptor, undefined), all('expired'));
    const future = delegationFor(s, s.alice, info.handle, { notBefore: nowS() + 600, notAfter: nowS() + 900 });
    assert.deepEqual(await askEveryNode(s, future, descriptor, undefined), all('expired'));
    const tooLong = delegationFor(s, s.alice, info.handle, { notBefore: nowS(), notAfter: nowS() + 7_200 });
    assert.deepEqual(await askEveryNode(s, tooLong, descriptor, undefined), all('bad_request'));

    // Through the gateway: a replay of a request the nodes already answered is refused.
    const viaGateway = delegationFor(s, s.alice, info.handle);
    const body = { delegation: (await import('../../core/index.ts')).DelegationMessage.encode(viaGateway) };
    await s.aliceClient.http.request('POST', `/v1/handles/${info.handle}/delegate`, body);
    await expectRefusal(s.aliceClient.http.request('POST', `/v1/handles/${info.handle}/delegate`, body), 'replayed');
  });

  it('malformed input gets a 4xx with a code; the gateway and nodes keep serving', async () => {
    const url = s.devnet.gatewayUrl;
    const post = async (path: string, body: string, headers: Record<string, string> = { 'content-type': 'application/json' }) => {
      const res = await fetch(`${url}${path}`, { method: 'POST', body, headers });
      return { status: res.status, json: (await res.json()) as { error?: { code: string; message: string } } };
    };
    const cases: [string, string, number, string][] = [
      ['/v1/encrypt', '{not json', 400, 'bad_request'],
      ['/v1/encrypt', '[]', 400, 'bad_request'],
      ['/v1/encrypt', JSON.stringify({ request: {}, plaintext: 'AA==' }), 400, 'bad_request'],
      ['/v1/handles', JSON.stringify({ registration: { handle: `0x${'11'.repeat(32)}`, keyId: 'default', owner: s.alice.address, signature: `0x${'00'.repeat(65)}` }, K: `0x02${'ff'.repeat(32)}`, nonce: `0x${'00'.repeat(12)}`, ciphertext: 'AAAAAAAAAAAAAAAAAAAAAA==', kProof: `0x${'00'.repeat(64)}` }), 400, 'bad_point'],
      ['/v1/handles/0x1234/delegate', '{}', 400, 'bad_length'],
      ['/v1/handles/nothex/grants', '{}', 400, 'bad_hex'],
    ];
    for (const [path, body, status, code] of cases) {
      const r = await post(path, body);
      assert.equal(r.status, status, `${path} ${body.slice(0, 60)} → ${JSON.stringify(r.json)}`);
      assert.equal(r.json.error?.code, code, `${path}: ${JSON.stringify(r.json)}`);
      assert.equal(typeof r.json.error?.message, 'string');
    }
    // Oversized body.
    const huge = await post('/v1/encrypt', JSON.stringify({ request: {}, plaintext: 'A'.repeat(3 * 1024 * 1024) }));
    assert.equal(huge.status, 413);
    assert.equal(huge.json.error?.code, 'payload_too_large');
    // A small RSA key in a properly signed delegation.
    const info = await s.aliceClient.encrypt(new TextEncoder().encode('rsa'), { keyId: s.devnet.keyId });
    const { generateKeyPairSync } = await import('node:crypto');
    const small = generateKeyPairSync('rsa', { modulusLength: 1024, publicExponent: 65537 }).publicKey.export({ type: 'spki', format: 'der' });
    const weak = signDelegation(s.alice.secretKey, {
      handle: decodeHandle(info.handle),
      keyId: s.devnet.keyId,
      requester: s.alice.addressBytes,
      rsaSpki: new Uint8Array(small),
      notBefore: nowS(),
      notAfter: nowS() + 300,
      requestId: newRequestId(),
    }, s.devnet.deployment);
    const core = await import('../../core/index.ts');
    const weakRes = await post(`/v1/handles/${info.handle}/delegate`, JSON.stringify({ delegation: core.DelegationMessage.encode(weak) }));
    assert.equal(weakRes.status, 400);
    assert.equal(weakRes.json.error?.code, 'bad_rsa_key');
    const { descriptor } = await handleParts(s, info.handle);
    assert.deepEqual(await askEveryNode(s, weak, descriptor, undefined), all('bad_rsa_key'));

    // Garbage straight to every node protocol.
    for (const protocol of [PARTIAL_PROTOCOL, ACL_PROTOCOL, KEYS_PROTOCOL]) {
      for (const frame of [new Uint8Array([0xff, 0x00, 0x13]), new TextEncoder().encode('{"v":1,"type":"sync","offset":-1}'), new TextEncoder().encode('{}')]) {
        const reply = JSON.parse(new TextDecoder().decode(await s.pool.sendRaw(1, protocol, frame, 5_000))) as { ok: boolean; error?: { code: string } };
        assert.equal(reply.ok, false);
        assert.equal(reply.error?.code, 'bad_request');
      }
    }
    // Still serving.
    const health = await fetch(`${url}/health`);
    assert.equal(health.status, 200);
    const again = await s.aliceClient.decrypt(info.handle);
    assert.equal(new TextDecoder().decode(again.plaintext), 'rsa');
  });

  it('serves /openapi.json and Prometheus metrics on the gateway and the nodes', async () => {
    const doc = (await (await fetch(`${s.devnet.gatewayUrl}/openapi.json`)).json()) as { openapi: string; paths: Record<string, unknown> };
    assert.match(doc.openapi, /^3\./);
    assert.ok(doc.paths['/v1/handles/{handle}/delegate']);
    const gm = await (await fetch(`${s.devnet.gatewayUrl}/metrics`)).text();
    assert.match(gm, /tkms_gateway_delegations_total\{outcome="ok"\} [1-9]/);
    const nm = await (await fetch(`${s.devnet.node(2).httpUrl}/metrics`)).text();
    assert.match(nm, /tkms_partial_requests_total\{outcome="ok"\} [1-9]/);
    assert.match(nm, /tkms_partial_requests_total\{outcome="unauthorized"\} [1-9]/);
  });

  it('no secret reaches any log line', async () => {
    const logs = await s.devnet.readLogs();
    assert.ok(logs.length > 1000);
    const password = (await readFile(join(s.devnet.dir, 'keystore-password'), 'utf8')).trim();
    assert.ok(!logs.includes(password), 'keystore password in logs');
    for (const account of [s.alice, s.bob, s.carol]) assert.ok(!logs.includes(Buffer.from(account.secretKey).toString('hex')), 'account key in logs');
    // Plaintexts the gateway did see (POST /v1/encrypt) must not be logged either.
    for (const text of ['hello threshold world', 'not for carol', 'revocable', 'replay me', 'victim secret']) {
      assert.ok(!logs.includes(text), `plaintext ${JSON.stringify(text)} in logs`);
      assert.ok(!logs.includes(Buffer.from(text).toString('base64')), `base64 plaintext ${JSON.stringify(text)} in logs`);
    }
    assert.ok(!/"share"\s*:\s*"?(0x)?[0-9a-f]{16}/i.test(logs), 'a share-like field in logs');
  });

  it('with n − t nodes down decryption works; with n − t + 1 down the error says how many answered', async () => {
    const info = await s.aliceClient.encrypt(new TextEncoder().encode('liveness'), { keyId: s.devnet.keyId });
    await s.devnet.killNode(4);
    await s.devnet.killNode(5);
    const ok = await s.aliceClient.decrypt(info.handle);
    assert.equal(new TextDecoder().decode(ok.plaintext), 'liveness');
    assert.deepEqual([...ok.usedNodeIds].sort(), [1, 2, 3]);
    await s.devnet.killNode(3);
    const err = await expectRefusal(s.aliceClient.decrypt(info.handle), 'insufficient_partials');
    assert.match(err.message, /2 of 5 nodes answered, 3 needed/);
  });
});

/**
 * Byzantine nodes (test faults, n − t = 2 of them per devnet): wrong partials for another K,
 * garbage instead of an RSA wrap, a wrong proof, a node that answers after 3 s. The client must
 * decrypt anyway, name exactly the liars, and never use them. (wrong_partial: the same check as
 * other_k, covered in core-threshold.)
 */
const BYZANTINE_SCENES: Array<{ faults: Record<number, string>; liars: number[]; slow: number[] }> = [
  { faults: { 2: 'garbage', 3: 'other_k' }, liars: [2, 3], slow: [] },
  // At most n − t = 2 nodes misbehave at once, a slow one included.
  { faults: { 2: 'wrong_proof', 3: 'late' }, liars: [2], slow: [3] },
];

for (const scenario of BYZANTINE_SCENES) {
  const label = Object.entries(scenario.faults).map(([id, f]) => `node ${id} ${f}`).join(', ');
  describe(`integration: Byzantine nodes (${label})`, function () {
    this.timeout(180_000);
    let dir: string;
    let scene: Scene | undefined;

    before(async () => {
      dir = await makeTempDir('tkms-e2e-fault');
      scene = await startScene(dir, Object.fromEntries(Object.entries(scenario.faults).map(([id, partial]) => [Number(id), { testFaults: { partial } }])));
    });

    after(async () => {
      await stopScene(scene);
      await removeDir(dir);
    });

    it('the client rejects the lying nodes, names them, and still decrypts', async () => {
      const s = scene!;
      const info = await s.aliceClient.encrypt(new TextEncoder().encode('despite liars'), { keyId: s.devnet.keyId });
      // Steer the first request to nodes 1-4 (fan-out asks 1, 2, 3 first) so the faulty ones are certainly asked.
      const started = performance.now();
      const result = await s.aliceClient.decrypt(info.handle, { avoidNodes: [5] });
      const elapsed = performance.now() - started;
      assert.equal(new TextDecoder().decode(result.plaintext), 'despite liars');
      assert.deepEqual([...new Set(result.rejected.map((r) => r.nodeId))].sort(), scenario.liars);
      for (const r of result.rejected) assert.ok(['bad_proof', 'decrypt_failed', 'bad_point'].includes(r.code), `node ${r.nodeId}: ${r.code}`);
      for (const liar of scenario.liars) assert.ok(!result.usedNodeIds.includes(liar), `node ${liar} must not be combined`);
      // A slow node is hedged around, not waited for (its answer comes after 3 s).
      if (scenario.slow.length > 0) assert.ok(elapsed < 3_000, `took ${Math.round(elapsed)} ms: the gateway waited for the slow node`);
      const logs = await s.devnet.readLogs();
      assert.match(logs, /TEST FAULTS ENABLED/);
    });

    it('ten more decrypts without steering all succeed, never combine a liar, and the client leaves the liars out', async () => {
      const s = scene!;
      const info = await s.aliceClient.encrypt(new TextEncoder().encode('again and again'), { keyId: s.devnet.keyId });
      const before = s.aliceClient.misbehaviour();
      assert.deepEqual([...new Set(before.map((m) => m.nodeId))].sort(), scenario.liars);
      for (const m of before) assert.ok(m.count >= 1 && m.avoidedUntil > Date.now(), JSON.stringify(m));
      for (let i = 0; i < 10; i++) {
        const result = await s.aliceClient.decrypt(info.handle);
        assert.equal(new TextDecoder().decode(result.plaintext), 'again and again');
        for (const liar of scenario.liars) assert.ok(!result.usedNodeIds.includes(liar));
        // Known liars are not asked again while they are suspects: one round trip, nothing rejected.
        assert.equal(result.attempts, 1);
        assert.deepEqual(result.rejected, []);
      }
      assert.deepEqual(s.aliceClient.misbehaviour(), before, 'no new rejections');
      // A fresh client has to find them again, and counts what it found.
      // Steered so that the first request goes to every liar plus honest, prompt nodes up to t = 3.
      const fresh = new TkmsClient({ gatewayUrl: s.devnet.gatewayUrl, account: s.alice, suspectMs: 0 });
      const honest = [1, 2, 3, 4, 5].filter((id) => !scenario.liars.includes(id) && !scenario.slow.includes(id));
      const firstAsked = [...scenario.liars, ...honest.slice(0, 3 - scenario.liars.length)];
      const avoidNodes = [1, 2, 3, 4, 5].filter((id) => !firstAsked.includes(id));
      for (let i = 0; i < 4; i++) {
        const result = await fresh.decrypt(info.handle, { avoidNodes });
        assert.equal(new TextDecoder().decode(result.plaintext), 'again and again');
        assert.equal(result.attempts, 2, 'suspectMs: 0 forgets the liars, so every decrypt meets them again');
      }
      const counted = fresh.misbehaviour();
      assert.deepEqual(counted.map((m) => m.nodeId).sort(), scenario.liars, JSON.stringify(counted));
      for (const m of counted) {
        assert.equal(m.count, 4, `node ${m.nodeId} (${m.code}) rejected in each of the 4 decrypts`);
        assert.equal(m.avoidedUntil, 0, 'suspectMs: 0 never avoids');
      }
    });
  });
}
