import { constants as fsConstants } from 'node:fs';
import { open, rename, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { TkmsError } from '../core/index.ts';
import { ensurePrivateDirectory, errnoCode, fsyncDirectory, PRIVATE_FILE_MODE as FILE_MODE } from '../net/durable-fs.ts';

/**
 * A file of JSON lines that only grows, for node state that must survive a crash
 * (revocations seen, delegation request ids spent). A line that did not reach the disk
 * whole (a crash mid-append) can only be the last one; it is dropped at load.
 */
interface PendingBatch {
  lines: Buffer[];
  durable: boolean;
  settled: Promise<void>;
}

export class AppendLog {
  private queue: Promise<void> = Promise.resolve();
  /** The batch still taking lines: queued behind the write in flight, not started yet. */
  private openBatch: PendingBatch | undefined;

  private constructor(
    readonly path: string,
    private handle: FileHandle,
    private lineCount: number,
    /** Bytes known to hold whole lines; a failed append is cut back to this. */
    private committedBytes: number,
  ) {}

  /** Opens (creating) the log and returns its parsed lines; a torn last line is cut off. */
  static async open(path: string, maxBytes = 256 * 1024 * 1024): Promise<{ log: AppendLog; lines: unknown[]; tornBytes: number }> {
    await ensurePrivateDirectory(dirname(path), 'state');
    let handle: FileHandle;
    try {
      handle = await open(path, fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_APPEND | fsConstants.O_NOFOLLOW, FILE_MODE);
    } catch (e) {
      throw new TkmsError('internal', `cannot open state file ${path} (${errnoCode(e) ?? 'error'})`);
    }
    const size = (await handle.stat()).size;
    if (size > maxBytes) {
      await handle.close();
      throw new TkmsError('internal', `state file ${path} is larger than ${maxBytes} bytes`);
    }
    const buffer = Buffer.alloc(size);
    if (size > 0) await handle.read(buffer, 0, size, 0);
    // Work on bytes, not decoded text: offsets must be file offsets even around invalid UTF-8.
    const decoder = new TextDecoder('utf-8', { fatal: true });
    const lines: unknown[] = [];
    let offset = 0;
    let tornBytes = 0;
    while (offset < buffer.length) {
      const end = buffer.indexOf(0x0a, offset);
      if (end < 0) {
        // Only the last append can be cut short, and an append writes its newline last.
        tornBytes = buffer.length - offset;
        await handle.truncate(offset);
        break;
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(decoder.decode(buffer.subarray(offset, end)));
      } catch {
        await handle.close();
        throw new TkmsError('internal', `state file ${path} is damaged at byte ${offset}`);
      }
      lines.push(parsed);
      offset = end + 1;
    }
    return { log: new AppendLog(path, handle, lines.length, offset), lines, tornBytes };
  }

  get lines(): number {
    return this.lineCount;
  }

  /**
   * Appends one line; with `durable` it is fsynced before the promise resolves. Lines that
   * arrive while a write is in flight go out together in the next write (one syscall, one
   * fsync if any of them asked for it). A failed write is cut back whole and fails every
   * append in it, so no caller is told its line is stored when it is not.
   */
  append(value: unknown, durable: boolean): Promise<void> {
    const line = Buffer.from(`${JSON.stringify(value)}\n`);
    let batch = this.openBatch;
    if (batch === undefined) {
      const created: PendingBatch = { lines: [], durable: false, settled: undefined! };
      created.settled = this.queue.then(() => this.writeBatch(created));
      this.queue = created.settled.catch(() => undefined);
      this.openBatch = batch = created;
    }
    batch.lines.push(line);
    batch.durable ||= durable;
    return batch.settled;
  }

  private async writeBatch(batch: PendingBatch): Promise<void> {
    // From here on, new lines start the next batch.
    if (this.openBatch === batch) this.openBatch = undefined;
    const bytes = batch.lines.length === 1 ? batch.lines[0]! : Buffer.concat(batch.lines);
    try {
      await this.handle.appendFile(bytes);
      if (batch.durable) await this.handle.datasync();
    } catch (e) {
      // A partly written batch would glue onto the next line; cut it off (best effort) and report.
      await this.handle.truncate(this.committedBytes).catch(() => undefined);
      throw new TkmsError('internal', `cannot append to state file ${this.path} (${errnoCode(e) ?? 'error'})`);
    }
    this.committedBytes += bytes.length;
    this.lineCount += batch.lines.length;
  }

  /** Replaces the whole log with `values` (temp file, fsync, rename, fsync dir): compaction. */
  rewrite(values: readonly unknown[]): Promise<void> {
    // Lines appended from now on go to the rewritten file, after it.
    this.openBatch = undefined;
    const run = this.queue.then(() => this.rewriteNow(values));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async rewriteNow(values: readonly unknown[]): Promise<void> {
    const temp = join(dirname(this.path), `.${Date.now()}-${process.pid}.tmp`);
    const out = await open(temp, 'wx', FILE_MODE);
    try {
      await out.writeFile(values.map((v) => `${JSON.stringify(v)}\n`).join(''));
      await out.sync();
    } finally {
      await out.close();
    }
    await rename(temp, this.path);
    await fsyncDirectory(dirname(this.path), 'state');
    await this.handle.close();
    this.handle = await open(this.path, fsConstants.O_RDWR | fsConstants.O_APPEND | fsConstants.O_NOFOLLOW, FILE_MODE);
    this.lineCount = values.length;
    this.committedBytes = (await this.handle.stat()).size;
  }

  async close(): Promise<void> {
    await this.queue;
    await this.handle.close().catch(() => undefined);
  }
}
