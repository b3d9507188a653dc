import assert from 'node:assert/strict';
import { join } from 'node:path';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { decodeHex, encodeHex, encodePoint, G, mod, randomBytes, randomScalar } from '../../core/index.ts';
import { confirmMessage, dkgResultDigest, DkgSession, parseDkgPublicResult, type DkgPublicResult } from '../../core/dkg/index.ts';
import { parseCommittee, type Committee } from '../../net/committee.ts';
import { createLogger } from '../../runtime/logger.ts';
import { pino } from 'pino';
import { KeyDirectory } from '../../gateway/keys.ts';
import type { NodePool } from '../../gateway/node-pool.ts';
import { SessionClaims } from '../../node/dkg-claims.ts';
import { DkgRunner, type DkgStatus } from '../../node/dkg-runner.ts';
import { decodeDkgFrame, decodeDkgReply, encodeDkgFrame } from '../../node/dkg-wire.ts';
import { DkgWithdrawals } from '../../node/dkg-withdrawals.ts';
import { dkgIdentity, type NodeIdentity } from '../../node/identity.ts';
import { Keystore } from '../../node/keystore.ts';
import { createNodeMetrics, type NodeMetrics } from '../../node/metrics.ts';
import { makeTempDir, removeDir, waitFor } from '../support/processes.ts';

/**
 * Review findings H2 (runner half), M1 and M2 against the node's DKG runner: real runners,
 * sessions, keystores and wire codec in one process, frames handed over in memory (the
 * network path of result frames is covered with real processes in dkg-result-forgery.test.ts).
 */
const N = 3;
const T = 2;

describe('DKG runner: conflicting results and session claims', function () {
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
          identity: dkgIdentity(identities[id - 1]!, committee),
          keystore,
          log: createLogger('silent'),
          metrics: metrics.get(id)!,
          phaseTimeoutMs: 400,
          faults: undefined,
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
    const signatures = Object.fromEntries(signers.map((id) => [String(id), encodeHex(dkgIdentity(identities[id - 1]!, committee).sign(message))]));
    return parseDkgPublicResult({ ...unsigned, signatures });
  }

  /** Dealer `dealer`'s signed round-1 package of a session for keyId (it runs nothing here: a rival's first move). */
  function rivalRound1(keyId: string, sessionId: Uint8Array, dealer: number): Uint8Array {
    const rival = new DkgSession({ keyId, committeeId: committee.committeeId, sessionId, t: T, memberIds: [1, 2, 3], selfId: dealer }, dkgIdentity(identities[dealer - 1]!, committee));
    return rival.start().find((m) => m.to === 'all')!.payload;
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
      // Both results carry t valid signatures: a proven split, so the receiver stops serving the key.
      assert.equal(runners.get(2)!.status('pingpong').errorCode, 'dkg_conflict');
      assert.deepEqual(runners.get(2)!.publishedKeys(), []);
    });
  });

  describe('attack: split one session\'s key between members by announcing a different result of it (H2, runner half)', () => {
    it('a holder withdraws the key, counts it, and still knows it after a restart', async () => {
      const path = join(dir!, `withdrawn-${encodeHex(randomBytes(4))}.json`);
      await build(new Map([[3, await DkgWithdrawals.open(path)]]));
      const sessionId = encodeHex(randomBytes(16));
      const held = makeResult('split-held', sessionId, [1, 3]);
      runners.get(3)!.addHeldKey(held);
      // An unsigned different result of the same session proves nothing: refused, key kept.
      const unsigned = makeResult('split-held', sessionId, [2]);
      let reply = decodeDkgReply(await runners.get(3)!.answerFrame(2, encodeDkgFrame({ type: 'result', keyId: 'split-held', sessionId: decodeHex(sessionId), result: unsigned })));
      assert.equal(reply.ok ? 'ok' : reply.code, 'dkg_conflict');
      assert.equal(runners.get(3)!.publishedKeys().length, 1);
      // t members signed a different result of the same session: the split is proven.
      const other = makeResult('split-held', sessionId, [1, 2]);
      reply = decodeDkgReply(await runners.get(3)!.answerFrame(2, encodeDkgFrame({ type: 'result', keyId: 'split-held', sessionId: decodeHex(sessionId), result: other })));
      assert.equal(reply.ok ? 'ok' : reply.code, 'dkg_conflict');
      assert.deepEqual(runners.get(3)!.publishedKeys(), []);
      assert.equal(await conflicts(3, 'withdrawn'), 1);
      assert.ok((await conflicts(3, 'same_session')) >= 2);
      await waitFor('the withdrawal on disk', async () => ((await DkgWithdrawals.open(path)).get('split-held') !== undefined ? true : undefined), { timeoutMs: 5_000, intervalMs: 50 });
      // A restarted node (fresh runner, same file) does not serve it again.
      await build(new Map([[3, await DkgWithdrawals.open(path)]]));
      runners.get(3)!.addHeldKey(held);
      assert.equal(runners.get(3)!.isWithdrawn('split-held'), true);
      assert.deepEqual(runners.get(3)!.publishedKeys(), []);
    });

    it('a member finishing the DKG does not store it when another member announces a different valid result of the session', async () => {
      await build();
      let injected = false;
      beforeDeliver = async (_from, _to, frame) => {
        if (injected) return;
        const decoded = decodeDkgFrame(frame);
        if (decoded.type !== 'result' || decoded.keyId !== 'split-pending') return;
        injected = true;
        const forged = makeResult('split-pending', encodeHex(decoded.sessionId), [1, 2]);
        await runners.get(3)!.answerFrame(2, encodeDkgFrame({ type: 'result', keyId: 'split-pending', sessionId: decoded.sessionId, result: forged }));
      };
      runners.get(1)!.propose('split-pending');
      const s = await outcome(3, 'split-pending');
      assert.ok(injected);
      assert.equal(s.status, 'aborted', JSON.stringify(s));
      assert.equal(s.errorCode, 'dkg_conflict');
      assert.equal(keystores.get(3)!.list().includes('split-pending'), false);
      assert.ok((await conflicts(3, 'same_session')) + (await conflicts(3, 'refused_store')) >= 1);
    });
  });

  describe('attack: block a key id with an unauthenticated payload frame (M2)', () => {
    it('junk payload frames of an invented session record no claim: the DKG for that key id is stored', async () => {
      await build();
      for (const to of [1, 2, 3]) {
        const reply = decodeDkgReply(await runners.get(to)!.answerFrame(2, encodeDkgFrame({ type: 'payload', keyId: 'blocked', sessionId: randomBytes(16), payload: randomBytes(200) })));
        assert.equal(reply.ok, true, 'buffered as an early message');
      }
      runners.get(1)!.propose('blocked');
      for (const id of [1, 2, 3]) {
        const s = await outcome(id, 'blocked');
        assert.equal(s.status, 'done', `node ${id}: ${s.abortReason}`);
      }
    });

    it('round-1 packages signed by t dealers of another session are evidence: nothing is stored', async () => {
      await build();
      const sessionId = randomBytes(16);
      for (const dealer of [1, 2]) {
        await runners.get(3)!.answerFrame(dealer, encodeDkgFrame({ type: 'payload', keyId: 'raced', sessionId, payload: rivalRound1('raced', sessionId, dealer) }));
      }
      runners.get(1)!.propose('raced');
      const s = await outcome(3, 'raced');
      assert.equal(s.status, 'aborted');
      assert.equal(s.errorCode, 'dkg_conflict');
      assert.match(s.abortReason ?? '', /another DKG session/);
    });

    it('the claim store bound: one member pushing past its cap evicts only its own sightings', () => {
      const claims = new SessionClaims(T, 60_000, 8);
      claims.noteRound1('victim', 'aa', 1);
      claims.noteRound1('victim', 'aa', 3);
      claims.noteResult('victim', 'bb', 3);
      for (let i = 0; i < 100; i++) claims.noteResult(`flood-${i}`, 'cc', 2);
      assert.equal(claims.size, 3 + 8);
      assert.deepEqual(claims.others('victim', 'zz').sort(), ['aa', 'bb']);
      assert.deepEqual(claims.others('flood-99', 'zz'), ['cc']);
      assert.deepEqual(claims.others('flood-0', 'zz'), [], 'the flooder\'s oldest claim is the one forgotten');
      // Fewer than t dealers' packages are no evidence, however often they are shown.
      claims.noteRound1('lone', 'dd', 1);
      claims.noteRound1('lone', 'dd', 1);
      assert.deepEqual(claims.others('lone', 'zz'), []);
      claims.noteRound1('lone', 'dd', 3);
      assert.deepEqual(claims.others('lone', 'zz'), ['dd']);
    });
  });

  describe('attack: block a key id by proposing random sessions for it, with the proposer\'s own signed round-1 package, during an honest DKG (C-MED-5)', () => {
    it('the refused proposals and lone packages record no claim: every member stores the honest DKG', async () => {
      await build();
      let refused = 0;
      let attacked = false;
      // Member 2 attacks everyone once the honest DKG is announcing its result (all sessions running or finishing).
      beforeDeliver = async (_from, _to, frame) => {
        if (attacked) return;
        const decoded = decodeDkgFrame(frame);
        if (decoded.type !== 'result' || decoded.keyId !== 'contested') return;
        attacked = true;
        for (let i = 0; i < 5; i++) {
          const sessionId = randomBytes(16);
          for (const to of [1, 3]) {
            const reply = decodeDkgReply(await runners.get(to)!.answerFrame(2, encodeDkgFrame({ type: 'proposal', keyId: 'contested', sessionId, t: T, committeeId: committee.committeeId, proposer: 2 })));
            if (!reply.ok && reply.code === 'conflict') refused++;
            await runners.get(to)!.answerFrame(2, encodeDkgFrame({ type: 'payload', keyId: 'contested', sessionId, payload: rivalRound1('contested', sessionId, 2) }));
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
