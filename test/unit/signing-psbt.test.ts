import assert from 'node:assert/strict';
import { expectSyncRefusal } from '../support/refusal.ts';
import { schnorr } from '@noble/curves/secp256k1.js';
import { Transaction } from '@scure/btc-signer/transaction.js';
import { parseKeyPolicy } from '../../core/keys/policy.ts';
import { finalizeTaprootPsbt, keyInputIndexes, keyPathSighashes, parsePsbt } from '../../core/signing/psbt.ts';
import { planSigning } from '../../core/signing/sign-policy.ts';
import { buildPsbt, HOT, HOT_WPKH, INTERNAL_KEY, KEY, KEY_SECRET, OTHER, OTHER_SECRET, tweakedSecret } from '../support/psbt-fixtures.ts';

const warm = parseKeyPolicy({ sign: { psbt: { network: 'testnet', allowedAddresses: [HOT.address!], dailyValueCapSats: '1000000' } } });

const refused = expectSyncRefusal;

/** Signs what the plan says with the tweaked key, as FROST's aggregate would: noble's single-signer schnorr.sign. */
function signPlan(psbt: Uint8Array): { signatures: Map<number, Uint8Array>; sighashes: Uint8Array[] } {
  const plan = planSigning(warm, 'warm', 'bip340', { kind: 'psbt', psbt }, { internalKey: INTERNAL_KEY }, 0n);
  const tweaked = tweakedSecret(KEY_SECRET);
  assert.deepEqual(schnorr.getPublicKey(tweaked), KEY.tweakedPubkey, 'the test\'s tweak is BIP341\'s');
  return { signatures: new Map(plan.inputIndexes.map((input, n) => [input, schnorr.sign(plan.messages[n]!, tweaked)])), sighashes: plan.messages };
}

describe('signing: PSBT finalisation (core/signing/psbt.ts)', () => {
  it('a finalised PSBT signed by the tweaked key is a valid Taproot transaction', () => {
    const psbt = buildPsbt([{ amount: 100_000n }, { amount: 50_000n }], [{ script: HOT.script, amount: 120_000n }, { script: KEY.script, amount: 29_000n }]);
    const { signatures, sighashes } = signPlan(psbt);
    const out = finalizeTaprootPsbt(psbt, signatures);
    const tx = Transaction.fromRaw(out.tx!, { allowUnknownOutputs: true });
    const unsigned = Transaction.fromPSBT(psbt);
    assert.equal(tx.id, unsigned.id, 'the witness does not change the txid');
    assert.equal(tx.inputsLength, 2);
    for (const input of [0, 1]) {
      const witness = tx.getInput(input).finalScriptWitness!;
      assert.equal(witness.length, 1, 'a key-path spend has one witness item');
      assert.equal(witness[0]!.length, 64, 'SIGHASH_DEFAULT: no sighash byte');
      assert.deepEqual(witness[0], signatures.get(input));
      // Checked apart from the signing path: the witness verifies under the output key over the input's sighash.
      assert.ok(schnorr.verify(witness[0]!, sighashes[input]!, KEY.tweakedPubkey));
    }
    // The finalised PSBT carries the same final witnesses and extracts to the same transaction.
    const final = Transaction.fromPSBT(out.psbt);
    assert.ok(final.isFinal);
    assert.deepEqual(final.extract(), out.tx);
  });

  it('a jointly funded transaction finalises once the other owner has signed its input', () => {
    const joint = buildPsbt([{ amount: 40_000n }, { amount: 60_000n, script: OTHER.script }], [{ script: HOT.script, amount: 99_000n }]);
    const { signatures } = signPlan(joint);
    assert.deepEqual([...signatures.keys()], [0]);
    // The other input is not signed yet: the key's input is, and the PSBT goes on to the other owner, with no transaction yet.
    const partial = finalizeTaprootPsbt(joint, signatures);
    assert.equal(partial.tx, undefined);
    assert.equal(Transaction.fromPSBT(partial.psbt).getInput(0).finalScriptWitness![0]!.length, 64);
    const other = Transaction.fromPSBT(joint);
    other.updateInput(1, { tapInternalKey: schnorr.getPublicKey(OTHER_SECRET) });
    other.signIdx(OTHER_SECRET, 1);
    other.finalizeIdx(1);
    const out = finalizeTaprootPsbt(other.toPSBT(), signatures);
    const tx = Transaction.fromRaw(out.tx!);
    assert.equal(tx.getInput(0).finalScriptWitness![0]!.length, 64);
    assert.equal(tx.getInput(1).finalScriptWitness![0]!.length, 64);
  });

  it('refuses a signature that does not verify, one of the wrong length, and an input that is not Taproot', () => {
    const psbt = buildPsbt([{ amount: 100_000n }], [{ script: HOT.script, amount: 99_000n }]);
    const { signatures } = signPlan(psbt);
    const good = signatures.get(0)!;
    const bad = good.slice();
    bad[63]! ^= 1;
    refused(() => finalizeTaprootPsbt(psbt, new Map([[0, bad]])), 'bad_request', /input 0 does not verify under its Taproot output key/);
    // Signed by the untweaked key: valid BIP340, but not under the output key.
    const untweaked = schnorr.sign(keyPathSighashes(parsePsbt(psbt, 'testnet'), [0])[0]!, KEY_SECRET);
    refused(() => finalizeTaprootPsbt(psbt, new Map([[0, untweaked]])), 'bad_request', /does not verify/);
    refused(() => finalizeTaprootPsbt(psbt, new Map([[0, good.subarray(0, 63)]])), 'bad_request', /must be 64 bytes/);
    refused(() => finalizeTaprootPsbt(psbt, new Map()), 'bad_request', /no signatures/);
    refused(() => finalizeTaprootPsbt(psbt, new Map([[3, good]])), 'bad_psbt', /has no input 3/);
    const wpkh = buildPsbt([{ amount: 100_000n }, { amount: 5_000n, script: HOT_WPKH.script }], [{ script: HOT.script, amount: 99_000n }]);
    refused(() => finalizeTaprootPsbt(wpkh, new Map([[1, good]])), 'bad_psbt', /input 1 does not spend a Taproot output/);
    // Record form works the same.
    assert.ok(finalizeTaprootPsbt(psbt, { 0: good }).tx!.length > 0);
  });

  it('finds the key\'s inputs by its key-path script only', () => {
    const psbt = parsePsbt(buildPsbt([{ amount: 1n, script: OTHER.script }, { amount: 2n }, { amount: 3n, bare: true }], [{ script: HOT.script, amount: 1n }]), 'testnet');
    assert.deepEqual(keyInputIndexes(psbt, INTERNAL_KEY), [1]);
    assert.deepEqual(keyInputIndexes(psbt, schnorr.getPublicKey(OTHER_SECRET)), [0]);
    assert.deepEqual(psbt.outputs.map((o) => o.address), [HOT.address]);
  });
});
