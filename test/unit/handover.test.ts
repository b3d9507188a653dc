import assert from 'node:assert/strict';
import { ed25519 } from '@noble/curves/ed25519.js';
import { encodeHex, encodePoint, G, isTkmsError, randomScalar } from '../../core/index.ts';
import { committeeToJson, type Committee } from '../../core/committee.ts';
import { followHandovers, MAX_HANDOVER_CHAIN, toleratedFaults, verifyArrival, verifyHandover, voteQuorum, type HandoverCertificate, type KeyEpochData } from '../../core/ceremony/handover.ts';
import { isRefresh, parseReshareProposal, proposalDigest, reshareProposalToJson } from '../../core/ceremony/proposal.ts';
import { decodeDkgPublicResult, dkgPublicResultDigest, encodeDkgPublicResult, parseDkgPublicResult, verifyDkgPublicResult } from '../../core/dkg/index.ts';
import { atEpoch, keyAt, makeChain, makeCommittee, makeMembers, signCertificate, signedDkgResult, type TestMember } from './handover-fixtures.ts';

function refusedWith(code: string): (e: unknown) => boolean {
  return (e: unknown) => {
    assert.ok(isTkmsError(e), `not a TkmsError: ${String(e)}`);
    assert.equal(e.code, code, e.message);
    return true;
  };
}

const ID = 'handover-test';

describe('handover certificates (core/ceremony/handover.ts)', () => {
  let fromMembers: TestMember[];
  let toMembers: TestMember[];
  let from: Committee;
  let to: Committee;
  let fromKeys: Map<string, KeyEpochData>;
  let toKeys: KeyEpochData[];
  const secrets = new Map([
    ['alpha', randomScalar()],
    ['beta', randomScalar()],
  ]);

  before(() => {
    fromMembers = makeMembers([1, 2, 3, 4, 5]);
    // Members 4 and 5 stay, 1..3 leave, 6..10 arrive: 3-of-5 → 4-of-7.
    toMembers = [...fromMembers.slice(3), ...makeMembers([6, 7, 8, 9, 10])];
    from = makeCommittee(ID, 0, 3, fromMembers);
    to = makeCommittee(ID, 1, 4, toMembers);
    fromKeys = new Map([...secrets].map(([keyId, s]) => [keyId, keyAt(keyId, s, from)]));
    toKeys = [...secrets].map(([keyId, s]) => keyAt(keyId, s, to));
  });

  const valid = (over: Partial<Parameters<typeof signCertificate>[0]> = {}): HandoverCertificate =>
    signCertificate({ from, to, keys: toKeys, fromSigners: fromMembers.slice(0, 3), toSigners: toMembers.slice(0, voteQuorum(7, 4)), ...over });

  it('quorums: 4-of-7 tolerates 2 liars and needs 5 arriving votes; 3-of-5 tolerates 1 and needs 4', () => {
    assert.equal(toleratedFaults(7, 4), 2);
    assert.equal(voteQuorum(7, 4), 5);
    assert.equal(toleratedFaults(5, 3), 1);
    assert.equal(voteQuorum(5, 3), 4);
    assert.equal(voteQuorum(1, 1), 1);
  });

  it('a 3-of-5 → 4-of-7 certificate signed by t leaving and a quorum of arriving members verifies', () => {
    const v = verifyHandover(valid(), from, fromKeys);
    assert.equal(v.to.epoch, 1);
    assert.equal(v.to.t, 4);
    assert.equal(v.refresh, false);
    assert.deepEqual(v.keys.map((k) => k.keyId), ['alpha', 'beta']);
    for (const k of v.keys) {
      assert.equal(k.epoch, 1);
      assert.equal(k.t, 4);
      assert.deepEqual(k.groupPublicKey, fromKeys.get(k.keyId)!.groupPublicKey);
      assert.deepEqual([...k.verificationShares.keys()], [4, 5, 6, 7, 8, 9, 10]);
    }
    // A certificate is also accepted by a verifier that knows no keys yet (a client before its first key).
    assert.equal(verifyHandover(valid(), from).keys.length, 2);
  });

  it('a refresh (same members and t, next epoch) verifies and says so', () => {
    const next = atEpoch(from, 1);
    const keys = [...secrets].map(([keyId, s]) => keyAt(keyId, s, next));
    const cert = signCertificate({ from, to: next, keys, fromSigners: fromMembers.slice(0, 3), toSigners: fromMembers.slice(0, 4) });
    const v = verifyHandover(cert, from, fromKeys);
    assert.equal(v.refresh, true);
    assert.notDeepEqual(v.keys[0]!.verificationShares.get(1), fromKeys.get(v.keys[0]!.keyId)!.verificationShares.get(1));
  });

  it('a changed group key is refused even when every member signed it', () => {
    const other = [keyAt('alpha', randomScalar(), to), toKeys[1]!];
    assert.throws(() => verifyHandover(valid({ keys: other }), from, fromKeys), (e: unknown) => refusedWith('dkg_failed')(e) && /group key changed/.test((e as Error).message));
  });

  it('a Y′ off the degree t′ − 1 polynomial is refused', () => {
    const cert = valid({
      edit: (u) => ({ ...u, keys: u.keys.map((k, i) => (i === 0 ? { ...k, verificationShares: { ...k.verificationShares, '9': encodeHex(encodePoint(G.multiply(randomScalar()))) } } : k)) }),
    });
    assert.throws(() => verifyHandover(cert, from, fromKeys), (e: unknown) => refusedWith('dkg_failed')(e) && /polynomial/.test((e as Error).message));
  });

  it('a key missing from the certificate is refused (no key may be dropped)', () => {
    const cert = valid({ keys: [toKeys[0]!] });
    assert.throws(() => verifyHandover(cert, from, fromKeys), (e: unknown) => refusedWith('dkg_failed')(e) && /drops key beta/.test((e as Error).message));
  });

  it('verification shares not exactly the arriving members\' are refused', () => {
    const cert = valid({ edit: (u) => ({ ...u, keys: u.keys.map((k) => ({ ...k, verificationShares: Object.fromEntries(Object.entries(k.verificationShares).slice(1)) })) }) });
    assert.throws(() => verifyHandover(cert, from, fromKeys), refusedWith('dkg_failed'));
  });

  it('t − 1 leaving signatures are refused', () => {
    assert.throws(() => verifyHandover(valid({ fromSigners: fromMembers.slice(0, 2) }), from, fromKeys), (e: unknown) => refusedWith('dkg_failed')(e) && /leaving members/.test((e as Error).message));
  });

  it('one arriving signature short of the quorum is refused', () => {
    assert.throws(() => verifyHandover(valid({ toSigners: toMembers.slice(0, 4) }), from, fromKeys), (e: unknown) => refusedWith('dkg_failed')(e) && /arriving members, needs 5/.test((e as Error).message));
  });

  it('signatures of leaving members do not count as arriving ones (members of both sign on each side)', () => {
    // Members 4 and 5 are in both: their leaving signatures listed under `to` by a leaving member's id do not verify.
    const cert = valid({ toSigners: toMembers.slice(0, 4) });
    const forged = { ...cert, signatures: { ...cert.signatures, to: { ...cert.signatures.to, '1': cert.signatures.from['1']! } } };
    assert.throws(() => verifyHandover(forged, from, fromKeys), refusedWith('dkg_failed'));
  });

  it('a wrong fromDigest is refused', () => {
    const cert = valid({ edit: (u) => ({ ...u, fromDigest: encodeHex(new Uint8Array(32).fill(1)) }) });
    assert.throws(() => verifyHandover(cert, from, fromKeys), (e: unknown) => refusedWith('dkg_failed')(e) && /another committee/.test((e as Error).message));
  });

  it('a certificate leaving another epoch is stale_epoch; one arriving at the wrong epoch is dkg_failed', () => {
    const later = valid({ edit: (u) => ({ ...u, fromEpoch: 1 }) });
    assert.throws(() => verifyHandover(later, from, fromKeys), refusedWith('stale_epoch'));
    const skip = valid({ edit: (u) => ({ ...u, to: { ...u.to, epoch: 2 } }) });
    assert.throws(() => verifyHandover(skip, from, fromKeys), (e: unknown) => refusedWith('dkg_failed')(e) && /epoch 2/.test((e as Error).message));
  });

  it('a certificate of another committee id is refused, both as its own id and as its arriving committee\'s', () => {
    const other = valid({ edit: (u) => ({ ...u, committeeId: 'another' }) });
    assert.throws(() => verifyHandover(other, from, fromKeys), (e: unknown) => refusedWith('dkg_failed')(e) && /committee another/.test((e as Error).message));
    const moved = valid({ edit: (u) => ({ ...u, to: { ...u.to, committeeId: 'another' } }) });
    assert.throws(() => verifyHandover(moved, from, fromKeys), (e: unknown) => refusedWith('dkg_failed')(e) && /arrives at another/.test((e as Error).message));
  });

  it('a changed field after signing voids the signatures (the digest is recomputed)', () => {
    const cert = valid();
    const swapped = { ...cert, transcriptHash: encodeHex(new Uint8Array(32).fill(9)) };
    assert.throws(() => verifyHandover(swapped, from, fromKeys), refusedWith('dkg_failed'));
    const moved = { ...cert, to: { ...cert.to, members: (cert.to.members as { multiaddrs: string[] }[]).map((m) => ({ ...m, multiaddrs: ['/ip4/10.0.0.1/tcp/1'] })) } };
    assert.throws(() => verifyHandover(moved, from, fromKeys), refusedWith('dkg_failed'));
  });

  it('junk signatures are dropped, not fatal, and left out of the returned certificate', () => {
    const cert = valid();
    const junk = encodeHex(new Uint8Array(64).fill(0xab));
    const wrongMessage = encodeHex(ed25519.sign(new Uint8Array([1, 2, 3]), fromMembers[4]!.seed));
    const padded = {
      ...cert,
      signatures: {
        from: { ...cert.signatures.from, '4': junk, '5': wrongMessage, '77': junk },
        to: { ...cert.signatures.to, '10': junk, '2': junk },
      },
    };
    const v = verifyHandover(padded, from, fromKeys);
    assert.deepEqual(Object.keys(v.certificate.signatures.from), ['1', '2', '3']);
    assert.deepEqual(Object.keys(v.certificate.signatures.to), Object.keys(cert.signatures.to));
  });

  describe('verifyArrival (a verifier that trusts only the arriving committee)', () => {
    it('a certificate signed by a quorum of the trusted arriving committee gives its keys at that epoch', () => {
      const keys = verifyArrival(valid(), to);
      assert.deepEqual(keys.map((k) => [k.keyId, k.epoch]), [['alpha', 1], ['beta', 1]]);
      assert.deepEqual(keys[0]!.groupPublicKey, fromKeys.get('alpha')!.groupPublicKey);
    });

    it('another arriving committee, another epoch, too few arriving votes, or shares off the polynomial: refused', () => {
      const other = makeCommittee(ID, 1, 4, [...toMembers.slice(0, 6), ...makeMembers([10])]);
      assert.throws(() => verifyArrival(valid(), other), refusedWith('dkg_failed'));
      assert.throws(() => verifyArrival(valid(), atEpoch(to, 2)), refusedWith('stale_epoch'));
      assert.throws(() => verifyArrival(valid({ toSigners: toMembers.slice(0, 4) }), to), (e: unknown) => refusedWith('dkg_failed')(e) && /needs 5/.test((e as Error).message));
      const off = valid({ edit: (u) => ({ ...u, keys: u.keys.map((k) => ({ ...k, verificationShares: { ...k.verificationShares, '4': encodeHex(encodePoint(G.multiply(randomScalar()))) } })) }) });
      assert.throws(() => verifyArrival(off, to), refusedWith('dkg_failed'));
      // The leaving side's digest is part of what the arriving members signed.
      const moved = { ...valid(), fromDigest: encodeHex(new Uint8Array(32).fill(5)) };
      assert.throws(() => verifyArrival(moved, to), refusedWith('dkg_failed'));
    });
  });

  describe('followHandovers', () => {
    let chain: { certificates: HandoverCertificate[]; keysAt: Map<string, KeyEpochData>[] };
    let c2: Committee;

    before(() => {
      const third = makeMembers([11, 12, 13]);
      c2 = makeCommittee(ID, 2, 2, third);
      chain = makeChain(
        [
          { committee: from, members: fromMembers },
          { committee: to, members: toMembers },
          { committee: c2, members: third },
        ],
        secrets,
      );
    });

    it('follows 0 → 1 → 2 and ends with the keys of epoch 2', () => {
      const followed = followHandovers(from, chain.certificates, chain.keysAt[0]);
      assert.equal(followed.committee.epoch, 2);
      assert.equal(followed.chain.length, 2);
      assert.deepEqual(committeeToJson(followed.committee as Committee), committeeToJson(c2));
      for (const [keyId, k] of chain.keysAt[2]!) assert.deepEqual(followed.keys.get(keyId)!.verificationShares, k.verificationShares);
    });

    it('follows a chain given out of order', () => {
      assert.equal(followHandovers(from, [...chain.certificates].reverse()).committee.epoch, 2);
    });

    it('a gap is stale_epoch', () => {
      assert.throws(() => followHandovers(from, [chain.certificates[1]!]), refusedWith('stale_epoch'));
    });

    it('certificates older than the pin are skipped', () => {
      const followed = followHandovers(to, chain.certificates, chain.keysAt[1]);
      assert.equal(followed.committee.epoch, 2);
      assert.equal(followed.chain.length, 1);
    });

    it('no certificate leaves the pin: the pin and its keys', () => {
      const followed = followHandovers(c2, chain.certificates, chain.keysAt[2]);
      assert.equal(followed.committee, c2);
      assert.equal(followed.chain.length, 0);
      assert.equal(followed.keys.size, 2);
    });

    it('a forged certificate for an epoch next to the genuine one is passed over', () => {
      const forged = signCertificate({ from, to, keys: toKeys, fromSigners: [], toSigners: toMembers });
      assert.equal(followHandovers(from, [forged, ...chain.certificates]).committee.epoch, 2);
      assert.throws(() => followHandovers(from, [forged]), refusedWith('dkg_failed'));
    });

    it('a chain longer than MAX_HANDOVER_CHAIN is refused before any work', () => {
      assert.throws(() => followHandovers(from, Array.from({ length: MAX_HANDOVER_CHAIN + 1 }, () => chain.certificates[0])), refusedWith('bad_request'));
    });
  });
});

describe('reshare proposals (core/ceremony/proposal.ts)', () => {
  it('round-trips, has a stable id bound to both files and the key ids, and tells a refresh', () => {
    const members = makeMembers([1, 2, 3]);
    const from = makeCommittee(ID, 0, 2, members);
    const to = makeCommittee(ID, 1, 3, members);
    const p = parseReshareProposal({ v: 1, from: committeeToJson(from), to: committeeToJson(to), keyIds: ['a', 'b'] });
    const again = parseReshareProposal(JSON.parse(JSON.stringify(reshareProposalToJson(p))));
    assert.deepEqual(proposalDigest(again), proposalDigest(p));
    assert.equal(isRefresh(p), false);
    assert.notDeepEqual(proposalDigest({ ...p, keyIds: ['a'] }), proposalDigest(p));
    const refresh = parseReshareProposal({ v: 1, from: committeeToJson(from), to: committeeToJson(atEpoch(from, 1)), keyIds: ['a'] });
    assert.equal(isRefresh(refresh), true);
    assert.throws(() => parseReshareProposal({ v: 1, from: committeeToJson(from), to: committeeToJson(atEpoch(from, 2)), keyIds: ['a'] }), refusedWith('bad_request'));
    assert.throws(() => parseReshareProposal({ v: 1, from: committeeToJson(from), to: committeeToJson(from), keyIds: ['b', 'a'] }), refusedWith('bad_request'));
  });
});

describe('DKG results made at an epoch (DkgPublicResult.epoch)', () => {
  const members = makeMembers([1, 2, 3]);
  const c0 = makeCommittee(ID, 0, 2, members);
  const c3 = atEpoch(c0, 3);
  const expected = { committeeId: ID, t: 2, memberKeys: new Map(members.map((m) => [m.id, m.publicKey])) };

  it('epoch 0 is spelled by leaving it out: the v2 digest, the canonical encoding without the field', () => {
    const result = signedDkgResult(keyAt('k0', randomScalar(), c0), c0, members);
    assert.equal('epoch' in result, false);
    assert.equal(verifyDkgPublicResult(result, expected).keyId, 'k0');
    assert.throws(() => parseDkgPublicResult({ ...result, epoch: 0 }), refusedWith('bad_request'));
    for (const bad of [-1, 1.5, '1', null, 0x1_0000_0000]) assert.throws(() => parseDkgPublicResult({ ...result, epoch: bad }), refusedWith('bad_request'));
  });

  it('a result at epoch 3 verifies, encodes canonically with epoch after committeeId, and changing its epoch voids the signatures', () => {
    const result = signedDkgResult(keyAt('k3', randomScalar(), c3), c3, members);
    assert.equal(result.epoch, 3);
    assert.deepEqual(Object.keys(result).slice(0, 3), ['keyId', 'committeeId', 'epoch']);
    assert.deepEqual(decodeDkgPublicResult(encodeDkgPublicResult(result)), result);
    assert.equal(verifyDkgPublicResult(result, expected).epoch, 3);
    for (const epoch of [2, 4]) assert.throws(() => verifyDkgPublicResult({ ...result, epoch }, expected), refusedWith('dkg_failed'));
    const { epoch: _e, ...withoutEpoch } = result;
    assert.throws(() => verifyDkgPublicResult(withoutEpoch, expected), refusedWith('dkg_failed'));
    assert.notDeepEqual(dkgPublicResultDigest(result, expected.memberKeys), dkgPublicResultDigest(withoutEpoch, expected.memberKeys));
  });
});
