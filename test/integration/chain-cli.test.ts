import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createPublicClient, getAddress, http, type Hex } from 'viem';
import { setOperator } from '../../chain/acl-writer.ts';
import { TKMS_ACL_ABI } from '../../chain/acl-artifact.ts';
import { ANVIL_DEV_PRIVATE_KEY, startAnvil, type AnvilChain } from '../../chain/anvil.ts';
import { deployAcl } from '../../chain/deploy.ts';
import { generateAccount, type Account } from '../../client/account.ts';
import { writeAccountFile } from '../../client/account-file.ts';
import { encodeHex } from '../../core/index.ts';
import { fundDevnetAccount } from '../../deploy/devnet-chain.ts';
import { runTkmsCli } from '../../scripts/cli/program.ts';
import { captureCli } from '../deploy/cli-capture.ts';
import { makeTempDir, removeDir } from '../support/processes.ts';

/**
 * `tkms grant --chain`, `revoke --chain` and `revoke-all --chain` through the real command tree
 * against a real Anvil with TkmsAcl deployed; what they did is read back from the contract.
 */

const FAST_SCRYPT = { n: 1024, r: 8, p: 1 };
const PASSWORD = 'chain-cli-test-password';

describe('cli: on-chain grants (real anvil)', function () {
  this.timeout(120_000);

  let anvil: AnvilChain;
  let contract: Hex;
  let dir: string;
  const accounts: Record<'alice' | 'bob' | 'carol' | 'dave', { account: Account; file: string }> = {} as never;
  const handle = encodeHex(randomBytes(32));

  const tkms = (...argv: string[]) => captureCli(() => runTkmsCli(argv));
  const chainArgs = () => ['--chain', '--rpc-url', anvil.url, '--contract', contract, '--password-file', join(dir, 'password')];
  const reader = () => createPublicClient({ transport: http(anvil.url) });
  const isGranted = (owner: Account, grantee: Account) =>
    reader().readContract({ address: contract, abi: TKMS_ACL_ABI, functionName: 'isGranted', args: [handle as Hex, getAddress(owner.address), getAddress(grantee.address)] });

  before(async () => {
    dir = await makeTempDir('tkms-chain-cli-');
    anvil = await startAnvil();
    contract = (await deployAcl(anvil.url, ANVIL_DEV_PRIVATE_KEY)).address;
    await writeFile(join(dir, 'password'), `${PASSWORD}\n`, { mode: 0o600 });
    for (const name of ['alice', 'bob', 'carol', 'dave'] as const) {
      const account = generateAccount();
      const file = join(dir, `${name}.json`);
      await writeAccountFile(file, account, PASSWORD, FAST_SCRYPT);
      accounts[name] = { account, file };
    }
    // dave keeps an empty balance: the command must say he has no gas money.
    for (const name of ['alice', 'bob', 'carol'] as const) await fundDevnetAccount(anvil.url, accounts[name].account.address, '10');
  });

  after(async () => {
    await anvil?.stop();
    await removeDir(dir);
  });

  it('grant --chain sends the owner\'s transaction, prints its hash and block, and isGranted turns true', async () => {
    const { alice, carol } = accounts;
    assert.equal(await isGranted(alice.account, carol.account), false);
    const r = await tkms('grant', ...chainArgs(), '--account', alice.file, '--handle', handle, '--to', carol.account.address, '--days', '1', '--json');
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { txHash: string; blockNumber: number; from: string; notAfter: number };
    assert.match(out.txHash, /^0x[0-9a-f]{64}$/);
    assert.equal(out.from.toLowerCase(), alice.account.address);
    const receipt = await reader().getTransactionReceipt({ hash: out.txHash as Hex });
    assert.equal(Number(receipt.blockNumber), out.blockNumber);
    assert.ok(Math.abs(out.notAfter - (Date.now() / 1000 + 86_400)) < 60);
    assert.equal(await isGranted(alice.account, carol.account), true);
  });

  it('revoke --chain ends it (text output names the transaction and the block)', async () => {
    const { alice, carol } = accounts;
    const r = await tkms('revoke', ...chainArgs(), '--account', alice.file, '--handle', handle, '--to', carol.account.address);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^transaction 0x[0-9a-f]{64}$/m);
    assert.match(r.stdout, /^block\s+\d+ /m);
    assert.equal(await isGranted(alice.account, carol.account), false);
  });

  it('a grantFor by an account the owner never approved is refused with the decoded revert and exit 1', async () => {
    const { alice, bob, carol } = accounts;
    const r = await tkms('grant', ...chainArgs(), '--account', bob.file, '--owner', alice.account.address, '--handle', handle, '--to', carol.account.address);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^tkms grant: error \[unauthorized\]: TkmsAcl\.grantFor reverted: NotOperator\(/);
    assert.ok(r.stderr.includes(getAddress(bob.account.address)), r.stderr);
    assert.equal(await isGranted(alice.account, carol.account), false);
  });

  it('once approved as operator, grant --owner works; revoke-all --chain by the owner ends it', async () => {
    const { alice, bob, carol } = accounts;
    await setOperator({ rpcUrl: anvil.url, contract, privateKey: encodeHex(alice.account.secretKey) as Hex }, { operator: bob.account.address, approved: true });
    const granted = await tkms('grant', ...chainArgs(), '--account', bob.file, '--owner', alice.account.address, '--handle', handle, '--to', carol.account.address);
    assert.equal(granted.code, 0, granted.stderr);
    assert.equal(await isGranted(alice.account, carol.account), true);
    const all = await tkms('revoke-all', ...chainArgs(), '--account', alice.file, '--json');
    assert.equal(all.code, 0, all.stderr);
    assert.equal(await isGranted(alice.account, carol.account), false);
  });

  it('an account without gas money gets a clear error naming the fund command', async () => {
    const { dave, carol } = accounts;
    const r = await tkms('grant', ...chainArgs(), '--account', dave.file, '--handle', handle, '--to', carol.account.address);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /error \[bad_request\]: .*not enough ETH.*tkms devnet fund --address/);
  });

  it('the wrong chain id, a missing contract and a bad grantee are refused before anything is sent', async () => {
    const { alice } = accounts;
    const nonceBefore = await reader().getTransactionCount({ address: getAddress(alice.account.address) });
    const wrongChain = await tkms('grant', ...chainArgs(), '--chain-id', '1', '--account', alice.file, '--handle', handle, '--to', accounts.carol.account.address);
    assert.equal(wrongChain.code, 1);
    assert.match(wrongChain.stderr, /error \[chain_mismatch\]: the RPC serves chain 31337, not chain 1/);
    const noContract = await tkms('grant', '--chain', '--rpc-url', anvil.url, '--contract', alice.account.address, '--password-file', join(dir, 'password'), '--account', alice.file, '--handle', handle, '--to', accounts.carol.account.address);
    assert.equal(noContract.code, 1);
    assert.match(noContract.stderr, /error \[chain_mismatch\]: no contract at/);
    const badGrantee = await tkms('grant', ...chainArgs(), '--account', alice.file, '--handle', handle, '--to', '0x1234');
    assert.equal(badGrantee.code, 1);
    assert.match(badGrantee.stderr, /error \[bad_address\]/);
    assert.equal(await reader().getTransactionCount({ address: getAddress(alice.account.address) }), nonceBefore);
  });

  it('--chain without an RPC URL, and chain flags without --chain, are usage errors (exit 2)', async () => {
    const { alice, carol } = accounts;
    const noUrl = await captureCli(async () => {
      const saved = process.env.TKMS_ACL_RPC_URL;
      delete process.env.TKMS_ACL_RPC_URL;
      try {
        return await runTkmsCli(['grant', '--chain', '--contract', contract, '--password-file', join(dir, 'password'), '--account', alice.file, '--handle', handle, '--to', carol.account.address]);
      } finally {
        if (saved !== undefined) process.env.TKMS_ACL_RPC_URL = saved;
      }
    });
    assert.equal(noUrl.code, 2);
    assert.match(noUrl.stderr, /--chain needs the chain: --rpc-url/);
    const stray = await tkms('revoke', '--contract', contract, '--account', alice.file, '--handle', handle, '--to', carol.account.address);
    assert.equal(stray.code, 2);
    assert.match(stray.stderr, /--contract applies only to on-chain grants: add --chain/);
  });
});
