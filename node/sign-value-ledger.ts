import { TkmsError } from '../core/errors.ts';
import { AppendLog } from '../storage/append-log.ts';

/**
 * What each signing key sent today, for the daily value cap of its PSBT rules
 * (core/signing/sign-policy.ts). A transaction's value is appended and fsynced before the node
 * releases its signature share, so a crash or restart never forgets value the key already sent: a
 * node that restarted could otherwise sign the day's cap a second time.
 *
 * One line per (UTC day, key, transaction): `[day, keyId, txid, "sats"]`. Counting is idempotent
 * per (key, day, txid), so signing one transaction again (a retry, a second gateway) counts it
 * once, however many lines name it. Lines of past days are dropped when the ledger opens and when
 * the day changes. A line cut short by a crash is dropped at open (storage/append-log.ts).
 *
 * The day never goes back: a clock stepped back across midnight keeps counting the later day.
 */
const SECONDS_PER_DAY = 86_400;
/** Transactions held for today across all keys; past it the ledger refuses to record (and so the node to sign). */
export const MAX_LEDGER_ENTRIES = 1_000_000;
/** About 200 bytes a line: room for a full day and the previous one before it is compacted. */
const MAX_LEDGER_FILE_BYTES = 512 * 1024 * 1024;
const TXID = /^[0-9a-f]{64}$/;
const SATS = /^(?:0|[1-9][0-9]{0,18})$/;

type Line = [day: number, keyId: string, txid: string, sats: string];

interface KeyDay {
  total: bigint;
  /** txid → its value and the write that made it durable. */
  txs: Map<string, { value: bigint; stored: Promise<void> }>;
}

const STORED = Promise.resolve();

export class SignValueLedger {
  /** keyId → today's spending. Only the current day is held. */
  private keys = new Map<string, KeyDay>();
  private entries = 0;

  private constructor(
    private readonly log: AppendLog,
    /** The latest day seen: the day being counted. */
    private day: number,
    /** The earliest day the file may still hold lines of. */
    private fileDay: number,
  ) {}

  static async open(path: string, nowSeconds = Math.floor(Date.now() / 1000)): Promise<SignValueLedger> {
    const { log, lines } = await AppendLog.open(path, MAX_LEDGER_FILE_BYTES);
    const parsed = lines.map(parseLine);
    const today = dayOf(nowSeconds);
    // A clock stepped back across midnight since the last run still counts the later day; a line
    // dated further ahead came from a clock that was wrong, and would freeze the count for as long.
    const day = parsed.reduce((d, line) => (line !== undefined && line[0] > d && line[0] <= today + 1 ? line[0] : d), today);
    const ledger = new SignValueLedger(log, day, day);
    let dropped = 0;
    for (const line of parsed) {
      if (line === undefined || line[0] !== day) {
        dropped++;
        continue;
      }
      if (!ledger.add(line[1], line[2], BigInt(line[3]), STORED)) dropped++;
    }
    // Atomic (write aside, fsync, rename): a crash here leaves the old file, read again next time.
    if (dropped > 0) await log.rewrite(ledger.lines());
    return ledger;
  }

  /** What `keyId` sent today, leaving out `exceptTxid` (a transaction being signed again). */
  spentToday(keyId: string, nowSeconds: number, exceptTxid?: string): bigint {
    this.advance(nowSeconds);
    const keyDay = this.keys.get(keyId);
    if (keyDay === undefined) return 0n;
    const again = exceptTxid === undefined ? undefined : keyDay.txs.get(exceptTxid);
    return keyDay.total - (again?.value ?? 0n);
  }

  /**
   * Counts `valueSats` for `keyId` today under `txid`, durably (fsynced) before it resolves; a
   * transaction already counted today resolves when its first write is on disk and counts nothing
   * more. With `capSats`, refuses (`policy_value_cap`) a new transaction that would take the day's
   * total past it: the check and the count are one synchronous step, so two transactions signed
   * at once cannot both pass on the same total.
   */
  async record(keyId: string, txid: string, valueSats: bigint, nowSeconds: number, capSats?: bigint): Promise<void> {
    if (typeof keyId !== 'string' || keyId.length === 0) throw new TkmsError('internal', 'the value ledger needs a key id');
    if (!TXID.test(txid)) throw new TkmsError('internal', 'the value ledger counts by a transaction id of 64 lower-case hex digits');
    if (typeof valueSats !== 'bigint' || valueSats < 0n || !SATS.test(valueSats.toString())) throw new TkmsError('internal', 'a value to count is a non-negative bigint');
    this.advance(nowSeconds);
    const existing = this.keys.get(keyId)?.txs.get(txid);
    if (existing !== undefined) return existing.stored;
    if (capSats !== undefined) {
      const spent = this.keys.get(keyId)?.total ?? 0n;
      if (spent + valueSats > capSats) {
        throw new TkmsError('policy_value_cap', `key ${keyId}: policy caps what it sends at ${capSats} sats per UTC day; it sent ${spent} today and this transaction sends ${valueSats}`);
      }
    }
    // Nothing sent away: nothing to count or keep.
    if (valueSats === 0n) return;
    if (this.entries >= MAX_LEDGER_ENTRIES) throw new TkmsError('unavailable', `this node counted ${MAX_LEDGER_ENTRIES} transactions today, as many as it keeps; it signs more tomorrow (UTC)`);
    const day = this.day;
    const stored = this.log.append([day, keyId, txid, valueSats.toString()] satisfies Line, true);
    this.add(keyId, txid, valueSats, stored);
    try {
      await stored;
    } catch (e) {
      // Not on disk, so not counted: the caller releases no share, and a retry writes it again.
      this.remove(keyId, txid, day);
      throw e;
    }
  }

  async close(): Promise<void> {
    await this.log.close();
  }

  /** Moves to the day of `nowSeconds` if it is later: the previous day's counts go, in memory now and on disk soon. */
  private advance(nowSeconds: number): void {
    const day = dayOf(nowSeconds);
    if (day <= this.day) return;
    this.day = day;
    this.keys = new Map();
    this.entries = 0;
    if (this.fileDay < day && this.log.mayRewrite) {
      this.fileDay = day;
      // The new day has no lines yet: the rewrite (queued behind the appends before it, ahead of
      // those after) keeps none. A failure leaves the old lines, which are dropped at the next open.
      void this.log.rewrite([]).catch(() => undefined);
    }
  }

  /** Adds a transaction; false if it was already counted (a line written twice). */
  private add(keyId: string, txid: string, value: bigint, stored: Promise<void>): boolean {
    let keyDay = this.keys.get(keyId);
    if (keyDay === undefined) {
      keyDay = { total: 0n, txs: new Map() };
      this.keys.set(keyId, keyDay);
    }
    if (keyDay.txs.has(txid)) return false;
    keyDay.txs.set(txid, { value, stored });
    keyDay.total += value;
    this.entries++;
    return true;
  }

  private remove(keyId: string, txid: string, day: number): void {
    if (day !== this.day) return;
    const keyDay = this.keys.get(keyId);
    const tx = keyDay?.txs.get(txid);
    if (keyDay === undefined || tx === undefined) return;
    keyDay.txs.delete(txid);
    keyDay.total -= tx.value;
    this.entries--;
  }

  private lines(): Line[] {
    const out: Line[] = [];
    for (const [keyId, keyDay] of this.keys) for (const [txid, tx] of keyDay.txs) out.push([this.day, keyId, txid, tx.value.toString()]);
    return out;
  }
}

function dayOf(nowSeconds: number): number {
  return Math.floor(nowSeconds / SECONDS_PER_DAY);
}

/** A line as written, or undefined for anything else (a line of another format is dropped, not trusted). */
function parseLine(value: unknown): Line | undefined {
  if (!Array.isArray(value) || value.length !== 4) return undefined;
  const [day, keyId, txid, sats] = value as unknown[];
  if (!Number.isSafeInteger(day) || typeof keyId !== 'string' || keyId.length === 0 || typeof txid !== 'string' || !TXID.test(txid) || typeof sats !== 'string' || !SATS.test(sats)) {
    return undefined;
  }
  return [day as number, keyId, txid, sats];
}
