import type { Point } from '../../core/curve.ts';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { sha256 } from '@noble/hashes/sha2.js';
import { generateAccount, TkmsClient, type Account } from '../../client/index.ts';
import {
  ACL_PROTOCOL,
  decodeAclReply,
  decodeHandle,
  decodeHex,
  decodePartialReply,
  DelegationMessage,
  encodeAclRequest,
  encodeBase64,
  encodeHex,
  encodePartialRequest,
  EncryptRequestMessage,
  generateRsaKeyPair,
  GrantMessage,
  isTkmsError,
  newRequestId,
  PARTIAL_PROTOCOL,
  RegisterHandleMessage,
  RevocationMessage,
  sealToHandle,
  signDelegation,
  signEncryptRequest,
  signGrant,
  signRegisterHandle,
  signRevocation,
  signTypedData,
  type Delegation,
  type Grant,
  type HandleDescriptor,
  type RsaKeyPair,
} from '../../core/index.ts';
import { Devnet, getJson } from '../../deploy/devnet.ts';
import { GatewayStore } from '../../gateway/store.ts';
import { loadCommitteeFile, type Committee } from '../../net/committee.ts';
import { loadIdentityFile } from '../../node/identity.ts';
import { P2pClient } from '../support/p2p-client.ts';
import { makeTempDir, removeDir } from '../support/processes.ts';

/**
 * Deployment B is a real devnet (3 nodes, t = 2, gateway). Deployment A is another committee
 * whose gateway operator holds messages its users signed for A — a grant, a delegation, a
 * revocation, a registration, an encrypt request — for handles that also exist on B, and
 * replays them to B: to B's gateway over HTTP, and to B's nodes directly over libp2p (as member
 * 3, whose process is stopped, so the refusal cannot be a membership check). With the EIP-712
 * domain of version 1 ({name, version} only) every one of them was valid on B. Each is refused,
 * while the same message signed for B is accepted.
 */
const nowS = (): number => Math.floor(Date.now() / 1000);
const DEPLOYMENT_A = { committeeId: 'deployment-a' };

describe('attack: replay a grant (and a delegation, a revocation, a registration) signed for another deployment', function () {
  this.timeout(180_000);
  let dir: string | undefined;
  let devnet: Devnet | undefined;
  let committee: Committee;
  let member3: P2pClient | undefined;
  let rsa: RsaKeyPair;
  let alice: Account;
  let bob: Account;
  let mallory: Account;
  let aliceClient: TkmsClient;
  let bobClient: TkmsClient;
  let handle: string;
  let descriptor: HandleDescriptor;
  const secret = `cross-deployment ${Math.random()}`;

  const B = (): { committeeId: string } => ({ committeeId: committee.committeeId });
  const post = (method: 'POST' | 'DELETE', path: string, body: unknown) =>
    getJson(`${devnet!.gatewayUrl}${path}`, { method, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const delegationBy = (who: Account, deployment: { committeeId: string }): Delegation =>
    signDelegation(who.secretKey, {
      handle: decodeHandle(handle),
      keyId: devnet!.keyId,
      requester: who.addressBytes,
      rsaSpki: decodeHex(rsa.publicKey.spkiHex),
      notBefore: nowS(),
      notAfter: nowS() + 300,
      requestId: newRequestId(),
    }, deployment);
  const grantTo = (who: Account, deployment: { committeeId: string }): Grant =>
    signGrant(alice.secretKey, { handle: decodeHandle(handle), grantee: who.addressBytes, notAfter: nowS() + 3600, issuedAt: nowS() }, deployment);
  /** Nodes 1 and 2 asked directly; each answers ok or its refusal code. */
  async function askNodes(delegation: Delegation, grant: Grant | undefined): Promise<string[]> {
    return Promise.all(
      [1, 2].map(async (id) => {
        const reply = decodePartialReply(await member3!.request(id, PARTIAL_PROTOCOL, encodePartialRequest({ delegation, descriptor, grant }), 10_000));
        return reply.ok ? 'ok' : reply.code;
      }),
    );
  }
  const expectCode = (res: { status: number; json: any }, code: string, what: string): void => {
    assert.equal(res.json?.error?.code, code, `${what}: expected ${code}, got HTTP ${res.status} ${JSON.stringify(res.json).slice(0, 300)}`);
  };

  before(async function () {
    this.timeout(180_000);
    dir = await makeTempDir('tkms-cross-deployment');
    devnet = await Devnet.start({ dir, n: 3, t: 2, gatewayPort: 0 });
    committee = await loadCommitteeFile(join(dir, 'committee.json'));
    assert.notEqual(committee.committeeId, DEPLOYMENT_A.committeeId);
    [alice, bob, mallory] = [generateAccount(), generateAccount(), generateAccount()];
    rsa = await generateRsaKeyPair();
    const pinned = { trustedMemberKeys: await devnet.memberKeys(), committeeId: committee.committeeId };
    aliceClient = new TkmsClient({ gatewayUrl: devnet.gatewayUrl, account: alice, ...pinned });
    bobClient = new TkmsClient({ gatewayUrl: devnet.gatewayUrl, account: bob, rsaKey: rsa, ...pinned });
    handle = (await aliceClient.encrypt(new TextEncoder().encode(secret), { keyId: devnet.keyId })).handle;
    await aliceClient.grant(handle, bob.address);
    const { json } = await aliceClient.http.request<Record<string, string>>('GET', `/v1/handles/${handle}`);
    descriptor = { keyId: json.keyId!, K: decodeHex(json.K), nonce: decodeHex(json.nonce), ciphertextHash: decodeHex(json.ciphertextHash), owner: decodeHex(json.owner), kProof: decodeHex(json.kProof) };
    // Control: bob's grant signed for B works.
    assert.equal(new TextDecoder().decode((await bobClient.decrypt(handle)).plaintext), secret);
  });

  after(async function () {
    this.timeout(60_000);
    await member3?.stop().catch(() => undefined);
    await devnet?.stop();
    await removeDir(dir);
  });

  describe("at B's gateway", () => {
    it('a grant signed for A is refused, and gives mallory nothing', async () => {
      expectCode(await post('POST', `/v1/handles/${handle}/grants`, GrantMessage.encode(grantTo(mallory, DEPLOYMENT_A))), 'unauthorized', 'grant for A');
      const malloryClient = new TkmsClient({ gatewayUrl: devnet!.gatewayUrl, account: mallory, rsaKey: rsa, trustedMemberKeys: await devnet!.memberKeys(), committeeId: committee.committeeId });
      await assert.rejects(malloryClient.decrypt(handle), (e: unknown) => isTkmsError(e, 'unauthorized'));
    });

    it('a delegation signed for A is refused', async () => {
      expectCode(await post('POST', `/v1/handles/${handle}/delegate`, { delegation: DelegationMessage.encode(delegationBy(bob, DEPLOYMENT_A)) }), 'unauthorized', 'delegation for A');
    });

    it('a revocation signed for A is refused, and bob keeps his access', async () => {
      const revocation = signRevocation(alice.secretKey, { handle: decodeHandle(handle), grantee: bob.addressBytes, revokedAt: nowS() }, DEPLOYMENT_A);
      expectCode(await post('DELETE', `/v1/handles/${handle}/grants/${bob.address}`, RevocationMessage.encode(revocation)), 'unauthorized', 'revocation for A');
      assert.equal(new TextDecoder().decode((await bobClient.decrypt(handle)).plaintext), secret);
    });

    it('a registration and an encrypt request signed for A are refused; the same signed for B are accepted', async () => {
      const key = await aliceClient.getKey(devnet!.keyId);
      const sealed = await sealToHandle({ publicKey: key.publicKey as Point, keyId: devnet!.keyId, owner: alice.addressBytes, plaintext: new TextEncoder().encode('registered on A') });
      const body = (deployment: { committeeId: string }) => ({
        registration: RegisterHandleMessage.encode(signRegisterHandle(alice.secretKey, { handle: sealed.handle, keyId: devnet!.keyId, owner: alice.addressBytes }, deployment)),
        K: encodeHex(sealed.K),
        nonce: encodeHex(sealed.nonce),
        ciphertext: encodeBase64(sealed.ciphertext),
        kProof: encodeHex(sealed.kProof),
      });
      expectCode(await post('POST', '/v1/handles', body(DEPLOYMENT_A)), 'unauthorized', 'registration for A');
      assert.equal((await getJson(`${devnet!.gatewayUrl}/v1/handles/${encodeHex(sealed.handle)}`)).status, 404, 'nothing was stored');
      assert.equal((await post('POST', '/v1/handles', body(B()))).status, 201, 'the registration signed for B');

      const text = new TextEncoder().encode('encrypted on A');
      const request = (deployment: { committeeId: string }) =>
        EncryptRequestMessage.encode(signEncryptRequest(alice.secretKey, { keyId: devnet!.keyId, owner: alice.addressBytes, plaintextHash: sha256(text), notBefore: nowS(), notAfter: nowS() + 300, requestId: newRequestId() }, deployment));
      expectCode(await post('POST', '/v1/encrypt', { request: request(DEPLOYMENT_A), plaintext: encodeBase64(text) }), 'unauthorized', 'encrypt request for A');
      assert.equal((await post('POST', '/v1/encrypt', { request: request(B()), plaintext: encodeBase64(text) })).status, 201, 'the encrypt request signed for B');
    });

    it('a version-1 signature (valid on every deployment) is refused with legacy_signature', async () => {
      const g = { handle: decodeHandle(handle), grantee: mallory.addressBytes, notAfter: nowS() + 3600, issuedAt: nowS() };
      const v1 = { ...g, signature: signTypedData(alice.secretKey, { name: 'tkms', version: '1' }, GrantMessage.struct, { ...g }) };
      expectCode(await post('POST', `/v1/handles/${handle}/grants`, GrantMessage.encode(v1)), 'legacy_signature', 'version-1 grant');
    });

    it('a client pinned to another committee id refuses B\'s key, and its signatures fail at B', async () => {
      const misled = new TkmsClient({ gatewayUrl: devnet!.gatewayUrl, account: alice, trustedMemberKeys: await devnet!.memberKeys(), committeeId: DEPLOYMENT_A.committeeId });
      await assert.rejects(misled.getKey(devnet!.keyId), (e: unknown) => isTkmsError(e, 'bad_proof') && /not of the pinned committee deployment-a/.test(e.message));
      await assert.rejects(misled.grant(handle, mallory.address), (e: unknown) => isTkmsError(e, 'unauthorized'));
    });
  });

  describe("at B's nodes, directly over libp2p (as member 3)", () => {
    before(async function () {
      this.timeout(60_000);
      await devnet!.killNode(3, 'SIGTERM');
      const identity = await loadIdentityFile(join(devnet!.node(3).dir, 'identity.json'));
      member3 = await P2pClient.start(committee, identity.privateKey);
    });

    it('a grant signed for A, with a delegation signed for B, is refused by every node', async () => {
      assert.deepEqual(await askNodes(delegationBy(mallory, B()), grantTo(mallory, DEPLOYMENT_A)), ['unauthorized', 'unauthorized']);
      // Control: the same request with a grant signed for B is answered.
      assert.deepEqual(await askNodes(delegationBy(mallory, B()), grantTo(mallory, B())), ['ok', 'ok']);
    });

    it("a delegation signed for A, with bob's grant for B, is refused by every node", async () => {
      const grant = grantTo(bob, B());
      assert.deepEqual(await askNodes(delegationBy(bob, DEPLOYMENT_A), grant), ['unauthorized', 'unauthorized']);
      assert.deepEqual(await askNodes(delegationBy(bob, B()), grant), ['ok', 'ok']);
    });

    it('a revocation signed for A is refused by every node, and bob keeps his access', async () => {
      const revocation = signRevocation(alice.secretKey, { handle: decodeHandle(handle), grantee: bob.addressBytes, revokedAt: nowS() }, DEPLOYMENT_A);
      const frame = encodeAclRequest({ type: 'revoke', item: { descriptor, revocation } });
      for (const id of [1, 2]) {
        const reply = decodeAclReply(await member3!.request(id, ACL_PROTOCOL, frame, 10_000));
        assert.equal(reply.ok ? 'stored' : reply.code, 'unauthorized', `node ${id}`);
      }
      assert.deepEqual(await askNodes(delegationBy(bob, B()), grantTo(bob, B())), ['ok', 'ok']);
    });
  });

  describe('after the upgrade: a grant the gateway stored under version 1', () => {
    it('is not served silently: the delegation answers legacy_signature, and a new grant works', async function () {
      this.timeout(90_000);
      const carol = generateAccount();
      const g = { handle: decodeHandle(handle), grantee: carol.addressBytes, notAfter: nowS() + 3600, issuedAt: nowS() - 60 };
      const v1 = GrantMessage.encode({ ...g, signature: signTypedData(alice.secretKey, { name: 'tkms', version: '1' }, GrantMessage.struct, { ...g }) });
      // What a gateway of the old version had stored: written into its store while it is stopped.
      const gateway = devnet!.gatewayProcess!;
      const exited = new Promise((r) => gateway.once('exit', r));
      gateway.kill('SIGTERM');
      await exited;
      const store = await GatewayStore.open(join(dir!, 'gateway', 'store'));
      await store.putGrant({ handle: String(v1.handle), grantee: String(v1.grantee), notAfter: g.notAfter, issuedAt: g.issuedAt, signature: String(v1.signature) });
      await store.close();
      await devnet!.startGateway();
      const carolClient = new TkmsClient({ gatewayUrl: devnet!.gatewayUrl, account: carol, rsaKey: rsa, trustedMemberKeys: await devnet!.memberKeys(), committeeId: committee.committeeId });
      await assert.rejects(carolClient.decrypt(handle), (e: unknown) => isTkmsError(e, 'legacy_signature') && /^grant .*version 1.*sign it again/.test(e.message));
      await aliceClient.grant(handle, carol.address);
      assert.equal(new TextDecoder().decode((await carolClient.decrypt(handle)).plaintext), secret);
    });
  });
});
