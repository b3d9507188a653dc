import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { isTkmsError, TkmsError } from '../core/index.ts';

/** A tiny JSON router over node:http: exact-match or prefix routes, typed errors as JSON. */
export type RouteHandler = (req: IncomingMessage, url: URL, body: unknown) => Promise<RouteResult> | RouteResult;
export interface RouteResult {
  status: number;
  json?: unknown;
  text?: string;
  contentType?: string;
}
export interface Route {
  method: 'GET' | 'POST';
  /** Exact path, or a prefix ending with "/" that matches one more path segment. */
  path: string;
  handler: RouteHandler;
}

const MAX_BODY_BYTES = 64 * 1024;

async function readJsonBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new TkmsError('payload_too_large', `request body is larger than ${MAX_BODY_BYTES} bytes`);
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
  if (result.text !== undefined) {
    res.writeHead(result.status, { 'content-type': result.contentType ?? 'text/plain; charset=utf-8' });
    res.end(result.text);
    return;
  }
  res.writeHead(result.status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(result.json ?? {}));
}

function matches(route: Route, method: string, pathname: string): boolean {
  if (route.method !== method) return false;
  if (route.path.endsWith('/')) {
    if (!pathname.startsWith(route.path)) return false;
    const rest = pathname.slice(route.path.length);
    return rest.length > 0 && !rest.includes('/');
  }
  return pathname === route.path;
}

export function jsonError(e: TkmsError): RouteResult {
  return { status: e.httpStatus, json: e.toJSON() };
}

export async function startHttpServer(host: string, port: number, routes: Route[], log: Logger, name: string): Promise<Server> {
  const server = createServer((req, res) => {
    void (async () => {
      try {
        const url = new URL(req.url ?? '/', 'http://localhost');
        const route = routes.find((r) => matches(r, req.method ?? 'GET', url.pathname));
        if (route === undefined) {
          const known = routes.some((r) => matches({ ...r, method: (req.method ?? 'GET') as Route['method'] }, req.method ?? 'GET', url.pathname));
          throw known ? new TkmsError('bad_request', `method ${req.method} not allowed`) : new TkmsError('not_found', `no route ${url.pathname}`);
        }
        const body = req.method === 'POST' ? await readJsonBody(req) : undefined;
        send(res, await route.handler(req, url, body));
      } catch (e) {
        if (!isTkmsError(e)) log.error({ server: name, err: e instanceof Error ? e.message : 'error' }, 'unexpected HTTP handler error');
        send(res, jsonError(isTkmsError(e) ? e : new TkmsError('internal', 'internal error')));
      }
    })();
  });
  server.keepAliveTimeout = 5_000;
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
