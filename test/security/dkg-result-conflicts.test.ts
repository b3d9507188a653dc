import assert from 'node:assert/strict';
import { join } from 'node:path';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { decodeHex, encodeHex, encodePoint, G, mod, randomBytes, randomScalar } from '../../core/index.ts';
import { confirmMessage, dkgResultDigest, parseDkgPublicResult, type DkgPublicResult } from '../../core/dkg/index.ts';
import { DkgCeremony } from '../../core/ceremony/index.ts';
import { parseCommittee, type Committee } from '../../net/committee.ts';
import { createLogger } from '../../runtime/logger.ts';
import { pino } from 'pino';
import { KeyDirectory } from '../../gateway/keys.ts';
import type { NodePool } from '../../gateway/node-pool.ts';
import { writeFile } from 'node:fs/promises';
import { DkgRunner, type DkgStatus } from '../../node/dkg-runner.ts';
import { decodeDkgFrame, encodeDkgFrame } from '../../node/dkg-wire.ts';
import { decodeCeremonyReply as decodeDkgReply } from '../../node/reshare-wire.ts';
import { DkgWithdrawals } from '../../node/dkg-withdrawals.ts';
import { ceremonyIdentity } from '../../node/ceremony-identity.ts';
import { testSeed } from '../support/test-seed.ts';
import type { NodeIdentity } from '../../node/identity.ts';
import { Keystore } from '../../node/keystore.ts';
import { createNodeMetrics, type NodeMetrics } from '../../node/metrics.ts';
import { makeTempDir, removeDir, waitFor } from '../support/processes.ts';

/**
 * Review findings H2 (runner half), M1 and M2 against the node's DKG runner: real runners,
 * engines, keystores and wire codec in one process, frames handed over in memory (the network
 * path of result frames is covered with real processes in dkg-result-forgery.test.ts). Since the
 * DKG ends with a certificate (a vote quorum, one vote per member and key id), a second valid result
 * for a held key is never certified: it is refused and withdraws nothing. The scenarios that
 * attacked session claims (round-1 packages as evidence, the claim store's bound) went with the
 * claims: test/integration/dkg-scenarios.md.
 */
const N = 3;
const T = 2;

describe('DKG runner: conflicting results', function () {
  this.timeout(60_000);
  let dir: string | undefined;
  let committee: Committee;
  let identities: NodeIdentity[];
  let runners: Map<number, DkgRunner>;
  let keystores: Map<number, Keystore>;
  let metrics: Map<number, NodeMetrics>;
  let framesSent = 0;
  /** Runs before a frame is handed over (a hook for the attacker). */
  let beforeDeliver: (from: number, to: number, frame: Uint8Array) => Promise<void> = async () => undefined;

  async function build(withdrawals: Map<number, DkgWithdrawals> = new Map()): Promise<void> {
    release();
    runners = new Map();
    keystores = new Map();
    metrics = new Map();
    framesSent = 0;
    beforeDeliver = async () => undefined;
    for (let id = 1; id <= N; id++) {
      const keystore = await Keystore.open(join(dir!, `ks-${id}-${encodeHex(randomBytes(4))}`), 'pw');
      keystores.set(id, keystore);
      metrics.set(id, createNodeMetrics());
      runners.set(
        id,
        new DkgRunner({
          committee,
          selfId: id,
          identity: ceremonyIdentity(identities[id - 1]!),
          seed: testSeed(identities[id - 1]!),
          createCeremony: (params, identity, options) => new DkgCeremony(params, identity, options),
          keystore,
          log: createLogger('silent'),
          metrics: metrics.get(id)!,
          phaseMs: 400,
          ...(withdrawals.has(id) ? { withdrawals: withdrawals.get(id)! } : {}),
          transport: {
            send: async (to, frame) => {
              framesSent++;
              await beforeDeliver(id, to, frame);
              await new Promise((r) => setImmediate(r));
              return runners.get(to)!.answerFrame(id, frame);
            },
          },
        }),
      );
    }
  }

  /** A result of the committee for (keyId, sessionId) with a fresh random key, signed by `signers`. */
  function makeResult(keyId: string, sessionId: string, signers: number[]): DkgPublicResult {
    const coefficients = Array.from({ length: T }, () => randomScalar());
    const at = (i: number): bigint => coefficients.reduceRight((acc, c) => mod(acc * BigInt(i) + c), 0n);
    const verificationShares = Object.fromEntries(committee.members.map((m) => [String(m.id), encodeHex(encodePoint(G.multiply(at(m.id))))]));
    const unsigned = {
      keyId,
      committeeId: committee.committeeId,
      sessionId,
      t: T,
      n: N,
      groupPublicKey: encodeHex(encodePoint(G.multiply(coefficients[0]!))),
      verificationShares,
      qualified: committee.members.map((m) => m.id),
      transcriptHash: encodeHex(randomBytes(32)),
    };
    const memberKeys = new Map(committee.members.map((m) => [m.id, m.publicKey]));
    const message = confirmMessage(dkgResultDigest(unsigned, memberKeys));
    const signatures = Object.fromEntries(signers.map((id) => [String(id), encodeHex(ceremonyIdentity(identities[id - 1]!).sign(message))]));
    return parseDkgPublicResult({ ...unsigned, signatures });
  }

  async function conflicts(id: number, kind: string): Promise<number> {
    return (await metrics.get(id)!.dkgConflicts.get()).values.find((v) => v.labels.kind === kind)?.value ?? 0;
  }

  async function outcome(id: number, keyId: string): Promise<DkgStatus> {
    return waitFor(`node ${id} outcome`, () => {
      const s = runners.get(id)!.status(keyId);
      return s.status === 'running' ? undefined : s;
    }, { timeoutMs: 30_000, intervalMs: 20 });
  }

  before(async () => {
    dir = await makeTempDir('tkms-dkg-conflicts');
    identities = [];
    for (let i = 0; i < N; i++) {
      const privateKey = await generateKeyPair('Ed25519');
      identities.push({ privateKey, peerId: peerIdFromPrivateKey(privateKey).toString() });
    }
    committee = parseCommittee({
      committeeId: 'conflicts-test',
      t: T,
      members: identities.map((x, i) => ({ id: i + 1, peerId: x.peerId, multiaddrs: [`/ip4/127.0.0.1/tcp/${11_000 + i}`] })),
    });
  });

  function release(): void {
    for (const r of runners?.values() ?? []) r.stop();
    for (const k of keystores?.values() ?? []) k.close();
    runners = new Map();
    keystores = new Map();
  }

  afterEach(release);

  after(async () => {
    await removeDir(dir);
  });

  describe('attack: two members holding different results of one session exchange them forever (M1)', () => {
    it('one exchange, answered dkg_conflict: no frames sent back', async () => {
      await build();
      const sessionId = encodeHex(randomBytes(16));
      runners.get(1)!.addHeldKey(makeResult('pingpong', sessionId, [1, 2]));
      runners.get(2)!.addHeldKey(makeResult('pingpong', sessionId, [2, 3]));
      runners.get(1)!.exchangeResults(2);
      await new Promise((r) => setTimeout(r, 1_500));
      assert.equal(framesSent, 1, 'frames exchanged');
      // Refused and counted; the held key is kept (a result that is not its own is not certified).
      assert.equal(await conflicts(2, 'same_session'), 1);
      assert.deepEqual(runners.get(2)!.publishedKeys().map((k) => k.keyId), ['pingpong']);
    });
  });

  describe('attack: split one session\'s key between members by announcing a different result of it (H2, runner half)', () => {
    it('a holder refuses a different result of its key\'s session, signed or not, and keeps serving the key', async () => {
      await build();
      const sessionId = encodeHex(randomBytes(16));
      runners.get(3)!.addHeldKey(makeResult('split-held', sessionId, [1, 3]));
      for (const signers of [[2], [1, 2]]) {
        const other = makeResult('split-held', sessionId, signers);
        const reply = decodeDkgReply(await runners.get(3)!.answerFrame(2, encodeDkgFrame({ type: 'result', keyId: 'split-held', sessionId: decodeHex(sessionId), result: other })));
        assert.equal(reply.ok ? 'ok' : reply.code, 'dkg_conflict');
      }
      assert.equal(await conflicts(3, 'same_session'), 2);
      assert.deepEqual(runners.get(3)!.publishedKeys().map((k) => k.keyId), ['split-held']);
      assert.equal(runners.get(3)!.status('split-held').errorCode, undefined);
    });

    it('a key withdrawn by an earlier version (dkg-withdrawn.json) stays unserved after the upgrade', async () => {
      const path = join(dir!, `withdrawn-${encodeHex(randomBytes(4))}.json`);
      await writeFile(path, JSON.stringify({ 'split-old': 'member 2 holds a different valid result of the same session: the DKG split' }));
      const withdrawals = await DkgWithdrawals.open(path);
      await build(new Map([[3, withdrawals]]));
      runners.get(3)!.addHeldKey(makeResult('split-old', encodeHex(randomBytes(16)), [1, 3]));
      assert.equal(runners.get(3)!.isWithdrawn('split-old'), true);
      assert.deepEqual(runners.get(3)!.publishedKeys(), []);
      const status = runners.get(3)!.status('split-old');
      assert.equal(status.errorCode, 'dkg_conflict');
      assert.match(status.abortReason ?? '', /split/);
      // No file: nothing withdrawn.
      assert.equal((await DkgWithdrawals.open(join(dir!, 'absent.json'))).all().size, 0);
    });

    it('a forged result of a session still running changes nothing: every member stores the certified one', async () => {
      await build();
      let injected = false;
      beforeDeliver = async (_from, _to, frame) => {
        if (injected) return;
        const decoded = decodeDkgFrame(frame);
        if (decoded.type !== 'payload' || decoded.keyId !== 'split-pending') return;
        injected = true;
        const forged = makeResult('split-pending', encodeHex(decoded.sessionId), [1, 2]);
        for (const to of [1, 2, 3]) await runners.get(to)!.answerFrame(2, encodeDkgFrame({ type: 'result', keyId: 'split-pending', sessionId: decoded.sessionId, result: forged }));
      };
      runners.get(1)!.propose('split-pending');
      const outcomes = await Promise.all([1, 2, 3].map((id) => outcome(id, 'split-pending')));
      assert.ok(injected);
      for (const s of outcomes) assert.equal(s.status, 'done', s.abortReason);
      assert.equal(new Set(outcomes.map((s) => s.result!.groupPublicKey)).size, 1);
    });
  });

  describe('attack: block a key id with an unauthenticated payload frame (M2)', () => {
    it('junk payload frames of an invented session record no claim: the DKG for that key id is stored', async () => {
      await build();
      for (const to of [1, 2, 3]) {
        const reply = decodeDkgReply(await runners.get(to)!.answerFrame(2, encodeDkgFrame({ type: 'payload', keyId: 'blocked', sessionId: randomBytes(16), payload: randomBytes(200) })));
        // Held as an early message, and answered `unavailable` (not taken: held is not acknowledged).
        assert.ok(!reply.ok && reply.code === 'unavailable' && /the message is held/.test(reply.message), 'buffered as an early message');
      }
      runners.get(1)!.propose('blocked');
      for (const id of [1, 2, 3]) {
        const s = await outcome(id, 'blocked');
        assert.equal(s.status, 'done', `node ${id}: ${s.abortReason}`);
      }
    });
  });

  describe('attack: block a key id by proposing random sessions for it, each with a message, during an honest DKG (C-MED-5)', () => {
    it('the rival proposals are refused: every member stores the honest DKG', async () => {
      await build();
      let refused = 0;
      let attacked = false;
      // Member 2 attacks everyone once the honest DKG runs everywhere (its messages are on their way).
      beforeDeliver = async (_from, _to, frame) => {
        if (attacked) return;
        const decoded = decodeDkgFrame(frame);
        if (decoded.type !== 'payload' || decoded.keyId !== 'contested' || [1, 2, 3].some((id) => runners.get(id)!.heldKeys().length > 0)) return;
        try {
          for (const id of [1, 2, 3]) if (runners.get(id)!.status('contested').status !== 'running') return;
        } catch {
          return;
        }
        attacked = true;
        for (let i = 0; i < 5; i++) {
          const sessionId = randomBytes(16);
          for (const to of [1, 3]) {
            const reply = decodeDkgReply(await runners.get(to)!.answerFrame(2, encodeDkgFrame({ type: 'proposal', keyId: 'contested', sessionId, committeeId: committee.committeeId, epoch: 0, t: T, proposer: 2 })));
            if (!reply.ok && reply.code === 'conflict') refused++;
            await runners.get(to)!.answerFrame(2, encodeDkgFrame({ type: 'payload', keyId: 'contested', sessionId, payload: randomBytes(200) }));
          }
        }
      };
      runners.get(1)!.propose('contested');
      for (const id of [1, 2, 3]) {
        const s = await outcome(id, 'contested');
        assert.equal(s.status, 'done', `node ${id}: ${s.abortReason}`);
      }
      assert.ok(attacked);
      assert.equal(refused, 10, 'every rival proposal came while the honest DKG ran, and was refused');
    });
  });

  describe('attack: get the gateway to publish a key that fewer than t members hold, or to drop one it published', () => {
    it('publishes only what t members report identically; keeps a published key against another session; withdraws it on a split of its session', async () => {
      let answers: Map<number, DkgPublicResult[]> = new Map();
      const pool = { committee, retarget: () => {}, fetchKeys: async () => [...answers].map(([memberId, keys]) => ({ memberId, keys })) } as unknown as NodePool;
      const counted: string[] = [];
      const directory = new KeyDirectory(committee, pool, pino({ level: 'silent' }), { inc: (l: { reason: string }) => counted.push(l.reason) } as never);
      const sessionId = encodeHex(randomBytes(16));
      const genuine = makeResult('gw', sessionId, [1, 2, 3]);
      answers = new Map([[1, [genuine]]]);
      await directory.refresh(true);
      assert.equal(directory.list().length, 0, 'one member is not t');
      const rival = makeResult('gw', encodeHex(randomBytes(16)), [1, 2]);
      answers = new Map([[1, [genuine]], [2, [genuine]], [3, [rival]]]);
      await directory.refresh(true);
      assert.equal(directory.list()[0]?.result.groupPublicKey, genuine.groupPublicKey, 't members hold the genuine result; one reports another session');
      assert.ok(counted.includes('other_session'));
      // Once published, a valid result of another session reported by every member does not withdraw it.
      answers = new Map([[1, [rival]], [2, [rival]], [3, [genuine]]]);
      await directory.refresh(true);
      assert.equal((await directory.get('gw')).result.groupPublicKey, genuine.groupPublicKey);
      // A different valid result of the published session: a proven split, withdrawn for good.
      answers = new Map([[1, [makeResult('gw', sessionId, [1, 2])]], [2, [genuine]], [3, [genuine]]]);
      await directory.refresh(true);
      await assert.rejects(directory.get('gw'), /different DKG results/);
      assert.ok(counted.includes('conflict'));
    });
  });
});
