import assert from 'node:assert/strict';
import { Gauge, Registry } from 'prom-client';
import { encodeHex, isTkmsError, randomScalar } from '../../core/index.ts';
import { committeeToJson, type Committee } from '../../core/committee.ts';
import type { HandoverCertificate, KeyEpochData } from '../../core/ceremony/handover.ts';
import type { DkgPublicResult } from '../../core/dkg/index.ts';
import { KeyDirectory, keyToJson, type KeySource } from '../../gateway/keys.ts';
import type { KeysReport } from '../../gateway/node-pool.ts';
import { createLogger } from '../../runtime/logger.ts';
import { gatewayRoutes, type GatewayContext } from '../../gateway/api.ts';
import { createGatewayMetrics } from '../../gateway/metrics.ts';
import { atEpoch, keyAt, makeChain, makeCommittee, makeMembers, signCertificate, signedDkgResult, type TestMember } from './handover-fixtures.ts';
import { followHandovers } from '../../core/ceremony/handover.ts';
import { decodeKeysReply, encodeKeysReply, handoverPage, MAX_HANDOVERS_PER_REPLY, MAX_HANDOVER_REPLY_BYTES, MAX_NODE_FRAME_BYTES } from '../../core/index.ts';

/**
 * The gateway's KeyDirectory following epochs, against a fake node pool whose members report
 * canned keys replies: DKG results, the epoch and the handover certificates each member holds.
 */
const log = createLogger(process.env.DBG ? 'debug' : 'silent');
const ID = 'gateway-epochs';

/** Members that answer like nodes: a page of their certificates from the epoch asked (handoverPage), through the wire codec. */
class PagingPool implements KeySource {
  asked: number[] = [];
  retargeted: Committee[] = [];
  constructor(
    public committee: Committee,
    public members: { memberId: number; keys: unknown[]; epoch: number; handovers: HandoverCertificate[] }[],
  ) {}
  async fetchKeys(_timeoutMs: number, handoversFrom = 0): Promise<KeysReport[]> {
    this.asked.push(handoversFrom);
    return this.members.map((m) => {
      const reply = decodeKeysReply(encodeKeysReply({ ok: true, keys: m.keys, epoch: m.epoch, handovers: handoverPage(m.handovers, handoversFrom) }));
      assert.ok(reply.ok);
      return { memberId: m.memberId, keys: reply.keys, epoch: reply.epoch!, handovers: reply.handovers! };
    });
  }
  async retarget(committee: Committee): Promise<void> {
    this.retargeted.push(committee);
    this.committee = committee;
  }
}

class FakePool implements KeySource {
  reports: KeysReport[] = [];
  retargeted: Committee[] = [];
  constructor(public committee: Committee) {}
  async fetchKeys(): Promise<KeysReport[]> {
    return this.reports;
  }
  async retarget(committee: Committee): Promise<void> {
    this.retargeted.push(committee);
    this.committee = committee;
  }
}

describe('gateway: keys and committee epochs (KeyDirectory, CommitteeEpochs)', () => {
  let m0: TestMember[];
  let m1: TestMember[];
  let m2: TestMember[];
  let c0: Committee;
  let c1: Committee;
  let c2: Committee;
  let chain: { certificates: HandoverCertificate[]; keysAt: Map<string, KeyEpochData>[] };
  let alpha: DkgPublicResult;
  let late: DkgPublicResult;
  let lateKey: KeyEpochData;

  before(() => {
    const all = makeMembers([1, 2, 3, 4, 5, 6]);
    m0 = all.slice(0, 3);
    m1 = all.slice(1, 5);
    m2 = all.slice(3, 6);
    c0 = makeCommittee(ID, 0, 2, m0);
    c1 = makeCommittee(ID, 1, 3, m1);
    c2 = makeCommittee(ID, 2, 2, m2);
    chain = makeChain(
      [
        { committee: c0, members: m0 },
        { committee: c1, members: m1 },
        { committee: c2, members: m2 },
      ],
      new Map([['alpha', randomScalar()]]),
    );
    alpha = signedDkgResult(chain.keysAt[0]!.get('alpha')!, c0, m0);
    lateKey = keyAt('late', randomScalar(), c2);
    late = signedDkgResult(lateKey, c2, m2);
  });

  it('follows the certificates members report (each may hold only some), re-targets the pool and serves keys at the epoch reached', async () => {
    const pool = new FakePool(c0);
    const registry = new Registry();
    const gauge = new Gauge({ name: 'epoch_test', help: 'test', registers: [registry] });
    const directory = new KeyDirectory(c0, pool, log, undefined, gauge);
    const [cert0, cert1] = chain.certificates;
    pool.reports = [
      { memberId: 2, keys: [alpha], epoch: 2, handovers: [cert0, cert1] },
      // Member 4 joined at epoch 1: it holds only the later certificate.
      { memberId: 4, keys: [alpha, late], epoch: 2, handovers: [cert1] },
      { memberId: 5, keys: [alpha, late], epoch: 2, handovers: [cert0, cert1] },
    ];
    await directory.refresh(true);
    assert.equal(directory.epochs.epoch, 2);
    assert.deepEqual(pool.retargeted.map((c) => c.epoch), [2]);
    assert.deepEqual(committeeToJson(pool.retargeted[0]!), committeeToJson(c2));
    assert.equal((await registry.getSingleMetric('epoch_test')!.get()).values[0]!.value, 2);

    const a = await directory.get('alpha');
    assert.equal(a.epoch, 2);
    assert.equal(a.t, 2);
    assert.deepEqual([...a.verificationShares.keys()], [4, 5, 6]);
    for (const [id, y] of chain.keysAt[2]!.get('alpha')!.verificationShares) assert.deepEqual(a.group.encodePoint(a.verificationShares.get(id)!), y);
    const json = keyToJson(a, directory.madeBy(a));
    assert.equal(json.epoch, 2);
    assert.equal(json.resultEpoch, undefined);
    assert.deepEqual((json.members as { id: number }[]).map((m) => m.id), [1, 2, 3], 'the members that signed the DKG result');

    const l = await directory.get('late');
    assert.equal(l.epoch, 2);
    assert.deepEqual(l.group.encodePoint(l.verificationShares.get(6)!), lateKey.verificationShares.get(6));
    assert.equal(keyToJson(l, directory.madeBy(l)).resultEpoch, 2);
    assert.deepEqual(directory.list().map((k) => k.result.keyId), ['alpha', 'late']);

    const handovers = directory.epochs.handovers();
    assert.deepEqual(handovers.map((h) => h.fromEpoch), [0, 1]);
  });

  it('GET /v1/committee answers the committee reached and every certificate, oldest first; GET /v1/keys/{keyId} the epoch served', async () => {
    const pool = new FakePool(c0);
    const directory = new KeyDirectory(c0, pool, log);
    pool.reports = [
      { memberId: 1, keys: [alpha], handovers: chain.certificates },
      { memberId: 2, keys: [alpha], handovers: chain.certificates },
    ];
    const ctx = { keys: directory, pool, metrics: createGatewayMetrics(), config: {} } as unknown as GatewayContext;
    const route = (path: string) => gatewayRoutes(ctx).find((r) => r.path === path)!.handler;
    const answer = (await route('/v1/committee')({} as never, new URL('http://x/v1/committee'), undefined, {})) as { json: Record<string, unknown> };
    assert.equal(answer.json.committeeId, ID);
    assert.equal(answer.json.epoch, 2);
    assert.deepEqual(answer.json.committee, committeeToJson(c2));
    assert.deepEqual(JSON.parse(JSON.stringify(answer.json.handovers)), JSON.parse(JSON.stringify(chain.certificates)));
    const key = (await route('/v1/keys/{keyId}')({} as never, new URL('http://x/v1/keys/alpha'), undefined, { keyId: 'alpha' })) as { json: Record<string, unknown> };
    assert.equal(key.json.epoch, 2);
    assert.equal(key.json.publicKey, alpha.groupPublicKey);
  });

  it('a member\'s forged or malformed certificate neither blocks the chain nor is followed', async () => {
    const pool = new FakePool(c0);
    const directory = new KeyDirectory(c0, pool, log);
    const forged = signCertificate({ from: c0, to: c1, keys: [keyAt('alpha', randomScalar(), c1)], fromSigners: [], toSigners: m1 });
    const [cert0, cert1] = chain.certificates;
    pool.reports = [
      { memberId: 1, keys: [alpha], handovers: [forged, { junk: true }, cert1] },
      { memberId: 2, keys: [alpha], epoch: 2, handovers: [cert0, cert1] },
    ];
    await directory.refresh(true);
    assert.equal(directory.epochs.epoch, 2);
    assert.equal((await directory.get('alpha')).epoch, 2);
  });

  it('only forged certificates: the gateway stays at its epoch and serves the keys there', async () => {
    const pool = new FakePool(c0);
    const directory = new KeyDirectory(c0, pool, log);
    const forged = signCertificate({ from: c0, to: c1, keys: [chain.keysAt[1]!.get('alpha')!], fromSigners: m0.slice(0, 1), toSigners: m1 });
    pool.reports = [
      { memberId: 1, keys: [alpha], epoch: 1, handovers: [forged] },
      { memberId: 2, keys: [alpha] },
    ];
    await directory.refresh(true);
    assert.equal(directory.epochs.epoch, 0);
    assert.deepEqual(pool.retargeted, []);
    const a = await directory.get('alpha');
    assert.equal(a.epoch, 0);
    assert.equal(encodeHex(a.group.encodePoint(a.verificationShares.get(1)!)), alpha.verificationShares['1']);
  });

  it('a key the chain did not carry to the current epoch is not served; a result of an epoch never reached is ignored', async () => {
    const pool = new FakePool(c0);
    const directory = new KeyDirectory(c0, pool, log);
    const beta = signedDkgResult(keyAt('beta', randomScalar(), c0), c0, m0);
    pool.reports = [
      { memberId: 1, keys: [alpha, beta, late], handovers: [chain.certificates[0]] },
      { memberId: 2, keys: [alpha, beta, late], handovers: [chain.certificates[0]] },
    ];
    await directory.refresh(true);
    assert.equal(directory.epochs.epoch, 1);
    assert.equal((await directory.get('alpha')).epoch, 1);
    await assert.rejects(directory.get('beta'), (e: unknown) => isTkmsError(e, 'unknown_key') && /not handed over to epoch 1/.test(e.message));
    await assert.rejects(directory.get('late'), (e: unknown) => isTkmsError(e, 'unknown_key'));
    assert.deepEqual(directory.list().map((k) => k.result.keyId), ['alpha']);
  });

  it('a gateway whose file is at a later epoch skips earlier certificates and passes them on to clients', async () => {
    const pool = new FakePool(c1);
    const directory = new KeyDirectory(c1, pool, log);
    pool.reports = [
      { memberId: 3, keys: [alpha], epoch: 2, handovers: chain.certificates },
      { memberId: 4, keys: [alpha], epoch: 2, handovers: chain.certificates },
      { memberId: 5, keys: [alpha], epoch: 2, handovers: chain.certificates },
    ];
    await directory.refresh(true);
    assert.equal(directory.epochs.epoch, 2);
    assert.deepEqual(directory.epochs.handovers().map((h) => h.fromEpoch), [0, 1]);
    // alpha was made at epoch 0, before the gateway's file: the certificate arriving at the file (signed by a vote quorum of it) vouches for it.
    const a = await directory.get('alpha');
    assert.equal(a.epoch, 2);
    for (const [id, y] of chain.keysAt[2]!.get('alpha')!.verificationShares) assert.deepEqual(a.group.encodePoint(a.verificationShares.get(id)!), y);
    assert.equal(directory.epochs.arrivedKey('alpha')?.epoch, 1);
  });

  describe('paged certificates (a long chain of refreshes)', () => {
    const EPOCHS = 40;
    let members: TestMember[];
    let committees: Committee[];
    let long: { certificates: HandoverCertificate[]; keysAt: Map<string, KeyEpochData>[] };
    let gamma: DkgPublicResult;

    before(() => {
      members = makeMembers([1, 2, 3]);
      const base = makeCommittee(`${ID}-long`, 0, 2, members);
      committees = Array.from({ length: EPOCHS + 1 }, (_, e) => atEpoch(base, e));
      long = makeChain(committees.map((committee) => ({ committee, members })), new Map([['gamma', randomScalar()]]));
      gamma = signedDkgResult(long.keysAt[0]!.get('gamma')!, committees[0]!, members);
    });

    const nodes = (handovers: HandoverCertificate[]) => members.map((m) => ({ memberId: m.id, keys: [gamma], epoch: EPOCHS, handovers }));

    it('a node answers a bounded page from the epoch asked, oldest first, and the encoded reply fits its frame', () => {
      const page = handoverPage(long.certificates, 5);
      assert.deepEqual(page.map((c) => c.fromEpoch), Array.from({ length: MAX_HANDOVERS_PER_REPLY }, (_, i) => 5 + i));
      assert.deepEqual(handoverPage(long.certificates, EPOCHS - 2).map((c) => c.fromEpoch), [EPOCHS - 2, EPOCHS - 1]);
      assert.deepEqual(handoverPage(long.certificates, EPOCHS), []);
      // Certificates of ~100 KB each: the byte bound cuts the page before the count does.
      const big = long.certificates.map((c) => ({ ...c, transcriptPadding: 'x'.repeat(100_000) }));
      const cut = handoverPage(big, 0);
      assert.ok(cut.length > 0 && cut.length < MAX_HANDOVERS_PER_REPLY);
      assert.ok(JSON.stringify(cut).length <= MAX_HANDOVER_REPLY_BYTES);
      assert.ok(encodeKeysReply({ ok: true, keys: [gamma], epoch: EPOCHS, handovers: cut }).length < MAX_NODE_FRAME_BYTES);
    });

    it('the gateway asks again from the epoch each page reached, up to the epoch served, and serves the key there', async () => {
      const pool = new PagingPool(committees[0]!, nodes(long.certificates));
      const directory = new KeyDirectory(committees[0]!, pool, log);
      await directory.refresh(true);
      assert.equal(directory.epochs.epoch, EPOCHS);
      assert.deepEqual(pool.asked, [0, 16, 32, 40]);
      assert.equal((await directory.get('gamma')).epoch, EPOCHS);
    });

    it('GET /v1/committee?since= answers a page and the next one; a client pages from its epoch to the current one', async () => {
      const pool = new PagingPool(committees[0]!, nodes(long.certificates));
      const directory = new KeyDirectory(committees[0]!, pool, log);
      const ctx = { keys: directory, pool, metrics: createGatewayMetrics(), config: {} } as unknown as GatewayContext;
      const route = gatewayRoutes(ctx).find((r) => r.path === '/v1/committee')!.handler;
      const get = async (query: string) => ((await route({} as never, new URL(`http://x/v1/committee${query}`), undefined, {})) as { json: { epoch: number; handovers: HandoverCertificate[]; next: number | null } }).json;
      const first = await get('');
      assert.equal(first.epoch, EPOCHS);
      assert.deepEqual(first.handovers.map((c) => c.fromEpoch), Array.from({ length: 16 }, (_, i) => i), 'no since: the first page from epoch 0');
      assert.equal(first.next, 16);
      const collected = [...first.handovers];
      let next: number | null = first.next;
      while (next !== null) {
        const page = await get(`?since=${next}`);
        collected.push(...page.handovers);
        next = page.next;
      }
      assert.equal(followHandovers(committees[0]!, collected).committee.epoch, EPOCHS);
      assert.deepEqual((await get('?since=30')).handovers.map((c) => c.fromEpoch), Array.from({ length: 10 }, (_, i) => 30 + i));
      assert.equal((await get('?since=30')).next, null);
      await assert.rejects(get('?since=-1'), (e: unknown) => isTkmsError(e, 'bad_request'));
      await assert.rejects(get('?since=1e3'), (e: unknown) => isTkmsError(e, 'bad_request'));
    });

    it('a gateway whose file is at a late epoch walks the earlier certificates back page by page and serves a key made at epoch 0', async () => {
      const file = committees[35]!;
      const pool = new PagingPool(file, nodes(long.certificates));
      const directory = new KeyDirectory(file, pool, log);
      await directory.refresh(true);
      assert.equal(directory.epochs.epoch, EPOCHS);
      assert.equal(directory.epochs.earliest, 0);
      assert.equal(followHandovers(committees[0]!, directory.epochs.handovers()).committee.epoch, EPOCHS);
      assert.equal((await directory.get('gamma')).epoch, EPOCHS);
    });
  });

  it('a liar answering first with a forged certificate before the file does not poison the chain: later rounds bring the real one', async () => {
    const pool = new FakePool(c1);
    const directory = new KeyDirectory(c1, pool, log);
    const [cert0, cert1] = chain.certificates;
    // Member 2 (of c1) signs a 0 → 1 certificate with other keys alone: fewer than a vote quorum of c1.
    const forged = signCertificate({ from: c0, to: c1, keys: [keyAt('alpha', randomScalar(), c1)], fromSigners: m0, toSigners: m1.slice(0, 1) });
    pool.reports = [{ memberId: 2, keys: [alpha], epoch: 2, handovers: [forged, cert1] }];
    await directory.refresh(true);
    assert.equal(directory.epochs.epoch, 2);
    assert.deepEqual(directory.epochs.handovers().map((h) => h.fromEpoch), [1], 'the forged certificate is not kept');
    pool.reports = [
      { memberId: 2, keys: [alpha], epoch: 2, handovers: [forged, cert1] },
      { memberId: 3, keys: [alpha], epoch: 2, handovers: [cert0, cert1] },
      { memberId: 4, keys: [alpha], epoch: 2, handovers: [cert0, cert1] },
    ];
    await directory.refresh(true);
    const served = directory.epochs.handovers();
    assert.deepEqual(served.map((h) => h.fromEpoch), [0, 1]);
    assert.equal(followHandovers(c0, served, chain.keysAt[0]).committee.epoch, 2, 'a client pinned at epoch 0 follows the served chain');
    assert.equal((await directory.get('alpha')).epoch, 2);
  });
});
