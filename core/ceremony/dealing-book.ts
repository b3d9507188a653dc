import { curveBackend } from '../curve-backend.ts';
import { encodeHex, equalBytes } from '../bytes.ts';
import { messageSha256 } from '../digest.ts';
import type { DealerStanding } from './agreement.ts';
import { encodeUnsigned, keyGroup, signingBytes, type ComplaintMessage, type DealingMessage, type DecodedCeremonyMessage, type KeyDealing } from './codec.ts';
import type { CeremonyContext } from './context.ts';
import { complaintHolds, dealKey, openSubShare, proveComplaint, receiverSecret } from './dealing.ts';
import type { CeremonyOutbound } from './types.ts';

/** A dealing seen (received, relayed or inside a proposal), checked once. */
export interface DealingRecord {
  hash: string;
  raw: Uint8Array;
  message: DealingMessage;
  valid: boolean;
  /** This member's opened sub-shares (one per key) when it is an arriving member with a slot; 'bad' after a failed opening. */
  mine: bigint[] | 'bad' | 'absent' | undefined;
}

const hex = (b: Uint8Array): string => encodeHex(b);

/**
 * The hellos, dealings and complaints this member holds: the receiver keys dealers seal to, this
 * member's own dealing, every dealing checked once (and this member's sub-shares in it opened, or
 * complained about), complaints judged against the dealing they name, and the standing of every
 * dealer that a proposer picks from.
 */
export class DealingBook<Unsigned, Outcome> {
  /** Every arriving member's receiver key and its hello signature (dealings carry both). */
  readonly hellos = new Map<number, { receiverKey: Uint8Array; signature: Uint8Array }>();
  /** This member's receiver key pair when it is an arriving member. */
  private readonly receiver: { secret: bigint; key: Uint8Array } | undefined;
  private dealt = false;
  private readonly dealings = new Map<string, DealingRecord>();
  private readonly dealingsByDealer = new Map<number, string[]>();
  private readonly complaints: ComplaintMessage[] = [];
  private readonly complainedDealings = new Set<string>();
  /** When the last leaving member's first dealing arrived (agreementStart uses it once all dealt). */
  lastDealingAt: number | undefined;

  constructor(private readonly context: CeremonyContext<Unsigned, Outcome>) {
    const { kind, roster } = context;
    if (roster.toId !== undefined) {
      const secret = receiverSecret(kind.seed, kind.ceremonyId, roster.toId);
      this.receiver = { secret, key: curveBackend().multiplyBaseSecret(secret) };
    }
  }

  /**
   * This member's hello (an arriving member's first message), kept as its own; undefined for a
   * member that only leaves.
   */
  sayHello(): Uint8Array | undefined {
    const toId = this.context.roster.toId;
    if (toId === undefined || this.receiver === undefined) return undefined;
    const raw = this.context.messages.signOwn({ kind: 'hello', author: toId, receiverKey: this.receiver.key });
    this.hellos.set(toId, { receiverKey: this.receiver.key, signature: raw.slice(raw.length - 64) });
    return raw;
  }

  acceptHello(author: number, receiverKey: Uint8Array, signature: Uint8Array): void {
    const prior = this.hellos.get(author);
    if (prior === undefined) this.hellos.set(author, { receiverKey, signature });
    else if (!equalBytes(prior.receiverKey, receiverKey)) this.context.disqualifications.note('to', author, 'said hello with two receiver keys');
  }

  /** Whether this member still has to deal: it deals (it holds constant terms) and has not yet. */
  dueToDeal(): boolean {
    return this.context.roster.fromId !== undefined && this.context.kind.constantTerms !== undefined && !this.dealt;
  }

  allDealt(): boolean {
    return this.context.kind.dealers.every((m) => this.dealingsByDealer.has(m.id));
  }

  get(hash: string): DealingRecord | undefined {
    return this.dealings.get(hash);
  }

  /** The first dealing a dealer signed (the one a proposer carries). */
  firstOf(dealer: number): DealingRecord {
    return this.dealings.get(this.dealingsByDealer.get(dealer)![0]!)!;
  }

  acceptDealing(m: DecodedCeremonyMessage, out: CeremonyOutbound[]): DealingRecord {
    const { disqualifications, faults, kind } = this.context;
    const hash = hex(m.hash);
    const known = this.dealings.get(hash);
    if (known !== undefined) return known;
    const message = m.body as DealingMessage;
    const dealer = message.author;
    const valid = this.dealingIsValid(message);
    const record: DealingRecord = { hash, raw: m.raw, message, valid, mine: undefined };
    this.dealings.set(hash, record);
    const byDealer = this.dealingsByDealer.get(dealer) ?? [];
    byDealer.push(hash);
    this.dealingsByDealer.set(dealer, byDealer);
    if (byDealer.length === 1) this.lastDealingAt = this.context.now();
    if (byDealer.length > 1) disqualifications.note('from', dealer, 'signed two different dealings');
    if (!valid) disqualifications.note('from', dealer, kind.invalidDealingReason);
    if (valid && this.receiver !== undefined && this.context.roster.toId !== undefined) {
      record.mine = this.openMine(message);
      if (record.mine === 'bad') this.complain(record, out);
      else if (faults.falseComplaintAgainst?.includes(dealer) === true && Array.isArray(record.mine)) this.complain(record, out, true);
    }
    this.judgeComplaints();
    return record;
  }

  private dealingIsValid(d: DealingMessage): boolean {
    const { kind, roster, messages } = this.context;
    if (!roster.fromKeys.has(d.author)) return false;
    for (let i = 0; i < roster.toIds.length; i++) {
      const r = d.recipients[i];
      if (r === undefined) continue;
      // The hello this member already authenticated, as most dealings carry it: no second check.
      const known = this.hellos.get(roster.toIds[i]!);
      if (known !== undefined && equalBytes(known.signature, r.helloSignature) && equalBytes(known.receiverKey, r.receiverKey)) continue;
      const helloSigned = encodeUnsigned({ kind: 'hello', author: roster.toIds[i]!, receiverKey: r.receiverKey }, kind.family);
      if (!messages.verified(roster.toKeys.get(roster.toIds[i]!), signingBytes(kind.ceremonyId, helloSigned, kind.family), r.helloSignature)) return false;
    }
    return d.keys.every((k, i) => kind.keyDealingIsValid(d.author, i, k));
  }

  private slot(d: DealingMessage, toId: number): { index: number; cipherIndex: number } | undefined {
    const index = this.context.roster.toIds.indexOf(toId);
    if (index < 0 || d.recipients[index] === undefined) return undefined;
    let cipherIndex = 0;
    for (let i = 0; i < index; i++) if (d.recipients[i] !== undefined) cipherIndex++;
    return { index, cipherIndex };
  }

  private openMine(d: DealingMessage): bigint[] | 'bad' | 'absent' {
    const { kind, roster } = this.context;
    const slot = this.slot(d, roster.toId!);
    if (slot === undefined) return 'absent';
    const receiverKey = d.recipients[slot.index]!.receiverKey;
    if (!equalBytes(receiverKey, this.receiver!.key)) return 'absent';
    const values: bigint[] = [];
    for (let k = 0; k < d.keys.length; k++) {
      const kd = d.keys[k]!;
      const v = openSubShare(kind.ceremonyId, kind.keyIds[k]!, d.author, roster.toId!, receiverKey, this.receiver!.secret, kd, kd.ciphertexts[slot.cipherIndex]!, keyGroup(kind.shape, k));
      if (v === undefined) return 'bad';
      values.push(v);
    }
    return values;
  }

  /** `falsely` (a test fault): complain about a sub-share that opens fine, with its true pair key, so the complaint is public and cannot hold. */
  private complain(record: DealingRecord, out: CeremonyOutbound[], falsely = false): void {
    const { kind, roster, messages } = this.context;
    const d = record.message;
    const slot = this.slot(d, roster.toId!)!;
    for (let k = 0; k < d.keys.length; k++) {
      const kd = d.keys[k]!;
      const keyId = kind.keyIds[k]!;
      const v = openSubShare(kind.ceremonyId, keyId, d.author, roster.toId!, this.receiver!.key, this.receiver!.secret, kd, kd.ciphertexts[slot.cipherIndex]!, keyGroup(kind.shape, k));
      if (v !== undefined && !falsely) continue;
      const proven = proveComplaint(kind.ceremonyId, keyId, d.author, roster.toId!, this.receiver!.key, this.receiver!.secret, kd);
      const body: ComplaintMessage = { kind: 'complaint', author: roster.toId!, dealer: d.author, dealingHash: messageSha256(record.raw), keyIndex: k, pairKey: proven.pairKey, proof: proven.proof };
      this.complaints.push(body);
      out.push({ payload: messages.signOwn(body) });
      return;
    }
  }

  /** Another member's complaint (authenticated): judged now if its dealing is here, else once it arrives. */
  acceptComplaint(complaint: ComplaintMessage): void {
    this.complaints.push(complaint);
    this.judgeComplaints();
  }

  /** Judges complaints whose dealing is known (each once). */
  private judgeComplaints(): void {
    const { kind, disqualifications } = this.context;
    for (let i = this.complaints.length - 1; i >= 0; i--) {
      const c = this.complaints[i]!;
      const record = this.dealings.get(hex(c.dealingHash));
      if (record === undefined) continue;
      this.complaints.splice(i, 1);
      const d = record.message;
      const slot = this.slot(d, c.author);
      const kd = d.keys[c.keyIndex];
      if (!record.valid || slot === undefined || kd === undefined || d.author !== c.dealer) continue;
      const holds = complaintHolds(kind.ceremonyId, kind.keyIds[c.keyIndex]!, d.author, c.author, d.recipients[slot.index]!.receiverKey, kd, kd.ciphertexts[slot.cipherIndex]!, c.pairKey, c.proof, keyGroup(kind.shape, c.keyIndex));
      if (holds) {
        this.complainedDealings.add(record.hash);
        disqualifications.note('from', d.author, `sealed a sub-share to ${disqualifications.label('to', c.author)} that does not match its commitments`);
      } else disqualifications.note('to', c.author, `complained about a valid sub-share of ${disqualifications.label('from', d.author)}`);
    }
  }

  /** This member's dealing, sealed to every arriving member whose hello is here. */
  deal(out: CeremonyOutbound[]): void {
    const { kind, roster, messages, faults } = this.context;
    this.dealt = true;
    const constantTerms = kind.constantTerms!;
    const recipients = roster.toIds.map((id) => {
      const h = this.hellos.get(id);
      return h === undefined ? undefined : { receiverKey: h.receiverKey, helloSignature: h.signature };
    });
    const present = roster.toIds.flatMap((id, i) => (recipients[i] === undefined ? [] : [{ id, receiverKey: recipients[i]!.receiverKey }]));
    const make = (variant: number): Uint8Array => {
      const keys: KeyDealing[] = kind.keyIds.map((keyId, k) =>
        dealKey({
          group: keyGroup(kind.shape, k),
          seed: kind.seed,
          proposalId: kind.ceremonyId,
          keyId,
          dealer: roster.fromId!,
          constantTerm: constantTerms[k]!,
          tTo: kind.shape.tTo,
          recipients: present,
          proveConstantTerm: kind.proveConstantTerms,
          variant,
          badConstantProof: faults.badProofOfKnowledge,
          badSubShareTo: faults.badSubShareTo,
        }),
      );
      return messages.sign({ kind: 'dealing', author: roster.fromId!, recipients, keys });
    };
    const raw = messages.keepOwn(make(0));
    this.acceptDealing(messages.decode(raw), out);
    if (faults.equivocateDealing === true) {
      const other = make(1);
      const { half, rest } = roster.equivocationHalves();
      out.push({ payload: raw, to: rest }, { payload: other, to: half });
    } else out.push({ payload: raw });
  }

  /** Each dealer's standing for a proposer; `heard`: the receivers whose hello this member held when its hello phase closed. */
  standings(heard: Set<number>): DealerStanding[] {
    const toIds = this.context.roster.toIds;
    return [...this.dealingsByDealer].map(([dealer, hashes]) => {
      const record = this.dealings.get(hashes[0]!)!;
      const recipients = record.message.recipients;
      const absent = recipients.filter((r) => r === undefined).length;
      const unsealed = toIds.filter((id, i) => recipients[i] === undefined && heard.has(id)).length;
      return { dealer, valid: record.valid, equivocated: hashes.length > 1, complained: this.complainedDealings.has(record.hash), absent, unsealed };
    });
  }

  /** Whether this member may vote for these dealings: no complaint holds against one, and an arriving member opened its sub-share of each. */
  mayVoteFor(dealingHashes: readonly string[]): boolean {
    if (dealingHashes.some((h) => this.complainedDealings.has(h))) return false;
    if (this.context.roster.toId === undefined) return true;
    return dealingHashes.every((h) => Array.isArray(this.dealings.get(h)!.mine));
  }

  /** This member's share of each key (aligned with the key ids) from the agreed dealings. */
  newShares(dealers: readonly number[], dealingHashes: readonly string[]): bigint[] | undefined {
    const mine = dealingHashes.map((h) => this.dealings.get(h)!.mine);
    // Certified without a sub-share from every agreed dealer (no hello reached one in time): no share; the outcome says so by its absence.
    if (!mine.every((m): m is bigint[] => Array.isArray(m))) return undefined;
    return this.context.kind.keyIds.map((_, i) => this.context.kind.combineShares(dealers, mine.map((m) => m[i]!), i));
  }
}
