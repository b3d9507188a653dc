import { constants as fsConstants } from 'node:fs';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { TkmsError } from '../core/errors.ts';
import { ensurePrivateDirectory, errnoCode, fsyncDirectory, PRIVATE_FILE_MODE as FILE_MODE } from '../storage/durable-fs.ts';

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

/** How much of the file is read, and about how much is written, per system call. */
const READ_CHUNK_BYTES = 1024 * 1024;
const WRITE_CHUNK_BYTES = 1024 * 1024;
/** After a failed rewrite, how much the log grows before the next (a full disk fails them all). */
const REWRITE_RETRY_GROWTH_BYTES = 1024 * 1024;

export class AppendLog {
  private queue: Promise<void> = Promise.resolve();
  /** The batch still taking lines: queued behind the write in flight, not started yet. */
  private openBatch: PendingBatch | undefined;
  /** After a failed rewrite, the size the log must reach before another is worth trying. */
  private rewriteRetryAt = 0;

  private constructor(
    readonly path: string,
    private file: FileHandle,
    private lineCount: number,
    /** Bytes known to hold whole lines; a failed append is cut back to this. */
    private committedBytes: number,
  ) {}

  /** Opens (creating) the log and returns its parsed lines; a torn last line is cut off. */
  static async open(path: string, maxBytes = 256 * 1024 * 1024): Promise<{ log: AppendLog; lines: unknown[]; tornBytes: number }> {
    const lines: unknown[] = [];
    const { log, tornBytes } = await AppendLog.openStreaming(path, (value) => void lines.push(value), maxBytes);
    return { log, lines, tornBytes };
  }

  /**
   * Opens (creating) the log and hands each parsed line to `onLine` as it is read, a chunk at a
   * time: the file is never held whole, so a log of any size opens (only what the caller keeps
   * stays in memory). A torn last line is cut off; a damaged line elsewhere is refused.
   */
  static async openStreaming(
    path: string,
    onLine: (value: unknown, bytes: number) => void,
    maxBytes = Number.POSITIVE_INFINITY,
  ): Promise<{ log: AppendLog; tornBytes: number }> {
    await ensurePrivateDirectory(dirname(path), 'state');
    let file: FileHandle;
    try {
      file = await open(path, fsConstants.O_RDWR | fsConstants.O_CREAT | fsConstants.O_APPEND | fsConstants.O_NOFOLLOW, FILE_MODE);
    } catch (e) {
      throw new TkmsError('internal', `cannot open state file ${path} (${errnoCode(e) ?? 'error'})`);
    }
    try {
      const size = (await file.stat()).size;
      if (size > maxBytes) throw new TkmsError('internal', `state file ${path} is larger than ${maxBytes} bytes`);
      const { lines, end } = await readLines(file, size, path, onLine);
      // Only the last append can be cut short, and an append writes its newline last.
      if (end < size) await file.truncate(end);
      return { log: new AppendLog(path, file, lines, end), tornBytes: size - end };
    } catch (e) {
      await file.close();
      throw e;
    }
  }

  get lines(): number {
    return this.lineCount;
  }

  /** Bytes of whole lines in the file. */
  get bytes(): number {
    return this.committedBytes;
  }

  /**
   * False for a while after a rewrite failed: compaction is retried once the log has grown by a
   * margin, not on every append (each try rewrites the whole live set).
   */
  get mayRewrite(): boolean {
    return this.committedBytes >= this.rewriteRetryAt;
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
      await this.file.appendFile(bytes);
      if (batch.durable) await this.file.datasync();
    } catch (e) {
      // A partly written batch would glue onto the next line; cut it off (best effort) and report.
      await this.file.truncate(this.committedBytes).catch(() => undefined);
      throw new TkmsError('internal', `cannot append to state file ${this.path} (${errnoCode(e) ?? 'error'})`);
    }
    this.committedBytes += bytes.length;
    this.lineCount += batch.lines.length;
  }

  /**
   * Replaces the whole log with `values` (temp file, fsync, rename, fsync dir): compaction. A
   * function is called only once every append queued before this rewrite is on disk, so it can
   * name lines those appends carried.
   */
  rewrite(values: readonly unknown[] | (() => readonly unknown[])): Promise<void> {
    // Lines appended from now on go to the rewritten file, after it.
    this.openBatch = undefined;
    const run = this.queue
      .then(() => this.rewriteNow(typeof values === 'function' ? values() : values))
      .catch((e: unknown) => {
        this.rewriteRetryAt = this.committedBytes + Math.max(REWRITE_RETRY_GROWTH_BYTES, Math.floor(this.committedBytes / 4));
        throw e;
      });
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async rewriteNow(values: readonly unknown[]): Promise<void> {
    const temp = join(dirname(this.path), `.${Date.now()}-${process.pid}.tmp`);
    try {
      await this.writeTemp(temp, values);
      await rename(temp, this.path);
    } catch (e) {
      // A full disk would otherwise keep every failed attempt's partial copy.
      await unlink(temp).catch(() => undefined);
      throw new TkmsError('internal', `cannot rewrite state file ${this.path} (${errnoCode(e) ?? 'error'})`);
    }
    await fsyncDirectory(dirname(this.path), 'state');
    await this.file.close();
    this.file = await open(this.path, fsConstants.O_RDWR | fsConstants.O_APPEND | fsConstants.O_NOFOLLOW, FILE_MODE);
    this.lineCount = values.length;
    this.committedBytes = (await this.file.stat()).size;
  }

  private async writeTemp(temp: string, values: readonly unknown[]): Promise<void> {
    const out = await open(temp, 'wx', FILE_MODE);
    try {
      // In chunks: one string of a large log could exceed what a string may hold.
      let chunk: string[] = [];
      let chunkLength = 0;
      for (const v of values) {
        const line = `${JSON.stringify(v)}\n`;
        chunk.push(line);
        chunkLength += line.length;
        if (chunkLength >= WRITE_CHUNK_BYTES) {
          await out.write(chunk.join(''));
          chunk = [];
          chunkLength = 0;
        }
      }
      if (chunk.length > 0) await out.write(chunk.join(''));
      await out.sync();
    } finally {
      await out.close();
    }
  }

  async close(): Promise<void> {
    await this.queue;
    await this.file.close().catch(() => undefined);
  }
}

/**
 * Reads whole lines of `size` bytes of the file, chunk by chunk; returns how many and where the
 * last whole line ends. Works on bytes, not decoded text: offsets must be file offsets even
 * around invalid UTF-8.
 */
async function readLines(file: FileHandle, size: number, path: string, onLine: (value: unknown, bytes: number) => void): Promise<{ lines: number; end: number }> {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let lines = 0;
  /** File offset of carry[0]: the start of the line being read. */
  let lineStart = 0;
  let carry: Buffer = Buffer.alloc(0);
  let position = 0;
  const chunk = Buffer.alloc(Math.min(READ_CHUNK_BYTES, Math.max(size, 1)));
  while (position < size) {
    const { bytesRead } = await file.read(chunk, 0, Math.min(chunk.length, size - position), position);
    if (bytesRead === 0) break;
    position += bytesRead;
    const buffer = carry.length === 0 ? chunk.subarray(0, bytesRead) : Buffer.concat([carry, chunk.subarray(0, bytesRead)]);
    let offset = 0;
    for (;;) {
      const end = buffer.indexOf(0x0a, offset);
      if (end < 0) break;
      let parsed: unknown;
      try {
        parsed = JSON.parse(decoder.decode(buffer.subarray(offset, end)));
      } catch {
        throw new TkmsError('internal', `state file ${path} is damaged at byte ${lineStart}`);
      }
      onLine(parsed, end + 1 - offset);
      lines++;
      lineStart += end + 1 - offset;
      offset = end + 1;
    }
    // The unfinished line is copied out: `chunk` is reused by the next read.
    carry = Buffer.from(buffer.subarray(offset));
  }
  return { lines, end: lineStart };
}
