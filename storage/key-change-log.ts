import { TkmsError } from '../core/errors.ts';
import { KeyChangeMessage, type KeyChange } from '../core/keys/key-change.ts';
import type { AppliedChange } from '../core/keys/key-apply.ts';
import type { KeyBook } from '../core/keys/key-book.ts';
import { AppendLog } from './append-log.ts';

/**
 * The durable half of a key registry: every signed key change taken, one JSON line each, fsynced
 * before the change is taken into the book and before anyone is told it is applied. Opening replays
 * the lines through the book's full checks (signatures included): a line that no longer applies
 * (a damaged file, a log from another deployment) refuses to open rather than serve a different key.
 *
 * Changes to one key are taken one at a time (each checks against the last), so two concurrent
 * submissions of the next sequence cannot both pass the check.
 */
export class KeyChangeLog {
  private chain: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly log: AppendLog,
    readonly book: KeyBook,
  ) {}

  static async open(path: string, book: KeyBook): Promise<{ registry: KeyChangeLog; tornBytes: number }> {
    let lineNo = 0;
    let failure: TkmsError | undefined;
    const { log, tornBytes } = await AppendLog.openStreaming(path, (value) => {
      lineNo++;
      if (failure !== undefined) return;
      try {
        const change = KeyChangeMessage.decode(value);
        book.commit(change, book.check(change, { replay: true }));
      } catch (e) {
        const why = e instanceof TkmsError ? `${e.code}: ${e.message}` : String(e);
        failure = new TkmsError('keystore_corrupt', `${path} line ${lineNo} does not apply (${why}); the key registry was not opened`);
      }
    }).catch((e: unknown) => {
      // A line that is not JSON (not the torn last one) is damage to the registry like a line that does
      // not apply, and is reported as such; failing to open or read the file stays an internal error.
      if (e instanceof TkmsError && e.code === 'internal' && / is damaged at byte /.test(e.message)) {
        throw new TkmsError('keystore_corrupt', `${path} line ${lineNo + 1} is not JSON; the key registry was not opened`);
      }
      throw e;
    });
    if (failure !== undefined) {
      await log.close();
      throw failure;
    }
    return { registry: new KeyChangeLog(log, book), tornBytes };
  }

  /**
   * Checks, persists and takes one change. `known` when it is exactly the change already applied at
   * its sequence (re-sent by the gateway or a peer); every other refusal is thrown.
   */
  submit(change: KeyChange): Promise<{ known: boolean; applied: AppliedChange | undefined }> {
    const turn = this.chain.then(async () => {
      if (this.book.isApplied(change)) return { known: true, applied: undefined };
      const applied = this.book.check(change);
      await this.log.append(KeyChangeMessage.encode(change), true);
      this.book.commit(change, applied);
      return { known: false, applied };
    });
    this.chain = turn.catch(() => undefined);
    return turn;
  }

  async close(): Promise<void> {
    await this.chain;
    await this.log.close();
  }
}
