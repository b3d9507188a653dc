import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { decodeBase64, TkmsError } from '../core/index.ts';
import { parseMaterialKeyId } from '../core/keys/key-model.ts';
import { MAX_PSBT_BYTES } from '../core/signing/psbt.ts';
import { MAX_RAW_MESSAGE_BYTES } from '../core/signing/sign-request.ts';
import { errnoCode } from '../storage/durable-fs.ts';
import { UsageError, type CommandRun } from '../scripts/cli/command.ts';
import type { ClientCommandOptions } from './cli.ts';
import { client, exists, readUpTo, refuseExisting, warnEnvTypos, writePlaintextFile } from './cli-commands.ts';
import type { SignatureResult } from './signing.ts';

/** What `tkms sign` (declared in client/cli.ts) does. */

export type SignCommandOptions = ClientCommandOptions & { key: string; messageFile?: string; message?: string; psbt?: string; out?: string; force?: true };

/** The magic a binary PSBT starts with (BIP174): "psbt" 0xff. */
const PSBT_MAGIC = Uint8Array.of(0x70, 0x73, 0x62, 0x74, 0xff);

/** Base64 characters of the largest PSBT a node takes. */
const MAX_PSBT_BASE64 = Math.ceil(MAX_PSBT_BYTES / 3) * 4;

/** The largest PSBT file read: that much base64 wrapped at 64 columns with CRLF, and a final line break. */
export const MAX_PSBT_FILE_BYTES = MAX_PSBT_BASE64 + 2 * Math.ceil(MAX_PSBT_BASE64 / 64) + 2;

const rawTooLarge = (what: string): TkmsError => new TkmsError('bad_request', `${what} is larger than ${MAX_RAW_MESSAGE_BYTES} bytes, the most a key signs`);
const psbtFileTooLarge = (what: string): TkmsError =>
  new TkmsError('bad_psbt', `${what} is larger than ${MAX_PSBT_FILE_BYTES} bytes: a PSBT is at most ${MAX_PSBT_BYTES} bytes (${MAX_PSBT_BASE64} characters of base64)`);

/**
 * The file's bytes, refused with `tooLarge` when there are more than `max`: a regular file by its
 * size before it is opened; a pipe, a device or a file that grows while read after `max` + 1 bytes.
 */
export async function readFileUpTo(file: string, max: number, tooLarge: () => TkmsError): Promise<Uint8Array> {
  const cannot = (e: unknown): TkmsError => new TkmsError('bad_request', `cannot read ${file}: ${errnoCode(e) ?? 'error'}`);
  const info = await stat(file).catch((e: unknown) => {
    throw cannot(e);
  });
  if (info.isDirectory()) throw new TkmsError('bad_request', `cannot read ${file}: EISDIR`);
  if (info.isFile() && info.size > max) throw tooLarge();
  return readUpTo(createReadStream(file, { highWaterMark: 64 * 1024 }), max, tooLarge).catch((e: unknown) => {
    throw e instanceof TkmsError ? e : cannot(e);
  });
}

const startsWithMagic = (bytes: Uint8Array): boolean => bytes.length >= PSBT_MAGIC.length && PSBT_MAGIC.every((b, i) => bytes[i] === b);

/**
 * A PSBT file's content: binary PSBT bytes as they are, or base64 text (line breaks and spaces
 * allowed, as wallets and `base64` write it), decoded. The PSBT itself is parsed by the client.
 */
export function psbtFromFile(content: Uint8Array, what = 'the PSBT file'): Uint8Array {
  if (startsWithMagic(content)) {
    if (content.length > MAX_PSBT_BYTES) throw new TkmsError('bad_psbt', `${what} holds a PSBT of ${content.length} bytes; at most ${MAX_PSBT_BYTES} are signed`);
    return content;
  }
  if (content.some((b) => b > 0x7e)) throw new TkmsError('bad_psbt', `${what} is neither a binary PSBT (it starts with "psbt" 0xff) nor base64 text`);
  const text = Buffer.from(content).toString('latin1').replace(/[ \t\r\n]/g, '');
  if (text.length === 0) throw new TkmsError('bad_psbt', `${what} is empty`);
  if (text.length > MAX_PSBT_BASE64) throw new TkmsError('bad_psbt', `${what} holds ${text.length} characters of base64; a PSBT of at most ${MAX_PSBT_BYTES} bytes is at most ${MAX_PSBT_BASE64}`);
  let bytes: Uint8Array;
  try {
    bytes = decodeBase64(text, { name: what });
  } catch {
    throw new TkmsError('bad_psbt', `${what} is neither a binary PSBT (it starts with "psbt" 0xff) nor base64 text`);
  }
  if (!startsWithMagic(bytes)) throw new TkmsError('bad_psbt', `${what} is base64 but not of a PSBT (a PSBT starts with "psbt" 0xff)`);
  return bytes;
}

function rawMessage(bytes: Uint8Array, what: string): Uint8Array {
  if (bytes.length === 0) throw new TkmsError('bad_request', `${what} is empty: a message to sign is 1 to ${MAX_RAW_MESSAGE_BYTES} bytes`);
  if (bytes.length > MAX_RAW_MESSAGE_BYTES) throw rawTooLarge(what);
  return bytes;
}

/** The message the options name, read and bounded before anything else is done. */
export async function signMessageOf(opts: Pick<SignCommandOptions, 'messageFile' | 'message' | 'psbt'>): Promise<{ data: Uint8Array } | { psbt: Uint8Array }> {
  const given = [opts.messageFile, opts.message, opts.psbt].filter((o) => o !== undefined).length;
  if (given !== 1) throw new UsageError('give exactly one of --message-file, --message or --psbt');
  if (opts.message !== undefined) return { data: rawMessage(new TextEncoder().encode(opts.message), '--message') };
  if (opts.messageFile !== undefined) {
    const file = opts.messageFile;
    return { data: rawMessage(await readFileUpTo(file, MAX_RAW_MESSAGE_BYTES, () => rawTooLarge(file)), file) };
  }
  const file = opts.psbt!;
  return { psbt: psbtFromFile(await readFileUpTo(file, MAX_PSBT_FILE_BYTES, () => psbtFileTooLarge(file)), file) };
}

const strip0x = (hex: string): string => hex.replace(/^0x/, '');

/** What --out receives: the signature of a raw message, the signed transaction of a PSBT (hex, no 0x, one line). */
export function outText(result: SignatureResult): string {
  return `${strip0x(result.transaction ?? result.signatures[0]!)}\n`;
}

/** The human view of a signature. */
export function signatureText(result: SignatureResult, out?: string): string {
  const { keyId, version } = parseMaterialKeyId(result.keyId);
  const signatures =
    result.inputs === undefined
      ? result.signatures.map((s) => `signature    ${s}`)
      : result.signatures.map((s, j) => `signature    input ${result.inputs![j]}: ${s}`);
  return [
    `key          ${keyId}, version ${version}`,
    `algorithm    ${result.algorithm}`,
    `public key   ${result.publicKey}`,
    ...signatures,
    `signers      members ${result.signers.join(', ')}`,
    ...(result.blamed.length === 0 ? [] : [`blamed       members ${result.blamed.join(', ')} (sent a bad share and were replaced)`]),
    ...(result.psbt === undefined ? [] : [`psbt         ${result.psbt}`]),
    ...(result.transaction === undefined ? [] : [`transaction  ${result.transaction}`]),
    ...(out === undefined ? [] : [`written      ${out} (${result.transaction === undefined ? 'the signature' : 'the signed transaction'}, hex)`]),
  ].join('\n');
}

export const sign: CommandRun<SignCommandOptions> = async (opts, command) => {
  warnEnvTypos(command);
  // The message is read and bounded, and --out checked, before the account's password is asked.
  const message = await signMessageOf(opts);
  if (opts.out !== undefined && opts.force !== true && (await exists(opts.out))) throw refuseExisting(opts.out);
  const result = await (await client(opts, command)).sign(opts.key, message);
  if (opts.out !== undefined) await writePlaintextFile(opts.out, new TextEncoder().encode(outText(result)), opts.force === true);
  process.stdout.write(opts.json ? `${JSON.stringify(result)}\n` : `${signatureText(result, opts.out)}\n`);
  return 0;
};
