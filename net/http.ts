import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { isTkmsError, TkmsError } from '../core/index.ts';

/**
 * A small JSON router over node:http, shared by the node's health/admin listeners and the
 * gateway API. Routes are exact paths, "{name}" segment patterns, or (legacy) a prefix
 * ending with "/" that matches one more segment. Every error leaves as
 * `{ "error": { "code", "message" } }` with the status of its code.
 */
export type RouteHandler = (req: IncomingMessage, url: URL, body: unknown, params: Record<string, string>) => Promise<RouteResult> | RouteResult;
export interface RouteResult {
  status: number;
  json?: unknown;
  text?: string;
  contentType?: string;
  headers?: Record<string, string>;
}
export type Method = 'GET' | 'POST' | 'DELETE';
export interface Route {
  method: Method;
  path: string;
  handler: RouteHandler;
}

export interface HttpServerOptions {
  maxBodyBytes?: number;
  /** Called for every finished request (metrics). */
  onResponse?: (route: string, method: string, status: number, seconds: number) => void;
}

const DEFAULT_MAX_BODY_BYTES = 64 * 1024;

async function readJsonBody(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) {
    throw new TkmsError('payload_too_large', `request body is larger than ${maxBytes} bytes`);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > maxBytes) throw new TkmsError('payload_too_large', `request body is larger than ${maxBytes} bytes`);
    chunks.push(chunk as Buffer);
  }
  if (size === 0) return undefined;
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new TkmsError('bad_request', 'request body is not valid JSON');
  }
}

function send(res: ServerResponse, result: RouteResult): void {
  const headers = { ...(result.headers ?? {}) };
  if (result.text !== undefined) {
    res.writeHead(result.status, { 'content-type': result.contentType ?? 'text/plain; charset=utf-8', ...headers });
    res.end(result.text);
    return;
  }
  res.writeHead(result.status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers });
  res.end(JSON.stringify(result.json ?? {}));
}

/** Returns the path parameters when `pathname` matches the route's path, else undefined. */
export function matchPath(pattern: string, pathname: string): Record<string, string> | undefined {
  if (pattern.endsWith('/')) {
    if (!pathname.startsWith(pattern)) return undefined;
    const rest = pathname.slice(pattern.length);
    return rest.length > 0 && !rest.includes('/') ? {} : undefined;
  }
  if (!pattern.includes('{')) return pattern === pathname ? {} : undefined;
  const want = pattern.split('/');
  const got = pathname.split('/');
  if (want.length !== got.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i++) {
    const w = want[i]!;
    const g = got[i]!;
    if (w.startsWith('{') && w.endsWith('}')) {
      if (g.length === 0) return undefined;
      let value: string;
      try {
        value = decodeURIComponent(g);
      } catch {
        return undefined;
      }
      params[w.slice(1, -1)] = value;
    } else if (w !== g) return undefined;
  }
  return params;
}

/**
 * The URL of a request target. An origin-form target ("/path?query") is a path even when it
 * starts with "//" (resolved against a base, "//host/x" would be a protocol-relative URL: another
 * host, and path "/x"). Anything unparsable is a bad_request, not an internal error.
 */
export function requestUrl(target: string | undefined): URL {
  const raw = target ?? '/';
  try {
    return raw.startsWith('/') ? new URL(`http://localhost${raw}`) : new URL(raw);
  } catch {
    throw new TkmsError('bad_request', 'malformed request target');
  }
}

/** A parser-level refusal (bad request line, headers too large…) still answers the typed JSON error. */
function onClientError(err: NodeJS.ErrnoException, socket: Duplex): void {
  // A client too slow to send its request, or gone, gets no answer.
  if (!socket.writable || err.code === 'ECONNRESET' || err.code === 'ERR_HTTP_REQUEST_TIMEOUT' || err.code === 'HPE_HEADERS_TIMEOUT') {
    socket.destroy();
    return;
  }
  const e =
    err.code === 'HPE_HEADER_OVERFLOW' ? new TkmsError('payload_too_large', 'request headers are too large') : new TkmsError('bad_request', 'malformed HTTP request');
  const body = JSON.stringify(e.toJSON());
  const reason = e.httpStatus === 413 ? 'Payload Too Large' : 'Bad Request';
  socket.end(`HTTP/1.1 ${e.httpStatus} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
}

export function jsonError(e: TkmsError): RouteResult {
  const retry = e.details?.retryAfterSeconds;
  // RFC 9110 Retry-After, so generic HTTP clients and proxies back off without reading the body.
  const headers = typeof retry === 'number' && Number.isSafeInteger(retry) && retry >= 0 ? { 'retry-after': String(retry) } : undefined;
  return { status: e.httpStatus, json: e.toJSON(), ...(headers ? { headers } : {}) };
}

export async function startHttpServer(host: string, port: number, routes: Route[], log: Logger, name: string, opts: HttpServerOptions = {}): Promise<Server> {
  const maxBodyBytes = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const server = createServer((req, res) => {
    const started = performance.now();
    let routeName = 'unmatched';
    void (async () => {
      try {
        const url = requestUrl(req.url);
        const method = req.method ?? 'GET';
        let found: { route: Route; params: Record<string, string> } | undefined;
        let pathKnown = false;
        for (const route of routes) {
          const params = matchPath(route.path, url.pathname);
          if (params === undefined) continue;
          pathKnown = true;
          if (route.method === method) {
            found = { route, params };
            break;
          }
        }
        if (found === undefined) {
          throw pathKnown ? new TkmsError('bad_request', `method ${method} is not allowed on ${url.pathname}`) : new TkmsError('not_found', `no route ${url.pathname}`);
        }
        routeName = found.route.path;
        const body = method === 'POST' || method === 'DELETE' ? await readJsonBody(req, maxBodyBytes) : undefined;
        send(res, await found.route.handler(req, url, body, found.params));
      } catch (e) {
        if (!isTkmsError(e)) log.error({ server: name, err: e instanceof Error ? e.message : 'error' }, 'unexpected HTTP handler error');
        const err = isTkmsError(e) ? e : new TkmsError('internal', 'internal error');
        // An oversized body is not drained: answer, then close the connection.
        if (err.code === 'payload_too_large') res.setHeader('connection', 'close');
        send(res, jsonError(err));
      } finally {
        opts.onResponse?.(routeName, req.method ?? 'GET', res.statusCode, (performance.now() - started) / 1000);
      }
    })();
  });
  server.on('clientError', onClientError);
  server.keepAliveTimeout = 5_000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 30_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  log.info({ server: name, host: addr.address, port: addr.port }, 'HTTP listener ready');
  return server;
}

export async function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}
