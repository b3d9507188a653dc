import { readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { connect, type Socket } from 'node:net';

/**
 * Raw-socket clients for attacks on an HTTP listener: connections from chosen loopback source
 * addresses (127.0.0.x, so per-address limits can be told from global ones), requests that
 * never finish, and the resident memory of the process under attack.
 */

export interface RawOutcome {
  /** The status of the answer, or 'closed' when the connection ended without one. */
  status: number | 'closed';
  text: string;
  /** Milliseconds from connecting to the answer or the close. */
  afterMs: number;
}

export interface RawConnection {
  socket: Socket;
  /** Resolves at the first answer, or when the connection closes without one. */
  outcome: Promise<RawOutcome>;
  /** Resolves when the connection is closed (by either side). */
  closed: Promise<number>;
}

/** A connection to `url`'s host and port from `localAddress`; `first` is written as soon as it connects. */
export function rawConnection(url: string, localAddress: string, first?: Buffer | string): RawConnection {
  const u = new URL(url);
  const started = Date.now();
  const socket = connect({ host: u.hostname, port: Number(u.port), localAddress });
  let text = '';
  socket.on('error', () => undefined);
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(Date.now() - started)));
  const outcome = new Promise<RawOutcome>((resolve) => {
    socket.on('data', (d: Buffer) => {
      text += d.toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})[^\r]*\r\n[\s\S]*?\r\n\r\n/.exec(text);
      if (m) resolve({ status: Number(m[1]), text, afterMs: Date.now() - started });
    });
    socket.once('close', () => {
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      resolve({ status: m ? Number(m[1]) : 'closed', text, afterMs: Date.now() - started });
    });
  });
  if (first !== undefined) socket.once('connect', () => socket.write(first));
  return { socket, outcome, closed };
}

/** The head of a POST that declares `contentLength` body bytes. */
export function postHead(path: string, contentLength: number): string {
  return `POST ${path} HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\ncontent-length: ${contentLength}\r\n\r\n`;
}

/** Resident set size of a process, from /proc (Linux). */
export function rssBytes(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (m === null) throw new Error(`no VmRSS for process ${pid}`);
  return Number(m[1]) * 1024;
}

/** One sample of a Prometheus text exposition (0 when absent). */
export function metricValue(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A whole GET of `path` from `localAddress` (so per-address limits apply to it): status and body. */
export function getFrom(url: string, path: string, localAddress: string): Promise<{ status: number; body: string }> {
  const u = new URL(url);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: u.hostname, port: u.port, path, localAddress, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end();
  });
}
