import { ed25519 } from '@noble/curves/ed25519.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { LruCache } from '../lru.ts';

/**
 * The prime-order subgroup check of an Ed25519 point (ℓ·P = O, a 253-bit multiplication) is most of
 * what a FROST signature costs here: RFC 9591 requires it of every element deserialised, and noble's
 * FROST deserialises the group key and every commitment again at each step. This remembers the
 * encodings that passed the full check, so a commitment checked once, when it arrived (the gateway
 * checks members' commitments as they come in batches, ahead of any signing request) or when it was
 * made (a member's own), is not checked again on the online path.
 *
 * Only the subgroup check is remembered, by exact encoding: noble's decoder still runs on every
 * parse (canonical encoding, on the curve), and FROST still refuses the identity.
 */
const MAX_REMEMBERED = 65_536;
const checked = new LruCache<string, true>(MAX_REMEMBERED);

type EdPoint = InstanceType<typeof ed25519.Point>;

/** The full RFC 9591 DeserializeElement check: canonical, on the curve, not the identity, in the prime-order subgroup. */
export function isValidEd25519Element(bytes: Uint8Array): boolean {
  if (bytes.length !== 32) return false;
  const key = bytesToHex(bytes);
  if (checked.get(key) !== undefined) return true;
  let point: EdPoint;
  try {
    point = ed25519.Point.fromBytes(bytes);
    point.assertValidity();
  } catch {
    return false;
  }
  if (point.is0() || !point.isTorsionFree()) return false;
  checked.set(key, true);
  return true;
}

/** Records a point this process computed as k·B (a nonce commitment it made): valid by construction. */
export function rememberEd25519Element(bytes: Uint8Array): void {
  checked.set(bytesToHex(bytes), true);
}

/**
 * ed25519.Point for noble's createFROST: decoding is noble's; a point decoded from an encoding that
 * passed the full check before answers the subgroup check from that record.
 */
export class Ed25519FrostPoint extends ed25519.Point {
  static override fromBytes(bytes: Uint8Array, zip215 = false): EdPoint {
    const point = ed25519.Point.fromBytes(bytes, zip215);
    if (zip215 || checked.get(bytesToHex(bytes)) === undefined) return point;
    return new Ed25519FrostPoint(point.X, point.Y, point.Z, point.T);
  }

  override isTorsionFree(): boolean {
    return true;
  }

  /** FROST's arithmetic makes plain ed25519 points, and its MSM checks `instanceof` the constructor it was given. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return value instanceof ed25519.Point;
  }
}
