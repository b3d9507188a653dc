import { randomBytes } from 'node:crypto';
import { generateAccount, TkmsClient, type Account } from '../../client/index.ts';
import { isTkmsError } from '../../core/index.ts';
import { Devnet, getJson } from '../../deploy/devnet.ts';
import { LinkProxies, type LinkProxyStats } from './link-proxy.ts';
import { seededRandom, shuffled } from '../support/seeded-random.ts';

/**
 * Chaos: a devnet (default 4-of-7) under a steady decrypt load while a driver kills (SIGKILL),
 * restarts (SIGTERM + start), pauses (SIGSTOP … SIGCONT) and partitions nodes at random, never
 * more than n − t at once. Partitions are real: every node and the gateway reach each member
 * through a TCP proxy of their own (see link-proxy.ts), and cutting all links of a node isolates
 * it from every other node and from the gateway while its process keeps running.
 *
 * A node counts as faulty from the moment its fault starts until it is back: its /health is 200
 * and the gateway lists it as connected again. New faults only start while fewer than n − t
 * nodes are faulty, so at least t nodes are always up — the promise under test is that then every
 * authorized decrypt succeeds and every unauthorized one fails.
 */
export type FaultKind = 'kill' | 'restart' | 'pause' | 'partition-blackhole' | 'partition-reset';
export const FAULT_KINDS: readonly FaultKind[] = ['kill', 'restart', 'pause', 'partition-blackhole', 'partition-reset'];

export interface ChaosOptions {
  /** Devnet directory (created fresh). */
  dir: string;
  n?: number;
  t?: number;
  /** Length of the load + fault window. */
  durationMs: number;
  /** Absolute time (ms since epoch) by which everything, including stopping, should be over; shortens the window. */
  deadline?: number;
  /** Parallel decrypt loops. */
  concurrency?: number;
  seed?: number;
  kinds?: readonly FaultKind[];
  /** How long a fault lasts before recovery starts (uniform in the range). */
  faultMs?: [number, number];
  /** Pause between two fault injections (uniform in the range). */
  gapMs?: [number, number];
  /** Handles alice encrypts and grants bob before the chaos starts. */
  handles?: number;
  /** Every k-th request is an unauthorized attempt (no grant, or a revoked grant); 0 = none. */
  unauthorizedEvery?: number;
  log?: (line: string) => void;
  /** Receives the run's account keys and plaintexts (never written to the report), e.g. to grep logs for them. */
  onSecrets?: (secrets: { accounts: Account[]; plaintexts: string[] }) => void;
}

export interface FaultRecord {
  kind: FaultKind;
  node: number;
  /** ms since the window opened. */
  startedAt: number;
  /** When recovery began (heal, SIGCONT, start). */
  recoveringAt: number;
  /** When the node was healthy again and the gateway connected to it. */
  recoveredAt: number;
}

export interface LatencySummary {
  count: number;
  minMs: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  meanMs: number;
}

export interface ChaosReport {
  config: { n: number; t: number; maxFaulty: number; durationMs: number; concurrency: number; seed: number; kinds: FaultKind[]; faultMs: [number, number]; gapMs: [number, number]; handles: number };
  startedAt: string;
  devnetStartMs: number;
  windowMs: number;
  decrypts: { attempted: number; succeeded: number; failed: number; latency: LatencySummary; failures: { atMs: number; code: string; message: string; faulty: number[] }[] };
  unauthorized: { attempted: number; refused: number; leaked: number; codes: Record<string, number> };
  faults: { injected: number; byKind: Record<FaultKind, number>; maxConcurrent: number; timeline: FaultRecord[]; downtimeMs: Record<FaultKind, number>; errors: string[] };
  proxies: LinkProxyStats;
  /** Reset partitions in which the cut node's /health was seen listing no peer at all (of those checked). */
  isolation: { checked: number; confirmed: number };
  /** Processes alive and healthy at the end, with the gateway connected to every node. */
  recovered: boolean;
  /** Node or gateway processes that exited without the driver killing them. */
  unexpectedExits: string[];
  finalDecryptOk: boolean;
  /** Latency per second of the window: [second, decrypts ok, p50 ms, faulty nodes at that second]. */
  perSecond: [number, number, number, number][];
}

const UNLIMITED = { perMinute: 10_000_000, burst: 10_000_000 };

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export function summarize(values: number[]): LatencySummary {
  const s = [...values].sort((a, b) => a - b);
  const r = (x: number) => Math.round(x * 10) / 10;
  return {
    count: s.length,
    minMs: r(s[0] ?? 0),
    p50Ms: r(percentile(s, 50)),
    p90Ms: r(percentile(s, 90)),
    p99Ms: r(percentile(s, 99)),
    maxMs: r(s[s.length - 1] ?? 0),
    meanMs: r(s.length === 0 ? 0 : s.reduce((a, b) => a + b, 0) / s.length),
  };
}

async function until(what: string, timeoutMs: number, probe: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

/** Runs the whole thing: devnet start, setup, the window, recovery, stop (also on failure). The directory is left for the caller. */
export async function runChaos(opts: ChaosOptions): Promise<ChaosReport> {
  const proxies = new LinkProxies();
  const log = opts.log ?? (() => undefined);
  const started = Date.now();
  let devnet: Devnet | undefined;
  try {
    devnet = await Devnet.start({
      dir: opts.dir,
      fresh: true,
      n: opts.n ?? 7,
      t: opts.t ?? 4,
      gatewayPort: 0,
      // A load test of availability: per-account limits (tested on their own in
      // security-limits.test.ts) must not be what refuses the load.
      nodeConfig: Object.fromEntries(Array.from({ length: opts.n ?? 7 }, (_, i) => [i + 1, { partialRateLimit: UNLIMITED }])),
      gatewayConfig: { rateLimit: UNLIMITED },
      linkAddress: proxies.linkAddress,
      onProgress: (line) => log(`devnet: ${line}`),
    });
  } catch (e) {
    await proxies.close();
    throw e;
  }
  try {
    return await drive(devnet, proxies, opts, Date.now() - started);
  } finally {
    await devnet.stop();
    await proxies.close();
  }
}

async function drive(net: Devnet, proxies: LinkProxies, opts: ChaosOptions, devnetStartMs: number): Promise<ChaosReport> {
  const n = net.n;
  const t = net.t;
  const maxFaulty = n - t;
  const concurrency = opts.concurrency ?? 2;
  const seed = opts.seed ?? randomBytes(4).readUInt32BE(0);
  const kinds = [...(opts.kinds ?? FAULT_KINDS)];
  const faultMs = opts.faultMs ?? [1_500, 5_000];
  const gapMs = opts.gapMs ?? [300, 1_500];
  const handleCount = opts.handles ?? 8;
  const unauthorizedEvery = opts.unauthorizedEvery ?? 10;
  const log = opts.log ?? (() => undefined);
  // Separate streams: the fault schedule (kinds, nodes, durations, gaps) replays from the seed
  // whatever the load does; which handle a request picks does not disturb it.
  // Seeded, so a run's fault schedule can be replayed from its seed (timing aside).
  const faultRandom = seededRandom(seed);
  const loadRandom = seededRandom(seed ^ 0x9e3779b9);
  const pick = <T>(xs: readonly T[], random = faultRandom): T => xs[Math.floor(random() * xs.length)]!;
  const between = ([lo, hi]: [number, number]): number => lo + faultRandom() * (hi - lo);
  const started = Date.now() - devnetStartMs;
  log(`devnet up in ${devnetStartMs} ms (${proxies.summary().links} proxied links); seed ${seed}`);

  const trustedMemberKeys = await net.memberKeys();
  const client = (account: Account): TkmsClient => new TkmsClient({ gatewayUrl: net.gatewayUrl, account, trustedMemberKeys });
  const [alice, bob, carol, dave] = [generateAccount(), generateAccount(), generateAccount(), generateAccount()];
  const aliceClient = client(alice);
  const handles: { handle: string; plaintext: string }[] = [];
  for (let i = 0; i < handleCount; i++) {
    const plaintext = `chaos ${i} ${randomBytes(6).toString('hex')}`;
    const info = await aliceClient.encrypt(new TextEncoder().encode(plaintext), { keyId: net.keyId });
    await aliceClient.grant(info.handle, bob.address);
    handles.push({ handle: info.handle, plaintext });
  }
  opts.onSecrets?.({ accounts: [alice, bob, carol, dave], plaintexts: handles.map((h) => h.plaintext) });
  // dave is granted, then revoked while every node is up: he must be refused all along.
  await aliceClient.grant(handles[0]!.handle, dave.address);
  const revoked = await aliceClient.revoke(handles[0]!.handle, dave.address);
  if (!revoked.effective) throw new Error(`setup: revocation not effective (${revoked.acknowledgedBy.join(',')})`);
  const bobClients = Array.from({ length: concurrency }, () => client(bob));
  const carolClient = client(carol);
  const daveClient = client(dave);
  // Warm up (RSA keys, key cache), outside the measured window.
  await Promise.all(bobClients.map((c, i) => c.decrypt(handles[i % handles.length]!.handle)));

  // --- the window -------------------------------------------------------------------------
  const reserveMs = 15_000;
  const windowMs = Math.max(5_000, Math.min(opts.durationMs, (opts.deadline ?? Infinity) - Date.now() - reserveMs));
  const windowStart = Date.now();
  const windowEnd = windowStart + windowMs;
  const since = (): number => Date.now() - windowStart;
  const stopFaults = new AbortController();

  const faulty = new Set<number>();
  let maxConcurrent = 0;
  const timeline: FaultRecord[] = [];
  const tasks: Promise<unknown>[] = [];
  const faultErrors: string[] = [];
  const paused = new Set<number>();

  const latencies: number[] = [];
  const okAt: [number, number][] = [];
  const failures: ChaosReport['decrypts']['failures'] = [];
  let attempted = 0;
  const unauthorized = { attempted: 0, refused: 0, leaked: 0, codes: {} as Record<string, number> };
  const faultySamples: number[] = [];

  const recovered = async (id: number): Promise<boolean> => {
    const [node, gateway] = await Promise.all([getJson(`${net.node(id).httpUrl}/health`), getJson(`${net.gatewayUrl}/health`)]);
    return node.status === 200 && Array.isArray(gateway.json.nodesConnected) && gateway.json.nodesConnected.includes(id);
  };

  const isolation = { checked: 0, confirmed: 0 };
  const isolatedWithin = async (id: number, ms: number): Promise<boolean> => {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      const h = await getJson(`${net.node(id).httpUrl}/health`).catch(() => undefined);
      if (h !== undefined && Array.isArray(h.json.peers) && h.json.peers.length === 0) return true;
      await sleep(100);
    }
    return false;
  };

  const inject = async (kind: FaultKind, id: number): Promise<void> => {
    const record: FaultRecord = { kind, node: id, startedAt: since(), recoveringAt: 0, recoveredAt: 0 };
    timeline.push(record);
    const holdMs = between(faultMs);
    log(`+${(record.startedAt / 1000).toFixed(1)}s ${kind} node ${id} (${Math.round(holdMs)} ms); faulty now [${[...faulty].sort().join(',')}]`);
    const child = net.node(id).process;
    switch (kind) {
      case 'kill':
        await net.killNode(id, 'SIGKILL');
        await sleep(holdMs, stopFaults.signal);
        record.recoveringAt = since();
        await net.startNode(id);
        break;
      case 'restart':
        record.recoveringAt = since();
        await net.restartNode(id);
        break;
      case 'pause':
        paused.add(id);
        child?.kill('SIGSTOP');
        await sleep(holdMs, stopFaults.signal);
        record.recoveringAt = since();
        child?.kill('SIGCONT');
        paused.delete(id);
        break;
      case 'partition-blackhole':
      case 'partition-reset': {
        const cutAt = Date.now();
        proxies.partition(id, kind === 'partition-reset' ? 'reset' : 'blackhole');
        if (kind === 'partition-reset') {
          // Real isolation: with every link reset, the node itself sees no member any more.
          isolation.checked++;
          const seen = await isolatedWithin(id, Math.min(holdMs, 3_000));
          if (seen) isolation.confirmed++;
          else log(`node ${id} still saw peers ${Math.round(Date.now() - cutAt)} ms into a reset partition`);
        }
        await sleep(holdMs - (Date.now() - cutAt), stopFaults.signal);
        record.recoveringAt = since();
        proxies.heal(id);
        break;
      }
    }
    await until(`node ${id} to recover from ${kind}`, 60_000, () => recovered(id));
    record.recoveredAt = since();
    log(`+${(record.recoveredAt / 1000).toFixed(1)}s node ${id} back from ${kind} (down ${((record.recoveredAt - record.startedAt) / 1000).toFixed(1)} s)`);
  };

  const scheduler = async (): Promise<void> => {
    // First one of each kind (shuffled), so even a short run sees them all; then at random.
    const firstRound = shuffled(kinds, faultRandom);
    while (Date.now() < windowEnd - 1_000) {
      await sleep(between(gapMs), stopFaults.signal);
      if (stopFaults.signal.aborted) break;
      if (faulty.size >= maxFaulty) continue;
      const candidates = net.nodes.map((x) => x.id).filter((id) => !faulty.has(id));
      const id = pick(candidates);
      const kind = firstRound.shift() ?? pick(kinds);
      faulty.add(id);
      maxConcurrent = Math.max(maxConcurrent, faulty.size);
      tasks.push(
        inject(kind, id).then(
          () => faulty.delete(id),
          (e: unknown) => {
            // The node stays counted as faulty: no other fault may take its slot.
            const message = `${kind} on node ${id}: ${e instanceof Error ? e.message : String(e)}`;
            faultErrors.push(message);
            log(`FAULT TASK FAILED: ${message}`);
          },
        ),
      );
    }
  };

  let requestNo = 0;
  const worker = async (w: number): Promise<void> => {
    const bobClient = bobClients[w]!;
    while (Date.now() < windowEnd) {
      const k = ++requestNo;
      if (unauthorizedEvery > 0 && k % unauthorizedEvery === 0) {
        // Alternately: carol was never granted anything; dave's grant was revoked.
        const [who, target] = (k / unauthorizedEvery) % 2 === 0 ? [carolClient, pick(handles, loadRandom)] : [daveClient, handles[0]!];
        unauthorized.attempted++;
        try {
          await who.decrypt(target.handle);
          unauthorized.leaked++;
          log(`UNAUTHORIZED DECRYPT SUCCEEDED (${who === carolClient ? 'carol' : 'dave'})`);
        } catch (e) {
          const code = isTkmsError(e) ? e.code : 'error';
          unauthorized.refused++;
          unauthorized.codes[code] = (unauthorized.codes[code] ?? 0) + 1;
        }
        continue;
      }
      const target = pick(handles, loadRandom);
      attempted++;
      const t0 = performance.now();
      try {
        const result = await bobClient.decrypt(target.handle);
        const text = new TextDecoder().decode(result.plaintext);
        if (text !== target.plaintext) throw new Error('decrypted to the wrong plaintext');
        const ms = performance.now() - t0;
        latencies.push(ms);
        okAt.push([since(), ms]);
      } catch (e) {
        const code = isTkmsError(e) ? e.code : 'error';
        const message = e instanceof Error ? e.message : String(e);
        failures.push({ atMs: since(), code, message: message.slice(0, 300), faulty: [...faulty].sort() });
        log(`+${(since() / 1000).toFixed(1)}s DECRYPT FAILED: ${code}: ${message.slice(0, 200)} (faulty [${[...faulty].sort().join(',')}])`);
      }
    }
  };

  const sampler = setInterval(() => faultySamples.push(faulty.size), 1_000);
  const schedulerDone = scheduler();
  await Promise.all(Array.from({ length: concurrency }, (_, w) => worker(w)));
  clearInterval(sampler);
  stopFaults.abort();
  await schedulerDone;
  await Promise.all(tasks);
  // Belt and braces: nothing stays paused or cut.
  for (const id of paused) net.node(id).process?.kill('SIGCONT');
  for (const x of net.nodes) if (proxies.isCut(x.id)) proxies.heal(x.id);

  let allBack = true;
  try {
    await until('every node back and connected to the gateway', 60_000, async () => (await Promise.all(net.nodes.map((x) => recovered(x.id)))).every(Boolean));
  } catch (e) {
    allBack = false;
    log(e instanceof Error ? e.message : String(e));
  }
  const unexpectedExits: string[] = [];
  for (const x of net.nodes) {
    const p = x.process;
    if (p === undefined || p.exitCode !== null || p.signalCode !== null) unexpectedExits.push(`node ${x.id} (${p?.exitCode ?? ''} ${p?.signalCode ?? ''})`);
  }
  const gw = net.gatewayProcess;
  if (gw === undefined || gw.exitCode !== null || gw.signalCode !== null) unexpectedExits.push(`gateway (${gw?.exitCode ?? ''} ${gw?.signalCode ?? ''})`);
  let finalDecryptOk = false;
  try {
    const last = handles[handles.length - 1]!;
    finalDecryptOk = new TextDecoder().decode((await bobClients[0]!.decrypt(last.handle)).plaintext) === last.plaintext;
  } catch (e) {
    log(`final decrypt failed: ${e instanceof Error ? e.message : String(e)}`);
  }

  const byKind = Object.fromEntries(FAULT_KINDS.map((k) => [k, timeline.filter((f) => f.kind === k).length])) as Record<FaultKind, number>;
  const downtimeMs = Object.fromEntries(
    FAULT_KINDS.map((k) => [k, timeline.filter((f) => f.kind === k && f.recoveredAt > 0).reduce((sum, f) => sum + (f.recoveredAt - f.startedAt), 0)]),
  ) as Record<FaultKind, number>;
  const perSecond: ChaosReport['perSecond'] = [];
  for (let s = 0; s < Math.ceil(windowMs / 1000); s++) {
    const inSecond = okAt.filter(([at]) => at >= s * 1000 && at < (s + 1) * 1000).map(([, ms]) => ms);
    perSecond.push([s, inSecond.length, Math.round(percentile([...inSecond].sort((a, b) => a - b), 50)), faultySamples[s] ?? 0]);
  }

  const report: ChaosReport = {
    config: { n, t, maxFaulty, durationMs: opts.durationMs, concurrency, seed, kinds, faultMs, gapMs, handles: handleCount },
    startedAt: new Date(started).toISOString(),
    devnetStartMs,
    windowMs,
    decrypts: { attempted, succeeded: latencies.length, failed: failures.length, latency: summarize(latencies), failures: failures.slice(0, 50) },
    unauthorized,
    faults: { injected: timeline.length, byKind, maxConcurrent, timeline, downtimeMs, errors: faultErrors },
    proxies: proxies.summary(),
    isolation,
    recovered: allBack,
    unexpectedExits,
    finalDecryptOk,
    perSecond,
  };
  return report;
}

/** A plain-text summary table of a report. */
export function formatChaosReport(r: ChaosReport): string {
  const l = r.decrypts.latency;
  const rows: [string, string][] = [
    ['devnet', `${r.config.t}-of-${r.config.n}, at most ${r.config.maxFaulty} nodes faulty at once (seen: ${r.faults.maxConcurrent}); seed ${r.config.seed}`],
    ['window', `${(r.windowMs / 1000).toFixed(1)} s of load (concurrency ${r.config.concurrency}) after a ${(r.devnetStartMs / 1000).toFixed(1)} s devnet start`],
    ['decrypts attempted', String(r.decrypts.attempted)],
    ['decrypts succeeded', String(r.decrypts.succeeded)],
    ['decrypts failed', String(r.decrypts.failed)],
    ['latency ms', `min ${l.minMs}  p50 ${l.p50Ms}  p90 ${l.p90Ms}  p99 ${l.p99Ms}  max ${l.maxMs}  mean ${l.meanMs}`],
    ['unauthorized', `${r.unauthorized.attempted} attempted, ${r.unauthorized.refused} refused (${Object.entries(r.unauthorized.codes).map(([c, k]) => `${c} ${k}`).join(', ') || '-'}), ${r.unauthorized.leaked} succeeded`],
    ['faults injected', `${r.faults.injected}: ${FAULT_KINDS.map((k) => `${k} ${r.faults.byKind[k]}`).join(', ')}`],
    ['fault tasks failed', r.faults.errors.length === 0 ? 'none' : r.faults.errors.join('; ')],
    ['fault downtime s', FAULT_KINDS.map((k) => `${k} ${(r.faults.downtimeMs[k] / 1000).toFixed(1)}`).join(', ')],
    ['proxies', `${r.proxies.links} links, ${r.proxies.connections} connections, ${r.proxies.resets} resets, ${r.proxies.heldConnections} held`],
    ['isolation', `${r.isolation.confirmed} of ${r.isolation.checked} reset partitions seen isolated (no peer on the node's /health)`],
    ['after the window', `${r.recovered ? 'all nodes back' : 'NOT all nodes back'}; unexpected exits: ${r.unexpectedExits.join(', ') || 'none'}; final decrypt ${r.finalDecryptOk ? 'ok' : 'FAILED'}`],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join('\n');
}
