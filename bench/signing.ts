import '../core/polyfills.ts';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateAccount, TkmsClient, type Account } from '../client/index.ts';
import { newRequestId } from '../core/identifiers.ts';
import { encodeSignMessage, signMessageHash, SignRequestMessage, signSignRequest } from '../core/signing/sign-request.ts';
import type { SigningSuite } from '../core/signing/suites.ts';
import { Devnet } from '../deploy/devnet.ts';
import { latencyStats, processCpuMs, type LatencyStats } from './e2e.ts';

/**
 * Threshold signing on a loopback devnet, 3-of-5 beside 1-of-1, for both suites, in one run: the
 * latency of POST /v1/keys/{id}/sign as a client sees it (HTTP to the gateway, one round trip to t
 * members, aggregation and the gateway's own check of the signature), sequential, and signatures per
 * second with many requests in flight. Each request is freshly signed by the requester beforehand
 * (EIP-712; not timed), as a client would have it ready.
 */
export interface SigningRow {
  suite: SigningSuite;
  n: number;
  t: number;
  sequential: number;
  latencyMs: LatencyStats;
  concurrency: number;
  seconds: number;
  signaturesPerSecond: number;
  failed: number;
  /** CPU (user + system) per signature during the throughput run: the gateway, all nodes together. */
  cpuMsPerSignature: { gateway: number; nodes: number };
}

const UNLIMITED = { perMinute: 10_000_000, burst: 100_000 };
const KEY_SPEC: Record<SigningSuite, 'ECC_NIST_EDWARDS25519' | 'ECC_SECG_P256K1'> = { ed25519: 'ECC_NIST_EDWARDS25519', bip340: 'ECC_SECG_P256K1' };

function body(account: Account, keyId: string, deployment: { committeeId: string }, i: number): string {
  const message = { kind: 'raw' as const, data: new TextEncoder().encode(`bench message ${i} ${Math.random()}`) };
  const now = Math.floor(Date.now() / 1000);
  const request = signSignRequest(
    account.secretKey,
    { keyId, messageKind: 'raw', messageHash: signMessageHash(message), requester: account.addressBytes, notBefore: now - 5, notAfter: now + 3000, requestId: newRequestId() },
    deployment,
  );
  return JSON.stringify({ request: SignRequestMessage.encode(request), message: encodeSignMessage(message) });
}

async function post(url: string, json: string): Promise<boolean> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: json });
  const text = await res.text();
  if (res.status !== 200 && process.env.TKMS_BENCH_VERBOSE === '1') console.error(res.status, text.slice(0, 300));
  return res.status === 200;
}

export async function benchSigning(opts: { n: number; t: number; sequential: number; concurrency: number; seconds: number }): Promise<SigningRow[]> {
  const dir = await mkdtemp(join(tmpdir(), 'tkms-bench-signing-'));
  const nodeConfig = Object.fromEntries(Array.from({ length: opts.n }, (_, i) => [i + 1, { partialRateLimit: UNLIMITED }]));
  const devnet = await Devnet.start({ dir, n: opts.n, t: opts.t, gatewayPort: 0, logLevel: 'warn', keys: { creators: 'open' }, nodeConfig, gatewayConfig: { rateLimit: UNLIMITED } });
  try {
    const account = generateAccount();
    const client = new TkmsClient({ gatewayUrl: devnet.gatewayUrl, account, ...(await devnet.pinned()) });
    const rows: SigningRow[] = [];
    for (const suite of ['ed25519', 'bip340'] as const) {
      const keyId = `bench-${suite}`;
      await client.keys.create({ keyId, spec: KEY_SPEC[suite], usage: 'SIGN_VERIFY', policy: { sign: { raw: true } } });
      const started = performance.now();
      while ((await client.keys.describe(keyId)).versions[0]?.signing === undefined) {
        if (performance.now() - started > 120_000) throw new Error(`the DKG of ${keyId} did not finish in 120 s`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const url = `${devnet.gatewayUrl}/v1/keys/${keyId}/sign`;
      const make = (i: number): string => body(account, keyId, devnet.deployment, i);
      // Warm up: the gateway's first supply of nonce commitments, JIT.
      for (let i = 0; i < 30; i++) if (!(await post(url, make(i)))) throw new Error(`warm-up signature ${i} with ${keyId} failed`);
      const bodies = Array.from({ length: opts.sequential }, (_, i) => make(1000 + i));
      const ms: number[] = [];
      for (const b of bodies) {
        const t0 = performance.now();
        if (!(await post(url, b))) throw new Error(`a signature with ${keyId} failed`);
        ms.push(performance.now() - t0);
      }
      const pool = Array.from({ length: opts.concurrency * 50 + 1000 }, (_, i) => make(100_000 + i));
      let next = 0;
      let ok = 0;
      let failed = 0;
      const nodePids = devnet.nodes.map((n) => n.process?.pid);
      const nodesCpu = async (): Promise<number> => (await Promise.all(nodePids.map(processCpuMs))).reduce((a, b) => a + b, 0);
      const cpuBefore = { gateway: await processCpuMs(devnet.gatewayProcess?.pid), nodes: await nodesCpu() };
      const until = performance.now() + opts.seconds * 1000;
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: opts.concurrency }, async () => {
          while (performance.now() < until) {
            // Made ahead of the run; past them, made as needed (each request is signed once, never reused).
            const i = next++;
            const b = i < pool.length ? pool[i]! : make(100_000 + i);
            if (await post(url, b)) ok++;
            else failed++;
          }
        }),
      );
      const elapsed = (performance.now() - t0) / 1000;
      const per = (ms: number): number => Number((ms / Math.max(ok, 1)).toFixed(2));
      const cpuMsPerSignature = { gateway: per((await processCpuMs(devnet.gatewayProcess?.pid)) - cpuBefore.gateway), nodes: per((await nodesCpu()) - cpuBefore.nodes) };
      rows.push({
        cpuMsPerSignature, suite, n: opts.n, t: opts.t, sequential: opts.sequential, latencyMs: latencyStats(ms), concurrency: opts.concurrency, seconds: opts.seconds, signaturesPerSecond: Number((ok / elapsed).toFixed(1)), failed });
    }
    return rows;
  } finally {
    await devnet.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

export function printSigning(rows: SigningRow[]): void {
  for (const r of rows) {
    console.log(
      `  ${r.suite.padEnd(7)} ${r.t}-of-${r.n}: p50 ${r.latencyMs.p50} / p99 ${r.latencyMs.p99} ms (sequential, ${r.sequential}); ` +
        `${r.signaturesPerSecond} signatures/s with ${r.concurrency} in flight for ${r.seconds} s (${r.failed} failed); ` +
        `CPU per signature: gateway ${r.cpuMsPerSignature.gateway} ms, nodes ${r.cpuMsPerSignature.nodes} ms`,
    );
  }
  for (const suite of ['ed25519', 'bip340'] as const) {
    const one = rows.find((r) => r.suite === suite && r.n === 1);
    for (const r of rows.filter((x) => x.suite === suite && x.n !== 1)) {
      if (one === undefined) continue;
      console.log(`  ${suite} ${r.t}-of-${r.n} / 1-of-1: latency p50 ${(r.latencyMs.p50 / one.latencyMs.p50).toFixed(2)}×, throughput ${(r.signaturesPerSecond / one.signaturesPerSecond).toFixed(2)}×`);
    }
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const quick = process.argv.includes('--quick');
  const opts = { sequential: quick ? 50 : 200, concurrency: 16, seconds: quick ? 3 : 10 };
  const rows = [...(await benchSigning({ n: 5, t: 3, ...opts })), ...(await benchSigning({ n: 1, t: 1, ...opts }))];
  printSigning(rows);
}
