import assert from 'node:assert/strict';
import { testGateway } from '../support/gateway-pool.ts';
import { generateAccount, TkmsClient, type Account, type VerifiedKey } from '../../client/index.ts';
import { recoverSharedSecret } from '../../client/partials.ts';
import {
  decodeHex,
  decryptWithSharedSecretX,
  encodeHex,
  generateRsaKeyPair,
  newRequestId,
  sealToHandle,
  signDelegation,
  type RsaKeyPair,
} from '../../core/index.ts';
import { deriveKeyTweak, derivedPublicKey } from '../../core/keys/derive.ts';
import { signDecryptApproval } from '../../core/keys/decrypt-approval.ts';
import { signKeyChange, ZERO_DIGEST, type KeyAction, type KeyChange } from '../../core/keys/key-change.ts';
import { decodeKeyChangeReply, encodeKeyChangeRequest, KEY_CHANGES_PROTOCOL } from '../../core/keys/key-wire.ts';
import { decodePoint } from '../../core/curve.ts';
import { Devnet } from '../../deploy/devnet.ts';
import { NodePool } from '../../gateway/node-pool.ts';
import { makeTempDir, removeDir, waitFor } from '../support/processes.ts';

/**
 * Managed keys at the nodes, on a real devnet (5 node processes, t = 3): admin-signed changes sent
 * straight to each node over /tkms/key-changes/1 (as a gateway, or a compromised one, would), and
 * partials asked of each node directly. Every node decides on its own.
 */
const nowS = (): number => Math.floor(Date.now() / 1000);

describe('integration: managed keys at every node (devnet: 5 nodes, t = 3)', function () {
  this.timeout(180_000);
  let dir: string;
  let devnet: Devnet;
  let pool: NodePool;
  let alice: Account;
  let mallory: Account;
  let rsa: RsaKeyPair;
  let root: VerifiedKey;
  const heads = new Map<string, { sequence: number; head: Uint8Array }>();
  let firstDisable: KeyChange;

  before(async () => {
    dir = await makeTempDir('tkms-managed-keys');
    const gateway = await testGateway();
    devnet = await Devnet.start({ dir, n: 5, t: 3, gatewayPort: 0, logLevel: 'info', extraGatewayPeerIds: [gateway.peerId] });
    pool = await gateway.connect(devnet);
    [alice, mallory] = [generateAccount(), generateAccount()];
    rsa = await generateRsaKeyPair();
    const client = new TkmsClient({ gatewayUrl: devnet.gatewayUrl, account: alice, ...(await devnet.pinned()) });
    root = await client.getKey(devnet.keyId);
  });

  after(async () => {
    await pool?.stop().catch(() => undefined);
    await devnet?.stop();
    await removeDir(dir);
  });

  function change(keyId: string, action: KeyAction, body: object, by: Account = alice, place?: { sequence: number; previous: Uint8Array }): KeyChange {
    const at = heads.get(keyId);
    return signKeyChange(
      by.secretKey,
      {
        keyId,
        sequence: place?.sequence ?? (at?.sequence ?? 0) + 1,
        previous: place?.previous ?? at?.head ?? ZERO_DIGEST,
        action,
        body: JSON.stringify(body),
        issuedAt: nowS(),
        admin: by.addressBytes,
      },
      devnet.deployment,
    );
  }

  /**
   * Sends a change to every node; returns each node's outcome ("applied", "known" or the refusal
   * code). Sent to all at once, a change often reaches a node first through another's flooding.
   */
  async function sendToEveryNode(c: KeyChange): Promise<Record<number, string>> {
    const out: Record<number, string> = {};
    await Promise.all(
      devnet.nodes.map(async (node) => {
        const reply = decodeKeyChangeReply(await pool.sendRaw(node.id, KEY_CHANGES_PROTOCOL, encodeKeyChangeRequest({ type: 'change', change: c }), 5_000));
        if (!reply.ok) out[node.id] = reply.code;
        else if (reply.type === 'applied') {
          out[node.id] = reply.known ? 'known' : 'applied';
          heads.set(c.keyId, { sequence: reply.sequence, head: reply.head });
        } else out[node.id] = reply.type;
      }),
    );
    return out;
  }

  /** Each node's answer to a partial request for a handle of `keyId` made to `publicKey`. */
  async function encryptAndAsk(keyId: string, publicKey: Uint8Array, tweak: bigint | undefined, approvers: Account[] = []): Promise<{ outcomes: Record<number, string>; plaintext?: string }> {
    const sealed = await sealToHandle({ publicKey: decodePoint(publicKey), keyId, owner: alice.addressBytes, plaintext: new TextEncoder().encode(`secret of ${keyId}`) });
    const descriptor = { keyId, K: sealed.K, nonce: sealed.nonce, ciphertextHash: sealed.ciphertextHash, owner: alice.addressBytes, kProof: sealed.kProof };
    const requestId = newRequestId();
    const delegation = signDelegation(
      alice.secretKey,
      { handle: sealed.handle, keyId, requester: alice.addressBytes, rsaSpki: decodeHex(rsa.publicKey.spkiHex), notBefore: nowS(), notAfter: nowS() + 300, requestId },
      devnet.deployment,
    );
    const approvals = approvers.map((a) =>
      signDecryptApproval(a.secretKey, { keyId, handle: sealed.handle, requester: alice.addressBytes, approver: a.addressBytes, notBefore: nowS(), notAfter: nowS() + 300 }, devnet.deployment),
    );
    const outcomes: Record<number, string> = {};
    const partials: { nodeId: number; wrapped: Uint8Array; proof: Uint8Array }[] = [];
    await Promise.all(
      devnet.nodes.map(async (node) => {
        const reply = await pool.askNode(node.id, { delegation, descriptor, grant: undefined, ...(approvals.length > 0 ? { approvals } : {}) }, 5_000);
        outcomes[node.id] = reply.ok ? 'ok' : reply.code;
        if (reply.ok) partials.push({ nodeId: reply.nodeId, wrapped: reply.wrapped, proof: reply.proof });
      }),
    );
    if (partials.length < root.t) return { outcomes };
    const secret = await recoverSharedSecret({
      keyId,
      requestId,
      K: sealed.K,
      t: root.t,
      verificationShares: root.verificationShares,
      partials,
      rsaPrivateKey: rsa.privateKey,
      ...(tweak === undefined ? {} : { tweak }),
    });
    const plaintext = await decryptWithSharedSecretX(secret.sharedSecretX, sealed.nonce, sealed.ciphertext);
    return { outcomes, plaintext: new TextDecoder().decode(plaintext) };
  }

  const all = (code: string): Record<number, string> => ({ 1: code, 2: code, 3: code, 4: code, 5: code });
  /** Every node holds the change: it applied it on this request, or already had it from a peer. */
  const held = (outcomes: Record<number, string>): Record<number, string> => Object.fromEntries(Object.entries(outcomes).map(([id, o]) => [id, o === 'known' ? 'applied' : o]));

  it('a derived key is created by one signed change, decrypts with the root shares plus its tweak, and is refused by every node while Disabled', async () => {
    const created = await sendToEveryNode(change('wallet-1', 'create', { origin: { type: 'derived', root: devnet.keyId, path: 'users/1' }, admins: [alice.address], description: 'a user wallet' }));
    assert.deepEqual(held(created), all('applied'));
    const tweak = deriveKeyTweak(decodeHex(root.publicKeyHex), 'users/1', 1);
    const publicKey = derivedPublicKey(decodeHex(root.publicKeyHex), tweak);
    const before = await encryptAndAsk('wallet-1', publicKey, tweak);
    assert.deepEqual(before.outcomes, all('ok'));
    assert.equal(before.plaintext, 'secret of wallet-1');

    firstDisable = change('wallet-1', 'disable', {});
    assert.deepEqual(held(await sendToEveryNode(firstDisable)), all('applied'));
    const disabled = await encryptAndAsk('wallet-1', publicKey, tweak);
    assert.deepEqual(disabled.outcomes, all('key_disabled'));

    assert.deepEqual(held(await sendToEveryNode(change('wallet-1', 'enable', {}))), all('applied'));
    const enabled = await encryptAndAsk('wallet-1', publicKey, tweak);
    assert.deepEqual(enabled.outcomes, all('ok'));
    assert.equal(enabled.plaintext, 'secret of wallet-1');
  });

  it('every node refuses a change by a non-admin, a replayed change and one out of order, and answers a re-sent one as known', async () => {
    const at = heads.get('wallet-1')!;
    const byMallory = change('wallet-1', 'disable', {}, mallory);
    assert.deepEqual(await sendToEveryNode(byMallory), all('not_key_admin'));
    // Alice's disable of earlier, byte for byte, sent again after her enable: a replay.
    assert.deepEqual(await sendToEveryNode(firstDisable), all('key_change_replayed'));
    // And re-signed for the place it once had.
    const replay = change('wallet-1', 'disable', {}, alice, { sequence: 2, previous: at.head });
    assert.deepEqual(await sendToEveryNode(replay), all('key_change_replayed'));
    const ahead = change('wallet-1', 'disable', {}, alice, { sequence: at.sequence + 2, previous: at.head });
    assert.deepEqual(await sendToEveryNode(ahead), all('key_change_out_of_order'));
    const tag = change('wallet-1', 'tag', { tags: { team: 'payments' } });
    assert.deepEqual(held(await sendToEveryNode(tag)), all('applied'));
    assert.deepEqual(await sendToEveryNode(tag), all('known'));
    // Still Enabled: none of the refused changes took effect anywhere.
    const tweak = deriveKeyTweak(decodeHex(root.publicKeyHex), 'users/1', 1);
    const still = await encryptAndAsk('wallet-1', derivedPublicKey(decodeHex(root.publicKeyHex), tweak), tweak);
    assert.deepEqual(still.outcomes, all('ok'));
  });

  it('a change sent to one node reaches the others (flooding) and a node behind pulls the history it lacks', async () => {
    const created = change('wallet-2', 'create', { origin: { type: 'derived', root: devnet.keyId, path: 'users/2' }, admins: [alice.address] });
    const one = decodeKeyChangeReply(await pool.sendRaw(1, KEY_CHANGES_PROTOCOL, encodeKeyChangeRequest({ type: 'change', change: created }), 5_000));
    assert.equal(one.ok && one.type === 'applied' && !one.known, true);
    if (one.ok && one.type === 'applied') heads.set('wallet-2', { sequence: one.sequence, head: one.head });
    // Node 5 gets only the next change: it holds it already (flooded) or pulls the create first.
    const disable = change('wallet-2', 'disable', {});
    const five = decodeKeyChangeReply(await pool.sendRaw(5, KEY_CHANGES_PROTOCOL, encodeKeyChangeRequest({ type: 'change', change: disable }), 5_000));
    assert.equal(five.ok, true, JSON.stringify(five));
    await waitFor('every node holds the disable', async () => {
      const outcomes = await sendToEveryNode(disable);
      return Object.values(outcomes).every((o) => o === 'known') ? true : undefined;
    }, { timeoutMs: 20_000 });
    const tweak = deriveKeyTweak(decodeHex(root.publicKeyHex), 'users/2', 1);
    const refused = await encryptAndAsk('wallet-2', derivedPublicKey(decodeHex(root.publicKeyHex), tweak), tweak);
    assert.deepEqual(refused.outcomes, all('key_disabled'));
    assert.equal(encodeHex(heads.get('wallet-2')!.head).length, 66);
  });

  it('every node enforces each policy rule: allow-list, time windows, daily limit, and m-of-n admin co-signatures', async () => {
    const [carol, dave] = [generateAccount(), generateAccount()];
    const tweak = deriveKeyTweak(decodeHex(root.publicKeyHex), 'payroll', 1);
    const publicKey = derivedPublicKey(decodeHex(root.publicKeyHex), tweak);
    const ask = (approvers: Account[] = []) => encryptAndAsk('payroll', publicKey, tweak, approvers);
    const put = async (policy: object) => assert.deepEqual(held(await sendToEveryNode(change('payroll', 'putPolicy', { policy }))), all('applied'));
    assert.deepEqual(held(await sendToEveryNode(change('payroll', 'create', { origin: { type: 'derived', root: devnet.keyId, path: 'payroll' }, admins: [alice.address], policy: { allowedRequesters: [mallory.address] } }))), all('applied'));
    assert.deepEqual((await ask()).outcomes, all('policy_requester_denied'));

    await put({ allowedRequesters: [alice.address] });
    assert.deepEqual((await ask()).outcomes, all('ok'));

    // A window that closed a minute ago (UTC minutes of today), every day of the week.
    const minute = Math.floor((nowS() % 86_400) / 60);
    const days = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'];
    if (minute >= 2) {
      await put({ timeWindows: [{ days, startMinute: 0, endMinute: minute - 1 }] });
      assert.deepEqual((await ask()).outcomes, all('policy_outside_window'));
    }
    await put({ timeWindows: [{ days, startMinute: 0, endMinute: 1440 }] });
    assert.deepEqual((await ask()).outcomes, all('ok'));

    await put({ dailyLimitPerRequester: 1 });
    assert.deepEqual((await ask()).outcomes, all('ok'));
    assert.deepEqual((await ask()).outcomes, all('policy_daily_limit'));

    await put({ sensitive: { approvers: [carol.address, dave.address], required: 2 } });
    assert.deepEqual((await ask()).outcomes, all('policy_approvals_missing'));
    assert.deepEqual((await ask([carol])).outcomes, all('policy_approvals_missing'));
    assert.deepEqual((await ask([carol, carol])).outcomes, all('policy_approvals_missing'));
    const both = await ask([carol, dave]);
    assert.deepEqual(both.outcomes, all('ok'));
    assert.equal(both.plaintext, 'secret of payroll');
  });
});
