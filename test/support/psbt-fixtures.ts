import { schnorr, secp256k1 } from '@noble/curves/secp256k1.js';
import { bytesToNumberBE, numberToBytesBE } from '@noble/curves/utils.js';
import { sha256 } from '@noble/hashes/sha2.js';
import { p2tr, p2wpkh } from '@scure/btc-signer/payment.js';
import { Transaction } from '@scure/btc-signer/transaction.js';
import { TEST_NETWORK } from '@scure/btc-signer/utils.js';

/**
 * Real PSBTs for the signing-policy tests, built with @scure/btc-signer: a key that stands in for
 * a DKG group key (its secret known, so tests can sign as FROST would), hot wallets it may pay,
 * and a stranger it may not.
 */

const secret = (fill: number): Uint8Array => new Uint8Array(32).fill(fill);

/** The "group" key: secret 0x0707…07; the internal key is its x-only public key. */
export const KEY_SECRET = secret(7);
export const INTERNAL_KEY = schnorr.getPublicKey(KEY_SECRET);
export const KEY = p2tr(INTERNAL_KEY, undefined, TEST_NETWORK);

/** Allowed: a P2TR hot wallet (secret 0x0101…01, the policy examples' first address) and a P2WPKH one. */
export const HOT = p2tr(schnorr.getPublicKey(secret(1)), undefined, TEST_NETWORK);
export const HOT_WPKH = p2wpkh(secp256k1.getPublicKey(secret(3)), TEST_NETWORK);
/** Not allowed. */
export const STRANGER = p2tr(schnorr.getPublicKey(secret(9)), undefined, TEST_NETWORK);
/** Someone else's input in a jointly funded transaction. */
export const OTHER_SECRET = secret(5);
export const OTHER = p2tr(schnorr.getPublicKey(OTHER_SECRET), undefined, TEST_NETWORK);

export interface InputSpec {
  amount: bigint;
  script?: Uint8Array;
  /** Leave out the witnessUtxo (a PSBT that cannot be sighashed). */
  bare?: boolean;
  sighashType?: number;
}
export type OutputSpec = { script: Uint8Array; amount: bigint };

/** A PSBT v0 spending `inputs` (the key's unless a script is given) to `outputs`. */
export function buildPsbt(inputs: InputSpec[], outputs: OutputSpec[], version: 0 | 2 = 0): Uint8Array {
  const tx = new Transaction({ allowUnknownOutputs: true });
  inputs.forEach((input, i) => {
    const txid = sha256(new Uint8Array([i, 0x42]));
    if (input.bare === true) tx.addInput({ txid, index: i });
    else {
      tx.addInput({
        txid,
        index: i,
        witnessUtxo: { script: input.script ?? KEY.script, amount: input.amount },
        // As a wallet writes it for the key's own inputs (btc-signer's signer needs it; ours does not).
        ...(input.script === undefined ? { tapInternalKey: INTERNAL_KEY } : {}),
        ...(input.sighashType === undefined ? {} : { sighashType: input.sighashType }),
      });
    }
  });
  for (const output of outputs) tx.addOutput(output);
  return tx.toPSBT(version);
}

/** The BIP341 tweaked secret of a key-path P2TR output (empty merkle root): what FROST's taproot signature verifies under. */
export function tweakedSecret(secretKey: Uint8Array): Uint8Array {
  const n = secp256k1.Point.Fn.ORDER;
  const d = bytesToNumberBE(secretKey);
  const point = secp256k1.Point.BASE.multiply(d).toAffine();
  // BIP340 keys are x-only with an even y: the secret of the odd-y point is negated.
  const even = point.y % 2n === 0n ? d : n - d;
  const tweak = bytesToNumberBE(schnorr.utils.taggedHash('TapTweak', numberToBytesBE(point.x, 32)));
  return numberToBytesBE((even + tweak) % n, 32);
}
