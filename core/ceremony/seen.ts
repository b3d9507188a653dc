import { bytesToHex, equalBytes } from '../bytes.ts';

/**
 * The messages a ceremony already took, to drop exact repeats (relays, retransmits) before any
 * work. Indexed by the trailing 64-byte signature every message ends with and confirmed by comparing
 * the whole bytes: a repeat costs a lookup and a compare, not a hash of the message (a DKG proposal
 * or certificate carries every dealing and arrives once from every member that relays it).
 * Only messages that passed their checks are added, so the index grows with the inbox's bounds.
 */
export class SeenMessages {
  private readonly byTail = new Map<string, Uint8Array[]>();

  private key(raw: Uint8Array): string {
    return bytesToHex(raw.subarray(Math.max(0, raw.length - 64)));
  }

  add(raw: Uint8Array): void {
    const key = this.key(raw);
    const list = this.byTail.get(key);
    if (list === undefined) this.byTail.set(key, [raw]);
    else if (!list.some((r) => equalBytes(r, raw))) list.push(raw);
  }

  has(raw: Uint8Array): boolean {
    return this.byTail.get(this.key(raw))?.some((r) => equalBytes(r, raw)) === true;
  }
}
