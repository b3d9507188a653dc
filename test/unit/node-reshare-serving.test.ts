import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateAccount, type Account } from '../../client/account.ts';
import {
  curveBackend,
  decodePartialReply,
  encodePartialRequest,
  isTkmsError,
  publicKeyFromSecret,
  randomBytes,
  randomScalar,
  sealToHandle,
  signDelegation,
  splitSecret,
  utf8ToBytes,
  type HandleDescriptor,
} from '../../core/index.ts';
import type { KeyEpochData } from '../../core/ceremony/handover.ts';
import { createNodeMetrics } from '../../node/metrics.ts';
import { PartialService, ShareBook } from '../../node/partial.ts';
import { agreedKeyData } from '../../node/reshare-keys.ts';
import { RevocationStore } from '../../node/revocations.ts';
import { SpentRequestIds } from '../../node/spent-request-ids.ts';
import { createLogger } from '../../runtime/logger.ts';
import { RateLimiter } from '../../runtime/rate-limit.ts';

/** The partial service across a commit (ShareBook.serveEpoch) and the joiner's agreement on key data. */
const NOW = 1_700_000_000;
const DEPLOYMENT = { committeeId: 'committee-e' };
const KEY_ID = 'k1';

describe('node reshare: serving an epoch', function () {
  this.timeout(60_000);
  let owner: Account;
  let descriptor: HandleDescriptor;
  let handle: Uint8Array;
  let rsaSpki: Uint8Array;
  let epoch1: KeyEpochData;
  let newShares: Map<number, bigint>;
  /** A refresh of epoch 1: the same key, other shares. */
  let epoch2: KeyEpochData;
  let refreshedShares: Map<number, bigint>;
  const dirs: string[] = [];
  const closers: (() => Promise<void>)[] = [];

  before(async () => {
    owner = generateAccount();
    const secret = randomScalar();
    const sealed = await sealToHandle({ publicKey: publicKeyFromSecret(secret), keyId: KEY_ID, owner: owner.addressBytes, plaintext: utf8ToBytes('epochs') });
    handle = sealed.handle;
    descriptor = { keyId: KEY_ID, K: sealed.K, nonce: sealed.nonce, ciphertextHash: sealed.ciphertextHash, owner: sealed.owner, kProof: sealed.kProof };
    rsaSpki = new Uint8Array(generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'der' }));
    const split = splitSecret(secret, 3, 4);
    newShares = new Map(split.map((s) => [s.id, s.value]));
    epoch1 = {
      keyId: KEY_ID,
      epoch: 1,
      t: 3,
      groupPublicKey: curveBackend().multiplyBaseSecret(secret),
      verificationShares: new Map(split.map((s) => [s.id, curveBackend().multiplyBaseSecret(s.value)])),
    };
    const refreshed = splitSecret(secret, 3, 4);
    refreshedShares = new Map(refreshed.map((s) => [s.id, s.value]));
    epoch2 = { ...epoch1, epoch: 2, verificationShares: new Map(refreshed.map((s) => [s.id, curveBackend().multiplyBaseSecret(s.value)])) };
  });

  after(async () => {
    for (const close of closers) await close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  async function service(shares: ShareBook): Promise<PartialService> {
    const dir = mkdtempSync(join(tmpdir(), 'tkms-reshare-serving-'));
    dirs.push(dir);
    const spentIds = await SpentRequestIds.open(join(dir, 'replay.log'), 30, NOW);
    const { store: revocations } = await RevocationStore.open(join(dir, 'revocations.log'), DEPLOYMENT, {}, NOW);
    closers.push(async () => spentIds.close(), async () => revocations.close());
    return new PartialService({ deployment: DEPLOYMENT, shares, spentIds, revocations, metrics: createNodeMetrics(), log: createLogger('silent'), clockSkewSeconds: 30, limiter: new RateLimiter(60_000, 1_000), fault: undefined, now: () => NOW * 1000 });
  }

  const request = () =>
    encodePartialRequest({
      delegation: signDelegation(owner.secretKey, { handle, keyId: KEY_ID, requester: owner.addressBytes, rsaSpki, notBefore: NOW - 60, notAfter: NOW + 600, requestId: randomBytes(16) }, DEPLOYMENT),
      descriptor,
      grant: undefined,
    });

  it('after a commit answers with the new epoch\'s share, under the new id, and says which epoch', async () => {
    const shares = new ShareBook(5);
    // Member 5 of epoch 0 is member 2 of epoch 1.
    shares.serveEpoch(2, 1, [{ keyId: KEY_ID, share: newShares.get(2)!, data: epoch1 }]);
    assert.equal(shares.selfId, 2);
    const reply = decodePartialReply(await (await service(shares)).answerFrame(request()));
    assert.ok(reply.ok, JSON.stringify(reply));
    assert.equal(reply.ok && reply.nodeId, 2);
    assert.equal(reply.ok && reply.epoch, 1);
  });

  it('a commit while a request is being checked does not mix epochs: the reply names the epoch of the share it used', async () => {
    const shares = new ShareBook(2);
    shares.serveEpoch(2, 1, [{ keyId: KEY_ID, share: newShares.get(2)!, data: epoch1 }]);
    const svc = await service(shares);
    // The share is taken as the request arrives; the commit lands while the checks await (RSA key, spent id).
    const pending = svc.answerFrame(request());
    shares.serveEpoch(2, 2, [{ keyId: KEY_ID, share: refreshedShares.get(2)!, data: epoch2 }]);
    const reply = decodePartialReply(await pending);
    assert.ok(reply.ok, JSON.stringify(reply));
    assert.equal(reply.ok && reply.epoch, 1, 'computed with the epoch-1 share, so named epoch 1');
    const next = decodePartialReply(await svc.answerFrame(request()));
    assert.equal(next.ok && next.epoch, 2);
  });

  it('a member that left answers stale_epoch naming the epoch reached; only keys it served count as moved away', async () => {
    const shares = new ShareBook(1);
    shares.serveEpoch(1, 1, [{ keyId: KEY_ID, share: newShares.get(1)!, data: epoch1 }]);
    shares.serveEpoch(undefined, 2, []);
    const svc = await service(shares);
    const reply = decodePartialReply(await svc.answerFrame(request()));
    assert.equal(!reply.ok && reply.code, 'stale_epoch');
    assert.match(!reply.ok ? reply.message : '', /epoch 2/);
    assert.equal(shares.isRetired('other'), false);
  });

  it('refuses to serve a share that is not on its verification share', () => {
    const shares = new ShareBook(1);
    assert.throws(() => shares.serveEpoch(1, 1, [{ keyId: KEY_ID, share: newShares.get(2)!, data: epoch1 }]), (e: unknown) => isTkmsError(e, 'keystore_corrupt'));
    assert.throws(() => shares.serveEpoch(9, 1, [{ keyId: KEY_ID, share: newShares.get(2)!, data: epoch1 }]), (e: unknown) => isTkmsError(e, 'keystore_corrupt'));
  });

  it('a joining member takes the key data t members of the committee leaving agree on, and nothing fewer vouch for', () => {
    const forged: KeyEpochData = { ...epoch1, verificationShares: new Map([...epoch1.verificationShares].map(([id]) => [id, curveBackend().multiplyBaseSecret(randomScalar())])) };
    const honest = new Map([[KEY_ID, epoch1]]);
    const lying = new Map([[KEY_ID, forged]]);
    assert.equal(agreedKeyData([honest, lying, honest, undefined, honest], [KEY_ID], 3)[0], epoch1);
    assert.throws(() => agreedKeyData([honest, lying, lying, undefined, honest], [KEY_ID], 3), (e: unknown) => isTkmsError(e, 'unavailable'));
    assert.throws(() => agreedKeyData([honest, honest, honest], ['k2'], 3), (e: unknown) => isTkmsError(e, 'unavailable'));
  });
});
