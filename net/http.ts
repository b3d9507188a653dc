import { createServer, type IncomingMessage, type Server, type ServerOptions, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { isTkmsError, TkmsError } from '../core/index.ts';
import { BodyBudget, ConnectionGate, DEFAULT_HTTP_LIMITS, ResponseBudget, type HttpLimits, type RefusalReason } from './http-limits.ts';

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
  /** Runs before the body is read (rate limits): a throw refuses the request with its body unread. */
  admit?: (req: IncomingMessage) => void;
}

export interface HttpServerOptions {
  maxBodyBytes?: number;
  /** Called for every finished request (metrics). */
  onResponse?: (route: string, method: string, status: number, seconds: number) => void;
  /** Connection, body-bytes and slow-client bounds; without them only maxBodyBytes and Node's own timeouts apply. */
  limits?: HttpLimits;
  /** Called for every request or connection a limit refused (metrics). */
  onRefused?: (reason: RefusalReason) => void;
  /** Serve HTTPS with this certificate chain and private key (PEM). */
  tls?: { cert: Buffer; key: Buffer };
}

const DEFAULT_MAX_BODY_BYTES = 64 * 1024;

interface BodyGuard {
  budget: BodyBudget;
  ip: string;
  /** Bytes reserved so far; the caller releases them once the response is sent or the socket closes. */
  reserved: number;
  idleMs: number;
  totalMs: number;
  onTimeout: () => void;
}

async function readJsonBody(req: IncomingMessage, maxBytes: number, guard?: BodyGuard): Promise<unknown> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > maxBytes) {
    throw new TkmsError('payload_too_large', `request body is larger than ${maxBytes} bytes`);
  }
  // Reserve what the client declares before the first byte; a chunked body reserves as it comes.
  // The reservation outlives the read: the body and its decoded copies live until the answer.
  const reserve = (bytes: number): void => {
    if (guard === undefined || bytes <= guard.reserved) return;
    guard.budget.reserve(guard.ip, bytes - guard.reserved);
    guard.reserved = bytes;
  };
  let idle: NodeJS.Timeout | undefined;
  let total: NodeJS.Timeout | undefined;
  // A client that stops sending is cut off: its socket goes, with whatever it had sent.
  const cutOff = (): void => {
    guard?.onTimeout();
    req.destroy(new TkmsError('timeout', 'request body was not received in time'));
    req.socket.destroy();
  };
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    reserve(Number.isFinite(declared) ? declared : 0);
    if (guard !== undefined) {
      total = setTimeout(cutOff, guard.totalMs);
      idle = setTimeout(cutOff, guard.idleMs);
    }
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > maxBytes) throw new TkmsError('payload_too_large', `request body is larger than ${maxBytes} bytes`);
      reserve(size);
      idle?.refresh();
      chunks.push(chunk as Buffer);
    }
  } finally {
    clearTimeout(idle);
    clearTimeout(total);
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

/** Per request, what charges the server's response budget (absent without limits). */
const RESPONSE_RESERVERS = new WeakMap<IncomingMessage, (bytes: number) => void>();

/**
 * Charges `bytes` of a response about to be built to the client's address and to the server's
 * total, or throws the refusal (429 / 503). Held until the response is flushed or its socket
 * closes. Call it before reading or encoding anything large.
 */
export function reserveResponseBytes(req: IncomingMessage, bytes: number): void {
  RESPONSE_RESERVERS.get(req)?.(bytes);
}

/** The client's address, as the limits count it. */
export function clientIp(req: IncomingMessage): string {
  return req.socket.remoteAddress ?? 'unknown';
}

const REFUSAL_STATUS_LINE: Record<number, string> = { 429: 'Too Many Requests', 503: 'Service Unavailable' };

/** Counts connections per address; one past a cap is answered (plain HTTP) or dropped (TLS) before anything is read. */
function gateConnections(server: Server, limits: HttpLimits, tls: boolean, onRefused?: (reason: RefusalReason) => void): void {
  const gate = new ConnectionGate(limits);
  server.on('connection', (socket: Socket) => {
    const ip = socket.remoteAddress ?? 'unknown';
    const refusal = gate.admit(ip);
    if (refusal === undefined) {
      socket.once('close', () => gate.release(ip));
      return;
    }
    onRefused?.(refusal.code === 'rate_limited' ? 'connections_per_ip' : 'connections');
    if (tls) {
      socket.destroy();
      return;
    }
    const body = JSON.stringify(refusal.toJSON());
    const status = refusal.httpStatus;
    socket.end(
      `HTTP/1.1 ${status} ${REFUSAL_STATUS_LINE[status] ?? 'Error'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nretry-after: 1\r\nconnection: close\r\n\r\n${body}`,
    );
    // A client that keeps sending does not keep the socket.
    setTimeout(() => socket.destroy(), 1_000).unref();
  });
}

export async function startHttpServer(host: string, port: number, routes: Route[], log: Logger, name: string, opts: HttpServerOptions = {}): Promise<Server> {
  const maxBodyBytes = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const limits = opts.limits;
  const budget = limits === undefined ? undefined : new BodyBudget(limits);
  const responseBudget = limits === undefined ? undefined : new ResponseBudget(limits);
  const maxPipelined = limits?.maxPipelinedRequests ?? DEFAULT_HTTP_LIMITS.maxPipelinedRequests;
  // One request per socket is answered at a time: a pipelined request waits (its body unread)
  // until the answer before it is flushed, so a client that never reads holds one answer, not hundreds.
  const sockets = new WeakMap<Socket, { busy: boolean; waiting: (() => void)[] }>();
  const serverOptions: ServerOptions =
    limits === undefined
      ? {}
      : {
          headersTimeout: limits.headersTimeoutMs,
          requestTimeout: limits.headersTimeoutMs + limits.bodyTimeoutMs,
          // Node checks both timeouts on this period: a slow client is cut within a fraction of its timeout.
          connectionsCheckingInterval: Math.max(100, Math.min(1_000, Math.floor(limits.headersTimeoutMs / 4))),
        };
  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const socket = req.socket;
    let state = sockets.get(socket);
    if (state === undefined) {
      const s = { busy: false, waiting: [] as (() => void)[] };
      sockets.set(socket, (state = s));
      socket.once('close', () => s.waiting.splice(0));
    }
    const turn = state;
    const next = (): void => {
      // A socket cut off (or gone) takes its waiting requests with it.
      if (socket.destroyed) turn.waiting.splice(0);
      const run = turn.waiting.shift();
      if (run === undefined) turn.busy = false;
      else run();
    };
    if (turn.busy) {
      if (turn.waiting.length >= maxPipelined) {
        opts.onRefused?.('pipelined_requests');
        socket.destroy();
        return;
      }
      turn.waiting.push(() => serve(req, res, next));
      return;
    }
    turn.busy = true;
    serve(req, res, next);
  };
  const serve = (req: IncomingMessage, res: ServerResponse, done: () => void): void => {
    const started = performance.now();
    const ip = clientIp(req);
    let bodyHeld = 0;
    let responseHeld = 0;
    let flushTimer: NodeJS.Timeout | undefined;
    let closed = false;
    res.once('close', () => {
      closed = true;
      clearTimeout(flushTimer);
      budget?.release(ip, bodyHeld);
      responseBudget?.release(ip, responseHeld);
      done();
    });
    if (responseBudget !== undefined) {
      RESPONSE_RESERVERS.set(req, (bytes) => {
        // Nobody is left to read it, and nothing would release it.
        if (closed) throw new TkmsError('unavailable', 'the client went away');
        responseBudget.reserve(ip, bytes);
        responseHeld += bytes;
      });
    }
    const answer = (result: RouteResult): void => {
      if (limits !== undefined && !closed) {
        // A client that does not read its answer loses the connection, and what it held.
        flushTimer = setTimeout(() => {
          opts.onRefused?.('response_timeout');
          req.socket.destroy();
        }, limits.responseTimeoutMs);
        res.once('finish', () => clearTimeout(flushTimer));
      }
      send(res, result);
    };
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
        try {
          found.route.admit?.(req);
        } catch (e) {
          if (isTkmsError(e, 'rate_limited')) opts.onRefused?.('rate_limited');
          throw e;
        }
        const guard: BodyGuard | undefined =
          budget === undefined || limits === undefined
            ? undefined
            : { budget, ip, reserved: 0, idleMs: limits.bodyIdleTimeoutMs, totalMs: limits.bodyTimeoutMs, onTimeout: () => opts.onRefused?.('body_timeout') };
        let body: unknown;
        try {
          body = method === 'POST' || method === 'DELETE' ? await readJsonBody(req, maxBodyBytes, guard) : undefined;
        } catch (e) {
          const reason = isTkmsError(e) ? e.details?.reason : undefined;
          if (reason === 'body_bytes_in_flight' || reason === 'body_bytes_in_flight_per_ip') opts.onRefused?.(reason);
          throw e;
        } finally {
          bodyHeld = guard?.reserved ?? 0;
          // Already closed: the close handler has run and released nothing of this.
          if (closed) {
            budget?.release(ip, bodyHeld);
            bodyHeld = 0;
          }
        }
        answer(await found.route.handler(req, url, body, found.params));
      } catch (e) {
        if (req.socket.destroyed) {
          // Cut off or gone: nobody to answer; the status is for the metrics.
          res.statusCode = 408;
          return;
        }
        if (!isTkmsError(e)) log.error({ server: name, err: e instanceof Error ? e.message : 'error' }, 'unexpected HTTP handler error');
        const err = isTkmsError(e) ? e : new TkmsError('internal', 'internal error');
        // A body refused or cut short is not drained: answer, then close the connection.
        const hasBody = (req.headers['content-length'] ?? '0') !== '0' || req.headers['transfer-encoding'] !== undefined;
        if (hasBody && !req.complete) res.setHeader('connection', 'close');
        const reason = err.details?.reason;
        if (reason === 'response_bytes_in_flight' || reason === 'response_bytes_in_flight_per_ip') opts.onRefused?.(reason);
        answer(jsonError(err));
      } finally {
        opts.onResponse?.(routeName, req.method ?? 'GET', res.statusCode, (performance.now() - started) / 1000);
      }
    })();
  };
  const server: Server = opts.tls === undefined ? createServer(serverOptions, handle) : (createHttpsServer({ ...serverOptions, cert: opts.tls.cert, key: opts.tls.key, ...(limits ? { handshakeTimeout: limits.headersTimeoutMs } : {}) }, handle) as unknown as Server);
  server.on('clientError', onClientError);
  if (limits !== undefined) gateConnections(server, limits, opts.tls !== undefined, opts.onRefused);
  server.keepAliveTimeout = 5_000;
  if (limits === undefined) {
    server.headersTimeout = 10_000;
    server.requestTimeout = 30_000;
  }
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
