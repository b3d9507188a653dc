import { createPublicClient, createWalletClient, http, type Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { TkmsError } from '../core/errors.ts';
import { TKMS_ACL_ABI, TKMS_ACL_BYTECODE } from './acl-artifact.ts';

export interface DeployedAcl {
  address: Hex;
  /** The block the deployment was mined in: where event listings start (acl.chain.fromBlock). */
  blockNumber: number;
  chainId: number;
}

/** Deploys contracts/TkmsAcl.sol from the committed bytecode and waits for its receipt. */
export async function deployAcl(rpcUrl: string, deployerKey: Hex): Promise<DeployedAcl> {
  const account = privateKeyToAccount(deployerKey);
  const transport = http(rpcUrl, { retryCount: 0, timeout: 10_000 });
  // viem polls every 4 s by default; a dev chain mines a block a second.
  const publicClient = createPublicClient({ transport, pollingInterval: 200 });
  const chainId = await publicClient.getChainId();
  const wallet = createWalletClient({ account, transport });
  const hash = await wallet.deployContract({ abi: TKMS_ACL_ABI, bytecode: TKMS_ACL_BYTECODE, chain: null });
  const receipt = await publicClient.waitForTransactionReceipt({ hash, timeout: 30_000 });
  if (receipt.status !== 'success' || !receipt.contractAddress) throw new TkmsError('unavailable', `deploying TkmsAcl failed (transaction ${hash})`);
  return { address: receipt.contractAddress, blockNumber: Number(receipt.blockNumber), chainId };
}
