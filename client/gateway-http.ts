import { isErrorCode, TkmsError } from '../core/index.ts';

/**
 * JSON over HTTP to the gateway, with the gateway's `{ error: { code, message } }` turned
 * back into a TkmsError of the same code. Uses the global fetch (Node 18+, browsers).
 */
export interface GatewayHttpOptions {
  baseUrl: string;
  timeoutMs?: number;
  fetch?: typeof fetch;
}

export class GatewayHttp {
  private readonly base: URL;
  private readonly fetchFn: typeof fetch;
  private readonly timeoutMs: number;

  constructor(opts: GatewayHttpOptions) {
    try {
      this.base = new URL(opts.baseUrl);
    } catch {
      throw new TkmsError('bad_request', `gateway URL ${opts.baseUrl} is not a URL`);
    }
    this.fetchFn = opts.fetch ?? globalThis.fetch.bind(globalThis);
    this.timeoutMs = opts.timeoutMs ?? 15_000;
  }

  async request<T = Record<string, unknown>>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<{ status: number; json: T }> {
    let res: Response;
    try {
      res = await this.fetchFn(new URL(path, this.base), {
        method,
        headers: body === undefined ? { accept: 'application/json' } : { 'content-type': 'application/json', accept: 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (e) {
      const timedOut = e instanceof Error && (e.name === 'TimeoutError' || e.name === 'AbortError');
      throw new TkmsError(timedOut ? 'timeout' : 'unavailable', `gateway ${this.base.origin} ${timedOut ? 'did not answer in time' : 'is unreachable'}`);
    }
    let json: unknown;
    try {
      json = await res.json();
    } catch {
      throw new TkmsError('unavailable', `gateway answered HTTP ${res.status} without JSON`);
    }
    if (!res.ok) {
      const error = (json as { error?: { code?: unknown; message?: unknown; details?: unknown } } | null)?.error;
      const code = isErrorCode(error?.code) ? error.code : 'internal';
      const message = typeof error?.message === 'string' ? error.message : `gateway answered HTTP ${res.status}`;
      const details = typeof error?.details === 'object' && error.details !== null ? (error.details as Record<string, unknown>) : undefined;
      throw new TkmsError(code, message, details);
    }
    if (typeof json !== 'object' || json === null) throw new TkmsError('unavailable', 'gateway answered unexpected JSON');
    return { status: res.status, json: json as T };
  }
}
