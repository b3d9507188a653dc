import { committeeDigest, parseCommittee, type Committee, type CommitteeDecoders } from '../core/committee.ts';
import { encodeHex } from '../core/bytes.ts';
import { followHandovers, MAX_HANDOVER_CHAIN, parseHandoverCertificate, verifyArrival, type HandoverCertificate, type KeyEpochData } from '../core/ceremony/handover.ts';
import { isTkmsError } from '../core/index.ts';
import type { Logger } from 'pino';

/** What one member said about epochs in its keys reply. */
export interface EpochReport {
  memberId: number;
  epoch?: number;
  handovers?: unknown[];
}

/** Certificates GET /v1/committee answers in one page. */
export const COMMITTEE_PAGE_SIZE = 16;

/**
 * The committee epochs as the gateway follows them: from its own committee file (trusted), through
 * every handover certificate the members report, each verified against the committee reached so far
 * (core/ceremony/handover.ts), never on one member's word. Certificates are gathered from all
 * members (a member that joined late holds only the later ones); each member counts once per epoch,
 * so a lying member adds at most one candidate per epoch, and every distinct candidate is tried.
 *
 * Certificates before the file's epoch (passed on to clients pinned earlier) are verified backwards:
 * the one arriving at the file's epoch by a vote quorum of the file's committee (verifyArrival), each
 * earlier one arriving at the committee whose digest the next one leaves. Unverified candidates are
 * never kept past the reports they came in, so a liar answering first cannot pin a forged one.
 *
 * Memory: at most MAX_HANDOVER_CHAIN certificates before the file (the backward walk stops there)
 * plus the certificates followed from the file, one per epoch reached (a gateway restarted with a
 * later committee file sheds them).
 */
export class CommitteeEpochs {
  /** Committees reached, by epoch, from the file's. */
  private readonly committees = new Map<number, Committee>();
  /** Committees before the file's epoch, from verified certificates (the committee at the lowest epoch is known only by digest). */
  private readonly earlier = new Map<number, Committee>();
  private reached: Committee;
  /** Keys at the epoch reached, from the last certificate (empty before the first). */
  private keys = new Map<string, KeyEpochData>();
  /** Keys at the file's epoch, from the verified certificate arriving at it (keys made before the file). */
  private arrived = new Map<string, KeyEpochData>();
  /** The certificates followed, oldest first. */
  private readonly followed: HandoverCertificate[] = [];
  /** Verified certificates before the file's epoch, newest first (the backward walk). */
  private readonly before: HandoverCertificate[] = [];
  /** The epoch the backward walk reached, and the digest of the committee there. */
  private beforeEpoch: number;
  private beforeDigest: string;

  constructor(
    readonly file: Committee,
    private readonly log: Logger,
    private readonly decoders?: CommitteeDecoders,
  ) {
    this.reached = file;
    this.committees.set(file.epoch, file);
    this.beforeEpoch = file.epoch;
    this.beforeDigest = encodeHex(committeeDigest(file));
  }

  get current(): Committee {
    return this.reached;
  }

  get epoch(): number {
    return this.reached.epoch;
  }

  /** The lowest epoch whose leaving certificate the gateway knows (the file's when none before it). */
  get earliest(): number {
    return this.beforeEpoch;
  }

  /** Whether certificates before the file are still wanted (not at epoch 0, under the bound). */
  get walkingBack(): boolean {
    return this.beforeEpoch > 0 && this.before.length < MAX_HANDOVER_CHAIN;
  }

  /** The committee at an epoch between the file's and the current one. */
  committeeAt(epoch: number): Committee | undefined {
    return this.committees.get(epoch);
  }

  /** The committee at an epoch before the file's, when a verified certificate arrived at it. */
  committeeBefore(epoch: number): Committee | undefined {
    return this.earlier.get(epoch);
  }

  /** A key's data at the current epoch, when the last certificate moved it. */
  keyData(keyId: string): KeyEpochData | undefined {
    return this.keys.get(keyId);
  }

  /** A key made before the file's epoch, as the certificate arriving at the file's committee names it (signed by a vote quorum of it). */
  arrivedKey(keyId: string): KeyEpochData | undefined {
    return this.arrived.get(keyId);
  }

  /** Whether every certificate from `epoch` on moved the key with this group key (none dropped or changed it). */
  carried(keyId: string, epoch: number, groupPublicKey: string): boolean {
    return this.followed
      .filter((c) => c.fromEpoch >= epoch)
      .every((c) => c.keys.some((k) => k.keyId === keyId && k.groupPublicKey === groupPublicKey));
  }

  /** Every certificate known, oldest first: the verified ones before the file's epoch, then the followed ones. */
  handovers(): HandoverCertificate[] {
    return [...[...this.before].reverse(), ...this.followed];
  }

  /** A page of the certificates leaving `since` and later, oldest first, and the epoch the next page starts at (null after the last). */
  page(since: number, size = COMMITTEE_PAGE_SIZE): { handovers: HandoverCertificate[]; next: number | null } {
    const all = this.handovers().filter((c) => c.fromEpoch >= since);
    const handovers = all.slice(0, size);
    return { handovers, next: all.length > size ? all[size]!.fromEpoch : null };
  }

  /** Takes the members' reports; true when the committee moved to a later epoch. */
  consider(reports: readonly EpochReport[]): boolean {
    const candidates = new Map<number, Map<string, HandoverCertificate>>();
    for (const report of reports) {
      const seen = new Set<number>();
      for (const raw of report.handovers ?? []) {
        // Certificates of epochs already settled are not parsed again (each may hold 256 keys of 256 points).
        const epoch = (raw as { fromEpoch?: unknown } | null)?.fromEpoch;
        if (typeof epoch === 'number' && this.settled(epoch)) continue;
        let cert: HandoverCertificate;
        try {
          cert = parseHandoverCertificate(raw);
        } catch (e) {
          this.log.warn({ member: report.memberId, err: isTkmsError(e) ? e.message : 'invalid' }, 'member reported a malformed handover certificate; ignored');
          continue;
        }
        if (seen.has(cert.fromEpoch) || this.settled(cert.fromEpoch)) continue;
        seen.add(cert.fromEpoch);
        const byText = candidates.get(cert.fromEpoch) ?? new Map<string, HandoverCertificate>();
        byText.set(JSON.stringify(cert), cert);
        candidates.set(cert.fromEpoch, byText);
      }
    }
    this.walkBack(candidates);
    const start = this.reached.epoch;
    for (;;) {
      const next = candidates.get(this.reached.epoch);
      if (next === undefined) break;
      try {
        const step = followHandovers(this.reached, [...next.values()], this.keys.size > 0 ? this.keys : undefined, this.decoders);
        const verified = step.chain[0]!;
        this.followed.push(verified.certificate);
        this.reached = verified.to;
        this.committees.set(verified.to.epoch, verified.to);
        this.keys = step.keys;
      } catch (e) {
        this.log.error({ epoch: this.reached.epoch, err: isTkmsError(e) ? `${e.code}: ${e.message}` : 'invalid' }, 'no handover certificate reported for this epoch verifies; staying at it');
        break;
      }
    }
    if (this.reached.epoch === start) return false;
    this.log.info({ from: start, epoch: this.reached.epoch, members: this.reached.members.map((m) => m.id), t: this.reached.t }, 'committee moved to a later epoch');
    return true;
  }

  private settled(epoch: number): boolean {
    return (epoch >= this.beforeEpoch && epoch < this.reached.epoch) || (this.before.length >= MAX_HANDOVER_CHAIN && epoch < this.file.epoch);
  }

  /** Verifies certificates before the file's epoch from the newest down, each against the committee the next one leaves. */
  private walkBack(candidates: ReadonlyMap<number, ReadonlyMap<string, HandoverCertificate>>): void {
    while (this.walkingBack) {
      const next = candidates.get(this.beforeEpoch - 1);
      if (next === undefined) return;
      let taken: { cert: HandoverCertificate; to: Committee; keys: KeyEpochData[] } | undefined;
      for (const cert of next.values()) {
        try {
          const to = parseCommittee(cert.to, this.decoders);
          // The arriving committee is the file, or the one the later (verified) certificate leaves, known by its digest.
          const trusted = this.beforeEpoch === this.file.epoch ? this.file : encodeHex(committeeDigest(to)) === this.beforeDigest ? to : undefined;
          if (trusted === undefined) continue;
          taken = { cert, to, keys: verifyArrival(cert, trusted, this.decoders) };
          break;
        } catch (e) {
          this.log.warn({ epoch: this.beforeEpoch - 1, err: isTkmsError(e) ? `${e.code}: ${e.message}` : 'invalid' }, 'a handover certificate before the gateway\'s committee file does not verify; ignored');
        }
      }
      if (taken === undefined) return;
      if (this.beforeEpoch === this.file.epoch) this.arrived = new Map(taken.keys.map((k) => [k.keyId, k]));
      else this.earlier.set(this.beforeEpoch, taken.to);
      this.before.push(taken.cert);
      this.beforeEpoch--;
      this.beforeDigest = taken.cert.fromDigest;
    }
  }
}
