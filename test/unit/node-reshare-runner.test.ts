import assert from 'node:assert/strict';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { curveBackend, decodeHex, encodeHex, equalBytes, interpolateSecret, isTkmsError, randomBytes, splitSecret, TkmsError, CURVE_ORDER } from '../../core/index.ts';
import { ReshareCeremony } from '../../core/ceremony/index.ts';
import type { KeyEpochData } from '../../core/ceremony/handover.ts';
import { reshareProposalToJson } from '../../core/ceremony/proposal.ts';
import { ceremonyMessageKind } from '../../core/ceremony/codec.ts';
import { parseCommittee, type Committee } from '../../net/committee.ts';
import { ceremonyIdentity } from '../../node/ceremony-identity.ts';
import type { EpochShare } from '../../node/epoch-types.ts';
import type { NodeIdentity } from '../../node/identity.ts';
import { createNodeMetrics } from '../../node/metrics.ts';
import { ReshareRunner, type ReshareRunnerOptions } from '../../node/reshare-runner.ts';
import { UNPROCESSED_PER_PEER } from '../../node/early-replies.ts';
import type { ReshareCeremonyApi } from '../../core/ceremony/types.ts';
import { decodeCeremonyFrame, decodeCeremonyReply, encodeCeremonyFrame } from '../../node/reshare-wire.ts';
import { createLogger } from '../../runtime/logger.ts';
import { MemoryEpochStore } from '../support/memory-epoch-store.ts';
import { waitFor } from '../support/processes.ts';

describe('node reshare runner (in-process, real engine, memory store)', function () {
  this.timeout(120_000);
  const identities: NodeIdentity[] = [];
  /** Each node's keystore-held ceremony seed (node/keystore-seed.ts): the same across its restarts. */
  const seeds: Uint8Array[] = [];
  let from: Committee;
  let to: Committee;
  let secret: bigint;
  let keyData: KeyEpochData;
  let shares: Map<number, bigint>;

  const committeeOf = (nodes: number[], t: number, epoch: number): Committee =>
    parseCommittee({ committeeId: 'runner-reshare', epoch, t, members: nodes.map((node, i) => ({ id: i + 1, peerId: identities[node]!.peerId, multiaddrs: [`/ip4/127.0.0.1/tcp/${30_000 + node}`] })) });

  before(async () => {
    for (let i = 0; i < 6; i++) {
      const privateKey = await generateKeyPair('Ed25519');
      identities.push({ privateKey, peerId: peerIdFromPrivateKey(privateKey).toString() });
      seeds.push(randomBytes(32));
    }
    // nodes 0..3 hold a 2-of-4 key; the new committee is nodes 1..5, 3-of-5 (node 0 leaves, two join).
    from = committeeOf([0, 1, 2, 3], 2, 0);
    to = committeeOf([1, 2, 3, 4, 5], 3, 1);
    secret = BigInt(`0x${encodeHex(randomBytes(31)).slice(2)}`) % CURVE_ORDER;
    const split = splitSecret(secret, 2, 4);
    shares = new Map(split.map((s) => [s.id, s.value]));
    keyData = {
      keyId: 'k1',
      epoch: 0,
      t: 2,
      groupPublicKey: curveBackend().multiplyBaseSecret(secret),
      verificationShares: new Map(split.map((s) => [s.id, curveBackend().multiplyBaseSecret(s.value)])),
    };
  });

  function build(nodes: number[], down: Set<number> = new Set(), beforeJoining?: (node: number) => ReshareRunnerOptions['beforeJoining'], observe?: (from: number, to: number, frame: Uint8Array) => void) {
    const runners = new Map<number, ReshareRunner>();
    const stores = new Map<number, MemoryEpochStore>();
    const peerOf = (node: number) => identities[node]!.peerId;
    const ceremonies = new Map<number, number>();
    /** A runner over the node's store, as a (re)started process makes it. */
    const start = (node: number): ReshareRunner => {
      const runner = new ReshareRunner({
        store: stores.get(node)!,
        identity: ceremonyIdentity(identities[node]!),
        seed: seeds[node]!,
        createCeremony: (params, id, options) => {
          ceremonies.set(node, (ceremonies.get(node) ?? 0) + 1);
          return new ReshareCeremony(params, id, options);
        },
        transport: {
          send: async (member, frame) => {
            const target = identities.findIndex((x) => x.peerId === member.peerId);
            if (down.has(target) || down.has(node) || !runners.has(target)) throw new Error('unreachable');
            observe?.(node, target, frame);
            await new Promise((r) => setImmediate(r));
            return runners.get(target)!.answerFrame(peerOf(node), frame);
          },
        },
        log: createLogger('silent'),
        metrics: createNodeMetrics(),
        phaseMs: 1_000,
        fetchKeys: async () => [keyData],
        onCommitted: () => {},
        ...(beforeJoining?.(node) === undefined ? {} : { beforeJoining: beforeJoining(node)! }),
      });
      runners.set(node, runner);
      return runner;
    };
    for (const node of nodes) {
      const key = ceremonyIdentity(identities[node]!);
      const fromId = from.members.find((m) => equalBytes(m.publicKey, key.publicKey))?.id;
      const served = fromId === undefined ? to : from;
      const held: EpochShare[] = fromId === undefined ? [] : [{ keyId: 'k1', share: shares.get(fromId)!, data: keyData }];
      stores.set(node, new MemoryEpochStore(served, held, key.publicKey));
      start(node);
    }
    /** Engines each node created: one per ceremony (and per restart). */
    return { runners, stores, start, ceremonies };
  }

  const proposal = () => reshareProposalToJson({ from, to, keyIds: ['k1'] });

  let refreshMs = 0;
  after(() => console.log(`      refresh of 3-of-5 in process (phase 1000 ms): ${refreshMs} ms`));

  it('moves the key to the new committee, then refreshes it: same secret, new shares on a 3-of-5 sharing, store calls in order', async () => {
    const { runners, stores } = build([0, 1, 2, 3, 4, 5]);
    let proposalId = '';
    for (const r of runners.values()) proposalId = (await r.approve(proposal())).proposalId;
    for (const [node, r] of runners) {
      await waitFor(`node ${node} done`, () => {
        const p = r.list().proposals.find((x) => x.proposalId === proposalId);
        return p !== undefined && p.status !== 'running' && p.status !== 'approved' ? p : undefined;
      }, { timeoutMs: 60_000, intervalMs: 20 });
      assert.equal(r.list().proposals[0]!.status, 'done', `node ${node}: ${r.list().proposals[0]!.failureReason}`);
    }
    const newShares = [1, 2, 3, 4, 5].map((node) => {
      const s = stores.get(node)!;
      assert.equal(s.served().committee.epoch, 1);
      // Approval first, the vote on disk before anything it sent, new shares before the commit.
      const c = s.calls;
      assert.ok(c.indexOf('approval:approved') < c.indexOf('recordVote'));
      assert.ok(c.indexOf('savePending') < c.indexOf('commit'));
      const id = s.served().committee.members.find((m) => m.peerId === identities[node]!.peerId)!.id;
      return { id, value: s.shares()[0]!.share };
    });
    assert.equal(interpolateSecret(newShares.slice(0, 3)), secret);
    assert.equal(interpolateSecret(newShares.slice(2, 5)), secret);
    assert.deepEqual(stores.get(0)!.shares(), [], 'the member that left serves nothing');

    // Then one member refreshes the new committee; the others take its refresh frame.
    const started = Date.now();
    const refresh = await runners.get(3)!.refresh();
    for (const node of [1, 2, 3, 4, 5]) {
      const r = runners.get(node)!;
      const p = await waitFor(`node ${node} refresh done`, () => {
        const x = r.list().proposals.find((y) => y.proposalId === refresh.proposalId);
        return x !== undefined && x.status !== 'running' && x.status !== 'approved' ? x : undefined;
      }, { timeoutMs: 60_000, intervalMs: 20 });
      assert.equal(p.status, 'done', `node ${node}: ${p.failureReason}`);
      assert.equal(stores.get(node)!.served().committee.epoch, 2);
    }
    refreshMs = Date.now() - started;
    const refreshed = [1, 2, 3, 4, 5].map((node) => {
      const s = stores.get(node)!;
      const id = s.served().committee.members.find((m) => m.peerId === identities[node]!.peerId)!.id;
      return { id, value: s.shares()[0]!.share };
    });
    assert.equal(interpolateSecret(refreshed.slice(1, 4)), secret);
    for (const [i, s] of refreshed.entries()) assert.notEqual(s.value, newShares[i]!.value, 'every share changed');
    assert.equal(stores.get(0)!.served().committee.epoch, 1, 'the member that left takes no part');
    for (const r of runners.values()) r.stop();
  });

  it('a joining member does not commit (serve) the new epoch until beforeJoining succeeds: status syncing_revocations, retried', async () => {
    let refusals = 0;
    let open = false;
    const asked: number[] = [];
    const { runners, stores } = build([0, 1, 2, 3, 4, 5], new Set(), (node) =>
      node === 4
        ? async (p) => {
            asked.push(p.from.epoch);
            if (!open) {
              refusals++;
              throw new TkmsError('unavailable', 'revocations synced from 0 of 4 members, need 2');
            }
          }
        : undefined,
    );
    let proposalId = '';
    for (const r of runners.values()) proposalId = (await r.approve(proposal())).proposalId;
    const joiner = runners.get(4)!;
    const waiting = await waitFor('node 4 waits for its revocations', () => {
      const p = joiner.list().proposals.find((x) => x.proposalId === proposalId);
      return p?.phase === 'syncing_revocations' && refusals >= 2 ? p : undefined;
    }, { timeoutMs: 60_000, intervalMs: 20 });
    assert.equal(waiting.status, 'running');
    assert.match(waiting.failureReason ?? '', /need 2/);
    assert.ok(!stores.get(4)!.calls.includes('commit'), 'nothing committed before the sync');
    assert.deepEqual(stores.get(4)!.shares(), []);
    assert.ok(joiner.busy());
    // Members of the committee leaving commit as usual (they never call beforeJoining).
    await waitFor('node 1 done', () => (runners.get(1)!.list().proposals[0]?.status === 'done' ? true : undefined), { timeoutMs: 60_000, intervalMs: 20 });
    open = true;
    const done = await waitFor('node 4 done', () => {
      const p = joiner.list().proposals.find((x) => x.proposalId === proposalId);
      return p?.status === 'done' ? p : undefined;
    }, { timeoutMs: 60_000, intervalMs: 20 });
    assert.equal(done.failureReason, null);
    assert.equal(stores.get(4)!.served().handovers.length, 1);
    assert.equal(stores.get(4)!.shares().length, 1);
    assert.ok(asked.every((e) => e === 0));
    for (const r of runners.values()) r.stop();
  });

  it('refuses payloads of a proposal it has not approved (not_approved), and a non-refresh proposal frame', async () => {
    const { runners } = build([1, 2]);
    const r = runners.get(1)!;
    const payload = encodeCeremonyFrame({ type: 'payload', proposalId: randomBytes(32), payload: randomBytes(100) });
    const reply = decodeCeremonyReply(await r.answerFrame(identities[2]!.peerId, payload));
    assert.equal(!reply.ok && reply.code, 'not_approved');
    const frame = encodeCeremonyFrame({ type: 'refresh', proposalId: randomBytes(32), payload: new TextEncoder().encode(JSON.stringify(proposal())) });
    const refused = decodeCeremonyReply(await r.answerFrame(identities[2]!.peerId, frame));
    assert.equal(!refused.ok && refused.code, 'not_approved');
    assert.deepEqual(r.list().proposals, []);
    for (const x of runners.values()) x.stop();
  });

  it('approvals of one proposal that arrive together (a refresh frame from several members) start one ceremony', async () => {
    const { runners, stores, ceremonies } = build([0, 1, 2, 3]);
    const refresh = reshareProposalToJson({ from, to: { ...from, epoch: 1 }, keyIds: ['k1'] });
    const r = runners.get(1)!;
    const answers = await Promise.all([r.approve(refresh), r.approve(refresh), r.approve(refresh)]);
    assert.equal(new Set(answers.map((a) => a.proposalId)).size, 1);
    await waitFor('node 1 started its ceremony', () => (ceremonies.get(1) === 1 ? true : undefined), { timeoutMs: 10_000, intervalMs: 5 });
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(ceremonies.get(1), 1);
    assert.equal(stores.get(1)!.calls.filter((c) => c === 'approval:approved').length, 1);
    assert.equal(r.list().proposals.length, 1);
    for (const x of runners.values()) x.stop();
  });

  it('a refresh is announced to each member until it took it, and a member taking part answers the announcement again without parsing it', async () => {
    const announced = new Map<number, number>();
    // Member 3 is down: the others wait for its hello, so the ceremony runs through several retransmit rounds.
    const { runners } = build([0, 1, 2, 3], new Set([3]), undefined, (_from, to, frame) => {
      if (decodeCeremonyFrame(frame).type === 'refresh') announced.set(to, (announced.get(to) ?? 0) + 1);
    });
    const { proposalId } = await runners.get(1)!.refresh();
    // Three retransmit rounds (every half phase of 1000 ms; the fourth, a full one, would send it again).
    await new Promise((resolve) => setTimeout(resolve, 1_700));
    // Every member of a refresh announces it (one still committing its last epoch refused it the first time): once to each member up.
    assert.deepEqual([...announced.entries()].sort(), [[0, 2], [1, 2], [2, 2]], 'one announcement from each other member up');
    // Member 2 takes part: the proposer's announcement again is taken as is, even a mangled copy.
    const again = encodeCeremonyFrame({ type: 'refresh', proposalId: decodeHex(proposalId), payload: Uint8Array.of(0xff) });
    assert.deepEqual(decodeCeremonyReply(await runners.get(2)!.answerFrame(identities[1]!.peerId, again)), { ok: true });
    // The same bytes under an id nobody proposed are parsed, and refused.
    const unknown = encodeCeremonyFrame({ type: 'refresh', proposalId: randomBytes(32), payload: Uint8Array.of(0xff) });
    const refused = decodeCeremonyReply(await runners.get(2)!.answerFrame(identities[1]!.peerId, unknown));
    assert.equal(!refused.ok && refused.code, 'bad_request');
    for (const x of runners.values()) x.stop();
  });

  it('after the ceremony, a member re-sending a message already taken (it may have restarted) gets the certificate back', async () => {
    const frames: { from: number; to: number; frame: Uint8Array }[] = [];
    const { runners } = build([0, 1, 2, 3], new Set(), undefined, (from, to, frame) => frames.push({ from, to, frame }));
    const { proposalId } = await runners.get(1)!.refresh();
    await waitFor('every member committed the refresh', () => ([0, 1, 2, 3].every((n) => runners.get(n)!.list().proposals.some((p) => p.proposalId === proposalId && p.status === 'done')) ? true : undefined), { timeoutMs: 30_000, intervalMs: 10 });
    const kindOfFrame = (f: Uint8Array) => {
      const frame = decodeCeremonyFrame(f);
      return frame.type === 'refresh' ? 'refresh' : ceremonyMessageKind(frame.payload)?.kind;
    };
    // An echo goes to every member (a vote only to the proposal's author).
    const echo = frames.find((f) => f.from === 2 && f.to === 1 && kindOfFrame(f.frame) === 'echo')!;
    assert.ok(echo, 'member 2 sent member 1 its echo');
    const certificatesTo2 = () => frames.filter((f) => f.from === 1 && f.to === 2 && kindOfFrame(f.frame) === 'certificate').length;
    const before = certificatesTo2();
    assert.deepEqual(decodeCeremonyReply(await runners.get(1)!.answerFrame(identities[2]!.peerId, echo.frame)), { ok: true });
    await waitFor('member 1 answered the laggard', () => (certificatesTo2() > before ? true : undefined), { timeoutMs: 5_000, intervalMs: 5 });
    for (const x of runners.values()) x.stop();
  });

  it(`answers a peer's frames once queued, up to ${UNPROCESSED_PER_PEER} unprocessed; past that a reply waits for the engine`, async () => {
    // An engine whose every message asks for a vote on disk, and a disk that holds the first write: the chain stalls.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const received: number[] = [];
    const engine: ReshareCeremonyApi = {
      phase: 'dealing',
      failureReason: undefined,
      start: () => ({ outbound: [] }),
      receive: (payload) => {
        received.push(payload[0]!);
        return { persistVote: payload, outbound: [] };
      },
      tick: () => ({ outbound: [] }),
      nextDeadline: () => undefined,
      retransmit: () => [],
      isRepeat: () => false,
      lacksCertificate: () => false,
      outcome: () => undefined,
      disqualified: () => ({}),
    };
    const key = ceremonyIdentity(identities[1]!);
    const store = new MemoryEpochStore(from, [{ keyId: 'k1', share: shares.get(2)!, data: keyData }], key.publicKey);
    store.recordVote = async () => gate;
    const runner = new ReshareRunner({
      store,
      identity: key,
      seed: seeds[1]!,
      createCeremony: () => engine,
      transport: { send: async () => new Uint8Array() },
      log: createLogger('silent'),
      metrics: createNodeMetrics(),
      phaseMs: 1_000,
      fetchKeys: async () => [keyData],
      onCommitted: () => {},
    });
    const { proposalId } = await runner.approve(proposal());
    await waitFor('the ceremony started', () => (runner.list().proposals[0]?.phase === 'dealing' ? true : undefined), { timeoutMs: 10_000, intervalMs: 5 });
    const frame = (i: number) => encodeCeremonyFrame({ type: 'payload', proposalId: Uint8Array.from(Buffer.from(proposalId.slice(2), 'hex')), payload: Uint8Array.from([i]) });
    const peer = identities[2]!.peerId;
    for (let i = 1; i <= UNPROCESSED_PER_PEER; i++) assert.deepEqual(decodeCeremonyReply(await runner.answerFrame(peer, frame(i))), { ok: true });
    let late = false;
    const over = runner.answerFrame(peer, frame(UNPROCESSED_PER_PEER + 1)).then((r) => ((late = true), r));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(late, false, 'the frame past the bound is not answered while the engine is stalled');
    assert.deepEqual(received, [1], 'the chain is stalled on the first message');
    // Another peer has its own allowance.
    assert.deepEqual(decodeCeremonyReply(await runner.answerFrame(identities[3]!.peerId, frame(100))), { ok: true });
    release();
    assert.deepEqual(decodeCeremonyReply(await over), { ok: true });
    assert.deepEqual(received.slice(0, UNPROCESSED_PER_PEER + 1), Array.from({ length: UNPROCESSED_PER_PEER + 1 }, (_, i) => i + 1));
    runner.stop();
  });

  it('cancel is refused once this node voted', async () => {
    const { runners, stores } = build([0, 1, 2, 3, 4, 5]);
    let id = '';
    for (const r of runners.values()) id = (await r.approve(proposal())).proposalId;
    await waitFor('a vote on node 1', () => (stores.get(1)!.priorVote(id) !== undefined ? true : undefined), { timeoutMs: 60_000, intervalMs: 10 });
    await assert.rejects(runners.get(1)!.cancel(id), (e: unknown) => isTkmsError(e) && e.code === 'conflict');
    for (const r of runners.values()) r.stop();
  });

  it('a member restarted after it voted resumes the approved ceremony, re-sends its vote and never signs another', async () => {
    const down = new Set<number>();
    const { runners, stores, start } = build([0, 1, 2, 3, 4, 5], down);
    let id = '';
    for (const r of runners.values()) id = (await r.approve(proposal())).proposalId;
    const vote = await waitFor('a vote on node 2', () => stores.get(2)!.priorVote(id), { timeoutMs: 60_000, intervalMs: 5 });
    // The process stops: nothing in or out until it is back.
    down.add(2);
    runners.get(2)!.stop();
    await new Promise((r) => setTimeout(r, 300));
    down.delete(2);
    start(2).resume();
    for (const [node, r] of runners) {
      const p = await waitFor(`node ${node} done`, () => {
        const x = r.list().proposals.find((y) => y.proposalId === id);
        return x !== undefined && x.status !== 'running' && x.status !== 'approved' ? x : undefined;
      }, { timeoutMs: 60_000, intervalMs: 20 });
      assert.equal(p.status, 'done', `node ${node}: ${p.failureReason}`);
    }
    const store = stores.get(2)!;
    assert.deepEqual(store.priorVote(id), vote);
    assert.equal(store.calls.filter((c) => c === 'recordVote').length, 1, 'one vote, recorded once');
    assert.equal(store.served().committee.epoch, 1);
    assert.equal(store.shares().length, 1);
    for (const r of runners.values()) r.stop();
  });
});
