import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateAccount, TkmsClient } from '../client/index.ts';
import { delegationToJson, decodeHandle, decodeHex, generateRsaKeyPair, newRequestId, signDelegation } from '../core/index.ts';
import { Devnet } from '../deploy/devnet.ts';

/**
 * End-to-end latency on a loopback devnet (every process on this machine): the gateway's
 * delegation round trip (ACL check, fan-out, t partials with proofs and RSA wraps) and the
 * client's whole decrypt (delegation + unwrap + t proof checks + combine + AES-GCM).
 * Sequential requests, so this is latency, not throughput.
 */
export interface E2eResult {
  n: number;
  t: number;
  decrypts: number;
  delegateMs: { p50: number; p90: number; p99: number; mean: number };
  decryptMs: { p50: number; p90: number; p99: number; mean: number };
}

function stats(samples: number[]): E2eResult['delegateMs'] {
  const s = [...samples].sort((a, b) => a - b);
  const at = (q: number): number => Number(s[Math.min(s.length - 1, Math.floor(q * s.length))]!.toFixed(2));
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), mean: Number((s.reduce((a, b) => a + b, 0) / s.length).toFixed(2)) };
}

export async function benchEndToEnd(opts: { n: number; t: number; decrypts: number }): Promise<E2eResult> {
  const dir = await mkdtemp(join(tmpdir(), 'tkms-bench-'));
  // The per-requester rate limit would measure itself; lift it for one benchmarking account.
  const devnet = await Devnet.start({ dir, n: opts.n, t: opts.t, gatewayPort: 0, logLevel: 'warn', gatewayConfig: { rateLimit: { perMinute: 10_000_000, burst: 100_000 } } });
  try {
    const account = generateAccount();
    const rsaKey = await generateRsaKeyPair();
    const client = new TkmsClient({ gatewayUrl: devnet.gatewayUrl, account, rsaKey, validitySeconds: 600 });
    const info = await client.encrypt(new TextEncoder().encode('benchmark payload'), { keyId: devnet.keyId });
    for (let i = 0; i < 10; i++) await client.decrypt(info.handle); // warm-up: JIT, connections, key cache

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
      });
      const started = performance.now();
      await client.http.request('POST', `/v1/handles/${info.handle}/delegate`, { delegation: delegationToJson(d) });
      delegate.push(performance.now() - started);
    }
    const decrypt: number[] = [];
    for (let i = 0; i < opts.decrypts; i++) {
      const started = performance.now();
      await client.decrypt(info.handle);
      decrypt.push(performance.now() - started);
    }
    return { n: opts.n, t: opts.t, decrypts: opts.decrypts, delegateMs: stats(delegate), decryptMs: stats(decrypt) };
  } finally {
    await devnet.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const decrypts = Number(process.argv[2] ?? 200);
  const result = await benchEndToEnd({ n: 5, t: 3, decrypts });
  console.log(JSON.stringify(result, null, 2));
}
