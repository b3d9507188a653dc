import assert from 'node:assert/strict';
import { testGateway } from '../support/gateway-pool.ts';
import { createPublicKey, verify } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { schnorr } from '@noble/curves/secp256k1.js';
import { p2tr } from '@scure/btc-signer/payment.js';
import { Transaction } from '@scure/btc-signer/transaction.js';
import { TEST_NETWORK } from '@scure/btc-signer/utils.js';
import { generateAccount, TkmsClient, type Account, type CreateKeyOptions } from '../../client/index.ts';
import { decodeBase64, decodeHex } from '../../core/index.ts';
import { parseCommitteeJson } from '../../core/committee.ts';
import { keyPathSighashes, parsePsbt } from '../../core/signing/psbt.ts';
import { Devnet } from '../../deploy/devnet.ts';
import { getJson } from '../../deploy/devnet-loopback.ts';
import { postJson } from '../support/reshare.ts';
import { waitForEpoch } from '../../deploy/reshare-driver.ts';
import { NodePool } from '../../gateway/node-pool.ts';
import { makeTempDir, removeDir, waitFor } from '../support/processes.ts';
import { expectRefusal } from '../support/refusal.ts';
import { askShares, refusalCode, sessionOf, signRequestFor } from '../support/sign-direct.ts';
import { P2pClient } from '../support/p2p-client.ts';
import { encodeSignFrameRequest, SIGN_PROTOCOL } from '../../core/signing/sign-wire.ts';
import { buildPsbt, HOT, STRANGER } from '../support/psbt-fixtures.ts';

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const MEMBERS = [1, 2, 3, 4, 5];
const PREFIX = '0x746b6d733a'; // "tkms:"

/**
 * Threshold signing on a real devnet (5 node processes, t = 3, a gateway): the client signs through
 * the gateway and checks the signature itself; the policy tests speak to every member directly as a
 * gateway would, so each member's own refusal is what is asserted, not the gateway's.
 */
describe('integration: threshold signing (devnet: 5 nodes, t = 3, gateway, client)', function () {
  this.timeout(300_000);
  let dir: string;
  let devnet: Devnet;
  let pool: NodePool;
  let alice: Account;
  let bob: Account;
  let client: TkmsClient;

  before(async () => {
    dir = await makeTempDir('tkms-signing');
    const gateway = await testGateway();
    devnet = await Devnet.start({ dir, n: 5, t: 3, gatewayPort: 0, logLevel: 'info', keys: { creators: 'open' }, extraGatewayPeerIds: [gateway.peerId] });
    pool = await gateway.connect(devnet);
    [alice, bob] = [generateAccount(), generateAccount()];
    client = new TkmsClient({ gatewayUrl: devnet.gatewayUrl, account: alice, ...(await devnet.pinned()) });
  });

  after(async () => {
    await pool?.stop().catch(() => undefined);
    await devnet?.stop();
    await removeDir(dir);
  });

  async function created(keyId: string, options: Omit<CreateKeyOptions, 'keyId'>): Promise<void> {
    await client.keys.create({ ...options, keyId });
    await waitFor(`${keyId} published`, async () => ((await client.keys.describe(keyId)).versions[0]?.publicKey === undefined ? undefined : true), { timeoutMs: 60_000 });
  }

  /** Every member's answer to `message` under a request `by` signs, each in a session of itself and two others. */
  async function everyMember(keyId: string, message: Parameters<typeof signRequestFor>[2], by: Account = alice): Promise<(string | undefined)[]> {
    const request = signRequestFor(by, keyId, message, devnet.deployment);
    return Promise.all(
      MEMBERS.map(async (id) => {
        const others = MEMBERS.filter((m) => m !== id).slice(0, 2);
        const signers = await sessionOf(pool, [id, ...others], keyId, 1);
        return refusalCode(await askShares(pool, id, request, message, signers));
      }),
    );
  }

  it('signs a raw message with a 3-of-5 BIP340 key, and noble schnorr.verify (not the FROST code path) accepts it', async () => {
    await created('btc', { spec: 'ECC_SECG_P256K1', usage: 'SIGN_VERIFY', policy: { sign: { raw: true } } });
    const view = await client.keys.describe('btc');
    const message = text('hello taproot');
    const result = await client.sign('btc', { data: message });
    assert.equal(result.algorithm, 'BIP340_SCHNORR_TAPROOT');
    assert.equal(result.signers.length, 3);
    assert.deepEqual(result.blamed, []);
    assert.equal(schnorr.verify(decodeHex(result.signatures[0]!), message, decodeHex(result.publicKey)), true);
    // The key view gives the same key raw, as DER SPKI and the Taproot internal key; the output key is what a P2TR address commits to.
    const signing = view.versions[0]!.signing!;
    assert.equal(signing.publicKey, result.publicKey);
    assert.equal(signing.spki.startsWith('0x3056301006072a8648ce3d020106052b8104000a034200'), true);
    assert.equal(`0x${Buffer.from(p2tr(decodeHex(signing.taprootInternalKey!)).tweakedPubkey).toString('hex')}`, result.publicKey);
  });

  it('signs with a 3-of-5 Ed25519 key; node:crypto verifies it under the DER SPKI the key view gives', async () => {
    await created('ed', { spec: 'ECC_NIST_EDWARDS25519', policy: { sign: { raw: true } } });
    const view = await client.keys.describe('ed');
    assert.equal(view.usage, 'SIGN_VERIFY');
    for (const message of [text('hello ed25519'), new Uint8Array(0x1000).fill(7)]) {
      const result = await client.sign('ed', { data: message });
      assert.equal(result.algorithm, 'ED25519_SHA_512');
      const spki = createPublicKey({ key: Buffer.from(decodeHex(view.versions[0]!.signing!.spki)), format: 'der', type: 'spki' });
      assert.equal(verify(null, message, spki, decodeHex(result.signatures[0]!)), true);
      assert.equal(view.versions[0]!.signing!.publicKey, result.publicKey);
    }
    await expectRefusal(client.sign('ed', { psbt: buildPsbt([{ amount: 1000n }], [{ script: HOT.script, amount: 900n }]) }), 'key_usage_mismatch');
  });

  it('an encryption key does not sign, and a signing key does not encrypt', async () => {
    await expectRefusal(client.sign(devnet.keyId, { data: text('x') }), 'key_usage_mismatch');
    await expectRefusal(client.encrypt(text('x'), { keyId: 'btc' }), 'key_usage_mismatch');
    await expectRefusal(client.encryptLocally(text('x'), { keyId: 'ed' }), 'key_usage_mismatch');
  });

  it('every policy rule refuses at every member when asked directly, naming the rule', async () => {
    // A window that is never open today.
    const today = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'][new Date().getUTCDay()]!;
    const otherDays = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'].filter((d) => d !== today);
    // The keys' DKGs run together.
    await Promise.all([
      created('warm', {
        spec: 'ECC_SECG_P256K1',
        usage: 'SIGN_VERIFY',
        admins: [alice.address],
        policy: { allowedRequesters: [alice.address], sign: { prefixes: [PREFIX], psbt: { network: 'testnet', allowedAddresses: [HOT.address!], dailyValueCapSats: '100000' } } },
      }),
      created('psbt-only', { spec: 'ECC_SECG_P256K1', usage: 'SIGN_VERIFY', policy: { sign: { psbt: { network: 'testnet', allowedAddresses: [HOT.address!], dailyValueCapSats: '1' } } } }),
      // A policy for decryption only.
      created('no-sign', { spec: 'ECC_SECG_P256K1', usage: 'SIGN_VERIFY', policy: { operations: ['decrypt'], sign: { raw: true } } }),
      created('closed', { spec: 'ECC_SECG_P256K1', usage: 'SIGN_VERIFY', policy: { timeWindows: [{ days: otherDays, startMinute: 0, endMinute: 1440 }], sign: { raw: true } } }),
      // One signature a day per requester.
      created('daily', { spec: 'ECC_SECG_P256K1', usage: 'SIGN_VERIFY', policy: { dailyLimitPerRequester: 1, sign: { raw: true } } }),
    ]);
    const all = (code: string | undefined) => MEMBERS.map(() => code);
    // Prefixed messages sign; others do not.
    assert.deepEqual(await everyMember('warm', { kind: 'raw', data: text('tkms:transfer 1') }), all(undefined));
    assert.deepEqual(await everyMember('warm', { kind: 'raw', data: text('anything else') }), all('policy_prefix_denied'));
    // Only the allowed requester, even with a valid signature of its own.
    assert.deepEqual(await everyMember('warm', { kind: 'raw', data: text('tkms:transfer 2') }, bob), all('policy_requester_denied'));
    // A raw-only key takes no PSBT; a key without sign.raw or prefixes takes no raw message.
    const btcInternal = decodeHex((await client.keys.describe('btc')).versions[0]!.signing!.taprootInternalKey!);
    const btcOut = p2tr(btcInternal, undefined, TEST_NETWORK);
    assert.deepEqual(await everyMember('btc', { kind: 'psbt', psbt: buildPsbt([{ amount: 50_000n, script: btcOut.script }], [{ script: HOT.script, amount: 40_000n }]) }), all('policy_message_kind_denied'));
    assert.deepEqual(await everyMember('psbt-only', { kind: 'raw', data: text('tkms:x') }), all('policy_raw_denied'));
    // A policy for decryption only.
    assert.deepEqual(await everyMember('no-sign', { kind: 'raw', data: text('x') }), all('policy_operation_denied'));
    // Outside its window.
    assert.deepEqual(await everyMember('closed', { kind: 'raw', data: text('x') }), all('policy_outside_window'));
    // One signature a day per requester: the second request is refused by every member.
    assert.deepEqual(await everyMember('daily', { kind: 'raw', data: text('first') }), all(undefined));
    assert.deepEqual(await everyMember('daily', { kind: 'raw', data: text('second') }), all('policy_daily_limit'));
  });

  it('a PSBT paying a non-allowed address, or over the daily cap, is refused by every member; a compliant one is signed and finalises into a valid Taproot transaction', async () => {
    const internal = decodeHex((await client.keys.describe('warm')).versions[0]!.signing!.taprootInternalKey!);
    const own = p2tr(internal, undefined, TEST_NETWORK);
    const stranger = buildPsbt([{ amount: 50_000n, script: own.script }], [{ script: STRANGER.script, amount: 10_000n }, { script: own.script, amount: 39_000n }]);
    assert.deepEqual(await everyMember('warm', { kind: 'psbt', psbt: stranger }), MEMBERS.map(() => 'policy_output_denied'));
    const overCap = buildPsbt([{ amount: 500_000n, script: own.script }], [{ script: HOT.script, amount: 100_001n }, { script: own.script, amount: 399_000n }]);
    assert.deepEqual(await everyMember('warm', { kind: 'psbt', psbt: overCap }), MEMBERS.map(() => 'policy_value_cap'));
    await expectRefusal(client.sign('warm', { psbt: overCap }), 'policy_value_cap');

    // Two inputs of the key, change back to it: 60,000 sats to the hot wallet, within the cap.
    const compliant = buildPsbt(
      [{ amount: 50_000n, script: own.script }, { amount: 30_000n, script: own.script }],
      [{ script: HOT.script, amount: 60_000n }, { script: own.script, amount: 19_000n }],
    );
    const result = await client.sign('warm', { psbt: compliant });
    assert.deepEqual(result.inputs, [0, 1]);
    const tx = Transaction.fromRaw(decodeHex(result.transaction!), { allowUnknownOutputs: true });
    assert.equal(tx.inputsLength, 2);
    // Each input's witness is one 64-byte key-path signature that verifies (BIP340, noble) under the output key for its BIP341 sighash.
    const sighashes = keyPathSighashes(parsePsbt(compliant, 'testnet'), [0, 1]);
    for (const i of [0, 1]) {
      const witness = tx.getInput(i).finalScriptWitness!;
      assert.equal(witness.length, 1);
      assert.equal(schnorr.verify(witness[0]!, sighashes[i]!, own.tweakedPubkey), true);
    }
    assert.equal(decodeBase64(result.psbt!).length > 0, true);
    // The same transaction again counts once; a second one of 60,000 passes the cap (100,000) and is refused.
    await client.sign('warm', { psbt: compliant });
    const more = buildPsbt([{ amount: 70_000n, script: own.script }], [{ script: HOT.script, amount: 60_000n }, { script: own.script, amount: 9_000n }]);
    await expectRefusal(client.sign('warm', { psbt: more }), 'policy_value_cap');
  });

  it('a gateway that alters the message between members gets no share for the altered one', async () => {
    const genuine = { kind: 'raw' as const, data: text('tkms:pay 10 to carol') };
    const altered = { kind: 'raw' as const, data: text('tkms:pay 10 to mallory') };
    const request = signRequestFor(alice, 'warm', genuine, devnet.deployment);
    const signers = await sessionOf(pool, [1, 2, 3], 'warm');
    const replies = await Promise.all([
      askShares(pool, 1, request, genuine, signers),
      askShares(pool, 2, request, genuine, signers),
      askShares(pool, 3, request, altered, signers),
    ]);
    assert.deepEqual(replies.map(refusalCode), [undefined, undefined, 'unauthorized']);
    // Re-signing the hash itself breaks the requester's signature: refused too.
    const forged = { ...request, messageHash: signRequestFor(alice, 'warm', altered, devnet.deployment).messageHash };
    const again = await sessionOf(pool, [1, 2, 3], 'warm');
    const forgedReplies = await Promise.all([1, 2, 3].map((id) => askShares(pool, id, forged, altered, again)));
    assert.deepEqual(forgedReplies.map(refusalCode), ['unauthorized', 'unauthorized', 'unauthorized']);
  });

  it('only the gateways a member lists may open /tkms/sign/1: an outsider\'s stream is reset before a frame is read', async () => {
    const committee = parseCommitteeJson(await readFile(join(devnet.dir, 'committee.json'), 'utf8'));
    const outsider = await P2pClient.start(committee);
    try {
      for (const id of MEMBERS) await assert.rejects(outsider.request(id, SIGN_PROTOCOL, encodeSignFrameRequest({ type: 'commit', keyId: 'btc', count: 1 })));
    } finally {
      await outsider.stop();
    }
  });

  it('signs with n − t members down, and with n − t + 1 down answers a clear shortfall', async () => {
    await devnet.killNode(4);
    await devnet.killNode(5);
    const ok = await client.sign('btc', { data: text('two members down') });
    assert.deepEqual([...ok.signers].sort(), [1, 2, 3]);
    await devnet.killNode(3);
    const refusal = await expectRefusal(client.sign('btc', { data: text('three members down') }), 'insufficient_signers');
    assert.match(refusal.message, /3 are needed/);
    for (const id of [3, 4, 5]) await devnet.startNode(id);
    await devnet.waitNodesHealthy([3, 4, 5]);
  });

  it('a refresh gives every member new shares of both signing keys; signatures after it verify under the same keys', async () => {
    const before = { ed: await client.keys.describe('ed'), btc: await client.keys.describe('btc') };
    const sharesBefore = { ed: (await client.getKey('ed')).verificationShares, btc: (await client.getKey('btc')).verificationShares };
    const refresh = await postJson(`${devnet.node(1).adminUrl}/admin/refresh`, {});
    assert.equal(refresh.status, 202, JSON.stringify(refresh.json));
    await waitForEpoch(MEMBERS.map((id) => devnet.node(id)), 1, { proposalId: refresh.json.proposalId, timeoutMs: 120_000 });
    await waitFor('the gateway to serve epoch 1', async () => ((await getJson(`${devnet.gatewayUrl}/v1/committee`)).json.epoch === 1 ? true : undefined), { timeoutMs: 60_000 });
    // A client that starts now verifies the keys at epoch 1, through the handover certificate.
    const later = new TkmsClient({ gatewayUrl: devnet.gatewayUrl, account: alice, ...(await devnet.pinned()) });
    for (const keyId of ['ed', 'btc'] as const) {
      const after = await client.keys.describe(keyId);
      const [was, now] = [before[keyId].versions[0]!, after.versions[0]!];
      assert.equal(now.signing!.publicKey, was.signing!.publicKey);
      const verified = await later.getKey(keyId);
      assert.equal(verified.epoch, 1);
      for (const id of MEMBERS) assert.notDeepEqual(verified.verificationShares.get(id), sharesBefore[keyId].get(id), `${keyId}: Y_${id} moved`);
      const message = text(`after the refresh, with ${keyId}`);
      const result = await later.sign(keyId, { data: message });
      assert.equal(result.publicKey, was.signing!.publicKey);
      if (keyId === 'ed') assert.equal(verify(null, message, createPublicKey({ key: Buffer.from(decodeHex(was.signing!.spki)), format: 'der', type: 'spki' }), decodeHex(result.signatures[0]!)), true);
      else assert.equal(schnorr.verify(decodeHex(result.signatures[0]!), message, decodeHex(was.signing!.publicKey)), true);
    }
  });
});
