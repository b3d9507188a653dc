import { readFile } from 'node:fs/promises';
import { createServer, type AddressInfo, type Server } from 'node:net';

/** Loopback helpers of the devnet and the tests that drive one: free ports, JSON over HTTP, polling. */

/**
 * Ports that were free a moment ago: all bound at once (so they differ), then released. They are
 * taken below the kernel's ephemeral range when it can be read, so that a port released here is
 * not handed to some other socket that binds port 0 or dials out before the process meant to use
 * it binds it (the chaos test's link proxies bind port 0 while the devnet starts).
 */
export async function freePorts(count: number): Promise<number[]> {
  const range = await portRange();
  const held: Server[] = [];
  try {
    if (range === undefined) {
      for (let i = 0; i < count; i++) held.push((await listenOn(0))!);
    } else {
      const [first, below] = range;
      const tried = new Set<number>();
      while (held.length < count) {
        if (tried.size >= below - first) throw new Error(`no ${count} free ports in ${first}..${below - 1}`);
        const port = first + Math.floor(Math.random() * (below - first));
        if (tried.has(port)) continue;
        tried.add(port);
        const server = await listenOn(port);
        if (server !== undefined) held.push(server);
      }
    }
    return held.map((s) => (s.address() as AddressInfo).port);
  } finally {
    await Promise.all(held.map((s) => new Promise<void>((r) => s.close(() => r()))));
  }
}

/** Lowest port handed to devnet processes when the ephemeral range is known. */
const FIRST_PORT = 20_000;
/** Test workers side by side (mocha's parallel mode numbers them in MOCHA_WORKER_ID) each take ports from their own slice of the range. */
const WORKER_SLICES = 4;

/**
 * The ports to choose from: FIRST_PORT up to the ephemeral range; in a test worker, its slice of
 * that, so that a port one worker released is not taken by another before its process binds it.
 */
async function portRange(): Promise<[first: number, below: number] | undefined> {
  const below = await ephemeralRangeStart();
  if (below === undefined) return undefined;
  const worker = Number(process.env.MOCHA_WORKER_ID);
  if (!Number.isInteger(worker) || worker < 0) return [FIRST_PORT, below];
  const size = Math.floor((below - FIRST_PORT) / WORKER_SLICES);
  const first = FIRST_PORT + (worker % WORKER_SLICES) * size;
  return [first, first + size];
}

/** Where the kernel's ephemeral ports start, when that leaves room above FIRST_PORT (Linux). */
async function ephemeralRangeStart(): Promise<number | undefined> {
  try {
    const low = Number((await readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')).trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > FIRST_PORT + 1_000 ? low : undefined;
  } catch {
    return undefined;
  }
}

/** A server listening on 127.0.0.1:port, or undefined when that port is taken (port 0: any). */
function listenOn(port: number): Promise<Server | undefined> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', (e: NodeJS.ErrnoException) => (e.code === 'EADDRINUSE' && port !== 0 ? resolve(undefined) : reject(e)));
    s.listen(port, '127.0.0.1', () => resolve(s));
  });
}

/** GET/POST with a bound (5 s by default); the body parsed as JSON when it is JSON, else kept as text. */
export async function getJson(url: string, init: RequestInit = {}, timeoutMs = 5_000): Promise<{ status: number; json: any; headers: Headers }> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = text;
  }
  return { status: res.status, json, headers: res.headers };
}

export async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>, failed?: () => string | undefined): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const why = failed?.();
    if (why !== undefined) throw new Error(`${what}: ${why}`);
    const value = await probe().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
