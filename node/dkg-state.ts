import { join } from 'node:path';
import { assertKeyId, decodeBase64, decodeHex, encodeBase64, encodeHex, TkmsError, utf8ToBytes } from '../core/index.ts';
import { parseDkgPublicResult, type DkgPublicResult } from '../core/dkg/index.ts';
import { ensurePrivateDirectory } from '../storage/durable-fs.ts';
import { isTempFileName, listDirectory, publishNewFile, readBounded, removeTempFiles } from './keystore-fs.ts';
import { SESSION_ID_LENGTH } from './dkg-wire.ts';

/**
 * What the DKG runner keeps on disk besides the keystore, in one private directory:
 * - `vote.<keyId>.json`: the vote this node cast in a DKG of that key id ({sessionId, vote}),
 *   written before the vote is sent and never replaced. It is the lock that makes a certificate
 *   unique: a member votes in one session per key id, ever, so two sessions for one key id cannot
 *   both gather a vote quorum (two quorums share an honest member).
 * - `public.<keyId>.json`: a DKG result this node took no share of (it missed the hello, or a dealer
 *   it needed was left out): the key exists and is published, but this node serves no partials for it.
 * Files are published whole with link(2) (publishNewFile) and never rewritten.
 */
const MAX_VOTE_BYTES = 4096;
/** A vote file: the vote in base64 plus the key id and session id. */
export const MAX_DKG_VOTE_FILE_BYTES = 2 * MAX_VOTE_BYTES;
/** A result held without a share, as savePublicOnly writes it. */
export const MAX_DKG_PUBLIC_RESULT_FILE_BYTES = 256 * 1024;
const VOTE_FILE = /^vote\.(.+)\.json$/;
const PUBLIC_FILE = /^public\.(.+)\.json$/;

/** The directory of these files: `<stateDir>/dkg` (the daemon opens it; backups read it). */
export function dkgStateDir(stateDir: string): string {
  return join(stateDir, 'dkg');
}

export interface DkgVote {
  sessionId: string;
  vote: Uint8Array;
}

function corrupt(message: string): TkmsError {
  return new TkmsError('keystore_corrupt', `DKG state: ${message}`);
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

function parseJson(bytes: Uint8Array, name: string): Record<string, unknown> {
  try {
    const json: unknown = JSON.parse(utf8.decode(bytes));
    if (typeof json === 'object' && json !== null && !Array.isArray(json)) return json as Record<string, unknown>;
  } catch {
    // Refused below.
  }
  throw corrupt(`${name} is not a JSON object`);
}

export function dkgVoteFileName(keyId: string): string {
  assertKeyId(keyId);
  return `vote.${keyId}.json`;
}

/** The key id of a vote file's name (undefined for any other name). */
export function parseDkgVoteFileName(name: string): string | undefined {
  return keyIdIn(VOTE_FILE, name);
}

function keyIdIn(pattern: RegExp, name: string): string | undefined {
  const keyId = pattern.exec(name)?.[1];
  if (keyId === undefined) return undefined;
  try {
    assertKeyId(keyId);
    return keyId;
  } catch {
    return undefined;
  }
}

/** A vote file's content, as recordVote writes it; keystore_corrupt for anything else. */
export function parseDkgVoteFile(bytes: Uint8Array, keyId: string): DkgVote {
  return parseVote(bytes, dkgVoteFileName(keyId), keyId);
}

function parseVote(bytes: Uint8Array, name: string, keyId: string): DkgVote {
  if (bytes.length > MAX_DKG_VOTE_FILE_BYTES) throw corrupt(`${name} is too large`);
  const obj = parseJson(bytes, name);
  try {
    if (obj.keyId !== keyId) throw new Error('key id');
    const sessionId = encodeHex(decodeHex(obj.sessionId, { name: 'sessionId', length: SESSION_ID_LENGTH }));
    const vote = decodeBase64(obj.vote, { name: 'vote', maxLength: MAX_VOTE_BYTES });
    if (vote.length === 0) throw new Error('empty vote');
    return { sessionId, vote };
  } catch {
    throw corrupt(`${name} is not a DKG vote of key id ${keyId}`);
  }
}

export function dkgPublicResultFileName(keyId: string): string {
  assertKeyId(keyId);
  return `public.${keyId}.json`;
}

/** The key id of a public result file's name (undefined for any other name). */
export function parseDkgPublicResultFileName(name: string): string | undefined {
  return keyIdIn(PUBLIC_FILE, name);
}

/** A public result file's content, as the node loads it at start; keystore_corrupt for anything else. */
export function parseDkgPublicResultFile(bytes: Uint8Array, keyId: string): DkgPublicResult {
  return parsePublicResult(bytes, dkgPublicResultFileName(keyId), keyId);
}

function parsePublicResult(bytes: Uint8Array, name: string, keyId: string): DkgPublicResult {
  if (bytes.length > MAX_DKG_PUBLIC_RESULT_FILE_BYTES) throw corrupt(`${name} is too large`);
  const result = parseDkgPublicResult(parseJson(bytes, name));
  if (result.keyId !== keyId) throw corrupt(`${name} holds the result of key id ${result.keyId}`);
  return result;
}

export class DkgStateFiles {
  private readonly votes = new Map<string, DkgVote>();
  private readonly publicOnly = new Map<string, DkgPublicResult>();
  private writing: Promise<unknown> = Promise.resolve();

  private constructor(private readonly dir: string | undefined) {}

  /** Nothing survives the process (tests, tools). */
  static inMemory(): DkgStateFiles {
    return new DkgStateFiles(undefined);
  }

  static async open(dir: string): Promise<DkgStateFiles> {
    await ensurePrivateDirectory(dir, 'DKG state');
    const state = new DkgStateFiles(dir);
    const names = await listDirectory(dir);
    await removeTempFiles(dir, names);
    for (const name of names) {
      if (isTempFileName(name)) continue;
      const vote = VOTE_FILE.exec(name);
      const pub = PUBLIC_FILE.exec(name);
      const keyId = vote?.[1] ?? pub?.[1];
      if (keyId === undefined) continue;
      assertKeyId(keyId);
      const bytes = await readBounded(join(dir, name), vote !== null ? MAX_DKG_VOTE_FILE_BYTES : MAX_DKG_PUBLIC_RESULT_FILE_BYTES, () => corrupt(`${name} is too large`));
      if (bytes === undefined) continue;
      if (vote !== null) state.votes.set(keyId, parseVote(bytes, name, keyId));
      else state.publicOnly.set(keyId, parsePublicResult(bytes, name, keyId));
    }
    return state;
  }

  /** The vote this node cast in a DKG of the key id, if any (in whichever session). */
  vote(keyId: string): DkgVote | undefined {
    const v = this.votes.get(keyId);
    return v === undefined ? undefined : { sessionId: v.sessionId, vote: Uint8Array.from(v.vote) };
  }

  /** Durable before it resolves; refused (conflict) when this node already voted otherwise for the key id. */
  recordVote(keyId: string, sessionIdHex: string, vote: Uint8Array): Promise<void> {
    assertKeyId(keyId);
    if (vote.length === 0 || vote.length > MAX_VOTE_BYTES) throw new TkmsError('bad_request', `a vote is 1..${MAX_VOTE_BYTES} bytes`);
    const copy = Uint8Array.from(vote);
    const same = (v: DkgVote | undefined): boolean => v !== undefined && v.sessionId === sessionIdHex && encodeHex(v.vote) === encodeHex(copy);
    return this.serial(async () => {
      const prior = this.votes.get(keyId);
      if (prior !== undefined) {
        if (same(prior)) return;
        throw new TkmsError('conflict', `this node already voted in DKG session ${prior.sessionId} of key id ${keyId}`);
      }
      if (this.dir !== undefined) {
        const name = dkgVoteFileName(keyId);
        const bytes = utf8ToBytes(JSON.stringify({ keyId, sessionId: sessionIdHex, vote: encodeBase64(copy) }));
        if ((await publishNewFile(this.dir, name, bytes)) === 'exists') {
          const onDisk = await readBounded(join(this.dir, name), MAX_DKG_VOTE_FILE_BYTES, () => corrupt(`${name} is too large`));
          if (!same(onDisk === undefined ? undefined : parseVote(onDisk, name, keyId))) throw new TkmsError('conflict', `this node already voted in another DKG session of key id ${keyId}`);
        }
      }
      this.votes.set(keyId, { sessionId: sessionIdHex, vote: copy });
    });
  }

  /** Results this node holds no share of (loaded at start). */
  publicOnlyResults(): DkgPublicResult[] {
    return [...this.publicOnly.values()];
  }

  /** Stores a certified result this node took no share of; durable before it resolves. */
  savePublicOnly(result: DkgPublicResult): Promise<void> {
    return this.serial(async () => {
      if (this.publicOnly.has(result.keyId)) return;
      if (this.dir !== undefined) await publishNewFile(this.dir, dkgPublicResultFileName(result.keyId), utf8ToBytes(JSON.stringify(result)));
      this.publicOnly.set(result.keyId, result);
    });
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.writing.then(fn, fn);
    this.writing = run.catch(() => undefined);
    return run;
  }
}
