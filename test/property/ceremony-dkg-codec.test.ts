import assert from 'node:assert/strict';
import fc from 'fast-check';
import { isTkmsError } from '../../core/errors.ts';
import { encodeUnsigned, withSignature } from '../../core/ceremony/codec.ts';
import { DKG_CEREMONY_MESSAGE_TYPES, decodeCeremonyMessage, dkgCeremonyId, maxAttempts, maxMessageSize, type CeremonyShape } from '../../core/ceremony/index.ts';
import { dealKey, dkgKeyDealingIsValid, keyDealingIsValid } from '../../core/ceremony/dealing.ts';
import { mutation } from '../support/byte-mutations.ts';
import type { MessageKind } from '../unit/ceremony-harness.ts';
import { makeDkgScenario, newDkgCeremony, simulateDkg, type DkgScenario, type DkgSimResult } from '../unit/ceremony-dkg-harness.ts';

/**
 * The DKG family of the ceremony wire format (core/ceremony/codec.ts): its own type bytes, one proof
 * of knowledge of a_0 and d in each dealing, proposals of t..n dealings, certificates of at most n
 * votes. Every encoding round-trips; every corruption, and every count or size past the DKG's shape,
 * is refused with a TkmsError before anything else happens.
 */
const KINDS: MessageKind[] = ['hello', 'dealing', 'complaint', 'proposal', 'echo', 'vote', 'certificate'];

describe('DKG ceremony codec properties', function () {
  this.timeout(300_000);
  let s: DkgScenario;
  let run: DkgSimResult;
  let shape: CeremonyShape;
  const badRequest = (e: unknown) => isTkmsError(e, 'bad_request');

  before(() => {
    // A dealer with bad sub-shares, so complaints exist.
    s = makeDkgScenario({ n: 5, t: 3, seed: 31 });
    run = simulateDkg(s, { seed: 2, maxDelay: 3, faults: new Map([[0, { badSubShareTo: [3] }]]) });
    shape = { family: 'dkg', n: 5, t: 3, nTo: 5, tTo: 3, keys: 1, maxAttempts: maxAttempts(5) };
    for (const kind of KINDS) assert.ok((run.samples.get(kind) ?? []).length > 0, `a ${kind} was sent`);
  });

  for (const kind of KINDS) {
    it(`${kind}: carries the DKG type byte, decodes and re-encodes byte for byte`, () => {
      for (const raw of run.samples.get(kind)!) {
        assert.equal(raw[1], DKG_CEREMONY_MESSAGE_TYPES[kind]);
        const m = decodeCeremonyMessage(raw, shape);
        assert.equal(m.body.kind, kind);
        assert.deepEqual(withSignature(encodeUnsigned(m.body, 'dkg'), m.signature), raw);
      }
    });

    it(`${kind}: every flipped, truncated, extended, spliced encoding is refused with a TkmsError (bad_request)`, () => {
      const ceremony = newDkgCeremony(s, s.nodes[4]!);
      const samples = run.samples.get(kind)!;
      fc.assert(
        fc.property(
          fc.nat(samples.length - 1).chain((i) => mutation(samples[i]!)),
          (mutated) => {
            fc.pre(!samples.some((x) => Buffer.compare(x, mutated) === 0));
            assert.throws(() => ceremony.receive(mutated, 0), badRequest);
          },
        ),
        { numRuns: kind === 'certificate' || kind === 'proposal' ? 60 : 150 },
      );
    });
  }

  it('random bytes only ever raise a TkmsError', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 600 }), fc.constantFrom(...Object.values(DKG_CEREMONY_MESSAGE_TYPES)), (bytes, type) => {
        const input = bytes.length >= 2 ? Uint8Array.from([1, type, ...bytes.slice(2)]) : bytes;
        try {
          decodeCeremonyMessage(input, shape);
        } catch (e) {
          assert.ok(isTkmsError(e), String(e));
        }
      }),
      { numRuns: 500 },
    );
  });

  it('a proposal carries t..n dealings: fewer or more are refused by count, a larger one by size before parsing', () => {
    const signature = new Uint8Array(64);
    const proposal = (count: number, blob: Uint8Array) => withSignature(encodeUnsigned({ kind: 'proposal', author: 1, attempt: 0, dealings: Array.from({ length: count }, () => blob) }, 'dkg'), signature);
    const tiny = new Uint8Array(1);
    for (const count of [0, 2, 6, 40]) {
      assert.throws(() => decodeCeremonyMessage(proposal(count, tiny), shape), (e: unknown) => isTkmsError(e) && /dealing count/.test(e.message), `count ${count}`);
    }
    // Within t..n the count passes (the dealings themselves are checked later, by the ceremony).
    for (const count of [3, 5]) assert.equal((decodeCeremonyMessage(proposal(count, tiny), shape).body as { dealings: Uint8Array[] }).dealings.length, count);
    const dealing = run.samples.get('dealing')![0]!;
    const oversized = proposal(6, dealing);
    assert.ok(oversized.length > maxMessageSize(shape, 'proposal'));
    assert.throws(() => decodeCeremonyMessage(oversized, shape), (e: unknown) => isTkmsError(e, 'bad_length') && /exceed/.test(e.message));
    // A dealing one byte past the DKG shape's largest is refused before parsing.
    const big = new Uint8Array(maxMessageSize(shape, 'dealing') + 1);
    big.set(dealing.subarray(0, 2));
    assert.throws(() => decodeCeremonyMessage(big, shape), (e: unknown) => isTkmsError(e, 'bad_length') && /exceed/.test(e.message));
  });

  it('a certificate names at most n votes (one per member)', () => {
    const vote = run.samples.get('vote')![0]!;
    const proposal = run.samples.get('proposal')![0]!;
    const certificate = (votes: number) => withSignature(encodeUnsigned({ kind: 'certificate', authorRole: 1, author: 1, proposal, votes: Array.from({ length: votes }, () => vote) }, 'dkg'), new Uint8Array(64));
    assert.doesNotThrow(() => decodeCeremonyMessage(certificate(5), shape));
    assert.throws(() => decodeCeremonyMessage(certificate(6), shape), (e: unknown) => isTkmsError(e) && /vote count|exceed/.test(e.message));
  });

  it('a DKG dealing has the reshare layout, and a reshare dealer\'s proof of d alone fails the DKG check (the signature domain refuses the retyped bytes: ceremony-dkg.test.ts)', () => {
    const m = decodeCeremonyMessage(run.samples.get('dealing')![0]!, shape);
    assert.equal(m.body.kind, 'dealing');
    if (m.body.kind !== 'dealing') return;
    const dealer = m.body.author;
    const ceremonyId = dkgCeremonyId(s.keyId, s.committee, s.sessionId);
    const key = m.body.keys[0]!;
    assert.ok(dkgKeyDealingIsValid(ceremonyId, s.keyId, dealer, key));
    // The reshare's proof for D: what a reshare dealer signs, with the right secret, is not the DKG's proof of a_0 and d.
    const reshareShaped = dealKey({ seed: new Uint8Array(32).fill(9), proposalId: ceremonyId, keyId: s.keyId, dealer, constantTerm: 5n, tTo: 3, recipients: [] });
    assert.ok(keyDealingIsValid(ceremonyId, s.keyId, dealer, reshareShaped, reshareShaped.commitments[0]));
    assert.equal(dkgKeyDealingIsValid(ceremonyId, s.keyId, dealer, reshareShaped), false);
    const asReshare = withSignature(encodeUnsigned(m.body, 'reshare'), m.signature);
    const retyped = asReshare.slice();
    retyped[1] = DKG_CEREMONY_MESSAGE_TYPES.dealing;
    assert.deepEqual(retyped, run.samples.get('dealing')![0]!, 'the layouts agree: only the type byte and the signing domain tell the families apart');
  });

});
