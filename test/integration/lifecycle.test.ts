import assert from 'node:assert/strict';
import { readdir, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { isTkmsError } from '../../core/index.ts';
import { parseGatewayConfig } from '../../gateway/config.ts';
import { startGateway } from '../../gateway/server.ts';
import { GatewayStore, LOCK_FILE_NAME } from '../../gateway/store.ts';
import { loadConfig } from '../../node/config.ts';
import { startNode } from '../../node/daemon.ts';
import { Keystore } from '../../node/keystore.ts';
import { CLUSTER_PASSWORD, freePorts, makeTempDir, ManagedProcess, NodeCluster, removeDir, TKMS_BIN } from '../support/processes.ts';

/**
 * Start-up and shutdown of a real node and gateway (node/daemon.ts, gateway/server.ts on
 * runtime/lifecycle.ts). The node holds no lock file (its keystore, replay and revocation logs
 * take none): what a failed start must give back is its libp2p port, its open logs and the
 * keystore's master key. The gateway's store holds the only lock, LOCK, which a failed start
 * must release.
 */
const GATEWAY_SERVICES_BEFORE_HTTP = ['store', 'metrics', 'node pool', 'key refresh', 'key registry', 'key change catch-up', 'node gauge'];
const SERVICES_BEFORE_HTTP = ['keystore', 'spent request ids', 'revocations', 'key registry', 'metrics', 'libp2p', 'dkg runner', 'partial service', 'spent nonces', 'sign value ledger', 'sign service', 'acl', 'key changes', 'key list', 'reshare runner', 'p2p'];

async function occupy(port: number): Promise<Server> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, '127.0.0.1', resolve));
  return server;
}

async function portIsFree(port: number): Promise<boolean> {
  const probe = createServer();
  return new Promise((resolve) => {
    probe.once('error', () => resolve(false));
    probe.listen(port, '127.0.0.1', () => probe.close(() => resolve(true)));
  });
}

function servicesLogged(p: ManagedProcess, msg: 'started' | 'stopped'): string[] {
  return p
    .logLines()
    .filter((line) => line.msg === msg && typeof line.service === 'string')
    .map((line) => line.service as string);
}

describe('node lifecycle: a failed start gives back what it opened; SIGTERM stops in reverse', function () {
  this.timeout(120_000);
  let root: string | undefined;
  let cluster: NodeCluster;

  before(async () => {
    root = await makeTempDir('tkms-node-lifecycle');
    cluster = await NodeCluster.prepare({ n: 2, t: 2, rootDir: root });
  });
  after(async () => {
    await cluster?.stopAll();
    await removeDir(root);
  });

  it('a node whose HTTP port is taken exits 1 after stopping, in reverse, every service it had started', async () => {
    const node = cluster.node(1);
    const blocker = await occupy(node.httpPort);
    try {
      const p = new ManagedProcess('node1', [TKMS_BIN, 'node', 'start', '--config', node.configPath], { env: cluster.envFor(1) });
      const exit = await Promise.race([p.exited, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no exit within 30 s: ${p.stderr}`)), 30_000).unref())]);
      assert.equal(exit.code, 1, p.stderr);
      assert.match(p.stderr, /cannot listen for HTTP: EADDRINUSE/);
      assert.deepEqual(servicesLogged(p, 'started'), SERVICES_BEFORE_HTTP);
      assert.deepEqual(servicesLogged(p, 'stopped'), [...SERVICES_BEFORE_HTTP].reverse());
      assert.ok(await portIsFree(node.p2pPort), 'the libp2p port is free');
    } finally {
      blocker.close();
    }
  });

  it('in process: the failed start stops libp2p and closes the keystore before it rejects; the node then starts', async () => {
    const node = cluster.node(2);
    const env = { TKMS_KEYSTORE_PASSWORD: CLUSTER_PASSWORD, TKMS_LOG_LEVEL: 'silent' };
    const config = await loadConfig(node.configPath, env);
    const closed: string[] = [];
    const close = Keystore.prototype.close;
    Keystore.prototype.close = function (this: Keystore) {
      closed.push(this.dir);
      close.call(this);
    };
    const blocker = await occupy(node.adminPort);
    try {
      await assert.rejects(startNode(config, env), (e) => isTkmsError(e, 'unavailable') && /EADDRINUSE/.test(e.message));
      assert.deepEqual(closed, [config.keystoreDir], 'the keystore was closed');
      assert.ok(await portIsFree(node.p2pPort), 'libp2p no longer listens');
      assert.ok(await portIsFree(node.httpPort), 'the HTTP listener opened before the admin one is closed');
      blocker.close();
      const running = await startNode(config, env);
      await running.stop();
      assert.deepEqual(closed, [config.keystoreDir, config.keystoreDir]);
      assert.ok(await portIsFree(node.p2pPort), 'stop frees the libp2p port');
    } finally {
      Keystore.prototype.close = close;
      blocker.close();
    }
  });

  it('SIGTERM stops the services in reverse order of start, the keystore last, and exits 0', async () => {
    const p = await cluster.start(1);
    const exit = await p.stop('SIGTERM', 20_000);
    assert.equal(exit.code, 0, p.stderr);
    const started = servicesLogged(p, 'started');
    assert.deepEqual(started, [...SERVICES_BEFORE_HTTP, 'http', 'admin']);
    assert.deepEqual(servicesLogged(p, 'stopped'), [...started].reverse());
    assert.ok(await portIsFree(cluster.node(1).p2pPort));
  });
});

describe('gateway lifecycle: a failed start releases the store lock', function () {
  this.timeout(120_000);
  let root: string | undefined;
  let configPath: string;
  let port: number;

  before(async () => {
    root = await makeTempDir('tkms-gateway-lifecycle');
    // The gateway needs a committee file (written by prepare); no node runs.
    await NodeCluster.prepare({ n: 2, t: 2, rootDir: root });
    [port] = (await freePorts(1)) as [number];
    configPath = join(root, 'gateway.json');
    await writeFile(configPath, JSON.stringify({ listen: `127.0.0.1:${port}`, storeDir: 'store', committeeFile: 'committee.json' }));
  });
  after(async () => {
    await removeDir(root);
  });

  it('a gateway whose HTTP port is taken exits 1, stops what it started in reverse and leaves no LOCK', async () => {
    const blocker = await occupy(port);
    try {
      const p = new ManagedProcess('gateway', [TKMS_BIN, 'gateway', 'start', '--config', configPath]);
      const exit = await Promise.race([p.exited, new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no exit within 30 s: ${p.stderr}`)), 30_000).unref())]);
      assert.equal(exit.code, 1, p.stderr);
      assert.match(p.stderr, /EADDRINUSE/);
      assert.deepEqual(servicesLogged(p, 'started'), GATEWAY_SERVICES_BEFORE_HTTP);
      assert.deepEqual(servicesLogged(p, 'stopped'), [...GATEWAY_SERVICES_BEFORE_HTTP].reverse());
      assert.ok(!(await readdir(join(root!, 'store'))).includes(LOCK_FILE_NAME), 'the store lock is released');
    } finally {
      blocker.close();
    }
  });

  it('in process: the failed start releases the lock, so the same process opens the store again without a takeover', async () => {
    const config = parseGatewayConfig({ listen: `127.0.0.1:${port}`, storeDir: 'store', committeeFile: 'committee.json', logLevel: 'silent' }, root!);
    const blocker = await occupy(port);
    try {
      await assert.rejects(startGateway(config), (e) => isTkmsError(e, 'unavailable') && /EADDRINUSE/.test(e.message));
    } finally {
      blocker.close();
    }
    assert.ok(!(await readdir(config.storeDir)).includes(LOCK_FILE_NAME));
    const warnings: string[] = [];
    // A lock still held in this process would be refused ("already open in this process").
    const store = await GatewayStore.open(config.storeDir, { onWarning: (m) => warnings.push(m) });
    await store.close();
    assert.deepEqual(warnings, []);
    const running = await startGateway(config);
    await running.stop();
    assert.ok(!(await readdir(config.storeDir)).includes(LOCK_FILE_NAME), 'stop releases the lock');
  });
});
