import '../core/polyfills.ts';
import { readFile } from 'node:fs/promises';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateAccount, TkmsClient, type Account } from '../client/index.ts';
import { DelegationMessage, decodeHandle, decodeHex, generateRsaKeyPair, newRequestId, signDelegation } from '../core/index.ts';
import { Devnet } from '../deploy/devnet.ts';

/**
 * End to end on a loopback devnet, every process on this machine:
 * - latency: sequential requests, the gateway's delegation round trip (ACL check, fan-out,
 *   t partials with proofs and RSA wraps) and the client's whole decrypt (delegation + unwrap
 *   + t proof checks + combine + AES-GCM);
 * - throughput: `concurrency` clients decrypting as fast as they can for `seconds`;
 * - peak RSS (VmHWM) of the node processes and the gateway after both.
 */
export interface LatencyStats {
  p50: number;
  p90: number;
  p99: number;
  mean: number;
}

export interface E2eResult {
  n: number;
  t: number;
  /** The reader's access (ReaderAccess.label); absent when the owner decrypts its own handle. */
  access?: string;
  /** What the access reported at the end of the run (ReaderAccess.stats). */
  accessStats?: Record<string, number>;
  decrypts: number;
  delegateMs: LatencyStats;
  decryptMs: LatencyStats;
  throughput: {
    concurrency: number;
    seconds: number;
    decrypts: number;
    failed: number;
    decryptsPerSecond: number;
    latencyMs: LatencyStats;
    /** Partials the nodes issued per decrypt (t, plus hedged and replaced requests). */
    partialsPerDecrypt: number;
    /** Partial requests per frame the gateway sent (it batches what queues behind frames in flight). */
    partialsPerFrame: number;
    /** CPU (user + system) per decrypt during the run: the client (this process), the gateway, all nodes together. */
    cpuMsPerDecrypt: { client: number; gateway: number; nodes: number };
  };
  peakRssMiB: { nodeMax: number; gateway: number };
}

export function latencyStats(samples: number[]): LatencyStats {
  const s = [...samples].sort((a, b) => a - b);
  if (s.length === 0) return { p50: NaN, p90: NaN, p99: NaN, mean: NaN };
  const at = (q: number): number => Number(s[Math.min(s.length - 1, Math.floor(q * s.length))]!.toFixed(2));
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), mean: Number((s.reduce((a, b) => a + b, 0) / s.length).toFixed(2)) };
}

/** CPU time (user + system) a process has used so far, in ms; Linux /proc only. */
export async function processCpuMs(pid: number | undefined): Promise<number> {
  if (pid === undefined) return NaN;
  try {
    const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
    // utime and stime are fields 14 and 15 of stat(5), in clock ticks (USER_HZ, 100 on Linux).
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
  } catch {
    return NaN;
  }
}

/** Peak resident set (VmHWM) of a process, in MiB; Linux /proc only. */
export async function peakRssMiB(pid: number | undefined): Promise<number> {
  if (pid === undefined) return NaN;
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const kib = Number(/VmHWM:\s+(\d+) kB/.exec(status)?.[1]);
    return Number((kib / 1024).toFixed(1));
  } catch {
    return NaN;
  }
}

export interface E2eOptions {
  n: number;
  t: number;
  decrypts: number;
  concurrency: number;
  seconds: number;
  /** Decrypts by a grantee under this access; without it every decrypt is by the handle's owner. */
  access?: ReaderAccess;
}

/** How a reader other than the owner gets to decrypt: the ACL rows of the benchmark (bench/acl-access.ts). */
export interface ReaderAccess {
  label: string;
  /** Merged into every node's config and the gateway's. */
  nodeConfig: Record<string, unknown>;
  gatewayConfig: Record<string, unknown>;
  /** Lets `reader` decrypt `handle` of `owner`; resolves once the gateway and the nodes count it. */
  allow(grant: { devnet: Devnet; owner: Account; ownerClient: TkmsClient; handle: string; reader: Account }): Promise<void>;
  /** Figures of its own over the whole run, read before the devnet stops. */
  stats?(devnet: Devnet): Promise<Record<string, number>>;
}

/** The client that decrypts `handle`: its owner's, or a grantee's once the access allows it. */
async function readerClient(devnet: Devnet, opts: E2eOptions, ownerClient: TkmsClient, owner: Account, handle: string, make: (account: Account) => TkmsClient): Promise<{ client: TkmsClient; reader: Account }> {
  if (opts.access === undefined) return { client: ownerClient, reader: owner };
  const reader = generateAccount();
  await opts.access.allow({ devnet, owner, ownerClient, handle, reader });
  return { client: make(reader), reader };
}

const UNLIMITED = { perMinute: 10_000_000, burst: 100_000 };

export async function benchEndToEnd(opts: E2eOptions): Promise<E2eResult> {
  const dir = await mkdtemp(join(tmpdir(), 'tkms-bench-'));
  // Rate limits would measure themselves: lift them for the benchmark accounts.
  const nodeConfig = Object.fromEntries(Array.from({ length: opts.n }, (_, i) => [i + 1, { partialRateLimit: UNLIMITED, ...opts.access?.nodeConfig }]));
  const gatewayConfig = { rateLimit: UNLIMITED, ...opts.access?.gatewayConfig };
  const devnet = await Devnet.start({ dir, n: opts.n, t: opts.t, gatewayPort: 0, logLevel: 'warn', nodeConfig, gatewayConfig });
  try {
    const owner = generateAccount();
    const rsaKey = await generateRsaKeyPair();
    const make = (account: Account): TkmsClient => new TkmsClient({ gatewayUrl: devnet.gatewayUrl, account, rsaKey, validitySeconds: 600 });
    const ownerClient = make(owner);
    const info = await ownerClient.encrypt(new TextEncoder().encode('benchmark payload'), { keyId: devnet.keyId });
    const { client, reader: account } = await readerClient(devnet, opts, ownerClient, owner, info.handle, make);
    for (let i = 0; i < 20; i++) await client.decrypt(info.handle); // warm-up: JIT, connections, key cache

    const delegate: number[] = [];
    for (let i = 0; i < opts.decrypts; i++) {
      const now = Math.floor(Date.now() / 1000);
      const d = signDelegation(account.secretKey, {
        handle: decodeHandle(info.handle),
        keyId: devnet.keyId,
        requester: account.addressBytes,
        rsaSpki: decodeHex(rsaKey.publicKey.spkiHex),
        notBefore: now,
        notAfter: now + 600,
        requestId: newRequestId(),
      }, devnet.deployment);
      const started = performance.now();
      await client.http.request('POST', `/v1/handles/${info.handle}/delegate`, { delegation: DelegationMessage.encode(d) });
      delegate.push(performance.now() - started);
    }
    const decrypt: number[] = [];
    for (let i = 0; i < opts.decrypts; i++) {
      const started = performance.now();
      await client.decrypt(info.handle);
      decrypt.push(performance.now() - started);
    }

    const throughput = await loadRun(devnet, opts);
    const nodeRss = await Promise.all(Array.from({ length: opts.n }, (_, i) => peakRssMiB(devnet.node(i + 1).process?.pid)));
    const accessStats = await opts.access?.stats?.(devnet);
    return {
      n: opts.n,
      t: opts.t,
      ...(opts.access ? { access: opts.access.label } : {}),
      ...(accessStats ? { accessStats } : {}),
      decrypts: opts.decrypts,
      delegateMs: latencyStats(delegate),
      decryptMs: latencyStats(decrypt),
      throughput,
      peakRssMiB: { nodeMax: Math.max(...nodeRss), gateway: await peakRssMiB(devnet.gatewayProcess?.pid) },
    };
  } finally {
    await devnet.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/** `concurrency` independent clients (own account, RSA key and handle) in a closed loop. */
async function loadRun(devnet: Devnet, opts: E2eOptions): Promise<E2eResult['throughput']> {
  const workers = await Promise.all(
    Array.from({ length: opts.concurrency }, async (_, i) => {
      const owner = generateAccount();
      const rsaKey = await generateRsaKeyPair();
      const make = (account: Account): TkmsClient => new TkmsClient({ gatewayUrl: devnet.gatewayUrl, account, rsaKey, validitySeconds: 600 });
      const ownerClient = make(owner);
      const info = await ownerClient.encrypt(new TextEncoder().encode(`load ${i}`), { keyId: devnet.keyId });
      const { client } = await readerClient(devnet, opts, ownerClient, owner, info.handle, make);
      await client.decrypt(info.handle);
      return { client, handle: info.handle };
    }),
  );
  const latencies: number[] = [];
  let failed = 0;
  const nodePids = Array.from({ length: opts.n }, (_, i) => devnet.node(i + 1).process?.pid);
  const nodesCpu = async (): Promise<number> => (await Promise.all(nodePids.map(processCpuMs))).reduce((a, b) => a + b, 0);
  const nodeCounters = async (): Promise<{ partials: number; batchedRequests: number; frames: number }> => {
    const total = { partials: 0, batchedRequests: 0, frames: 0 };
    for (let id = 1; id <= opts.n; id++) {
      const text = await (await fetch(`${devnet.node(id).httpUrl}/metrics`)).text();
      const read = (re: RegExp): number => Number(re.exec(text)?.[1] ?? 0);
      total.partials += read(/^tkms_partial_requests_total\{outcome="ok"\} (\d+)/m);
      total.batchedRequests += read(/^tkms_partial_batch_size_sum (\d+)/m);
      total.frames += read(/^tkms_partial_batch_size_count (\d+)/m);
    }
    return total;
  };
  const countersBefore = await nodeCounters();
  const before = { client: process.cpuUsage(), gateway: await processCpuMs(devnet.gatewayProcess?.pid), nodes: await nodesCpu() };
  const deadline = performance.now() + opts.seconds * 1000;
  const started = performance.now();
  await Promise.all(
    workers.map(async (w) => {
      while (performance.now() < deadline) {
        const t0 = performance.now();
        try {
          await w.client.decrypt(w.handle);
          latencies.push(performance.now() - t0);
        } catch {
          failed++;
        }
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const client = process.cpuUsage(before.client);
  const per = (ms: number): number => Number((ms / Math.max(1, latencies.length)).toFixed(2));
  const cpuMsPerDecrypt = {
    client: per((client.user + client.system) / 1000),
    gateway: per((await processCpuMs(devnet.gatewayProcess?.pid)) - before.gateway),
    nodes: per((await nodesCpu()) - before.nodes),
  };
  const countersAfter = await nodeCounters();
  const partialsPerDecrypt = Number(((countersAfter.partials - countersBefore.partials) / Math.max(1, latencies.length)).toFixed(2));
  const framesSent = countersAfter.frames - countersBefore.frames;
  const partialsPerFrame = Number(((countersAfter.batchedRequests - countersBefore.batchedRequests) / Math.max(1, framesSent)).toFixed(2));
  return {
    concurrency: opts.concurrency,
    seconds: Number(seconds.toFixed(2)),
    decrypts: latencies.length,
    failed,
    decryptsPerSecond: Number((latencies.length / seconds).toFixed(1)),
    latencyMs: latencyStats(latencies),
    partialsPerDecrypt,
    partialsPerFrame,
    cpuMsPerDecrypt,
  };
}

/** One row of the end-to-end table, as `npm run bench` prints it. */
export function printE2eRow(r: E2eResult): void {
  const tp = r.throughput;
  console.log(
    `  ${r.t}-of-${r.n}${r.access ? `, ${r.access}` : ''}: delegation p50 ${r.delegateMs.p50} / p99 ${r.delegateMs.p99} ms; decrypt p50 ${r.decryptMs.p50} / p99 ${r.decryptMs.p99} ms (sequential, ${r.decrypts} each)\n` +
      `          ${tp.decryptsPerSecond} decrypts/s with ${tp.concurrency} clients for ${tp.seconds} s (${tp.failed} failed; latency p50 ${tp.latencyMs.p50} / p99 ${tp.latencyMs.p99} ms; ` +
      `${tp.partialsPerDecrypt} partials per decrypt, ${tp.partialsPerFrame} per frame to a node)\n` +
      `          CPU per decrypt: client ${tp.cpuMsPerDecrypt.client} ms, gateway ${tp.cpuMsPerDecrypt.gateway} ms, nodes ${tp.cpuMsPerDecrypt.nodes} ms; ` +
      `peak RSS: node ${r.peakRssMiB.nodeMax} MiB, gateway ${r.peakRssMiB.gateway} MiB` +
      (r.accessStats ? `\n          ${Object.entries(r.accessStats).map(([k, v]) => `${k} ${v}`).join(', ')}` : ''),
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  // Importing the client picked libsecp256k1 and the node:crypto paths (core/platform/node.ts).
  const [n, t] = (process.argv[2] ?? '3-of-5').split('-of-').map(Number).reverse() as [number, number];
  const result = await benchEndToEnd({ n, t, decrypts: Number(process.argv[3] ?? 200), concurrency: 16, seconds: Number(process.argv[4] ?? 5) });
  console.log(JSON.stringify(result, null, 2));
}
