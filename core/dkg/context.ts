import { sha256 } from '@noble/hashes/sha2.js';
import { decodeHex, lengthPrefixed, utf8ToBytes } from '../bytes.ts';
import { TkmsError } from '../errors.ts';
import { keyIdBytes } from '../identifiers.ts';
import type { DkgPublicResult } from './types.ts';

const CONFIRM_DOMAIN = utf8ToBytes('tkms/dkg/v1/confirm');
const RESULT_CONFIRM_DOMAIN = utf8ToBytes('tkms/dkg/v2/confirm');
const RESULT_DOMAIN = utf8ToBytes('tkms/dkg/v2/result');
/** Results made at an epoch ≥ 1 sign it: another domain, so no v2 digest can equal a v3 one. */
const RESULT_DOMAIN_V3 = utf8ToBytes('tkms/dkg/v3/result');
/** Results of a key outside secp256k1 sign the curve (and the epoch, 0 included) under a fourth domain. */
const RESULT_DOMAIN_V4 = utf8ToBytes('tkms/dkg/v4/result');

function u16List(values: readonly number[]): Uint8Array {
  const out = new Uint8Array(values.length * 2);
  values.forEach((v, i) => {
    out[2 * i] = v >>> 8;
    out[2 * i + 1] = v & 0xff;
  });
  return out;
}

function u32(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value);
  return out;
}

export function u16(value: number): Uint8Array {
  return u16List([value]);
}

/**
 * What members signed before results were signed whole (70e9873 and earlier). It does not cover
 * the group key or the verification shares, so it proves nothing about them: only kept to tell
 * a stored legacy result from garbage while members re-sign it.
 */
export function legacyConfirmMessage(keyId: string, committeeId: string, sessionId: Uint8Array, transcriptHash: Uint8Array): Uint8Array {
  return lengthPrefixed(CONFIRM_DOMAIN, keyIdBytes(keyId), utf8ToBytes(committeeId), sessionId, transcriptHash);
}

export type UnsignedDkgResult = Omit<DkgPublicResult, 'signatures'>;

/**
 * SHA-256 over everything a result publishes, plus the committee's member keys: two results
 * with the same digest are the same key. Computed from the fields as handed in, never from
 * a cached value, so a swapped group key or Y_i changes what signatures must cover.
 */
export function dkgResultDigest(r: UnsignedDkgResult, memberKeys: ReadonlyMap<number, Uint8Array>): Uint8Array {
  const ids = Object.keys(r.verificationShares).map(Number).sort((a, b) => a - b);
  const head =
    r.curve !== undefined
      ? [RESULT_DOMAIN_V4, utf8ToBytes(r.curve), keyIdBytes(r.keyId), utf8ToBytes(r.committeeId), u32(r.epoch ?? 0)]
      : r.epoch === undefined
        ? [RESULT_DOMAIN, keyIdBytes(r.keyId), utf8ToBytes(r.committeeId)]
        : [RESULT_DOMAIN_V3, keyIdBytes(r.keyId), utf8ToBytes(r.committeeId), u32(r.epoch)];
  const fields: Uint8Array[] = [...head, decodeHex(r.sessionId), u16(r.t), u16(r.n)];
  for (const id of ids) {
    const key = memberKeys.get(id);
    if (key === undefined || key.length !== 32) throw new TkmsError('dkg_failed', `no committee key for member ${id}`);
    fields.push(u16(id), key);
  }
  fields.push(u16List(r.qualified), decodeHex(r.groupPublicKey));
  for (const id of ids) fields.push(u16(id), decodeHex(r.verificationShares[String(id)]));
  fields.push(decodeHex(r.transcriptHash));
  return sha256(lengthPrefixed(...fields));
}

/** What each member signs to confirm the outcome: the digest of the whole public result. */
export function confirmMessage(resultDigest: Uint8Array): Uint8Array {
  return lengthPrefixed(RESULT_CONFIRM_DOMAIN, resultDigest);
}
