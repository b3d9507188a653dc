import { open, readFile, stat } from 'node:fs/promises';
import { buffer as readStream } from 'node:stream/consumers';
import { curveBackendChoiceFromEnv } from '../core/curve-native.ts';
import { encodeHex, TkmsError } from '../core/index.ts';
import { loadCommitteeFile, pinnedClientOptions } from '../net/committee.ts';
import { UsageError, warningLine, type CommandRun, type TkmsCommand } from '../scripts/cli/command.ts';
import { accountPassword } from '../scripts/cli/password.ts';
import { generateAccount, type Account } from './account.ts';
import { readAccountFile, writeAccountFile } from './account-file.ts';
import type { ClientCommandOptions } from './cli.ts';
import { TkmsClient } from './client.ts';

/** What the commands declared in client/cli.ts do. */

async function loadAccount(opts: ClientCommandOptions, command: TkmsCommand): Promise<Account> {
  return readAccountFile(opts.account, {
    password: () => accountPassword({ passwordFile: opts.passwordFile, confirm: false, file: opts.account }),
    warn: (message) => process.stderr.write(warningLine(command.path, message)),
  });
}

/**
 * Member keys, threshold and committee id from the committee file, so the client checks the
 * key's DKG against them and signs for that committee, not on the gateway's word.
 */
async function pinnedCommittee(opts: ClientCommandOptions): Promise<ReturnType<typeof pinnedClientOptions> | undefined> {
  return opts.committee === undefined ? undefined : pinnedClientOptions(await loadCommitteeFile(opts.committee));
}

async function client(opts: ClientCommandOptions, command: TkmsCommand): Promise<TkmsClient> {
  const pinned = await pinnedCommittee(opts);
  // Importing the client already chose the curve backend (core/platform/node.ts) and tolerates a
  // bad TKMS_CURVE_BACKEND; a command line tells its user instead.
  curveBackendChoiceFromEnv();
  return new TkmsClient({ gatewayUrl: opts.gateway, account: await loadAccount(opts, command), ...(pinned ?? {}), ...(opts.insecure === true ? { insecure: true } : {}) });
}

function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

function print(opts: { json?: true }, json: unknown, text: string): void {
  process.stdout.write(opts.json ? `${JSON.stringify(json)}\n` : `${text}\n`);
}

export const accountNew: CommandRun<{ out?: string; passwordFile?: string; json?: true }> = async (opts) => {
  const account = generateAccount();
  if (opts.out === undefined) {
    // Without --out the secret has to be shown once; say so.
    const body = { address: account.address, secretKey: encodeHex(account.secretKey) };
    print(opts, body, `address:    ${body.address}\nsecret key: ${body.secretKey}\n(keep the secret key private; use --out <file> to write it to an encrypted file instead)`);
    return 0;
  }
  // Refused before asking for a password; writeAccountFile's exclusive create closes the race.
  if (await exists(opts.out)) throw new TkmsError('conflict', `cannot create ${opts.out}: EEXIST (refusing to overwrite)`);
  const password = await accountPassword({ passwordFile: opts.passwordFile, confirm: true, file: opts.out });
  await writeAccountFile(opts.out, account, password);
  print(opts, { address: account.address, file: opts.out }, `address: ${account.address}\nwritten: ${opts.out} (Ethereum keystore v3, encrypted; mode 0600)`);
  return 0;
};

async function plaintextOf(opts: { text?: string; in?: string }): Promise<Uint8Array> {
  if ((opts.text === undefined) === (opts.in === undefined)) throw new UsageError('give exactly one of --text or --in');
  if (opts.text !== undefined) return new TextEncoder().encode(opts.text);
  if (opts.in === '-') return new Uint8Array(await readStream(process.stdin));
  return new Uint8Array(await readFile(opts.in!));
}

export const encrypt: CommandRun<ClientCommandOptions & { key: string; text?: string; in?: string; local?: true }> = async (opts, command) => {
  const plaintext = await plaintextOf(opts);
  const c = await client(opts, command);
  const info = opts.local ? await c.encryptLocally(plaintext, { keyId: opts.key }) : await c.encrypt(plaintext, { keyId: opts.key });
  print(opts, info, `handle: ${info.handle}\nkey:    ${info.keyId}\nowner:  ${info.owner}`);
  return 0;
};

export const grant: CommandRun<ClientCommandOptions & { handle: string; to: string; days: number }> = async (opts, command) => {
  const result = await (await client(opts, command)).grant(opts.handle, opts.to, { validForSeconds: Math.round(opts.days * 86_400) });
  print(opts, result, `granted ${opts.to} access to ${opts.handle} for ${opts.days} days`);
  return 0;
};

export const revoke: CommandRun<ClientCommandOptions & { handle: string; to: string }> = async (opts, command) => {
  const result = await (await client(opts, command)).revoke(opts.handle, opts.to);
  print(
    opts,
    result,
    `revoked; acknowledged by nodes ${result.acknowledgedBy.join(', ') || 'none'} (${result.effective ? 'effective' : `NOT yet effective: ${result.needed} needed`})`,
  );
  return result.effective ? 0 : 1;
};

function refuseExisting(file: string): TkmsError {
  return new TkmsError('conflict', `${file} already exists; give --force to replace it`);
}

async function writeOut(file: string, plaintext: Uint8Array, force: boolean): Promise<void> {
  const handle = await open(file, force ? 'w' : 'wx', 0o600).catch((e: NodeJS.ErrnoException) => {
    throw e.code === 'EEXIST' ? refuseExisting(file) : new TkmsError('bad_request', `cannot create ${file}: ${e.code ?? 'error'}`);
  });
  try {
    await handle.writeFile(plaintext);
    await handle.sync();
  } finally {
    await handle.close();
  }
}

export const decrypt: CommandRun<ClientCommandOptions & { handle: string; out?: string; force?: true }> = async (opts, command) => {
  // Checked first so no request is made for nothing; the exclusive open below closes the race.
  if (opts.out !== undefined && opts.force !== true && (await exists(opts.out))) throw refuseExisting(opts.out);
  const result = await (await client(opts, command)).decrypt(opts.handle);
  if (opts.out !== undefined) await writeOut(opts.out, result.plaintext, opts.force === true);
  const summary = { usedNodeIds: result.usedNodeIds, rejected: result.rejected, attempts: result.attempts };
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ ...summary, plaintext: opts.out === undefined ? Buffer.from(result.plaintext).toString('base64') : undefined, out: opts.out })}\n`);
  } else if (opts.out !== undefined) {
    process.stdout.write(`decrypted ${result.plaintext.length} bytes to ${opts.out} (nodes ${result.usedNodeIds.join(', ')})\n`);
  } else {
    process.stdout.write(Buffer.from(result.plaintext));
    if (process.stdout.isTTY) process.stdout.write('\n');
  }
  for (const r of result.rejected) process.stderr.write(warningLine(command.path, `node ${r.nodeId} sent an invalid partial (${r.code}: ${r.reason})`));
  return 0;
};
