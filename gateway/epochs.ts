import { followHandovers, parseHandoverCertificate, type HandoverCertificate, type KeyEpochData } from '../core/ceremony/handover.ts';
import { isTkmsError } from '../core/index.ts';
import type { Committee, CommitteeDecoders } from '../core/committee.ts';
import type { Logger } from 'pino';

/** What one member said about epochs in its keys reply. */
export interface EpochReport {
  memberId: number;
  epoch?: number;
  handovers?: unknown[];
}

/**
 * The committee epochs as the gateway follows them: from its own committee file (trusted), through
 * every handover certificate the members report, each verified against the committee reached so far
 * (core/ceremony/handover.ts), never on one member's word. Certificates are gathered from all
 * members (a member that joined late holds only the later ones); each member counts once per epoch,
 * so a lying member adds at most one candidate per epoch, and a certificate is verified once.
 */
export class CommitteeEpochs {
  /** Committees reached, by epoch, from the file's. */
  private readonly committees = new Map<number, Committee>();
  private reached: Committee;
  /** Keys at the epoch reached, from the last certificate (empty before the first). */
  private keys = new Map<string, KeyEpochData>();
  /** The certificates followed, oldest first, and those before the file's epoch (passed on to clients pinned earlier). */
  private readonly followed: HandoverCertificate[] = [];
  private readonly before = new Map<number, HandoverCertificate>();

  constructor(
    readonly file: Committee,
    private readonly log: Logger,
    private readonly decoders?: CommitteeDecoders,
  ) {
    this.reached = file;
    this.committees.set(file.epoch, file);
  }

  get current(): Committee {
    return this.reached;
  }

  get epoch(): number {
    return this.reached.epoch;
  }

  /** The committee at an epoch between the file's and the current one. */
  committeeAt(epoch: number): Committee | undefined {
    return this.committees.get(epoch);
  }

  /** A key's data at the current epoch, when the last certificate moved it. */
  keyData(keyId: string): KeyEpochData | undefined {
    return this.keys.get(keyId);
  }

  /** Whether every certificate from `epoch` on moved the key with this group key (none dropped or changed it). */
  carried(keyId: string, epoch: number, groupPublicKey: string): boolean {
    return this.followed
      .filter((c) => c.fromEpoch >= epoch)
      .every((c) => c.keys.some((k) => k.keyId === keyId && k.groupPublicKey === groupPublicKey));
  }

  /** Every certificate known, oldest first: those before the file's epoch (as most members report them), then the followed ones. */
  handovers(): HandoverCertificate[] {
    return [...[...this.before].sort((a, b) => a[0] - b[0]).map(([, c]) => c), ...this.followed];
  }

  /** Takes the members' reports; true when the committee moved to a later epoch. */
  consider(reports: readonly EpochReport[]): boolean {
    const candidates = new Map<number, Map<string, { cert: HandoverCertificate; members: number }>>();
    for (const report of reports) {
      const seen = new Set<number>();
      for (const raw of report.handovers ?? []) {
        // Certificates of epochs already settled are not parsed again (each may hold 256 keys of 256 points).
        const epoch = (raw as { fromEpoch?: unknown } | null)?.fromEpoch;
        if (typeof epoch === 'number' && (this.before.has(epoch) || (epoch >= this.file.epoch && epoch < this.reached.epoch))) continue;
        let cert: HandoverCertificate;
        try {
          cert = parseHandoverCertificate(raw);
        } catch (e) {
          this.log.warn({ member: report.memberId, err: isTkmsError(e) ? e.message : 'invalid' }, 'member reported a malformed handover certificate; ignored');
          continue;
        }
        if (seen.has(cert.fromEpoch)) continue;
        seen.add(cert.fromEpoch);
        if (cert.fromEpoch >= this.file.epoch && cert.fromEpoch < this.reached.epoch) continue;
        const byText = candidates.get(cert.fromEpoch) ?? new Map<string, { cert: HandoverCertificate; members: number }>();
        const text = JSON.stringify(cert);
        const entry = byText.get(text) ?? { cert, members: 0 };
        entry.members++;
        byText.set(text, entry);
        candidates.set(cert.fromEpoch, byText);
      }
    }
    for (const [epoch, byText] of candidates) {
      if (epoch >= this.file.epoch || this.before.has(epoch)) continue;
      this.before.set(epoch, [...byText.values()].sort((a, b) => b.members - a.members)[0]!.cert);
    }
    const start = this.reached.epoch;
    for (;;) {
      const next = candidates.get(this.reached.epoch);
      if (next === undefined) break;
      try {
        const step = followHandovers(this.reached, [...next.values()].map((c) => c.cert), this.keys.size > 0 ? this.keys : undefined, this.decoders);
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
}
