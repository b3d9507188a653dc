import { createPublicClient, createTestClient, createWalletClient, http, parseEther, type Hex, type PublicClient, type TestClient } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import type { Account } from '../../client/index.ts';
import { encodeHex } from '../../core/index.ts';
import { TKMS_ACL_ABI } from '../../chain/acl-artifact.ts';
import { ANVIL_DEV_PRIVATE_KEY, startAnvil, type AnvilChain } from '../../chain/anvil.ts';
import { deployAcl } from '../../chain/deploy.ts';

/**
 * A local EVM for the on-chain ACL tests: anvil without a block time (a block per transaction,
 * and only the blocks a test mines itself, so block numbers are exact), the TkmsAcl contract
 * deployed, and owner transactions sent straight through viem with the account's own key, as an
 * application would. Blocks, snapshots and time are moved with anvil's test methods.
 */
export interface MinedTx {
  hash: Hex;
  block: number;
  /** performance.now() when the receipt was in hand: where a revocation delay starts. */
  receivedAt: number;
}

/** notAfter for grants meant to outlive the test (the chain's clock may be moved forward). */
export const FAR_FUTURE = 2n ** 40n;

export class ChainFixture {
  private readonly funded = new Set<string>();

  private constructor(
    readonly anvil: AnvilChain,
    readonly contract: Hex,
    readonly deployBlock: number,
    readonly publicClient: PublicClient,
    readonly testClient: TestClient<'anvil'>,
  ) {}

  /** `blockTimeSeconds`: mine on a clock too (the benchmark), not only per transaction and on demand. */
  static async start(options: { blockTimeSeconds?: number } = {}): Promise<ChainFixture> {
    const anvil = await startAnvil(options.blockTimeSeconds === undefined ? {} : { blockTimeSeconds: options.blockTimeSeconds });
    try {
      const deployed = await deployAcl(anvil.url, ANVIL_DEV_PRIVATE_KEY);
      const transport = http(anvil.url, { retryCount: 0, timeout: 10_000 });
      const publicClient = createPublicClient({ transport, pollingInterval: 50 });
      const testClient = createTestClient({ mode: 'anvil', transport });
      return new ChainFixture(anvil, deployed.address, deployed.blockNumber, publicClient, testClient);
    } catch (e) {
      await anvil.stop();
      throw e;
    }
  }

  get url(): string {
    return this.anvil.url;
  }

  get chainId(): number {
    return this.anvil.chainId;
  }

  async stop(): Promise<void> {
    await this.anvil.stop();
  }

  async head(): Promise<number> {
    return Number(await this.publicClient.getBlockNumber({ cacheTime: 0 }));
  }

  /** The head block's timestamp: what the contract compares notAfter with. */
  async timestamp(): Promise<number> {
    return Number((await this.publicClient.getBlock({ blockTag: 'latest' })).timestamp);
  }

  async mine(blocks: number): Promise<number> {
    await this.testClient.mine({ blocks });
    return this.head();
  }

  async snapshot(): Promise<Hex> {
    return this.testClient.snapshot();
  }

  /** Back to the snapshot: balances given since then are gone too. */
  async revert(id: Hex): Promise<void> {
    await this.testClient.revert({ id });
    this.funded.clear();
  }

  /** A block every `seconds` from now on, as a live chain makes them; undefined: back to a block per transaction only. */
  async mineEvery(seconds: number | undefined): Promise<void> {
    await this.testClient.setIntervalMining({ interval: seconds ?? 0 });
    if (seconds === undefined) await this.testClient.setAutomine(true);
  }

  /** Moves the chain's clock; the next mined block carries the new time. */
  async increaseTime(seconds: number): Promise<void> {
    await this.testClient.increaseTime({ seconds });
  }

  /** Sends `functionName` as `owner` (gas money given on first use) and waits for its receipt. */
  private async send(owner: Account, functionName: 'grant' | 'revoke' | 'revokeAll', args: readonly unknown[]): Promise<MinedTx> {
    const account = privateKeyToAccount(encodeHex(owner.secretKey) as Hex);
    if (!this.funded.has(account.address)) {
      await this.testClient.setBalance({ address: account.address, value: parseEther('10') });
      this.funded.add(account.address);
    }
    const wallet = createWalletClient({ account, transport: http(this.anvil.url, { retryCount: 0, timeout: 10_000 }) });
    const hash = await wallet.writeContract({ address: this.contract, abi: TKMS_ACL_ABI, functionName, args: args as never, chain: null });
    const receipt = await this.publicClient.waitForTransactionReceipt({ hash, pollingInterval: 20, timeout: 10_000 });
    const receivedAt = performance.now();
    if (receipt.status !== 'success') throw new Error(`${functionName} reverted (transaction ${hash})`);
    return { hash, block: Number(receipt.blockNumber), receivedAt };
  }

  grant(owner: Account, handle: string, grantee: string, notAfter: bigint = FAR_FUTURE): Promise<MinedTx> {
    return this.send(owner, 'grant', [handle as Hex, grantee as Hex, notAfter]);
  }

  revoke(owner: Account, handle: string, grantee: string): Promise<MinedTx> {
    return this.send(owner, 'revoke', [handle as Hex, grantee as Hex]);
  }

  revokeAll(owner: Account): Promise<MinedTx> {
    return this.send(owner, 'revokeAll', []);
  }

  /** isGranted read straight from the chain at `block`: the truth the nodes are compared with. */
  async isGranted(handle: string, owner: string, grantee: string, block?: number): Promise<boolean> {
    return this.publicClient.readContract({
      address: this.contract,
      abi: TKMS_ACL_ABI,
      functionName: 'isGranted',
      args: [handle as Hex, owner as Hex, grantee as Hex],
      ...(block === undefined ? {} : { blockNumber: BigInt(block) }),
    });
  }
}
