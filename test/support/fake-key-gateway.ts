import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { accountFromSecretKey } from '../../client/account.ts';
import { ERROR_CODES, isTkmsError, TkmsError, type Deployment } from '../../core/index.ts';
import { newBook } from './key-change-fixtures.ts';
import { KeyChangeMessage, type KeyChange } from '../../core/keys/key-change.ts';
import { currentVersionAt, keyStateAt, keyVersionsAt, materialKeyId, versionStateAt, type ManagedKey } from '../../core/keys/key-model.ts';

/**
 * A gateway of one committee for the client's managed-key tests: the key routes of
 * KEYS-CONTRACT.md over a real KeyBook (core/keys), so every change a client signs must pass the
 * checks every node runs; /v1/encrypt records what it was asked. Unit tests only.
 */
export const DEPLOYMENT: Deployment = { committeeId: 'key-admin-test' };
export const GATEWAY = 'http://127.0.0.1:1';
export const alice = accountFromSecretKey('0x' + '11'.repeat(32));
export const bob = accountFromSecretKey('0x' + '22'.repeat(32));

const now = () => Math.floor(Date.now() / 1000);

/** The KeyView the contract describes, from the book's key at `at`. */
function view(key: ManagedKey, at: number): Record<string, unknown> {
  const current = currentVersionAt(key, at);
  return {
    ...key,
    state: keyStateAt(key, at),
    versions: keyVersionsAt(key, at).map((v) => ({ ...v, materialKeyId: materialKeyId(key.keyId, v.version), state: versionStateAt(v, at), publicKey: '02' + 'ab'.repeat(32) })),
    currentVersion: current?.version ?? null,
  };
}

interface Posted {
  path: string;
  body: string;
}

export class FakeGateway {
  readonly book = newBook({ deployment: DEPLOYMENT, creation: { creators: 'open', perCreatorQuota: 100 }, allowShortDeletionWindow: true, maxKeys: 100, maxChangesPerKey: 100 });
  readonly posted: Posted[] = [];
  readonly gets: string[] = [];
  /** How many of the next change posts answer 202 (applied, not yet effective). */
  pending = 0;
  /** Routes a test adds (a DKG result, handles, delegations); asked first, undefined passes on. */
  extra: ((method: string, url: URL, body: string) => Response | Promise<Response> | undefined) | undefined;

  readonly fetch = (async (input: URL | RequestInfo, init?: RequestInit): Promise<Response> => {
    const url = new URL(String(input));
    const method = init?.method ?? 'GET';
    const body = typeof init?.body === 'string' ? init.body : '';
    try {
      if (method === 'GET') this.gets.push(`${url.pathname}${url.search}`);
      else this.posted.push({ path: url.pathname, body });
      return await this.route(method, url, body);
    } catch (e) {
      if (!isTkmsError(e)) throw e;
      return json(ERROR_CODES[e.code], { error: { code: e.code, message: e.message } });
    }
  }) as typeof fetch;

  private route(method: string, url: URL, body: string): Response | Promise<Response> {
    const added = this.extra?.(method, url, body);
    if (added !== undefined) return added;
    // Path parameters are percent-encoded (an alias holds "/"): match the raw path, decode each parameter.
    const path = url.pathname;
    if (method === 'GET' && path === '/v1/committee') return json(200, { committeeId: DEPLOYMENT.committeeId, epoch: 0, handovers: [], next: null });
    if (method === 'GET' && path === '/v1/keys') {
      const state = url.searchParams.get('state');
      return json(200, { keys: [], managed: this.book.list(state === null ? {} : { state: state as ManagedKey['state'] }, now()).map((k) => view(k, now())) });
    }
    if (method === 'POST' && (path === '/v1/keys' || /^\/v1\/keys\/[^/]+\/changes$/.test(path))) {
      const change = KeyChangeMessage.decode((JSON.parse(body) as { change: unknown }).change);
      const target = /^\/v1\/keys\/([^/]+)\/changes$/.exec(path);
      if (target && decodeURIComponent(target[1]!) !== change.keyId) throw new TkmsError('bad_request', 'the change is for another key');
      if (!this.book.isApplied(change)) {
        // As the real gateway: an alias another key holds is refused before anything is sent.
        this.book.requireAliasesFree(change);
        this.book.commit(change, this.book.check(change));
      }
      const effective = this.pending === 0;
      if (!effective) this.pending--;
      return json(effective ? 200 : 202, { key: view(this.book.get(change.keyId)!, now()), acknowledgedBy: effective ? [1, 2, 3] : [1], needed: 3, effective, failures: [] });
    }
    let m = /^\/v1\/keys\/([^/]+)\/changes$/.exec(path);
    if (method === 'GET' && m) {
      const after = Number(url.searchParams.get('after') ?? 0);
      return json(200, { changes: this.book.history(decodeURIComponent(m[1]!), after, 256).map((c) => KeyChangeMessage.encode(c)), next: null });
    }
    m = /^\/v1\/keys\/([^/]+)\/policy$/.exec(path);
    if (method === 'GET' && m) {
      const key = this.book.resolve(decodeURIComponent(m[1]!));
      if (key === undefined) throw new TkmsError('unknown_key', `no key ${m[1]}`);
      return json(200, { keyId: key.keyId, sequence: key.sequence, policy: key.policy });
    }
    m = /^\/v1\/keys\/([^/]+)$/.exec(path);
    if (method === 'GET' && m) {
      const key = this.book.resolve(decodeURIComponent(m[1]!));
      if (key === undefined) throw new TkmsError('unknown_key', `no key ${m[1]}`);
      return json(200, { managed: view(key, now()) });
    }
    if (method === 'POST' && path === '/v1/encrypt') {
      const request = (JSON.parse(body) as { request: { keyId: string; owner: string } }).request;
      return json(200, { handle: '0x' + '77'.repeat(32), keyId: request.keyId, K: '0x02', nonce: '0x00', ciphertextHash: '0x00', owner: request.owner, kProof: '0x00', created: true });
    }
    throw new TkmsError('not_found', `no route ${method} ${path}`);
  }

  /** Serves this gateway over HTTP on loopback (for the CLI, which takes a URL); close() stops it. */
  async listen(): Promise<{ url: string; close: () => Promise<void> }> {
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        void this.fetch(`http://127.0.0.1${req.url}`, { method: req.method ?? 'GET', ...(body === '' ? {} : { body }) }).then(async (answer) => {
          res.writeHead(answer.status, { 'content-type': 'application/json' });
          res.end(await answer.text());
        });
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    return { url: `http://127.0.0.1:${port}`, close: () => new Promise((resolve) => server.close(() => resolve())) };
  }

  changesPosted(): KeyChange[] {
    return this.posted.filter((p) => p.path.startsWith('/v1/keys')).map((p) => KeyChangeMessage.decode((JSON.parse(p.body) as { change: unknown }).change));
  }
}

export function json(status: number, value: unknown): Response {
  return new Response(JSON.stringify(value), { status, headers: { 'content-type': 'application/json' } });
}

