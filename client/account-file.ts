import { open } from 'node:fs/promises';
import { TkmsError } from '../core/index.ts';
import { errnoCode, publishSyncedFile } from '../storage/durable-fs.ts';
import { accountFromSecretKey, type Account } from './account.ts';
import { decryptKeystore, encryptKeystore, MAX_KEYSTORE_CHARS, type ScryptParams } from './keystore-v3.ts';

/**
 * Account files on disk: written as Ethereum keystore v3 (encrypted); the plaintext
 * `{ address, secretKey }` files of earlier versions still load, with a warning.
 */
export interface ReadAccountOptions {
  /** Asked only when the file is encrypted, so a plaintext file needs no password. */
  password: () => Promise<string>;
  warn: (message: string) => void;
}

export async function readAccountFile(file: string, opts: ReadAccountOptions): Promise<Account> {
  let text: string;
  try {
    const handle = await open(file, 'r');
    try {
      const { size } = await handle.stat();
      if (size > MAX_KEYSTORE_CHARS) throw new TkmsError('keystore_corrupt', `account file ${file} is larger than ${MAX_KEYSTORE_CHARS} bytes`);
      text = await handle.readFile('utf8');
    } finally {
      await handle.close();
    }
  } catch (e) {
    if (e instanceof TkmsError) throw e;
    throw new TkmsError('bad_request', `cannot read account file ${file}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new TkmsError('keystore_corrupt', `account file ${file} is not JSON`);
  }
  const record = typeof json === 'object' && json !== null ? (json as Record<string, unknown>) : {};
  if (record.crypto === undefined && record.Crypto === undefined && typeof record.secretKey === 'string') {
    opts.warn(`account file ${file} is not encrypted (a plaintext file from an earlier tkms): anyone who can read it holds the account; keep it mode 0600`);
    return accountFromSecretKey(record.secretKey);
  }
  return decryptKeystore(json, await opts.password());
}

/** Writes a new keystore v3 file with mode 0600, whole or not at all; never replaces an existing file. */
export async function writeAccountFile(file: string, account: Account, password: string, scrypt?: ScryptParams): Promise<void> {
  if (password.length === 0) throw new TkmsError('bad_request', 'the account password must not be empty');
  const keystore = await encryptKeystore(account, password, scrypt);
  const data = new TextEncoder().encode(`${JSON.stringify(keystore)}\n`);
  await publishSyncedFile(file, data, { replace: false, component: 'account file' }).catch((e: unknown) => {
    if (e instanceof TkmsError) throw e;
    const code = errnoCode(e);
    throw new TkmsError(code === 'EEXIST' ? 'conflict' : 'internal', `cannot create ${file}: ${code ?? 'error'}${code === 'EEXIST' ? ' (refusing to overwrite)' : ''}`);
  });
}
