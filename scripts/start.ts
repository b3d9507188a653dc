import '../core/polyfills.ts';
import { createPublicKey, verify } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPublicClient, http, type Hex } from 'viem';
import { grantOnChain, revokeOnChain, type AclWriterTarget } from '../chain/acl-writer.ts';
import { generateAccount, TkmsClient, type Account } from '../client/index.ts';
import { encodeHex, isTkmsError, type TkmsError } from '../core/index.ts';
import type { DevnetChainEndpoint } from '../deploy/devnet-chain.ts';
import { Devnet } from '../deploy/devnet.ts';

/**
 * `npm start`: a local devnet (5 node processes, t = 3, and a gateway, on loopback, in a
 * fresh temporary directory), a DKG, and one visible round trip through the real network:
 * alice encrypts, grants bob, bob decrypts, carol is refused, alice revokes, bob is refused.
 * Then the same through the on-chain ACL (Anvil and the TkmsAcl contract, acl.mode "either"):
 * alice grants dave in a transaction, dave decrypts, alice revokes in a transaction, and dave is
 * refused from the block the gateway names once that block is past the revocation's.
 * Then a managed key: alice creates one (the committee runs its DKG), names it, encrypts to the
 * name, disables it (every node refuses), enables it again and decrypts.
 * Then everything stops. `npx tkms devnet --chain` keeps a network running instead.
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

/** Between two decrypt attempts while waiting for a block: a block comes every second, so ten tries a second are plenty. */
const pause = (): Promise<void> => new Promise((r) => setTimeout(r, 100));

/** Retries while `attempt` is refused with `code`: the chain has not reached the block that changes the answer yet. */
async function untilNot<T>(code: string, timeoutMs: number, attempt: () => Promise<T>): Promise<{ value: T; attempts: number }> {
  const deadline = Date.now() + timeoutMs;
  for (let attempts = 1; ; attempts++) {
    try {
      return { value: await attempt(), attempts };
    } catch (e) {
      if (!isTkmsError(e) || e.code !== code || Date.now() > deadline) throw e;
      await pause();
    }
  }
}

/** Steps 7–10: an on-chain grant, a decrypt, an on-chain revocation and the refusal that follows. */
async function onChainRoundTrip(devnet: Devnet, chain: DevnetChainEndpoint, client: (account: Account) => TkmsClient, aliceAccount: Account): Promise<void> {
  // The same alice as in steps 1–6: one owner, her signed grants and her on-chain ones.
  const alice = client(aliceAccount);
  const dave = client(generateAccount());
  const head = createPublicClient({ transport: http(chain.rpcUrl) });
  const target: AclWriterTarget = { rpcUrl: chain.rpcUrl, contract: chain.contract, chainId: chain.chainId, privateKey: encodeHex(aliceAccount.secretKey) as Hex };
  say(`on-chain ACL: TkmsAcl ${chain.contract} on chain ${chain.chainId} (${chain.rpcUrl}, a block a second); nodes and gateway in acl.mode "either"`);
  await devnet.fund(alice.address, '1');
  say(`   alice ${short(alice.address)} gets 1 ETH of gas money (tkms devnet fund); dave ${short(dave.address)} has no grant of any kind`);

  const message = 'granted on chain, decrypted by dave';
  const info = await alice.encrypt(new TextEncoder().encode(message), { keyId: devnet.keyId });
  say(`7. alice encrypts ${JSON.stringify(message)}: handle ${short(info.handle)}`);

  const granted = await grantOnChain(target, { handle: info.handle, grantee: dave.address, notAfter: Math.floor(Date.now() / 1000) + 3600 });
  say(`8. alice grants dave on chain: transaction ${short(granted.txHash)} in block ${granted.blockNumber}`);

  // The gateway names block head − 1 (one confirmation): dave is refused until one block is mined on top.
  const t0 = performance.now();
  const decrypted = await untilNot('unauthorized', 10_000, () => dave.decrypt(info.handle));
  say(`9. dave decrypts: ${JSON.stringify(new TextDecoder().decode(decrypted.value.plaintext))}`);
  say(`   nodes ${decrypted.value.usedNodeIds.join(', ')} each checked isGranted at the block the gateway named; ${(performance.now() - t0).toFixed(0)} ms after the grant's receipt (${decrypted.attempts} attempt${decrypted.attempts === 1 ? '' : 's'}: the grant needs one confirmation)`);

  const revoked = await revokeOnChain(target, { handle: info.handle, grantee: dave.address });
  const revokedAt = performance.now();
  say(`10. alice revokes dave on chain: transaction ${short(revoked.txHash)} in block ${revoked.blockNumber}`);
  let servedAfter = 0;
  let refusal: TkmsError | undefined;
  while (refusal === undefined) {
    try {
      await dave.decrypt(info.handle);
      // Still the grant's answer: the nodes have not read the revocation's block yet (heads are polled).
      servedAfter++;
      if (performance.now() - revokedAt > 15_000) throw new Error('dave still decrypts 15 s after the revocation');
      await pause();
    } catch (e) {
      // A definite "no"; anything else (unavailable, a bug) must not pass for a revocation at work.
      if (!isTkmsError(e) || (e.code !== 'unauthorized' && e.code !== 'revoked')) throw e;
      refusal = e;
    }
  }
  const ms = (performance.now() - revokedAt).toFixed(0);
  const blocks = Number(await head.getBlockNumber()) - revoked.blockNumber;
  say(`   ✔ dave's decrypt refused: [${refusal.code}] ${refusal.message}`);
  say(`     ${ms} ms after the revocation's receipt, with the chain head ${blocks} block${blocks === 1 ? '' : 's'} past the revocation's block ${revoked.blockNumber}${servedAfter > 0 ? ` (${servedAfter} decrypt${servedAfter === 1 ? ' was' : 's were'} still served before the nodes read its block)` : ''}`);
}

/** Steps 11–16: a managed key's lifecycle, every change signed by its admin and enforced by every node. */
async function managedKeyRoundTrip(alice: TkmsClient): Promise<void> {
  say('managed keys: alice creates a key of her own, names it, switches it off and on with signed changes; every node enforces them');
  const t0 = performance.now();
  const created = await alice.keys.create({ keyId: 'launch-codes', description: 'the demo\'s managed key', tags: { team: 'ops' } });
  say(`11. alice creates key "launch-codes" (a DKG key; she is its only admin): applied by nodes ${created.acknowledgedBy.join(', ')}`);
  const deadline = Date.now() + 60_000;
  let publicKey: string | undefined;
  while ((publicKey = (await alice.keys.describe('launch-codes')).versions[0]?.publicKey) === undefined) {
    if (Date.now() > deadline) throw new Error('the DKG of launch-codes did not finish in 60 s');
    await pause();
  }
  say(`    the committee ran its DKG: public key ${short(publicKey)}, ${(performance.now() - t0).toFixed(0)} ms after the create was sent`);
  await alice.keys.createAlias('launch-codes', 'alias/launch');
  say('12. alice names it alias/launch');
  const message = 'encrypted to a managed key';
  const info = await alice.encrypt(new TextEncoder().encode(message), { keyId: 'alias/launch' });
  say(`13. alice encrypts to alias/launch: handle ${short(info.handle)} (key ${info.keyId})`);
  const disabled = await alice.keys.disable('launch-codes');
  say(`14. alice disables the key: applied by nodes ${disabled.acknowledgedBy.join(', ')} (${disabled.effective ? 'effective: fewer than t nodes could still serve it' : 'not yet effective'})`);
  await refused('alice\'s own decrypt of the disabled key', () => alice.decrypt(info.handle));
  await alice.keys.enable('launch-codes');
  say('15. alice enables it again');
  const back = await alice.decrypt(info.handle);
  say(`16. alice decrypts: ${JSON.stringify(new TextDecoder().decode(back.plaintext))}`);
}

/** Steps 17–19: a 3-of-5 Ed25519 signing key that signs only release notes, checked by every node. */
async function signingRoundTrip(alice: TkmsClient): Promise<void> {
  say('threshold signing: alice creates an Ed25519 key that may sign only messages starting "release:"; 3 of 5 nodes sign with FROST, none holds the key');
  const prefix = `0x${Buffer.from('release:').toString('hex')}`;
  await alice.keys.create({ keyId: 'release-signer', spec: 'ECC_NIST_EDWARDS25519', usage: 'SIGN_VERIFY', policy: { sign: { prefixes: [prefix] } } });
  const deadline = Date.now() + 60_000;
  let signing: { publicKey: string; spki: string } | undefined;
  while ((signing = (await alice.keys.describe('release-signer')).versions[0]?.signing) === undefined) {
    if (Date.now() > deadline) throw new Error('the DKG of release-signer did not finish in 60 s');
    await pause();
  }
  say(`17. alice creates signing key "release-signer" (Ed25519, 3-of-5): public key ${short(signing.publicKey)}`);
  const note = new TextEncoder().encode('release: tkms 0.1.0, sha256 of the tarball 9f86d081884c7d65…');
  const t0 = performance.now();
  const signed = await alice.sign('release-signer', { data: note });
  const ms = (performance.now() - t0).toFixed(0);
  const spki = createPublicKey({ key: Buffer.from(signing.spki.slice(2), 'hex'), format: 'der', type: 'spki' });
  const valid = verify(null, note, spki, Buffer.from(signed.signatures[0]!.slice(2), 'hex'));
  if (!valid) throw new Error('node:crypto does not verify the Ed25519 signature');
  say(`18. alice signs a release note: nodes ${signed.signers.join(', ')} signed (${ms} ms); node:crypto verifies it under the key's DER SPKI: ${valid}`);
  say('19. a message the key\'s policy does not allow:');
  await refused('signing "transfer all funds"', () => alice.sign('release-signer', { data: new TextEncoder().encode('transfer all funds') }));
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'tkms-devnet-'));
  say('tkms: threshold KMS devnet on this machine (real processes on 127.0.0.1)');
  const started = Date.now();
  const devnet = await Devnet.start({ dir, n: 5, t: 3, gatewayPort: 0, logLevel: 'warn', chain: true, onProgress: (l) => say(`  ${l}`) });
  let ok = false;
  try {
    say(`  gateway ${devnet.gatewayUrl}; nodes ${devnet.nodes.map((n) => n.httpUrl.replace('http://', '')).join(', ')}`);
    say(`  devnet ready in ${Date.now() - started} ms (logs under ${dir})`);
    say();

    // Clients pin the committee (member keys, t and id from the committee file), so the gateway cannot substitute a key.
    const pinned = await devnet.pinned();
    const client = (account: Account = generateAccount()): TkmsClient => new TkmsClient({ gatewayUrl: devnet.gatewayUrl, account, ...pinned });
    const aliceAccount = generateAccount();
    const [alice, bob, carol] = [client(aliceAccount), client(), client()];
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
    await onChainRoundTrip(devnet, devnet.chain!, client, aliceAccount);
    say();
    await managedKeyRoundTrip(alice);
    say();
    await signingRoundTrip(alice);
    say();
    say('round trip complete. To keep a network running: npx tkms devnet --chain   (then: npx tkms --help)');
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
