import assert from 'node:assert/strict';
import { createPublicKey, verify } from 'node:crypto';
import { ed25519_FROST } from '@noble/curves/ed25519.js';
import { encodeHex, utf8ToBytes } from '../../core/bytes.ts';
import { curveBackend } from '../../core/curve-backend.ts';
import { parseHandoverCertificate, verifyHandover } from '../../core/ceremony/handover.ts';
import { ed25519Group, toFrostScalar } from '../../core/group.ts';
import { isTkmsError } from '../../core/errors.ts';
import { evaluatePolynomial, interpolateSecret, type ScalarShare } from '../../core/shamir.ts';
import { makeScenario, simulate } from './ceremony-harness.ts';

const frost = ed25519_FROST;

/** FROST(Ed25519) with the given members' shares; returns the aggregated signature. */
function frostSign(groupKey: Uint8Array, t: number, n: number, ys: Map<number, Uint8Array>, shares: Map<number, bigint>, signers: number[], msg: Uint8Array): Uint8Array {
  const pub = { signers: { min: t, max: n }, commitments: [groupKey], verifyingShares: Object.fromEntries([...ys].map(([id, y]) => [frost.Identifier.fromNumber(id), y])) };
  const secrets = signers.map((id) => ({ identifier: frost.Identifier.fromNumber(id), signingShare: toFrostScalar(ed25519Group, shares.get(id)!) }));
  const rounds = secrets.map((s) => frost.commit(s));
  const commitments = rounds.map((r) => r.commitments);
  const sigShares = Object.fromEntries(secrets.map((s, i) => [s.identifier, frost.signShare(s, pub, rounds[i]!.nonces, commitments, msg)]));
  return frost.aggregate(pub, commitments, msg, sigShares);
}

describe('reshare moves an ed25519 key (same engine, the key in its own group beside a secp256k1 key)', function () {
  this.timeout(300_000);

  it('3-of-5 → 3-of-5 with one member replaced: the ed25519 group key is unchanged, new shares match Y′_i, interpolate to the old secret and sign FROST signatures node:crypto verifies', () => {
    const s = makeScenario({ n: 5, t: 3, nTo: 5, tTo: 3, stay: [[1, 1], [2, 2], [3, 3], [4, 4]], keyIds: ['key-a-secp', 'key-b-ed'], seed: 21 });
    // Replace key-b-ed's data by an ed25519 sharing of a secret mod ℓ.
    const secret = ed25519Group.randomScalar();
    const coefficients = [secret, ed25519Group.randomScalar(), ed25519Group.randomScalar()];
    const edShares: ScalarShare[] = [1, 2, 3, 4, 5].map((id) => ({ id, value: evaluatePolynomial(coefficients, BigInt(id), ed25519Group.Fn) }));
    s.oldShares.set('key-b-ed', edShares);
    const groupKey = ed25519Group.multiplyBaseSecret(secret);
    s.keys[1] = { keyId: 'key-b-ed', epoch: s.keys[1]!.epoch, t: 3, groupPublicKey: groupKey, verificationShares: new Map(edShares.map((x) => [x.id, ed25519Group.multiplyBaseSecret(x.value)])), curve: 'ed25519' };

    const r = simulate(s, { seed: 9, maxDelay: 30 });
    assert.deepEqual(r.errors, []);
    const fromKeys = new Map(s.keys.map((k) => [k.keyId, k]));
    const arriving = s.nodes.filter((x) => x.toId !== undefined);
    const first = r.outcomes[arriving[0]!.index]!;
    const verified = verifyHandover(first.certificate, s.proposal.from, fromKeys);
    const ed = verified.keys.find((k) => k.keyId === 'key-b-ed')!;
    assert.equal(ed.curve, 'ed25519');
    assert.equal(encodeHex(ed.groupPublicKey), encodeHex(groupKey), 'the group key did not change');
    const secp = verified.keys.find((k) => k.keyId === 'key-a-secp')!;
    assert.equal(secp.curve, undefined);
    assert.equal(first.certificate.keys[0]!.curve, undefined, 'a secp256k1 key entry carries no curve field');

    const newShares = new Map<number, bigint>();
    for (const node of arriving) {
      const o = r.outcomes[node.index];
      assert.ok(o?.newShares !== undefined, `arriving member ${node.toId} has its shares`);
      const share = o.newShares.get('key-b-ed')!;
      assert.ok(share > 0n && share < ed25519Group.order);
      assert.equal(encodeHex(ed25519Group.multiplyBaseSecret(share)), encodeHex(ed.verificationShares.get(node.toId!)!), 'share′·B = Y′_i');
      assert.notEqual(share, edShares.find((x) => x.id === node.toId)?.value, 'shares changed');
      const secpShare = o.newShares.get('key-a-secp')!;
      assert.equal(encodeHex(curveBackend().multiplyBaseSecret(secpShare)), encodeHex(secp.verificationShares.get(node.toId!)!));
      newShares.set(node.toId!, share);
    }
    const all = [...newShares].map(([id, value]) => ({ id, value }));
    assert.equal(interpolateSecret(all.slice(0, 3), ed25519Group.Fn), secret);
    assert.equal(interpolateSecret(all.slice(2), ed25519Group.Fn), secret);

    const msg = utf8ToBytes('signed after the handover');
    const signature = frostSign(groupKey, 3, 5, ed.verificationShares, newShares, [1, 3, 5], msg);
    const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(groupKey).toString('base64url') }, format: 'jwk' });
    assert.ok(verify(null, msg, key, signature));

    // The curve is part of the certificate: removed, the ed25519 points are refused as secp256k1 points.
    const json = JSON.parse(JSON.stringify(first.certificate)) as { keys: Record<string, unknown>[] };
    delete json.keys[1]!['curve'];
    assert.throws(() => parseHandoverCertificate(json), (e: unknown) => isTkmsError(e) && e.code === 'bad_request');
    // And claimed for the secp256k1 key it is refused too.
    const other = JSON.parse(JSON.stringify(first.certificate)) as { keys: Record<string, unknown>[] };
    other.keys[0]!['curve'] = 'ed25519';
    assert.throws(() => parseHandoverCertificate(other), (e: unknown) => isTkmsError(e) && e.code === 'bad_request');
  });
});
