import { createServer, type IncomingMessage, type Server, type ServerOptions, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import cors from '@fastify/cors';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { Logger } from 'pino';
import { isTkmsError, TkmsError } from '../core/index.ts';
import { BodyBudget, ConnectionGate, DEFAULT_HTTP_LIMITS, ResponseBudget, type HttpLimits, type RefusalReason } from './http-limits.ts';
import { compileRequestValidator, createRequestValidator, type RequestSchema } from './http-validation.ts';

/**
 * The HTTP server of the gateway API and of the node's health/admin listeners: fastify over a
 * node:http (or https) server whose connection gate, timeouts and one-request-per-socket queue
 * act before fastify sees a request. Routes are exact paths or "{name}" segment patterns. A route's body and path
 * parameters are checked by its compiled schema (no coercion, no removal: a stray field is a
 * 400); a declared body must be sent as JSON (415 otherwise). Bodies are read under the byte
 * budget, before any of it is parsed; every error
 * leaves as `{ "error": { "code", "message" } }` with the status of its code.
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
  /** Checked before the handler runs; the handler then gets the body and parameters as validated. */
  schema?: RequestSchema;
}

export interface CorsOptions {
  /** Exact origins ("https://app.example") allowed to call from a browser; empty: no CORS headers. */
  allowedOrigins: readonly string[];
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
  cors?: CorsOptions;
  /** Every route is served under this path too ("/tkms"), so a gateway behind a path-routing proxy works as a base URL. */
  basePath?: string;
}

const DEFAULT_MAX_BODY_BYTES = 64 * 1024;
const CORS_METHODS = ['GET', 'POST', 'DELETE'];
const CORS_HEADERS = ['content-type', 'accept'];

interface BodyGuard {
  budget: BodyBudget;
  ip: string;
  /** Bytes reserved so far; released once the response is sent or the socket closes. */
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
  // Taken now: destroying the request (as a failed read does) sets req.socket to null.
  const socket = req.socket;
  const cutOff = (): void => {
    guard?.onTimeout();
    req.destroy(new TkmsError('timeout', 'request body was not received in time'));
    socket.destroy();
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

/** Returns the path parameters when `pathname` matches the route's path, else undefined. */
export function matchPath(pattern: string, pathname: string): Record<string, string> | undefined {
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

/** The route's path in the router's syntax: "{name}" → ":name". */
export function routerPath(path: string): string {
  return path.replace(/\{([^}/]+)\}/g, ':$1');
}

/**
 * Whether a raw (still percent-encoded) path matches a router pattern segment for segment. The
 * router decodes a path before matching, so "/%6detrics" would reach /metrics past a proxy rule
 * that blocks "/metrics"; only parameters may be encoded here, and none may be empty.
 */
export function literalSegmentsMatch(pattern: string, rawPath: string): boolean {
  const want = pattern.split('/');
  const got = rawPath.split('/');
  if (got.length !== want.length) return false;
  return want.every((segment, i) => (segment.startsWith(':') ? got[i] !== '' : got[i] === segment));
}

/** A base path in canonical form: "" for the root, else "/a/b" (leading slash, no trailing one). */
export function normalizeBasePath(basePath: string | undefined): string {
  const trimmed = (basePath ?? '/').replace(/\/+$/, '');
  if (trimmed === '') return '';
  if (!trimmed.startsWith('/') || trimmed.includes('//') || /[?#{}:*\s]/.test(trimmed)) throw new TkmsError('bad_request', `basePath ${JSON.stringify(basePath)} must be a path like "/tkms"`);
  return trimmed;
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

/** What the server tracks for one request, from before fastify sees it until its socket lets go. */
interface Exchange {
  ip: string;
  started: number;
  route: string;
  bodyHeld: number;
  responseHeld: number;
  closed: boolean;
  flushTimer?: NodeJS.Timeout;
}
const EXCHANGES = new WeakMap<IncomingMessage, Exchange>();
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

/**
 * The node:http(s) server under fastify: connections gated, timeouts set, and one request per
 * socket answered at a time — a pipelined request waits (its body unread) until the answer
 * before it is flushed, so a client that never reads holds one answer, not hundreds.
 */
function serverFactory(opts: HttpServerOptions, responseBudget: ResponseBudget | undefined, bodyBudget: BodyBudget | undefined) {
  const limits = opts.limits;
  const maxPipelined = limits?.maxPipelinedRequests ?? DEFAULT_HTTP_LIMITS.maxPipelinedRequests;
  return (fastifyHandler: (req: IncomingMessage, res: ServerResponse) => void): Server => {
    const sockets = new WeakMap<Socket, { busy: boolean; waiting: (() => void)[] }>();
    const serve = (req: IncomingMessage, res: ServerResponse, done: () => void): void => {
      const exchange: Exchange = { ip: clientIp(req), started: performance.now(), route: 'unmatched', bodyHeld: 0, responseHeld: 0, closed: false };
      EXCHANGES.set(req, exchange);
      res.once('close', () => {
        exchange.closed = true;
        clearTimeout(exchange.flushTimer);
        bodyBudget?.release(exchange.ip, exchange.bodyHeld);
        responseBudget?.release(exchange.ip, exchange.responseHeld);
        // Cut off or gone before the answer: the status is for the metrics.
        opts.onResponse?.(exchange.route, req.method ?? 'GET', res.writableFinished ? res.statusCode : 408, (performance.now() - exchange.started) / 1000);
        done();
      });
      if (responseBudget !== undefined) {
        RESPONSE_RESERVERS.set(req, (bytes) => {
          // Nobody is left to read it, and nothing would release it.
          if (exchange.closed) throw new TkmsError('unavailable', 'the client went away');
          responseBudget.reserve(exchange.ip, bytes);
          exchange.responseHeld += bytes;
        });
      }
      fastifyHandler(req, res);
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
    const serverOptions: ServerOptions =
      limits === undefined
        ? {}
        : {
            headersTimeout: limits.headersTimeoutMs,
            requestTimeout: limits.headersTimeoutMs + limits.bodyTimeoutMs,
            // Node checks both timeouts on this period: a slow client is cut within a fraction of its timeout.
            connectionsCheckingInterval: Math.max(100, Math.min(1_000, Math.floor(limits.headersTimeoutMs / 4))),
          };
    const server: Server =
      opts.tls === undefined
        ? createServer(serverOptions, handle)
        : (createHttpsServer({ ...serverOptions, cert: opts.tls.cert, key: opts.tls.key, ...(limits ? { handshakeTimeout: limits.headersTimeoutMs } : {}) }, handle) as unknown as Server);
    if (limits !== undefined) gateConnections(server, limits, opts.tls !== undefined, opts.onRefused);
    server.keepAliveTimeout = 5_000;
    if (limits === undefined) {
      server.headersTimeout = 10_000;
      server.requestTimeout = 30_000;
    }
    return server;
  };
}

const JSON_TYPE = /^application\/json\s*(?:;|$)/i;

function send(reply: FastifyReply, result: RouteResult): FastifyReply {
  reply.code(result.status);
  if (result.text !== undefined) {
    reply.header('content-type', result.contentType ?? 'text/plain; charset=utf-8');
    if (result.headers) reply.headers(result.headers);
    return reply.send(result.text);
  }
  reply.header('content-type', 'application/json').header('cache-control', 'no-store');
  if (result.headers) reply.headers(result.headers);
  return reply.send(JSON.stringify(result.json ?? {}));
}

const FASTIFY_ERRORS: Record<string, TkmsError> = {
  FST_ERR_BAD_URL: new TkmsError('not_found', 'no route for this malformed path'),
  FST_ERR_CTP_INVALID_MEDIA_TYPE: new TkmsError('unsupported_media_type', 'request bodies must be application/json'),
  FST_ERR_CTP_BODY_TOO_LARGE: new TkmsError('payload_too_large', 'request body is too large'),
};

/** Builds the fastify app (routes, hooks, error mapping), without listening: tests can inject into it. */
export async function buildHttpApp(routes: Route[], log: Logger, name: string, opts: HttpServerOptions = {}): Promise<FastifyInstance> {
  const maxBodyBytes = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const limits = opts.limits;
  const bodyBudget = limits === undefined ? undefined : new BodyBudget(limits);
  const responseBudget = limits === undefined ? undefined : new ResponseBudget(limits);
  const basePath = normalizeBasePath(opts.basePath);
  const app = Fastify({
    logger: false,
    serverFactory: serverFactory(opts, responseBudget, bodyBudget),
    clientErrorHandler: onClientError,
    bodyLimit: maxBodyBytes,
    exposeHeadRoutes: false,
    return503OnClosing: false,
    // A request target's length is bounded by the header limit; a long parameter is the handler's to refuse.
    routerOptions: { maxParamLength: 16 * 1024, ignoreTrailingSlash: false, ignoreDuplicateSlashes: false, caseSensitive: true },
    frameworkErrors: (err, _req, reply) => {
      void send(reply, jsonError(FASTIFY_ERRORS[err.code] ?? new TkmsError('bad_request', 'malformed request')));
    },
  });
  const validator = createRequestValidator();
  app.setValidatorCompiler(({ schema, httpPart }) => compileRequestValidator(validator, schema, httpPart ?? 'body') as never);

  if (opts.cors !== undefined && opts.cors.allowedOrigins.length > 0) {
    if (opts.cors.allowedOrigins.includes('*')) throw new TkmsError('bad_request', 'cors.allowedOrigins lists exact origins; "*" is not allowed');
    await app.register(cors, {
      origin: [...opts.cors.allowedOrigins],
      methods: CORS_METHODS,
      allowedHeaders: CORS_HEADERS,
      exposedHeaders: ['retry-after'],
      credentials: false,
      maxAge: 600,
      strictPreflight: false,
    });
  }

  // Bodies are JSON, read by hand: under the byte budget, with idle and total timeouts.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', async (request: FastifyRequest) => {
    // No route: answered 404/405 with the body unread (and the connection closed).
    if (request.is404) return undefined;
    const req = request.raw;
    const type = req.headers['content-type'];
    if (type === undefined || !JSON_TYPE.test(type)) {
      throw new TkmsError('unsupported_media_type', 'request bodies must be application/json');
    }
    const exchange = EXCHANGES.get(req);
    const guard: BodyGuard | undefined =
      bodyBudget === undefined || limits === undefined || exchange === undefined
        ? undefined
        : { budget: bodyBudget, ip: exchange.ip, reserved: 0, idleMs: limits.bodyIdleTimeoutMs, totalMs: limits.bodyTimeoutMs, onTimeout: () => opts.onRefused?.('body_timeout') };
    try {
      return await readJsonBody(req, maxBodyBytes, guard);
    } catch (e) {
      const reason = isTkmsError(e) ? e.details?.reason : undefined;
      if (reason === 'body_bytes_in_flight' || reason === 'body_bytes_in_flight_per_ip') opts.onRefused?.(reason);
      throw e;
    } finally {
      if (exchange !== undefined && guard !== undefined) {
        exchange.bodyHeld = guard.reserved;
        // Already closed: the close handler has run and released nothing of this.
        if (exchange.closed) {
          bodyBudget?.release(exchange.ip, exchange.bodyHeld);
          exchange.bodyHeld = 0;
        }
      }
    }
  });

  app.addHook('onSend', async (request, reply, payload) => {
    const req = request.raw;
    // A body refused or left unread is not drained: answer, then close the connection.
    const hasBody = (req.headers['content-length'] ?? '0') !== '0' || req.headers['transfer-encoding'] !== undefined;
    if (hasBody && !req.complete) reply.header('connection', 'close');
    const exchange = EXCHANGES.get(req);
    if (limits !== undefined && exchange !== undefined && !exchange.closed) {
      // A client that does not read its answer loses the connection, and what it held.
      const socket = reply.raw.socket ?? req.socket;
      exchange.flushTimer = setTimeout(() => {
        opts.onRefused?.('response_timeout');
        socket?.destroy();
      }, limits.responseTimeoutMs);
      reply.raw.once('finish', () => clearTimeout(exchange.flushTimer));
    }
    return payload;
  });

  app.setErrorHandler((error: unknown, request, reply) => {
    // A body read that failed mid-stream destroyed the request, which drops request.raw.socket;
    // the response still holds the socket and can answer on it.
    const socket = reply.raw.socket ?? request.raw.socket;
    if (socket === null || socket.destroyed) {
      // Cut off or gone: nobody to answer.
      reply.hijack();
      return;
    }
    let err: TkmsError;
    if (isTkmsError(error)) err = error;
    else if (typeof error === 'object' && error !== null && typeof (error as { code?: unknown }).code === 'string' && FASTIFY_ERRORS[(error as { code: string }).code] !== undefined) {
      err = FASTIFY_ERRORS[(error as { code: string }).code]!;
    } else {
      log.error({ server: name, err: error instanceof Error ? error.message : 'error' }, 'unexpected HTTP handler error');
      err = new TkmsError('internal', 'internal error');
    }
    const reason = err.details?.reason;
    if (reason === 'response_bytes_in_flight' || reason === 'response_bytes_in_flight_per_ip') opts.onRefused?.(reason);
    return send(reply, jsonError(err));
  });

  const prefixes = basePath === '' ? [''] : ['', basePath];
  app.setNotFoundHandler((request, reply) => {
    const pathname = request.url.split('?', 1)[0]!;
    const local = basePath !== '' && pathname.startsWith(`${basePath}/`) ? pathname.slice(basePath.length) : pathname;
    const allowed = [...new Set(routes.filter((r) => matchPath(r.path, local) !== undefined || matchPath(r.path, pathname) !== undefined).map((r) => r.method))];
    if (allowed.length === 0) return send(reply, jsonError(new TkmsError('not_found', `no route ${pathname.slice(0, 200)}`)));
    return send(reply, { ...jsonError(new TkmsError('method_not_allowed', `method ${request.method} is not allowed on ${pathname.slice(0, 200)}`)), headers: { allow: allowed.join(', ') } });
  });

  for (const route of routes) {
    for (const prefix of prefixes) {
      app.route({
        method: route.method,
        url: `${prefix}${routerPath(route.path)}`,
        ...(route.schema === undefined ? {} : { schema: route.schema }),
        onRequest: async (request) => {
          const rawPath = (request.raw.url ?? '').split('?', 1)[0]!;
          if (!literalSegmentsMatch(`${prefix}${routerPath(route.path)}`, rawPath)) throw new TkmsError('not_found', `no route ${rawPath.slice(0, 200)}`);
          const exchange = EXCHANGES.get(request.raw);
          if (exchange !== undefined) exchange.route = route.path;
          try {
            route.admit?.(request.raw);
          } catch (e) {
            if (isTkmsError(e, 'rate_limited')) opts.onRefused?.('rate_limited');
            throw e;
          }
        },
        handler: async (request, reply) => {
          const url = new URL(`http://localhost${prefix === '' ? request.url : request.url.slice(prefix.length)}`);
          const params = request.params as Record<string, string>;
          return send(reply, await route.handler(request.raw, url, request.body, params));
        },
      });
    }
  }
  await app.ready();
  return app;
}

const APPS = new WeakMap<Server, FastifyInstance>();

export async function startHttpServer(host: string, port: number, routes: Route[], log: Logger, name: string, opts: HttpServerOptions = {}): Promise<Server> {
  const app = await buildHttpApp(routes, log, name, opts);
  try {
    await app.listen({ host, port });
  } catch (e) {
    await app.close().catch(() => undefined);
    throw e;
  }
  const server = app.server;
  APPS.set(server, app);
  const addr = server.address() as AddressInfo;
  log.info({ server: name, host: addr.address, port: addr.port }, 'HTTP listener ready');
  return server;
}

export async function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  const app = APPS.get(server);
  if (app !== undefined) await app.close();
  else await new Promise<void>((resolve) => server.close(() => resolve()));
}

/**
 * An HTTP listener as a service (libp2p's Startable shape): nothing listens until start(), and
 * stop() closes every connection. A failed start leaves nothing open.
 */
export class HttpService {
  private running: Server | undefined;

  constructor(
    private readonly listen: { host: string; port: number },
    private readonly routes: Route[],
    private readonly log: Logger,
    private readonly name: string,
    private readonly options: HttpServerOptions = {},
  ) {}

  async start(): Promise<void> {
    if (this.running !== undefined) return;
    this.running = await startHttpServer(this.listen.host, this.listen.port, this.routes, this.log, this.name, this.options);
  }

  async stop(): Promise<void> {
    const server = this.running;
    this.running = undefined;
    if (server !== undefined) await closeServer(server);
  }

  /** The listening server (after start()). */
  get server(): Server {
    if (this.running === undefined) throw new TkmsError('unavailable', `${this.name} HTTP listener is not started`);
    return this.running;
  }

  /** The port it listens on: the configured one, or the one the system chose for port 0. */
  get port(): number {
    const address = this.server.address();
    return typeof address === 'object' && address !== null ? address.port : this.listen.port;
  }
}
