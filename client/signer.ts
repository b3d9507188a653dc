import {
  decodeAddress,
  decodeHex,
  encodeHex,
  equalBytes,
  isTkmsError,
  recoverTypedDataSigner,
  SIGNATURE_LENGTH,
  signTypedData,
  tkmsDomain,
  tkmsTypedData,
  structMessage,
  TkmsError,
  type Deployment,
  type Eip712Struct,
  type TypedData,
  type TypedDataDomain,
  type TypedDataField,
} from '../core/index.ts';
import type { Account } from './account.ts';

/**
 * Anything that signs EIP-712 typed data for an Ethereum address: a browser wallet
 * (`fromEip1193`), an ethers Signer (`fromEthers`), a viem account (`fromViem`), or a local
 * account. `signTypedData` gets the JSON of `eth_signTypedData_v4` and returns the 65-byte
 * r ‖ s ‖ v signature as 0x hex (or bytes).
 */
export interface Eip712Signer {
  readonly address: string | Uint8Array;
  signTypedData(typedData: TypedData): Promise<string | Uint8Array>;
}

/** window.ethereum and every other EIP-1193 provider. */
export interface Eip1193Provider {
  request(args: { method: string; params?: unknown[] }): Promise<unknown>;
}

/** A wallet: `eth_signTypedData_v4` with the typed data as a JSON string, as MetaMask and others expect. */
export function fromEip1193(provider: Eip1193Provider, address: string): Eip712Signer {
  const checked = encodeHex(decodeAddress(address, 'wallet address'));
  return {
    address: checked,
    async signTypedData(typed) {
      const signature = await provider.request({ method: 'eth_signTypedData_v4', params: [checked, JSON.stringify(typed)] });
      if (typeof signature !== 'string') throw new TkmsError('unauthorized', 'the wallet returned no signature for eth_signTypedData_v4');
      return signature;
    },
  };
}

/** The part of an ethers v6 Signer (Wallet, JsonRpcSigner, …) used here. */
export interface EthersTypedDataSigner {
  getAddress(): Promise<string>;
  signTypedData(domain: TypedDataDomain, types: Record<string, TypedDataField[]>, value: Record<string, unknown>): Promise<string>;
}

/** ethers computes the EIP712Domain type itself and refuses it among the types. */
export async function fromEthers(signer: EthersTypedDataSigner): Promise<Eip712Signer> {
  const address = await signer.getAddress();
  return {
    address,
    signTypedData({ types, domain, message }) {
      const { EIP712Domain: _domainType, ...structs } = types;
      return signer.signTypedData(domain, structs, message);
    },
  };
}

/** The part of a viem Account (local or JSON-RPC) used here: it takes the v4 object as it is. */
export interface ViemTypedDataAccount {
  address: string;
  signTypedData(parameters: TypedData): Promise<string>;
}

export function fromViem(account: ViemTypedDataAccount): Eip712Signer {
  return { address: account.address, signTypedData: (typed) => account.signTypedData(typed) };
}

/**
 * How the client signs each request: a local account signs in-process; any other signer gets
 * the typed data, and its answer is checked to recover to its address before anything is sent
 * (a wallet on another account, or one that signs something else, fails here and not at the
 * gateway with a bare "not signed by").
 */
export interface RequestSigner {
  readonly address: string;
  readonly addressBytes: Uint8Array;
  sign(struct: Eip712Struct, value: object, deployment: Deployment): Promise<Uint8Array>;
}

export function isLocalAccount(value: Account | Eip712Signer): value is Account {
  return (value as Account).secretKey instanceof Uint8Array;
}

export function requestSigner(from: Account | Eip712Signer): RequestSigner {
  if (isLocalAccount(from)) {
    return {
      address: from.address,
      addressBytes: from.addressBytes,
      sign: async (struct, value, deployment) => signTypedData(from.secretKey, tkmsDomain(deployment), struct, structMessage(struct, value)),
    };
  }
  const addressBytes = decodeAddress(typeof from.address === 'string' ? from.address : encodeHex(from.address), 'signer address');
  const address = encodeHex(addressBytes);
  return {
    address,
    addressBytes,
    async sign(struct, value, deployment) {
      const typed = tkmsTypedData(struct, value, deployment);
      const signature = normalizeV(decodeWalletSignature(await from.signTypedData(typed)));
      let signer: Uint8Array;
      try {
        signer = recoverTypedDataSigner(tkmsDomain(deployment), struct, structMessage(struct, value), signature);
      } catch (e) {
        throw new TkmsError('unauthorized', `the signer's ${struct.name} signature is not a valid EIP-712 signature: ${isTkmsError(e) ? e.message : 'invalid'}`);
      }
      if (!equalBytes(signer, addressBytes)) {
        throw new TkmsError(
          'unauthorized',
          `the signer signed ${struct.name} as ${encodeHex(signer)}, not as ${address}: the wallet is on another account, or signed other typed data`,
        );
      }
      return signature;
    },
  };
}

function decodeWalletSignature(value: string | Uint8Array): Uint8Array {
  const bytes = typeof value === 'string' ? decodeHex(value, { name: 'signature', maxLength: SIGNATURE_LENGTH }) : value;
  if (!(bytes instanceof Uint8Array) || bytes.length !== SIGNATURE_LENGTH) {
    throw new TkmsError('unauthorized', `the signer returned ${bytes instanceof Uint8Array ? bytes.length : 0} bytes, not a ${SIGNATURE_LENGTH}-byte signature`);
  }
  return bytes;
}

/** Some wallets (Ledger, some RPC signers) answer v ∈ {0, 1}; the protocol's encoding is 27/28. */
function normalizeV(signature: Uint8Array): Uint8Array {
  const v = signature[64]!;
  if (v !== 0 && v !== 1) return signature;
  const out = signature.slice();
  out[64] = v + 27;
  return out;
}
