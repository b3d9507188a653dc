import assert from 'node:assert/strict';
import { encodeHex, utf8ToBytes } from '../../core/bytes.ts';
import { curveBackend } from '../../core/curve-backend.ts';
import { isTkmsError } from '../../core/errors.ts';
import { verifyDkgPublicResult } from '../../core/dkg/result.ts';
import { interpolateSecret, type ScalarShare } from '../../core/shamir.ts';
import { dkgCeremonyId, inboxBounds, maxAttempts, maxMessageSize, voteQuorum, type CeremonyShape, type DkgCeremonyOutcome } from '../../core/ceremony/index.ts';
import { encodeUnsigned, signingBytes, withSignature } from '../../core/ceremony/codec.ts';
import { Inbox } from '../../core/ceremony/inbox.ts';
import { ReshareCeremony } from '../../core/ceremony/index.ts';
import { identityOf, kindOf, makeScenario, paramsOf, simulate } from './ceremony-harness.ts';
import { makeDkgScenario, newDkgCeremony, simulateDkg, type DkgScenario, type DkgSimResult } from './ceremony-dkg-harness.ts';

/**
 * Every member not in `except` finished with the same result, it verifies against the committee as
 * every existing verifier checks it, every member with a share holds the one its Y_i commits to, and
 * any t shares interpolate to the group key's secret.
 */
export function assertDkgCompleted(s: DkgScenario, r: DkgSimResult, except: number[] = []): DkgCeremonyOutcome {
  const outcomes = s.nodes.filter((n) => !except.includes(n.index)).map((n) => {
    const o = r.outcomes[n.index];
    assert.ok(o, `node ${n.index} finished (${r.ceremonies[n.index]!.phase}: ${r.ceremonies[n.index]!.failureReason})`);
    return { node: n, o };
  });
  const first = outcomes[0]!.o;
  const expected = { committeeId: s.committee.committeeId, t: s.committee.t, memberKeys: s.memberKeys };
  const verified = verifyDkgPublicResult(first.result, expected);
  assert.ok(Object.keys(first.result.signatures).length >= voteQuorum(s.nodes.length, s.committee.t), 'a vote quorum signed');
  assert.equal(Object.keys(verified.signatures).length, Object.keys(first.result.signatures).length, 'every signature carried verifies');
  const { signatures: _a, ...firstUnsigned } = first.result;
  const shares: ScalarShare[] = [];
  for (const { node, o } of outcomes) {
    const { signatures: _b, ...unsigned } = o.result;
    assert.deepEqual(unsigned, firstUnsigned, `node ${node.index} holds the same result`);
    verifyDkgPublicResult(o.result, expected);
    assert.ok(o.share !== undefined, `node ${node.index} has its share`);
    assert.equal(encodeHex(curveBackend().multiplyBaseSecret(o.share)), o.result.verificationShares[String(node.fromId)]);
    shares.push({ id: node.fromId!, value: o.share });
  }
  const t = s.committee.t;
  if (shares.length >= t) {
    const secret = interpolateSecret(shares.slice(0, t));
    assert.equal(encodeHex(curveBackend().multiplyBaseSecret(secret)), first.result.groupPublicKey, 't shares interpolate to the group key');
    assert.equal(interpolateSecret(shares.slice(shares.length - t)), secret);
    if (t > 1) assert.notEqual(interpolateSecret(shares.slice(0, t - 1)), secret);
  }
  return first;
}

describe('DKG ceremony (core/ceremony, DKG kind)', function () {
  this.timeout(300_000);

  it('makes a 3-of-5 key: every member deals and is qualified, shares match Y_i, t shares interpolate to the group key, verifyDkgPublicResult accepts the result', () => {
    const s = makeDkgScenario({ n: 5, t: 3, seed: 1 });
    const r = simulateDkg(s, { seed: 3, maxDelay: 40 });
    assert.deepEqual(r.errors, []);
    const o = assertDkgCompleted(s, r);
    assert.deepEqual(o.result.qualified, [1, 2, 3, 4, 5]);
    assert.equal(o.result.epoch, undefined, 'epoch 0 is spelled by its absence');
    for (const c of r.ceremonies) assert.deepEqual(c.disqualified(), {});
  });

  it('a result verifies only with a vote quorum of signatures, not t: liars adding theirs to a result an honest minority voted for cannot make it pass', () => {
    const s = makeDkgScenario({ n: 7, t: 3, seed: 5 });
    const o = assertDkgCompleted(s, simulateDkg(s, { seed: 6, maxDelay: 20 }));
    const expected = { committeeId: s.committee.committeeId, t: 3, memberKeys: s.memberKeys };
    const q = voteQuorum(7, 3);
    assert.equal(q, 5);
    const keep = (k: number) => ({ ...o.result, signatures: Object.fromEntries(Object.entries(o.result.signatures).slice(0, k)) });
    assert.equal(Object.keys(verifyDkgPublicResult(keep(q), expected).signatures).length, q);
    for (const k of [3, q - 1]) {
      assert.throws(() => verifyDkgPublicResult(keep(k), expected), (e: unknown) => isTkmsError(e, 'dkg_failed') && /need 5/.test((e as Error).message), `${k} signatures`);
    }
  });

  it('makes a 3-of-5 key at committee epoch 4: the result carries the epoch (and so its signed digest does)', () => {
    const s = makeDkgScenario({ n: 5, t: 3, seed: 2, epoch: 4 });
    const r = simulateDkg(s, { seed: 4, maxDelay: 20 });
    const o = assertDkgCompleted(s, r);
    assert.equal(o.result.epoch, 4);
  });

  it('a dealer that seals bad sub-shares is out by complaint (publicly provable), and the rest make the key', () => {
    const s = makeDkgScenario({ n: 5, t: 3, seed: 5 });
    const r = simulateDkg(s, { seed: 11, maxDelay: 30, faults: new Map([[0, { badSubShareTo: [2, 4] }]]) });
    assert.deepEqual(r.errors, []);
    const o = assertDkgCompleted(s, r);
    assert.deepEqual(o.result.qualified, [2, 3, 4, 5]);
    for (const c of r.ceremonies) assert.match(c.disqualified()['1'] ?? '', /does not match its commitments/);
    // The complainers are not blamed: their complaints hold.
    for (const c of r.ceremonies) assert.equal(c.disqualified()['2'], undefined);
  });

  it('a false complaint against an honest dealer (its sub-share opens fine) leaves the dealer in and names the complainer', () => {
    const s = makeDkgScenario({ n: 5, t: 3, seed: 6 });
    const r = simulateDkg(s, { seed: 12, maxDelay: 30, faults: new Map([[3, { falseComplaintAgainst: [2] }]]) });
    assert.deepEqual(r.errors, []);
    const o = assertDkgCompleted(s, r);
    assert.deepEqual(o.result.qualified, [1, 2, 3, 4, 5], 'dealer 2 stays qualified');
    for (const [i, c] of r.ceremonies.entries()) if (i !== 3) assert.match(c.disqualified()['4'] ?? '', /complained about a valid sub-share of 2/);
  });

  it('a dealer whose proof of knowledge of its constant term fails is out for everyone; the rest make the key', () => {
    const s = makeDkgScenario({ n: 5, t: 3, seed: 7 });
    const r = simulateDkg(s, { seed: 13, maxDelay: 30, faults: new Map([[4, { badProofOfKnowledge: true }]]) });
    assert.deepEqual(r.errors, []);
    const o = assertDkgCompleted(s, r);
    assert.deepEqual(o.result.qualified, [1, 2, 3, 4]);
    for (const c of r.ceremonies) assert.match(c.disqualified()['5'] ?? '', /proof of knowledge/);
  });

  it('a dealer that signs two different dealings (one to each half) cannot split the members: one result for everyone', () => {
    const s = makeDkgScenario({ n: 5, t: 3, seed: 8 });
    const r = simulateDkg(s, { seed: 14, maxDelay: 30, faults: new Map([[1, { equivocateDealing: true }]]) });
    assert.deepEqual(r.errors, []);
    const o = assertDkgCompleted(s, r);
    // A proposer that saw both versions leaves the dealer out; one that saw one carries it whole: either way one result.
    assert.ok(o.result.qualified.length >= 4);
    assert.ok(r.ceremonies.some((c) => /two different dealings/.test(c.disqualified()['2'] ?? '')), 'members sent both versions name the dealer');
  });

  it('completes despite a proposer that signs two proposals (different dealer sets) for one attempt', () => {
    const s = makeDkgScenario({ n: 5, t: 2, seed: 9 });
    const r = simulateDkg(s, { seed: 15, maxDelay: 30, faults: new Map([[0, { equivocateProposal: true }]]) });
    assert.deepEqual(r.errors, []);
    assertDkgCompleted(s, r);
    assert.ok(r.ceremonies.some((c) => /two proposals/.test(c.disqualified()['1'] ?? '')), 'the proposer is named');
  });

  it('a silent member (it is also the first proposer) neither deals nor votes: the next proposer leads and the rest make the key, with a Y_i for the silent one', () => {
    const s = makeDkgScenario({ n: 5, t: 3, seed: 10 });
    const r = simulateDkg(s, { seed: 16, maxDelay: 30, faults: new Map([[0, { silent: true }]]) });
    assert.deepEqual(r.errors, []);
    const o = assertDkgCompleted(s, r, [0]);
    assert.deepEqual(o.result.qualified, [2, 3, 4, 5]);
    assert.ok(o.result.verificationShares['1'], 'every member has a verification share');
    assert.equal(r.outcomes[0], undefined);
    assert.ok(r.endMs > 2 * 1000 + 3 * 1000, `finished in attempt 1 or later (t = ${r.endMs})`);
  });

  it('a member restarted with its persisted vote re-sends the same vote bytes, signs no other vote, and reaches the same result and share', () => {
    const s = makeDkgScenario({ n: 5, t: 3, seed: 11 });
    const first = simulateDkg(s, { seed: 17, maxDelay: 10 });
    const o = assertDkgCompleted(s, first);
    const node = s.nodes[2]!;
    const prior = first.persisted[2];
    assert.ok(prior, 'the vote was persisted');
    const signed: Uint8Array[] = [];
    const restarted = newDkgCeremony(s, node, { priorVote: prior, signed });
    const step = restarted.start(50_000);
    assert.ok(step.outbound.some((x) => Buffer.compare(x.payload, prior) === 0), 'the prior vote is re-sent verbatim');
    assert.equal(step.persistVote, undefined);
    for (const other of first.ceremonies) {
      if (other === first.ceremonies[2]) continue;
      for (const x of other.retransmit()) assert.equal(restarted.receive(x.payload, 50_001).persistVote, undefined);
    }
    restarted.tick(60_000);
    const confirmDomain = utf8ToBytes('tkms/dkg/v2/confirm');
    for (const m of signed) assert.ok(!Buffer.from(m).includes(Buffer.from(confirmDomain)), 'no vote signed after the restart');
    const again = restarted.outcome();
    assert.ok(again);
    assert.equal(again.result.transcriptHash, o.result.transcriptHash);
    assert.equal(again.share, first.outcomes[2]!.share);
    // A member restarted before it voted deals byte-identically (every scalar comes from the seed and the ceremony id), never a second dealing.
    const dealingOf = (c: { retransmit(): { payload: Uint8Array }[] }) => c.retransmit().find((x) => kindOf(x.payload) === 'dealing')?.payload;
    const early = newDkgCeremony(s, node);
    early.start(70_000);
    // Hellos are not retransmitted (dealings carry them): a fresh start of each other member says the same hello.
    for (const other of s.nodes) if (other !== node) for (const x of newDkgCeremony(s, other).start(0).outbound) if (kindOf(x.payload) === 'hello') early.receive(x.payload, 70_001);
    assert.ok(dealingOf(early), 'it dealt once every hello was in');
    assert.deepEqual(dealingOf(early), dealingOf(first.ceremonies[2]!));
  });

  it('makes an 11-of-16 key (every share matches its Y_i, t shares interpolate, the result verifies)', function () {
    this.timeout(600_000);
    const s = makeDkgScenario({ n: 16, t: 11, seed: 12 });
    const started = process.hrtime.bigint();
    const r = simulateDkg(s, { seed: 18, maxDelay: 5 });
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    assert.deepEqual(r.errors, []);
    const o = assertDkgCompleted(s, r);
    assert.equal(o.result.qualified.length, 16);
    console.log(`      n=16 t=11: ${ms.toFixed(0)} ms for 16 members in one process (${(ms / 16).toFixed(0)} ms CPU per member), ${r.deliveries} deliveries`);
  });

  it('a DKG message is refused by a reshare ceremony and a reshare message by a DKG ceremony (type bytes and signing domain differ)', () => {
    const d = makeDkgScenario({ n: 4, t: 2, seed: 13 });
    const dkg = simulateDkg(d, { seed: 19, maxDelay: 5 });
    assertDkgCompleted(d, dkg);
    const rs = makeScenario({ n: 4, t: 2, nTo: 4, tTo: 2, stay: [1, 2, 3, 4].map((i) => [i, i] as [number, number]) });
    const reshare = simulate(rs, { seed: 20, maxDelay: 5 });
    const reshareMember = new ReshareCeremony(paramsOf(rs, rs.nodes[0]!), identityOf(rs.nodes[0]!), { timing: { phaseMs: 1000 } });
    const dkgMember = newDkgCeremony(d, d.nodes[0]!);
    for (const kind of ['hello', 'dealing', 'proposal', 'echo', 'vote', 'certificate'] as const) {
      const dkgMessage = dkg.samples.get(kind)![0]!;
      const reshareMessage = reshare.samples.get(kind)![0]!;
      assert.throws(() => reshareMember.receive(dkgMessage, 0), (e: unknown) => isTkmsError(e, 'bad_request') && /not a reshare message/.test(e.message), kind);
      assert.throws(() => dkgMember.receive(reshareMessage, 0), (e: unknown) => isTkmsError(e, 'bad_request') && /not a dkg message/.test(e.message), kind);
      // With the type byte rewritten, the signature (another domain) still fails: bytes of one family never pass in the other.
      const retyped = dkgMessage.slice();
      retyped[1] = retyped[1]! - 0x10;
      assert.throws(() => reshareMember.receive(retyped, 0), (e: unknown) => isTkmsError(e, 'bad_request'), `${kind} retyped`);
    }
  });

  it('bounds what a peer can make it store from the DKG shape (one committee: every member deals and receives), and drops what is past them', () => {
    const shape: CeremonyShape = { family: 'dkg', n: 7, t: 4, nTo: 7, tTo: 4, keys: 1, maxAttempts: maxAttempts(7) };
    const bounds = inboxBounds(shape);
    // A proposal may carry every member's dealing (it is n dealings long), a certificate one vote per member.
    assert.ok(maxMessageSize(shape, 'proposal') > 7 * maxMessageSize(shape, 'dealing'));
    assert.ok(maxMessageSize(shape, 'certificate') < maxMessageSize(shape, 'proposal') + 7 * 200);
    const reshapeTotal = inboxBounds({ ...shape, family: 'reshare', t: 7 }).totalBytes;
    assert.ok(bounds.totalBytes < reshapeTotal, 'one committee of participants, not two');
    const inbox = new Inbox(bounds);
    for (let i = 0; i < bounds.perAuthorCount.dealing; i++) assert.ok(inbox.admit('a', 'dealing', 100));
    assert.equal(inbox.admit('a', 'dealing', 100), false, 'per-author count');
    assert.equal(new Inbox(bounds).admit('b', 'proposal', bounds.perAuthorBytes + 1), false, 'per-author bytes');
    const total = new Inbox({ ...bounds, perAuthorBytes: bounds.totalBytes });
    assert.ok(total.admit('c', 'certificate', bounds.totalBytes - 10));
    assert.equal(total.admit('d', 'hello', 11), false, 'total bytes');
    console.log(`      bounds (DKG n=7 t=4): per author ${JSON.stringify(bounds.perAuthorCount)}, ${bounds.perAuthorBytes} B per author, ${bounds.totalBytes} B in total; largest proposal ${maxMessageSize(shape, 'proposal')} B`);
  });

  it('a member stores at most two hellos of one author: a third, validly signed, is dropped (and the author is named for the second)', () => {
    const s = makeDkgScenario({ n: 4, t: 2, seed: 14 });
    const member = newDkgCeremony(s, s.nodes[0]!);
    member.start(0);
    const liar = s.nodes[1]!;
    const ceremonyId = dkgCeremonyId(s.keyId, s.committee, s.sessionId);
    const hello = (x: bigint) => {
      const unsigned = encodeUnsigned({ kind: 'hello', author: 2, receiverKey: curveBackend().multiplyBaseSecret(x) }, 'dkg');
      return withSignature(unsigned, identityOf(liar).sign(signingBytes(ceremonyId, unsigned, 'dkg')));
    };
    member.receive(hello(11n), 1);
    member.receive(hello(12n), 2);
    assert.equal(member.disqualified()['2'], 'said hello with two receiver keys');
    // Dropped, not refused: the third is neither an error nor stored, and a repeat of it is not either.
    assert.doesNotThrow(() => member.receive(hello(13n), 3));
    assert.deepEqual((member as unknown as { messages: { inbox: Inbox } }).messages.inbox.storedBytes(), 2 * hello(11n).length);
  });
});
