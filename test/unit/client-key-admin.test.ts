import assert from 'node:assert/strict';
import { Wallet } from 'ethers';
import type { Account } from '../../client/account.ts';
import { KeyAdmin } from '../../client/key-admin.ts';
import { GatewayHttp } from '../../client/gateway-http.ts';
import { TkmsClient } from '../../client/client.ts';
import { fromViem } from '../../client/signer.ts';
import { computeProvenPartial, decodeBase64, decodeHex, decodePoint, decryptWithSharedSecretX, mod, DelegationMessage, encodeDleqProof, encodeHex, generateRsaKeyPair, importRsaPublicKey, isTkmsError, randomScalar, rsaOaepWrap, type RsaKeyPair } from '../../core/index.ts';
import { pinnedClientOptions } from '../../core/committee.ts';
import { deriveKeyTweak } from '../../core/keys/derive.ts';
import { keyAt, makeCommittee, makeMembers, sharesOf, signedDkgResult } from './handover-fixtures.ts';
import { keyChangeDigest, keyChangeSigner, ZERO_DIGEST } from '../../core/keys/key-change.ts';
import { alice, bob, DEPLOYMENT, FakeGateway, GATEWAY, json } from '../support/fake-key-gateway.ts';

/**
 * The client's managed-key calls against a fake gateway that keeps a real KeyBook
 * (test/support/fake-key-gateway.ts): every change the client signs must pass the checks every
 * node runs, and the gateway's answers and refusals must come back as the client documents.
 */
function admin(gateway: FakeGateway, signer: Account = alice, committeeId?: string): KeyAdmin {
  return new KeyAdmin({ http: new GatewayHttp({ baseUrl: GATEWAY, fetch: gateway.fetch }), signer, retryDelaysMs: [1, 1, 1], ...(committeeId ? { committeeId } : {}) });
}

async function rejectsWith(p: Promise<unknown>, code: string, message?: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(isTkmsError(e), String(e));
    assert.equal(e.code, code, e.message);
    if (message) assert.match(e.message, message);
    return true;
  });
}

describe('client: managed keys (KeyAdmin)', () => {
  it('create signs change 1 after the zero digest, for the committee the gateway names, verified as every node verifies it', async () => {
    const gw = new FakeGateway();
    const result = await admin(gw).create({ keyId: 'payroll', description: 'payroll exports', tags: { team: 'finance' }, aliases: ['alias/payroll'] });
    const [change] = gw.changesPosted();
    assert.equal(change!.sequence, 1);
    assert.deepEqual(change!.previous, ZERO_DIGEST);
    assert.equal(change!.action, 'create');
    assert.equal(keyChangeSigner(change!, DEPLOYMENT), alice.address);
    assert.deepEqual(JSON.parse(change!.body), { origin: { type: 'dkg' }, admins: [alice.address], description: 'payroll exports', tags: { team: 'finance' }, aliases: ['alias/payroll'] });
    assert.equal(result.effective, true);
    assert.equal(result.key.keyId, 'payroll');
    assert.deepEqual(result.key.aliases, ['alias/payroll']);
    assert.equal(result.key.state, 'Enabled');
    assert.ok(gw.gets.includes('/v1/committee'), 'the committee id came from the gateway (no pinned committee)');
  });

  it('each change names the previous change\'s digest and the next sequence; aliases resolve to the key id', async () => {
    const gw = new FakeGateway();
    const keys = admin(gw);
    await keys.create({ keyId: 'payroll', aliases: ['alias/payroll'] });
    await keys.disable('alias/payroll');
    await keys.tag('payroll', { env: 'prod' });
    const [create, disable, tag] = gw.changesPosted();
    assert.equal(disable!.keyId, 'payroll');
    assert.equal(disable!.sequence, 2);
    assert.equal(encodeHex(disable!.previous), encodeHex(keyChangeDigest(create!, DEPLOYMENT)));
    assert.equal(tag!.sequence, 3);
    assert.equal(encodeHex(tag!.previous), encodeHex(keyChangeDigest(disable!, DEPLOYMENT)));
    assert.equal(keyChangeSigner(tag!, DEPLOYMENT), alice.address);
    assert.deepEqual(gw.posted.map((p) => p.path), ['/v1/keys', '/v1/keys/payroll/changes', '/v1/keys/payroll/changes']);
    const described = await keys.describe('payroll');
    assert.equal(described.state, 'Disabled');
    assert.deepEqual(described.tags, { env: 'prod' });
  });

  it('every typed helper signs a body its action accepts, and the book applies it', async () => {
    const gw = new FakeGateway();
    const keys = admin(gw);
    await keys.create({ keyId: 'k1', aliases: ['alias/a'] });
    await keys.updateDescription('k1', 'new words');
    await keys.createAlias('k1', 'alias/b');
    await keys.renameAlias('k1', 'alias/b', 'alias/c');
    await keys.deleteAlias('k1', 'alias/a');
    await keys.tag('k1', { a: '1', b: '2' });
    await keys.untag('k1', ['a']);
    await keys.putPolicy('k1', { allowedOperations: ['decrypt'] });
    await keys.rotate('k1');
    await keys.disable('k1');
    await keys.enable('k1');
    await keys.scheduleDeletion('k1', { pendingWindowDays: 7 });
    await keys.cancelDeletion('k1');
    await keys.scheduleDeletion('k1', { pendingWindowSeconds: 3600, version: 1 });
    await keys.cancelDeletion('k1', { version: 1 });
    const last = await keys.updateAdmins('k1', [alice.address, bob.address.toUpperCase().replace('0X', '0x')]);
    assert.deepEqual(
      gw.changesPosted().map((c) => c.action),
      ['create', 'updateDescription', 'createAlias', 'renameAlias', 'deleteAlias', 'tag', 'untag', 'putPolicy', 'rotate', 'disable', 'enable', 'scheduleDeletion', 'cancelDeletion', 'scheduleDeletion', 'cancelDeletion', 'updateAdmins'],
    );
    const key = last.key;
    assert.equal(key.sequence, 16);
    assert.deepEqual(key.aliases, ['alias/c']);
    assert.deepEqual(key.tags, { b: '2' });
    assert.equal(key.description, 'new words');
    assert.equal(key.state, 'Disabled', 'cancelling a deletion leaves the key Disabled, as in AWS');
    assert.deepEqual(key.admins, [alice.address, bob.address].sort());
    assert.equal(key.currentVersion, 2);
    assert.deepEqual((await keys.getPolicy('k1')).policy, { allowedOperations: ['decrypt'] });
    // Another admin signs through `as`, here a viem-shaped signer.
    const wallet = new Wallet('0x' + '22'.repeat(32));
    await keys.as(fromViem({ address: wallet.address, signTypedData: ({ domain, types, message }) => wallet.signTypedData(domain, Object.fromEntries(Object.entries(types).filter(([n]) => n !== 'EIP712Domain')), message) })).enable('k1');
    const byBob = gw.changesPosted().at(-1)!;
    assert.equal(keyChangeSigner(byBob, DEPLOYMENT), bob.address);
    assert.equal((await keys.describe('k1')).state, 'Enabled');
  });

  it('history decodes the signed changes in order; list passes the filter to the gateway', async () => {
    const gw = new FakeGateway();
    const keys = admin(gw);
    await keys.create({ keyId: 'k1' });
    await keys.create({ keyId: 'k2' });
    await keys.disable('k2');
    const page = await keys.history('k2');
    assert.deepEqual(page.changes.map((c) => [c.sequence, c.action]), [[1, 'create'], [2, 'disable']]);
    assert.equal(keyChangeSigner(page.changes[1]!, DEPLOYMENT), alice.address);
    assert.deepEqual((await keys.list({ state: 'Disabled' })).map((k) => k.keyId), ['k2']);
    await keys.list({ tag: 'team=finance', alias: 'alias/x' });
    assert.ok(gw.gets.includes('/v1/keys?tag=team%3Dfinance&alias=alias%2Fx'), gw.gets.join(' '));
    await rejectsWith(keys.list({ state: 'Gone' as never }), 'bad_request');
  });

  it('a 202 is answered by posting the identical signed change again until effective', async () => {
    const gw = new FakeGateway();
    const keys = admin(gw, alice, DEPLOYMENT.committeeId);
    await keys.create({ keyId: 'k1' });
    gw.pending = 2;
    gw.posted.length = 0;
    const result = await keys.disable('k1');
    assert.equal(result.effective, true);
    assert.deepEqual(result.acknowledgedBy, [1, 2, 3]);
    assert.equal(gw.posted.length, 3);
    assert.ok(gw.posted.every((p) => p.body === gw.posted[0]!.body), 'the same signed change, byte for byte');
    assert.ok(!gw.gets.includes('/v1/committee'), 'a pinned committee is not asked for');
    // Still 202 after every retry: the last answer, not effective, and no more posts than the delays allow.
    gw.pending = 10;
    gw.posted.length = 0;
    const waiting = await keys.enable('k1');
    assert.equal(waiting.effective, false);
    assert.equal(waiting.needed, 3);
    assert.equal(gw.posted.length, 4);
  });

  it('refusals: the gateway\'s code and message come back; a non-admin or a bad body fails before anything is signed or sent', async () => {
    const gw = new FakeGateway();
    const keys = admin(gw);
    await keys.create({ keyId: 'k1', aliases: ['alias/taken'] });
    await rejectsWith(keys.create({ keyId: 'k2', aliases: ['alias/taken'] }), 'alias_taken', /alias\/taken already names key k1/);
    await rejectsWith(keys.create({ keyId: 'k1' }), 'key_change_conflict');
    await rejectsWith(keys.describe('nothing'), 'unknown_key');
    const posts = gw.posted.length;
    await rejectsWith(keys.as(bob).disable('k1'), 'not_key_admin', new RegExp(`${bob.address} is not an admin of key k1`));
    await rejectsWith(keys.scheduleDeletion('k1', { pendingWindowDays: 0 }), 'bad_request', /scheduleDeletion/);
    await rejectsWith(keys.tag('k1', { 'tkms:x': '1' }), 'bad_request', /reserved/);
    await rejectsWith(keys.createAlias('k1', 'alias/tkms/mine'), 'bad_request', /reserved/);
    await rejectsWith(keys.create({ keyId: 'k.v2' }), 'bad_key_id');
    await rejectsWith(new KeyAdmin({ http: new GatewayHttp({ baseUrl: GATEWAY, fetch: gw.fetch }) }).enable('k1'), 'bad_request', /signer/);
    assert.equal(gw.posted.length, posts, 'nothing was posted');
  });

  it('a gateway answer that is not a key view fails in words', async () => {
    const fake = (async () => json(200, { managed: { keyId: 'k1', state: 'Sleeping' } })) as typeof fetch;
    await rejectsWith(new KeyAdmin({ http: new GatewayHttp({ baseUrl: GATEWAY, fetch: fake }) }).describe('k1'), 'bad_request', /no known state/);
  });
});

describe('client: encrypting to a managed key', () => {
  const client = (gw: FakeGateway) => new TkmsClient({ gatewayUrl: GATEWAY, account: alice, fetch: gw.fetch, committeeId: DEPLOYMENT.committeeId });
  const encryptKeyIds = (gw: FakeGateway) => gw.posted.filter((p) => p.path === '/v1/encrypt').map((p) => (JSON.parse(p.body) as { request: { keyId: string } }).request.keyId);

  it('makes the handle for the material id of the current version, by id or alias', async () => {
    const gw = new FakeGateway();
    const c = client(gw);
    await c.keys.create({ keyId: 'payroll', aliases: ['alias/payroll'] });
    assert.equal((await c.encrypt(new Uint8Array([1]), { keyId: 'payroll' })).keyId, 'payroll');
    await c.keys.rotate('payroll');
    await c.encrypt(new Uint8Array([2]), { keyId: 'alias/payroll' });
    await c.keys.rotate('payroll');
    await c.encrypt(new Uint8Array([3]), { keyId: 'payroll' });
    assert.deepEqual(encryptKeyIds(gw), ['payroll', 'payroll.v2', 'payroll.v3']);
  });

  it('refuses a key that is not Enabled, naming the key and its state, before anything is encrypted', async () => {
    const gw = new FakeGateway();
    const c = client(gw);
    await c.keys.create({ keyId: 'payroll' });
    await c.keys.disable('payroll');
    for (const encrypt of [c.encrypt.bind(c), c.encryptLocally.bind(c)]) await rejectsWith(encrypt(new Uint8Array([1]), { keyId: 'payroll' }), 'key_disabled', /key payroll is Disabled/);
    await c.keys.enable('payroll');
    await c.keys.scheduleDeletion('payroll', { pendingWindowDays: 7 });
    await rejectsWith(c.encrypt(new Uint8Array([1]), { keyId: 'payroll' }), 'key_pending_deletion', /key payroll is PendingDeletion: it will be destroyed at /);
    await c.keys.cancelDeletion('payroll');
    await c.keys.enable('payroll');
    await c.keys.scheduleDeletion('payroll', { pendingWindowSeconds: 1 });
    await new Promise((r) => setTimeout(r, 1100));
    await rejectsWith(c.encrypt(new Uint8Array([1]), { keyId: 'payroll' }), 'key_destroyed', /key payroll was destroyed at /);
    // A version scheduled for deletion is not encrypted to; the rest of the key still is.
    await c.keys.create({ keyId: 'rotated' });
    await c.keys.rotate('rotated');
    await c.keys.scheduleDeletion('rotated', { pendingWindowDays: 7, version: 1 });
    await c.encrypt(new Uint8Array([1]), { keyId: 'rotated' });
    assert.deepEqual(encryptKeyIds(gw), ['rotated.v2']);
    gw.posted.length = 0;
    assert.deepEqual(encryptKeyIds(gw), []);
  });

  it('a derived key: handles name its material id, version by version', async () => {
    const gw = new FakeGateway();
    const c = client(gw);
    await c.keys.create({ keyId: 'user-1', origin: { type: 'derived', root: 'root', path: 'users/1' } });
    await c.encrypt(new Uint8Array([1]), { keyId: 'user-1' });
    await c.keys.rotate('user-1');
    await c.encrypt(new Uint8Array([2]), { keyId: 'user-1' });
    assert.deepEqual(encryptKeyIds(gw), ['user-1', 'user-1.v2']);
  });
});

describe('client: derived keys end to end (verified root, tweak added by the client)', function () {
  this.timeout(60_000);
  const ROOT = 'root';
  const members = makeMembers([1, 2, 3]);
  const committee = makeCommittee(DEPLOYMENT.committeeId, 0, 2, members);
  const rootSecret = randomScalar();
  const rootKey = keyAt(ROOT, rootSecret, committee);
  const result = signedDkgResult(rootKey, committee, members);
  let rsaKey: RsaKeyPair;
  before(async () => {
    rsaKey = await generateRsaKeyPair(2048);
  });

  /** The key routes, plus the root's DKG result, handles registered here, and partials of the ROOT's shares, as nodes answer for a derived key. */
  const handles = new Map<string, Record<string, string>>();
  function gatewayWithRoot(answering: number[] = [1, 2, 3]): FakeGateway {
    const gw = new FakeGateway();
    gw.extra = (method, url, body) => {
      if (method === 'GET' && url.pathname === `/v1/keys/${ROOT}`) {
        return json(200, { keyId: result.keyId, publicKey: result.groupPublicKey, t: result.t, n: result.n, committeeId: result.committeeId, verificationShares: result.verificationShares, qualified: result.qualified, sessionId: result.sessionId, transcriptHash: result.transcriptHash, signatures: result.signatures, epoch: 0 });
      }
      if (method === 'POST' && url.pathname === '/v1/handles') {
        const b = JSON.parse(body) as { registration: { handle: string; keyId: string; owner: string }; K: string; nonce: string; ciphertext: string; kProof: string };
        handles.set(b.registration.handle, { keyId: b.registration.keyId, owner: b.registration.owner, K: b.K, nonce: b.nonce, ciphertext: b.ciphertext });
        return json(200, { handle: b.registration.handle, keyId: b.registration.keyId, K: b.K, nonce: b.nonce, ciphertextHash: '0x00', owner: b.registration.owner, kProof: b.kProof, created: true });
      }
      const stored = /^\/v1\/handles\/(0x[0-9a-f]{64})$/.exec(url.pathname);
      if (method === 'GET' && stored) return json(200, { handle: stored[1], ...handles.get(stored[1]!) });
      const delegate = /^\/v1\/handles\/(0x[0-9a-f]{64})\/delegate$/.exec(url.pathname);
      if (method === 'POST' && delegate) {
        return (async () => {
          const h = handles.get(delegate[1]!)!;
          const delegation = DelegationMessage.decode((JSON.parse(body) as { delegation: never }).delegation);
          const rsa = await importRsaPublicKey(encodeHex(delegation.rsaSpki));
          const partials = [];
          for (const id of answering) {
            // The node proves its ROOT share against the root's Y_i, bound to the key id the delegation names.
            const proven = computeProvenPartial({ keyId: delegation.keyId, nodeId: id, requestId: delegation.requestId }, sharesOf.get(rootKey)!.get(id)!, rootKey.verificationShares.get(id)!, decodeHex(h.K!));
            partials.push({ nodeId: id, wrapped: encodeHex(await rsaOaepWrap(rsa, proven.partial)), proof: encodeHex(encodeDleqProof(proven.proof)) });
          }
          return json(200, { handle: delegate[1], ...h, requestId: encodeHex(delegation.requestId), partials, failures: [] });
        })();
      }
      return undefined;
    };
    return gw;
  }

  const pinnedClient = (gw: FakeGateway) => new TkmsClient({ gatewayUrl: GATEWAY, account: alice, rsaKey, fetch: gw.fetch, ...pinnedClientOptions(committee) });

  it('encrypts locally to the verified root plus the tweak of its path and version, and decrypts by adding τ·K', async () => {
    const gw = gatewayWithRoot();
    const c = pinnedClient(gw);
    await c.keys.create({ keyId: 'wallet-1', origin: { type: 'derived', root: ROOT, path: 'users/1' } });
    const v1 = await c.encryptLocally(new TextEncoder().encode('v1 secret'), { keyId: 'wallet-1' });
    assert.equal(v1.keyId, 'wallet-1');
    await c.keys.rotate('wallet-1');
    const v2 = await c.encryptLocally(new TextEncoder().encode('v2 secret'), { keyId: 'wallet-1' });
    assert.equal(v2.keyId, 'wallet-1.v2');
    // A fresh client (no cached material) opens both: each version's own tweak.
    const fresh = pinnedClient(gw);
    assert.equal(new TextDecoder().decode((await fresh.decrypt(v1.handle)).plaintext), 'v1 secret');
    assert.equal(new TextDecoder().decode((await fresh.decrypt(v2.handle)).plaintext), 'v2 secret');
    // Sealed to root + τ of its own path and version: the root's secret alone does not open it, root + τ does.
    const opens = async (handle: string, secret: bigint) => {
      const h = handles.get(handle)!;
      const shared = decodePoint(h.K!).multiply(mod(secret)).toBytes(true).slice(1);
      return decryptWithSharedSecretX(shared, decodeHex(h.nonce!), decodeBase64(h.ciphertext!)).then(
        (p) => new TextDecoder().decode(p),
        () => undefined,
      );
    };
    const tweak2 = deriveKeyTweak(rootKey.groupPublicKey, 'users/1', 2);
    assert.equal(await opens(v2.handle, rootSecret), undefined);
    assert.equal(await opens(v2.handle, rootSecret + deriveKeyTweak(rootKey.groupPublicKey, 'users/1', 1)), undefined);
    assert.equal(await opens(v2.handle, rootSecret + tweak2), 'v2 secret');
  });

  it('a root result that does not verify refuses the derived key too', async () => {
    const gw = gatewayWithRoot();
    const forged = keyAt(ROOT, randomScalar(), committee);
    const inner = gw.extra!;
    gw.extra = (method, url, body) =>
      method === 'GET' && url.pathname === `/v1/keys/${ROOT}`
        ? json(200, { keyId: ROOT, publicKey: encodeHex(forged.groupPublicKey), t: result.t, n: result.n, committeeId: result.committeeId, verificationShares: result.verificationShares, qualified: result.qualified, sessionId: result.sessionId, transcriptHash: result.transcriptHash, signatures: result.signatures, epoch: 0 })
        : inner(method, url, body);
    const c = pinnedClient(gw);
    await c.keys.create({ keyId: 'wallet-1', origin: { type: 'derived', root: ROOT, path: 'users/1' } });
    await rejectsWith(c.encryptLocally(new Uint8Array([1]), { keyId: 'wallet-1' }), 'bad_proof');
  });
});
