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
import { Devnet } from '../../deploy/devnet.ts';
import { TkmsClient } from '../../client/client.ts';
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

  it('the chain target is checked before the account file is opened: no password is asked for a usage error', async () => {
    const { alice, carol } = accounts;
    // A password file that does not exist: opening the account first would fail on it instead.
    const missing = join(dir, 'no-such-password-file');
    const saved = { url: process.env.TKMS_ACL_RPC_URL, contract: process.env.TKMS_ACL_CONTRACT };
    delete process.env.TKMS_ACL_RPC_URL;
    delete process.env.TKMS_ACL_CONTRACT;
    try {
      for (const argv of [
        ['grant', '--chain', '--account', alice.file, '--password-file', missing, '--handle', handle, '--to', carol.account.address],
        ['revoke', '--chain', '--account', alice.file, '--password-file', missing, '--handle', handle, '--to', carol.account.address],
        ['revoke-all', '--chain', '--account', alice.file, '--password-file', missing],
        ['operator', '--chain', '--account', alice.file, '--password-file', missing, '--add', carol.account.address],
        ['register', '--chain', '--account', alice.file, '--password-file', missing, '--handle', handle],
      ]) {
        const r = await tkms(...argv);
        assert.equal(r.code, 2, `${argv[0]}: ${r.stderr}`);
        assert.match(r.stderr, /--chain needs the chain: --rpc-url/, argv[0]);
        assert.doesNotMatch(r.stderr, /password/i, argv[0]);
      }
      const badUrl = await tkms('grant', '--chain', '--rpc-url', 'ftp://x', '--contract', contract, '--account', alice.file, '--password-file', missing, '--handle', handle, '--to', carol.account.address);
      assert.equal(badUrl.code, 2, badUrl.stderr);
      assert.match(badUrl.stderr, /--rpc-url must be an http/);
    } finally {
      if (saved.url !== undefined) process.env.TKMS_ACL_RPC_URL = saved.url;
      if (saved.contract !== undefined) process.env.TKMS_ACL_CONTRACT = saved.contract;
    }
  });

  it('grant --chain without a known gateway sends, then warns that the handle\'s owner was not checked', async () => {
    const { alice, carol } = accounts;
    const r = await tkms('grant', ...chainArgs(), '--account', alice.file, '--handle', handle, '--to', carol.account.address);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /warning: not checked that 0x[0-9a-f]{40} owns 0x[0-9a-f]{64} \(no gateway given/);
    assert.equal(await isGranted(alice.account, carol.account), true);
  });

  it('grant --chain with a named gateway that does not answer is refused before anything is sent', async () => {
    const { alice, carol } = accounts;
    const nonceBefore = await reader().getTransactionCount({ address: getAddress(alice.account.address) });
    const r = await tkms('grant', ...chainArgs(), '--gateway', 'http://127.0.0.1:1', '--account', alice.file, '--handle', handle, '--to', carol.account.address);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /error \[unavailable\]: gateway http:\/\/127\.0\.0\.1:1 is unreachable/);
    assert.equal(await reader().getTransactionCount({ address: getAddress(alice.account.address) }), nonceBefore);
  });

  it('operator --chain --add lets the operator grant for the owner; --remove ends that (isOperator read back)', async () => {
    const { alice, bob, carol } = accounts;
    const isOperator = () => reader().readContract({ address: contract, abi: TKMS_ACL_ABI, functionName: 'isOperator', args: [getAddress(alice.account.address), getAddress(bob.account.address)] });
    await tkms('revoke-all', ...chainArgs(), '--account', alice.file);
    const added = await tkms('operator', ...chainArgs(), '--account', alice.file, '--add', bob.account.address, '--json');
    assert.equal(added.code, 0, added.stderr);
    const out = JSON.parse(added.stdout) as { operator: string; approved: boolean; txHash: string };
    assert.deepEqual({ operator: out.operator, approved: out.approved }, { operator: bob.account.address, approved: true });
    assert.equal(await isOperator(), true);
    const granted = await tkms('grant', ...chainArgs(), '--account', bob.file, '--owner', alice.account.address, '--handle', handle, '--to', carol.account.address);
    assert.equal(granted.code, 0, granted.stderr);
    assert.equal(await isGranted(alice.account, carol.account), true);
    const removed = await tkms('operator', ...chainArgs(), '--account', alice.file, '--remove', bob.account.address);
    assert.equal(removed.code, 0, removed.stderr);
    assert.match(removed.stdout, /may no longer grant or revoke on chain/);
    assert.equal(await isOperator(), false);
    const refused = await tkms('revoke', ...chainArgs(), '--account', bob.file, '--owner', alice.account.address, '--handle', handle, '--to', carol.account.address);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /NotOperator/);
    const both = await tkms('operator', ...chainArgs(), '--account', alice.file);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /exactly one of --add <address> or --remove <address>/);
  });
});

describe('cli: register --chain and the owner check of grant --chain (real devnet with its chain)', function () {
  this.timeout(240_000);
  let devnet: Devnet;
  let dir: string;
  let handle: string;
  const files: Record<'alice' | 'bob', { account: Account; file: string }> = {} as never;
  const tkms = (...argv: string[]) => captureCli(() => runTkmsCli(argv));
  const chainArgs = () => ['--chain', '--devnet', join(dir, 'devnet'), '--password-file', join(dir, 'password')];

  before(async () => {
    dir = await makeTempDir('tkms-chain-cli-devnet-');
    await writeFile(join(dir, 'password'), `${PASSWORD}\n`, { mode: 0o600 });
    devnet = await Devnet.start({ dir: join(dir, 'devnet'), n: 3, t: 2, gatewayPort: 0, chain: true });
    for (const name of ['alice', 'bob'] as const) {
      const account = generateAccount();
      const file = join(dir, `${name}.json`);
      await writeAccountFile(file, account, PASSWORD, FAST_SCRYPT);
      files[name] = { account, file };
      await fundDevnetAccount(devnet.chain!.rpcUrl, account.address, '10');
    }
    const client = new TkmsClient({ gatewayUrl: devnet.gatewayUrl, account: files.alice.account });
    handle = (await client.encrypt(new TextEncoder().encode('registered on chain'), { keyId: devnet.keyId })).handle;
  });

  after(async () => {
    await devnet?.stop();
    await removeDir(dir);
  });

  const read = <T>(functionName: 'isViewer' | 'ownerOf' | 'isGranted', args: readonly unknown[]) =>
    createPublicClient({ transport: http(devnet.chain!.rpcUrl) }).readContract({ address: devnet.chain!.contract, abi: TKMS_ACL_ABI, functionName, args } as never) as Promise<T>;

  it('register --chain by the owner: ownerOf is set and isViewer answers for the owner (and not for others)', async () => {
    const { alice, bob } = files;
    assert.equal(await read<boolean>('isViewer', [handle, getAddress(alice.account.address)]), false);
    const r = await tkms('register', ...chainArgs(), '--account', alice.file, '--handle', handle, '--json');
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { owner: string }).owner, alice.account.address);
    assert.equal((await read<string>('ownerOf', [handle])).toLowerCase(), alice.account.address);
    assert.equal(await read<boolean>('isViewer', [handle, getAddress(alice.account.address)]), true);
    assert.equal(await read<boolean>('isViewer', [handle, getAddress(bob.account.address)]), false);
    const again = await tkms('register', ...chainArgs(), '--account', alice.file, '--handle', handle);
    assert.equal(again.code, 1);
    assert.match(again.stderr, /error \[conflict\]: TkmsAcl\.registerHandle reverted: AlreadyRegistered/);
  });

  it('register --chain by another account is refused before any transaction, naming the owner', async () => {
    const { alice, bob } = files;
    const r = await tkms('register', ...chainArgs(), '--account', bob.file, '--handle', handle);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`error \\[unauthorized\\]: ${bob.account.address} does not own handle .*its owner is ${alice.account.address}`));
  });

  it('grant --chain from an account that is not the handle\'s owner is refused (devnet\'s gateway asked); the owner\'s grant makes isViewer true for the grantee', async () => {
    const { alice, bob } = files;
    const carol = generateAccount();
    const refused = await tkms('grant', ...chainArgs(), '--account', bob.file, '--handle', handle, '--to', carol.address);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /error \[unauthorized\]: 0x[0-9a-f]{40} does not own handle .*nodes read only the owner's on-chain grants/);
    assert.equal(await read<boolean>('isGranted', [handle, getAddress(bob.account.address), getAddress(carol.address)]), false);
    const granted = await tkms('grant', ...chainArgs(), '--account', alice.file, '--handle', handle, '--to', carol.address);
    assert.equal(granted.code, 0, granted.stderr);
    assert.doesNotMatch(granted.stderr, /not checked/);
    assert.equal(await read<boolean>('isViewer', [handle, getAddress(carol.address)]), true);
  });
});
