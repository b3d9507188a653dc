import '../core/polyfills.ts';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateAccount, TkmsClient } from '../client/index.ts';
import { Devnet } from '../deploy/devnet.ts';

/**
 * DKG-key creation latency on a loopback devnet: from sending a signed create of a DKG key through
 * the gateway (POST /v1/keys) to the gateway publishing the key's public key (t members hold the same
 * verified result), as a client polling describe sees it, 50 ms apart. Beside it, a derived key's
 * create on the same devnet (a signed change, no ceremony), applied by n − t + 1 members.
 */
export interface KeyDkgResult {
  n: number;
  t: number;
  runs: number;
  dkgKeyMs: number[];
  dkgKeyMedianMs: number;
  derivedKeyMs: number[];
  derivedKeyMedianMs: number;
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

export async function benchKeyDkg(opts: { n: number; t: number; runs: number }): Promise<KeyDkgResult> {
  const dir = await mkdtemp(join(tmpdir(), 'tkms-bench-key-dkg-'));
  const devnet = await Devnet.start({ dir, n: opts.n, t: opts.t, gatewayPort: 0, logLevel: 'warn' });
  try {
    const alice = new TkmsClient({ gatewayUrl: devnet.gatewayUrl, account: generateAccount(), ...(await devnet.pinned()) });
    const dkgKeyMs: number[] = [];
    const derivedKeyMs: number[] = [];
    for (let i = 0; i < opts.runs; i++) {
      const started = performance.now();
      await alice.keys.create({ keyId: `bench-${i}` });
      while ((await alice.keys.describe(`bench-${i}`)).versions[0]?.publicKey === undefined) {
        if (performance.now() - started > 120_000) throw new Error(`the DKG of bench-${i} did not finish in 120 s`);
        await new Promise((r) => setTimeout(r, 50));
      }
      dkgKeyMs.push(Math.round(performance.now() - started));
      const derivedStarted = performance.now();
      const derived = await alice.keys.create({ keyId: `bench-derived-${i}`, origin: { type: 'derived', root: devnet.keyId, path: `bench/${i}` } });
      if (!derived.effective) throw new Error(`the create of bench-derived-${i} was not effective`);
      derivedKeyMs.push(Math.round(performance.now() - derivedStarted));
    }
    return { n: opts.n, t: opts.t, runs: opts.runs, dkgKeyMs, dkgKeyMedianMs: median(dkgKeyMs), derivedKeyMs, derivedKeyMedianMs: median(derivedKeyMs) };
  } finally {
    await devnet.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

export function printKeyDkg(r: KeyDkgResult): void {
  console.log(
    `  ${r.t}-of-${r.n}: DKG key created and published in ${r.dkgKeyMs.join(' / ')} ms (median ${r.dkgKeyMedianMs} ms); ` +
      `a derived key's create effective in ${r.derivedKeyMs.join(' / ')} ms (median ${r.derivedKeyMedianMs} ms)`,
  );
}

if (import.meta.url === `file://${process.argv[1]}`) {
  printKeyDkg(await benchKeyDkg({ n: Number(process.argv[2] ?? 5), t: Number(process.argv[3] ?? 3), runs: Number(process.argv[4] ?? 5) }));
}
