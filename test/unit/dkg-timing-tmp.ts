import { makeKeyring, makeNodeCryptoKeyring, runDkg } from './dkg-harness.ts';
runDkg({ t: 2, n: 3 }); // warm-up
for (const [name, keyring] of [['node:crypto Ed25519', makeNodeCryptoKeyring], ['noble Ed25519', makeKeyring]] as const) {
  for (const n of [5, 10, 16, 32]) {
    const t = Math.floor((2 * n) / 3) + 1;
    const t0 = performance.now();
    const r = runDkg({ t, n, keyring });
    const ms = performance.now() - t0;
    const done = [...r.sessions.values()].filter((s) => s.phase === 'done').length;
    const bytes = r.delivered.reduce((a, e) => a + e.payload.length, 0);
    console.log(`[${name}] n=${n} t=${t}: ${ms.toFixed(0)} ms for all ${n} sessions in one thread (${(ms / n).toFixed(0)} ms CPU per member), done=${done}/${n}, messages=${r.delivered.length}, bytes=${bytes}`);
  }
}
