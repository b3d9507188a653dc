import '../core/polyfills.ts';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { generateAccount, TkmsClient } from '../client/index.ts';
import { isTkmsError } from '../core/index.ts';
import { Devnet } from '../deploy/devnet.ts';

/**
 * `npm start`: a local devnet (5 node processes, t = 3, and a gateway, on loopback, in a
 * fresh temporary directory), a DKG, and one visible round trip through the real network:
 * alice encrypts, grants bob, bob decrypts, carol is refused, alice revokes, bob is refused.
 * Then everything stops. `npx tkms devnet` keeps a network running instead.
 */
const say = (line = ''): void => {
  process.stdout.write(`${line}\n`);
};
const short = (hex: string): string => `${hex.slice(0, 10)}…${hex.slice(-6)}`;

async function refused(what: string, attempt: () => Promise<unknown>): Promise<void> {
  try {
    await attempt();
    throw new Error(`${what} was NOT refused`);
  } catch (e) {
    if (!isTkmsError(e)) throw e;
    say(`  ✔ ${what} refused: [${e.code}] ${e.message}`);
  }
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'tkms-devnet-'));
  say('tkms: threshold KMS devnet on this machine (real processes on 127.0.0.1)');
  const started = Date.now();
  const devnet = await Devnet.start({ dir, n: 5, t: 3, gatewayPort: 0, logLevel: 'warn', onProgress: (l) => say(`  ${l}`) });
  let ok = false;
  try {
    say(`  gateway ${devnet.gatewayUrl}; nodes ${devnet.nodes.map((n) => n.httpUrl.replace('http://', '')).join(', ')}`);
    say(`  devnet ready in ${Date.now() - started} ms (logs under ${dir})`);
    say();

    // Clients pin the committee (member keys, t and id from the committee file), so the gateway cannot substitute a key.
    const pinned = await devnet.pinned();
    const client = (): TkmsClient => new TkmsClient({ gatewayUrl: devnet.gatewayUrl, account: generateAccount(), ...pinned });
    const [alice, bob, carol] = [client(), client(), client()];
    say(`accounts: alice ${short(alice.address)}, bob ${short(bob.address)}, carol ${short(carol.address)}`);

    const key = await alice.getKey(devnet.keyId);
    say(`key "${key.keyId}": ${key.t}-of-${key.n}, public key ${short(key.publicKeyHex)} (DKG signatures verified by the client against the pinned committee)`);

    const message = 'the launch code is 0000 — a secret for bob only';
    const info = await alice.encrypt(new TextEncoder().encode(message), { keyId: devnet.keyId });
    say(`1. alice encrypts ${JSON.stringify(message)}`);
    say(`   handle ${info.handle}`);

    await alice.grant(info.handle, bob.address, { validForSeconds: 3600 });
    say(`2. alice grants bob access`);

    const t0 = performance.now();
    const result = await bob.decrypt(info.handle);
    const ms = (performance.now() - t0).toFixed(0);
    say(`3. bob decrypts: ${JSON.stringify(new TextDecoder().decode(result.plaintext))}`);
    say(`   partials from nodes ${result.usedNodeIds.join(', ')}, each DLEQ proof verified, combined on bob's side (${ms} ms)`);

    say('4. carol has no grant:');
    await refused('carol\'s decrypt', () => carol.decrypt(info.handle));

    const revoked = await alice.revoke(info.handle, bob.address);
    say(`5. alice revokes bob: acknowledged by nodes ${revoked.acknowledgedBy.join(', ')} (${revoked.effective ? 'effective' : 'not yet effective'})`);
    await refused('bob\'s decrypt after the revocation', () => bob.decrypt(info.handle));

    const local = await alice.encryptLocally(new TextEncoder().encode('encrypted in the client; the gateway never saw it'), { keyId: devnet.keyId });
    const back = await alice.decrypt(local.handle);
    say(`6. alice encrypts locally and decrypts her own handle: ${JSON.stringify(new TextDecoder().decode(back.plaintext))}`);
    say();
    say('round trip complete. To keep a network running: npx tkms devnet   (then: npx tkms --help)');
    ok = true;
  } finally {
    await devnet.stop();
    // Keep the logs of a failed run for the person who has to find out why.
    if (ok) await rm(dir, { recursive: true, force: true });
    else process.stderr.write(`logs kept in ${dir}\n`);
  }
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    process.stderr.write(`npm start failed: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
