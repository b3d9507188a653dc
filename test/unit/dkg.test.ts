import assert from 'node:assert/strict';
import { decodeHex, encodeHex, utf8ToBytes } from '../../core/bytes.ts';
import { decodePoint, encodePoint, G, randomScalar } from '../../core/curve.ts';
import { isTkmsError } from '../../core/errors.ts';
import { decodeDkgPublicResult, encodeDkgPublicResult, verifyDkgPublicResult, type DkgPublicResult } from '../../core/dkg/index.ts';
import { openShare, openWithProvenKey, provePairKey, sealShare } from '../../core/dkg/sealed-share.ts';
import { DkgCeremony } from '../../core/ceremony/index.ts';
import { identityOf } from './ceremony-harness.ts';
import { dkgParamsOf, makeDkgScenario, newDkgCeremony, simulateDkg, type DkgScenario } from './ceremony-dkg-harness.ts';

/**
 * What core/dkg still holds (the result format, member signatures over it, sealing), and the DKG
 * engine's edges a runner relies on: typed refusals of bad input and bad parameters, and a clear
 * failure without a vote quorum. Agreement under lying members: test/unit/ceremony-dkg.test.ts and
 * test/property/dkg-faults.test.ts. Scenarios: test/integration/dkg-scenarios.md.
 */
describe('DKG: sealing (core/dkg/sealed-share.ts, used by every dealing)', () => {
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

  it('a pair key that is not e·D, or a proof for another binding or key, opens nothing (a complaint cannot frame a dealer)', () => {
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
});

describe('DKG engine: robustness', () => {
  it('refuses garbage, truncated, extended, forged and other sessions\' messages with bad_request; duplicates are harmless', () => {
    const s = makeDkgScenario({ n: 3, t: 2, seed: 31 });
    const [a, b] = [newDkgCeremony(s, s.nodes[0]!), newDkgCeremony(s, s.nodes[1]!)];
    a.start(0);
    const hello = b.start(0).outbound[0]!.payload;
    const forged = hello.slice();
    forged[forged.length - 1] = forged[forged.length - 1]! ^ 0xff;
    const otherSession = newDkgCeremony({ ...s, sessionId: new Uint8Array(16).fill(9) }, s.nodes[1]!).start(0).outbound[0]!.payload;
    for (const junk of [new Uint8Array(0), Uint8Array.of(1), Uint8Array.of(9, 9, 9), hello.slice(0, -1), Uint8Array.from([...hello, 0]), forged, otherSession, 'not bytes' as unknown as Uint8Array]) {
      assert.throws(() => a.receive(junk, 1), (e: unknown) => isTkmsError(e, 'bad_request'));
    }
    assert.equal(a.phase, 'hello');
    // The genuine message is still taken afterwards, twice without harm.
    a.receive(hello, 2);
    a.receive(hello, 3);
    assert.equal(a.outcome(), undefined);
  });

  it('refuses bad parameters at construction with typed errors', () => {
    const s = makeDkgScenario({ n: 3, t: 2, seed: 32 });
    const node = s.nodes[0]!;
    const ok = dkgParamsOf(s, node);
    const cases = [{ ...ok, keyId: 'Bad Key' }, { ...ok, sessionId: new Uint8Array(15) }, { ...ok, seed: new Uint8Array(31) }, { ...ok, committee: { ...s.committee, t: 4 } }, { ...ok, committee: { ...s.committee, t: 0 } }];
    for (const params of cases) assert.throws(() => new DkgCeremony(params, identityOf(node), { timing: { phaseMs: 1000 } }), (e: unknown) => isTkmsError(e));
  });

  it('without a vote quorum (only t − 1 members live) it fails with a clear reason after its last attempt', () => {
    const s = makeDkgScenario({ n: 3, t: 2, seed: 33 });
    const r = simulateDkg(s, { seed: 4, maxDelay: 20, crashAt: new Map([[1, 0], [2, 0]]) });
    assert.deepEqual(r.errors, []);
    assert.equal(r.outcomes[0], undefined);
    assert.equal(r.ceremonies[0]!.phase, 'failed');
    assert.match(r.ceremonies[0]!.failureReason ?? '', /no certificate after 3 attempts/);
  });
});

describe('DKG: public result (core/dkg/result.ts), as the engine certifies it', () => {
  let s: DkgScenario;
  let result: DkgPublicResult;
  const expected = () => ({ committeeId: s.committee.committeeId, t: s.committee.t, memberKeys: s.memberKeys });
  before(() => {
    s = makeDkgScenario({ n: 3, t: 2, seed: 21 });
    const r = simulateDkg(s, { seed: 5, maxDelay: 20 });
    result = r.outcomes[0]!.result;
    assert.ok(Object.keys(result.signatures).length >= 2, 'a vote quorum signed');
  });

  it('round-trips through the canonical encoding', () => {
    const bytes = encodeDkgPublicResult(result);
    assert.deepEqual(decodeDkgPublicResult(bytes), result);
    assert.deepEqual(encodeDkgPublicResult(decodeDkgPublicResult(bytes)), bytes);
  });

  it('verification rejects tampered results, and drops junk signatures while t valid ones remain', () => {
    const otherPoint = encodeHex(G.multiply(12345n).toBytes(true));
    const [a, b] = Object.keys(result.signatures) as [string, string];
    const third = ['1', '2', '3'].find((id) => id !== a && id !== b)!;
    const twoSignatures = { [a]: result.signatures[a]!, [b]: result.signatures[b]! };
    const oneSignature = { [a]: result.signatures[a]! };
    const badSignature = { [a]: result.signatures[a]!, [b]: result.signatures[a]! };
    const tampered: DkgPublicResult[] = [
      { ...result, groupPublicKey: otherPoint },
      { ...result, verificationShares: { ...result.verificationShares, '3': otherPoint } },
      { ...result, transcriptHash: encodeHex(new Uint8Array(32).fill(1)) },
      { ...result, keyId: 'other-key' },
      { ...result, signatures: oneSignature },
      { ...result, signatures: badSignature },
    ];
    verifyDkgPublicResult({ ...result, signatures: twoSignatures }, expected());
    const withJunk = verifyDkgPublicResult({ ...result, signatures: { ...twoSignatures, [third]: result.signatures[a]! } }, expected());
    assert.deepEqual(withJunk.signatures, twoSignatures);
    for (const r of tampered) assert.throws(() => verifyDkgPublicResult(r, expected()), (e: unknown) => isTkmsError(e, 'dkg_failed'));
    assert.throws(() => verifyDkgPublicResult({ ...result, t: 4 }, expected()), (e: unknown) => isTkmsError(e) && !isTkmsError(e, 'dkg_failed'));
    assert.throws(() => decodeDkgPublicResult(decodeHex('0x7b7d')), (e: unknown) => isTkmsError(e, 'bad_request'));
  });
});
