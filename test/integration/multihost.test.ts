import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateAccount, TkmsClient } from '../../client/index.ts';
import { loadCommitteeFile, pinnedClientOptions } from '../../net/committee.ts';
import { createIdentityFile } from '../../node/identity.ts';
import { getJson, makeTempDir, removeDir, TKMS_BIN, waitFor } from '../support/processes.ts';

/**
 * Five nodes and a gateway as six "hosts": each process runs in its own network namespace
 * with its own address on a veth pair plugged into one bridge, so every connection crosses a
 * real (virtual) network between distinct IPs. The committee file, the gateway's view of the
 * nodes and every listener use those addresses; loopback is left down in every namespace, and
 * the test checks that no socket in them uses it. The test process (the client) reaches the
 * hosts through the bridge's own address.
 *
 * Needs the right to create network namespaces (root or CAP_SYS_ADMIN + CAP_NET_ADMIN) and the
 * `ip` tool; skipped with the reason otherwise.
 */
const N = 5;
const T = 3;
const KEY = 'multihost';
const PASSWORD = 'multihost-test-password';

interface Host {
  name: string;
  ns: string;
  hostVeth: string;
  nsVeth: string;
  ip: string;
  process?: ChildProcess;
  output: string;
}

function ip(args: string[]): { ok: boolean; stderr: string; stdout: string } {
  const r = spawnSync('ip', args, { encoding: 'utf8' });
  return { ok: r.status === 0, stderr: (r.stderr ?? r.error?.message ?? '').trim(), stdout: r.stdout ?? '' };
}

function must(args: string[]): string {
  const r = ip(args);
  if (!r.ok) throw new Error(`ip ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

/** Why namespaces cannot be made here, or undefined when they can. */
function namespaceProblem(): string | undefined {
  if (process.platform !== 'linux') return `network namespaces are Linux-only (this is ${process.platform})`;
  const probe = spawnSync('ip', ['-V'], { encoding: 'utf8' });
  if (probe.error !== undefined || probe.status !== 0) return 'the "ip" tool (iproute2) is not installed';
  const tag = randomBytes(3).toString('hex');
  const name = `tkprobe${tag}`;
  const add = ip(['netns', 'add', name]);
  if (!add.ok) return `"ip netns add" is not permitted (${add.stderr || 'no reason given'}); run as root or with CAP_SYS_ADMIN and CAP_NET_ADMIN`;
  try {
    // Namespaces alone are not enough: the test also needs veth pairs moved into them.
    const veth = ip(['link', 'add', `tkq${tag}a`, 'type', 'veth', 'peer', 'name', `tkq${tag}b`]);
    if (!veth.ok) return `creating a veth pair is not permitted (${veth.stderr || 'no reason given'}); needs CAP_NET_ADMIN`;
    const move = ip(['link', 'set', `tkq${tag}b`, 'netns', name]);
    if (!move.ok) return `moving a veth end into a namespace failed (${move.stderr || 'no reason given'})`;
    return undefined;
  } finally {
    ip(['link', 'del', `tkq${tag}a`]);
    ip(['netns', 'del', name]);
  }
}

/** A /24 in 10.0.0.0/8 that no interface or route here uses yet. */
function freeSubnet(): string {
  const used = `${ip(['-4', 'route', 'show', 'table', 'all']).stdout}\n${ip(['-4', 'addr']).stdout}`;
  for (let i = 0; i < 50; i++) {
    const prefix = `10.${200 + (randomBytes(1)[0]! % 50)}.${randomBytes(1)[0]!}`;
    if (!used.includes(`${prefix}.`)) return prefix;
  }
  throw new Error('no free 10.x.y.0/24 subnet found');
}

/** Local addresses of TCP sockets in a namespace (from its /proc/net/tcp), as dotted IPv4. */
function tcpLocalAddresses(ns: string): string[] {
  const r = spawnSync('ip', ['netns', 'exec', ns, 'cat', '/proc/net/tcp'], { encoding: 'utf8' });
  return (r.stdout ?? '')
    .split('\n')
    .slice(1)
    .map((l) => l.trim().split(/\s+/)[1])
    .filter((a): a is string => a !== undefined && a.includes(':'))
    .map((a) => {
      const hex = a.split(':')[0]!;
      return [3, 2, 1, 0].map((i) => parseInt(hex.slice(2 * i, 2 * i + 2), 16)).join('.');
    });
}

describe('integration: multi-host network (5 nodes + gateway, one network namespace each)', function () {
  this.timeout(120_000);
  const suffix = randomBytes(2).toString('hex');
  const bridge = `tkbr${suffix}`;
  let prefix = '';
  let dir: string | undefined;
  const hosts: Host[] = [];
  let bridgeCreated = false;

  before(function () {
    const problem = namespaceProblem();
    if (problem !== undefined) {
      // eslint-disable-next-line no-console
      console.log(`      multi-host test skipped: ${problem}`);
      this.skip();
    }
  });

  after(async () => {
    await Promise.all(
      hosts.map(async (h) => {
        const child = h.process;
        if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }),
    );
    // Deleting a namespace destroys the veth end inside it, and with it the pair.
    for (const h of hosts) {
      ip(['netns', 'del', h.ns]);
      ip(['link', 'del', h.hostVeth]);
    }
    if (bridgeCreated) ip(['link', 'del', bridge]);
    await removeDir(dir);
  });

  function spawnIn(host: Host, args: string[]): void {
    const child = spawn('ip', ['netns', 'exec', host.ns, process.execPath, TKMS_BIN, ...args], {
      env: { ...process.env, TKMS_KEYSTORE_PASSWORD: PASSWORD },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    host.process = child;
    const keep = (d: Buffer) => {
      host.output = (host.output + d.toString()).slice(-20_000);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
  }

  function exitedEarly(): string | undefined {
    const dead = hosts.find((h) => h.process !== undefined && (h.process.exitCode !== null || h.process.signalCode !== null));
    return dead === undefined ? undefined : `${dead.name} exited (${dead.process!.exitCode ?? dead.process!.signalCode}): ${dead.output.slice(-1500)}`;
  }

  async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> {
    return waitFor(
      what,
      async () => {
        const why = exitedEarly();
        if (why !== undefined) throw new Error(why);
        return probe();
      },
      { timeoutMs, intervalMs: 200 },
    ).catch((e: unknown) => {
      throw new Error(`${e instanceof Error ? e.message : String(e)}${exitedEarly() ? `; ${exitedEarly()}` : ''}`);
    });
  }

  it('runs a DKG and a decryption across six hosts on their own addresses', async () => {
    // --- the network: a bridge with one address for the test, a namespace per host
    prefix = freeSubnet();
    must(['link', 'add', bridge, 'type', 'bridge']);
    bridgeCreated = true;
    must(['addr', 'add', `${prefix}.1/24`, 'dev', bridge]);
    must(['link', 'set', bridge, 'up']);
    const names = [...Array.from({ length: N }, (_, i) => `node${i + 1}`), 'gateway'];
    names.forEach((name, i) => {
      const tag = name === 'gateway' ? 'g' : String(i + 1);
      hosts.push({ name, ns: `tk${suffix}${tag}`, hostVeth: `tk${suffix}h${tag}`, nsVeth: `tk${suffix}n${tag}`, ip: `${prefix}.${11 + i}`, output: '' });
    });
    for (const h of hosts) {
      must(['netns', 'add', h.ns]);
      must(['link', 'add', h.hostVeth, 'type', 'veth', 'peer', 'name', h.nsVeth]);
      must(['link', 'set', h.nsVeth, 'netns', h.ns]);
      must(['link', 'set', h.hostVeth, 'master', bridge]);
      must(['link', 'set', h.hostVeth, 'up']);
      must(['-n', h.ns, 'addr', 'add', `${h.ip}/24`, 'dev', h.nsVeth]);
      must(['-n', h.ns, 'link', 'set', h.nsVeth, 'up']);
      // Loopback stays down: nothing in these hosts may depend on it.
      assert.match(must(['-n', h.ns, 'link', 'show', 'lo']), /state DOWN/);
    }

    // --- configs, identities, the committee file: every address is a host's own
    dir = await makeTempDir('tkms-multihost');
    const nodes = hosts.slice(0, N);
    const gateway = hosts[N]!;
    const members = [];
    // The gateway's libp2p identity, so that nodes accept the revocations it pushes.
    const gatewayIdentity = await createIdentityFile(join(dir, 'gateway-identity.json'));
    for (const [i, h] of nodes.entries()) {
      const nodeDir = join(dir, h.name);
      await mkdir(nodeDir, { recursive: true });
      const identity = await createIdentityFile(join(nodeDir, 'identity.json'));
      members.push({ id: i + 1, peerId: identity.peerId, multiaddrs: [`/ip4/${h.ip}/tcp/9000`] });
      const config = {
        listen: `/ip4/${h.ip}/tcp/9000`,
        http: `${h.ip}:9100`,
        // The admin API on the host's address (no loopback here), opened on purpose for the test.
        admin: `${h.ip}:9200`,
        adminAllowRemote: true,
        identityFile: 'identity.json',
        keystoreDir: 'keystore',
        committeeFile: '../committee.json',
        gatewayPeerIds: [gatewayIdentity.peerId],
        dkg: { phaseTimeoutMs: 8_000 },
        logLevel: 'info',
      };
      await writeFile(join(nodeDir, 'config.json'), JSON.stringify(config, null, 2));
    }
    await writeFile(join(dir, 'committee.json'), JSON.stringify({ committeeId: `multihost-${suffix}`, t: T, members }, null, 2));
    await writeFile(join(dir, 'gateway.json'), JSON.stringify({ listen: `${gateway.ip}:8080`, storeDir: 'gateway-store', committeeFile: 'committee.json', identityFile: 'gateway-identity.json', logLevel: 'info' }, null, 2));
    const files = await Promise.all(['committee.json', 'gateway.json', ...nodes.map((h) => `${h.name}/config.json`)].map((f) => readFile(join(dir!, f), 'utf8')));
    for (const text of files) assert.doesNotMatch(text, /127\.0\.0\.1|localhost|::1|\/ip4\/127\./, 'no loopback address in any config or the committee file');

    // --- nodes up, connected to each other across the bridge
    for (const h of nodes) spawnIn(h, ['node', 'start', '--config', join(dir, h.name, 'config.json')]);
    await Promise.all(
      nodes.map((h) =>
        until(`${h.name} connected to all ${N - 1} others`, async () => {
          const res = await getJson(`http://${h.ip}:9100/health`).catch(() => undefined);
          return res?.status === 200 && res.json.peersConnected === N - 1 ? true : undefined;
        }),
      ),
    );

    // --- DKG, proposed by node 1
    const admin1 = `http://${nodes[0]!.ip}:9200`;
    const proposed = await getJson(`${admin1}/admin/dkg`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ keyId: KEY }) });
    assert.equal(proposed.status, 202, JSON.stringify(proposed.json));
    const outcome = await until('the DKG', async () => {
      const s = await getJson(`${admin1}/admin/dkg/${KEY}`);
      return s.json.status === 'running' ? undefined : s.json;
    });
    assert.equal(outcome.status, 'done', `DKG aborted: ${outcome.abortReason}`);
    assert.deepEqual(outcome.result.qualified, [1, 2, 3, 4, 5]);
    await Promise.all(
      nodes.map((h) => until(`${h.name} holds the key`, async () => ((await getJson(`http://${h.ip}:9200/admin/status`)).json.keys?.some((k: { keyId: string }) => k.keyId === KEY) ? true : undefined))),
    );

    // --- the gateway in its own namespace, then a decryption through it
    spawnIn(gateway, ['gateway', 'start', '--config', join(dir, 'gateway.json')]);
    const gatewayUrl = `http://${gateway.ip}:8080`;
    await until('the gateway to know the key', async () => ((await getJson(`${gatewayUrl}/v1/keys/${KEY}`).catch(() => undefined))?.status === 200 ? true : undefined));
    await until('the gateway ready (t nodes connected)', async () => ((await getJson(`${gatewayUrl}/health`)).status === 200 ? true : undefined));

    const [alice, bob] = [generateAccount(), generateAccount()];
    // Plain HTTP to a non-loopback address is refused unless asked for: these hosts are namespaces
    // on one machine, so nothing leaves it.
    const pinned = { ...pinnedClientOptions(await loadCommitteeFile(join(dir, 'committee.json'))), insecure: true };
    const aliceClient = new TkmsClient({ gatewayUrl, account: alice, ...pinned });
    const bobClient = new TkmsClient({ gatewayUrl, account: bob, ...pinned });
    const sealed = await aliceClient.encryptLocally(new TextEncoder().encode('across six hosts'), { keyId: KEY });
    await aliceClient.grant(sealed.handle, bob.address);
    const result = await bobClient.decrypt(sealed.handle);
    assert.equal(new TextDecoder().decode(result.plaintext), 'across six hosts');
    assert.equal(result.usedNodeIds.length, T);
    assert.deepEqual(result.rejected, []);

    // --- what actually went over the wire: sockets on the hosts' own addresses only
    for (const h of hosts) {
      const locals = tcpLocalAddresses(h.ns);
      assert.ok(locals.length > 0, `${h.name} has sockets`);
      for (const a of locals) assert.ok(a === h.ip || a === '0.0.0.0', `${h.name}: socket on ${a}, expected only ${h.ip}`);
    }
    const status1 = (await getJson(`${admin1}/admin/status`)).json;
    assert.equal(status1.peers.connected, N - 1);
    for (const m of status1.listen as string[]) assert.ok(m.startsWith(`/ip4/${nodes[0]!.ip}/tcp/9000`), m);
  });
});
