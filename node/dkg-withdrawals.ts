import { basename } from 'node:path';
import { assertKeyId, TkmsError } from '../core/index.ts';
import { readBounded } from './keystore-fs.ts';

/**
 * Held keys a node stopped serving because two valid results of one DKG session existed (a split
 * the DKG before the ceremony framework could reach). The DKG now ends with a certificate (a vote
 * quorum, one vote per member and key id, on disk before it is sent), so no split can happen and
 * nothing is added any more; files written before are still read, and their keys stay unserved.
 */
const MAX_WITHDRAWALS_FILE_BYTES = 1024 * 1024;
const MAX_REASON_LENGTH = 512;

export class DkgWithdrawals {
  private constructor(private readonly entries: Map<string, string>) {}

  /** No withdrawals (a node that never had a file, tests). */
  static none(): DkgWithdrawals {
    return new DkgWithdrawals(new Map());
  }

  /** Reads the file if there is one (absent: none). */
  static async open(path: string): Promise<DkgWithdrawals> {
    const bytes = await readBounded(path, MAX_WITHDRAWALS_FILE_BYTES, () => new TkmsError('internal', `DKG withdrawals file ${basename(path)} is too large or not a file`));
    const text = bytes === undefined ? undefined : new TextDecoder().decode(bytes);
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
        entries.set(keyId, typeof reason === 'string' ? reason.slice(0, MAX_REASON_LENGTH) : 'withdrawn');
      }
    }
    return new DkgWithdrawals(entries);
  }

  get(keyId: string): string | undefined {
    return this.entries.get(keyId);
  }

  all(): ReadonlyMap<string, string> {
    return this.entries;
  }
}
