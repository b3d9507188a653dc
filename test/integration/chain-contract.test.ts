import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createPublicClient, createTestClient, createWalletClient, http, parseEther, parseEventLogs, toHex, type Account, type Hex } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { TKMS_ACL_ABI } from '../../chain/acl-artifact.ts';
import { ANVIL_DEV_PRIVATE_KEY, startAnvil, type AnvilChain } from '../../chain/anvil.ts';
import { deployAcl } from '../../chain/deploy.ts';
import { deriveHandleFromDigest, encodePoint, keyIdBytes, publicKeyFromSecret, randomScalar } from '../../core/index.ts';

/**
 * contracts/TkmsAcl.sol on a real anvil (Paris): who may write under an owner, when a grant counts
 * (expiry by block timestamp, revoke, revokeAll's epoch), handle registration against the commitment
 * the nodes compute (core/handle.ts), Nox's isViewer, and the events every change emits.
 */
type Fn = 'grant' | 'revoke' | 'grantFor' | 'revokeFor' | 'setOperator' | 'revokeAll' | 'registerHandle';

describe('TkmsAcl contract (anvil, paris)', function () {
  this.timeout(60_000);
  let anvil: AnvilChain;
  let contract: Hex;
  let publicClient: ReturnType<typeof createPublicClient>;
  let testClient: ReturnType<typeof createTestClient>;
  let wallet: ReturnType<typeof createWalletClient>;
  const owner = privateKeyToAccount(ANVIL_DEV_PRIVATE_KEY);
  let operator: Account;
  let stranger: Account;

  before(async () => {
    anvil = await startAnvil({ hardfork: 'paris' });
    contract = (await deployAcl(anvil.url, ANVIL_DEV_PRIVATE_KEY)).address;
    const transport = http(anvil.url, { retryCount: 0 });
    publicClient = createPublicClient({ transport });
    testClient = createTestClient({ mode: 'anvil', transport });
    wallet = createWalletClient({ transport });
    operator = privateKeyToAccount(generatePrivateKey());
    stranger = privateKeyToAccount(generatePrivateKey());
    for (const a of [operator, stranger]) await testClient.setBalance({ address: a.address, value: parseEther('10') });
  });

  after(async () => {
    await anvil?.stop();
  });

  const randomHandle = (): Hex => toHex(randomBytes(32));
  const randomAddress = (): Hex => privateKeyToAccount(generatePrivateKey()).address;

  async function send(account: Account, functionName: Fn, args: readonly unknown[]) {
    const hash = await wallet.writeContract({ address: contract, abi: TKMS_ACL_ABI, functionName, args, account, chain: null } as never);
    const receipt = await publicClient.waitForTransactionReceipt({ hash, pollingInterval: 20 });
    assert.equal(receipt.status, 'success');
    return { block: receipt.blockNumber, events: parseEventLogs({ abi: TKMS_ACL_ABI, logs: receipt.logs }) };
  }

  /** The custom error a call reverts with (simulated at the latest block, as a transaction would run). */
  async function revertOf(account: Account, functionName: Fn, args: readonly unknown[]): Promise<string> {
    try {
      await publicClient.simulateContract({ address: contract, abi: TKMS_ACL_ABI, functionName, args, account } as never);
    } catch (error) {
      for (let e: unknown = error; e instanceof Error; e = (e as { cause?: unknown }).cause) {
        const name = (e as { data?: { errorName?: string } }).data?.errorName;
        if (e.name === 'ContractFunctionRevertedError' && name !== undefined) return name;
      }
      throw error;
    }
    assert.fail(`${functionName} did not revert`);
  }

  const read = <T>(functionName: 'isGranted' | 'grantOf' | 'isViewer' | 'ownerOf' | 'epochOf' | 'isOperator' | 'VERSION', args: readonly unknown[] = []): Promise<T> =>
    publicClient.readContract({ address: contract, abi: TKMS_ACL_ABI, functionName, args } as never) as Promise<T>;

  async function chainTime(): Promise<number> {
    return Number((await publicClient.getBlock({ blockTag: 'latest' })).timestamp);
  }

  it('VERSION() is 1', async () => {
    assert.equal(await read<bigint>('VERSION'), 1n);
  });

  it('grant lets the grantee in until notAfter (block timestamp), revoke ends it, and both emit events', async () => {
    const handle = randomHandle();
    const grantee = randomAddress();
    const notAfter = (await chainTime()) + 100;
    const granted = await send(owner, 'grant', [handle, grantee, BigInt(notAfter)]);
    assert.equal(granted.events.length, 1);
    assert.equal(granted.events[0]!.eventName, 'Granted');
    assert.deepEqual(granted.events[0]!.args, { handle, owner: owner.address, grantee, notAfter: BigInt(notAfter), epoch: 0n, by: owner.address });
    assert.equal(await read('isGranted', [handle, owner.address, grantee]), true);
    assert.deepEqual(await read('grantOf', [handle, owner.address, grantee]), [BigInt(notAfter), 0n, true]);
    assert.equal(await read('isGranted', [handle, owner.address, randomAddress()]), false, 'another grantee');

    const revoked = await send(owner, 'revoke', [handle, grantee]);
    assert.equal(revoked.events[0]!.eventName, 'Revoked');
    assert.deepEqual(revoked.events[0]!.args, { handle, owner: owner.address, grantee, by: owner.address });
    assert.equal(await read('isGranted', [handle, owner.address, grantee]), false);
    assert.equal(
      await publicClient.readContract({ address: contract, abi: TKMS_ACL_ABI, functionName: 'isGranted', args: [handle, owner.address, grantee], blockNumber: granted.block }),
      true,
      'still granted at the grant block',
    );

    const expiry = (await chainTime()) + 100;
    await send(owner, 'grant', [handle, grantee, BigInt(expiry)]);
    // A block stamped exactly notAfter: the boundary is inclusive.
    await testClient.setNextBlockTimestamp({ timestamp: BigInt(expiry) });
    await testClient.mine({ blocks: 1 });
    assert.equal(await chainTime(), expiry);
    assert.equal(await read('isGranted', [handle, owner.address, grantee]), true, 'notAfter itself still counts');
    await testClient.increaseTime({ seconds: 1 });
    await testClient.mine({ blocks: 1 });
    assert.ok((await chainTime()) > expiry);
    assert.equal(await read('isGranted', [handle, owner.address, grantee]), false, 'expired by block timestamp');

    assert.equal(await revertOf(owner, 'grant', [handle, grantee, BigInt((await chainTime()) - 1)]), 'AlreadyExpired');
    assert.equal(await revertOf(owner, 'grant', [handle, '0x0000000000000000000000000000000000000000', BigInt((await chainTime()) + 100)]), 'ZeroGrantee');
  });

  it('a grant written by anyone else is under their own address: isGranted with the real owner stays false', async () => {
    const handle = randomHandle();
    const grantee = randomAddress();
    await send(stranger, 'grant', [handle, grantee, BigInt((await chainTime()) + 1000)]);
    assert.equal(await read('isGranted', [handle, owner.address, grantee]), false);
    assert.equal(await read('isGranted', [handle, stranger.address, grantee]), true);
  });

  it('grantFor/revokeFor work only for an operator the owner approved (NotOperator otherwise)', async () => {
    const handle = randomHandle();
    const grantee = randomAddress();
    const notAfter = BigInt((await chainTime()) + 1000);
    assert.equal(await revertOf(operator, 'grantFor', [owner.address, handle, grantee, notAfter]), 'NotOperator');
    assert.equal(await revertOf(operator, 'revokeFor', [owner.address, handle, grantee]), 'NotOperator');

    const approved = await send(owner, 'setOperator', [operator.address, true]);
    assert.deepEqual(approved.events.map((e) => [e.eventName, e.args]), [['OperatorSet', { owner: owner.address, operator: operator.address, approved: true }]]);
    assert.equal(await read('isOperator', [owner.address, operator.address]), true);
    const byOperator = await send(operator, 'grantFor', [owner.address, handle, grantee, notAfter]);
    assert.equal((byOperator.events[0]!.args as { by: Hex }).by, operator.address);
    assert.equal(await read('isGranted', [handle, owner.address, grantee]), true, 'granted under the owner');
    assert.equal(await read('isGranted', [handle, operator.address, grantee]), false, 'not under the operator');
    assert.equal(await revertOf(stranger, 'grantFor', [owner.address, handle, grantee, notAfter]), 'NotOperator', 'approval is per operator');
    await send(operator, 'revokeFor', [owner.address, handle, grantee]);
    assert.equal(await read('isGranted', [handle, owner.address, grantee]), false);

    await send(owner, 'setOperator', [operator.address, false]);
    assert.equal(await read('isOperator', [owner.address, operator.address]), false);
    assert.equal(await revertOf(operator, 'grantFor', [owner.address, handle, grantee, notAfter]), 'NotOperator', 'withdrawn approval');
  });

  it('revokeAll also cuts every operator approval of that owner, until the owner approves again', async () => {
    const handle = randomHandle();
    const grantee = randomAddress();
    const notAfter = BigInt((await chainTime()) + 1000);
    await send(owner, 'setOperator', [operator.address, true]);
    await send(operator, 'grantFor', [owner.address, handle, grantee, notAfter]);
    assert.equal(await read('isGranted', [handle, owner.address, grantee]), true);

    await send(owner, 'revokeAll', []);
    assert.equal(await read('isOperator', [owner.address, operator.address]), false, 'the approval went with the epoch');
    assert.equal(await read('isGranted', [handle, owner.address, grantee]), false);
    assert.equal(await revertOf(operator, 'grantFor', [owner.address, handle, grantee, notAfter]), 'NotOperator', 'operator cannot grant after revokeAll');
    assert.equal(await revertOf(operator, 'revokeFor', [owner.address, handle, grantee]), 'NotOperator', 'nor revoke');

    await send(owner, 'setOperator', [operator.address, true]);
    assert.equal(await read('isOperator', [owner.address, operator.address]), true, 're-approved in the new epoch');
    await send(operator, 'grantFor', [owner.address, handle, grantee, notAfter]);
    assert.equal(await read('isGranted', [handle, owner.address, grantee]), true);
    await send(owner, 'setOperator', [operator.address, false]);
  });

  it('revokeAll bumps the epoch and cancels every grant of that owner; later grants count', async () => {
    const [h1, h2] = [randomHandle(), randomHandle()];
    const [g1, g2] = [randomAddress(), randomAddress()];
    const notAfter = BigInt((await chainTime()) + 1000);
    await send(stranger, 'grant', [h1, g1, notAfter]);
    await send(stranger, 'grant', [h2, g2, notAfter]);
    await send(owner, 'grant', [h1, g1, notAfter]);
    const epoch = await read<bigint>('epochOf', [stranger.address]);
    const all = await send(stranger, 'revokeAll', []);
    assert.deepEqual(all.events.map((e) => [e.eventName, e.args]), [['AllRevoked', { owner: stranger.address, epoch: epoch + 1n }]]);
    assert.equal(await read('epochOf', [stranger.address]), epoch + 1n);
    assert.equal(await read('isGranted', [h1, stranger.address, g1]), false);
    assert.equal(await read('isGranted', [h2, stranger.address, g2]), false);
    assert.deepEqual(await read('grantOf', [h2, stranger.address, g2]), [notAfter, epoch, false]);
    assert.equal(await read('isGranted', [h1, owner.address, g1]), true, "another owner's grants are untouched");
    await send(stranger, 'grant', [h1, g1, notAfter]);
    assert.equal(await read('isGranted', [h1, stranger.address, g1]), true, 'a grant made in the new epoch counts');
  });

  it('registerHandle accepts the commitment core computes with the sender as owner, once, and isViewer follows it', async () => {
    const keyId = 'vault-key.2026';
    const K = encodePoint(publicKeyFromSecret(randomScalar()));
    const nonce = new Uint8Array(randomBytes(12));
    const ciphertextHash = new Uint8Array(randomBytes(32));
    const ownerBytes = Uint8Array.from(Buffer.from(owner.address.slice(2), 'hex'));
    const handle = toHex(deriveHandleFromDigest({ keyId, K, nonce, ciphertextHash, owner: ownerBytes }));
    const args = [handle, toHex(keyIdBytes(keyId)), toHex(K), toHex(nonce), toHex(ciphertextHash)] as const;

    assert.equal(await read('isViewer', [handle, owner.address]), false, 'unregistered: owner unknown');
    assert.equal(await revertOf(stranger, 'registerHandle', args), 'HandleMismatch', 'another sender computes another commitment');
    assert.equal(await revertOf(owner, 'registerHandle', [handle, toHex(keyIdBytes('other-key')), args[2], args[3], args[4]]), 'HandleMismatch');
    const registered = await send(owner, 'registerHandle', args);
    assert.deepEqual(registered.events.map((e) => [e.eventName, e.args]), [['HandleRegistered', { handle, owner: owner.address }]]);
    assert.equal(await read('ownerOf', [handle]), owner.address);
    assert.equal(await revertOf(owner, 'registerHandle', args), 'AlreadyRegistered');

    const grantee = randomAddress();
    assert.equal(await read('isViewer', [handle, owner.address]), true, 'the owner views its handle');
    assert.equal(await read('isViewer', [handle, grantee]), false);
    await send(owner, 'grant', [handle, grantee, BigInt((await chainTime()) + 1000)]);
    assert.equal(await read('isViewer', [handle, grantee]), true);
    await send(stranger, 'grant', [handle, stranger.address, BigInt((await chainTime()) + 1000)]);
    assert.equal(await read('isViewer', [handle, stranger.address]), false, "a stranger's own grant does not make it a viewer");
  });
});
