import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { schnorr } from '@noble/curves/secp256k1.js';
import { p2tr } from '@scure/btc-signer/payment.js';
import { generateAccount } from '../../client/account.ts';
import { writeAccountFile } from '../../client/account-file.ts';
import { decodeHex, encodeHex } from '../../core/index.ts';
import { Devnet } from '../../deploy/devnet.ts';
import { runTkmsCli } from '../../scripts/cli/program.ts';
import { captureCli } from '../deploy/cli-capture.ts';
import { makeTempDir, removeDir, waitFor } from '../support/processes.ts';

/**
 * `tkms key create --spec … --usage SIGN_VERIFY` and `tkms sign` against a devnet: the signature the
 * command prints verifies with noble's BIP340 verifier under the Taproot output key of the key's
 * published group key (computed here with @scure/btc-signer, not taken from the command).
 */
describe('integration: tkms sign (devnet: 3 nodes, t = 2)', function () {
  this.timeout(180_000);
  let dir: string;
  let devnet: Devnet;
  let common: string[];
  const tkms = (...argv: string[]) => captureCli(() => runTkmsCli(argv));

  before(async () => {
    dir = await makeTempDir('tkms-sign-cli');
    devnet = await Devnet.start({ dir: join(dir, 'devnet'), n: 3, t: 2, gatewayPort: 0, keys: { creators: 'open' } });
    await writeFile(join(dir, 'pw'), 'sign-cli\n');
    await writeAccountFile(join(dir, 'alice.json'), generateAccount(), 'sign-cli', { n: 1024, r: 8, p: 1 });
    common = ['--account', join(dir, 'alice.json'), '--password-file', join(dir, 'pw'), '--gateway', devnet.gatewayUrl, '--committee', join(dir, 'devnet', 'committee.json')];
  });

  after(async () => {
    await devnet?.stop();
    await removeDir(dir);
  });

  it('creates a BIP340 signing key and signs a file and a text with it; the signatures verify under its Taproot key', async () => {
    await writeFile(join(dir, 'policy.json'), JSON.stringify({ sign: { raw: true } }));
    const created = await tkms('key', 'create', ...common, '--key-id', 'btc', '--alias', 'alias/btc', '--spec', 'ECC_SECG_P256K1', '--usage', 'SIGN_VERIFY', '--policy-file', join(dir, 'policy.json'));
    assert.equal(created.code, 0, created.stderr);
    const groupKey = await waitFor(
      'btc published',
      async () => {
        const r = await tkms('key', 'describe', 'btc', '--gateway', devnet.gatewayUrl, '--json');
        const view = JSON.parse(r.stdout) as { spec: string; usage: string; versions: { publicKey?: string }[] };
        assert.deepEqual([view.spec, view.usage], ['ECC_SECG_P256K1', 'SIGN_VERIFY']);
        return view.versions[0]?.publicKey;
      },
      { timeoutMs: 60_000 },
    );
    // BIP341 key path, empty merkle root: what a P2TR output of the group key commits to.
    const outputKey = encodeHex(p2tr(decodeHex(groupKey).subarray(1)).tweakedPubkey);

    // Bytes that are not text: the file is signed as it is.
    const message = Uint8Array.from([0x00, 0xff, 0x0a, ...randomBytes(200)]);
    await writeFile(join(dir, 'message.bin'), message);
    const text = await tkms('sign', ...common, '--key', 'alias/btc', '--message-file', join(dir, 'message.bin'));
    assert.equal(text.code, 0, text.stderr);
    const line = (name: string): string => new RegExp(`^${name} +(.+)$`, 'm').exec(text.stdout)?.[1] ?? assert.fail(`no "${name}" line in:\n${text.stdout}`);
    assert.equal(line('key'), 'btc, version 1');
    assert.equal(line('algorithm'), 'BIP340_SCHNORR_TAPROOT');
    assert.equal(line('public key'), outputKey);
    assert.match(line('signers'), /^members \d, \d$/);
    assert.doesNotMatch(text.stdout, /^blamed/m);
    assert.equal(schnorr.verify(decodeHex(line('signature')), message, decodeHex(outputKey)), true);

    const out = join(dir, 'sig.hex');
    const json = await tkms('sign', ...common, '--key', 'btc', '--message', 'hello taproot', '--json', '--out', out);
    assert.equal(json.code, 0, json.stderr);
    const result = JSON.parse(json.stdout) as { keyId: string; publicKey: string; signatures: string[]; blamed: number[] };
    assert.deepEqual([result.keyId, result.publicKey, result.signatures.length, result.blamed], ['btc', outputKey, 1, []]);
    const signature = decodeHex(result.signatures[0]!);
    assert.equal(schnorr.verify(signature, new TextEncoder().encode('hello taproot'), decodeHex(outputKey)), true);
    assert.equal(schnorr.verify(signature, message, decodeHex(outputKey)), false);
    assert.equal(await readFile(out, 'utf8'), `${result.signatures[0]!.slice(2)}\n`);
  });
});
