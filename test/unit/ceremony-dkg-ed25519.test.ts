import assert from 'node:assert/strict';
import { createPublicKey, verify } from 'node:crypto';
import { ed25519, ed25519_FROST } from '@noble/curves/ed25519.js';
import { decodeHex, encodeHex, utf8ToBytes } from '../../core/bytes.ts';
import { dkgCeremonyId, voteQuorum } from '../../core/ceremony/index.ts';
import { dkgPublicResultDigest, parseDkgPublicResult, verifyDkgPublicResult } from '../../core/dkg/result.ts';
import { ed25519Group, toFrostScalar } from '../../core/group.ts';
import { isTkmsError } from '../../core/errors.ts';
import { interpolateSecret, type ScalarShare } from '../../core/shamir.ts';
import { makeDkgScenario, newDkgCeremony, simulateDkg } from './ceremony-dkg-harness.ts';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Keystore } from '../../node/keystore.ts';
import { publicResultToJson } from '../../node/dkg-held-keys.ts';
import { dkgKeyData } from '../../node/epoch-store.ts';
import { ShareBook } from '../../node/partial.ts';
import { runNetwork } from './ceremony-harness.ts';

const frost = ed25519_FROST;

/** 3-of-5 FROST(Ed25519, SHA-512) over the DKG's shares, signers = the given member ids. */
function frostSign(groupKey: Uint8Array, t: number, n: number, verificationShares: Record<string, string>, shares: Map<number, bigint>, signers: number[], msg: Uint8Array): Uint8Array {
  const pub = {
    signers: { min: t, max: n },
    commitments: [groupKey],
    verifyingShares: Object.fromEntries(Object.entries(verificationShares).map(([id, y]) => [frost.Identifier.fromNumber(Number(id)), decodeHex(y)])),
  };
  const secrets = signers.map((id) => ({ identifier: frost.Identifier.fromNumber(id), signingShare: toFrostScalar(ed25519Group, shares.get(id)!) }));
  // No frost.validateSecret: it evaluates the full VSS polynomial, and a DKG result publishes only
  // its constant term (the group key) and every Y_i; share·B = Y_i is checked by the caller.
  const rounds = secrets.map((s) => frost.commit(s));
  const commitments = rounds.map((r) => r.commitments);
  const sigShares = Object.fromEntries(secrets.map((s, i) => [s.identifier, frost.signShare(s, pub, rounds[i]!.nonces, commitments, msg)]));
  for (const [id, share] of Object.entries(sigShares)) assert.ok(frost.verifyShare(pub, commitments, msg, id, share), `share of ${id} verifies`);
  return frost.aggregate(pub, commitments, msg, sigShares);
}

function nodeVerifies(groupKey: Uint8Array, msg: Uint8Array, signature: Uint8Array): boolean {
  const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(groupKey).toString('base64url') }, format: 'jwk' });
  return verify(null, msg, key, signature);
}

describe('DKG ceremony over ed25519 (the same engine, the key in the prime-order subgroup of edwards25519)', function () {
  this.timeout(300_000);

  it('makes a 3-of-5 Ed25519 key: shares match Y_i, any 3 interpolate to the group key, FROST signs with them and node:crypto verifies', () => {
    const s = makeDkgScenario({ n: 5, t: 3, seed: 7, curve: 'ed25519', keyId: 'sign-key' });
    const r = simulateDkg(s, { seed: 5, maxDelay: 40 });
    assert.deepEqual(r.errors, []);
    const expected = { committeeId: s.committee.committeeId, t: 3, memberKeys: s.memberKeys };
    const shares = new Map<number, bigint>();
    const first = r.outcomes[0]!.result;
    assert.equal(first.curve, 'ed25519');
    assert.equal(decodeHex(first.groupPublicKey).length, 32);
    for (const node of s.nodes) {
      const o = r.outcomes[node.index];
      assert.ok(o?.share !== undefined, `member ${node.fromId} has its share`);
      assert.deepEqual({ ...o.result, signatures: {} }, { ...first, signatures: {} }, 'every member holds the same result');
      assert.ok(Object.keys(o.result.signatures).length >= voteQuorum(5, 3));
      verifyDkgPublicResult(o.result, expected);
      assert.ok(o.share < ed25519Group.order);
      assert.equal(encodeHex(ed25519.Point.BASE.multiply(o.share).toBytes()), first.verificationShares[String(node.fromId)], 'share·B = Y_i');
      shares.set(node.fromId!, o.share);
    }
    assert.deepEqual(first.qualified, [1, 2, 3, 4, 5]);
    const all: ScalarShare[] = [...shares].map(([id, value]) => ({ id, value }));
    const subsets = [[0, 1, 2], [2, 3, 4], [0, 2, 4], [1, 3, 4]];
    const secrets = subsets.map((ix) => interpolateSecret(ix.map((i) => all[i]!), ed25519Group.Fn));
    for (const secret of secrets) {
      assert.equal(secret, secrets[0]);
      assert.equal(encodeHex(ed25519.Point.BASE.multiply(secret).toBytes()), first.groupPublicKey, '3 shares combine to the group key');
    }
    assert.notEqual(interpolateSecret(all.slice(0, 2), ed25519Group.Fn), secrets[0], 'two shares do not');

    const groupKey = decodeHex(first.groupPublicKey);
    const msg = utf8ToBytes('tkms: an ed25519 key made by the committee');
    for (const signers of [[1, 2, 3], [2, 4, 5]]) {
      const signature = frostSign(groupKey, 3, 5, first.verificationShares, shares, signers, msg);
      assert.ok(nodeVerifies(groupKey, msg, signature), `node:crypto verifies the FROST signature of ${signers.join(',')}`);
      assert.ok(!nodeVerifies(groupKey, utf8ToBytes('another message'), signature));
    }
  });

  it('binds the curve: the result digest and the ceremony id differ from a secp256k1 DKG, and a result with its curve removed or changed does not verify', () => {
    const s = makeDkgScenario({ n: 4, t: 2, seed: 11, curve: 'ed25519' });
    const r = simulateDkg(s, { seed: 2, maxDelay: 20 });
    assert.deepEqual(r.errors, []);
    const result = r.outcomes[0]!.result;
    assert.notDeepEqual(dkgCeremonyId(s.keyId, s.committee, s.sessionId, 'ed25519'), dkgCeremonyId(s.keyId, s.committee, s.sessionId));
    const expected = { committeeId: s.committee.committeeId, t: 2, memberKeys: s.memberKeys };
    const { curve: _curve, ...withoutCurve } = result;
    // Without the field the points are read as secp256k1 points: 32 bytes is no compressed point.
    assert.throws(() => verifyDkgPublicResult(withoutCurve, expected), (e: unknown) => isTkmsError(e) && ['bad_length', 'bad_hex'].includes(e.code));
    assert.throws(() => parseDkgPublicResult({ ...result, curve: 'secp256k1' }), (e: unknown) => isTkmsError(e) && e.code === 'bad_request');
    assert.throws(() => parseDkgPublicResult({ ...result, curve: 'ed448' }), (e: unknown) => isTkmsError(e) && e.code === 'bad_request');
    assert.equal(encodeHex(dkgPublicResultDigest(result, s.memberKeys)).length, 66);
  });

  it('a member whose view of the key says secp256k1 takes no part (another ceremony id): the four ed25519 members still finish', () => {
    const s = makeDkgScenario({ n: 5, t: 3, seed: 13, curve: 'ed25519' });
    const ceremonies = s.nodes.map((node) => newDkgCeremony(node.index === 0 ? { ...s, curve: undefined } : s, node));
    const r = runNetwork(s.nodes, ceremonies, { seed: 1, maxDelay: 10 });
    assert.ok(r.errors.length > 0, 'its messages are refused');
    const expected = { committeeId: s.committee.committeeId, t: 3, memberKeys: s.memberKeys };
    for (const node of s.nodes.slice(1)) {
      const o = r.outcomes[node.index];
      assert.ok(o?.share !== undefined, `member ${node.fromId} finished`);
      assert.equal(o.result.curve, 'ed25519');
      assert.deepEqual(o.result.qualified, [2, 3, 4, 5]);
      verifyDkgPublicResult(o.result, expected);
    }
    assert.equal(r.outcomes[0], undefined, 'the member that disagrees makes no key');
  });

  it('a node stores an ed25519 share and its result, loads them back, and its ShareBook checks share·B = Y_i on edwards25519', async () => {
    const s = makeDkgScenario({ n: 4, t: 2, seed: 17, curve: 'ed25519', keyId: 'ed-stored' });
    const r = simulateDkg(s, { seed: 4, maxDelay: 20 });
    const { result, share } = r.outcomes[1]!;
    assert.ok(share !== undefined);
    const dir = await mkdtemp(join(tmpdir(), 'tkms-ed25519-'));
    try {
      const keystore = await Keystore.open(dir, 'password', { newKeystoreScrypt: { N: 2 ** 14, r: 8, p: 1 } });
      await keystore.save({ keyId: s.keyId, share, publicResult: publicResultToJson(result) });
      const loaded = await keystore.load(s.keyId);
      assert.equal(loaded.share, share);
      const reparsed = parseDkgPublicResult(loaded.publicResult);
      assert.deepEqual(reparsed, parseDkgPublicResult(result));
      const book = new ShareBook(2);
      book.add(reparsed, loaded.share);
      assert.equal(book.get(s.keyId)?.curve, 'ed25519');
      assert.throws(() => new ShareBook(2).add(reparsed, ed25519Group.mod(share + 1n)), (e: unknown) => isTkmsError(e) && e.code === 'keystore_corrupt');
      assert.throws(() => new ShareBook(2).add(reparsed, share + ed25519Group.order), (e: unknown) => isTkmsError(e) && e.code === 'keystore_corrupt', 'share + ℓ is the same point but no canonical share');
      // The epoch store reads the same key file as epoch data of the key's group, which serves the same share.
      const data = dkgKeyData(s.keyId, loaded.publicResult);
      assert.equal(data.curve, 'ed25519');
      assert.equal(data.groupPublicKey.length, 32);
      const next = new ShareBook(2);
      next.serveEpoch(2, 0, [{ keyId: s.keyId, share, data }]);
      assert.equal(next.get(s.keyId)?.share, share);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
