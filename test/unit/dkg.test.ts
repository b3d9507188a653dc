import assert from 'node:assert/strict';
import fc from 'fast-check';
import { secp256k1_FROST } from '@noble/curves/secp256k1.js';
import { bytesToHex, concatBytes, decodeHex, encodeHex, utf8ToBytes } from '../../core/bytes.ts';
import { decodePoint, encodePoint, encodeScalar, G, mod, randomScalar } from '../../core/curve.ts';
import { isTkmsError } from '../../core/errors.ts';
import { interpolateSecret, type ScalarShare } from '../../core/shamir.ts';
import {
  DkgSession,
  decodeDkgPublicResult,
  encodeDkgPublicResult,
  verifyDkgPublicResult,
  type DkgPublicResult,
} from '../../core/dkg/index.ts';
import { frostIdentifier, deal, verifyProofOfKnowledge, evaluateCommitments } from '../../core/dkg/frost.ts';
import { complaintsUnsigned, decodeDkgMessageOfKind, justificationUnsigned, MESSAGE_TYPES, verdictUnsigned, withSignature } from '../../core/dkg/codec.ts';
import { messageToSign, sessionContext } from '../../core/dkg/context.ts';
import { openShare, openWithProvenKey, provePairKey, sealShare } from '../../core/dkg/sealed-share.ts';
import { makeKeyring, makeNodeCryptoKeyring, runDkg, type RunResult } from './dkg-harness.ts';

/** Every k-subset of xs (small inputs only). */
function subsets<T>(xs: readonly T[], k: number): T[][] {
  if (k === 0) return [[]];
  if (xs.length < k) return [];
  const [head, ...rest] = xs;
  return [...subsets(rest, k - 1).map((s) => [head!, ...s]), ...subsets(rest, k)];
}

function doneSessions(run: RunResult): [number, DkgSession][] {
  return [...run.sessions].filter(([, s]) => s.phase === 'done');
}

/**
 * The checks every successful run must pass; returns the common result. With `only`, just those
 * members are checked (the others crashed), and their confirmation signatures may differ: which
 * confirmations a member collected depends on what reached it before its deadline.
 */
function assertConsistentKey(run: RunResult, expectDone: readonly number[], only?: readonly number[]): DkgPublicResult {
  const done = doneSessions(run).filter(([id]) => only === undefined || only.includes(id));
  assert.deepEqual(
    done.map(([id]) => id),
    [...expectDone],
    `done sessions; others: ${[...run.sessions].filter(([, s]) => s.phase !== 'done').map(([id, s]) => `${id}=${s.phase} ${s.abortReason ?? ''}`).join(' / ')}`,
  );
  const first = done[0]![1].result!;
  const comparable = (r: DkgPublicResult): string => bytesToHex(encodeDkgPublicResult(only === undefined ? r : { ...r, signatures: {} }));
  const encoded = comparable(first);
  for (const [id, s] of done) {
    assert.equal(comparable(s.result!), encoded, `member ${id} has a different result`);
    if (only !== undefined) verifyDkgPublicResult(s.result!, { ...run.params, memberKeys: run.keyring.memberKeys });
  }
  const t = first.t;
  assert.ok(Object.keys(first.signatures).length >= t);
  verifyDkgPublicResult(first, { ...run.params, memberKeys: run.keyring.memberKeys });

  const shares: ScalarShare[] = done.map(([id, s]) => ({ id, value: s.takeShare() }));
  for (const { id, value } of shares) {
    assert.ok(G.multiply(value).equals(decodePoint(first.verificationShares[String(id)]!)), `Y_${id} != share_${id}·G`);
  }
  const groupKey = decodePoint(first.groupPublicKey);
  const candidates = subsets(shares, t).slice(0, 12);
  assert.ok(candidates.length > 0);
  for (const subset of candidates) {
    assert.ok(G.multiply(interpolateSecret(subset)).equals(groupKey), `t shares ${subset.map((s) => s.id)} do not interpolate the key`);
  }
  if (t > 1) {
    for (const subset of subsets(shares, t - 1).slice(0, 6)) {
      const guess = interpolateSecret(subset);
      assert.ok(guess === 0n || !G.multiply(guess).equals(groupKey), 't − 1 shares must not give the key');
    }
  }
  return first;
}

describe('DKG: FROST identifiers', () => {
  it('member id i is the FROST identifier with scalar i, so FROST shares interpolate with plain ids', () => {
    for (const i of [1, 2, 7, 255, 65535]) assert.equal(frostIdentifier(i), bytesToHex(encodeScalar(BigInt(i))));
    const ids = [1, 2, 3, 4];
    const signers = { min: 3, max: 4 };
    const r1 = ids.map((i) => secp256k1_FROST.DKG.round1(frostIdentifier(i), signers));
    const r2 = r1.map((me, k) => secp256k1_FROST.DKG.round2(me.secret, r1.filter((_, j) => j !== k).map((o) => o.public)));
    const keys = r1.map((me, k) =>
      secp256k1_FROST.DKG.round3(
        me.secret,
        r1.filter((_, j) => j !== k).map((o) => o.public),
        r2.filter((_, j) => j !== k).map((out) => out[frostIdentifier(ids[k]!)]!),
      ),
    );
    const groupKey = decodePoint(encodeHex(keys[0]!.public.commitments[0]!));
    const shares = keys.map((key, k) => ({ id: ids[k]!, value: BigInt('0x' + bytesToHex(key.secret.signingShare)) }));
    for (const subset of subsets(shares, 3)) assert.ok(G.multiply(interpolateSecret(subset)).equals(groupKey));
    assert.ok(!G.multiply(interpolateSecret(shares.slice(0, 2))).equals(groupKey));
  });

  it('verifies FROST proofs of knowledge and rejects wrong dealer ids or tampered proofs', () => {
    for (const t of [1, 2, 5]) {
      const d = deal(3, t, 6);
      assert.equal(d.commitmentBytes.length, t);
      assert.ok(verifyProofOfKnowledge(3, d.commitmentBytes[0]!, d.proofOfKnowledge));
      assert.ok(!verifyProofOfKnowledge(4, d.commitmentBytes[0]!, d.proofOfKnowledge));
      const tampered = d.proofOfKnowledge.slice();
      tampered[64] = tampered[64]! ^ 1;
      assert.ok(!verifyProofOfKnowledge(3, d.commitmentBytes[0]!, tampered));
      const other = deal(3, t, 6);
      assert.ok(!verifyProofOfKnowledge(3, other.commitmentBytes[0]!, d.proofOfKnowledge));
      // The commitments are the polynomial's: share for x matches evaluateCommitments at x.
      const commitments = d.commitmentBytes.map((c) => decodePoint(c));
      assert.ok(commitments[0]!.equals(G.multiply(d.coefficients[0]!)));
      assert.ok(evaluateCommitments(commitments, 5).equals(G.multiply(d.coefficients.reduceRight((acc, c) => mod(acc * 5n + c), 0n))));
    }
  });
});

describe('DKG: honest runs', () => {
  it('5 members, t = 3: everyone done with the same verifiable result', () => {
    const run = runDkg({ t: 3, n: 5 });
    const result = assertConsistentKey(run, [1, 2, 3, 4, 5]);
    assert.deepEqual(result.qualified, [1, 2, 3, 4, 5]);
    assert.equal(run.deadlines, 0, 'the happy path needs no deadline');
    assert.equal(Object.keys(result.verificationShares).length, 5);
    assert.equal(result.sessionId, encodeHex(run.params.sessionId));
    for (const s of run.sessions.values()) assert.equal(s.disqualified.size, 0);
  });

  for (const [t, n, seed] of [
    [1, 1, undefined],
    [2, 2, 11],
    [1, 3, 12],
    [2, 3, 13],
    [7, 10, 14],
    [11, 16, 15],
  ] as const) {
    it(`${t}-of-${n}${seed === undefined ? '' : `, shuffled delivery (seed ${seed})`}`, function () {
      this.timeout(120_000);
      const run = runDkg({ t, n, ...(seed === undefined ? {} : { seed }) });
      const ids = Array.from({ length: n }, (_, i) => i + 1);
      assert.deepEqual(assertConsistentKey(run, ids).qualified, ids);
      assert.equal(run.deadlines, 0);
    });
  }

  it('buffers messages that arrive before start() or before their phase', () => {
    const run = runDkg({ t: 3, n: 5, seed: 99, lateStarters: [2, 4] });
    assertConsistentKey(run, [1, 2, 3, 4, 5]);
    assert.equal(run.deadlines, 0);
  });
});

describe('DKG: faults', () => {
  it('a bad share to one member disqualifies that dealer everywhere; the rest complete', () => {
    const run = runDkg({ t: 3, n: 5, seed: 3, faults: { 1: { badShareTo: [3] } } });
    const result = assertConsistentKey(run, [1, 2, 3, 4, 5]);
    assert.deepEqual(result.qualified, [2, 3, 4, 5]);
    for (const [id, s] of run.sessions) assert.match(s.disqualified.get(1) ?? '', /share that does not match/, `member ${id}`);
  });

  it('a silent member is excluded after the deadline; the others complete', () => {
    const run = runDkg({ t: 3, n: 5, seed: 4, faults: { 5: { silent: true } } });
    const result = assertConsistentKey(run, [1, 2, 3, 4]);
    assert.deepEqual(result.qualified, [1, 2, 3, 4]);
    assert.equal(run.deadlines, 1);
    assert.ok(result.verificationShares['5'], 'Y_5 is published for the silent member too');
    for (const id of [1, 2, 3, 4]) assert.match(run.sessions.get(id)!.disqualified.get(5) ?? '', /no round-1 package/);
  });

  it('an equivocating round-1 dealer is excluded consistently', () => {
    const run = runDkg({ t: 3, n: 5, seed: 5, faults: { 2: { equivocateRound1: [4, 5] } } });
    const result = assertConsistentKey(run, [1, 2, 3, 4, 5]);
    assert.deepEqual(result.qualified, [1, 3, 4, 5]);
    for (const s of run.sessions.values()) assert.match(s.disqualified.get(2) ?? '', /equivocated/);
  });

  it('a false complaint is cleared by the dealer’s justification; the dealer stays qualified', () => {
    const run = runDkg({ t: 3, n: 5, seed: 6, faults: { 3: { falseComplaintAgainst: [1] } } });
    const result = assertConsistentKey(run, [1, 2, 3, 4, 5]);
    assert.deepEqual(result.qualified, [1, 2, 3, 4, 5]);
    assert.ok(run.sessions.get(2)!.events.some((e) => /dealer 1 answered the complaint of member 3 \(sealed\)/.test(e)));
    assert.ok(run.sessions.get(2)!.events.some((e) => /member 3 withdrew its complaint against dealer 1/.test(e)));
    assert.equal(run.deadlines, 0);
  });

  it('a dealer that withholds a share and never justifies is disqualified at the deadline', () => {
    // Drop every share and every justification from dealer 4 to member 2.
    const run = runDkg({
      t: 3,
      n: 5,
      seed: 8,
      filter: (e) => !(e.from === 4 && e.payload[1] === 3 && e.to === 2) && !(e.from === 4 && e.payload[1] === 5),
    });
    const result = assertConsistentKey(run, [1, 2, 3, 5]);
    assert.deepEqual(result.qualified, [1, 2, 3, 5]);
    for (const id of [1, 2, 3, 5]) assert.match(run.sessions.get(id)!.disqualified.get(4) ?? '', /did not answer the complaint of member 2/);
  });

  it('a dealer whose sealed answer to a complaint is bad is disqualified by every member on the complainer’s evidence', () => {
    // Dealer 2 sends member 4 no share and answers its complaint with a share that does not match.
    const run = runDkg({ t: 3, n: 5, seed: 10, faults: { 2: { badJustificationTo: [4] } } });
    // Dealer 2 itself is faulty and not required to finish.
    const result = assertConsistentKey(run, [1, 3, 4, 5]);
    assert.deepEqual(result.qualified, [1, 3, 4, 5]);
    for (const id of [1, 3, 4, 5]) {
      assert.match(run.sessions.get(id)!.disqualified.get(2) ?? '', /answered the complaint of member 4 with a share that does not match/);
    }
    // Only member 4 could open the answer; everyone else judged the evidence it published.
    assert.match(run.sessions.get(1)!.disqualified.get(2)!, /proven by 4/);
  });

  it('false evidence against an honest dealer’s sealed answer is rejected; the dealer stays qualified', () => {
    const run = runDkg({ t: 3, n: 5, seed: 11, faults: { 3: { falseEvidenceAgainst: [1] } } });
    const result = assertConsistentKey(run, [1, 2, 3, 4, 5]);
    assert.deepEqual(result.qualified, [1, 2, 3, 4, 5]);
    // The dealer itself may have moved on before the evidence arrived; the others judged it.
    for (const id of [2, 4, 5]) {
      assert.ok(run.sessions.get(id)!.events.some((e) => /rejected the evidence of member 3 against dealer 1/.test(e)), `member ${id}`);
    }
  });

  it('only t − 1 live members: aborts with a clear reason', () => {
    const run = runDkg({ t: 3, n: 5, faults: { 3: { silent: true }, 4: { silent: true }, 5: { silent: true } } });
    for (const id of [1, 2]) {
      const s = run.sessions.get(id)!;
      assert.equal(s.phase, 'aborted');
      assert.match(s.abortReason ?? '', /only 2 qualified dealers, need t = 3/);
      assert.equal(s.result, undefined);
      assert.throws(() => s.takeShare(), (e: unknown) => isTkmsError(e, 'dkg_failed'));
    }
  });

  it('names a member that confirms a different transcript', () => {
    // Member 5 never sees dealer 1's round-1 package (its own echo is also lost), so its
    // qualified set differs; the others complete without it and name it.
    const run = runDkg({
      t: 3,
      n: 5,
      seed: 9,
      filter: (e) => !(e.to === 5 && e.from === 1 && e.payload[1] === 1) && !(e.to === 5 && e.payload[1] === 2),
    });
    const result = assertConsistentKey(run, [1, 2, 3, 4]);
    assert.deepEqual(result.qualified, [1, 2, 3, 4, 5]);
    assert.ok(run.sessions.get(1)!.events.some((e) => /member 5 confirmed a different transcript/.test(e)));
    assert.match(run.sessions.get(5)!.abortReason ?? '', /only 1 matching confirmations, need t = 3; different transcript from member\(s\) 1, 2, 3, 4/);
  });
});

describe('DKG: sealed answers to complaints', () => {
  const context = utf8ToBytes('a session context');
  const e = randomScalar();
  const binding = { context, dealer: 2, recipient: 4, recipientKey: encodePoint(G.multiply(e)) };

  it('only the recipient opens a sealed share; a proven pair key opens it for anyone', () => {
    const share = randomScalar();
    const sealed = sealShare(binding, share);
    assert.equal(openShare(binding, e, sealed), share);
    assert.notEqual(openShare(binding, randomScalar(), sealed), share);
    assert.notEqual(openShare({ ...binding, recipient: 5 }, e, sealed), share);
    const proven = provePairKey(binding, e, sealed.ephemeralKey);
    assert.equal(openWithProvenKey(binding, sealed, proven), share);
  });

  it('a pair key that is not e·D, or a proof for another binding or key, opens nothing', () => {
    const sealed = sealShare(binding, randomScalar());
    const proven = provePairKey(binding, e, sealed.ephemeralKey);
    const wrongKey = encodePoint(decodePoint(proven.pairKey).add(G));
    assert.equal(openWithProvenKey(binding, sealed, { ...proven, pairKey: wrongKey }), undefined);
    assert.equal(openWithProvenKey({ ...binding, dealer: 3 }, sealed, proven), undefined);
    // Someone who does not hold e proves a key of its own choosing.
    const other = randomScalar();
    const forged = provePairKey({ ...binding, recipientKey: encodePoint(G.multiply(other)) }, other, sealed.ephemeralKey);
    assert.equal(openWithProvenKey(binding, sealed, forged), undefined);
  });

  it('a dealer that signs any number of answers to one complaint gets at most two kept and relayed by each member', () => {
    const ids = [1, 2, 3, 4, 5];
    const ring = makeKeyring(ids);
    const context = sessionContext({ keyId: 'test-key', committeeId: 'test-committee', sessionId: Uint8Array.from({ length: 16 }, (_, i) => i + 1), t: 3, memberIds: ids, selfId: 1 }, ids);
    let extra = 0;
    // Every copy of dealer 1's answer to member 3 is preceded by a fresh one, signed by dealer 1
    // (member 3's verdicts are lost, so no evidence ends the flood by disqualifying dealer 1).
    const run = runDkg({
      t: 3,
      n: 5,
      seed: 14,
      keyring: () => ring,
      faults: { 3: { falseComplaintAgainst: [1] } },
      filter: (e) => !(e.from === 3 && e.payload[1] === MESSAGE_TYPES.verdict),
      tamper: (payload) => {
        if (payload[1] !== MESSAGE_TYPES.justification) return payload;
        const j = decodeDkgMessageOfKind(payload, 'justification', { t: 3, n: 5 });
        extra++;
        const unsigned = justificationUnsigned(j.dealer, j.recipient, j.recipientKey, j.ephemeralKey, mod(j.ciphertext + BigInt(extra)));
        return withSignature(unsigned, ring.identity(j.dealer).sign(messageToSign(context, unsigned)));
      },
    });
    assert.ok(extra > 4, `${extra} extra answers`);
    for (const id of [2, 4, 5]) {
      const relayed = new Set(run.delivered.filter((e) => e.from === id && e.payload[1] === MESSAGE_TYPES.justification).map((e) => bytesToHex(e.payload)));
      assert.ok(relayed.size >= 1 && relayed.size <= 2, `member ${id} relayed ${relayed.size} answers`);
      assert.ok(run.sessions.get(id)!.events.some((e) => /ignored another answer of dealer 1 to member 3/.test(e)), `member ${id}`);
    }
  });

  it('a member that floods verdicts has at most 4·n² of their signatures checked', () => {
    const ids = [1, 2, 3, 4, 5];
    const ring = makeKeyring(ids);
    let checks = 0;
    const identity = ring.identity(2);
    const counting = { ...identity, verify: (id: number, m: Uint8Array, sig: Uint8Array) => (checks++, identity.verify(id, m, sig)) };
    const session = new DkgSession({ keyId: 'test-key', committeeId: 'test-committee', sessionId: new Uint8Array(16), t: 3, memberIds: ids, selfId: 2 }, counting);
    session.start();
    for (let i = 0; i < 300; i++) {
      const unsigned = verdictUnsigned(3, 1 + (i % 2 === 0 ? 0 : 3), undefined);
      session.receive(3, withSignature(unsigned, Uint8Array.from([i >> 8, i & 0xff, 7])));
    }
    assert.equal(checks, 4 * ids.length * ids.length);
    assert.ok(session.events.some((e) => /ignored a verdict from 3: too many/.test(e)));
  });

  it('a member that floods signed complaints messages of one complainer has at most 2·n of their signatures checked', () => {
    const ids = [1, 2, 3];
    const ring = makeKeyring(ids);
    const params = { keyId: 'test-key', committeeId: 'test-committee', sessionId: new Uint8Array(16).fill(3), t: 2, memberIds: ids };
    let checks = 0;
    const identity = ring.identity(1);
    const counting = { ...identity, verify: (id: number, m: Uint8Array, sig: Uint8Array) => (checks++, identity.verify(id, m, sig)) };
    const sessions = new Map(ids.map((id) => [id, new DkgSession({ ...params, selfId: id }, id === 1 ? counting : ring.identity(id))]));
    // Run everything but the complaints messages to member 1, which then waits in the complaints phase.
    const queue: { from: number; to: number; payload: Uint8Array }[] = [];
    const enqueue = (from: number, outs: { to: number | 'all'; payload: Uint8Array }[]): void => {
      for (const out of outs) for (const to of out.to === 'all' ? ids.filter((id) => id !== from) : [out.to]) queue.push({ from, to, payload: out.payload });
    };
    for (const id of ids) enqueue(id, sessions.get(id)!.start());
    while (queue.length > 0) {
      const e = queue.shift()!;
      if (e.to === 1 && e.payload[1] === MESSAGE_TYPES.complaints) continue;
      enqueue(e.to, sessions.get(e.to)!.receive(e.from, e.payload));
    }
    const victim = sessions.get(1)!;
    assert.equal(victim.phase, 'complaints');
    const context = sessionContext({ ...params, selfId: 1 }, ids);
    checks = 0;
    for (let i = 0; i < 40; i++) {
      const unsigned = complaintsUnsigned(3, [{ accused: 2, encryptionKey: encodePoint(G.multiply(BigInt(i + 1))), evidence: undefined }]);
      victim.receive(2, withSignature(unsigned, ring.identity(3).sign(messageToSign(context, unsigned))));
    }
    assert.equal(checks, 2 * ids.length);
    assert.ok(victim.events.some((e) => /ignored complaints of 3 from 2: too many complaints messages/.test(e)));
    assert.ok(victim.events.some((e) => /member 3 signed two different complaints messages/.test(e)));
  });

  it('a complainer that signs evidence with a forged pair key does not get an honest dealer disqualified', () => {
    const ids = [1, 2, 3, 4, 5];
    const ring = makeKeyring(ids);
    const members = ids;
    let sessionContextBytes: Uint8Array | undefined;
    let forgedCount = 0;
    // Member 3 falsely claims dealer 1's answer is bad; every copy of its evidence is preceded by
    // one it signed with a forged pair key (whose share would not match: only the proof stops it).
    const run = runDkg({
      t: 3,
      n: 5,
      seed: 12,
      keyring: () => ring,
      faults: { 3: { falseEvidenceAgainst: [1] } },
      tamper: (payload) => {
        if (payload[1] !== MESSAGE_TYPES.verdict) return payload;
        const v = decodeDkgMessageOfKind(payload, 'verdict', { t: 3, n: 5 });
        if (v.evidence === undefined) return payload;
        sessionContextBytes ??= sessionContext({ keyId: 'test-key', committeeId: 'test-committee', sessionId: Uint8Array.from({ length: 16 }, (_, i) => i + 1), t: 3, memberIds: members, selfId: 3 }, members);
        const other = randomScalar();
        const j = decodeDkgMessageOfKind(v.evidence.justification, 'justification', { t: 3, n: 5 });
        const forged = provePairKey({ context: sessionContextBytes, dealer: 1, recipient: 3, recipientKey: encodePoint(G.multiply(other)) }, other, j.ephemeralKey);
        const unsigned = verdictUnsigned(3, 1, { justification: v.evidence.justification, ...forged });
        forgedCount++;
        return withSignature(unsigned, ring.identity(3).sign(messageToSign(sessionContextBytes, unsigned)));
      },
    });
    assert.ok(forgedCount > 0);
    const result = assertConsistentKey(run, [1, 2, 3, 4, 5]);
    assert.deepEqual(result.qualified, [1, 2, 3, 4, 5]);
    // The forged copy, delivered first, was judged and rejected (the genuine one may then arrive after the phase).
    for (const id of [2, 4, 5]) assert.ok(run.sessions.get(id)!.events.some((e) => /rejected the evidence of member 3 against dealer 1/.test(e)), `member ${id}`);
  });
});

/** Crash scenarios per run; TKMS_DKG_CRASH_RUNS raises it for a longer soak. */
const CRASH_RUNS = Number(process.env.TKMS_DKG_CRASH_RUNS ?? 120);

describe('DKG: members crashing at any point', () => {
  // A crashed member stops sending after its k-th envelope (a broadcast counts once per
  // recipient, so a crash can cut a broadcast short). Whatever k and the delivery order, and with
  // `jitter` whatever the order of the members' deadlines and the messages still in flight when
  // one fires, every live member must finish with the same key and be qualified itself.
  it('the reproduced split: a dealer that crashes part-way through its echo broadcast', () => {
    const run = runDkg({ t: 3, n: 5, filter: (e) => !(e.from === 5 && ((e.payload[1] === 2 && e.to === 4) || e.payload[1]! > 2)) });
    const result = assertConsistentKey(run, [1, 2, 3, 4]);
    assert.deepEqual(result.qualified, [1, 2, 3, 4]);
    assert.ok(run.sessions.get(4)!.events.some((e) => /deadline in phase echo: no grace, member\(s\) 1, 2, 3 already moved on \(still missing: 5\)/.test(e)));
  });

  it('up to n − t members crash at random points: the live members agree and are all qualified', function () {
    this.timeout(240_000 * Math.max(1, CRASH_RUNS / 120));
    const configs = [
      [2, 3],
      [3, 5],
      [4, 7],
    ] as const;
    const scenario = fc
      .constantFrom(...configs)
      .chain(([t, n]) =>
        fc.record({
          t: fc.constant(t),
          n: fc.constant(n),
          crashes: fc.uniqueArray(fc.record({ id: fc.integer({ min: 1, max: n }), after: fc.integer({ min: 0, max: 6 * (n - 1) }) }), {
            minLength: 1,
            maxLength: n - t,
            selector: (c) => c.id,
          }),
          seed: fc.integer({ min: 1, max: 2 ** 30 }),
          jitter: fc.boolean(),
        }),
      );
    let runs = 0;
    fc.assert(
      fc.property(scenario, ({ t, n, crashes, seed, jitter }) => {
        runs++;
        const crashAfter = new Map(crashes.map((c) => [c.id, c.after]));
        const run = runDkg({
          t,
          n,
          seed,
          jitter,
          keyring: makeNodeCryptoKeyring,
          filter: (e) => !crashAfter.has(e.from) || e.seq < crashAfter.get(e.from)!,
        });
        const live = Array.from({ length: n }, (_, i) => i + 1).filter((id) => !crashAfter.has(id));
        for (const id of live) {
          const s = run.sessions.get(id)!;
          assert.equal(s.phase, 'done', `live member ${id}: ${s.phase} ${s.abortReason ?? ''}`);
        }
        const result = assertConsistentKey(run, live, live);
        for (const id of live) assert.ok(result.qualified.includes(id), `live member ${id} was disqualified: ${run.sessions.get(live[0]!)!.disqualified.get(id)}`);
      }),
      { numRuns: CRASH_RUNS },
    );
    assert.equal(runs, CRASH_RUNS);
  });
});

describe('DKG: robustness of receive()', () => {
  it('ignores garbage, non-members, duplicates and forged messages without throwing', () => {
    const ids = [1, 2, 3];
    const keyring = makeKeyring(ids);
    const params = { keyId: 'k1', committeeId: 'c', sessionId: new Uint8Array(16).fill(7), t: 2, memberIds: ids };
    const sessions = new Map(ids.map((id) => [id, new DkgSession({ ...params, selfId: id }, keyring.identity(id))]));
    const victim = sessions.get(1)!;
    const round1From2 = sessions.get(2)!.start()[0]!.payload;
    victim.start();
    const junk: [number, unknown][] = [
      [2, new Uint8Array(0)],
      [2, new Uint8Array([1])],
      [2, new Uint8Array([9, 9, 9])],
      [2, 'not bytes'],
      [2, undefined],
      [9, round1From2],
      [1, round1From2],
      [Number.NaN, round1From2],
      [3, round1From2], // right bytes, wrong sender
      [2, concatBytes(round1From2, new Uint8Array([0]))],
      [2, round1From2.slice(0, -1)],
    ];
    const forged = round1From2.slice();
    forged[forged.length - 1] = forged[forged.length - 1]! ^ 0xff;
    junk.push([2, forged]);
    for (const [from, payload] of junk) assert.deepEqual(victim.receive(from, payload as Uint8Array), []);
    assert.equal(victim.phase, 'round1');
    assert.ok(victim.events.length >= junk.length - 1);
    // The genuine message is still accepted afterwards (and a duplicate is harmless).
    victim.receive(2, round1From2);
    victim.receive(2, round1From2);
    assert.equal(victim.phase, 'round1');
    assert.throws(() => victim.takeShare(), (e: unknown) => isTkmsError(e, 'conflict'));
  });

  it('rejects bad parameters at construction with typed errors', () => {
    const keyring = makeKeyring([1, 2]);
    const ok = { keyId: 'k', committeeId: 'c', sessionId: new Uint8Array(16), t: 2, memberIds: [1, 2], selfId: 1 };
    const cases = [
      { ...ok, keyId: 'Bad Key' },
      { ...ok, sessionId: new Uint8Array(15) },
      { ...ok, t: 3 },
      { ...ok, t: 0 },
      { ...ok, memberIds: [1, 1] },
      { ...ok, memberIds: [0, 1] },
      { ...ok, selfId: 3 },
      { ...ok, committeeId: '' },
    ];
    for (const params of cases) assert.throws(() => new DkgSession(params, keyring.identity(1)), (e: unknown) => isTkmsError(e));
  });
});

describe('DKG: public result', () => {
  let run: RunResult;
  let result: DkgPublicResult;
  before(() => {
    run = runDkg({ t: 2, n: 3, seed: 21 });
    result = run.sessions.get(1)!.result!;
  });

  it('round-trips through the canonical encoding', () => {
    const bytes = encodeDkgPublicResult(result);
    assert.deepEqual(decodeDkgPublicResult(bytes), result);
    assert.deepEqual(encodeDkgPublicResult(decodeDkgPublicResult(bytes)), bytes);
  });

  it('verification rejects tampered results', () => {
    const otherPoint = encodeHex(G.multiply(12345n).toBytes(true));
    const { ['3']: _dropped, ...twoSignatures } = result.signatures;
    const oneSignature = { '1': result.signatures['1']! };
    const badSignature = { '1': result.signatures['1']!, '2': result.signatures['1']! };
    const tampered: DkgPublicResult[] = [
      { ...result, groupPublicKey: otherPoint },
      { ...result, verificationShares: { ...result.verificationShares, '3': otherPoint } },
      { ...result, transcriptHash: encodeHex(new Uint8Array(32).fill(1)) },
      { ...result, keyId: 'other-key' },
      { ...result, signatures: oneSignature },
      { ...result, signatures: badSignature },
    ];
    assert.equal(Object.keys(twoSignatures).length, 2);
    verifyDkgPublicResult({ ...result, signatures: twoSignatures }, { ...run.params, memberKeys: run.keyring.memberKeys });
    // Junk added by a relay is dropped, not fatal, while t valid signatures remain.
    const withJunk = verifyDkgPublicResult({ ...result, signatures: { ...twoSignatures, '3': result.signatures['1']! } }, { ...run.params, memberKeys: run.keyring.memberKeys });
    assert.deepEqual(withJunk.signatures, twoSignatures);
    for (const r of tampered) assert.throws(() => verifyDkgPublicResult(r, { ...run.params, memberKeys: run.keyring.memberKeys }), (e: unknown) => isTkmsError(e, 'dkg_failed'));
    assert.throws(() => verifyDkgPublicResult({ ...result, t: 4 }, { ...run.params, memberKeys: run.keyring.memberKeys }), (e: unknown) => isTkmsError(e) && !isTkmsError(e, 'dkg_failed'));
    assert.throws(() => decodeDkgPublicResult(decodeHex('0x7b7d')), (e: unknown) => isTkmsError(e, 'bad_request'));
  });
});
