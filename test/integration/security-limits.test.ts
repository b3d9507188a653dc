import assert from 'node:assert/strict';
import { join } from 'node:path';
import { sha256 } from '@noble/hashes/sha2.js';
import { generateAccount, TkmsClient, type Account } from '../../client/index.ts';
import {
  decodeHandle,
  decodeHex,
  decodePartialReply,
  encodeBase64,
  encodePartialRequest,
  EncryptRequestMessage,
  generateRsaKeyPair,
  isTkmsError,
  newRequestId,
  PARTIAL_PROTOCOL,
  signDelegation,
  signEncryptRequest,
  type HandleDescriptor,
  type RsaKeyPair,
} from '../../core/index.ts';
import { Devnet, getJson } from '../../deploy/devnet.ts';
import { loadCommitteeFile } from '../../net/committee.ts';
import { bytesSecret, findSecrets, nodeSecrets, readLogFiles, textSecret } from '../support/log-secrets.ts';
import { P2pClient } from '../support/p2p-client.ts';
import { makeTempDir, removeDir } from '../support/processes.ts';

/**
 * Rate limits, on a real devnet (3 nodes, t = 2) configured with small budgets: each node allows
 * a requester a burst of 3 partial requests (refilled at 1 a minute), the gateway an account a
 * burst of 8 writes (and a client IP ten times that). What decryption-path.test.ts does not cover:
 *   - the node's per-requester limit answers `rate_limited` after the burst, per requester and per
 *     node, and only a requester's own valid signature spends its budget;
 *   - the same limit seen through the gateway, by a client that decrypts too often;
 *   - the gateway's per-account limit (429 with retryAfterSeconds) that forged requests cannot
 *     spend, and its per-IP limit in front of the signature checks;
 *   - and, as everywhere, no secret in any log of the run.
 */
const nowS = (): number => Math.floor(Date.now() / 1000);
const NODE_BURST = 3;
const GATEWAY_BURST = 8;

describe('security: rate limits at the nodes and the gateway (devnet: 3 nodes, t = 2)', function () {
  this.timeout(120_000);
  let dir: string | undefined;
  let devnet: Devnet | undefined;
  let p2p: P2pClient | undefined;
  let rsa: RsaKeyPair;
  const accounts: Account[] = [];
  const plaintexts: string[] = [];

  const account = (): Account => {
    const a = generateAccount();
    accounts.push(a);
    return a;
  };
  const clientFor = async (a: Account): Promise<TkmsClient> => new TkmsClient({ gatewayUrl: devnet!.gatewayUrl, account: a, trustedMemberKeys: await devnet!.memberKeys(), rsaKey: rsa });

  /** A handle owned by `owner`, with the descriptor nodes check. */
  async function ownHandle(owner: Account): Promise<{ handle: string; descriptor: HandleDescriptor }> {
    const text = `limits ${plaintexts.length} ${Math.random()}`;
    plaintexts.push(text);
    const c = await clientFor(owner);
    const { handle } = await c.encrypt(new TextEncoder().encode(text), { keyId: devnet!.keyId });
    const { json } = await c.http.request<Record<string, string>>('GET', `/v1/handles/${handle}`);
    return {
      handle,
      descriptor: { keyId: json.keyId!, K: decodeHex(json.K), nonce: decodeHex(json.nonce), ciphertextHash: decodeHex(json.ciphertextHash), owner: decodeHex(json.owner), kProof: decodeHex(json.kProof) },
    };
  }

  /** One partial request straight to a node, signed by `signer` and naming `requester`. */
  async function ask(node: number, signer: Account, requester: Account, h: { handle: string; descriptor: HandleDescriptor }): Promise<string> {
    const delegation = signDelegation(signer.secretKey, {
      handle: decodeHandle(h.handle),
      keyId: devnet!.keyId,
      requester: signer.addressBytes,
      rsaSpki: decodeHex(rsa.publicKey.spkiHex),
      notBefore: nowS(),
      notAfter: nowS() + 300,
      requestId: newRequestId(),
    }, devnet!.deployment);
    const claimed = { ...delegation, requester: requester.addressBytes };
    const reply = decodePartialReply(await p2p!.request(node, PARTIAL_PROTOCOL, encodePartialRequest({ delegation: claimed, descriptor: h.descriptor, grant: undefined })));
    return reply.ok ? 'ok' : reply.code;
  }

  before(async function () {
    this.timeout(120_000);
    dir = await makeTempDir('tkms-limits');
    const nodeLimit = { partialRateLimit: { perMinute: 1, burst: NODE_BURST } };
    devnet = await Devnet.start({
      dir,
      n: 3,
      t: 2,
      gatewayPort: 0,
      nodeConfig: { 1: nodeLimit, 2: nodeLimit, 3: nodeLimit },
      gatewayConfig: { rateLimit: { perMinute: 1, burst: GATEWAY_BURST } },
    });
    p2p = await P2pClient.start(await loadCommitteeFile(join(dir, 'committee.json')));
    rsa = await generateRsaKeyPair();
  });

  after(async function () {
    this.timeout(60_000);
    await p2p?.stop().catch(() => undefined);
    await devnet?.stop();
    if (dir !== undefined && devnet !== undefined) {
      const { needles, shares } = await nodeSecrets(dir);
      assert.equal(shares, 3);
      for (const a of accounts) needles.push(bytesSecret(`account ${a.address}`, a.secretKey));
      for (const text of plaintexts) needles.push(textSecret('plaintext', text));
      const logs = await readLogFiles(dir);
      assert.ok(logs.length >= 4, 'node and gateway logs found');
      assert.deepEqual(findSecrets(logs, needles), []);
    }
    await removeDir(dir);
  });

  it('a node answers rate_limited after a requester\'s burst; other requesters and other nodes are unaffected', async () => {
    const [erin, frank] = [account(), account()];
    const [he, hf] = [await ownHandle(erin), await ownHandle(frank)];
    const outcomes: string[] = [];
    for (let i = 0; i < NODE_BURST + 2; i++) outcomes.push(await ask(1, erin, erin, he));
    assert.deepEqual(outcomes, [...Array(NODE_BURST).fill('ok'), 'rate_limited', 'rate_limited']);
    // Per requester: frank still gets his partial from node 1. Per node: erin still gets hers from node 2.
    assert.equal(await ask(1, frank, frank, hf), 'ok');
    assert.equal(await ask(2, erin, erin, he), 'ok');
    const metrics = await (await fetch(`${devnet!.node(1).httpUrl}/metrics`)).text();
    assert.match(metrics, /^tkms_partial_requests_total\{outcome="rate_limited"\} 2$/m);
  });

  it('only a requester\'s own valid signature spends its node budget (forged requests are refused, not charged)', async () => {
    const [gina, mallory] = [account(), account()];
    const hg = await ownHandle(gina);
    // Mallory signs requests that name gina as the requester: refused before the limiter.
    for (let i = 0; i < NODE_BURST + 2; i++) assert.equal(await ask(3, mallory, gina, hg), 'unauthorized');
    // Gina's whole burst is still there.
    for (let i = 0; i < NODE_BURST; i++) assert.equal(await ask(3, gina, gina, hg), 'ok');
    assert.equal(await ask(3, gina, gina, hg), 'rate_limited');
  });

  it('through the gateway, a client that decrypts too often is refused once the nodes\' budgets are spent', async () => {
    const hank = account();
    const { handle } = await ownHandle(hank);
    const client = await clientFor(hank);
    let decrypted = 0;
    let refusal: unknown;
    for (let i = 0; i < 3 * NODE_BURST + 1 && refusal === undefined; i++) {
      try {
        await client.decrypt(handle);
        decrypted++;
      } catch (e) {
        refusal = e;
      }
    }
    // 3 nodes × a burst of 3, at least t = 2 per decryption: at most 4 decryptions, then refusals.
    assert.ok(decrypted >= 1 && decrypted <= Math.floor((3 * NODE_BURST) / 2), `decrypted ${decrypted} times`);
    assert.ok(isTkmsError(refusal), `expected a refusal, got ${String(refusal)}`);
    const failures = (refusal.details?.failures ?? []) as { code: string; retryAfterSeconds?: number }[];
    // Every node that refused said why, and the gateway passes it on: 429 rate_limited with the
    // nodes' own retry hints, not a 503 that would send the client to other nodes.
    assert.equal(refusal.code, 'rate_limited', `${refusal.code}: ${refusal.message}`);
    assert.ok(failures.length > 0 && failures.every((f) => f.code === 'rate_limited' && Number.isInteger(f.retryAfterSeconds) && f.retryAfterSeconds! >= 1), JSON.stringify(failures));
    const retry = refusal.details?.retryAfterSeconds;
    assert.ok(typeof retry === 'number' && retry >= 1 && retry <= Math.max(...failures.map((f) => f.retryAfterSeconds!)), `retryAfterSeconds ${String(retry)}`);
    console.log(`      ${decrypted} decryptions, then: ${refusal.code}: ${refusal.message}`);
  });

  it('the gateway limits each account (429 rate_limited with retryAfterSeconds); forged requests do not spend it', async () => {
    const [ivan, mallory] = [account(), account()];
    const gw = devnet!.gatewayUrl;
    const encrypt = async (signer: Account, owner: Account): Promise<{ status: number; json: any; headers: Headers }> => {
      const text = new TextEncoder().encode('limit me');
      const request = signEncryptRequest(signer.secretKey, { keyId: devnet!.keyId, owner: signer.addressBytes, plaintextHash: sha256(text), notBefore: nowS(), notAfter: nowS() + 300, requestId: newRequestId() }, devnet!.deployment);
      const body = { request: { ...EncryptRequestMessage.encode(request), owner: owner.address }, plaintext: encodeBase64(text) };
      return getJson(`${gw}/v1/encrypt`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    };
    for (let i = 0; i < GATEWAY_BURST + 2; i++) {
      const forged = await encrypt(mallory, ivan);
      assert.equal(forged.status, 403, JSON.stringify(forged.json));
      assert.equal(forged.json.error.code, 'unauthorized');
    }
    for (let i = 0; i < GATEWAY_BURST; i++) assert.equal((await encrypt(ivan, ivan)).status, 201, `request ${i + 1} of the burst`);
    const limited = await encrypt(ivan, ivan);
    assert.equal(limited.status, 429, JSON.stringify(limited.json));
    assert.equal(limited.json.error.code, 'rate_limited');
    assert.ok(Number.isInteger(limited.json.error.details?.retryAfterSeconds) && limited.json.error.details.retryAfterSeconds >= 1, JSON.stringify(limited.json));
    assert.equal(limited.headers.get('retry-after'), String(limited.json.error.details.retryAfterSeconds));
    // Another account is not affected.
    assert.equal((await encrypt(mallory, mallory)).status, 201);
  });

  it('the gateway limits writes per client IP before any signature is checked', async () => {
    // Ten accounts' worth per IP: fresh accounts with garbage signatures exhaust it, after which
    // even a valid request from this IP is refused until it refills.
    const gw = devnet!.gatewayUrl;
    let first429 = -1;
    for (let i = 0; i < 10 * GATEWAY_BURST + 1 && first429 < 0; i++) {
      const r = await getJson(`${gw}/v1/encrypt`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ request: { junk: i }, plaintext: 'AA==' }) });
      if (r.status === 429) {
        first429 = i;
        assert.equal(r.json.error.code, 'rate_limited');
      } else assert.equal(r.status, 400);
    }
    // Writes before this test (about 40 so far) count too: the limit is hit within 10 × burst requests.
    assert.ok(first429 >= 0 && first429 <= 10 * GATEWAY_BURST, `no 429 after ${10 * GATEWAY_BURST + 1} writes`);
    const c = await clientFor(account());
    await assert.rejects(
      c.encrypt(new TextEncoder().encode('x'), { keyId: devnet!.keyId }),
      (e) => isTkmsError(e, 'rate_limited'),
    );
    // Reads are limited per IP too (a handle read sends up to 1.4 MB), and so is /metrics; the readiness probe is not.
    assert.equal((await getJson(`${gw}/v1/keys`)).status, 429);
    assert.equal((await getJson(`${gw}/health`)).status, 200);
    assert.equal((await fetch(`${gw}/metrics`)).status, 429);
  });
});
