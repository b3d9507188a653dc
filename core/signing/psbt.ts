import { schnorr } from '@noble/curves/secp256k1.js';
import { p2tr } from '@scure/btc-signer/payment.js';
import { SigHash, Transaction, type TxOpts } from '@scure/btc-signer/transaction.js';
import { bytesToHex, equalBytes } from '../bytes.ts';
import { isTkmsError, TkmsError } from '../errors.ts';
import { scriptAddress, type BitcoinNetwork } from './bitcoin-address.ts';

/**
 * PSBT (BIP174 v0) handling for Taproot key-path signing: what a node's signing policy needs to
 * know about a transaction, the BIP341 sighashes FROST signs, and the finalisation the gateway or
 * client does once the signatures are aggregated. Parsing is @scure/btc-signer's; everything it
 * throws becomes a `bad_psbt` here, so a hostile PSBT can only ever be refused.
 */

export const MAX_PSBT_BYTES = 262_144;
/**
 * Inputs and outputs a PSBT may have. A BIP341 sighash commits to every input and output, and the
 * library recomputes those hashes for each input signed, so the cost of a PSBT grows with inputs
 * signed × (inputs + outputs): these bounds keep the worst case to milliseconds, at any caller.
 */
export const MAX_PSBT_INPUTS = 64;
export const MAX_PSBT_OUTPUTS = 64;

/** Unknown output and input scripts parse (an OP_RETURN output is the policy's to refuse, not the parser's). */
const PARSE_OPTIONS: TxOpts = { allowUnknownOutputs: true, allowUnknownInputs: true };

export interface PsbtInput {
  index: number;
  /** The previous output this input spends, from PSBT_IN_WITNESS_UTXO; absent when the PSBT does not carry it. */
  witnessUtxo?: { script: Uint8Array; amount: bigint };
  /** PSBT_IN_SIGHASH_TYPE when set. */
  sighashType?: number;
}

export interface PsbtOutput {
  index: number;
  script: Uint8Array;
  valueSats: bigint;
  /** The address the script pays on the parse's network; absent for a script no address names. */
  address?: string;
}

export interface ParsedPsbt {
  /** The unsigned transaction's id, as block explorers show it (byte-reversed hex). */
  txid: string;
  inputs: PsbtInput[];
  outputs: PsbtOutput[];
  /** Kept for sighash computation; not part of what a caller reads. */
  readonly tx: Transaction;
}

/** Parses a PSBT v0 into its inputs and outputs, addresses as `network` spells them. Throws only `bad_psbt`. */
export function parsePsbt(bytes: Uint8Array, network: BitcoinNetwork): ParsedPsbt {
  const tx = decodePsbt(bytes);
  return guarded('PSBT', () => {
    const inputs: PsbtInput[] = [];
    const outpoints = new Set<string>();
    for (let index = 0; index < tx.inputsLength; index++) {
      const input = tx.getInput(index);
      const outpoint = `${bytesToHex(input.txid!)}:${input.index!}`;
      // Consensus refuses a transaction that spends one output twice; refusing it here keeps the policy from reasoning about one.
      if (outpoints.has(outpoint)) throw new TkmsError('bad_psbt', `PSBT input ${index} spends the same output as an earlier input`);
      outpoints.add(outpoint);
      const entry: PsbtInput = { index };
      if (input.witnessUtxo !== undefined) entry.witnessUtxo = { script: input.witnessUtxo.script, amount: input.witnessUtxo.amount };
      if (input.sighashType !== undefined) entry.sighashType = input.sighashType;
      inputs.push(entry);
    }
    const outputs: PsbtOutput[] = [];
    for (let index = 0; index < tx.outputsLength; index++) {
      const output = tx.getOutput(index);
      if (output.script === undefined || output.amount === undefined) throw new TkmsError('bad_psbt', `PSBT output ${index} has no script or amount`);
      const entry: PsbtOutput = { index, script: output.script, valueSats: output.amount };
      const address = scriptAddress(output.script, network);
      if (address !== undefined) entry.address = address;
      outputs.push(entry);
    }
    if (inputs.length === 0) throw new TkmsError('bad_psbt', 'PSBT has no inputs');
    if (outputs.length === 0) throw new TkmsError('bad_psbt', 'PSBT has no outputs');
    return { txid: tx.id, inputs, outputs, tx };
  });
}

/** The P2TR output script of a Taproot key spent by its key path only: internal key, empty merkle root (BIP86). */
export function taprootKeyScript(internalKey: Uint8Array): Uint8Array {
  if (!(internalKey instanceof Uint8Array) || internalKey.length !== 32) throw new TkmsError('internal', 'a Taproot internal key is 32 bytes (x-only)');
  try {
    return p2tr(internalKey).script;
  } catch {
    throw new TkmsError('internal', 'the Taproot internal key is not a point on secp256k1');
  }
}

/** The indexes of the inputs the key with this internal key signs: those whose witnessUtxo pays its P2TR script. */
export function keyInputIndexes(psbt: ParsedPsbt, internalKey: Uint8Array): number[] {
  const script = taprootKeyScript(internalKey);
  return psbt.inputs.filter((i) => i.witnessUtxo !== undefined && equalBytes(i.witnessUtxo.script, script)).map((i) => i.index);
}

/**
 * The BIP341 key-path sighash (SIGHASH_DEFAULT, no annex) of each input named, in the order named.
 * BIP341 commits to every input's amount and script, so every input must carry its witnessUtxo;
 * an input that asks for another sighash type is refused (the key signs SIGHASH_DEFAULT only).
 */
export function keyPathSighashes(psbt: ParsedPsbt, inputIndexes: readonly number[]): Uint8Array[] {
  const scripts: Uint8Array[] = [];
  const amounts: bigint[] = [];
  for (const input of psbt.inputs) {
    if (input.witnessUtxo === undefined) throw new TkmsError('bad_psbt', `PSBT input ${input.index} has no witnessUtxo; a Taproot sighash commits to every input's amount and script`);
    scripts.push(input.witnessUtxo.script);
    amounts.push(input.witnessUtxo.amount);
  }
  return inputIndexes.map((index) => {
    const input = psbt.inputs[index];
    if (input === undefined) throw new TkmsError('bad_psbt', `PSBT has no input ${index}`);
    if (input.sighashType !== undefined && input.sighashType !== SigHash.DEFAULT) {
      throw new TkmsError('bad_psbt', `PSBT input ${index} asks for sighash type ${input.sighashType}; this key signs with SIGHASH_DEFAULT (0) only`);
    }
    return guarded(`PSBT input ${index}`, () => psbt.tx.preimageWitnessV1(index, scripts, SigHash.DEFAULT, amounts));
  });
}

/**
 * Puts a 64-byte BIP340 key-path signature (PSBT_IN_TAP_KEY_SIG) on each input named, checks each
 * against the input's output key and sighash, and finalises those inputs. Returns the PSBT, and the
 * network transaction when every input is final (others' inputs may still await their owners).
 */
export function finalizeTaprootPsbt(psbt: Uint8Array, signatures: ReadonlyMap<number, Uint8Array> | Readonly<Record<number, Uint8Array>>): { psbt: Uint8Array; tx?: Uint8Array } {
  const entries: [number, Uint8Array][] =
    signatures instanceof Map ? [...signatures.entries()] : Object.entries(signatures).map(([k, v]): [number, Uint8Array] => [Number(k), v as Uint8Array]);
  if (entries.length === 0) throw new TkmsError('bad_request', 'no signatures to put on the PSBT');
  const parsed = parsePsbt(psbt, 'bitcoin');
  const tx = parsed.tx;
  const indexes = entries.map(([i]) => i);
  const sighashes = keyPathSighashes(parsed, indexes);
  entries.forEach(([index, signature], n) => {
    if (!(signature instanceof Uint8Array) || signature.length !== 64) throw new TkmsError('bad_request', `the signature for PSBT input ${index} must be 64 bytes`);
    const script = parsed.inputs[index]!.witnessUtxo!.script;
    // A key-path P2TR script is OP_1 PUSH32 <output key>.
    if (script.length !== 34 || script[0] !== 0x51 || script[1] !== 0x20) throw new TkmsError('bad_psbt', `PSBT input ${index} does not spend a Taproot output`);
    if (!schnorr.verify(signature, sighashes[n]!, script.subarray(2))) {
      throw new TkmsError('bad_request', `the signature for PSBT input ${index} does not verify under its Taproot output key`);
    }
  });
  return guarded('PSBT finalisation', () => {
    for (const [index, signature] of entries) {
      // Adding a key-path signature changes nothing another input's signature commits to.
      tx.updateInput(index, { tapKeySig: signature }, true);
      tx.finalizeIdx(index);
    }
    for (let index = 0; index < tx.inputsLength; index++) {
      const input = tx.getInput(index);
      // Another owner's input still to be signed: the PSBT goes on to them.
      if (input.finalScriptWitness === undefined && input.finalScriptSig === undefined) return { psbt: tx.toPSBT(0) };
    }
    return { psbt: tx.toPSBT(0), tx: tx.extract() };
  });
}

function decodePsbt(bytes: Uint8Array): Transaction {
  if (!(bytes instanceof Uint8Array)) throw new TkmsError('bad_psbt', 'a PSBT is bytes');
  if (bytes.length === 0 || bytes.length > MAX_PSBT_BYTES) throw new TkmsError('bad_psbt', `a PSBT is 1 to ${MAX_PSBT_BYTES} bytes, got ${bytes.length}`);
  const tx = guarded('PSBT', () => Transaction.fromPSBT(bytes, PARSE_OPTIONS));
  if (tx.opts.PSBTVersion !== 0) throw new TkmsError('bad_psbt', `PSBT version ${String(tx.opts.PSBTVersion)} is not taken; send a version 0 PSBT (BIP174)`);
  if (tx.inputsLength > MAX_PSBT_INPUTS || tx.outputsLength > MAX_PSBT_OUTPUTS) {
    throw new TkmsError('bad_psbt', `a PSBT has at most ${MAX_PSBT_INPUTS} inputs and ${MAX_PSBT_OUTPUTS} outputs; this one has ${tx.inputsLength} and ${tx.outputsLength}`);
  }
  return tx;
}

/** Runs `fn`, turning anything but a TkmsError into `bad_psbt` that quotes the library's reason (never PSBT bytes). */
function guarded<T>(what: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (isTkmsError(e)) throw e;
    const reason = e instanceof Error ? e.message.slice(0, 200) : 'malformed';
    throw new TkmsError('bad_psbt', `${what} is malformed: ${reason}`);
  }
}
