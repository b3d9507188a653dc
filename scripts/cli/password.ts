import { readFile } from 'node:fs/promises';
import { TkmsError } from '../../core/errors.ts';
import { UsageError } from './command.ts';

/** A password file's content without its final newline; an empty one is refused. */
export async function readPasswordFile(path: string, what: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new TkmsError('bad_request', `cannot read ${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  const password = text.replace(/\r?\n$/, '');
  if (password.length === 0) throw new TkmsError('bad_request', `${what} ${path} is empty`);
  return password;
}

/** What promptHidden needs of standard input; a parameter so tests can give a stand-in. */
export type PromptInput = Pick<NodeJS.ReadStream, 'isTTY' | 'setRawMode' | 'setEncoding' | 'resume' | 'pause' | 'on' | 'off' | 'readableEnded' | 'destroyed'>;

/**
 * Reads one line from the terminal without echoing it (raw mode; Ctrl-C cancels). Standard input
 * that is not a terminal, or that ends first, is a usage error: waiting on it would hang, or let
 * Node exit with nothing said.
 */
export function promptHidden(prompt: string, stdin: PromptInput = process.stdin): Promise<string> {
  if (stdin.isTTY !== true) return Promise.reject(new UsageError('cannot ask for a password: standard input is not a terminal'));
  const ended = () => new UsageError('cannot ask for a password: standard input ended (was it used for something else, such as --in -?)');
  // Ended (or destroyed by an earlier reader) emits no more 'end': waiting would let Node exit silently.
  if (stdin.readableEnded || stdin.destroyed) return Promise.reject(ended());
  stdin.setRawMode(true);
  stdin.setEncoding('utf8');
  stdin.resume();
  // Shown only once echo is off, so nothing typed after it appears on the screen.
  process.stderr.write(prompt);
  return new Promise((resolve, reject) => {
    let value = '';
    const finish = (): void => {
      stdin.off('data', onData);
      stdin.off('end', onEnd);
      stdin.off('error', onError);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
    };
    const onEnd = (): void => {
      finish();
      reject(ended());
    };
    const onError = (e: Error): void => {
      finish();
      reject(new UsageError(`cannot ask for a password: standard input failed (${(e as NodeJS.ErrnoException).code ?? 'error'})`));
    };
    const onData = (chunk: string): void => {
      for (const ch of chunk) {
        if (ch === '\r' || ch === '\n' || ch === '\u0004') {
          finish();
          resolve(value);
          return;
        }
        if (ch === '\u0003') {
          finish();
          reject(new UsageError('cancelled'));
          return;
        }
        if (ch === '\u007f' || ch === '\b') value = Array.from(value).slice(0, -1).join('');
        else value += ch;
      }
    };
    stdin.on('data', onData);
    stdin.on('end', onEnd);
    stdin.on('error', onError);
  });
}

/**
 * The account password: from the file named by --password-file (or its environment variable),
 * else asked on the terminal (twice when `confirm`, for a new account). Without either there is
 * no way to ask, which is a usage error.
 */
export async function accountPassword(opts: { passwordFile: string | undefined; confirm: boolean; file: string }): Promise<string> {
  if (opts.passwordFile !== undefined && opts.passwordFile !== '') return readPasswordFile(opts.passwordFile, 'account password file');
  if (process.stdin.isTTY !== true) {
    const why = opts.confirm ? `the new account file ${opts.file} is encrypted with a password` : `account file ${opts.file} is encrypted`;
    throw new UsageError(`${why}: give --password-file <file> (or set TKMS_ACCOUNT_PASSWORD_FILE), or run on a terminal to be asked`);
  }
  const password = await promptHidden(`password for ${opts.file}: `);
  if (password.length === 0) throw new UsageError('the account password must not be empty');
  if (opts.confirm && (await promptHidden('repeat the password: ')) !== password) throw new UsageError('the two passwords differ');
  return password;
}
