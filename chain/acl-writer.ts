import {
  BaseError,
  ContractFunctionRevertedError,
  createPublicClient,
  createWalletClient,
  getAddress,
  http,
  InsufficientFundsError,
  isAddress,
  toHex,
  type Hex,
  type PublicClient,
} from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { TkmsError } from '../core/errors.ts';
import { keyIdBytes } from '../core/identifiers.ts';
import { TKMS_ACL_ABI } from './acl-artifact.ts';

/**
 * The owner's side of the on-chain ACL: transactions to TkmsAcl, each simulated first (so a
 * revert comes back decoded, before any gas is spent) and then awaited until its receipt.
 * The private key is the caller's; it stays inside viem's local account and is never printed.
 */

export interface AclWriterTarget {
  rpcUrl: string;
  contract: string;
  /** The sender's secp256k1 secret key, 0x + 64 hex. */
  privateKey: Hex;
  /** When given, a node answering with another chain id is refused before anything is signed. */
  chainId?: number;
  /** Bound on the receipt wait; default 60 s. */
  timeoutMs?: number;
}

/** Where the transaction landed. */
export interface AclTxResult {
  txHash: Hex;
  blockNumber: number;
  from: Hex;
}

type WriteFunction = 'grant' | 'revoke' | 'grantFor' | 'revokeFor' | 'setOperator' | 'revokeAll' | 'registerHandle';

/** Reverts the sender can fix by calling differently; anything else is a refusal. */
const INPUT_REVERTS = new Set(['ZeroGrantee', 'AlreadyExpired']);

function address(value: string, what: string): Hex {
  if (!isAddress(value, { strict: false })) throw new TkmsError('bad_address', `${what} must be a 0x-prefixed 20-byte hex address`);
  return getAddress(value);
}

function handle(value: string): Hex {
  if (!/^0x[0-9a-fA-F]{64}$/.test(value)) throw new TkmsError('bad_handle', 'the handle must be 0x + 64 hex digits');
  return value.toLowerCase() as Hex;
}

function hexBytes(value: string, length: number, what: string): Hex {
  if (!new RegExp(`^0x[0-9a-fA-F]{${2 * length}}$`).test(value)) throw new TkmsError('bad_request', `${what} must be 0x + ${2 * length} hex digits`);
  return value.toLowerCase() as Hex;
}

function uint64(value: number | bigint, what: string): bigint {
  const v = BigInt(value);
  if (v < 0n || v >= 1n << 64n) throw new TkmsError('bad_request', `${what} must fit in uint64`);
  return v;
}

/** viem's error chain, turned into one of our codes with a message a person can act on. */
function writeError(e: unknown, fn: WriteFunction, from: Hex, target: AclWriterTarget): TkmsError {
  if (e instanceof TkmsError) return e;
  if (!(e instanceof BaseError)) return new TkmsError('unavailable', `TkmsAcl.${fn}: ${e instanceof Error ? e.message : String(e)}`, undefined, { cause: e });
  const reverted = e.walk((x) => x instanceof ContractFunctionRevertedError) as ContractFunctionRevertedError | null;
  if (reverted !== null) {
    const name = reverted.data?.errorName ?? reverted.reason ?? 'unknown reason';
    const args = reverted.data?.args?.map((a) => String(a)).join(', ');
    // HandleMismatch: the commitment recomputed with the sender as owner is another handle, so the sender is not its owner.
    const code = name === 'NotOperator' || name === 'HandleMismatch' ? 'unauthorized' : INPUT_REVERTS.has(name) ? 'bad_request' : 'conflict';
    return new TkmsError(code, `TkmsAcl.${fn} reverted: ${name}${args === undefined ? '' : `(${args})`}`, { revert: name });
  }
  if (e.walk((x) => x instanceof InsufficientFundsError) !== null) {
    return new TkmsError('bad_request', `${from} has not enough ETH for the gas of TkmsAcl.${fn} (on a devnet: tkms devnet fund --address ${from})`, { reason: 'insufficient_funds' });
  }
  return new TkmsError('unavailable', `TkmsAcl.${fn} via ${new URL(target.rpcUrl).host}: ${e.shortMessage}`, { reason: 'rpc' });
}

async function checkTarget(client: PublicClient, target: AclWriterTarget, contract: Hex): Promise<void> {
  const chainId = await client.getChainId();
  if (target.chainId !== undefined && chainId !== target.chainId) {
    throw new TkmsError('chain_mismatch', `the RPC serves chain ${chainId}, not chain ${target.chainId}`, { chainId, expected: target.chainId });
  }
  const code = await client.getCode({ address: contract });
  if (code === undefined || code === '0x') throw new TkmsError('chain_mismatch', `no contract at ${contract} on chain ${chainId}`, { chainId });
}

async function send(target: AclWriterTarget, fn: WriteFunction, args: readonly unknown[]): Promise<AclTxResult> {
  const account = privateKeyToAccount(target.privateKey);
  const contract = address(target.contract, 'the contract');
  // viem polls every 4 s by default: far slower than a dev chain's blocks.
  const transport = http(target.rpcUrl, { retryCount: 0, timeout: 10_000 });
  const client = createPublicClient({ transport, pollingInterval: 200 });
  try {
    await checkTarget(client, target, contract);
    const { request } = await client.simulateContract({ address: contract, abi: TKMS_ACL_ABI, functionName: fn, args, account } as never);
    const wallet = createWalletClient({ account, transport });
    const txHash = await wallet.writeContract({ ...(request as object), chain: null } as never);
    const receipt = await client.waitForTransactionReceipt({ hash: txHash, timeout: target.timeoutMs ?? 60_000, pollingInterval: 200 });
    // Simulated at one block, mined in a later one: the state may have moved in between.
    if (receipt.status !== 'success') throw new TkmsError('conflict', `TkmsAcl.${fn} reverted when mined (transaction ${txHash}, block ${receipt.blockNumber})`, { txHash });
    return { txHash, blockNumber: Number(receipt.blockNumber), from: account.address };
  } catch (e) {
    throw writeError(e, fn, account.address, target);
  }
}

/** The owner grants `grantee` decryption of `handle` until `notAfter` (unix seconds). */
export function grantOnChain(target: AclWriterTarget, g: { handle: string; grantee: string; notAfter: number | bigint }): Promise<AclTxResult> {
  return send(target, 'grant', [handle(g.handle), address(g.grantee, 'the grantee'), uint64(g.notAfter, 'notAfter')]);
}

export function revokeOnChain(target: AclWriterTarget, r: { handle: string; grantee: string }): Promise<AclTxResult> {
  return send(target, 'revoke', [handle(r.handle), address(r.grantee, 'the grantee')]);
}

/** Ends every grant the sender made, at once, by moving to a new epoch. */
export function revokeAllOnChain(target: AclWriterTarget): Promise<AclTxResult> {
  return send(target, 'revokeAll', []);
}

/** The sender (an owner) approves or withdraws an operator that may grant and revoke under its name. */
export function setOperator(target: AclWriterTarget, o: { operator: string; approved: boolean }): Promise<AclTxResult> {
  return send(target, 'setOperator', [address(o.operator, 'the operator'), o.approved]);
}

/** An operator the owner approved grants under the owner's name. */
export function grantFor(target: AclWriterTarget, g: { owner: string; handle: string; grantee: string; notAfter: number | bigint }): Promise<AclTxResult> {
  return send(target, 'grantFor', [address(g.owner, 'the owner'), handle(g.handle), address(g.grantee, 'the grantee'), uint64(g.notAfter, 'notAfter')]);
}

export function revokeFor(target: AclWriterTarget, r: { owner: string; handle: string; grantee: string }): Promise<AclTxResult> {
  return send(target, 'revokeFor', [address(r.owner, 'the owner'), handle(r.handle), address(r.grantee, 'the grantee')]);
}

/** What a handle commits to besides its owner (the gateway's GET /v1/handles/{h} lists these). */
export interface HandleCommitment {
  handle: string;
  keyId: string;
  /** The compressed ephemeral point, 0x + 66 hex. */
  K: string;
  /** 0x + 24 hex. */
  nonce: string;
  /** SHA-256 of the ciphertext, 0x + 64 hex. */
  ciphertextHash: string;
}

/**
 * The sender registers itself as the owner of `handle`: the contract recomputes the commitment
 * with msg.sender as owner (so only the real owner can), after which isViewer answers for it.
 */
export function registerHandleOnChain(target: AclWriterTarget, h: HandleCommitment): Promise<AclTxResult> {
  return send(target, 'registerHandle', [handle(h.handle), toHex(keyIdBytes(h.keyId)), hexBytes(h.K, 33, 'K'), hexBytes(h.nonce, 12, 'the nonce'), hexBytes(h.ciphertextHash, 32, 'the ciphertext hash')]);
}
