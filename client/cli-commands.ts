import { createReadStream } from 'node:fs';
import { lstat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { envTypos } from '../config/env.ts';
import { curveBackendChoiceFromEnv } from '../core/curve-native.ts';
import { encodeHex, isTkmsError, MAX_PLAINTEXT_BYTES, TkmsError } from '../core/index.ts';
import { loadCommitteeFile, pinnedClientOptions } from '../net/committee.ts';
import { UsageError, warningLine, type CommandRun, type TkmsCommand } from '../scripts/cli/command.ts';
import { accountPassword } from '../scripts/cli/password.ts';
import { generateAccount, type Account } from './account.ts';
import { readAccountFile, writeAccountFile } from './account-file.ts';
import type { ChainCommandOptions, ClientCommandOptions } from './cli.ts';
import type { AclTxResult, AclWriterTarget, HandleCommitment } from '../chain/acl-writer.ts';
import { isJsonRpcUrl } from '../chain/chain-acl.ts';
import { TkmsClient } from './client.ts';
import { errnoCode, publishSyncedFile } from '../storage/durable-fs.ts';

/** What the commands declared in client/cli.ts do. */

/** Like the node and the gateway, say when a TKMS_* variable looks like a misspelling of one this command reads. */
export function warnEnvTypos(command: TkmsCommand): void {
  const known = [...command.options.flatMap((o) => (o.envVar === undefined ? [] : [o.envVar])), 'TKMS_CURVE_BACKEND'];
  for (const line of envTypos(process.env, known)) process.stderr.write(warningLine(command.path, line));
}

async function loadAccount(opts: Pick<ClientCommandOptions, 'account' | 'passwordFile'>, command: TkmsCommand): Promise<Account> {
  return readAccountFile(opts.account, {
    password: () => accountPassword({ passwordFile: opts.passwordFile, confirm: false, file: opts.account }),
    warn: (message) => process.stderr.write(warningLine(command.path, message)),
  });
}

/**
 * Member keys, threshold and committee id from the committee file, so the client checks the
 * key's DKG against them and signs for that committee, not on the gateway's word.
 */
export async function pinnedCommittee(opts: Pick<ClientCommandOptions, 'committee'>): Promise<ReturnType<typeof pinnedClientOptions> | undefined> {
  return opts.committee === undefined ? undefined : pinnedClientOptions(await loadCommitteeFile(opts.committee));
}

export async function client(opts: ClientCommandOptions, command: TkmsCommand, account?: Account): Promise<TkmsClient> {
  const pinned = await pinnedCommittee(opts);
  // Importing the client already chose the curve backend (core/platform/node.ts) and tolerates a
  // bad TKMS_CURVE_BACKEND; a command line tells its user instead.
  curveBackendChoiceFromEnv();
  return new TkmsClient({
    gatewayUrl: opts.gateway,
    account: account ?? (await loadAccount(opts, command)),
    ...(pinned ?? {}),
    ...(opts.insecure === true ? { insecure: true } : {}),
  });
}

/** lstat, so a dangling symlink counts as existing: it is never written through. */
export function exists(file: string): Promise<boolean> {
  return lstat(file).then(
    () => true,
    () => false,
  );
}

export function print(opts: { json?: true }, json: unknown, text: string): void {
  process.stdout.write(opts.json ? `${JSON.stringify(json)}\n` : `${text}\n`);
}

export const accountNew: CommandRun<{ out?: string; passwordFile?: string; json?: true }> = async (opts, command) => {
  warnEnvTypos(command);
  const account = generateAccount();
  if (opts.out === undefined) {
    // Without --out the secret has to be shown once; say so.
    const body = { address: account.address, secretKey: encodeHex(account.secretKey) };
    print(opts, body, `address:    ${body.address}\nsecret key: ${body.secretKey}\n(keep the secret key private; use --out <file> to write it to an encrypted file instead)`);
    return 0;
  }
  // Refused before asking for a password; writeAccountFile's link(2) closes the race.
  if (await exists(opts.out)) throw new TkmsError('conflict', `cannot create ${opts.out}: EEXIST (refusing to overwrite)`);
  const password = await accountPassword({ passwordFile: opts.passwordFile, confirm: true, file: opts.out });
  await writeAccountFile(opts.out, account, password);
  print(opts, { address: account.address, file: opts.out }, `address: ${account.address}\nwritten: ${opts.out} (Ethereum keystore v3, encrypted; mode 0600)`);
  return 0;
};

function tooLarge(what: string): TkmsError {
  return new TkmsError('bad_request', `${what} is larger than ${MAX_PLAINTEXT_BYTES} bytes, the most a gateway accepts`);
}

/** Reads at most `max` + 1 bytes, so a huge input fails at once instead of filling memory. */
export async function readUpTo(stream: Readable, max: number, tooLarge: () => Error): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let total = 0;
  // Leaving the loop by throwing destroys the stream: nothing more is read.
  for await (const chunk of stream as AsyncIterable<Buffer | string>) {
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    total += bytes.length;
    if (total > max) throw tooLarge();
    chunks.push(bytes);
  }
  return new Uint8Array(Buffer.concat(chunks, total));
}

const readPlaintext = (stream: Readable, what: string): Promise<Uint8Array> => readUpTo(stream, MAX_PLAINTEXT_BYTES, () => tooLarge(what));

type PlaintextOptions = { text?: string; in?: string };

function plaintextOf(opts: PlaintextOptions): Promise<Uint8Array> {
  if (opts.text !== undefined) {
    const bytes = new TextEncoder().encode(opts.text);
    return bytes.length > MAX_PLAINTEXT_BYTES ? Promise.reject(tooLarge('--text')) : Promise.resolve(bytes);
  }
  if (opts.in === '-') return readPlaintext(process.stdin, 'standard input');
  return readPlaintext(createReadStream(opts.in!, { highWaterMark: 64 * 1024 }), opts.in!);
}

export const encrypt: CommandRun<ClientCommandOptions & PlaintextOptions & { key: string; local?: true }> = async (opts, command) => {
  if ((opts.text === undefined) === (opts.in === undefined)) throw new UsageError('give exactly one of --text or --in');
  warnEnvTypos(command);
  // Plaintext typed at the terminal comes after the password prompt, which needs the terminal
  // first; any other plaintext is read (and a too-large one refused) before the account is opened.
  const typed = opts.in === '-' && process.stdin.isTTY === true;
  let plaintext = typed ? undefined : await plaintextOf(opts);
  const account = await loadAccount(opts, command).catch((e: unknown) => {
    if (e instanceof UsageError && opts.in === '-' && !typed) {
      throw new UsageError(`standard input carries the plaintext (--in -), so the account password cannot be asked there: ${e.message}`);
    }
    throw e;
  });
  if (typed) process.stderr.write('reading the plaintext from the terminal; end it with Ctrl-D\n');
  plaintext ??= await plaintextOf(opts);
  const c = await client(opts, command, account);
  const info = opts.local ? await c.encryptLocally(plaintext, { keyId: opts.key }) : await c.encrypt(plaintext, { keyId: opts.key });
  print(opts, info, `handle: ${info.handle}\nkey:    ${info.keyId}\nowner:  ${info.owner}`);
  return 0;
};

const CHAIN_FLAGS = [
  ['rpcUrl', '--rpc-url'],
  ['contract', '--contract'],
  ['chainId', '--chain-id'],
  ['devnet', '--devnet'],
  ['owner', '--owner'],
] as const;

/** Where --chain sends, and the devnet's gateway when --devnet names one. */
interface ChainEndpoint {
  rpcUrl: string;
  contract: string;
  chainId?: number;
  gatewayUrl?: string;
}

/**
 * Where --chain sends: flags or their variables first, then the devnet directory, if one is named.
 * Checked before the account file is opened, so a usage error never comes after a password prompt.
 */
async function chainEndpoint(opts: ChainCommandOptions): Promise<ChainEndpoint> {
  // Loaded only for --chain: the commands without it need no Ethereum library.
  const devnet = opts.devnet === undefined ? undefined : await (await import('../deploy/devnet-chain.ts')).readDevnetChain(opts.devnet);
  const rpcUrl = opts.rpcUrl ?? devnet?.rpcUrl;
  const contract = opts.contract ?? devnet?.contract;
  const chainId = opts.chainId ?? devnet?.chainId;
  if (rpcUrl === undefined) throw new UsageError('--chain needs the chain: --rpc-url (or TKMS_ACL_RPC_URL), or --devnet <dir>');
  if (contract === undefined) throw new UsageError('--chain needs the contract: --contract (or TKMS_ACL_CONTRACT), or --devnet <dir>');
  if (!isJsonRpcUrl(rpcUrl)) throw new UsageError('--rpc-url must be an http:// or https:// URL');
  return { rpcUrl, contract, ...(chainId !== undefined ? { chainId } : {}), ...(devnet?.gatewayUrl !== undefined ? { gatewayUrl: devnet.gatewayUrl } : {}) };
}

function chainTarget(endpoint: ChainEndpoint, account: Account): AclWriterTarget {
  return { rpcUrl: endpoint.rpcUrl, contract: endpoint.contract, privateKey: encodeHex(account.secretKey) as `0x${string}`, ...(endpoint.chainId !== undefined ? { chainId: endpoint.chainId } : {}) };
}

/**
 * The gateway to look handles up at: one given on the line or in the environment (`named`), else
 * the devnet's, which may not be running; never the bare default.
 */
function knownGateway(opts: { gateway?: string }, command: TkmsCommand, endpoint: ChainEndpoint): { url: string; named: boolean } | undefined {
  const source = command.getOptionValueSource('gateway');
  if (opts.gateway !== undefined && source !== undefined && source !== 'default') return { url: opts.gateway, named: true };
  return endpoint.gatewayUrl === undefined ? undefined : { url: endpoint.gatewayUrl, named: false };
}

const HANDLE_PATTERN = /^0x[0-9a-fA-F]{64}$/;
const HEX_FIELD = /^0x[0-9a-fA-F]+$/;

/** A handle's owner and commitment, as the gateway stores them (GET /v1/handles/{h}). */
async function fetchHandle(gatewayUrl: string, insecure: boolean, handle: string): Promise<HandleCommitment & { owner: string }> {
  if (!HANDLE_PATTERN.test(handle)) throw new TkmsError('bad_handle', '--handle must be 0x + 64 hex digits');
  const { GatewayHttp } = await import('./gateway-http.ts');
  const { json } = await new GatewayHttp({ baseUrl: gatewayUrl, insecure }).request<Record<string, unknown>>('GET', `/v1/handles/${handle.toLowerCase()}`);
  const { owner, keyId, K, nonce, ciphertextHash } = json;
  if (typeof owner !== 'string' || typeof keyId !== 'string' || ![owner, K, nonce, ciphertextHash].every((v) => typeof v === 'string' && HEX_FIELD.test(v))) {
    throw new TkmsError('unavailable', `gateway ${gatewayUrl} answered a handle record without owner, keyId, K, nonce and ciphertextHash`);
  }
  return { handle, owner, keyId, K: K as string, nonce: nonce as string, ciphertextHash: ciphertextHash as string };
}

const sameAddress = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase();

/** A chain flag typed on the line without --chain would be silently ignored: say so instead. */
function refuseStrayChainFlags(opts: ChainCommandOptions, command: TkmsCommand): void {
  if (opts.chain === true) return;
  const stray = CHAIN_FLAGS.find(([key]) => command.getOptionValueSource(key) === 'cli');
  if (stray !== undefined) throw new UsageError(`${stray[1]} applies only to on-chain grants: add --chain`);
}

function printTx(opts: { json?: true }, target: AclWriterTarget, tx: AclTxResult, done: string, extra: Record<string, unknown> = {}): void {
  print(
    opts,
    { ...extra, txHash: tx.txHash, blockNumber: tx.blockNumber, from: tx.from, contract: target.contract, rpcUrl: target.rpcUrl },
    `${done}\ntransaction ${tx.txHash}\nblock       ${tx.blockNumber}   (contract ${target.contract})`,
  );
}

type GrantOptions = ClientCommandOptions & ChainCommandOptions & { handle: string; to: string; days: number; owner?: string };

async function grantOnTheChain(opts: GrantOptions, command: TkmsCommand): Promise<number> {
  const endpoint = await chainEndpoint(opts);
  const account = await loadAccount(opts, command);
  const target = chainTarget(endpoint, account);
  // Nodes look grants up under the owner in the handle's commitment: a grant under anyone else is never read.
  const owner = opts.owner ?? account.address;
  const gateway = knownGateway(opts, command, endpoint);
  let unchecked: string | undefined = gateway === undefined ? 'no gateway given: --gateway, TKMS_GATEWAY_URL or --devnet' : undefined;
  if (gateway !== undefined) {
    const record = await fetchHandle(gateway.url, opts.insecure === true, opts.handle).catch((e: unknown) => {
      // Only the devnet's gateway may be down (a devnet prepared or half stopped); a named one must answer.
      if (gateway.named || !isTkmsError(e) || (e.code !== 'unavailable' && e.code !== 'timeout')) throw e;
      unchecked = `the devnet's gateway ${gateway.url} did not answer`;
      return undefined;
    });
    if (record !== undefined && !sameAddress(record.owner, owner)) {
      throw new TkmsError(
        'unauthorized',
        `${owner} does not own handle ${opts.handle} (its owner is ${record.owner}): nodes read only the owner's on-chain grants, so this one would never let ${opts.to} decrypt; send it from the owner's account, or as an operator the owner approved with --owner ${record.owner}`,
      );
    }
  }
  const notAfter = Math.floor(Date.now() / 1000) + Math.round(opts.days * 86_400);
  const g = { handle: opts.handle, grantee: opts.to, notAfter };
  const { grantFor, grantOnChain } = await import('../chain/acl-writer.ts');
  const tx = opts.owner === undefined ? await grantOnChain(target, g) : await grantFor(target, { ...g, owner: opts.owner });
  const until = new Date(notAfter * 1000).toISOString();
  printTx(opts, target, tx, `granted ${opts.to} access to ${opts.handle} on chain until ${until}${opts.owner === undefined ? '' : ` (for owner ${opts.owner})`}`, { notAfter });
  if (unchecked !== undefined) process.stderr.write(warningLine(command.path, `not checked that ${owner} owns ${opts.handle} (${unchecked}); nodes count the grant only if it does`));
  return 0;
}

export const grant: CommandRun<GrantOptions> = async (opts, command) => {
  warnEnvTypos(command);
  refuseStrayChainFlags(opts, command);
  if (opts.chain === true) return grantOnTheChain(opts, command);
  const result = await (await client(opts, command)).grant(opts.handle, opts.to, { validForSeconds: Math.round(opts.days * 86_400) });
  print(opts, result, `granted ${opts.to} access to ${opts.handle} for ${opts.days} days`);
  return 0;
};

type RevokeOptions = ClientCommandOptions & ChainCommandOptions & { handle: string; to: string; owner?: string };

async function revokeOnTheChain(opts: RevokeOptions, command: TkmsCommand): Promise<number> {
  const endpoint = await chainEndpoint(opts);
  const target = chainTarget(endpoint, await loadAccount(opts, command));
  const r = { handle: opts.handle, grantee: opts.to };
  const { revokeFor, revokeOnChain } = await import('../chain/acl-writer.ts');
  const tx = opts.owner === undefined ? await revokeOnChain(target, r) : await revokeFor(target, { ...r, owner: opts.owner });
  printTx(opts, target, tx, `revoked ${opts.to}'s on-chain access to ${opts.handle}${opts.owner === undefined ? '' : ` (for owner ${opts.owner})`}`);
  return 0;
}

export const revoke: CommandRun<RevokeOptions> = async (opts, command) => {
  warnEnvTypos(command);
  refuseStrayChainFlags(opts, command);
  if (opts.chain === true) return revokeOnTheChain(opts, command);
  const result = await (await client(opts, command)).revoke(opts.handle, opts.to);
  print(
    opts,
    result,
    `revoked; acknowledged by nodes ${result.acknowledgedBy.join(', ') || 'none'} (${result.effective ? 'effective' : `NOT yet effective: ${result.needed} needed`})`,
  );
  return result.effective ? 0 : 1;
};

export const revokeAll: CommandRun<ChainCommandOptions & { account: string; passwordFile?: string; json?: true }> = async (opts, command) => {
  warnEnvTypos(command);
  if (opts.chain !== true) throw new UsageError('revoke-all acts on the on-chain ACL only: add --chain (signed grants are revoked one by one with "tkms revoke")');
  const endpoint = await chainEndpoint(opts);
  const account = await loadAccount(opts, command);
  const target = chainTarget(endpoint, account);
  const { revokeAllOnChain } = await import('../chain/acl-writer.ts');
  printTx(opts, target, await revokeAllOnChain(target), `revoked every on-chain grant of ${account.address}`);
  return 0;
};

type OperatorOptions = ChainCommandOptions & { account: string; passwordFile?: string; json?: true; add?: string; remove?: string };

export const operator: CommandRun<OperatorOptions> = async (opts, command) => {
  warnEnvTypos(command);
  if (opts.chain !== true) throw new UsageError('operators exist on the on-chain ACL only: add --chain');
  if ((opts.add === undefined) === (opts.remove === undefined)) throw new UsageError('give exactly one of --add <address> or --remove <address>');
  const endpoint = await chainEndpoint(opts);
  const account = await loadAccount(opts, command);
  const target = chainTarget(endpoint, account);
  const approved = opts.add !== undefined;
  const who = (opts.add ?? opts.remove)!;
  const { setOperator } = await import('../chain/acl-writer.ts');
  const tx = await setOperator(target, { operator: who, approved });
  printTx(
    opts,
    target,
    tx,
    approved ? `${who} may now grant and revoke on chain for ${account.address} (tkms grant --chain --owner ${account.address})` : `${who} may no longer grant or revoke on chain for ${account.address}`,
    { operator: who, approved },
  );
  return 0;
};

type RegisterOptions = ClientCommandOptions & ChainCommandOptions & { handle: string };

export const register: CommandRun<RegisterOptions> = async (opts, command) => {
  warnEnvTypos(command);
  if (opts.chain !== true) throw new UsageError('register records a handle\'s owner in the TkmsAcl contract: add --chain');
  if (!HANDLE_PATTERN.test(opts.handle)) throw new UsageError('--handle must be 0x + 64 hex digits');
  const endpoint = await chainEndpoint(opts);
  const account = await loadAccount(opts, command);
  const target = chainTarget(endpoint, account);
  // The contract needs what the handle commits to; the gateway that stores the handle has it.
  const record = await fetchHandle(knownGateway(opts, command, endpoint)?.url ?? opts.gateway, opts.insecure === true, opts.handle);
  if (!sameAddress(record.owner, account.address)) {
    throw new TkmsError('unauthorized', `${account.address} does not own handle ${opts.handle} (its owner is ${record.owner}): only the owner can register it`);
  }
  const { registerHandleOnChain } = await import('../chain/acl-writer.ts');
  const tx = await registerHandleOnChain(target, record);
  printTx(opts, target, tx, `registered ${account.address} as the owner of ${opts.handle} on chain: isViewer now answers for it`, { handle: opts.handle, owner: account.address });
  return 0;
};

export function refuseExisting(file: string): TkmsError {
  return new TkmsError('conflict', `${file} already exists; give --force to replace it`);
}

/**
 * Writes the plaintext as a new 0600 file published whole (durable-fs publishSyncedFile): without
 * --force by link(2), so an existing file is never replaced; with it by rename(2), so the result
 * is mode 0600 even when the file it replaces was world-readable. A symlink at `file` is itself
 * replaced, never written through.
 */
export async function writePlaintextFile(file: string, plaintext: Uint8Array, force: boolean): Promise<void> {
  await publishSyncedFile(file, plaintext, { replace: force, component: `--out ${file}` }).catch((e: unknown) => {
    if (e instanceof TkmsError) throw e;
    throw errnoCode(e) === 'EEXIST' ? refuseExisting(file) : new TkmsError('bad_request', `cannot write ${file}: ${errnoCode(e) ?? 'error'}`);
  });
}

export const decrypt: CommandRun<ClientCommandOptions & { handle: string; out?: string; force?: true }> = async (opts, command) => {
  warnEnvTypos(command);
  // Checked first so no request is made for nothing; publishing by link(2) closes the race.
  if (opts.out !== undefined && opts.force !== true && (await exists(opts.out))) throw refuseExisting(opts.out);
  const result = await (await client(opts, command)).decrypt(opts.handle);
  if (opts.out !== undefined) await writePlaintextFile(opts.out, result.plaintext, opts.force === true);
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
