import { isErrorCode, TkmsError } from '../core/index.ts';
import { isLoopbackHost } from '../net/http-address.ts';

/**
 * JSON over HTTP to the gateway, with the gateway's `{ error: { code, message } }` turned
 * back into a TkmsError of the same code. Uses the global fetch (Node 18+, browsers).
 */
export interface GatewayHttpOptions {
  /** May carry a path (`https://app.example/tkms/`, with or without the final slash): routes resolve under it. */
  baseUrl: string;
  timeoutMs?: number;
  fetch?: typeof fetch;
  /**
   * Allow plain `http://` to a host that is not loopback. Off by default: requests carry
   * plaintext (`/v1/encrypt`) and signed authorizations anyone on the path could read.
   */
  insecure?: boolean;
  /** Largest response body read from the gateway (default 8 MiB); a longer one is refused while it streams. */
  maxResponseBytes?: number;
}

/** The largest gateway answer is a handle of 1 MiB of ciphertext in base64 with its partials. */
export const DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024;

function redirectRefused(origin: string, status?: number): TkmsError {
  return new TkmsError('insecure_transport', `gateway ${origin} answered with a redirect${status === undefined ? '' : ` (HTTP ${status})`}; redirects are not followed, so the request is not sent anywhere else`, {
    reason: 'redirect',
  });
}

/** undici's fetch with redirect: 'error' rejects with a TypeError caused by "unexpected redirect". */
function isRedirectError(e: unknown): boolean {
  const cause = e instanceof Error ? e.cause : undefined;
  return cause instanceof Error && /redirect/i.test(cause.message);
}

/** The origin of the page (or worker) this runs in; undefined outside a browser. */
function pageOrigin(): string | undefined {
  const origin = (globalThis as { location?: { origin?: unknown } }).location?.origin;
  return typeof origin === 'string' && /^https?:\/\//.test(origin) ? origin : undefined;
}

export class GatewayHttp {
  private readonly base: URL;
  private readonly fetchFn: typeof fetch;
  private readonly timeoutMs: number;
  private readonly maxResponseBytes: number;

  constructor(opts: GatewayHttpOptions) {
    try {
      this.base = new URL(opts.baseUrl);
    } catch {
      throw new TkmsError('bad_request', `gateway URL ${opts.baseUrl} is not a URL`);
    }
    if (this.base.protocol !== 'https:' && this.base.protocol !== 'http:') throw new TkmsError('bad_request', `gateway URL ${this.base.origin} must be https:// (or http:// on loopback)`);
    if (this.base.protocol === 'http:' && !isLoopbackHost(this.base.hostname) && opts.insecure !== true) {
      throw new TkmsError(
        'insecure_transport',
        `refusing plain http:// to ${this.base.host}: plaintexts and signed requests would cross the network unencrypted; use https://, or allow it explicitly (--insecure, or the insecure option)`,
      );
    }
    // A gateway mounted under a path: `/v1/keys` must become `<base>/v1/keys`, not replace the path.
    if (!this.base.pathname.endsWith('/')) this.base.pathname += '/';
    this.base.search = '';
    this.base.hash = '';
    this.fetchFn = opts.fetch ?? globalThis.fetch.bind(globalThis);
    this.timeoutMs = opts.timeoutMs ?? 15_000;
    this.maxResponseBytes = opts.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  }

  /** The body, read chunk by chunk and refused as soon as it passes the bound (a gateway may not make us hold more). */
  private async readBody(res: Response): Promise<Uint8Array> {
    const tooLarge = (): TkmsError => new TkmsError('response_too_large', `gateway answer is larger than ${this.maxResponseBytes} bytes`, { maxResponseBytes: this.maxResponseBytes });
    const declared = Number(res.headers.get('content-length') ?? NaN);
    if (Number.isFinite(declared) && declared > this.maxResponseBytes) {
      await res.body?.cancel().catch(() => undefined);
      throw tooLarge();
    }
    if (res.body === null) return new Uint8Array(0);
    const reader = res.body.getReader();
    const chunks: Uint8Array[] = [];
    let size = 0;
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.length;
      if (size > this.maxResponseBytes) {
        await reader.cancel().catch(() => undefined);
        throw tooLarge();
      }
      chunks.push(value);
    }
    const out = new Uint8Array(size);
    let at = 0;
    for (const c of chunks) {
      out.set(c, at);
      at += c.length;
    }
    return out;
  }

  /** A route (`/v1/…`) under the base URL, path included. */
  url(route: string): URL {
    return new URL(route.replace(/^\/+/, ''), this.base);
  }

  private gatewayName(): string {
    return `${this.base.origin}${this.base.pathname === '/' ? '' : this.base.pathname}`;
  }

  /**
   * A browser gives the same bare TypeError ("Failed to fetch") for a gateway that is down and
   * for an answer its CORS check threw away. A `no-cors` request tells them apart: it needs no
   * CORS headers, so it succeeds (with an opaque answer) exactly when the gateway is reachable.
   */
  private async whyUnreachable(): Promise<TkmsError> {
    const page = pageOrigin();
    const gateway = this.gatewayName();
    if (page !== undefined && page !== this.base.origin) {
      if (page.startsWith('https:') && this.base.protocol === 'http:') {
        return new TkmsError('insecure_transport', `this page (${page}) is served over https, so the browser blocks requests to the plain-http gateway ${gateway} (mixed content): serve the gateway over https`, {
          reason: 'mixed_content',
        });
      }
      let reachable = false;
      try {
        // A bodiless GET: following a redirect sends nothing anywhere (no-cors allows no other mode).
        await this.fetchFn(this.base, { mode: 'no-cors', signal: AbortSignal.timeout(this.timeoutMs) });
        reachable = true;
      } catch {
        // Down too for a request that needs no CORS: the gateway is unreachable.
      }
      if (reachable) {
        return new TkmsError(
          'unavailable',
          `the browser blocked the cross-origin request from ${page} to the gateway ${gateway} (CORS): the gateway answers, but does not allow this page's origin; add ${page} to the gateway's allowed origins (config cors.allowedOrigins, or TKMS_GATEWAY_CORS_ORIGINS)`,
          { reason: 'cors_blocked', pageOrigin: page },
        );
      }
    }
    return new TkmsError('unavailable', `gateway ${gateway} is unreachable: nothing answers there (is it running, and is the URL right?)`, { reason: 'unreachable' });
  }

  async request<T = Record<string, unknown>>(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<{ status: number; json: T }> {
    let res: Response;
    let bytes: Uint8Array;
    try {
      res = await this.fetchFn(this.url(path), {
        method,
        headers: body === undefined ? { accept: 'application/json' } : { 'content-type': 'application/json', accept: 'application/json' },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        // A 307/308 would resend the body (plaintext, signed requests) wherever it points, http:// too.
        redirect: 'error',
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      // A fetch that does not refuse redirects itself (an injected one) hands the 3xx back.
      if (res.status >= 300 && res.status < 400) {
        await res.body?.cancel().catch(() => undefined);
        throw redirectRefused(this.base.origin, res.status);
      }
      bytes = await this.readBody(res);
    } catch (e) {
      if (e instanceof TkmsError) throw e;
      if (isRedirectError(e)) throw redirectRefused(this.base.origin);
      const timedOut = e instanceof Error && (e.name === 'TimeoutError' || e.name === 'AbortError');
      if (timedOut) throw new TkmsError('timeout', `gateway ${this.gatewayName()} did not answer in time`);
      throw await this.whyUnreachable();
    }
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder().decode(bytes));
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
