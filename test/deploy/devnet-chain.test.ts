import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createPublicClient, formatEther, getAddress, http, type Hex } from 'viem';
import { TKMS_ACL_ABI } from '../../chain/acl-artifact.ts';
import { generateAccount } from '../../client/account.ts';
import { writeAccountFile } from '../../client/account-file.ts';
import { encodeHex } from '../../core/index.ts';
import { devnetAclConfig, DEVNET_CONFIRMATIONS, DEVNET_MAX_BLOCK_LAG, readDevnetChain } from '../../deploy/devnet-chain.ts';
import { parseConfig } from '../../node/config.ts';
import { parseGatewayConfig } from '../../gateway/config.ts';
import { Devnet } from '../../deploy/devnet.ts';
import { loadGatewayConfig } from '../../gateway/config.ts';
import { loadConfig } from '../../node/config.ts';
import { runTkmsCli } from '../../scripts/cli/program.ts';
import { makeTempDir, removeDir } from '../support/processes.ts';
import { captureCli } from './cli-capture.ts';

/**
 * What `tkms devnet --chain` sets up before it starts any node: Anvil with TkmsAcl, and configs
 * the node and the gateway accept, pointing at it. (Devnet.prepare: no node processes.)
 */
describe('devnet --chain: chain, deployment and configs (real anvil)', function () {
  this.timeout(120_000);

  let dir: string;
  let devnet: Devnet | undefined;

  before(async () => {
    dir = await makeTempDir('tkms-devnet-chain-');
  });

  afterEach(async () => {
    await devnet?.stop();
    devnet = undefined;
  });

  after(async () => {
    await removeDir(dir);
  });

  it('deploys TkmsAcl and writes acl.mode "either" and acl.chain into every node config and the gateway config', async () => {
    devnet = await Devnet.prepare({ dir, n: 3, t: 2, gatewayPort: 0, chain: true });
    const chain = devnet.chain!;
    assert.match(chain.rpcUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
    const client = createPublicClient({ transport: http(chain.rpcUrl) });
    assert.equal(await client.getChainId(), chain.chainId);
    assert.equal(await client.readContract({ address: chain.contract, abi: TKMS_ACL_ABI, functionName: 'VERSION' }), 1n);

    for (const node of devnet.nodes) {
      const config = await loadConfig(node.configPath, {});
      assert.equal(config.acl.mode, 'either');
      assert.deepEqual(
        { chainId: config.acl.chain?.chainId, contract: config.acl.chain?.contract, rpcUrls: config.acl.chain?.rpcUrls, maxBlockLag: config.acl.chain?.maxBlockLag },
        { chainId: chain.chainId, contract: chain.contract, rpcUrls: [chain.rpcUrl], maxBlockLag: DEVNET_MAX_BLOCK_LAG },
      );
    }
    const gateway = await loadGatewayConfig(join(dir, 'gateway.json'), {});
    assert.equal(gateway.acl.mode, 'either');
    assert.deepEqual(
      { chainId: gateway.acl.chain?.chainId, contract: gateway.acl.chain?.contract, rpcUrls: gateway.acl.chain?.rpcUrls, confirmations: gateway.acl.chain?.confirmations, fromBlock: gateway.acl.chain?.fromBlock },
      { chainId: chain.chainId, contract: chain.contract, rpcUrls: [chain.rpcUrl], confirmations: DEVNET_CONFIRMATIONS, fromBlock: chain.fromBlock },
    );
    const { gatewayUrl, ...endpoint } = await readDevnetChain(dir);
    assert.deepEqual(endpoint, chain);
    // The CLI looks handles up there (grant --chain, register --chain).
    assert.match(gatewayUrl ?? '', /^http:\/\/127\.0\.0\.1:[1-9]\d*$/);
  });

  it('mines a block a second without transactions, so the head stays young', async () => {
    devnet = await Devnet.prepare({ dir, chain: true });
    const client = createPublicClient({ transport: http(devnet.chain!.rpcUrl) });
    const first = await client.getBlock();
    await new Promise((r) => setTimeout(r, 2_500));
    const later = await client.getBlock();
    assert.ok(later.number >= first.number + 2n, `blocks ${first.number}@${first.timestamp} then ${later.number}@${later.timestamp}`);
    assert.ok(Math.abs(Number(later.timestamp) - Date.now() / 1000) < 3, `head timestamp ${later.timestamp}, now ${Date.now() / 1000}`);
  });

  it('a restart keeps the chain (state file) and reuses the deployment and the grants made on it', async () => {
    devnet = await Devnet.prepare({ dir, chain: true });
    const before = devnet.chain!;
    const owner = generateAccount();
    const grantee = generateAccount();
    const handle = encodeHex(randomBytes(32)) as Hex;
    await writeFile(join(dir, 'pw'), 'devnet-chain-test\n', { mode: 0o600 });
    await writeAccountFile(join(dir, 'owner.json'), owner, 'devnet-chain-test', { n: 1024, r: 8, p: 1 });

    const funded = await captureCli(() => runTkmsCli(['devnet', '--dir', dir, 'fund', '--address', owner.address, '--eth', '3']));
    assert.equal(funded.code, 0, funded.stderr);
    assert.match(funded.stdout, / now holds 3 ETH on chain 31337 /);
    const client = createPublicClient({ transport: http(before.rpcUrl) });
    assert.equal(formatEther(await client.getBalance({ address: getAddress(owner.address) })), '3');

    const granted = await captureCli(() =>
      runTkmsCli(['grant', '--chain', '--devnet', dir, '--account', join(dir, 'owner.json'), '--password-file', join(dir, 'pw'), '--handle', handle, '--to', grantee.address]),
    );
    assert.equal(granted.code, 0, granted.stderr);
    // Only prepared: the devnet's gateway is not running, so the owner could not be looked up.
    assert.match(granted.stderr, /warning: not checked that .* \(the devnet's gateway http:\/\/127\.0\.0\.1:\d+ did not answer\)/);
    const isGranted = (rpcUrl: string) =>
      createPublicClient({ transport: http(rpcUrl) }).readContract({
        address: before.contract,
        abi: TKMS_ACL_ABI,
        functionName: 'isGranted',
        args: [handle, getAddress(owner.address), getAddress(grantee.address)],
      });
    assert.equal(await isGranted(before.rpcUrl), true);
    await devnet.stop();

    // Without chain: true: a devnet made with a chain keeps it.
    devnet = await Devnet.prepare({ dir });
    assert.deepEqual(devnet.chain, before);
    assert.equal(await isGranted(devnet.chain!.rpcUrl), true);
    const layout = JSON.parse(await readFile(join(dir, 'devnet.json'), 'utf8')) as { chain: { contract: string } };
    assert.equal(layout.chain.contract, before.contract);
  });

  it('fund on a stopped devnet, or one without a chain, says what to start', async () => {
    const stopped = await captureCli(() => runTkmsCli(['devnet', '--dir', dir, 'fund', '--address', generateAccount().address]));
    assert.equal(stopped.code, 1);
    assert.match(stopped.stderr, /^tkms devnet fund: error \[unavailable\]: the devnet chain at http:\/\/127\.0\.0\.1:\d+ did not answer \(is "tkms devnet --chain" running\?\)/);
    const plainDir = await makeTempDir('tkms-devnet-plain-');
    try {
      devnet = await Devnet.prepare({ dir: plainDir, n: 1, t: 1 });
      assert.equal(devnet.chain, undefined);
      const config = await loadConfig(devnet.nodes[0]!.configPath, {});
      assert.equal(config.acl.mode, 'signed');
      assert.equal(config.acl.chain, undefined);
      const none = await captureCli(() => runTkmsCli(['devnet', '--dir', plainDir, 'fund', '--address', generateAccount().address]));
      assert.equal(none.code, 1);
      assert.match(none.stderr, /error \[not_found\]: the devnet in .* has no chain; restart it with "tkms devnet --chain/);
    } finally {
      await devnet?.stop();
      devnet = undefined;
      await removeDir(plainDir);
    }
  });

  it('test hooks: mode, confirmations, maxBlockLag and per-process RPC URLs reach the acl groups the loaders accept', () => {
    const chain = { port: 8545, chainId: 31337, contract: getAddress('0x5fbdb2315678afecb367f032d93f642f64180aa3'), fromBlock: 7, blockTimeSeconds: 1 };
    const hooks = { mode: 'chain' as const, confirmations: 2, maxBlockLag: 5, rpcUrls: (who: number | 'gateway', url: string) => (who === 2 ? ['http://127.0.0.1:9/lies'] : [url]) };
    const base = { listen: '/ip4/127.0.0.1/tcp/1', http: '127.0.0.1:2', admin: '127.0.0.1:3', identityFile: 'i.json', keystoreDir: 'k', committeeFile: 'c.json' };
    const node1 = parseConfig({ ...base, acl: devnetAclConfig(chain, 1, hooks) }, { baseDir: '/tmp' });
    const node2 = parseConfig({ ...base, acl: devnetAclConfig(chain, 2, hooks) }, { baseDir: '/tmp' });
    assert.deepEqual([node1.acl.mode, node1.acl.chain?.maxBlockLag, node1.acl.chain?.rpcUrls], ['chain', 5, ['http://127.0.0.1:8545']]);
    assert.deepEqual(node2.acl.chain?.rpcUrls, ['http://127.0.0.1:9/lies']);
    const gateway = parseGatewayConfig({ listen: '127.0.0.1:1', storeDir: 's', committeeFile: 'c.json', acl: devnetAclConfig(chain, 'gateway', hooks) }, '/tmp');
    assert.deepEqual([gateway.acl.mode, gateway.acl.chain?.confirmations, gateway.acl.chain?.fromBlock], ['chain', 2, 7]);
  });
});
