import assert from 'node:assert/strict';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { curveBackend, encodeHex, interpolateSecret, randomBytes, splitSecret, CURVE_ORDER } from '../../core/index.ts';
import { ReshareCeremony } from '../../core/ceremony/index.ts';
import type { KeyEpochData } from '../../core/ceremony/handover.ts';
import { proposalDigest, reshareProposalToJson } from '../../core/ceremony/proposal.ts';
import { parseCommittee, type Committee } from '../../net/committee.ts';
import { ceremonyIdentity } from '../../node/ceremony-identity.ts';
import { testSeed } from '../support/test-seed.ts';
import type { EpochShare } from '../../node/epoch-types.ts';
import type { NodeIdentity } from '../../node/identity.ts';
import { createNodeMetrics } from '../../node/metrics.ts';
import { buildRefreshProposal } from '../../node/reshare-approvals.ts';
import { ReshareRunner } from '../../node/reshare-runner.ts';
import { decodeCeremonyFrame, decodeCeremonyReply, encodeCeremonyFrame } from '../../node/reshare-wire.ts';
import { createLogger } from '../../runtime/logger.ts';
import { identityOf, kindOf, makeScenario, paramsOf } from './ceremony-harness.ts';
import { MemoryEpochStore } from '../support/memory-epoch-store.ts';
import { waitFor } from '../support/processes.ts';

/**
 * Real-process reshare failures reproduced with in-process runners (design notes:
 * test/integration/reshare-scenarios.md). The transport models what libp2p does and the in-memory
 * ceremony simulator does not: a node admits ceremony streams only from members of the committee
 * it serves and of proposals its operator approved (reshare-service isParticipant); any other
 * peer's stream is reset before a frame is read, so nothing of it is held for later.
 */
describe('reshare scenarios seen with real processes (in-process runners, libp2p admission)', function () {
  this.timeout(120_000);
  const identities: NodeIdentity[] = [];

  before(async () => {
    for (let i = 0; i < 6; i++) {
      const privateKey = await generateKeyPair('Ed25519');
      identities.push({ privateKey, peerId: peerIdFromPrivateKey(privateKey).toString() });
    }
  });

  it('late approvals: 3-of-5 → 3-of-6, leaving members 2, 4, 5 approve four phases after 1, 3 and the joining 6; every member ends at epoch 1 with the same key', async () => {
    const phaseMs = 1_000;
    const committeeOf = (nodes: number[], t: number, epoch: number): Committee =>
      parseCommittee({ committeeId: 'late-approvals', epoch, t, members: nodes.map((node) => ({ id: node + 1, peerId: identities[node]!.peerId, multiaddrs: [`/ip4/127.0.0.1/tcp/${30_000 + node}`] })) });
    const from = committeeOf([0, 1, 2, 3, 4], 3, 0);
    const to = committeeOf([0, 1, 2, 3, 4, 5], 3, 1);
    const secret = BigInt(`0x${encodeHex(randomBytes(31)).slice(2)}`) % CURVE_ORDER;
    const split = splitSecret(secret, 3, 5);
    const keyData: KeyEpochData = { keyId: 'k1', epoch: 0, t: 3, groupPublicKey: curveBackend().multiplyBaseSecret(secret), verificationShares: new Map(split.map((s) => [s.id, curveBackend().multiplyBaseSecret(s.value)])) };
    const runners = new Map<number, ReshareRunner>();
    const stores = new Map<number, MemoryEpochStore>();
    let refusedStreams = 0;
    for (let node = 0; node < 6; node++) {
      const key = ceremonyIdentity(identities[node]!);
      const inFrom = node < 5;
      const held: EpochShare[] = inFrom ? [{ keyId: 'k1', share: split[node]!.value, data: keyData }] : [];
      stores.set(node, new MemoryEpochStore(inFrom ? from : to, held, key.publicKey));
      runners.set(node, new ReshareRunner({
        store: stores.get(node)!,
        identity: key,
        seed: testSeed(identities[node]!),
        createCeremony: (params, id, options) => new ReshareCeremony(params, id, options),
        transport: {
          send: async (member, frame) => {
            const target = identities.findIndex((x) => x.peerId === member.peerId);
            const peer = identities[node]!.peerId;
            await new Promise((r) => setImmediate(r));
            const admitted = stores.get(target)!.served().committee.members.some((m) => m.peerId === peer) || runners.get(target)!.participantMembers().some((m) => m.peerId === peer);
            if (!admitted) {
              refusedStreams++;
              throw new Error('stream reset: peer not allowed on /tkms/ceremony/2');
            }
            decodeCeremonyFrame(frame);
            return runners.get(target)!.answerFrame(peer, frame);
          },
        },
        log: createLogger('silent'),
        metrics: createNodeMetrics(),
        phaseMs,
        helloWaitMs: 600_000,
        fetchKeys: async () => [keyData],
        onCommitted: () => {},
      }));
    }
    const proposal = reshareProposalToJson({ from, to, keyIds: ['k1'] });
    let id = '';
    for (const node of [0, 2, 5]) id = (await runners.get(node)!.approve(proposal)).proposalId;
    await new Promise((r) => setTimeout(r, 4 * phaseMs));
    assert.ok(refusedStreams > 0, 'the joining member was refused by the members that had not approved');
    for (const node of [1, 3, 4]) await runners.get(node)!.approve(proposal);
    try {
      for (const [node, r] of runners) {
        const p = await waitFor(`node ${node + 1} finished`, () => {
          const x = r.list().proposals.find((y) => y.proposalId === id);
          return x !== undefined && x.status !== 'running' && x.status !== 'approved' ? x : undefined;
        }, { timeoutMs: 90_000, intervalMs: 50 });
        assert.equal(p.status, 'done', `node ${node + 1}: ${p.failureReason} ${JSON.stringify(p.disqualified)}`);
      }
    } finally {
      for (const r of runners.values()) r.stop();
    }
    const newShares = [...stores.values()].map((s, node) => ({ id: node + 1, value: s.shares()[0]!.share }));
    for (const s of stores.values()) assert.equal(s.served().committee.epoch, 1);
    assert.equal(interpolateSecret(newShares.slice(0, 3)), secret);
    assert.equal(interpolateSecret(newShares.slice(3, 6)), secret, 'the joining member holds a share of the same key');
  });

  it('refresh frames re-sent while the approval is still being written (a loaded disk): one approval, one ceremony', async () => {
    const committee = parseCommittee({ committeeId: 'slow-disk', epoch: 0, t: 2, members: [0, 1, 2].map((node) => ({ id: node + 1, peerId: identities[node]!.peerId, multiaddrs: [`/ip4/127.0.0.1/tcp/${31_000 + node}`] })) });
    const split = splitSecret(5n, 2, 3);
    const keyData: KeyEpochData = { keyId: 'k1', epoch: 0, t: 2, groupPublicKey: curveBackend().multiplyBaseSecret(5n), verificationShares: new Map(split.map((s) => [s.id, curveBackend().multiplyBaseSecret(s.value)])) };
    const key = ceremonyIdentity(identities[1]!);
    const store = new MemoryEpochStore(committee, [{ keyId: 'k1', share: split[1]!.value, data: keyData }], key.publicKey);
    const save = store.saveApproval.bind(store);
    store.saveApproval = async (a) => {
      await new Promise((r) => setTimeout(r, 300));
      await save(a);
    };
    const logged: string[] = [];
    const log = createLogger('info');
    log.info = ((obj: unknown, msg?: string) => void logged.push(typeof obj === 'string' ? obj : (msg ?? ''))) as typeof log.info;
    const runner = new ReshareRunner({
      store,
      identity: key,
      seed: testSeed(identities[1]!),
      createCeremony: (params, id, options) => new ReshareCeremony(params, id, options),
      transport: { send: async () => { throw new Error('unreachable'); } },
      log,
      metrics: createNodeMetrics(),
      phaseMs: 1_000,
      minRefreshSpacingSeconds: 0,
      fetchKeys: async () => [keyData],
      onCommitted: () => {},
    });
    const proposal = buildRefreshProposal(committee, ['k1']);
    const frame = encodeCeremonyFrame({ type: 'refresh', proposalId: proposalDigest(proposal), payload: new TextEncoder().encode(JSON.stringify(reshareProposalToJson(proposal))) });
    try {
      const replies = await Promise.all([0, 1, 2, 3, 4].map(() => runner.answerFrame(identities[0]!.peerId, frame)));
      assert.ok(replies.every((r) => decodeCeremonyReply(r).ok));
      await runner.answerFrame(identities[2]!.peerId, frame);
      await waitFor('the ceremony started', () => (logged.includes('ceremony started') ? true : undefined), { timeoutMs: 10_000, intervalMs: 10 });
      assert.equal(store.calls.filter((c) => c === 'approval:approved').length, 1);
      assert.equal(logged.filter((m) => m === 'ceremony approved').length, 1);
      assert.equal(logged.filter((m) => m === 'ceremony started').length, 1);
    } finally {
      runner.stop();
    }
  });

  it('late approvals, engine: a member re-sends its hello until acknowledged, like every message of its own', () => {
    const s = makeScenario({ n: 3, t: 2, nTo: 3, tTo: 2, stay: [[1, 1], [2, 2], [3, 3]] });
    const node = s.nodes[0]!;
    const c = new ReshareCeremony(paramsOf(s, node), identityOf(node), { timing: { phaseMs: 1_000 } });
    const sent = c.start(0).outbound.map((o) => o.payload);
    const hello = sent.find((p) => kindOf(p) === 'hello');
    assert.ok(hello !== undefined);
    assert.deepEqual(c.retransmit().filter((o) => kindOf(o.payload) === 'hello').map((o) => o.payload), [hello]);
  });
});
