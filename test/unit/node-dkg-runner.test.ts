import assert from 'node:assert/strict';
import { join } from 'node:path';
import fc from 'fast-check';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { decodePoint, encodeHex, G, interpolateSecret, randomBytes } from '../../core/index.ts';
import { DkgCeremony, type DkgCeremonyFaults } from '../../core/ceremony/index.ts';
import { parseCommittee, type Committee } from '../../net/committee.ts';
import { DkgRunner, MAX_RUNNING_SESSIONS, type DkgStatus } from '../../node/dkg-runner.ts';
import { DkgStateFiles } from '../../node/dkg-state.ts';
import { decodeDkgFrame, encodeDkgFrame, type DkgProposal } from '../../node/dkg-wire.ts';
import { ceremonyMessageKind } from '../../core/ceremony/codec.ts';
import { decodeCeremonyReply } from '../../node/reshare-wire.ts';
import { INBOX_LIMITS } from '../../node/reshare-inbox.ts';
import { ceremonyIdentity } from '../../node/ceremony-identity.ts';
import { testSeed } from '../support/test-seed.ts';
import type { NodeIdentity } from '../../node/identity.ts';
import { Keystore } from '../../node/keystore.ts';
import { createLogger } from '../../runtime/logger.ts';
import { createNodeMetrics } from '../../node/metrics.ts';
import { makeTempDir, removeDir, waitFor } from '../support/processes.ts';
import { parseConfig } from '../../node/config.ts';

/**
 * DkgRunners wired together in one process: the real engine (DkgCeremony), keystore, vote store and
 * wire codec, with frames handed over in memory instead of libp2p streams (those are the integration
 * tests'). `down` members drop everything, like a stopped process.
 */
describe('node DKG runner (in-process committee, real engine)', function () {
  this.timeout(60_000);
  const N = 4;
  const T = 3;
  let dir: string | undefined;
  let committee: Committee;
  let identities: NodeIdentity[];
  let runners: Map<number, DkgRunner>;
  let keystores: Map<number, Keystore>;
  let states: Map<number, DkgStateFiles>;
  const down = new Set<number>();
  /** Called with every frame a member sends, after it was answered (a test stops a member there). */
  let afterSend: ((from: number, frame: Uint8Array) => void) | undefined;

  function runnerFor(id: number, opts: { faults?: DkgCeremonyFaults; phaseMs: number; state: DkgStateFiles }): DkgRunner {
    return new DkgRunner({
      committee,
      selfId: id,
      identity: ceremonyIdentity(identities[id - 1]!),
      seed: testSeed(identities[id - 1]!),
      createCeremony: (params, identity, options) => new DkgCeremony(params, identity, options),
      keystore: keystores.get(id)!,
      state: opts.state,
      log: createLogger('silent'),
      metrics: createNodeMetrics(),
      phaseMs: opts.phaseMs,
      ...(opts.faults === undefined ? {} : { faults: opts.faults }),
      transport: {
        send: async (to, frame) => {
          if (down.has(to) || down.has(id)) throw new Error('unreachable');
          await new Promise((r) => setImmediate(r));
          const answer = await runners.get(to)!.answerFrame(id, frame);
          afterSend?.(id, frame);
          return answer;
        },
      },
    });
  }

  async function build(opts: { faults?: Record<number, DkgCeremonyFaults>; phaseMs?: number } = {}): Promise<void> {
    runners = new Map();
    keystores = new Map();
    states = new Map();
    for (let id = 1; id <= N; id++) {
      keystores.set(id, await Keystore.open(join(dir!, `ks-${id}-${Math.random().toString(36).slice(2)}`), 'pw'));
      states.set(id, DkgStateFiles.inMemory());
      runners.set(id, runnerFor(id, { phaseMs: opts.phaseMs ?? 400, state: states.get(id)!, ...(opts.faults?.[id] === undefined ? {} : { faults: opts.faults[id] }) }));
    }
  }

  async function outcome(id: number, keyId: string, timeoutMs = 30_000): Promise<DkgStatus> {
    return waitFor(`node ${id} outcome`, () => {
      const s = runners.get(id)!.status(keyId);
      return s.status === 'running' ? undefined : s;
    }, { timeoutMs, intervalMs: 20 });
  }

  const reply = async (to: number, from: number, frame: Uint8Array) => {
    const r = decodeCeremonyReply(await runners.get(to)!.answerFrame(from, frame));
    return r.ok ? 'ok' : r.code;
  };
  const proposalOf = (keyId: string, proposer: number): DkgProposal => ({ type: 'proposal', keyId, sessionId: randomBytes(16), committeeId: 'runner-test', epoch: 0, t: T, proposer });

  before(async () => {
    dir = await makeTempDir('tkms-runner');
    identities = [];
    for (let i = 0; i < N; i++) {
      const privateKey = await generateKeyPair('Ed25519');
      identities.push({ privateKey, peerId: peerIdFromPrivateKey(privateKey).toString() });
    }
    committee = parseCommittee({
      committeeId: 'runner-test',
      t: T,
      members: identities.map((x, i) => ({ id: i + 1, peerId: x.peerId, multiaddrs: [`/ip4/127.0.0.1/tcp/${10_000 + i}`] })),
    });
  });

  afterEach(() => {
    down.clear();
    afterSend = undefined;
    for (const r of runners?.values() ?? []) r.stop();
  });

  after(async () => {
    await removeDir(dir);
  });

  it('runs a DKG and stores shares that interpolate to the group key; each member voted once for it', async () => {
    await build();
    runners.get(2)!.propose('k1');
    const statuses = await Promise.all([1, 2, 3, 4].map((id) => outcome(id, 'k1')));
    for (const s of statuses) {
      assert.equal(s.status, 'done', s.abortReason);
      assert.equal(s.share, true);
      assert.equal(s.result!.groupPublicKey, statuses[0]!.result!.groupPublicKey);
      assert.ok(Object.keys(s.result!.signatures).length >= T);
    }
    for (const id of [1, 2, 3, 4]) assert.equal(states.get(id)!.vote('k1')?.sessionId, statuses[0]!.sessionId, `node ${id} voted in the session`);
    const shares = await Promise.all([1, 3, 4].map(async (id) => ({ id, value: (await keystores.get(id)!.load('k1')).share })));
    assert.ok(G.multiply(interpolateSecret(shares)).equals(decodePoint(statuses[0]!.result!.groupPublicKey)));
    assert.throws(() => runners.get(1)!.propose('k1'), /already exists/);
    assert.equal(await reply(1, 3, encodeDkgFrame(proposalOf('k1', 3))), 'conflict');
  });

  it('answers every frame with a reply frame, refusing bad ones with a typed reason', async () => {
    await build();
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), async (bytes) => {
        assert.notEqual(await reply(1, 2, bytes), 'ok');
      }),
      { numRuns: 200 },
    );
    const proposal = proposalOf('k2', 3);
    assert.equal(await reply(1, 2, encodeDkgFrame(proposal)), 'unauthorized');
    assert.equal(await reply(1, 3, encodeDkgFrame({ ...proposal, t: 2 })), 'bad_request');
    assert.equal(await reply(1, 3, encodeDkgFrame({ ...proposal, committeeId: 'other' })), 'bad_request');
    assert.equal(await reply(1, 3, encodeDkgFrame({ ...proposal, epoch: 1 })), 'bad_request');
    assert.equal(await reply(1, 3, encodeDkgFrame(proposal)), 'ok');
    // A retried delivery (or the proposer's retransmit) of the same proposal is taken again; another session is refused.
    assert.equal(await reply(1, 3, encodeDkgFrame(proposal)), 'ok');
    assert.equal(await reply(1, 4, encodeDkgFrame({ ...proposalOf('k2', 4) })), 'conflict');
  });

  it('goes on without a member that is down; the member that missed the hello comes back and stores the public result alone', async () => {
    await build({ phaseMs: 300 });
    down.add(4);
    runners.get(1)!.propose('k3');
    const statuses = await Promise.all([1, 2, 3].map((id) => outcome(id, 'k3')));
    for (const s of statuses) {
      assert.equal(s.status, 'done', s.abortReason);
      assert.deepEqual(s.result!.qualified, [1, 2, 3]);
      assert.equal(s.share, true);
    }
    // Back up: the proposer's retransmitted proposal starts the session there, and the certificate finishes it.
    down.delete(4);
    const late = await outcome(4, 'k3');
    assert.equal(late.status, 'done', late.abortReason);
    assert.equal(late.share, false);
    assert.equal(late.result!.groupPublicKey, statuses[0]!.result!.groupPublicKey);
    assert.equal(runners.get(4)!.holdsShare('k3'), false);
    assert.deepEqual(runners.get(4)!.publishedKeys().map((k) => k.keyId), ['k3']);
    assert.deepEqual(keystores.get(4)!.list(), []);
    assert.deepEqual(states.get(4)!.publicOnlyResults().map((r) => r.keyId), ['k3']);
    // A second DKG for it is refused there too.
    assert.throws(() => runners.get(4)!.propose('k3'), /already exists/);
  });

  it('the proposal\'s author goes down once its proposal is out: the votes sent to it alone go to everyone, and the others finish', async () => {
    await build({ phaseMs: 400 });
    // Member 1 proposes attempt 0 (the lowest id) and gathers its votes; it stops once a member took its proposal.
    afterSend = (from, frame) => {
      const f = decodeDkgFrame(frame);
      if (from === 1 && f.type === 'payload' && ceremonyMessageKind(f.payload)?.kind === 'proposal') down.add(1);
    };
    runners.get(2)!.propose('k-author-down');
    const statuses = await Promise.all([2, 3, 4].map((id) => outcome(id, 'k-author-down')));
    assert.ok(down.has(1), 'the author went down after its proposal');
    for (const s of statuses) {
      assert.equal(s.status, 'done', s.abortReason);
      assert.equal(s.share, true);
      assert.equal(s.result!.groupPublicKey, statuses[0]!.result!.groupPublicKey);
    }
  });

  it('without a vote quorum the DKG fails with a clear reason; a key id nobody voted for is free again', async () => {
    await build({ phaseMs: 100 });
    down.add(3);
    down.add(4);
    const started = runners.get(1)!.propose('k4');
    assert.equal(started.status, 'running');
    const s = await outcome(1, 'k4');
    assert.equal(s.status, 'aborted');
    assert.match(s.abortReason ?? '', /no certificate/);
    assert.equal(states.get(1)!.vote('k4'), undefined);
    down.clear();
    assert.equal(runners.get(1)!.propose('k4').status, 'running');
  });

  it('a member that voted in one session of a key id takes part in no other session for it', async () => {
    await build();
    const voted = proposalOf('k5', 2);
    await states.get(1)!.recordVote('k5', encodeHex(voted.sessionId), Uint8Array.of(1, 2, 3));
    const other = await decodeCeremonyReply(await runners.get(1)!.answerFrame(3, encodeDkgFrame(proposalOf('k5', 3))));
    assert.equal(other.ok ? 'ok' : other.code, 'conflict');
    assert.match(other.ok ? '' : other.message, /voted in DKG session/);
    assert.throws(() => runners.get(1)!.propose('k5'), /voted in DKG session/);
    await assert.rejects(states.get(1)!.recordVote('k5', encodeHex(randomBytes(16)), Uint8Array.of(9)), /already voted/);
  });

  it(`bounds: at most MAX_RUNNING_SESSIONS (${MAX_RUNNING_SESSIONS}) DKGs at once; early messages per member as the inbox allows`, async () => {
    await build({ phaseMs: 10_000 });
    for (const id of [2, 3, 4]) down.add(id);
    for (let i = 0; i < MAX_RUNNING_SESSIONS; i++) runners.get(1)!.propose(`run-${i}`);
    assert.throws(() => runners.get(1)!.propose('one-too-many'), (e: unknown) => (e as { code?: string }).code === 'unavailable');
    assert.equal(await reply(1, 2, encodeDkgFrame(proposalOf('one-too-many', 2))), 'unavailable');
    // Payloads of a session not running here are held, up to the inbox's bound per member, then
    // dropped. Either way the reply is `unavailable` (not an acknowledgement: the sender sends it
    // again should the hold run out before a session takes it); its message says which.
    const sessionId = randomBytes(16);
    const answer = async (from: number, frame: Uint8Array) => {
      const r = decodeCeremonyReply(await runners.get(1)!.answerFrame(from, frame));
      assert.equal(!r.ok && r.code, 'unavailable');
      return !r.ok && /the message is held/.test(r.message) ? 'held' : 'dropped';
    };
    // Distinct payloads: the inbox keeps one copy of a payload sent again (retransmits), so a repeat costs nothing.
    const early = (i: number) => encodeDkgFrame({ type: 'payload', keyId: 'early', sessionId, payload: Uint8Array.of(i >> 8, i & 0xff) });
    for (let i = 0; i < INBOX_LIMITS.perPeerPayloads; i++) assert.equal(await answer(2, early(i)), 'held');
    assert.equal(await answer(2, early(0)), 'held', 'a repeat is held once, not counted again');
    assert.equal(await answer(2, early(INBOX_LIMITS.perPeerPayloads)), 'dropped');
    // Another member's quota is its own.
    assert.equal(await answer(3, encodeDkgFrame({ type: 'payload', keyId: 'early', sessionId, payload: Uint8Array.of(0) })), 'held');
  });

  it('state files: one vote per key id survives a reopen; a second vote is refused', async () => {
    const stateDir = join(dir!, `state-${Math.random().toString(36).slice(2)}`);
    const a = await DkgStateFiles.open(stateDir);
    const sid = encodeHex(randomBytes(16));
    await a.recordVote('kv', sid, Uint8Array.of(7, 7));
    await a.recordVote('kv', sid, Uint8Array.of(7, 7));
    await assert.rejects(a.recordVote('kv', sid, Uint8Array.of(8)), /already voted/);
    const b = await DkgStateFiles.open(stateDir);
    assert.deepEqual(b.vote('kv'), { sessionId: sid, vote: Uint8Array.of(7, 7) });
    await assert.rejects(b.recordVote('kv', encodeHex(randomBytes(16)), Uint8Array.of(7, 7)), /already voted/);
  });

  it('config: testFaults names the DKG engine\'s faults (only with test faults enabled); the old session\'s are refused', () => {
    const node = { listen: '/ip4/127.0.0.1/tcp/9000', http: '127.0.0.1:9100', admin: '127.0.0.1:9200', identityFile: 'id.json', keystoreDir: 'ks', committeeFile: 'c.json' };
    const env = { TKMS_ENABLE_TEST_FAULTS: '1' };
    const faults = { badSubShareTo: [2], falseComplaintAgainst: [3], equivocateDealing: true, equivocateProposal: false, badProofOfKnowledge: true, silent: false };
    assert.deepEqual(parseConfig({ ...node, testFaults: { ...faults, partial: 'late' } }, { baseDir: '/tmp', env }).testFaults, faults);
    for (const [old, pattern] of [[{ badShareTo: [2] }, /unknown field "badShareTo"/], [{ equivocateRound1: [1] }, /unknown field "equivocateRound1"/], [{ badSubShareTo: [0] }, /badSubShareTo must be/], [{ badProofOfKnowledge: 'yes' }, /badProofOfKnowledge must be true or false/]] as const) {
      assert.throws(() => parseConfig({ ...node, testFaults: old }, { baseDir: '/tmp', env }), (e: unknown) => (e as { code?: string }).code === 'bad_request' && pattern.test(JSON.stringify((e as { details?: unknown }).details) + (e as Error).message), JSON.stringify(old));
    }
  });
});
