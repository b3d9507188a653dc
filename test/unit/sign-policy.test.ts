import assert from 'node:assert/strict';
import { expectSyncRefusal } from '../support/refusal.ts';
import { schnorr } from '@noble/curves/secp256k1.js';
import { SigHash, Transaction } from '@scure/btc-signer/transaction.js';
import { Script } from '@scure/btc-signer/script.js';
import { parseKeyPolicy, type KeyPolicy } from '../../core/keys/policy.ts';
import { MAX_PSBT_BYTES } from '../../core/signing/psbt.ts';
import { planSigning, type SigningPlan } from '../../core/signing/sign-policy.ts';
import { MAX_RAW_MESSAGE_BYTES, type SignMessage } from '../../core/signing/sign-request.ts';
import type { SigningSuite } from '../../core/signing/suites.ts';
import { buildPsbt, HOT, HOT_WPKH, INTERNAL_KEY, KEY, KEY_SECRET, OTHER, STRANGER, tweakedSecret, type InputSpec, type OutputSpec } from '../support/psbt-fixtures.ts';

const PREFIX = '0x746b6d732f'; // "tkms/"
const KEY_ARG = { internalKey: INTERNAL_KEY };

const warm = parseKeyPolicy({ sign: { psbt: { network: 'testnet', allowedAddresses: [HOT.address!, HOT_WPKH.address!], dailyValueCapSats: '100000' } } });
const prefixed = parseKeyPolicy({ sign: { prefixes: [PREFIX, '0xff'] } });
const anyBytes = parseKeyPolicy({ sign: { raw: true } });

const raw = (data: Uint8Array): SignMessage => ({ kind: 'raw', data });
const psbt = (inputs: InputSpec[], outputs: OutputSpec[]): SignMessage => ({ kind: 'psbt', psbt: buildPsbt(inputs, outputs) });
const bytes = (hex: string, length: number): Uint8Array => {
  const head = Buffer.from(hex.replace(/^0x/, ''), 'hex');
  const out = new Uint8Array(length).fill(0x61);
  out.set(head.subarray(0, length));
  return out;
};

function plan(policy: KeyPolicy, message: SignMessage, suite: SigningSuite = 'bip340', spent = 0n): SigningPlan {
  return planSigning(policy, 'warm', suite, message, KEY_ARG, spent);
}

const refused = expectSyncRefusal;

describe('signing policy: raw messages (core/signing/sign-policy.ts)', () => {
  it('default-deny: a policy without sign rules signs no raw message, nor one with only PSBT rules', () => {
    for (const suite of ['ed25519', 'bip340'] as const) {
      refused(() => plan({}, raw(bytes('00', 40)), suite), 'policy_raw_denied', /^key warm: policy does not allow signing raw messages$/);
      refused(() => plan(parseKeyPolicy({ operations: ['sign'] }), raw(bytes('00', 40)), suite), 'policy_raw_denied');
      refused(() => plan(warm, raw(bytes('00', 40)), suite), 'policy_raw_denied', /signs Bitcoin transactions, as PSBTs, only/);
      refused(() => plan(parseKeyPolicy({ sign: { raw: false } }), raw(bytes('00', 40)), suite), 'policy_raw_denied');
    }
  });

  it('raw: true signs any bytes, a 32-byte message to a Taproot key included', () => {
    for (const length of [1, 32, 33, MAX_RAW_MESSAGE_BYTES]) {
      const data = bytes('00', length);
      const p = plan(anyBytes, raw(data));
      assert.deepEqual(p, { messages: [data], inputIndexes: [], valueSats: 0n });
      assert.equal(p.messages[0], data);
    }
  });

  it('prefixes: a message that starts with one is signed, any other refused naming the prefixes', () => {
    assert.deepEqual(plan(prefixed, raw(bytes(PREFIX, 40))).messages, [bytes(PREFIX, 40)]);
    assert.deepEqual(plan(prefixed, raw(bytes('0xff', 1))).messages, [bytes('0xff', 1)]);
    // The prefix itself, alone, starts with itself.
    assert.deepEqual(plan(prefixed, raw(bytes(PREFIX, 5)), 'ed25519').messages.length, 1);
    refused(() => plan(prefixed, raw(bytes('0x746b6d732e', 40))), 'policy_prefix_denied', /^key warm: policy signs only messages that start with one of its 2 prefixes \(0x746b6d732f, 0xff\); this one starts with 0x746b6d732e616161$/);
    // Shorter than the prefix: cannot start with it.
    refused(() => plan(prefixed, raw(bytes(PREFIX, 4))), 'policy_prefix_denied');
    refused(() => plan(prefixed, raw(bytes('0xfe', 100))), 'policy_prefix_denied');
    // Upper-case prefixes in the policy are stored lower-case and still match.
    assert.equal(plan(parseKeyPolicy({ sign: { prefixes: ['0xABCD'] } }), raw(bytes('0xabcd', 40))).messages.length, 1);
  });

  it('prefixes: a 32-byte message to a Taproot key is refused (it could be a sighash); to an Ed25519 key it is signed', () => {
    refused(() => plan(prefixed, raw(bytes(PREFIX, 32))), 'policy_prefix_denied', /32-byte message to a Taproot key could be a transaction's sighash/);
    assert.equal(plan(prefixed, raw(bytes(PREFIX, 32)), 'ed25519').messages.length, 1);
    assert.equal(plan(prefixed, raw(bytes(PREFIX, 31))).messages.length, 1);
    assert.equal(plan(prefixed, raw(bytes(PREFIX, 33))).messages.length, 1);
  });

  it('raw size bounds are a bad_request, before any policy rule', () => {
    for (const policy of [anyBytes, prefixed, {}]) {
      refused(() => plan(policy, raw(new Uint8Array(0))), 'bad_request', /1 to 65536 bytes/);
      refused(() => plan(policy, raw(bytes(PREFIX, MAX_RAW_MESSAGE_BYTES + 1))), 'bad_request', /1 to 65536 bytes/);
    }
    refused(() => plan(anyBytes, { kind: 'raw', data: 'abc' as never }), 'bad_request');
    refused(() => plan(anyBytes, { kind: 'text' } as never), 'bad_request', /"raw" or "psbt"/);
  });
});

describe('signing policy: PSBTs', () => {
  /** A fee of 1,000 sats unless the inputs are given: the value a transaction sends counts its fee. */
  const spend = (outputs: OutputSpec[], inputs: InputSpec[] = [{ amount: outputs.reduce((sum, o) => sum + o.amount, 0n) + 1_000n }]) => psbt(inputs, outputs);
  const compliant = () => spend([{ script: HOT.script, amount: 60_000n }, { script: KEY.script, amount: 139_000n }]);

  it('a PSBT to an Ed25519 key is a key_usage_mismatch, whatever the policy', () => {
    refused(() => plan(warm, compliant(), 'ed25519'), 'key_usage_mismatch', /Ed25519 key; only a Taproot/);
    refused(() => plan({}, compliant(), 'ed25519'), 'key_usage_mismatch');
  });

  it('default-deny: without sign.psbt no PSBT is signed (raw: true and prefixes do not allow one)', () => {
    for (const policy of [{}, anyBytes, prefixed]) refused(() => plan(policy, compliant()), 'policy_message_kind_denied', /no sign\.psbt rules/);
  });

  it('PSBT size bounds are a bad_request; bytes that are no PSBT a bad_psbt', () => {
    refused(() => plan(warm, { kind: 'psbt', psbt: new Uint8Array(0) }), 'bad_request', /1 to 262144 bytes/);
    refused(() => plan(warm, { kind: 'psbt', psbt: new Uint8Array(MAX_PSBT_BYTES + 1) }), 'bad_request');
    refused(() => plan(warm, { kind: 'psbt', psbt: new TextEncoder().encode('psbt\xff not really') }), 'bad_psbt', /PSBT is malformed/);
  });

  it('a compliant PSBT: one sighash per key input, value = outputs not back to the key plus the fee, the unsigned txid', () => {
    const message = compliant();
    const p = plan(warm, message);
    const tx = Transaction.fromPSBT((message as { psbt: Uint8Array }).psbt);
    assert.deepEqual(p.inputIndexes, [0]);
    assert.equal(p.valueSats, 61_000n);
    assert.equal(p.txid, tx.id);
    assert.equal(p.messages.length, 1);
    // The message is the BIP341 sighash: a signature over it by the tweaked key is what btc-signer signs too.
    const signed = Transaction.fromPSBT((message as { psbt: Uint8Array }).psbt);
    signed.sign(KEY_SECRET);
    assert.ok(schnorr.verify(signed.getInput(0).tapKeySig!, p.messages[0]!, KEY.tweakedPubkey));
    assert.ok(schnorr.verify(schnorr.sign(p.messages[0]!, tweakedSecret(KEY_SECRET)), p.messages[0]!, KEY.tweakedPubkey));
  });

  it('pays every allowed address kind (P2TR, P2WPKH); change only sends its fee', () => {
    const p = plan(warm, spend([{ script: HOT.script, amount: 10_000n }, { script: HOT_WPKH.script, amount: 20_000n }, { script: KEY.script, amount: 1_000n }, { script: KEY.script, amount: 2_000n }]));
    assert.equal(p.valueSats, 31_000n);
    assert.equal(plan(warm, spend([{ script: KEY.script, amount: 199_000n }])).valueSats, 1_000n);
    // A fee is value leaving the key: a huge one counts as what it is.
    refused(() => plan(warm, spend([{ script: HOT.script, amount: 1_000n }], [{ amount: 10n ** 8n }])), 'policy_value_cap', /this transaction sends 100000000/);
  });

  it('an output to an address the policy does not list is refused, naming the output, its value and address', () => {
    refused(
      () => plan(warm, spend([{ script: HOT.script, amount: 60_000n }, { script: STRANGER.script, amount: 1n }, { script: KEY.script, amount: 100_000n }])),
      'policy_output_denied',
      new RegExp(`^key warm: output 1 pays 1 sats to ${STRANGER.address!}, which is not one of the policy's 2 allowed addresses$`),
    );
    // Another key of the same wallet is a stranger too: only the key's own key-path script is change.
    refused(() => plan(warm, spend([{ script: OTHER.script, amount: 5n }])), 'policy_output_denied', /output 0 pays 5 sats/);
  });

  it('an output no address names (OP_RETURN) is refused as not allowed', () => {
    const opReturn = Script.encode(['RETURN', new Uint8Array([1, 2, 3])]);
    refused(() => plan(warm, spend([{ script: HOT.script, amount: 1n }, { script: opReturn, amount: 0n }])), 'policy_output_denied', /output 1 pays 0 sats to a script no testnet address names \(6a03010203\)/);
  });

  it('the daily cap: spent + this transaction may reach the cap, not pass it; the refusal names cap, spent and asked', () => {
    const message = spend([{ script: HOT.script, amount: 40_000n }, { script: KEY.script, amount: 150_000n }]);
    assert.equal(plan(warm, message, 'bip340', 59_000n).valueSats, 41_000n);
    const text = refused(() => plan(warm, message, 'bip340', 59_001n), 'policy_value_cap');
    assert.equal(text, 'key warm: policy caps what it sends at 100000 sats per UTC day; it sent 59001 today and this transaction sends 41000 (40999 left); the count resets at 00:00 UTC');
    refused(() => plan(warm, spend([{ script: HOT.script, amount: 99_001n }], [{ amount: 100_001n }])), 'policy_value_cap', /it sent 0 today and this transaction sends 100001 \(100000 left\)/);
    // Change is never capped; only its fee counts.
    assert.equal(plan(warm, spend([{ script: KEY.script, amount: 10n ** 15n }], [{ amount: 10n ** 15n + 1000n }]), 'bip340', 99_000n).valueSats, 1_000n);
    // Asked by txid: the ledger leaves out a transaction it already counted, so a retry passes.
    const asked: string[] = [];
    const txid = Transaction.fromPSBT((message as { psbt: Uint8Array }).psbt).id;
    assert.equal(planSigning(warm, 'warm', 'bip340', message, KEY_ARG, (id) => (asked.push(id), id === txid ? 59_000n : 100_000n)).valueSats, 41_000n);
    assert.deepEqual(asked, [txid]);
    // A cap of 0 signs nothing: even a consolidation pays a fee.
    const zero = parseKeyPolicy({ sign: { psbt: { network: 'testnet', allowedAddresses: [HOT.address!], dailyValueCapSats: '0' } } });
    refused(() => plan(zero, spend([{ script: HOT.script, amount: 1n }])), 'policy_value_cap');
    refused(() => plan(zero, spend([{ script: KEY.script, amount: 1n }])), 'policy_value_cap');
  });

  it('multi-input: signs each of the key inputs, in input order, and none of another owner\'s', () => {
    const message = psbt(
      [{ amount: 50_000n }, { amount: 70_000n, script: OTHER.script }, { amount: 30_000n }],
      [{ script: HOT.script, amount: 90_000n }, { script: KEY.script, amount: 59_000n }],
    );
    const p = plan(warm, message);
    assert.deepEqual(p.inputIndexes, [0, 2]);
    assert.equal(p.messages.length, 2);
    assert.notDeepEqual(p.messages[0], p.messages[1]);
    const signed = Transaction.fromPSBT((message as { psbt: Uint8Array }).psbt);
    signed.sign(KEY_SECRET);
    p.inputIndexes.forEach((input, n) => assert.ok(schnorr.verify(signed.getInput(input).tapKeySig!, p.messages[n]!, KEY.tweakedPubkey), `input ${input}`));
  });

  it('a PSBT with no input of the key, or an input without its witnessUtxo, is a bad_psbt', () => {
    refused(() => plan(warm, psbt([{ amount: 1000n, script: OTHER.script }], [{ script: HOT.script, amount: 500n }])), 'bad_psbt', /no input this key can sign/);
    refused(() => plan(warm, psbt([{ amount: 1000n }, { amount: 1000n, bare: true }], [{ script: HOT.script, amount: 500n }])), 'bad_psbt', /input 1 has no witnessUtxo/);
    // The key's own input without a witnessUtxo cannot be recognised as the key's.
    refused(() => plan(warm, psbt([{ amount: 1000n, bare: true }], [{ script: HOT.script, amount: 500n }])), 'bad_psbt', /no input this key can sign/);
  });

  it('a key input that asks for a sighash type other than SIGHASH_DEFAULT is a bad_psbt', () => {
    refused(() => plan(warm, psbt([{ amount: 1000n, sighashType: SigHash.ALL }], [{ script: HOT.script, amount: 500n }])), 'bad_psbt', /sighash type 1; this key signs with SIGHASH_DEFAULT \(0\) only/);
    refused(() => plan(warm, psbt([{ amount: 1000n, sighashType: SigHash.NONE_ANYONECANPAY }], [{ script: HOT.script, amount: 500n }])), 'bad_psbt');
    assert.equal(plan(warm, psbt([{ amount: 1000n, sighashType: SigHash.DEFAULT }], [{ script: HOT.script, amount: 500n }])).valueSats, 1000n);
  });

  it('a PSBT v2, one without outputs, or one spending an output twice is a bad_psbt', () => {
    refused(() => plan(warm, { kind: 'psbt', psbt: buildPsbt([{ amount: 1000n }], [{ script: HOT.script, amount: 500n }], 2) }), 'bad_psbt', /version 2 is not taken/);
    refused(() => plan(warm, psbt([{ amount: 1000n }], [])), 'bad_psbt', /no outputs/);
    const tx = new Transaction();
    const input = { txid: new Uint8Array(32).fill(1), index: 0, witnessUtxo: { script: KEY.script, amount: 1000n } };
    tx.addInput(input);
    tx.addInput(input);
    tx.addOutput({ script: HOT.script, amount: 500n });
    refused(() => plan(warm, { kind: 'psbt', psbt: tx.toPSBT() }), 'bad_psbt', /input 1 spends the same output as an earlier input/);
  });

  it('addresses are compared as scripts: a policy for mainnet allows the same scripts', () => {
    const mainnet = parseKeyPolicy({ sign: { psbt: { network: 'bitcoin', allowedAddresses: ['bc1p33wm0auhr9kkahzd6l0kqj85af4cswn276hsxg6zpz85xe2r0y8syx4e5t'], dailyValueCapSats: '2000' } } });
    assert.equal(plan(mainnet, spend([{ script: HOT.script, amount: 1000n }])).valueSats, 2000n);
    refused(() => plan(mainnet, spend([{ script: STRANGER.script, amount: 1n }])), 'policy_output_denied', /to bc1p/);
  });

  it('refuses in rule order: usage, size, kind, parse, outputs, cap', () => {
    const overAndStranger = spend([{ script: STRANGER.script, amount: 1n }, { script: HOT.script, amount: 10n ** 9n }], [{ amount: 2n * 10n ** 9n }]);
    refused(() => plan(warm, overAndStranger, 'bip340', 10n ** 12n), 'policy_output_denied');
    refused(() => plan({}, { kind: 'psbt', psbt: new Uint8Array(10) }), 'policy_message_kind_denied');
    refused(() => plan({}, { kind: 'psbt', psbt: new Uint8Array(10) }, 'ed25519'), 'key_usage_mismatch');
  });
});
