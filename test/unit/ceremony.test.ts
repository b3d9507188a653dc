import assert from 'node:assert/strict';
import { utf8ToBytes } from '../../core/bytes.ts';
import { curveBackend } from '../../core/curve-backend.ts';
import { encodePoint, G } from '../../core/curve.ts';
import { isTkmsError } from '../../core/errors.ts';
import { combinePartials, interpolateSecret, type ScalarShare } from '../../core/shamir.ts';
import { decodeCeremonyMessage, inboxBounds, maxAttempts, maxMessageSize, ReshareCeremony, verifyHandover, type CeremonyShape, type ReshareOutcome } from '../../core/ceremony/index.ts';
import { Inbox } from '../../core/ceremony/inbox.ts';
import { encodeUnsigned, signingBytes, withSignature } from '../../core/ceremony/codec.ts';
import { handoverVoteMessage } from '../../core/ceremony/handover.ts';
import { identityOf, kindOf, makeScenario, paramsOf, simulate, type Scenario, type SimResult } from './ceremony-harness.ts';

function keysMap(s: Scenario) {
  return new Map(s.keys.map((k) => [k.keyId, k]));
}

/** Every finished member holds the same certificate, it verifies, and every arriving member's share matches its Y′. */
function assertCompleted(s: Scenario, r: SimResult, except: number[] = []): ReshareOutcome {
  assert.deepEqual(r.errors, []);
  const outcomes = s.nodes.filter((n) => !except.includes(n.index)).map((n) => {
    const o = r.outcomes[n.index];
    assert.ok(o, `node ${n.index} finished (${r.ceremonies[n.index]!.phase}: ${r.ceremonies[n.index]!.failureReason})`);
    return { node: n, o };
  });
  const first = outcomes[0]!.o;
  const verified = verifyHandover(first.certificate, s.proposal.from, keysMap(s));
  for (const { node, o } of outcomes) {
    assert.equal(o.certificate.transcriptHash, first.certificate.transcriptHash);
    assert.deepEqual(o.certificate.keys, first.certificate.keys);
    verifyHandover(o.certificate, s.proposal.from, keysMap(s));
    if (node.toId === undefined) {
      assert.equal(o.newShares, undefined);
      continue;
    }
    assert.ok(o.newShares, `arriving node ${node.index} has new shares`);
    for (const key of verified.keys) {
      const share: bigint = o.newShares.get(key.keyId)!;
      assert.deepEqual(curveBackend().multiplyBaseSecret(share), key.verificationShares.get(node.toId));
    }
  }
  for (const key of verified.keys) assert.deepEqual(key.groupPublicKey, s.keys.find((k) => k.keyId === key.keyId)!.groupPublicKey);
  return first;
}

function newSharesOf(s: Scenario, r: SimResult, keyId: string): ScalarShare[] {
  return s.nodes.filter((n) => n.toId !== undefined && r.outcomes[n.index]?.newShares).map((n) => ({ id: n.toId!, value: r.outcomes[n.index]!.newShares!.get(keyId)! }));
}

const reshare = () => makeScenario({ n: 5, t: 3, nTo: 7, tTo: 4, stay: [[1, 1], [2, 3], [4, 5]], keyIds: ['key-a', 'key-b'] });
const refresh = () => makeScenario({ n: 5, t: 3, nTo: 5, tTo: 3, stay: [1, 2, 3, 4, 5].map((i) => [i, i] as [number, number]) });

describe('reshare ceremony (core/ceremony)', function () {
  this.timeout(120_000);

  it('reshares 3-of-5 to 4-of-7 (three members stay, two leave, four arrive): same group key, new shares on the new Y′, same secret', () => {
    const s = reshare();
    const r = simulate(s, { seed: 3, minDelay: 1, maxDelay: 40 });
    assertCompleted(s, r);
    for (const keyId of ['key-a', 'key-b']) {
      const fresh = newSharesOf(s, r, keyId);
      assert.equal(fresh.length, 7);
      const secret = s.secrets.get(keyId)!;
      assert.equal(interpolateSecret(fresh.slice(0, 4)), secret);
      assert.equal(interpolateSecret(fresh.slice(3, 7)), secret);
      assert.equal(interpolateSecret(s.oldShares.get(keyId)!.slice(2, 5)), secret);
      // t′ − 1 shares do not determine it.
      assert.notEqual(interpolateSecret(fresh.slice(0, 3)), secret);
    }
  });

  it('refreshes 3-of-5 to the same members at epoch + 1: every share and Y_i change, the key does not, old and new partials do not combine', () => {
    const s = refresh();
    const r = simulate(s, { seed: 5, maxDelay: 20 });
    const outcome = assertCompleted(s, r);
    assert.equal(verifyHandover(outcome.certificate, s.proposal.from, keysMap(s)).refresh, true);
    const keyId = 'key-1';
    const old = s.oldShares.get(keyId)!;
    const fresh = newSharesOf(s, r, keyId);
    for (const share of fresh) {
      assert.notEqual(share.value, old.find((o) => o.id === share.id)!.value);
      const yOld = s.keys[0]!.verificationShares.get(share.id)!;
      assert.notEqual(outcome.certificate.keys[0]!.verificationShares[String(share.id)], Buffer.from(yOld).toString('hex'));
    }
    assert.equal(interpolateSecret(fresh.slice(2, 5)), s.secrets.get(keyId));
    const K = encodePoint(G.multiply(123456789n));
    const partial = (sh: ScalarShare) => ({ id: sh.id, point: curveBackend().multiplySecret(K, sh.value) });
    const expected = curveBackend().multiplySecret(K, s.secrets.get(keyId)!);
    assert.deepEqual(combinePartials(fresh.slice(0, 3).map(partial)), expected);
    assert.deepEqual(combinePartials(old.slice(0, 3).map(partial)), expected);
    const mixed = [partial(old[0]!), partial(old[1]!), partial(fresh[2]!)];
    assert.notDeepEqual(combinePartials(mixed), expected);
  });

  it('disqualifies a dealer that seals bad sub-shares through a complaint, and completes without it', () => {
    const s = reshare();
    const r = simulate(s, { seed: 11, maxDelay: 30, faults: new Map([[0, { badSubShareTo: [2, 6] }]]) });
    assertCompleted(s, r);
    for (const c of r.ceremonies) assert.match(c.disqualified()['from:1'] ?? '', /does not match its commitments/);
    // The complainer is not blamed: its complaint holds.
    for (const c of r.ceremonies) assert.equal(c.disqualified()['to:2'], undefined);
  });

  it('ignores a dealing whose constant term is not the dealer\'s verification share', () => {
    const s = reshare();
    const r = simulate(s, { seed: 12, maxDelay: 30, faults: new Map([[1, { wrongConstantTerm: true }]]) });
    assertCompleted(s, r);
    for (const c of r.ceremonies) assert.match(c.disqualified()['from:2'] ?? '', /public checks/);
  });

  it('a dealer that signs two different dealings (one to each half of the members) cannot split them: all combine the dealing the proposal carries', () => {
    const s = reshare();
    const r = simulate(s, { seed: 13, maxDelay: 30, faults: new Map([[0, { equivocateDealing: true }]]) });
    assertCompleted(s, r);
    const certificates = new Set(r.outcomes.map((o) => JSON.stringify([o!.certificate.transcriptHash, o!.certificate.keys])));
    assert.equal(certificates.size, 1, 'one handover for everyone');
    // Dealings are not relayed, so only a member that was sent both versions (or finds them in two proposals) names the equivocation.
    assert.ok(r.ceremonies.some((c) => /two different dealings/.test(c.disqualified()['from:1'] ?? '')), 'the members sent both versions name the dealer');
  });

  it('moves to the next attempt when the proposer is silent, and completes', () => {
    const s = reshare();
    // to:1 (node 0, also from:1) proposes attempt 0.
    const r = simulate(s, { seed: 14, maxDelay: 30, faults: new Map([[0, { silent: true }]]) });
    assertCompleted(s, r, [0]);
    assert.ok(r.endMs > 2 * 1000 + 3 * 1000, `finished in attempt 1 or later (t = ${r.endMs})`);
  });

  it('completes despite a proposer that signs two proposals for one attempt', () => {
    const s = makeScenario({ n: 5, t: 2, nTo: 7, tTo: 4, stay: [[1, 1], [2, 3], [4, 5]] });
    const r = simulate(s, { seed: 15, maxDelay: 30, faults: new Map([[0, { equivocateProposal: true }]]) });
    assertCompleted(s, r);
    // Members that got both versions name the proposer (proposals are relayed on retransmit rounds, which this harness does not run).
    assert.ok(r.ceremonies.some((c) => /two proposals/.test(c.disqualified()['to:1'] ?? '')), 'the proposer is named');
  });

  it('sends the certificate and the locked proposal only to members that may lack them (the author to its voters; others to members no vote for it came from)', () => {
    const s = makeScenario({ n: 4, t: 2, nTo: 4, tTo: 2, stay: [1, 2, 3, 4].map((i) => [i, i] as [number, number]) });
    const key = (i: number) => Buffer.from(s.nodes[i]!.publicKey).toString('hex');
    const targets = (c: SimResult['ceremonies'][number], kind: 'certificate' | 'proposal') => {
      // The proposer's own proposal goes to everyone; the one it re-sends as a voter comes last.
      const o = c.retransmit().filter((x) => kindOf(x.payload) === kind).at(-1);
      assert.ok(o, `${kind} is among the retransmits`);
      assert.ok(o.to !== undefined, `${kind} is addressed`);
      return o.to.map((k) => Buffer.from(k).toString('hex')).sort();
    };
    // Everyone echoed and voted: a voter re-sends the proposal it locked to nobody.
    const clean = simulate(s, { seed: 21, maxDelay: 5 });
    assertCompleted(s, clean);
    for (const c of clean.ceremonies) assert.deepEqual(targets(c, 'proposal'), []);
    // Votes go to the proposal's author (node 0, to:1) alone, so it is the one that certifies from
    // votes, and its voters learn the outcome from its certificate.
    const author = clean.ceremonies[0]!;
    assert.deepEqual(targets(author, 'certificate'), [key(1), key(2), key(3)].sort());
    assert.equal(author.lacksCertificate(s.nodes[1]!.publicKey), true);
    // A voter's vote goes to the author alone for half a phase after it was cast, then to everyone.
    const voter = clean.ceremonies[2]!;
    const voteTo = (nowMs: number) => voter.retransmit(nowMs).find((x) => kindOf(x.payload) === 'vote')!.to?.map((k) => Buffer.from(k).toString('hex'));
    assert.deepEqual(voteTo(0), [key(0)]);
    assert.equal(voteTo(10 ** 9), undefined);
    // The others relay it only to a voter whose vote the certificate lacks (it came after the quorum).
    for (const i of [1, 2, 3]) {
      const to = targets(clean.ceremonies[i]!, 'certificate');
      assert.ok(to.length <= 1 && !to.includes(key(0)), `member ${i + 1} relays the certificate to ${to.length} members`);
    }
    // Member 4 withholds its vote (and every certificate): the others address the certificate to it alone.
    const withheld = simulate(s, { seed: 21, maxDelay: 5, withholdVotes: new Set([3]) });
    for (const i of [1, 2]) {
      assert.equal(withheld.ceremonies[i]!.phase, 'done');
      assert.deepEqual(targets(withheld.ceremonies[i]!, 'certificate'), [key(3)]);
      // What a runner asks before it answers a late participant with the certificate.
      assert.equal(withheld.ceremonies[i]!.lacksCertificate(s.nodes[3]!.publicKey), true);
      assert.equal(withheld.ceremonies[i]!.lacksCertificate(s.nodes[i === 1 ? 2 : 1]!.publicKey), false);
    }
    // Its vote arriving after the outcome counts as "it gathers the votes itself"; a forged one does not.
    const late = withheld.persisted[3]!;
    const forged = late.slice();
    forged[forged.length - 1]! ^= 1;
    const member = withheld.ceremonies[1]!;
    member.receive(forged, 10_000);
    assert.deepEqual(targets(member, 'certificate'), [key(3)]);
    member.receive(late, 10_001);
    assert.deepEqual(targets(member, 'certificate'), []);
    assert.equal(member.lacksCertificate(s.nodes[3]!.publicKey), false);
  });

  it('a voter that signs two handovers cannot make one honest member refuse the certificate another holds (both votes count, each for its digest)', () => {
    // Refresh 2-of-4; member 3 starts late so the liar's vote decides whether a quorum is reached.
    const s = makeScenario({ n: 4, t: 2, nTo: 4, tTo: 2, stay: [1, 2, 3, 4].map((i) => [i, i] as [number, number]) });
    const r = simulate(s, { startAt: new Map([[2, 1500]]), withholdVotes: new Set([3]), until: 5000, maxDelay: 5 });
    const liar = s.nodes[3]!;
    const realVote = r.persisted[3]!;
    const other = new Uint8Array(32).fill(7);
    const forged = withSignature(encodeUnsigned({ kind: 'vote', fromId: 4, toId: 4, digest: other }), identityOf(liar).sign(handoverVoteMessage(other)));
    const [a, c] = [r.ceremonies[0]!, r.ceremonies[1]!];
    c.receive(forged, 5001);
    const step = a.receive(realVote, 5001);
    assert.equal(a.phase, 'done');
    const certificate = step.outbound.find((o) => kindOf(o.payload) === 'certificate')!.payload;
    c.receive(certificate, 5002);
    assert.equal(c.phase, 'done', 'the certificate A committed is accepted by C, which saw the liar\'s other vote first');
    assert.equal(c.disqualified()['to:4'], 'voted for two handovers');
    const [ca, cc] = [a.outcome()!.certificate, c.outcome()!.certificate];
    assert.deepEqual([cc.transcriptHash, cc.keys], [ca.transcriptHash, ca.keys]);
  });

  it('a proposal sent early for a later attempt waits for that attempt, so a liar due to propose later cannot lock a second proposal beside the current one', () => {
    const s = makeScenario({ n: 4, t: 2, nTo: 4, tTo: 2, stay: [1, 2, 3, 4].map((i) => [i, i] as [number, number]) });
    const liar = 1; // to-id 2: the proposer of attempt 1; it also withholds its vote
    let stalls = 0;
    for (let seed = 1; seed <= 8; seed++) {
      for (const offset of [0, 10, 20]) {
        let injected = false;
        const r = simulate(s, {
          seed,
          minDelay: 1,
          maxDelay: 40,
          withholdVotes: new Set([liar]),
          hook: (now, cs, push) => {
            const dealings = [2, 3].map((i) => cs[i]!.retransmit().map((o) => o.payload).find((p) => kindOf(p) === 'dealing'));
            if (injected || dealings.some((d) => d === undefined)) return;
            injected = true;
            const unsigned = encodeUnsigned({ kind: 'proposal', author: 2, attempt: 1, dealings: dealings as Uint8Array[] });
            const early = withSignature(unsigned, identityOf(s.nodes[liar]!).sign(signingBytes(s.proposalId, unsigned)));
            for (const to of [0, 2, 3]) push(to, early, now + offset);
          },
        });
        if (r.ceremonies.some((c, i) => i !== liar && c.phase !== 'done')) stalls++;
      }
    }
    assert.equal(stalls, 0, 'every honest member finishes in every run');
  });

  it('a member restarted with its persisted vote re-sends the same vote bytes, signs no other vote, and reaches the outcome', () => {
    const s = reshare();
    const first = simulate(s, { seed: 16, maxDelay: 10 });
    assertCompleted(s, first);
    const node = s.nodes[2]!;
    const prior = first.persisted[2];
    assert.ok(prior, 'the vote was persisted');
    const signed: Uint8Array[] = [];
    const restarted = new ReshareCeremony(paramsOf(s, node, prior), identityOf(node, signed), { timing: { phaseMs: 1000 } });
    const step = restarted.start(50_000);
    assert.ok(step.outbound.some((o) => Buffer.compare(o.payload, prior) === 0), 'the prior vote is re-sent verbatim');
    assert.equal(step.persistVote, undefined);
    for (const other of first.ceremonies) {
      if (other === first.ceremonies[2]) continue;
      for (const o of other.retransmit()) {
        const next = restarted.receive(o.payload, 50_001);
        assert.equal(next.persistVote, undefined);
      }
    }
    restarted.tick(60_000);
    const voteDomain = utf8ToBytes('tkms/handover/v1/vote');
    for (const m of signed) assert.ok(!Buffer.from(m).includes(Buffer.from(voteDomain)), 'no vote signed after the restart');
    const outcome = restarted.outcome();
    assert.ok(outcome);
    assert.equal(outcome.certificate.transcriptHash, first.outcomes[0]!.certificate.transcriptHash);
    assert.deepEqual(outcome.newShares, first.outcomes[2]!.newShares);
  });

  it('a member that sees only the certificate message (even one restarted before it said hello) computes its share', () => {
    const s = reshare();
    // Node 6 (a new member, to:4) receives nothing but certificates; its own messages still go out.
    const r = simulate(s, { seed: 17, maxDelay: 10, onlyKinds: new Map([[6, new Set(['certificate'] as const)]]) });
    assertCompleted(s, r);
    const certificateMessage = r.ceremonies[0]!.retransmit().find((o) => kindOf(o.payload) === 'certificate')!.payload;
    const node = s.nodes[6]!;
    const fresh = new ReshareCeremony(paramsOf(s, node), identityOf(node), { timing: { phaseMs: 1000 } });
    fresh.receive(certificateMessage, 5);
    assert.equal(fresh.phase, 'done');
    assert.deepEqual(fresh.outcome()!.newShares, r.outcomes[6]!.newShares);
  });

  it('refuses malformed, oversized and forged messages with a TkmsError, and drops messages past an author\'s bounds', () => {
    const s = reshare();
    const r = simulate(s, { seed: 18 });
    const node = s.nodes[3]!;
    const c = new ReshareCeremony(paramsOf(s, node), identityOf(node), { timing: { phaseMs: 1000 } });
    const shape: CeremonyShape = { n: 5, t: 3, nTo: 7, tTo: 4, keys: 2, maxAttempts: maxAttempts(7) };
    const dealing = r.ceremonies[0]!.retransmit().find((o) => kindOf(o.payload) === 'dealing')!.payload;
    assert.throws(() => c.receive(Uint8Array.from([...dealing, 0]), 0), (e: unknown) => isTkmsError(e, 'bad_request'));
    const oversized = new Uint8Array(maxMessageSize(shape, 'dealing') + 1);
    oversized.set(dealing.subarray(0, 2));
    assert.throws(() => c.receive(oversized, 0), (e: unknown) => isTkmsError(e, 'bad_request') && /exceed/.test(e.message));
    const forged = dealing.slice();
    forged[forged.length - 1]! ^= 1;
    assert.throws(() => c.receive(forged, 0), (e: unknown) => isTkmsError(e, 'bad_request') && /signature/.test(e.message));
    assert.doesNotThrow(() => decodeCeremonyMessage(dealing, shape));

    const bounds = inboxBounds(shape);
    const inbox = new Inbox(bounds);
    for (let i = 0; i < bounds.perAuthorCount.hello; i++) assert.ok(inbox.admit('a', 'hello', 100));
    assert.equal(inbox.admit('a', 'hello', 100), false, 'per-author count');
    assert.equal(new Inbox(bounds).admit('b', 'proposal', bounds.perAuthorBytes + 1), false, 'per-author bytes');
    const total = new Inbox({ ...bounds, perAuthorBytes: bounds.totalBytes });
    assert.ok(total.admit('c', 'certificate', bounds.totalBytes - 10));
    assert.equal(total.admit('d', 'hello', 11), false, 'total bytes');
    console.log(`      bounds (5→7, 2 keys): per author ${JSON.stringify(bounds.perAuthorCount)}, ${bounds.perAuthorBytes} B per author, ${bounds.totalBytes} B in total`);
  });

  // Timings of larger committees are in `npm run bench` (bench/reshare-memory.ts), not here.
  it('reshares to a committee of the same size with half its members replaced (6 members, t = 3)', () => {
    const stay = Array.from({ length: 3 }, (_, i) => [i + 1, i + 1] as [number, number]);
    const s = makeScenario({ n: 6, t: 3, nTo: 6, tTo: 3, stay });
    const r = simulate(s, { seed: 19, maxDelay: 5 });
    assertCompleted(s, r);
    const fresh = newSharesOf(s, r, 'key-1');
    assert.equal(fresh.length, 6);
    assert.equal(interpolateSecret(fresh.slice(3, 6)), s.secrets.get('key-1'));
  });
});
