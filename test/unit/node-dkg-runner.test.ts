import assert from 'node:assert/strict';
import { join } from 'node:path';
import fc from 'fast-check';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { decodePoint, G, interpolateSecret, randomBytes } from '../../core/index.ts';
import type { DkgFaults } from '../../core/dkg/index.ts';
import { parseCommittee, type Committee } from '../../net/committee.ts';
import { DkgRunner, type DkgStatus } from '../../node/dkg-runner.ts';
import { decodeDkgReply, encodeDkgFrame } from '../../node/dkg-wire.ts';
import { dkgIdentity, type NodeIdentity } from '../../node/identity.ts';
import { Keystore } from '../../node/keystore.ts';
import { createLogger } from '../../runtime/logger.ts';
import { createNodeMetrics } from '../../node/metrics.ts';
import { makeTempDir, removeDir, waitFor } from '../support/processes.ts';

/**
 * DkgRunners wired together in one process: the real session, keystore and wire codec,
 * with frames handed over in memory instead of libp2p streams (those are covered by the
 * integration tests). `down` members drop everything, like a stopped process.
 */
describe('node DKG runner (in-process committee)', function () {
  this.timeout(60_000);
  const N = 4;
  const T = 3;
  let dir: string | undefined;
  let committee: Committee;
  let identities: NodeIdentity[];
  let runners: Map<number, DkgRunner>;
  let keystores: Map<number, Keystore>;
  const down = new Set<number>();

  async function build(faults: Record<number, DkgFaults> = {}, phaseTimeoutMs = 400): Promise<void> {
    runners = new Map();
    keystores = new Map();
    for (let id = 1; id <= N; id++) {
      const keystore = await Keystore.open(join(dir!, `ks-${id}-${Math.random().toString(36).slice(2)}`), 'pw');
      keystores.set(id, keystore);
      runners.set(
        id,
        new DkgRunner({
          committee,
          selfId: id,
          identity: dkgIdentity(identities[id - 1]!, committee),
          keystore,
          log: createLogger('silent'),
          metrics: createNodeMetrics(),
          phaseTimeoutMs,
          faults: faults[id],
          transport: {
            send: async (to, frame) => {
              if (down.has(to) || down.has(id)) throw new Error('unreachable');
              await new Promise((r) => setImmediate(r));
              return runners.get(to)!.answerFrame(id, frame);
            },
          },
        }),
      );
    }
  }

  async function outcome(id: number, keyId: string): Promise<DkgStatus> {
    return waitFor(`node ${id} outcome`, () => {
      const s = runners.get(id)!.status(keyId);
      return s.status === 'running' ? undefined : s;
    }, { timeoutMs: 30_000, intervalMs: 20 });
  }

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
    for (const r of runners?.values() ?? []) r.stop();
  });

  after(async () => {
    await removeDir(dir);
  });

  it('runs a DKG and stores shares that interpolate to the group key', async () => {
    await build();
    runners.get(2)!.propose('k1');
    const statuses = await Promise.all([1, 2, 3, 4].map((id) => outcome(id, 'k1')));
    for (const s of statuses) {
      assert.equal(s.status, 'done', s.abortReason);
      assert.equal(s.result!.groupPublicKey, statuses[0]!.result!.groupPublicKey);
    }
    const shares = await Promise.all([1, 3, 4].map(async (id) => ({ id, value: (await keystores.get(id)!.load('k1')).share })));
    assert.ok(G.multiply(interpolateSecret(shares)).equals(decodePoint(statuses[0]!.result!.groupPublicKey)));
    assert.throws(() => runners.get(1)!.propose('k1'), /already exists/);
  });

  it('answers every frame with a reply frame, refusing bad ones with a typed reason', async () => {
    await build();
    const r = runners.get(1)!;
    const reply = async (from: number, bytes: Uint8Array) => decodeDkgReply(await r.answerFrame(from, bytes));
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), async (bytes) => {
        const res = await reply(2, bytes);
        assert.equal(res.ok, false);
      }),
      { numRuns: 200 },
    );
    const sessionId = randomBytes(16);
    const proposal = { type: 'proposal' as const, keyId: 'k2', sessionId, t: T, committeeId: 'runner-test', proposer: 3 };
    const spoofed = await reply(2, encodeDkgFrame(proposal));
    assert.deepEqual(spoofed.ok ? 'ok' : spoofed.code, 'unauthorized');
    const wrongT = await reply(3, encodeDkgFrame({ ...proposal, t: 2 }));
    assert.deepEqual(wrongT.ok ? 'ok' : wrongT.code, 'bad_request');
    const wrongCommittee = await reply(3, encodeDkgFrame({ ...proposal, committeeId: 'other' }));
    assert.deepEqual(wrongCommittee.ok ? 'ok' : wrongCommittee.code, 'bad_request');
    assert.deepEqual(await reply(3, encodeDkgFrame(proposal)), { ok: true });
    // A retried delivery of the same proposal is accepted again; a different session is refused.
    assert.deepEqual(await reply(3, encodeDkgFrame(proposal)), { ok: true });
    const other = await reply(4, encodeDkgFrame({ ...proposal, proposer: 4, sessionId: randomBytes(16) }));
    assert.deepEqual(other.ok ? 'ok' : other.code, 'conflict');
  });

  it('excludes a member that is down after the deadlines and completes with the others', async () => {
    await build({}, 1_500);
    down.add(4);
    runners.get(1)!.propose('k3');
    const statuses = await Promise.all([1, 2, 3].map((id) => outcome(id, 'k3')));
    for (const s of statuses) {
      assert.equal(s.status, 'done', s.abortReason);
      assert.deepEqual(s.result!.qualified, [1, 2, 3]);
      assert.ok('4' in s.disqualified);
    }
  });

  it('aborts with a clear reason when fewer than t members take part', async () => {
    await build({}, 1_500);
    down.add(3);
    down.add(4);
    const started = runners.get(1)!.propose('k4');
    assert.equal(started.status, 'running');
    const s = await outcome(1, 'k4');
    assert.equal(s.status, 'aborted');
    assert.match(s.abortReason ?? '', /need t = 3/);
    // After an abort the key id is free again.
    down.clear();
    assert.equal(runners.get(1)!.propose('k4').status, 'running');
  });
});
