/** A host:port pair for an HTTP listener. */
export interface HostPort {
  host: string;
  port: number;
}

/** Parses "host:port" or "[v6]:port". Returns undefined when malformed. */
export function parseHostPort(value: unknown): HostPort | undefined {
  if (typeof value !== 'string' || value.length > 300) return undefined;
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(value);
  if (m === null) return undefined;
  const host = m[1] ?? m[2];
  const port = Number(m[3]);
  if (host === undefined || host.length === 0 || !Number.isInteger(port) || port > 65535) return undefined;
  return { host, port };
}

/**
 * Loopback names and addresses (exactly localhost, 127.0.0.0/8, ::1), where plain HTTP never
 * leaves the machine. Not *.localhost: resolvers may send those names to DNS.
 */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/, '$1');
  if (h === 'localhost' || h === '::1') return true;
  const v4 = /^127\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/.exec(h);
  return v4 !== null && v4.slice(1).every((part) => Number(part) <= 255);
}
