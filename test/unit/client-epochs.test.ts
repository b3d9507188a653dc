import assert from 'node:assert/strict';
import {
  computeProvenPartial,
  DelegationMessage,
  encodeBase64,
  encodeDleqProof,
  encodeHex,
  importRsaPublicKey,
  isTkmsError,
  randomScalar,
  rsaOaepWrap,
  sealToHandle,
  decodePoint,
  generateRsaKeyPair,
  type RsaKeyPair,
} from '../../core/index.ts';
import { pinnedClientOptions, type Committee } from '../../core/committee.ts';
import type { HandoverCertificate, KeyEpochData } from '../../core/ceremony/handover.ts';
import type { DkgPublicResult } from '../../core/dkg/index.ts';
import { generateAccount, TkmsClient } from '../../client/index.ts';
import { keyAt, makeChain, makeCommittee, makeMembers, sharesOf, signCertificate, signedDkgResult, type TestMember } from './handover-fixtures.ts';

/**
 * The client following committee epochs against a fake gateway (a fetch function): keys, the
 * committee's certificates, and delegate answers whose partials are computed here from known shares
 * at the epochs the test chooses.
 */
const ID = 'client-epochs';
const PLAINTEXT = new TextEncoder().encode('across epochs');

interface Scenario {
  result: DkgPublicResult;
  madeBy: Committee;
  servedEpoch: number;
  handovers: unknown[];
  /** Which members answer, at which epoch's key data. */
  answer: { id: number; data: KeyEpochData }[];
  /** A paging gateway (GET /v1/committee?since=): certificates per page, and a forced `next` (a lying gateway). */
  pageSize?: number;
  next?: unknown;
}

describe('client: following committee epochs (pinned to epoch 0)', function () {
  this.timeout(60_000);
  let m0: TestMember[];
  let m1: TestMember[];
  let m2: TestMember[];
  let c0: Committee;
  let c1: Committee;
  let c2: Committee;
  let chain: { certificates: HandoverCertificate[]; keysAt: Map<string, KeyEpochData>[] };
  let alpha: DkgPublicResult;
  let rsaKey: RsaKeyPair;
  let sealed: Awaited<ReturnType<typeof sealToHandle>>;
  const owner = generateAccount();
  let scenario: Scenario;
  const asked: string[] = [];

  before(async () => {
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
    rsaKey = await generateRsaKeyPair(2048);
    sealed = await sealToHandle({ publicKey: decodePoint(alpha.groupPublicKey, 'pk'), keyId: 'alpha', owner: owner.addressBytes, plaintext: PLAINTEXT });
  });

  const at = (epoch: number, ids: number[]) => ids.map((id) => ({ id, data: chain.keysAt[epoch]!.get('alpha')! }));

  /** A gateway answering from `scenario`. */
  const fakeFetch: typeof fetch = async (input, init) => {
    const url = new URL(String(input));
    asked.push(`${init?.method ?? 'GET'} ${url.pathname}`);
    const json = (body: unknown, status = 200) => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
    if (url.pathname === '/v1/committee') {
      if (scenario.pageSize === undefined) return json({ committeeId: ID, epoch: scenario.servedEpoch, committee: {}, handovers: scenario.handovers });
      asked.push(`since=${url.searchParams.get('since')}`);
      const since = Number(url.searchParams.get('since') ?? 0);
      const all = (scenario.handovers as HandoverCertificate[]).filter((c) => c.fromEpoch >= since);
      const next = 'next' in scenario ? scenario.next : all.length > scenario.pageSize ? all[scenario.pageSize]!.fromEpoch : null;
      return json({ committeeId: ID, epoch: scenario.servedEpoch, committee: {}, handovers: all.slice(0, scenario.pageSize), next });
    }
    if (url.pathname.startsWith('/v1/keys/')) {
      const r = scenario.result;
      return json({
        keyId: r.keyId,
        publicKey: r.groupPublicKey,
        t: r.t,
        n: r.n,
        committeeId: r.committeeId,
        verificationShares: r.verificationShares,
        qualified: r.qualified,
        sessionId: r.sessionId,
        transcriptHash: r.transcriptHash,
        signatures: r.signatures,
        members: scenario.madeBy.members.map((m) => ({ id: m.id, peerId: m.peerId, publicKey: encodeHex(m.publicKey) })),
        epoch: scenario.servedEpoch,
        ...(r.epoch === undefined ? {} : { resultEpoch: r.epoch }),
      });
    }
    if (url.pathname.endsWith('/delegate')) {
      const body = JSON.parse(String(init!.body)) as { delegation: Record<string, unknown> };
      const delegation = DelegationMessage.decode(body.delegation as never);
      const rsa = await importRsaPublicKey(encodeHex(delegation.rsaSpki));
      const partials = [];
      for (const { id, data } of scenario.answer) {
        const share = sharesOf.get(data)!.get(id)!;
        const proven = computeProvenPartial({ keyId: 'alpha', nodeId: id, requestId: delegation.requestId }, share, data.verificationShares.get(id)!, sealed.K);
        partials.push({ nodeId: id, wrapped: encodeHex(await rsaOaepWrap(rsa, proven.partial)), proof: encodeHex(encodeDleqProof(proven.proof)), ...(data.epoch === 0 ? {} : { epoch: data.epoch }) });
      }
      return json({
        handle: encodeHex(sealed.handle),
        keyId: 'alpha',
        K: encodeHex(sealed.K),
        nonce: encodeHex(sealed.nonce),
        ciphertext: encodeBase64(sealed.ciphertext),
        owner: owner.address,
        t: 2,
        requestId: encodeHex(delegation.requestId),
        partials,
        failures: [],
      });
    }
    return json({ error: { code: 'not_found', message: 'no route' } }, 404);
  };

  const client = (extra: Record<string, unknown> = {}) =>
    new TkmsClient({ gatewayUrl: 'http://127.0.0.1:1', account: owner, rsaKey, fetch: fakeFetch, ...pinnedClientOptions(c0), ...extra });

  it('pinnedClientOptions pins the epoch too; a bad trustedEpoch is refused', () => {
    assert.equal(pinnedClientOptions(c1).trustedEpoch, 1);
    assert.throws(() => client({ trustedEpoch: -1 }), (e: unknown) => isTkmsError(e, 'bad_request'));
  });

  it('a key made at epoch 0, served at epoch 2: its Y_i at every epoch come from the certificates, checked from the pin', async () => {
    scenario = { result: alpha, madeBy: c0, servedEpoch: 2, handovers: chain.certificates, answer: [] };
    const key = await client().getKey('alpha');
    assert.equal(key.pinned, true);
    assert.equal(key.epoch, 2);
    assert.equal(key.t, 2);
    assert.equal(key.n, 3);
    assert.deepEqual([...key.epochs.keys()], [0, 1, 2]);
    assert.deepEqual(key.verificationShares, chain.keysAt[2]!.get('alpha')!.verificationShares);
    assert.deepEqual(key.epochs.get(1)!.verificationShares, chain.keysAt[1]!.get('alpha')!.verificationShares);
  });

  it('decrypts with partials of the current epoch, and with partials of an earlier epoch it still knows', async () => {
    scenario = { result: alpha, madeBy: c0, servedEpoch: 2, handovers: chain.certificates, answer: at(2, [5, 6]) };
    const c = client();
    const out = await c.decrypt(encodeHex(sealed.handle), { keyId: 'alpha' });
    assert.deepEqual(out.plaintext, PLAINTEXT);
    assert.deepEqual(out.usedNodeIds, [5, 6]);
    scenario.answer = at(1, [2, 3, 4]);
    assert.deepEqual((await c.decrypt(encodeHex(sealed.handle), { keyId: 'alpha' })).plaintext, PLAINTEXT);
  });

  it('partials of mixed epochs never combine: t of one epoch decrypt, fewer than t of each do not', async () => {
    scenario = { result: alpha, madeBy: c0, servedEpoch: 2, handovers: chain.certificates, answer: [...at(1, [2]), ...at(2, [5, 6])] };
    const c = client();
    const out = await c.decrypt(encodeHex(sealed.handle), { keyId: 'alpha' });
    assert.deepEqual(out.usedNodeIds, [5, 6]);
    // Member 4 is in epochs 1 and 2: its epoch-1 partial is not checked against its epoch-2 Y_i (or combined with epoch-2 ones).
    scenario.answer = [...at(1, [4]), ...at(2, [5])];
    const before = asked.filter((a) => a.endsWith('/delegate')).length;
    await assert.rejects(c.decrypt(encodeHex(sealed.handle), { keyId: 'alpha' }), (e: unknown) => isTkmsError(e, 'insufficient_partials'));
    assert.equal(asked.filter((a) => a.endsWith('/delegate')).length - before, 3, 'mixed epochs: asked again, up to the attempt limit');
    // Asked again, the members answer at one epoch: the second attempt decrypts.
    let delegations = 0;
    const settling: typeof fetch = async (input, init) => {
      if (String(input).endsWith('/delegate') && ++delegations === 2) scenario.answer = at(2, [4, 5]);
      return fakeFetch(input, init);
    };
    scenario.answer = [...at(1, [4]), ...at(2, [5])];
    const settled = await client({ fetch: settling }).decrypt(encodeHex(sealed.handle), { keyId: 'alpha' });
    assert.deepEqual(settled.plaintext, PLAINTEXT);
    assert.equal(settled.attempts, 2);
    // A partial relabelled with another epoch fails its proof against that epoch's Y_i.
    scenario.answer = [{ id: 5, data: { ...chain.keysAt[2]!.get('alpha')!, epoch: 1 } }, ...at(1, [2])];
    sharesOf.set(scenario.answer[0]!.data, sharesOf.get(chain.keysAt[2]!.get('alpha')!)!);
    await assert.rejects(c.decrypt(encodeHex(sealed.handle), { keyId: 'alpha' }), (e: unknown) => isTkmsError(e, 'insufficient_partials'));
  });

  it('follows a move that happens after the key was cached: partials of a newer epoch make it follow the certificates again', async () => {
    scenario = { result: alpha, madeBy: c0, servedEpoch: 0, handovers: [], answer: at(0, [1, 2]) };
    const c = client();
    assert.deepEqual((await c.decrypt(encodeHex(sealed.handle), { keyId: 'alpha' })).plaintext, PLAINTEXT);
    assert.equal((await c.getKey('alpha')).epoch, 0);
    scenario = { result: alpha, madeBy: c0, servedEpoch: 1, handovers: [chain.certificates[0]!], answer: at(1, [3, 4, 5]) };
    const out = await c.decrypt(encodeHex(sealed.handle), { keyId: 'alpha' });
    assert.deepEqual(out.plaintext, PLAINTEXT);
    assert.equal(out.attempts, 1);
    assert.equal((await c.getKey('alpha')).epoch, 1);
  });

  // Scenario "shrink, gateway behind" (test/integration/reshare-scenarios.md): the members moved to a
  // committee with a smaller t before the gateway followed; it passed on t_old partials of the new epoch.
  it('a gateway behind a handover that lowered t: partials of the epoch it cannot vouch for yet are asked again, not blamed', async () => {
    scenario = { result: alpha, madeBy: c0, servedEpoch: 1, handovers: [chain.certificates[0]!], answer: at(2, [4, 5, 6]) };
    const c = client();
    assert.equal((await c.getKey('alpha')).t, 3);
    let delegations = 0;
    const following: typeof fetch = async (input, init) => {
      if (String(input).endsWith('/delegate') && ++delegations === 2) scenario = { result: alpha, madeBy: c0, servedEpoch: 2, handovers: chain.certificates, answer: at(2, [4, 5]) };
      return fakeFetch(input, init);
    };
    const behind = client({ fetch: following });
    const out = await behind.decrypt(encodeHex(sealed.handle), { keyId: 'alpha' });
    assert.deepEqual(out.plaintext, PLAINTEXT);
    assert.equal(out.attempts, 2);
    assert.deepEqual(out.usedNodeIds, [4, 5]);
    assert.deepEqual(behind.misbehaviour(), []);
  });

  it('a joiner not serving the epoch yet (unknown_key while others answered) is asked again a moment later; a key nobody knows is not', async () => {
    scenario = { result: alpha, madeBy: c0, servedEpoch: 2, handovers: chain.certificates, answer: at(2, [4, 5]) };
    const shortfall = (answered: number) =>
      new Response(JSON.stringify({ error: { code: 'unknown_key', message: `${answered} of 5 nodes answered, 2 needed (node 6: unknown_key)`, details: { answered, needed: 2, failures: [{ nodeId: 6, code: 'unknown_key', message: 'this node holds no share of key alpha' }] } } }), { status: 404, headers: { 'content-type': 'application/json' } });
    let delegations = 0;
    const joining: typeof fetch = async (input, init) => (String(input).endsWith('/delegate') && ++delegations === 1 ? shortfall(1) : fakeFetch(input, init));
    const out = await client({ fetch: joining }).decrypt(encodeHex(sealed.handle), { keyId: 'alpha' });
    assert.deepEqual(out.plaintext, PLAINTEXT);
    assert.equal(out.attempts, 2);
    let unknownAsked = 0;
    const unknown: typeof fetch = async (input, init) => (String(input).endsWith('/delegate') ? (unknownAsked++, shortfall(0)) : fakeFetch(input, init));
    await assert.rejects(client({ fetch: unknown }).decrypt(encodeHex(sealed.handle), { keyId: 'alpha' }), (e: unknown) => isTkmsError(e, 'unknown_key'));
    assert.equal(unknownAsked, 1, 'a key every member refuses is not asked again');
  });

  it('partials of an epoch no verified certificate reaches are not used, and the node is not counted as lying', async () => {
    scenario = { result: alpha, madeBy: c0, servedEpoch: 1, handovers: [], answer: at(1, [3, 4, 5]) };
    const c = client();
    await assert.rejects(c.decrypt(encodeHex(sealed.handle), { keyId: 'alpha' }), (e: unknown) => isTkmsError(e, 'insufficient_partials') && /stale_epoch/.test(e.message));
    assert.deepEqual(c.misbehaviour(), []);
  });

  it('a gateway passing on a forged certificate (not signed by t of the pinned committee) is refused', async () => {
    const forged = signCertificate({ from: c0, to: c1, keys: [keyAt('alpha', randomScalar(), c1)], fromSigners: m0.slice(0, 1), toSigners: m1 });
    scenario = { result: alpha, madeBy: c0, servedEpoch: 1, handovers: [forged], answer: [] };
    await assert.rejects(client().getKey('alpha'), (e: unknown) => isTkmsError(e, 'bad_proof') && /certificates do not verify/.test(e.message));
    // A certificate moving the key to a new group key, properly signed, is refused too: the key never changes.
    const swapped = signCertificate({ from: c0, to: c1, keys: [keyAt('alpha', randomScalar(), c1)], fromSigners: m0, toSigners: m1 });
    scenario = { result: alpha, madeBy: c0, servedEpoch: 1, handovers: [swapped], answer: [] };
    await assert.rejects(client().getKey('alpha'), (e: unknown) => isTkmsError(e, 'bad_proof') && /group key changed/.test(e.message));
  });

  it('a key made at epoch 2 is checked against the epoch-2 committee reached from the pin, never the gateway\'s members', async () => {
    const lateKey = keyAt('alpha', randomScalar(), c2);
    const late = signedDkgResult(lateKey, c2, m2);
    scenario = { result: late, madeBy: c2, servedEpoch: 2, handovers: chain.certificates, answer: [] };
    const key = await client().getKey('alpha');
    assert.equal(key.epoch, 2);
    assert.equal(key.result.epoch, 2);
    assert.deepEqual([...key.epochs.keys()], [2]);
    // Without the certificates the pinned client cannot reach epoch 2.
    scenario = { ...scenario, handovers: [] };
    await assert.rejects(client().getKey('alpha'), (e: unknown) => isTkmsError(e, 'bad_proof') && /epoch 2/.test(e.message));
    // Signed by other keys than the epoch-2 members': refused, whatever members the gateway names.
    const outsiders = makeMembers([4, 5, 6]);
    const fake = makeCommittee(ID, 2, 2, outsiders);
    scenario = { result: signedDkgResult(lateKey, fake, outsiders), madeBy: fake, servedEpoch: 2, handovers: chain.certificates, answer: [] };
    await assert.rejects(client().getKey('alpha'), (e: unknown) => isTkmsError(e, 'bad_proof'));
  });

  it('pinned to the committee of epoch 1, a key made at epoch 0 comes from the certificate arriving at the pin', async () => {
    scenario = { result: alpha, madeBy: c0, servedEpoch: 2, handovers: chain.certificates, answer: at(2, [4, 5]) };
    const c = client(pinnedClientOptions(c1));
    const key = await c.getKey('alpha');
    assert.equal(key.pinned, true);
    assert.equal(key.epoch, 2);
    assert.deepEqual([...key.epochs.keys()], [1, 2]);
    assert.deepEqual((await c.decrypt(encodeHex(sealed.handle), { keyId: 'alpha' })).plaintext, PLAINTEXT);
    // A certificate naming another group key for it, even one the pinned members signed, is refused.
    const swapped = signCertificate({ from: c0, to: c1, keys: [keyAt('alpha', randomScalar(), c1)], fromSigners: m0, toSigners: m1 });
    scenario = { ...scenario, handovers: [swapped, chain.certificates[1]!] };
    await assert.rejects(client(pinnedClientOptions(c1)).getKey('alpha'), (e: unknown) => isTkmsError(e, 'bad_proof') && /another group key/.test(e.message));
    scenario = { ...scenario, handovers: [chain.certificates[1]!] };
    await assert.rejects(client(pinnedClientOptions(c1)).getKey('alpha'), (e: unknown) => isTkmsError(e, 'bad_proof') && /is missing/.test(e.message));
  });

  it('pages GET /v1/committee from the certificate arriving at its pinned epoch until next is null', async () => {
    scenario = { result: alpha, madeBy: c0, servedEpoch: 2, handovers: chain.certificates, answer: [], pageSize: 1 };
    asked.length = 0;
    assert.equal((await client().getKey('alpha')).epoch, 2);
    assert.deepEqual(asked.filter((a) => a.startsWith('since=')), ['since=0', 'since=1']);
    asked.length = 0;
    const key = await client(pinnedClientOptions(c2)).getKey('alpha');
    assert.equal(key.epoch, 2);
    assert.deepEqual(asked.filter((a) => a.startsWith('since=')), ['since=1'], 'pinned at epoch 2: from the certificate arriving at it');
  });

  it('a gateway whose next page does not move on is refused, not asked forever', async () => {
    scenario = { result: alpha, madeBy: c0, servedEpoch: 2, handovers: chain.certificates, answer: [], pageSize: 1, next: 0 };
    await assert.rejects(client().getKey('alpha'), (e: unknown) => isTkmsError(e, 'bad_request') && /next page/.test(e.message));
    scenario = { ...scenario, next: 'x' };
    await assert.rejects(client().getKey('alpha'), (e: unknown) => isTkmsError(e, 'bad_request') && /next page/.test(e.message));
  });

  it('an unpinned client trusts the gateway\'s members for the result but still follows the chain', async () => {
    scenario = { result: alpha, madeBy: c0, servedEpoch: 2, handovers: chain.certificates, answer: at(2, [4, 6]) };
    const c = new TkmsClient({ gatewayUrl: 'http://127.0.0.1:1', account: owner, rsaKey, fetch: fakeFetch });
    const key = await c.getKey('alpha');
    assert.equal(key.pinned, false);
    assert.equal(key.epoch, 2);
    assert.deepEqual((await c.decrypt(encodeHex(sealed.handle), { keyId: 'alpha' })).plaintext, PLAINTEXT);
  });

  it('a gateway from before epochs (no GET /v1/committee) still serves a key made at epoch 0', async () => {
    scenario = { result: alpha, madeBy: c0, servedEpoch: 0, handovers: [], answer: at(0, [1, 3]) };
    const before = async (input: Parameters<typeof fetch>[0], init?: Parameters<typeof fetch>[1]) =>
      new URL(String(input)).pathname === '/v1/committee' ? new Response(JSON.stringify({ error: { code: 'not_found', message: 'no route' } }), { status: 404, headers: { 'content-type': 'application/json' } }) : fakeFetch(input, init);
    const c = client({ fetch: before });
    assert.equal((await c.getKey('alpha')).epoch, 0);
    assert.deepEqual((await c.decrypt(encodeHex(sealed.handle), { keyId: 'alpha' })).plaintext, PLAINTEXT);
  });
});
