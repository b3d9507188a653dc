import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { encodeFunctionResult, toFunctionSelector } from 'viem';
import { TKMS_ACL_ABI } from '../../chain/acl-artifact.ts';

/**
 * A loopback JSON-RPC proxy in front of a real node (anvil), for tests of an RPC provider that
 * fails or lies. Modes switch at run time:
 *   pass  forwards everything
 *   down  answers 503 to everything
 *   hang  never answers (the client's timeout must end the call)
 *   lie   answers every eth_call of isGranted with an ABI-encoded true; forwards the rest
 *   malformed  answers every eth_call with one byte, which no ABI decoder can take for a bool
 *   hang-logs  never answers eth_getLogs (a slow, wide log query); forwards the rest
 *   hang-calls never answers eth_call; forwards the rest (the head keeps moving)
 *   stale-head answers "the latest block" with the block that was latest when the mode was set
 *              (a provider stuck at, or lying about, an old head); forwards the rest
 * Single and batch requests are handled alike. Every JSON-RPC request is counted per method.
 */
export type RpcProxyMode = 'pass' | 'down' | 'hang' | 'lie' | 'malformed' | 'hang-logs' | 'hang-calls' | 'stale-head';

export interface RpcProxy {
  url: string;
  /** `staleHead`: with 'stale-head', the block to report as latest (default: the latest now). */
  setMode(mode: RpcProxyMode, options?: { staleHead?: number }): Promise<void>;
  /** JSON-RPC requests seen per method since the last reset (batch elements count one each). */
  counts(): Record<string, number>;
  resetCounts(): void;
  close(): Promise<void>;
}

interface RpcRequest {
  jsonrpc?: string;
  id?: unknown;
  method?: unknown;
  params?: unknown;
}

const IS_GRANTED_SELECTOR = toFunctionSelector('isGranted(bytes32,address,address)');
const TRUE_RESULT = encodeFunctionResult({ abi: TKMS_ACL_ABI, functionName: 'isGranted', result: true });

function isGrantedCall(r: RpcRequest): boolean {
  if (r.method !== 'eth_call' || !Array.isArray(r.params)) return false;
  const tx = r.params[0] as { data?: unknown; input?: unknown } | undefined;
  const data = tx?.data ?? tx?.input;
  return typeof data === 'string' && data.toLowerCase().startsWith(IS_GRANTED_SELECTOR);
}

export async function startRpcProxy(targetUrl: string): Promise<RpcProxy> {
  let mode: RpcProxyMode = 'pass';
  let counts: Record<string, number> = {};
  let staleHead = '0x0';

  const forward = async (body: string): Promise<{ status: number; text: string }> => {
    const res = await fetch(targetUrl, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    return { status: res.status, text: await res.text() };
  };

  const rewriteOrForward = async (r: RpcRequest, current: RpcProxyMode): Promise<unknown> => {
    if (current === 'lie' && isGrantedCall(r)) return { jsonrpc: '2.0', id: r.id, result: TRUE_RESULT };
    if (current === 'malformed' && r.method === 'eth_call') return { jsonrpc: '2.0', id: r.id, result: '0x01' };
    if ((current === 'hang-logs' && r.method === 'eth_getLogs') || (current === 'hang-calls' && r.method === 'eth_call')) return new Promise<never>(() => {});
    if (current === 'stale-head' && r.method === 'eth_getBlockByNumber' && Array.isArray(r.params) && r.params[0] === 'latest') r = { ...r, params: [staleHead, ...r.params.slice(1)] };
    return JSON.parse((await forward(JSON.stringify(r))).text) as unknown;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    let parsed: RpcRequest | RpcRequest[];
    try {
      parsed = JSON.parse(body) as RpcRequest | RpcRequest[];
    } catch {
      res.writeHead(400).end();
      return;
    }
    for (const r of Array.isArray(parsed) ? parsed : [parsed]) {
      const method = typeof r.method === 'string' ? r.method : '?';
      counts[method] = (counts[method] ?? 0) + 1;
    }
    const current = mode;
    if (current === 'hang') return; // the socket stays open until the client gives up or close()
    if (current === 'down') {
      res.writeHead(503, { 'content-type': 'text/plain' }).end('provider down');
      return;
    }
    if (current === 'pass') {
      const { status, text } = await forward(body);
      res.writeHead(status, { 'content-type': 'application/json' }).end(text);
      return;
    }
    const answer = Array.isArray(parsed) ? await Promise.all(parsed.map((r) => rewriteOrForward(r, current))) : await rewriteOrForward(parsed, current);
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
  };

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(502).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    setMode: async (m, options) => {
      if (m === 'stale-head' && options?.staleHead !== undefined) {
        staleHead = `0x${options.staleHead.toString(16)}`;
      } else if (m === 'stale-head') {
        const latest = JSON.parse((await forward(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_blockNumber', params: [] }))).text) as { result: string };
        staleHead = latest.result;
      }
      mode = m;
    },
    counts: () => ({ ...counts }),
    resetCounts: () => (counts = {}),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
