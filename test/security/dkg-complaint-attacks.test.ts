import assert from 'node:assert/strict';
import { bytesToHex } from '../../core/bytes.ts';
import { decodePoint, encodePoint, G, type Point } from '../../core/curve.ts';
import { decodeDkgMessage, encodeDkgPublicResult, type DkgPublicResult } from '../../core/dkg/index.ts';
import { MESSAGE_TYPES, type JustificationMessage } from '../../core/dkg/codec.ts';
import { sessionContext } from '../../core/dkg/context.ts';
import { evaluateCommitments } from '../../core/dkg/frost.ts';
import { openWithPairKey } from '../../core/dkg/sealed-share.ts';
import { runDkg, type RunResult } from '../unit/dkg-harness.ts';

/**
 * Review of the sealed answers to complaints (issue 13, finding 10a), in-process: both attacks use
 * only the protocol's own signed messages, which the harness delivers as the network would.
 */
const N = 5;
const T = 3;
const LIMITS = { t: T, n: N };
const MALICIOUS = 1;
const HONEST_DEALER = 2;
const COMPLAINER = 4;
/** x in D' = D_H + x·G. */
const OFFSET = 12345;

describe('attack: a dealer answers with another dealer’s ephemeral key shifted by x·G, so that the complainer’s proven pair key opens the other dealer’s sealed share (Diffie–Hellman oracle)', function () {
  this.timeout(60_000);
  let run: RunResult;

  before(() => {
    // The complainer (slow, or its shares lost) misses the honest dealer's share and complains;
    // the malicious dealer withholds its share too, so the complainer also opens its answer.
    run = runDkg({
      t: T,
      n: N,
      seed: 7,
      faults: { [MALICIOUS]: { shiftedAnswer: { complainer: COMPLAINER, victim: HONEST_DEALER, offset: OFFSET } } },
      filter: (e) => !(e.from === HONEST_DEALER && e.to === COMPLAINER && e.payload[1] === MESSAGE_TYPES.share),
    });
  });

  it('the attack was made: the malicious dealer answered with the shifted key after the honest dealer answered', () => {
    const events = run.sessions.get(MALICIOUS)!.events;
    assert.ok(events.some((e) => /\(test fault\) answering member 4 with dealer 2's ephemeral key shifted/.test(e)), events.join('\n'));
    const delivered = run.delivered.map((e) => e.payload);
    assert.ok(justifications(delivered).some((j) => j.dealer === HONEST_DEALER && j.recipient === COMPLAINER), 'the honest dealer answered in public');
  });

  it('no observer of every message can open the honest dealer’s sealed share for the complainer', () => {
    const payloads = run.delivered.map((e) => e.payload);
    const context = sessionContext({ ...run.params, selfId: 1 }, run.params.memberIds);
    const image = shareImage(payloads, HONEST_DEALER, COMPLAINER);
    const answers = justifications(payloads).filter((j) => j.dealer === HONEST_DEALER && j.recipient === COMPLAINER);
    assert.ok(answers.length > 0);
    // Every pair key anyone revealed, and every key E seen in any answer: the attacker tries K − x·E.
    const revealed = verdictPairKeys(payloads);
    assert.ok(revealed.length > 0, 'the complainer proved a pair key against the malicious dealer’s answer');
    const keys = new Map(justifications(payloads).map((j) => [bytesToHex(j.recipientKey), decodePoint(j.recipientKey)]));
    const x = BigInt(OFFSET);
    const candidates: Uint8Array[] = [];
    for (const K of revealed) {
      candidates.push(encodePoint(K));
      for (const E of keys.values()) {
        const derived = K.subtract(E.multiply(x));
        if (!derived.is0()) candidates.push(encodePoint(derived));
      }
    }
    for (const answer of answers) {
      const binding = { context, dealer: HONEST_DEALER, recipient: COMPLAINER, recipientKey: answer.recipientKey };
      const sealed = { ephemeralKey: answer.ephemeralKey, ciphertext: answer.ciphertext };
      for (const K of candidates) {
        const opened = openWithPairKey(binding, sealed, K);
        assert.ok(opened === 0n || !G.multiply(opened).equals(image), `pair key ${bytesToHex(K).slice(0, 16)}… opens dealer ${HONEST_DEALER}'s share for member ${COMPLAINER}`);
      }
    }
  });

  it('the complainer proved one pair key, for its key for the malicious dealer only; the honest members agree and keep the honest dealer', () => {
    const payloads = run.delivered.map((e) => e.payload);
    const evidence = new Map<string, Uint8Array>();
    for (const p of payloads) {
      if (p[1] !== MESSAGE_TYPES.verdict) continue;
      const v = decodeDkgMessage(p, LIMITS);
      if (v.kind !== 'verdict' || v.evidence === undefined) continue;
      assert.equal(v.complainer, COMPLAINER);
      assert.equal(v.dealer, MALICIOUS);
      evidence.set(bytesToHex(v.evidence.pairKey), (decodeDkgMessage(v.evidence.justification, LIMITS) as JustificationMessage).recipientKey);
    }
    assert.equal(evidence.size, 1, 'one pair key revealed');
    const complaints = payloads.map((p) => decodeDkgMessage(p, LIMITS)).find((m) => m.kind === 'complaints' && m.complainer === COMPLAINER);
    assert.ok(complaints?.kind === 'complaints');
    const keyFor = (dealer: number): string => bytesToHex(complaints.complaints.find((c) => c.accused === dealer)!.encryptionKey);
    assert.notEqual(keyFor(MALICIOUS), keyFor(HONEST_DEALER), 'one key per accused dealer');
    assert.deepEqual([...evidence.values()].map(bytesToHex), [keyFor(MALICIOUS)]);
    const honest = [2, 3, 4, 5];
    const results = honest.map((id) => {
      const s = run.sessions.get(id)!;
      assert.equal(s.phase, 'done', `member ${id}: ${s.abortReason}`);
      assert.match(s.disqualified.get(MALICIOUS) ?? '', /does not match its commitments/, `member ${id}`);
      return s.result!;
    });
    assert.equal(new Set(results.map(comparable)).size, 1);
    assert.deepEqual(results[0]!.qualified, [2, 3, 4, 5]);
  });
});

describe('attack: a complainer signs two complaints messages with different keys and sends one to each half of the committee, to split the qualified set', function () {
  this.timeout(60_000);
  // Member 1 complains against dealer 2, sending one signed copy to member 2 and another (other
  // keys) to members 3 and 4, then stays silent (its verdicts are lost). Dealer 2 can answer only
  // the copy it holds; with the first copy winning, members 3 and 4 saw no answer sealed to their
  // copy's key and disqualified dealer 2 while members 1 and 2 kept it: two keys, each with t = 2
  // matching signatures.
  for (const [seed, jitter] of [
    [undefined, false],
    [3, false],
    [5, true],
    [8, true],
  ] as const) {
    it(`honest members end with one qualified set and one key (${seed === undefined ? 'FIFO' : `seed ${seed}${jitter ? ', staggered deadlines' : ''}`})`, () => {
      const run = runDkg({
        t: 2,
        n: 4,
        ...(seed === undefined ? {} : { seed, jitter }),
        faults: { 1: { falseComplaintAgainst: [2], equivocateComplaints: [3, 4] } },
        filter: (e) => !(e.from === 1 && e.payload[1] === MESSAGE_TYPES.verdict),
      });
      const copies = new Set(run.delivered.filter((e) => e.from === 1 && e.payload[1] === MESSAGE_TYPES.complaints).map((e) => bytesToHex(e.payload)));
      assert.equal(copies.size, 2, 'member 1 sent two different complaints messages');
      const results = [2, 3, 4].map((id) => {
        const s = run.sessions.get(id)!;
        assert.equal(s.phase, 'done', `member ${id}: ${s.abortReason}`);
        return s.result!;
      });
      assert.deepEqual(
        results.map((r) => r.qualified),
        [
          [1, 2, 3, 4],
          [1, 2, 3, 4],
          [1, 2, 3, 4],
        ],
      );
      assert.equal(new Set(results.map(comparable)).size, 1, 'honest members hold different keys');
      for (const id of [2, 3, 4]) assert.ok(run.sessions.get(id)!.events.some((e) => /member 1 signed two different complaints messages/.test(e)), `member ${id} saw both copies`);
    });
  }
});

/** A result without its signatures (which confirmations a member collected may differ). */
function comparable(r: DkgPublicResult): string {
  return bytesToHex(encodeDkgPublicResult({ ...r, signatures: {} }));
}

function justifications(payloads: readonly Uint8Array[]): JustificationMessage[] {
  const out: JustificationMessage[] = [];
  for (const p of payloads) {
    if (p[1] !== MESSAGE_TYPES.justification) continue;
    const m = decodeDkgMessage(p, LIMITS);
    if (m.kind === 'justification') out.push(m);
  }
  return out;
}

/** Every pair key revealed in a verdict's evidence. */
function verdictPairKeys(payloads: readonly Uint8Array[]): Point[] {
  const keys = new Map<string, Point>();
  for (const p of payloads) {
    if (p[1] !== MESSAGE_TYPES.verdict) continue;
    const m = decodeDkgMessage(p, LIMITS);
    if (m.kind === 'verdict' && m.evidence !== undefined) keys.set(bytesToHex(m.evidence.pairKey), decodePoint(m.evidence.pairKey));
  }
  return [...keys.values()];
}

/** f_dealer(x)·G from the dealer's round-1 package. */
function shareImage(payloads: readonly Uint8Array[], dealer: number, x: number): Point {
  for (const p of payloads) {
    if (p[1] !== MESSAGE_TYPES.round1) continue;
    const m = decodeDkgMessage(p, LIMITS);
    if (m.kind === 'round1' && m.dealer === dealer) return evaluateCommitments(m.commitments, x);
  }
  throw new Error(`no round-1 package of dealer ${dealer}`);
}
