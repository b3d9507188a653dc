import assert from 'node:assert/strict';
import { TypedDataEncoder, Wallet } from 'ethers';
import { accountFromSecretKey } from '../../client/account.ts';
import { fromEip1193, fromEthers, fromViem, requestSigner, type Eip1193Provider, type RequestSigner } from '../../client/signer.ts';
import {
  authorizeDelegation,
  DelegationMessage,
  EncryptRequestMessage,
  G,
  GrantMessage,
  hashTypedData,
  isTkmsError,
  newRequestId,
  RegisterHandleMessage,
  RevocationMessage,
  sealToHandle,
  tkmsDomain,
  tkmsTypedData,
  typedData,
  verifyEncryptRequest,
  verifyRegisterHandle,
  verifyRevocation,
  type Deployment,
  type HandleDescriptor,
  type TypedData,
} from '../../core/index.ts';
import { sha256 } from '@noble/hashes/sha2.js';

/**
 * Every request signed through a wallet-style signer (ethers, EIP-1193, viem-shaped) is the same
 * signature as the local account's, and passes the checks the gateway and the nodes run.
 */
const DEPLOYMENT: Deployment = { committeeId: 'signer-test-committee' };
const OWNER_KEY = '0x' + '11'.repeat(32);
const GRANTEE_KEY = '0x' + '22'.repeat(32);
const NOW = 1_800_000_000;

/** A wallet: eth_signTypedData_v4 answered by an ethers Wallet, the way an injected provider would. */
function walletProvider(wallet: Wallet): Eip1193Provider {
  return {
    async request({ method, params }) {
      assert.equal(method, 'eth_signTypedData_v4');
      const [address, json] = params as [string, string];
      assert.equal(address.toLowerCase(), wallet.address.toLowerCase());
      const { domain, types, message } = JSON.parse(json) as TypedData;
      const { EIP712Domain: _, ...structs } = types;
      return wallet.signTypedData(domain, structs, message);
    },
  };
}

describe('client: EIP-712 signers', function () {
  this.timeout(30_000);
  const owner = accountFromSecretKey(OWNER_KEY);
  const grantee = accountFromSecretKey(GRANTEE_KEY);
  const ownerWallet = new Wallet(OWNER_KEY);
  const granteeWallet = new Wallet(GRANTEE_KEY);
  let handle: Uint8Array;
  let descriptor: HandleDescriptor;
  let plaintext: Uint8Array;

  before(async () => {
    plaintext = new TextEncoder().encode('signed by a wallet');
    const sealed = await sealToHandle({ publicKey: G.multiply(7n), keyId: 'k1', owner: owner.addressBytes, plaintext });
    handle = sealed.handle;
    descriptor = { keyId: 'k1', K: sealed.K, nonce: sealed.nonce, ciphertextHash: sealed.ciphertextHash, owner: sealed.owner, kProof: sealed.kProof };
  });

  async function ownerSigners(): Promise<[string, RequestSigner][]> {
    return [
      ['local account', requestSigner(owner)],
      ['ethers Wallet', requestSigner(await fromEthers(ownerWallet))],
      ['EIP-1193 wallet', requestSigner(fromEip1193(walletProvider(ownerWallet), ownerWallet.address))],
      ['viem-shaped account', requestSigner(fromViem({ address: ownerWallet.address, signTypedData: (t) => ownerWallet.signTypedData(t.domain, { [t.primaryType]: t.types[t.primaryType]! }, t.message) }))],
    ];
  }

  it('the typed data hashes as core/eip712.ts does (ethers TypedDataEncoder), with and without chainId', () => {
    for (const deployment of [DEPLOYMENT, { ...DEPLOYMENT, chainId: 31337n }]) {
      const unsigned = { handle, grantee: grantee.addressBytes, notAfter: NOW + 3600, issuedAt: NOW };
      const typed = tkmsTypedData(GrantMessage.struct, unsigned, deployment);
      assert.equal(typed.primaryType, 'Grant');
      assert.deepEqual(typed.types.EIP712Domain.map((f) => f.name), deployment.chainId === undefined ? ['name', 'version', 'salt'] : ['name', 'version', 'chainId', 'salt']);
      const { EIP712Domain: _, ...structs } = typed.types;
      const ours = '0x' + Buffer.from(hashTypedData(tkmsDomain(deployment), GrantMessage.struct, unsigned)).toString('hex');
      assert.equal(TypedDataEncoder.hash(typed.domain, structs, typed.message), ours);
      // What a wallet receives is plain JSON: it survives a round trip unchanged.
      assert.deepEqual(JSON.parse(JSON.stringify(typed)), typed);
    }
    assert.throws(() => typedData(tkmsDomain(DEPLOYMENT), GrantMessage.struct, { handle, grantee: grantee.addressBytes, notAfter: 'soon', issuedAt: NOW }), (e: unknown) => isTkmsError(e, 'bad_request'));
  });

  it('every request type: wallet signatures equal the local account\'s and pass the gateway\'s and nodes\' checks', async () => {
    const window = { notBefore: NOW, notAfter: NOW + 300 };
    const requestId = newRequestId();
    const messages = {
      register: { handle, keyId: 'k1', owner: owner.addressBytes },
      encrypt: { keyId: 'k1', owner: owner.addressBytes, plaintextHash: sha256(plaintext), ...window, requestId },
      grant: { handle, grantee: grantee.addressBytes, notAfter: NOW + 3600, issuedAt: NOW },
      revocation: { handle, grantee: grantee.addressBytes, revokedAt: NOW },
      delegation: { handle, keyId: 'k1', requester: owner.addressBytes, rsaSpki: new Uint8Array([0x30, 1, 2, 3]), ...window, requestId },
    };
    const reference = new Map<string, Uint8Array>();
    for (const [name, signer] of await ownerSigners()) {
      assert.equal(signer.address, owner.address, name);
      const signed = {
        register: { ...messages.register, signature: await signer.sign(RegisterHandleMessage.struct, messages.register, DEPLOYMENT) },
        encrypt: { ...messages.encrypt, signature: await signer.sign(EncryptRequestMessage.struct, messages.encrypt, DEPLOYMENT) },
        grant: { ...messages.grant, signature: await signer.sign(GrantMessage.struct, messages.grant, DEPLOYMENT) },
        revocation: { ...messages.revocation, signature: await signer.sign(RevocationMessage.struct, messages.revocation, DEPLOYMENT) },
        delegation: { ...messages.delegation, signature: await signer.sign(DelegationMessage.struct, messages.delegation, DEPLOYMENT) },
      };
      verifyRegisterHandle(signed.register, descriptor, DEPLOYMENT);
      verifyEncryptRequest(signed.encrypt, plaintext, { nowSeconds: NOW }, DEPLOYMENT);
      verifyRevocation(signed.revocation, descriptor, DEPLOYMENT);
      const asOwner = authorizeDelegation({ deployment: DEPLOYMENT, delegation: signed.delegation, descriptor, grant: undefined, revokedAt: () => undefined, nowSeconds: NOW });
      assert.equal(asOwner.viaGrant, false);
      // The grantee decrypts through the owner's grant, signing its delegation with its own wallet.
      const granteeSigner = requestSigner(fromEip1193(walletProvider(granteeWallet), granteeWallet.address));
      const granteeDelegation = { ...messages.delegation, requester: grantee.addressBytes };
      const delegation = { ...granteeDelegation, signature: await granteeSigner.sign(DelegationMessage.struct, granteeDelegation, DEPLOYMENT) };
      const viaGrant = authorizeDelegation({ deployment: DEPLOYMENT, delegation, descriptor, grant: signed.grant, revokedAt: () => undefined, nowSeconds: NOW });
      assert.equal(viaGrant.viaGrant, true, name);
      for (const [kind, message] of Object.entries(signed)) {
        const first = reference.get(kind);
        if (first === undefined) reference.set(kind, message.signature);
        else assert.deepEqual(message.signature, first, `${name}: ${kind} signature equals the local account's`);
      }
    }
  });

  it('a signature that does not recover to the signer\'s address is refused before anything is sent', async () => {
    const unsigned = { handle, grantee: grantee.addressBytes, notAfter: NOW + 3600, issuedAt: NOW };
    // The wallet is on another account than the one the application named.
    const wrongAccount = requestSigner(fromEip1193(walletProvider(granteeWallet), granteeWallet.address));
    const lying = requestSigner({ address: owner.address, signTypedData: (t) => granteeWallet.signTypedData(t.domain, { Grant: t.types.Grant! }, t.message) });
    await assert.rejects(lying.sign(GrantMessage.struct, unsigned, DEPLOYMENT), (e: unknown) => isTkmsError(e, 'unauthorized') && /not as 0x/.test((e as Error).message));
    assert.equal(wrongAccount.address, grantee.address);
    // Typed data of another deployment: a valid signature, by the right key, over something else.
    const otherDomain = requestSigner({
      address: owner.address,
      signTypedData: (t) => ownerWallet.signTypedData({ ...t.domain, version: '1' }, { Grant: t.types.Grant! }, t.message),
    });
    await assert.rejects(otherDomain.sign(GrantMessage.struct, unsigned, DEPLOYMENT), (e: unknown) => isTkmsError(e, 'unauthorized'));
    const garbage = requestSigner({ address: owner.address, signTypedData: async () => '0x1234' });
    await assert.rejects(garbage.sign(GrantMessage.struct, unsigned, DEPLOYMENT), (e: unknown) => isTkmsError(e, 'unauthorized'));
    // v in {0, 1} (some hardware wallets) is the same signature; it is accepted as 27/28.
    const v01 = requestSigner({
      address: owner.address,
      async signTypedData(t) {
        const sig = await ownerWallet.signTypedData(t.domain, { Grant: t.types.Grant! }, t.message);
        return sig.slice(0, 130) + (parseInt(sig.slice(130), 16) - 27).toString(16).padStart(2, '0');
      },
    });
    assert.deepEqual(await v01.sign(GrantMessage.struct, unsigned, DEPLOYMENT), await requestSigner(owner).sign(GrantMessage.struct, unsigned, DEPLOYMENT));
  });
});
