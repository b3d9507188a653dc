import { ed25519 } from '@noble/curves/ed25519.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { LruCache } from '../lru.ts';

/**
 * The prime-order subgroup check of an Ed25519 point (ℓ·P = O, a 253-bit multiplication in noble)
 * is most of what a FROST signature costs: RFC 9591 requires it of every element deserialised, and
 * noble's FROST deserialises the group key and every commitment again at each step. Two things keep
 * it off the bill:
 *
 * - Encodings that passed the full check are remembered with their decoded point, so a commitment
 *   checked once, when it arrived (the gateway checks members' commitments as they come in
 *   batches, ahead of any signing request) or when it was made (a member's own), is neither
 *   checked nor decoded again on the online path.
 * - In Node, libsodium's check (core/sodium-ed25519.ts, about 40 µs against noble's 750) answers
 *   "in the subgroup" for a point noble has decoded; a "no" from it is decided by noble's own check.
 *
 * What is remembered was decoded by noble (canonical encoding, on the curve) and found in the
 * subgroup; FROST still refuses the identity. A point that fails is handed to noble as it is, and
 * noble's own checks refuse it.
 */
/** About 400 bytes each (a decoded point): 13 MB at most. */
const MAX_REMEMBERED = 32_768;
/** Points that passed the full check, decoded, by encoding: FROST's next parse of one costs a lookup. */
const checked = new LruCache<string, EdPoint>(MAX_REMEMBERED);

type EdPoint = InstanceType<typeof ed25519.Point>;

/** Whether a canonical encoding is of a point in the prime-order subgroup; only its `true` is relied on. */
export type Ed25519SubgroupFastCheck = (encoding: Uint8Array) => boolean;
let fastCheck: Ed25519SubgroupFastCheck | undefined;

/** Installed by the Node platform (core/platform/node.ts); browsers keep noble's check alone. */
export function setEd25519SubgroupFastCheck(check: Ed25519SubgroupFastCheck | undefined): void {
  fastCheck = check;
}

/** Decodes and fully checks `bytes` (`key`: their hex); the point (as FROST takes it) or undefined. */
function checkedPoint(bytes: Uint8Array, key = bytesToHex(bytes)): EdPoint | undefined {
  const known = checked.get(key);
  if (known !== undefined) return known;
  let point: EdPoint;
  try {
    point = ed25519.Point.fromBytes(bytes);
    point.assertValidity();
  } catch {
    return undefined;
  }
  if (point.is0() || (fastCheck?.(bytes) !== true && !point.isTorsionFree())) return undefined;
  const valid = new Ed25519FrostPoint(point.X, point.Y, point.Z, point.T);
  checked.set(key, valid);
  return valid;
}

/** The full RFC 9591 DeserializeElement check: canonical, on the curve, not the identity, in the prime-order subgroup. */
export function isValidEd25519Element(bytes: Uint8Array): boolean {
  return bytes.length === 32 && checkedPoint(bytes) !== undefined;
}

/** Group keys with wNAF tables (window 4, about 130 KB each), the most recently used. */
const MAX_PRECOMPUTED = 64;
const precomputed = new LruCache<string, EdPoint>(MAX_PRECOMPUTED);

/**
 * Gives a group key a table of its multiples: checking an aggregate signature multiplies the group
 * key (c·Y) every time, four times faster with it. Held apart from the checked points, so the table
 * goes with the key when the key is no longer among the most recently used.
 */
export function precomputeEd25519GroupKey(bytes: Uint8Array): void {
  const key = bytesToHex(bytes);
  if (precomputed.get(key) !== undefined) return;
  const point = checkedPoint(bytes, key);
  if (point === undefined) return;
  const withTable = new Ed25519FrostPoint(point.X, point.Y, point.Z, point.T);
  withTable.precompute(4, false);
  precomputed.set(key, withTable);
}

/**
 * Records a point this process computed as k·B (a nonce commitment it made): valid by
 * construction, decoded now, off the online path, so that signing finds it ready.
 */
export function rememberEd25519Element(bytes: Uint8Array): void {
  const point = ed25519.Point.fromBytes(bytes);
  checked.set(bytesToHex(bytes), new Ed25519FrostPoint(point.X, point.Y, point.Z, point.T));
}

/**
 * ed25519.Point for noble's createFROST: decoding is noble's; a point whose encoding passed the
 * subgroup check before, or passes the fast one now, answers noble's subgroup check from that.
 */
export class Ed25519FrostPoint extends ed25519.Point {
  static override fromBytes(bytes: Uint8Array, zip215 = false): EdPoint {
    if (zip215) return ed25519.Point.fromBytes(bytes, zip215);
    // A point that fails the check is decoded again by noble, which then throws its own error.
    const key = bytesToHex(bytes);
    return precomputed.get(key) ?? checkedPoint(bytes, key) ?? ed25519.Point.fromBytes(bytes);
  }

  override isTorsionFree(): boolean {
    return true;
  }

  /** FROST's arithmetic makes plain ed25519 points, and its MSM checks `instanceof` the constructor it was given. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return value instanceof ed25519.Point;
  }
}
