import { readFile } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { assertKeyId, TkmsError, utf8ToBytes } from '../core/index.ts';
import { ensurePrivateDirectory, errnoCode, ioError } from '../storage/durable-fs.ts';
import { replaceFile } from './keystore-fs.ts';

/**
 * Held keys this node stopped serving because two valid results of the same DKG session
 * (different digests: a proven split) exist. Kept on disk, so a restart does not serve the key
 * again and need not be shown the proof again. Only held keys are ever added, so the file is
 * bounded by the keystore. One JSON object, replaced atomically (temp file, fsync, rename).
 */
const MAX_REASON_LENGTH = 512;

export class DkgWithdrawals {
  /** Writes in call order: each writes the whole map, so a later one must land last. */
  private writing: Promise<void> = Promise.resolve();

  private constructor(
    private readonly path: string,
    private readonly entries: Map<string, string>,
  ) {}

  /** An in-memory store (tests, tools): nothing survives the process. */
  static inMemory(): DkgWithdrawals {
    return new DkgWithdrawals('', new Map());
  }

  static async open(path: string): Promise<DkgWithdrawals> {
    await ensurePrivateDirectory(dirname(path), 'DKG withdrawals');
    let text: string | undefined;
    try {
      text = await readFile(path, 'utf8');
    } catch (e) {
      if (errnoCode(e) !== 'ENOENT') throw ioError('DKG withdrawals', 'read', e);
    }
    const entries = new Map<string, string>();
    if (text !== undefined) {
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        throw new TkmsError('internal', `DKG withdrawals file ${basename(path)} is not valid JSON`);
      }
      if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new TkmsError('internal', `DKG withdrawals file ${basename(path)} must hold an object`);
      for (const [keyId, reason] of Object.entries(json)) {
        assertKeyId(keyId);
        entries.set(keyId, typeof reason === 'string' ? reason : 'withdrawn');
      }
    }
    return new DkgWithdrawals(path, entries);
  }

  get(keyId: string): string | undefined {
    return this.entries.get(keyId);
  }

  all(): ReadonlyMap<string, string> {
    return this.entries;
  }

  /** Records the withdrawal durably; resolves once it is on disk. */
  async add(keyId: string, reason: string): Promise<void> {
    if (this.entries.has(keyId)) return;
    this.entries.set(keyId, reason.slice(0, MAX_REASON_LENGTH));
    if (this.path === '') return;
    const write = this.writing.then(() => replaceFile(dirname(this.path), basename(this.path), utf8ToBytes(JSON.stringify(Object.fromEntries(this.entries)))));
    this.writing = write.catch(() => undefined);
    await write;
  }
}
