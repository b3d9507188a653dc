import { bytesToHex, encodeHex, equalBytes } from '../bytes.ts';
import { TkmsError } from '../errors.ts';
import { evaluateKeyPolicy, type KeyPolicy, type PsbtRules } from '../keys/policy.ts';
import type { ManagedKey } from '../keys/key-model.ts';
import { decodeBitcoinAddress } from './bitcoin-address.ts';
import { keyInputIndexes, keyPathSighashes, MAX_PSBT_BYTES, parsePsbt, taprootKeyScript } from './psbt.ts';
import { MAX_RAW_MESSAGE_BYTES, type SignMessage } from './sign-request.ts';
import { MAX_MESSAGES_PER_REQUEST } from './sign-wire.ts';
import type { SigningSuite } from './suites.ts';

/**
 * What a signing key's policy lets it sign (docs/key-policy.md, "Signing rules"). Default-deny:
 * a key signs a raw message only if `sign.raw` is true or the message starts with one of
 * `sign.prefixes`, and a PSBT only under `sign.psbt`. Who may ask (allowedRequesters, windows,
 * daily limits, co-signatures) is evaluateKeyPolicy's, with operation "sign"; this module decides
 * what may be signed, and what FROST then signs. Pure: every node derives the same plan from the
 * same policy, request and day's spending.
 */

/** BIP341 signs a 32-byte sighash; a raw message of this length to a Taproot key could be one. */
const SIGHASH_BYTES = 32;

export interface SigningPlan {
  /** What FROST signs, in order: the raw message, or the BIP341 sighash of each key input. */
  messages: Uint8Array[];
  /** PSBT only: the input each message signs, same order. */
  inputIndexes: number[];
  /** PSBT only: what the transaction sends away from the key (0 for a raw message). */
  valueSats: bigint;
  /** PSBT only: the unsigned transaction's id (hex, as explorers show it): what the value ledger counts by. */
  txid?: string;
}

export interface SigningKey {
  /** The DKG group key as a 32-byte x-only key: the Taproot internal key (bip340 only). */
  internalKey?: Uint8Array;
}

/**
 * What the key already sent today (node/sign-value-ledger.ts). As a function it is asked with the
 * transaction's id, so a transaction signed before can be left out and a retry is not refused by
 * its own value: `(txid) => ledger.spentToday(keyId, now, txid)`.
 */
export type ValueSpentToday = bigint | ((txid: string) => bigint);

/** The plan for signing `message` with key `keyId`, or the refusal of the first rule it breaks. */
export function planSigning(policy: KeyPolicy, keyId: string, suite: SigningSuite, message: SignMessage, key: SigningKey, valueSpentToday: ValueSpentToday): SigningPlan {
  if (message.kind === 'raw') return planRaw(policy, keyId, suite, message.data);
  if (message.kind === 'psbt') return planPsbt(policy, keyId, suite, message.psbt, key, valueSpentToday);
  throw new TkmsError('bad_request', 'a message to sign is of kind "raw" or "psbt"');
}

function planRaw(policy: KeyPolicy, keyId: string, suite: SigningSuite, data: Uint8Array): SigningPlan {
  if (!(data instanceof Uint8Array) || data.length < 1 || data.length > MAX_RAW_MESSAGE_BYTES) {
    throw new TkmsError('bad_request', `a raw message to sign is 1 to ${MAX_RAW_MESSAGE_BYTES} bytes`);
  }
  const sign = policy.sign;
  const plan = { messages: [data], inputIndexes: [], valueSats: 0n };
  if (sign?.raw === true) return plan;
  const prefixes = sign?.prefixes;
  if (prefixes === undefined) {
    throw new TkmsError('policy_raw_denied', `key ${keyId}: policy does not allow signing raw messages${sign?.psbt !== undefined ? ' (it signs Bitcoin transactions, as PSBTs, only)' : ''}`);
  }
  const hex = encodeHex(data);
  const match = prefixes.find((p) => hex.startsWith(p));
  if (match === undefined) {
    throw new TkmsError('policy_prefix_denied', `key ${keyId}: policy signs only messages that start with one of its ${prefixes.length} prefix${prefixes.length === 1 ? '' : 'es'} (${prefixes.join(', ')}); this one starts with ${hex.slice(0, 18)}`);
  }
  // A prefix is matched by chance, or by grinding a transaction, by 1 in 2^(8·length) sighashes:
  // a 32-byte message to a Taproot key could be a Bitcoin transaction that sign.psbt never saw.
  if (suite === 'bip340' && data.length === SIGHASH_BYTES) {
    throw new TkmsError(
      'policy_prefix_denied',
      `key ${keyId}: a 32-byte message to a Taproot key could be a transaction's sighash, so a prefix does not allow it (only sign.raw does); sign a longer message, or a PSBT`,
    );
  }
  return plan;
}

function planPsbt(policy: KeyPolicy, keyId: string, suite: SigningSuite, psbt: Uint8Array, key: SigningKey, spentToday: ValueSpentToday): SigningPlan {
  if (suite !== 'bip340') throw new TkmsError('key_usage_mismatch', `key ${keyId} is an Ed25519 key; only a Taproot (secp256k1 BIP340) key signs Bitcoin transactions`);
  if (!(psbt instanceof Uint8Array) || psbt.length < 1 || psbt.length > MAX_PSBT_BYTES) throw new TkmsError('bad_request', `a PSBT to sign is 1 to ${MAX_PSBT_BYTES} bytes`);
  const rules = policy.sign?.psbt;
  if (rules === undefined) throw new TkmsError('policy_message_kind_denied', `key ${keyId}: policy does not allow signing Bitcoin transactions (it has no sign.psbt rules)`);
  if (key.internalKey === undefined) throw new TkmsError('internal', `key ${keyId}: no Taproot internal key to match PSBT inputs against`);
  const ownScript = taprootKeyScript(key.internalKey);
  const parsed = parsePsbt(psbt, rules.network);
  const inputIndexes = keyInputIndexes(parsed, key.internalKey);
  if (inputIndexes.length === 0) throw new TkmsError('bad_psbt', `PSBT has no input this key can sign (none spends its key-path Taproot output ${encodeHex(ownScript)})`);
  if (inputIndexes.length > MAX_MESSAGES_PER_REQUEST) throw new TkmsError('bad_psbt', `PSBT has ${inputIndexes.length} inputs of this key; one request signs at most ${MAX_MESSAGES_PER_REQUEST}`);
  const allowed = allowedScripts(rules);
  let valueSats = 0n;
  for (const output of parsed.outputs) {
    if (equalBytes(output.script, ownScript)) continue; // change back to the key
    if (!allowed.some((s) => equalBytes(s, output.script))) {
      const payee = output.address ?? `a script no ${rules.network} address names (${bytesToHex(output.script.subarray(0, 40))}${output.script.length > 40 ? '…' : ''})`;
      throw new TkmsError('policy_output_denied', `key ${keyId}: output ${output.index} pays ${output.valueSats} sats to ${payee}, which is not one of the policy's ${rules.allowedAddresses.length} allowed addresses`);
    }
    valueSats += output.valueSats;
  }
  // What leaves the key also as fee: every input carries its amount (a BIP341 sighash needs them all),
  // and only the key's own inputs are the key's to spend.
  const fee = totalIn(parsed) - parsed.outputs.reduce((sum, o) => sum + o.valueSats, 0n);
  if (fee < 0n) throw new TkmsError('bad_psbt', 'PSBT outputs exceed its inputs');
  valueSats += fee;
  const cap = BigInt(rules.dailyValueCapSats);
  const valueSpentToday = typeof spentToday === 'function' ? spentToday(parsed.txid) : spentToday;
  if (valueSpentToday + valueSats > cap) {
    throw new TkmsError(
      'policy_value_cap',
      `key ${keyId}: policy caps what it sends at ${cap} sats per UTC day; it sent ${valueSpentToday} today and this transaction sends ${valueSats} (${cap > valueSpentToday ? cap - valueSpentToday : 0n} left); the count resets at 00:00 UTC`,
    );
  }
  return { messages: keyPathSighashes(parsed, inputIndexes), inputIndexes, valueSats, txid: parsed.txid };
}

function totalIn(parsed: ReturnType<typeof parsePsbt>): bigint {
  let sum = 0n;
  for (const input of parsed.inputs) {
    if (input.witnessUtxo === undefined) throw new TkmsError('bad_psbt', `PSBT input ${input.index} has no witnessUtxo; a Taproot sighash commits to every input's amount and script`);
    sum += input.witnessUtxo.amount;
  }
  return sum;
}

/**
 * Who may sign with `key`: the policy's allowed requesters when it lists them, else the key's admins;
 * then the rest of the policy (operations, windows, the daily count `usedToday`). A sensitive key
 * refuses (policy_approvals_missing): co-signed signing requests are not built.
 */
export function authorizeSigner(key: ManagedKey, requester: string, requesterBytes: Uint8Array, nowSeconds: number, usedToday: number): void {
  const policy = key.policy as KeyPolicy;
  if (policy.allowedRequesters === undefined && !key.admins.includes(requester)) {
    throw new TkmsError('policy_requester_denied', `key ${key.keyId}: its policy names no allowed requesters, so only its admins may sign; ${requester} is not one`);
  }
  evaluateKeyPolicy(policy, { keyId: key.keyId, operation: 'sign', requester: requesterBytes, grantSource: 'owner', nowSeconds, usedToday, approvers: () => new Set<string>() });
}

/** The output scripts of the allowed addresses, which parseKeyPolicy checked are of the policy's network. */
function allowedScripts(rules: PsbtRules): Uint8Array[] {
  return rules.allowedAddresses.map((a) => decodeBitcoinAddress(a, rules.network).script);
}
