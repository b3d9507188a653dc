import { Address, OutScript } from '@scure/btc-signer/payment.js';
import { NETWORK, TEST_NETWORK, type BTC_NETWORK } from '@scure/btc-signer/utils.js';
import { TkmsError } from '../errors.ts';

/**
 * Bitcoin networks and addresses as a signing policy names them. Kept apart from the PSBT code so
 * the key policy (which every client bundles) pulls in only the address codec.
 */
export const BITCOIN_NETWORKS = ['bitcoin', 'testnet', 'regtest'] as const;
export type BitcoinNetwork = (typeof BITCOIN_NETWORKS)[number];

/** Regtest shares testnet's base58 prefixes but has its own bech32 prefix. */
const REGTEST_NETWORK: BTC_NETWORK = Object.freeze({ bech32: 'bcrt', pubKeyHash: 0x6f, scriptHash: 0xc4, wif: 0xef });

export const NETWORK_PARAMS: Readonly<Record<BitcoinNetwork, BTC_NETWORK>> = Object.freeze({ bitcoin: NETWORK, testnet: TEST_NETWORK, regtest: REGTEST_NETWORK });

/** The shortest and longest address text the codec takes (a base58 P2PKH, a bech32m P2TR on regtest). */
export const MIN_ADDRESS_LENGTH = 14;
export const MAX_ADDRESS_LENGTH = 74;

/**
 * The output script an address of `network` pays, and the address in its canonical spelling
 * (bech32 in lower case); `bad_address` when it is not an address of that network (a mainnet
 * address on testnet included).
 */
export function decodeBitcoinAddress(address: string, network: BitcoinNetwork): { address: string; script: Uint8Array } {
  const coder = Address(NETWORK_PARAMS[network]);
  try {
    const decoded = coder.decode(address);
    return { address: coder.encode(decoded), script: OutScript.encode(decoded) };
  } catch (e) {
    throw new TkmsError('bad_address', `${JSON.stringify(address.slice(0, MAX_ADDRESS_LENGTH))} is not a ${network} address (${e instanceof Error ? e.message : 'invalid'})`);
  }
}

/** The address an output script pays on `network`, or undefined for a script no address names (OP_RETURN, bare scripts). */
export function scriptAddress(script: Uint8Array, network: BitcoinNetwork): string | undefined {
  try {
    return Address(NETWORK_PARAMS[network]).encode(OutScript.decode(script));
  } catch {
    return undefined;
  }
}
