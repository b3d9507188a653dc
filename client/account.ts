import { secp256k1 } from '@noble/curves/secp256k1.js';
import { addressFromSecretKey, decodeHex, encodeHex, TkmsError } from '../core/index.ts';

/**
 * An Ethereum-style account: the secp256k1 key that signs EIP-712 requests. The secret
 * stays inside this object; `address` is what the ACL names.
 */
export interface Account {
  /** 0x + 40 lower-case hex. */
  address: string;
  addressBytes: Uint8Array;
  /** 32-byte secret key; never logged, never sent. */
  readonly secretKey: Uint8Array;
}

export function accountFromSecretKey(secretKey: Uint8Array | string): Account {
  const sk = typeof secretKey === 'string' ? decodeHex(secretKey, { name: 'account secret key', length: 32 }) : secretKey;
  if (!(sk instanceof Uint8Array) || sk.length !== 32 || !secp256k1.utils.isValidSecretKey(sk)) {
    throw new TkmsError('bad_scalar', 'account secret key must be 32 bytes in 1..n-1');
  }
  const addressBytes = addressFromSecretKey(sk);
  return { address: encodeHex(addressBytes), addressBytes, secretKey: sk };
}

export function generateAccount(): Account {
  return accountFromSecretKey(secp256k1.utils.randomSecretKey());
}
