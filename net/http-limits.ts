import { TkmsError } from '../core/index.ts';

/**
 * What clients may make an HTTP server hold: open connections and request-body bytes being
 * read, per client address and in total. Both are charged before anything is read, so a
 * client that asks for more than its share is refused without costing the server its memory.
 */
export interface HttpLimits {
  maxConnections: number;
  maxConnectionsPerIp: number;
  /** Request-body bytes being read at once, by every client together. */
  maxBodyBytesInFlight: number;
  maxBodyBytesInFlightPerIp: number;
  /** A client must send its request line and headers within this long. */
  headersTimeoutMs: number;
  /** A body must keep arriving: at most this long between two chunks. */
  bodyIdleTimeoutMs: number;
  /** And arrive whole within this long after the headers. */
  bodyTimeoutMs: number;
  /**
   * Response bytes being built or waiting for a client to read them, by every client together
   * and per address: a large answer is charged before it is built, released once flushed.
   */
  maxResponseBytesInFlight: number;
  maxResponseBytesInFlightPerIp: number;
  /** A response must be flushed to the client within this long, or its connection is closed. */
  responseTimeoutMs: number;
  /** Requests a client may pipeline behind the one being answered; one more closes the connection. */
  maxPipelinedRequests: number;
}

export const DEFAULT_HTTP_LIMITS: HttpLimits = {
  maxConnections: 1024,
  maxConnectionsPerIp: 64,
  maxBodyBytesInFlight: 64 * 1024 * 1024,
  maxBodyBytesInFlightPerIp: 8 * 1024 * 1024,
  headersTimeoutMs: 10_000,
  bodyIdleTimeoutMs: 10_000,
  bodyTimeoutMs: 30_000,
  maxResponseBytesInFlight: 64 * 1024 * 1024,
  maxResponseBytesInFlightPerIp: 8 * 1024 * 1024,
  responseTimeoutMs: 60_000,
  maxPipelinedRequests: 8,
};

/** Why a limit refused a client (the label of the refusal metric). */
export type RefusalReason =
  | 'connections'
  | 'connections_per_ip'
  | 'body_bytes_in_flight'
  | 'body_bytes_in_flight_per_ip'
  | 'body_timeout'
  | 'rate_limited'
  | 'response_bytes_in_flight'
  | 'response_bytes_in_flight_per_ip'
  | 'response_timeout'
  | 'pipelined_requests';

/** A count per client address and in total, each under its cap. */
class PerIpCounter {
  private readonly byIp = new Map<string, number>();
  total = 0;

  constructor(
    private readonly max: number,
    private readonly maxPerIp: number,
  ) {}

  /** 'total' or 'ip' when adding `n` would pass a cap (nothing is added then). */
  tryAdd(ip: string, n: number): 'total' | 'ip' | undefined {
    const mine = this.byIp.get(ip) ?? 0;
    if (mine + n > this.maxPerIp) return 'ip';
    if (this.total + n > this.max) return 'total';
    this.byIp.set(ip, mine + n);
    this.total += n;
    return undefined;
  }

  remove(ip: string, n: number): void {
    const left = (this.byIp.get(ip) ?? 0) - n;
    if (left > 0) this.byIp.set(ip, left);
    else this.byIp.delete(ip);
    this.total -= n;
  }
}

export class ConnectionGate {
  private readonly counter: PerIpCounter;

  constructor(limits: Pick<HttpLimits, 'maxConnections' | 'maxConnectionsPerIp'>) {
    this.counter = new PerIpCounter(limits.maxConnections, limits.maxConnectionsPerIp);
  }

  /** A refusal for a new connection from `ip`, or undefined when it is admitted (call `release` when it closes). */
  admit(ip: string): TkmsError | undefined {
    const over = this.counter.tryAdd(ip, 1);
    if (over === 'ip') return new TkmsError('rate_limited', `too many open connections from ${ip}`, { retryAfterSeconds: 1 });
    if (over === 'total') return new TkmsError('unavailable', 'too many open connections; retry later', { retryAfterSeconds: 1 });
    return undefined;
  }

  release(ip: string): void {
    this.counter.remove(ip, 1);
  }
}

/** Request-body bytes being read; a request reserves what it declares before the first byte. */
export class BodyBudget {
  private readonly counter: PerIpCounter;

  constructor(limits: Pick<HttpLimits, 'maxBodyBytesInFlight' | 'maxBodyBytesInFlightPerIp'>) {
    this.counter = new PerIpCounter(limits.maxBodyBytesInFlight, limits.maxBodyBytesInFlightPerIp);
  }

  /** Reserves `bytes` for `ip`, or throws the refusal (429 for this address's share, 503 for everyone's). */
  reserve(ip: string, bytes: number): void {
    const over = this.counter.tryAdd(ip, bytes);
    if (over === 'ip') throw new TkmsError('rate_limited', `too many request bytes in flight from ${ip}; retry later`, { retryAfterSeconds: 1, reason: 'body_bytes_in_flight_per_ip' });
    if (over === 'total') throw new TkmsError('unavailable', 'too many request bytes in flight; retry later', { retryAfterSeconds: 1, reason: 'body_bytes_in_flight' });
  }

  release(ip: string, bytes: number): void {
    if (bytes > 0) this.counter.remove(ip, bytes);
  }

  get total(): number {
    return this.counter.total;
  }
}

/** Response bytes being built or unread; a large answer reserves its size before it is built. */
export class ResponseBudget {
  private readonly counter: PerIpCounter;

  constructor(limits: Pick<HttpLimits, 'maxResponseBytesInFlight' | 'maxResponseBytesInFlightPerIp'>) {
    this.counter = new PerIpCounter(limits.maxResponseBytesInFlight, limits.maxResponseBytesInFlightPerIp);
  }

  /** Reserves `bytes` for `ip`, or throws the refusal (429 for this address's share, 503 for everyone's). */
  reserve(ip: string, bytes: number): void {
    const over = this.counter.tryAdd(ip, bytes);
    if (over === 'ip') throw new TkmsError('rate_limited', `too many response bytes unread by ${ip}; read them, then retry`, { retryAfterSeconds: 1, reason: 'response_bytes_in_flight_per_ip' });
    if (over === 'total') throw new TkmsError('unavailable', 'too many response bytes in flight; retry later', { retryAfterSeconds: 1, reason: 'response_bytes_in_flight' });
  }

  release(ip: string, bytes: number): void {
    if (bytes > 0) this.counter.remove(ip, bytes);
  }

  get total(): number {
    return this.counter.total;
  }
}
