import { Wallet } from 'ethers';
import { accountFromSecretKey, fromEip1193, parseCommitteeJson, pinnedClientOptions, TkmsClient, type Eip1193Provider, type TypedData } from '../../client/index.ts';

/**
 * The test page (bundled for the browser by client.test.ts): the client used as a web app
 * would use it, with the grantee signing through an injected wallet (window.ethereum-style).
 */
export interface PageRun {
  gatewayUrl: string;
  committeeJson: string;
  keyId: string;
  ownerKey: string;
  granteeKey: string;
  decrypts: number;
}

export interface PageResult {
  pinned: boolean;
  encrypted: string;
  grantStored: boolean;
  decryptedByGrantee: string;
  decryptedLocalHandle: string;
  walletSignatures: number;
  decryptMs: number[];
}

export interface PageFailure {
  code: string | undefined;
  reason: unknown;
  message: string;
}

/** An injected wallet: eth_signTypedData_v4 answered by a key only it holds. */
function injectedWallet(wallet: Wallet): Eip1193Provider & { calls: number } {
  const provider = {
    calls: 0,
    async request({ method, params }: { method: string; params?: unknown[] }): Promise<unknown> {
      if (method !== 'eth_signTypedData_v4') throw Object.assign(new Error(`method ${method} not supported`), { code: 4200 });
      const [address, json] = params as [string, string];
      if (address.toLowerCase() !== wallet.address.toLowerCase()) throw Object.assign(new Error('unknown account'), { code: 4100 });
      provider.calls++;
      const { domain, types, message } = JSON.parse(json) as TypedData;
      const { EIP712Domain: _domain, ...structs } = types;
      return wallet.signTypedData(domain, structs, message);
    },
  };
  return provider;
}

const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);

async function run(cfg: PageRun): Promise<PageResult> {
  const pinned = pinnedClientOptions(parseCommitteeJson(cfg.committeeJson));
  const owner = new TkmsClient({ gatewayUrl: cfg.gatewayUrl, account: accountFromSecretKey(cfg.ownerKey), ...pinned });
  const walletKey = new Wallet(cfg.granteeKey);
  const wallet = injectedWallet(walletKey);
  const grantee = new TkmsClient({ gatewayUrl: cfg.gatewayUrl, account: fromEip1193(wallet, walletKey.address), ...pinned });

  const key = await owner.getKey(cfg.keyId);
  const info = await owner.encrypt(new TextEncoder().encode('from a web page'), { keyId: cfg.keyId });
  const { stored } = await owner.grant(info.handle, grantee.address);
  const first = await grantee.decrypt(info.handle);
  const local = await owner.encryptLocally(new TextEncoder().encode('sealed in the browser'), { keyId: cfg.keyId });
  await owner.grant(local.handle, grantee.address);
  const fromLocal = await grantee.decrypt(local.handle);
  const decryptMs: number[] = [];
  for (let i = 0; i < cfg.decrypts; i++) {
    const started = performance.now();
    await grantee.decrypt(info.handle);
    decryptMs.push(performance.now() - started);
  }
  return {
    pinned: key.pinned,
    encrypted: info.handle,
    grantStored: stored,
    decryptedByGrantee: text(first.plaintext),
    decryptedLocalHandle: text(fromLocal.plaintext),
    walletSignatures: wallet.calls,
    decryptMs,
  };
}

/** What a developer would see when the first call fails. */
async function firstFailure(gatewayUrl: string, keyId: string, ownerKey: string): Promise<PageFailure | undefined> {
  try {
    await new TkmsClient({ gatewayUrl, account: accountFromSecretKey(ownerKey) }).getKey(keyId);
    return undefined;
  } catch (e) {
    const err = e as { code?: string; details?: { reason?: unknown }; message: string };
    return { code: err.code, reason: err.details?.reason, message: err.message };
  }
}

(globalThis as { tkmsBrowserTest?: unknown }).tkmsBrowserTest = { run, firstFailure };
