import { encodeHex, equalBytes } from '../bytes.ts';
import { TkmsError } from '../errors.ts';
import type { CeremonyMember } from './kind.ts';

/**
 * Who takes part in one ceremony as this member sees it: the dealers' and receivers' keys by id,
 * this member's own ids, and every other participant a message may go to.
 */
export class CeremonyRoster {
  readonly fromKeys: Map<number, Uint8Array>;
  readonly toKeys: Map<number, Uint8Array>;
  /** The receivers' ids, ascending: proposers rotate over them, and a dealing's recipients follow them. */
  readonly toIds: number[];
  readonly fromId: number | undefined;
  readonly toId: number | undefined;
  /** Every participant but this member (both committees, once each): who a message may go to. */
  readonly others: Uint8Array[];

  constructor(
    dealers: readonly CeremonyMember[],
    receivers: readonly CeremonyMember[],
    readonly publicKey: Uint8Array,
  ) {
    this.fromKeys = new Map(dealers.map((m) => [m.id, m.publicKey]));
    this.toKeys = new Map(receivers.map((m) => [m.id, m.publicKey]));
    this.toIds = receivers.map((m) => m.id).sort((a, b) => a - b);
    this.fromId = dealers.find((m) => equalBytes(m.publicKey, publicKey))?.id;
    this.toId = receivers.find((m) => equalBytes(m.publicKey, publicKey))?.id;
    if (this.fromId === undefined && this.toId === undefined) throw new TkmsError('bad_request', 'ceremony: this node is in neither committee');
    const everyone = new Map([...dealers, ...receivers].map((m) => [encodeHex(m.publicKey), m.publicKey]));
    everyone.delete(encodeHex(publicKey));
    this.others = [...everyone.values()];
  }

  /** A participant's ids in both roles (0 where it has none). */
  idsOf(publicKey: Uint8Array): { fromId: number; toId: number } {
    const find = (keys: Map<number, Uint8Array>) => [...keys].find(([, k]) => equalBytes(k, publicKey))?.[0] ?? 0;
    return { fromId: find(this.fromKeys), toId: find(this.toKeys) };
  }

  /**
   * The two audiences of a test equivocation: the upper half of the receivers gets the second
   * message, everyone else (but this member) the first.
   */
  equivocationHalves(): { half: Uint8Array[]; rest: Uint8Array[] } {
    const half = this.toIds.slice(Math.ceil(this.toIds.length / 2)).map((id) => this.toKeys.get(id)!);
    const rest = [...this.fromKeys.values(), ...this.toKeys.values()].filter((k) => !half.some((h) => equalBytes(h, k)) && !equalBytes(k, this.publicKey));
    return { half, rest };
  }
}
