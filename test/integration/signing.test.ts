import assert from 'node:assert/strict';
import { schnorr } from '@noble/curves/secp256k1.js';
import { generateAccount, TkmsClient } from '../../client/index.ts';
import { decodeHex } from '../../core/index.ts';
import { Devnet } from '../../deploy/devnet.ts';
import { makeTempDir, removeDir, waitFor } from '../support/processes.ts';

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('integration: threshold signing (devnet: 5 nodes, t = 3, gateway, client)', function () {
  this.timeout(240_000);
  let dir: string;
  let devnet: Devnet;
  let alice: TkmsClient;

  before(async () => {
    dir = await makeTempDir('tkms-signing');
    devnet = await Devnet.start({ dir, n: 5, t: 3, gatewayPort: 0, logLevel: 'info', keys: { creators: 'open', allowShortDeletionWindow: true } });
    const pinned = await devnet.pinned();
    alice = new TkmsClient({ gatewayUrl: devnet.gatewayUrl, account: generateAccount(), ...pinned });
  });

  after(async () => {
    await devnet?.stop();
    await removeDir(dir);
  });

  async function ready(keyId: string): Promise<void> {
    await waitFor(`${keyId} published`, async () => ((await alice.keys.describe(keyId)).versions[0]?.publicKey === undefined ? undefined : true), { timeoutMs: 60_000 });
  }

  it('signs a raw message with a 3-of-5 BIP340 key; noble schnorr.verify accepts it', async () => {
    await alice.keys.create({ keyId: 'btc', spec: 'ECC_SECG_P256K1', usage: 'SIGN_VERIFY', policy: { sign: { raw: true } } });
    await ready('btc');
    const message = text('hello taproot');
    const result = await alice.sign('btc', { data: message });
    assert.equal(result.algorithm, 'BIP340_SCHNORR_TAPROOT');
    assert.equal(result.signers.length, 3);
    assert.equal(schnorr.verify(decodeHex(result.signatures[0]!), message, decodeHex(result.publicKey)), true);
  });
});
