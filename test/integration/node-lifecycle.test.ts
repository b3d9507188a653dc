import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { isTkmsError } from '../../core/index.ts';
import { loadConfig } from '../../node/config.ts';
import { startNode } from '../../node/daemon.ts';
import { Keystore } from '../../node/keystore.ts';
import { CLUSTER_PASSWORD, makeTempDir, ManagedProcess, NodeCluster, removeDir, TKMS_BIN } from '../support/processes.ts';

/**
 * Start-up and shutdown of a real node (node/daemon.ts on runtime/lifecycle.ts). The node holds
 * no lock file (its keystore, replay and revocation logs take none; only the gateway's store has
 * a LOCK): what a failed start must give back is its libp2p port, its open logs and the keystore's
 * master key, which the log lines and the in-process checks below prove.
 */
const SERVICES_BEFORE_HTTP = ['keystore', 'replay cache', 'revocations', 'metrics', 'libp2p', 'dkg runner', 'partial service', 'acl', 'key list', 'p2p'];

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
