import { open, readFile, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { curveBackendChoiceFromEnv, installCurveBackend } from '../core/curve-native.ts';
import { installNodeCryptoPaths } from '../core/node-crypto.ts';
import { encodeHex, isTkmsError, TkmsError } from '../core/index.ts';
import { loadCommitteeFile, pinnedClientOptions } from '../net/committee.ts';
import { accountFromSecretKey, generateAccount, type Account } from './account.ts';
import { TkmsClient } from './client.ts';

/**
 * `tkms account|encrypt|grant|revoke|decrypt`: the client library on the command line.
 * Usage errors exit 2, refusals and failures 1 (the error code is printed).
 */
class UsageError extends Error {}

export const CLIENT_HELP = `Usage:
  tkms account new [--out <file>] [--json]
      create an account (secp256k1 key, Ethereum address); --out writes it with mode 0600
  tkms encrypt --key <keyId> (--text <string> | --in <file>) [--local] [--json]
      encrypt to the network key; prints the handle. --local encrypts here and only
      registers the ciphertext, so the gateway never sees the plaintext (needs --committee)
  tkms grant   --handle <handle> --to <address> [--days <n>] [--json]
  tkms revoke  --handle <handle> --to <address> [--json]
  tkms decrypt --handle <handle> [--out <file>] [--json]

Common options:
  --gateway <url>     gateway URL (env TKMS_GATEWAY_URL, default http://127.0.0.1:8080);
                      https:// for a remote gateway: plain http:// is refused unless the
                      host is loopback or --insecure is given
  --insecure          allow plain http:// to a non-loopback gateway (plaintexts and signed
                      requests then cross the network unencrypted)
  --account <file>    account file from "tkms account new" (env TKMS_ACCOUNT_FILE)
  --committee <file>  the committee file: pins the member keys the key's DKG is checked
                      against and the committee id every signature is made for
                      (env TKMS_COMMITTEE_FILE); required for --local
`;

type Args = Record<string, string | boolean | undefined>;

function parse(argv: string[], options: Record<string, { type: 'string' | 'boolean' }>): Args {
  try {
    return parseArgs({
      args: argv,
      options: {
        ...options,
        gateway: { type: 'string' },
        account: { type: 'string' },
        committee: { type: 'string' },
        insecure: { type: 'boolean' },
        json: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
    }).values as Args;
  } catch (e) {
    throw new UsageError(e instanceof Error ? e.message : 'bad arguments');
  }
}

function required(args: Args, name: string): string {
  const v = args[name];
  if (typeof v !== 'string' || v.length === 0) throw new UsageError(`--${name} is required`);
  return v;
}

async function loadAccount(args: Args): Promise<Account> {
  const file = (args.account as string | undefined) ?? process.env.TKMS_ACCOUNT_FILE;
  if (file === undefined) throw new UsageError('--account <file> is required (or set TKMS_ACCOUNT_FILE)');
  let json: { secretKey?: unknown };
  try {
    json = JSON.parse(await readFile(file, 'utf8')) as { secretKey?: unknown };
  } catch (e) {
    throw new TkmsError('bad_request', `cannot read account file ${file}: ${(e as NodeJS.ErrnoException).code ?? 'not JSON'}`);
  }
  if (typeof json.secretKey !== 'string') throw new TkmsError('bad_request', `account file ${file} has no secretKey`);
  return accountFromSecretKey(json.secretKey);
}

/**
 * Member keys, threshold and committee id from the committee file, so the client checks the
 * key's DKG against them and signs for that committee, not on the gateway's word.
 */
async function pinnedCommittee(args: Args): Promise<ReturnType<typeof pinnedClientOptions> | undefined> {
  const file = (args.committee as string | undefined) ?? process.env.TKMS_COMMITTEE_FILE;
  if (file === undefined) return undefined;
  return pinnedClientOptions(await loadCommitteeFile(file));
}

async function client(args: Args): Promise<TkmsClient> {
  const gatewayUrl = (args.gateway as string | undefined) ?? process.env.TKMS_GATEWAY_URL ?? 'http://127.0.0.1:8080';
  const pinned = await pinnedCommittee(args);
  // Native curve arithmetic for proof checks when the addon loads; noble otherwise (same results).
  installCurveBackend(curveBackendChoiceFromEnv());
  installNodeCryptoPaths();
  return new TkmsClient({ gatewayUrl, account: await loadAccount(args), ...(pinned ?? {}), ...(args.insecure === true ? { insecure: true } : {}) });
}

function print(args: Args, json: unknown, text: string): void {
  process.stdout.write(args.json ? `${JSON.stringify(json)}\n` : `${text}\n`);
}

async function accountNew(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'new') throw new UsageError('the only account command is "tkms account new"');
  const args = parse(rest, { out: { type: 'string' } });
  const account = generateAccount();
  const body = { address: account.address, secretKey: encodeHex(account.secretKey) };
  if (typeof args.out === 'string') {
    const handle = await open(args.out, 'wx', 0o600).catch((e: NodeJS.ErrnoException) => {
      throw new TkmsError(e.code === 'EEXIST' ? 'conflict' : 'internal', `cannot create ${args.out}: ${e.code ?? 'error'}${e.code === 'EEXIST' ? ' (refusing to overwrite)' : ''}`);
    });
    try {
      await handle.writeFile(`${JSON.stringify(body)}\n`);
      await handle.sync();
    } finally {
      await handle.close();
    }
    print(args, { address: account.address, file: args.out }, `address: ${account.address}\nwritten: ${args.out} (mode 0600)`);
  } else {
    // Without --out the secret has to be shown once; say so.
    print(args, body, `address:    ${body.address}\nsecret key: ${body.secretKey}\n(keep the secret key private; use --out <file> to write it to a file instead)`);
  }
  return 0;
}

async function encrypt(argv: string[]): Promise<number> {
  const args = parse(argv, { key: { type: 'string' }, text: { type: 'string' }, in: { type: 'string' }, local: { type: 'boolean' } });
  const keyId = required(args, 'key');
  if ((args.text === undefined) === (args.in === undefined)) throw new UsageError('give exactly one of --text or --in');
  const plaintext = typeof args.text === 'string' ? new TextEncoder().encode(args.text) : new Uint8Array(await readFile(args.in as string));
  const c = await client(args);
  const info = args.local ? await c.encryptLocally(plaintext, { keyId }) : await c.encrypt(plaintext, { keyId });
  print(args, info, `handle: ${info.handle}\nkey:    ${info.keyId}\nowner:  ${info.owner}`);
  return 0;
}

async function grant(argv: string[]): Promise<number> {
  const args = parse(argv, { handle: { type: 'string' }, to: { type: 'string' }, days: { type: 'string' } });
  const days = args.days === undefined ? 30 : Number(args.days);
  if (!Number.isFinite(days) || days <= 0 || days > 36_500) throw new UsageError('--days must be a positive number');
  const result = await (await client(args)).grant(required(args, 'handle'), required(args, 'to'), { validForSeconds: Math.round(days * 86_400) });
  print(args, result, `granted ${required(args, 'to')} access to ${required(args, 'handle')} for ${days} days`);
  return 0;
}

async function revoke(argv: string[]): Promise<number> {
  const args = parse(argv, { handle: { type: 'string' }, to: { type: 'string' } });
  const result = await (await client(args)).revoke(required(args, 'handle'), required(args, 'to'));
  print(
    args,
    result,
    `revoked; acknowledged by nodes ${result.acknowledgedBy.join(', ') || 'none'} (${result.effective ? 'effective' : `NOT yet effective: ${result.needed} needed`})`,
  );
  return result.effective ? 0 : 1;
}

async function decrypt(argv: string[]): Promise<number> {
  const args = parse(argv, { handle: { type: 'string' }, out: { type: 'string' } });
  const result = await (await client(args)).decrypt(required(args, 'handle'));
  if (typeof args.out === 'string') await writeFile(args.out, result.plaintext, { mode: 0o600 });
  const summary = { usedNodeIds: result.usedNodeIds, rejected: result.rejected, attempts: result.attempts };
  if (args.json) {
    process.stdout.write(`${JSON.stringify({ ...summary, plaintext: typeof args.out === 'string' ? undefined : Buffer.from(result.plaintext).toString('base64'), out: args.out })}\n`);
  } else if (typeof args.out === 'string') {
    process.stdout.write(`decrypted ${result.plaintext.length} bytes to ${args.out} (nodes ${result.usedNodeIds.join(', ')})\n`);
  } else {
    process.stdout.write(Buffer.from(result.plaintext));
    if (process.stdout.isTTY) process.stdout.write('\n');
  }
  for (const r of result.rejected) process.stderr.write(`warning: node ${r.nodeId} sent an invalid partial (${r.code}: ${r.reason})\n`);
  return 0;
}

const COMMANDS: Record<string, (argv: string[]) => Promise<number>> = { account: accountNew, encrypt, grant, revoke, decrypt };

export async function runClientCommand(name: string, argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(CLIENT_HELP);
    return 0;
  }
  try {
    return await COMMANDS[name]!(argv);
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`tkms ${name}: ${e.message} (see --help)\n`);
      return 2;
    }
    const code = isTkmsError(e) ? ` [${e.code}]` : '';
    process.stderr.write(`tkms ${name}: error${code}: ${e instanceof Error ? e.message : 'unexpected error'}\n`);
    return 1;
  }
}
