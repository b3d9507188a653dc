import assert from 'node:assert/strict';
import { join } from 'node:path';
import fc from 'fast-check';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { generateAccount } from '../../client/account.ts';
import {
  deriveHandleFromDigest,
  encodePoint,
  isTkmsError,
  proveEphemeralKey,
  publicKeyFromSecret,
  randomBytes,
  randomScalar,
  signRevocation,
  type HandleDescriptor,
  type RevocationEnvelope,
} from '../../core/index.ts';
import { expectedCommittee } from '../../core/committee.ts';
import { verifyDkgPublicResult } from '../../core/dkg/index.ts';
import { parseCommittee, type Committee } from '../../net/committee.ts';
import { AclService, joinSyncNeed } from '../../node/acl.ts';
import { DkgRunner, type DkgStatus } from '../../node/dkg-runner.ts';
import { encodeDkgFrame } from '../../node/dkg-wire.ts';
import { decodeCeremonyReply } from '../../node/reshare-wire.ts';
import { ceremonyIdentity } from '../../node/ceremony-identity.ts';
import { testSeed } from '../support/test-seed.ts';
import { DkgCeremony } from '../../core/ceremony/index.ts';
import type { NodeIdentity } from '../../node/identity.ts';
import { Keystore } from '../../node/keystore.ts';
import { createNodeMetrics } from '../../node/metrics.ts';
import { RevocationStore } from '../../node/revocations.ts';
import { createLogger } from '../../runtime/logger.ts';
import { makeTempDir, removeDir, waitFor } from '../support/processes.ts';

/** The node acting as a member of the committee served, not of its committee file: the DKG runner after a commit, and a joiner's revocation sync. */
describe('node: the committee served after a reshare', function () {
  this.timeout(60_000);
  let dir: string | undefined;

  before(async () => {
    dir = await makeTempDir('tkms-served-committee');
  });

  after(async () => {
    await removeDir(dir);
  });

  describe('joinSyncNeed', () => {
    it('asks t members of the committee leaving (or all there are) first, then takes any one it reaches; never zero', () => {
      assert.equal(joinSyncNeed(3, 4, 1), 3);
      assert.equal(joinSyncNeed(3, 2, 1), 2);
      assert.equal(joinSyncNeed(3, 4, 6), 3);
      assert.equal(joinSyncNeed(3, 4, 7), 1);
      fc.assert(
        fc.property(fc.integer({ min: 1, max: 256 }), fc.integer({ min: 0, max: 256 }), fc.integer({ min: 1, max: 1000 }), (t, sources, attempt) => {
          const need = joinSyncNeed(t, sources, attempt);
          assert.ok(need >= 1 && need <= Math.max(1, Math.min(t, sources)));
        }),
      );
    });
  });

  // Revocations for the AclService tests.
  const deployment = { committeeId: 'served-test' };
  const owner = generateAccount();

  function envelope(): RevocationEnvelope {
    const k = randomScalar();
    const digest = { keyId: 'key-1', K: encodePoint(publicKeyFromSecret(k)), nonce: randomBytes(12), ciphertextHash: randomBytes(32), owner: owner.addressBytes };
    const descriptor: HandleDescriptor = { ...digest, kProof: proveEphemeralKey(k, digest) };
    const revocation = signRevocation(owner.secretKey, { handle: deriveHandleFromDigest(descriptor), grantee: generateAccount().addressBytes, revokedAt: Math.floor(Date.now() / 1000) - 5 }, deployment);
    return { descriptor, revocation };
  }

  describe('AclService.syncUnion', () => {
    async function service(name: string, items: RevocationEnvelope[] = []): Promise<{ store: RevocationStore; acl: AclService }> {
      const { store } = await RevocationStore.open(join(dir!, `${name}-${Math.random().toString(36).slice(2)}.log`), deployment);
      for (const item of items) await store.add(item);
      const acl = new AclService(store, { members: () => [], send: async () => new Uint8Array() }, createLogger('silent'), createNodeMetrics());
      return { store, acl };
    }

    it('takes the union of what the members hold: one that withholds hides nothing another holds', async () => {
      const [r1, r2, r3] = [envelope(), envelope(), envelope()];
      const a = await service('a', [r1!, r2!]);
      const b = await service('b', []); // withholds everything
      const c = await service('c', [r3!]);
      const joiner = await service('joiner');
      const source = (member: number, s: { acl: AclService }) => ({ member, send: (frame: Uint8Array) => s.acl.answer(member, frame) });
      const outcome = await joiner.acl.syncUnion([source(1, a), source(2, b), source(3, c)], 3);
      assert.deepEqual(outcome, { synced: 3, added: 3 });
      for (const r of [r1!, r2!, r3!]) assert.equal(joiner.store.revokedAt(r.revocation.handle, r.revocation.grantee, owner.addressBytes), r.revocation.revokedAt);
      for (const s of [a, b, c, joiner]) s.store.close();
    });

    it('refuses (unavailable) when fewer members than needed answered, keeping what it pulled', async () => {
      const r1 = envelope();
      const a = await service('a', [r1]);
      const joiner = await service('joiner');
      const down = { member: 'peer-down', send: async (): Promise<Uint8Array> => Promise.reject(new Error('unreachable')) };
      const refusal = await joiner.acl.syncUnion([{ member: 1, send: (frame: Uint8Array) => a.acl.answer(1, frame) }, down], 2).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(isTkmsError(refusal, 'unavailable'), String(refusal));
      assert.match((refusal as Error).message, /synced from 1 of 2 members, need 2/);
      assert.equal(joiner.store.revokedAt(r1.revocation.handle, r1.revocation.grantee, owner.addressBytes), r1.revocation.revokedAt);
      await assert.rejects(joiner.acl.syncUnion([down], 1), (e: unknown) => isTkmsError(e, 'unavailable'));
      a.store.close();
      joiner.store.close();
    });
  });

  describe('AclService.syncOnConnect', () => {
    /** A member holding `items`, and a node that syncs from it over a link that fails the first `failures` frames. */
    async function pair(items: RevocationEnvelope[], failures: number, delays: number[]) {
      const open = async (name: string) => (await RevocationStore.open(join(dir!, `${name}-${Math.random().toString(36).slice(2)}.log`), deployment)).store;
      const peerStore = await open('peer');
      for (const item of items) await peerStore.add(item);
      const peer = new AclService(peerStore, { members: () => [], send: async () => new Uint8Array() }, createLogger('silent'), createNodeMetrics());
      let sent = 0;
      const send = async (_member: number, frame: Uint8Array): Promise<Uint8Array> => (++sent <= failures ? Promise.reject(new Error('stream reset')) : peer.answer(1, frame));
      const store = await open('node');
      const node = new AclService(store, { members: () => [1], send }, createLogger('silent'), createNodeMetrics(), delays);
      return { store, node, sent: () => sent, close: () => [peerStore, store].forEach((s) => s.close()) };
    }

    it('a sync that fails is tried again while the member stays connected, and brings the revocations', async () => {
      const r = envelope();
      const p = await pair([r], 2, [5, 5, 5]);
      await p.node.syncOnConnect(1, () => true);
      assert.equal(p.sent(), 3);
      assert.equal(p.store.revokedAt(r.revocation.handle, r.revocation.grantee, owner.addressBytes), r.revocation.revokedAt);
      p.close();
    });

    it('gives up after its last wait, or at once when the member is gone, a reconnection replaces it, or the node stops', async () => {
      const r = envelope();
      const exhausted = await pair([r], 100, [5, 5]);
      await exhausted.node.syncOnConnect(1, () => true);
      assert.equal(exhausted.sent(), 3);
      assert.equal(exhausted.store.revokedAt(r.revocation.handle, r.revocation.grantee, owner.addressBytes), undefined);
      exhausted.close();

      const gone = await pair([r], 100, [5, 5]);
      await gone.node.syncOnConnect(1, () => false);
      assert.equal(gone.sent(), 0);
      gone.close();

      // A reconnection starts its own loop; the one waiting from before ends without another try.
      const again = await pair([r], 1, [60_000]);
      const first = again.node.syncOnConnect(1, () => true);
      await new Promise((resolve) => setTimeout(resolve, 20));
      await again.node.syncOnConnect(1, () => true);
      assert.equal(again.sent(), 2);
      assert.equal(again.store.revokedAt(r.revocation.handle, r.revocation.grantee, owner.addressBytes), r.revocation.revokedAt);
      again.node.stop();
      await first;
      assert.equal(again.sent(), 2);
      again.close();

      const stopping = await pair([r], 100, [60_000]);
      const done = stopping.node.syncOnConnect(1, () => true);
      await new Promise((resolve) => setTimeout(resolve, 20));
      stopping.node.stop();
      // The minute's wait ends with the stop, and nothing more is sent.
      await done;
      assert.equal(stopping.sent(), 1);
      stopping.close();
    });
  });

  describe('DkgRunner.serveCommittee', () => {
    const N = 4;
    let identities: NodeIdentity[];
    let epoch0: Committee;
    let epoch1: Committee;
    let runners: Map<number, DkgRunner>;

    const memberJson = (x: NodeIdentity, id: number) => ({ id, peerId: x.peerId, multiaddrs: [`/ip4/127.0.0.1/tcp/${11_000 + id}`] });

    before(async () => {
      identities = [];
      for (let i = 0; i < N + 1; i++) {
        const privateKey = await generateKeyPair('Ed25519');
        identities.push({ privateKey, peerId: peerIdFromPrivateKey(privateKey).toString() });
      }
      // Epoch 0: identities 0..3 as members 1..4 (t = 3). Epoch 1: identity 0 left, identities 1..4 are members 4, 3, 2, 1 (t = 2).
      epoch0 = parseCommittee({ committeeId: 'served-test', t: 3, members: identities.slice(0, N).map((x, i) => memberJson(x, i + 1)) });
      epoch1 = parseCommittee({ committeeId: 'served-test', epoch: 1, t: 2, members: identities.slice(1).map((x, i) => memberJson(x, N - i)) });
    });

    afterEach(() => {
      for (const r of runners?.values() ?? []) r.stop();
    });

    /** One runner per identity, started as members of epoch 0 (identity 4: its file is epoch 1), then moved to epoch 1 like the daemon does at a commit. */
    async function build(): Promise<Map<number, DkgRunner>> {
      const byIdentity = new Map<number, DkgRunner>();
      const servedIdOf = (i: number) => epoch1.members.find((m) => m.peerId === identities[i]!.peerId)?.id;
      const byServedId = new Map<number, DkgRunner>();
      for (let i = 0; i <= N; i++) {
        const file = i < N ? epoch0 : epoch1;
        const fileId = file.members.find((m) => m.peerId === identities[i]!.peerId)!.id;
        const keystore = await Keystore.open(join(dir!, `ks-${i}-${Math.random().toString(36).slice(2)}`), 'pw');
        const runner = new DkgRunner({
          committee: file,
          selfId: fileId,
          identity: ceremonyIdentity(identities[i]!),
          seed: testSeed(identities[i]!),
          createCeremony: (params, identity, options) => new DkgCeremony(params, identity, options),
          keystore,
          log: createLogger('silent'),
          metrics: createNodeMetrics(),
          phaseMs: 400,
          committeeAt: (e) => (e === 0 ? expectedCommittee(epoch0) : e === 1 ? expectedCommittee(epoch1) : undefined),
          servedKeyIds: () => ['moved-here'],
          transport: {
            send: async (to, frame) => {
              await new Promise((r) => setImmediate(r));
              return byServedId.get(to)!.answerFrame(servedIdOf(i)!, frame);
            },
          },
        });
        runner.serveCommittee(epoch1, servedIdOf(i));
        byIdentity.set(i, runner);
        const served = servedIdOf(i);
        if (served !== undefined) byServedId.set(served, runner);
      }
      runners = byIdentity;
      return byServedId;
    }

    it('runs a DKG among the committee served, under the new ids: the result carries epoch 1 and verifies against epoch 1 only', async () => {
      const served = await build();
      served.get(2)!.propose('k-epoch1');
      const statuses = await Promise.all(
        [1, 2, 3, 4].map((id) =>
          waitFor<DkgStatus>(`member ${id} outcome`, () => {
            const s = served.get(id)!.status('k-epoch1');
            return s.status === 'running' ? undefined : s;
          }, { timeoutMs: 30_000, intervalMs: 20 }),
        ),
      );
      for (const s of statuses) {
        assert.equal(s.status, 'done', s.abortReason);
        assert.equal(s.result!.groupPublicKey, statuses[0]!.result!.groupPublicKey);
      }
      const result = statuses[0]!.result!;
      assert.equal(result.epoch, 1);
      assert.equal(result.t, 2);
      assert.deepEqual(Object.keys(result.verificationShares).map(Number).sort(), [1, 2, 3, 4]);
      verifyDkgPublicResult(result, expectedCommittee(epoch1));
      assert.throws(() => verifyDkgPublicResult(result, expectedCommittee(epoch0)));
    });

    it('a member that left refuses to propose a DKG and refuses proposals (unauthorized)', async () => {
      await build();
      const left = runners.get(0)!;
      assert.throws(() => left.propose('k-left'), (e: unknown) => isTkmsError(e, 'unauthorized'));
      const proposal = { type: 'proposal' as const, keyId: 'k-left', sessionId: randomBytes(16), committeeId: 'served-test', epoch: 1, t: 2, proposer: 1 };
      const reply = decodeCeremonyReply(await left.answerFrame(1, encodeDkgFrame(proposal)));
      assert.equal(reply.ok ? 'ok' : reply.code, 'unauthorized');
      // A proposal with the file's t is refused by the members too: the committee served says t = 2.
      const member = runners.get(1)!;
      const wrongT = decodeCeremonyReply(await member.answerFrame(1, encodeDkgFrame({ ...proposal, keyId: 'k-wrong-t', t: 3 })));
      assert.equal(wrongT.ok ? 'ok' : wrongT.code, 'bad_request');
      // A key a reshare moved here has no DKG key file; a DKG for its id is refused all the same.
      assert.throws(() => member.propose('moved-here'), (e: unknown) => isTkmsError(e, 'conflict'));
      const again = decodeCeremonyReply(await member.answerFrame(1, encodeDkgFrame({ ...proposal, keyId: 'moved-here' })));
      assert.equal(again.ok ? 'ok' : again.code, 'conflict');
    });
  });
});
