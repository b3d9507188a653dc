import assert from 'node:assert/strict';
import { decodePoint, encodePoint, G } from '../../core/curve.ts';
import { ceremonyMessageKind, decodeCeremonyMessage, encodeUnsigned, signingBytes, withSignature, type CeremonyShape, type DealingMessage } from '../../core/ceremony/codec.ts';
import { dkgKeyDealingIsValid } from '../../core/ceremony/dealing.ts';
import { dkgCeremonyId } from '../../core/ceremony/index.ts';
import { identityOf } from '../unit/ceremony-harness.ts';
import { makeDkgScenario, newDkgCeremony, simulateDkg, type DkgScenario, type DkgSimResult } from '../unit/ceremony-dkg-harness.ts';

/**
 * The Diffie–Hellman oracle attack (issue 13, finding 10a), against the DKG on the ceremony engine.
 * A complaint publishes the complainer's pair key K = e·D for the dealing it accuses. If a malicious
 * dealer M could publish D′ = D_H + x·G, copied from honest dealer H's dealing, the complainer's
 * K′ = e·D′ would give K′ − x·E = e·D_H to everyone, and open H's sub-share for it. Every dealing
 * carries a proof that its dealer knows d for its D (bound to the ceremony, the key id and the
 * dealer), which M cannot make for D_H + x·G: the forged dealing is void for everyone before any
 * complaint is made about it. The other attack of this file under the DKG before the ceremony
 * framework (a complainer signing two complaints messages) became equivocating dealings and
 * proposals: test/unit/ceremony-dkg.test.ts, test/property/dkg-faults.test.ts,
 * test/integration/dkg-scenarios.md.
 */
const MALICIOUS = 0;
const HONEST_DEALER = 1;
const WITNESS = 2;
/** x in D′ = D_H + x·G. */
const OFFSET = 12345n;

describe('attack: a dealer publishes another dealer’s sealing key shifted by x·G, so that a complaint’s pair key would open the other dealer’s sub-share (Diffie–Hellman oracle)', function () {
  this.timeout(60_000);
  let s: DkgScenario;
  let run: DkgSimResult;
  let shape: CeremonyShape;
  let ceremonyId: Uint8Array;

  const own = (index: number, kind: string): Uint8Array => run.ceremonies[index]!.retransmit().find((o) => ceremonyMessageKind(o.payload)?.kind === kind)!.payload;
  const dealingOf = (index: number): DealingMessage => decodeCeremonyMessage(own(index, 'dealing'), shape).body as DealingMessage;

  before(() => {
    s = makeDkgScenario({ n: 5, t: 3, seed: 7 });
    run = simulateDkg(s, { seed: 7, maxDelay: 20 });
    assert.deepEqual(run.errors, []);
    shape = { family: 'dkg', n: 5, t: 3, nTo: 5, tTo: 3, keys: 1, maxAttempts: 5 };
    ceremonyId = dkgCeremonyId(s.keyId, s.committee, s.sessionId);
  });

  it('the shifted key fails the dealing’s public checks, and so does the honest dealer’s own key and proof copied whole', () => {
    const m = dealingOf(MALICIOUS).keys[0]!;
    const h = dealingOf(HONEST_DEALER).keys[0]!;
    assert.ok(dkgKeyDealingIsValid(ceremonyId, s.keyId, MALICIOUS + 1, m), 'the malicious dealer’s genuine dealing passes');
    const shifted = encodePoint(decodePoint(h.ephemeralKey).add(G.multiply(OFFSET)));
    assert.equal(dkgKeyDealingIsValid(ceremonyId, s.keyId, MALICIOUS + 1, { ...m, ephemeralKey: shifted }), false, 'D_H + x·G with the dealer’s own proof');
    assert.equal(dkgKeyDealingIsValid(ceremonyId, s.keyId, MALICIOUS + 1, { ...m, commitments: [h.commitments[0]!, ...m.commitments.slice(1)], ephemeralKey: h.ephemeralKey, proof: h.proof }), false, 'A_0 and D_H with H’s proof: bound to dealer H');
    const rogue = encodePoint(decodePoint(m.commitments[0]!).add(G.multiply(OFFSET)));
    assert.equal(dkgKeyDealingIsValid(ceremonyId, s.keyId, MALICIOUS + 1, { ...m, commitments: [rogue, ...m.commitments.slice(1)] }), false, 'another A_0 (a rogue key) with the dealer’s own proof');
  });

  it('a member receiving the forged dealing, signed by the malicious dealer, puts that dealer out before any complaint', () => {
    const body = dealingOf(MALICIOUS);
    const h = dealingOf(HONEST_DEALER).keys[0]!;
    const forgedBody: DealingMessage = { ...body, keys: [{ ...body.keys[0]!, ephemeralKey: encodePoint(decodePoint(h.ephemeralKey).add(G.multiply(OFFSET))) }] };
    const unsigned = encodeUnsigned(forgedBody, 'dkg');
    const forged = withSignature(unsigned, identityOf(s.nodes[MALICIOUS]!).sign(signingBytes(ceremonyId, unsigned, 'dkg')));
    // A fresh member (the witness restarted with no state): the hellos, then the forged dealing.
    const witness = newDkgCeremony(s, s.nodes[WITNESS]!);
    witness.start(0);
    // Hellos are deterministic (the seed): each member's, made again.
    for (const node of s.nodes) if (node.index !== WITNESS) witness.receive(newDkgCeremony(s, node).start(0).outbound.find((o) => ceremonyMessageKind(o.payload)?.kind === 'hello')!.payload, 1);
    witness.receive(forged, 2);
    assert.match(witness.disqualified()[String(MALICIOUS + 1)] ?? '', /public checks/, JSON.stringify(witness.disqualified()));
    assert.equal(witness.disqualified()[String(HONEST_DEALER + 1)], undefined, 'the honest dealer stays');
  });
});
