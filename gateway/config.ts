import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { TAG_LENGTH, TkmsError } from '../core/index.ts';
import { DEFAULT_GATEWAY_STORE_LIMITS, MAX_CIPHERTEXT_BYTES, type HandleLimits } from './store.ts';
import { parseHostPort, type HostPort } from '../net/http-address.ts';
import { envInt, envString } from '../net/env-config.ts';
import { MAX_GRANT_LIFETIME_ENV, MAX_GRANT_LIFETIME_FIELD, readMaxGrantLifetime } from '../net/grant-lifetime.ts';
import { DEFAULT_HTTP_LIMITS, type HttpLimits } from '../net/http-limits.ts';
import { readOwnerLimits, type OwnerLimits } from '../net/owner-limits.ts';

/** Gateway configuration: a JSON file (paths relative to it), overridden by environment variables. */
export interface GatewayConfig {
  listen: HostPort;
  storeDir: string;
  committeeFile: string;
  /**
   * The gateway's persistent libp2p identity (created by "tkms gateway init", or at first start).
   * Nodes accept revocations only from members and the peer ids in their gatewayPeerIds; without
   * it the gateway has a new identity at every start, and nodes refuse its revocations.
   */
  identityFile?: string;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** How long one node may take to answer a partial request before it counts as failed. */
  partialTimeoutMs: number;
  /** After this long without t answers, the gateway also asks the next node (hedging). */
  hedgeDelayMs: number;
  /**
   * Batch frames of partial requests in flight to one node; requests beyond them wait and leave
   * together in the next frame. 1 suits nodes close by; raise it for nodes many milliseconds away.
   */
  partialFramesInFlight: number;
  rateLimit: { perMinute: number; burst: number };
  maxPlaintextBytes: number;
  clockSkewSeconds: number;
  /** Longest a grant may be valid (net/grant-lifetime.ts); the same value as the nodes'. */
  maxGrantLifetimeSeconds: number;
  /** Connections, body bytes in flight and slow-client timeouts of the HTTP listener. */
  httpLimits: HttpLimits;
  /** Serve HTTPS with this PEM certificate chain and key; both or neither (then plain HTTP, for loopback or behind a TLS proxy). */
  tls?: { certFile: string; keyFile: string };
  /** Live grants, and revocations, the store keeps per handle owner and in all (gateway/store-acl.ts). */
  grants: OwnerLimits;
  revocations: OwnerLimits;
  /** New handles per owner (count and bytes), in all, and the free disk kept for grants and revocations. */
  handles: HandleLimits;
  /** Bytes of records waiting to be written to the store; a handle past it is refused with 503. */
  storeWriteQueueBytes: number;
  /** Browser origins ("https://app.example", exact) answered with CORS headers; [] (default): none. */
  cors: { allowedOrigins: string[] };
  /** Every route is also served under this path ("/tkms"); "/" (default): at the root only. */
  basePath: string;
}

const FIELDS = ['listen', 'storeDir', 'committeeFile', 'identityFile', 'logLevel', 'partialTimeoutMs', 'hedgeDelayMs', 'partialFramesInFlight', 'rateLimit', 'maxPlaintextBytes', 'clockSkewSeconds', MAX_GRANT_LIFETIME_FIELD, 'httpLimits', 'tlsCertFile', 'tlsKeyFile', 'grants', 'revocations', 'handles', 'storeWriteQueueBytes', 'cors', 'basePath'];
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export const GATEWAY_ENV_OVERRIDES = {
  TKMS_GATEWAY_LISTEN: 'listen',
  TKMS_GATEWAY_STORE_DIR: 'storeDir',
  TKMS_COMMITTEE_FILE: 'committeeFile',
  TKMS_GATEWAY_IDENTITY_FILE: 'identityFile',
  TKMS_LOG_LEVEL: 'logLevel',
  TKMS_GATEWAY_TLS_CERT_FILE: 'tlsCertFile',
  TKMS_GATEWAY_TLS_KEY_FILE: 'tlsKeyFile',
} as const;
/** A comma-separated list of origins, for cors.allowedOrigins; and the base path. */
const CORS_ORIGINS_ENV = 'TKMS_GATEWAY_CORS_ORIGINS';
const BASE_PATH_ENV = 'TKMS_GATEWAY_BASE_PATH';

/** Integer overrides: variable → [field, min, max, unit]. */
export const GATEWAY_ENV_INTEGERS = {
  TKMS_GATEWAY_PARTIAL_TIMEOUT_MS: ['partialTimeoutMs', 100, 60_000, 'milliseconds'],
  TKMS_GATEWAY_HEDGE_DELAY_MS: ['hedgeDelayMs', 0, 60_000, 'milliseconds'],
  TKMS_GATEWAY_PARTIAL_FRAMES_IN_FLIGHT: ['partialFramesInFlight', 1, 64, 'frames'],
  TKMS_GATEWAY_RATE_PER_MINUTE: ['rateLimit.perMinute', 1, 10_000_000, 'requests'],
  TKMS_GATEWAY_RATE_BURST: ['rateLimit.burst', 1, 10_000_000, 'requests'],
  TKMS_GATEWAY_MAX_PLAINTEXT_BYTES: ['maxPlaintextBytes', 1, MAX_CIPHERTEXT_BYTES - TAG_LENGTH, 'bytes'],
  TKMS_GATEWAY_CLOCK_SKEW_SECONDS: ['clockSkewSeconds', 0, 600, 'seconds'],
  TKMS_GATEWAY_MAX_CONNECTIONS: ['httpLimits.maxConnections', 1, 1_000_000, 'connections'],
  TKMS_GATEWAY_MAX_CONNECTIONS_PER_IP: ['httpLimits.maxConnectionsPerIp', 1, 1_000_000, 'connections'],
  TKMS_GATEWAY_MAX_BODY_BYTES_IN_FLIGHT: ['httpLimits.maxBodyBytesInFlight', 1, 2 ** 40, 'bytes'],
  TKMS_GATEWAY_MAX_BODY_BYTES_IN_FLIGHT_PER_IP: ['httpLimits.maxBodyBytesInFlightPerIp', 1, 2 ** 40, 'bytes'],
  TKMS_GATEWAY_HEADERS_TIMEOUT_MS: ['httpLimits.headersTimeoutMs', 100, 600_000, 'milliseconds'],
  TKMS_GATEWAY_BODY_IDLE_TIMEOUT_MS: ['httpLimits.bodyIdleTimeoutMs', 100, 600_000, 'milliseconds'],
  TKMS_GATEWAY_BODY_TIMEOUT_MS: ['httpLimits.bodyTimeoutMs', 100, 3_600_000, 'milliseconds'],
  TKMS_GATEWAY_MAX_RESPONSE_BYTES_IN_FLIGHT: ['httpLimits.maxResponseBytesInFlight', 1, 2 ** 40, 'bytes'],
  TKMS_GATEWAY_MAX_RESPONSE_BYTES_IN_FLIGHT_PER_IP: ['httpLimits.maxResponseBytesInFlightPerIp', 1, 2 ** 40, 'bytes'],
  TKMS_GATEWAY_RESPONSE_TIMEOUT_MS: ['httpLimits.responseTimeoutMs', 100, 3_600_000, 'milliseconds'],
  TKMS_GATEWAY_MAX_PIPELINED_REQUESTS: ['httpLimits.maxPipelinedRequests', 0, 1_000, 'requests'],
  TKMS_GATEWAY_HANDLES_PER_OWNER: ['handles.perOwner', 1, 1_000_000_000, 'handles'],
  TKMS_GATEWAY_HANDLE_BYTES_PER_OWNER: ['handles.perOwnerBytes', 1, 2 ** 50, 'bytes'],
  TKMS_GATEWAY_HANDLE_BYTES_MAX: ['handles.maxBytes', 1, 2 ** 50, 'bytes'],
  TKMS_GATEWAY_MIN_FREE_DISK_BYTES: ['handles.minFreeDiskBytes', 0, 2 ** 50, 'bytes'],
  TKMS_GATEWAY_STORE_WRITE_QUEUE_BYTES: ['storeWriteQueueBytes', 4 * 1024 * 1024, 2 ** 40, 'bytes'],
} as const;

/** Bounds of each field of an object field, [min, max]: those of its environment variable. */
function rangesOf(parent: string): Record<string, [number, number]> {
  return Object.fromEntries(
    Object.values(GATEWAY_ENV_INTEGERS)
      .filter(([field]) => field.startsWith(`${parent}.`))
      .map(([field, min, max]) => [field.slice(parent.length + 1), [min, max]]),
  );
}
const HTTP_LIMIT_RANGES = rangesOf('httpLimits') as Record<keyof HttpLimits, [number, number]>;
const HANDLE_LIMIT_RANGES = rangesOf('handles') as Record<keyof HandleLimits, [number, number]>;

/** Every environment variable the gateway reads (for --help and the typo check). */
export const GATEWAY_ENV_VARS: readonly string[] = ['TKMS_GATEWAY_CONFIG', ...Object.keys(GATEWAY_ENV_OVERRIDES), ...Object.keys(GATEWAY_ENV_INTEGERS), MAX_GRANT_LIFETIME_ENV, CORS_ORIGINS_ENV, BASE_PATH_ENV];

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function parseGatewayConfig(value: unknown, baseDir: string, env: Record<string, string | undefined> = {}): GatewayConfig {
  if (!isPlainObject(value)) throw new TkmsError('bad_request', 'gateway config: must be a JSON object');
  const raw: Record<string, unknown> = { ...value };
  const problems: string[] = [];
  for (const key of Object.keys(raw)) if (!FIELDS.includes(key)) problems.push(`unknown field "${key}"`);
  const fromEnv = new Map<string, string>();
  const origin = (field: string): string => {
    const name = fromEnv.get(field);
    return name === undefined ? '' : ` (set by environment variable ${name})`;
  };
  for (const [name, field] of Object.entries(GATEWAY_ENV_OVERRIDES)) {
    const v = envString(env, name);
    if (v === undefined) continue;
    raw[field] = v;
    fromEnv.set(field, name);
  }
  for (const [name, [field, min, max, unit]] of Object.entries(GATEWAY_ENV_INTEGERS)) {
    const r = envInt(env, name, min, max, unit);
    if (r.problem !== undefined) problems.push(r.problem);
    if (r.value === undefined) continue;
    const dot = field.indexOf('.');
    if (dot > 0) {
      const parent = field.slice(0, dot);
      // A malformed file value stays as it is, so its own mistake is still reported.
      if (raw[parent] === undefined || isPlainObject(raw[parent])) raw[parent] = { ...((raw[parent] as Record<string, unknown> | undefined) ?? {}), [field.slice(dot + 1)]: r.value };
    } else raw[field] = r.value;
  }
  const listen = parseHostPort(raw.listen);
  if (listen === undefined) problems.push(`listen must be "host:port", e.g. "127.0.0.1:8080"; or set TKMS_GATEWAY_LISTEN${origin('listen')}`);
  const path = (field: string): string | undefined => {
    const v = raw[field];
    if (typeof v !== 'string' || v.length === 0 || v.length > 4096 || v.includes('\0')) {
      const name = Object.entries(GATEWAY_ENV_OVERRIDES).find(([, f]) => f === field)?.[0];
      problems.push(v === undefined ? `${field} is required (a path, relative to the config file; or set ${name})` : `${field} must be a non-empty path string${origin(field)}`);
      return undefined;
    }
    return isAbsolute(v) ? v : resolve(baseDir, v);
  };
  const storeDir = path('storeDir');
  const committeeFile = path('committeeFile');
  const identityFile = raw.identityFile === undefined ? undefined : path('identityFile');
  const int = (field: string, fallback: number, min: number, max: number, v: unknown = raw[field]): number => {
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      problems.push(`${field} must be an integer in ${min}..${max}`);
      return fallback;
    }
    return v;
  };
  const partialTimeoutMs = int('partialTimeoutMs', 3_000, 100, 60_000);
  const hedgeDelayMs = int('hedgeDelayMs', 300, 0, 60_000);
  const partialFramesInFlight = int('partialFramesInFlight', 1, 1, 64);
  // The store keeps ciphertexts up to MAX_CIPHERTEXT_BYTES; the tag takes 16 of them.
  const maxPlaintextLimit = MAX_CIPHERTEXT_BYTES - TAG_LENGTH;
  const maxPlaintextBytes = int('maxPlaintextBytes', maxPlaintextLimit, 1, maxPlaintextLimit);
  const clockSkewSeconds = int('clockSkewSeconds', 30, 0, 600);
  const maxGrantLifetimeSeconds = readMaxGrantLifetime(raw, env, problems);
  const grants = readOwnerLimits(raw, 'grants', DEFAULT_GATEWAY_STORE_LIMITS.grants, problems);
  const revocations = readOwnerLimits(raw, 'revocations', DEFAULT_GATEWAY_STORE_LIMITS.revocations, problems);
  let rateLimit = { perMinute: 600, burst: 100 };
  if (raw.rateLimit !== undefined) {
    if (!isPlainObject(raw.rateLimit)) problems.push('rateLimit must be an object { perMinute, burst }');
    else {
      for (const key of Object.keys(raw.rateLimit)) if (key !== 'perMinute' && key !== 'burst') problems.push(`rateLimit has an unknown field "${key}"`);
      rateLimit = {
        perMinute: int('rateLimit.perMinute', 600, 1, 10_000_000, raw.rateLimit.perMinute),
        burst: int('rateLimit.burst', 100, 1, 10_000_000, raw.rateLimit.burst),
      };
    }
  }
  const httpLimits: HttpLimits = { ...DEFAULT_HTTP_LIMITS };
  if (raw.httpLimits !== undefined) {
    if (!isPlainObject(raw.httpLimits)) problems.push(`httpLimits must be an object { ${Object.keys(HTTP_LIMIT_RANGES).join(', ')} }`);
    else {
      for (const key of Object.keys(raw.httpLimits)) if (!(key in HTTP_LIMIT_RANGES)) problems.push(`httpLimits has an unknown field "${key}"`);
      for (const [key, [min, max]] of Object.entries(HTTP_LIMIT_RANGES) as [keyof HttpLimits, [number, number]][]) {
        httpLimits[key] = int(`httpLimits.${key}`, DEFAULT_HTTP_LIMITS[key], min, max, raw.httpLimits[key]);
      }
    }
  }
  const handles: HandleLimits = { ...DEFAULT_GATEWAY_STORE_LIMITS.handles };
  if (raw.handles !== undefined) {
    if (!isPlainObject(raw.handles)) problems.push(`handles must be an object { ${Object.keys(HANDLE_LIMIT_RANGES).join(', ')} }`);
    else {
      for (const key of Object.keys(raw.handles)) if (!(key in HANDLE_LIMIT_RANGES)) problems.push(`handles has an unknown field "${key}"`);
      for (const [key, [min, max]] of Object.entries(HANDLE_LIMIT_RANGES) as [keyof HandleLimits, [number, number]][]) {
        handles[key] = int(`handles.${key}`, DEFAULT_GATEWAY_STORE_LIMITS.handles[key], min, max, raw.handles[key]);
      }
    }
  }
  const [, queueMin, queueMax] = GATEWAY_ENV_INTEGERS.TKMS_GATEWAY_STORE_WRITE_QUEUE_BYTES;
  const storeWriteQueueBytes = int('storeWriteQueueBytes', DEFAULT_GATEWAY_STORE_LIMITS.writeQueueBytes, queueMin, queueMax);
  let tls: GatewayConfig['tls'];
  if (raw.tlsCertFile !== undefined || raw.tlsKeyFile !== undefined) {
    if (raw.tlsCertFile === undefined || raw.tlsKeyFile === undefined) problems.push('tlsCertFile and tlsKeyFile go together: give both for HTTPS, or neither for plain HTTP');
    else {
      const certFile = path('tlsCertFile');
      const keyFile = path('tlsKeyFile');
      if (certFile !== undefined && keyFile !== undefined) tls = { certFile, keyFile };
    }
  }
  const corsOrigins = envString(env, CORS_ORIGINS_ENV);
  if (corsOrigins !== undefined) {
    raw.cors = { allowedOrigins: corsOrigins.split(',').map((o) => o.trim()).filter((o) => o.length > 0) };
    fromEnv.set('cors', CORS_ORIGINS_ENV);
  }
  const cors = readCors(raw.cors, problems, origin('cors'));
  const basePathEnv = envString(env, BASE_PATH_ENV);
  if (basePathEnv !== undefined) {
    raw.basePath = basePathEnv;
    fromEnv.set('basePath', BASE_PATH_ENV);
  }
  let basePath = '/';
  if (raw.basePath !== undefined) {
    if (typeof raw.basePath !== 'string' || !/^\/(?:[A-Za-z0-9._~-]+\/?)*$/.test(raw.basePath) || raw.basePath.length > 256) problems.push(`basePath must be a path such as "/tkms"${origin('basePath')}`);
    else basePath = raw.basePath;
  }
  let logLevel: GatewayConfig['logLevel'] = 'info';
  if (raw.logLevel !== undefined) {
    if (typeof raw.logLevel !== 'string' || !(LOG_LEVELS as readonly string[]).includes(raw.logLevel)) problems.push(`logLevel must be one of ${LOG_LEVELS.join(', ')}${origin('logLevel')}`);
    else logLevel = raw.logLevel as GatewayConfig['logLevel'];
  }
  if (problems.length > 0) throw new TkmsError('bad_request', `invalid gateway config:\n  - ${problems.join('\n  - ')}`, { problems });
  return {
    listen: listen!,
    storeDir: storeDir!,
    committeeFile: committeeFile!,
    ...(identityFile === undefined ? {} : { identityFile }),
    logLevel,
    partialTimeoutMs,
    hedgeDelayMs,
    partialFramesInFlight,
    rateLimit,
    maxPlaintextBytes,
    clockSkewSeconds,
    maxGrantLifetimeSeconds,
    httpLimits,
    grants,
    revocations,
    handles,
    storeWriteQueueBytes,
    cors,
    basePath,
    ...(tls ? { tls } : {}),
  };
}

/** Exact origins only: a wildcard would let every page on the web drive the API from its visitors' browsers. */
function readCors(value: unknown, problems: string[], from: string): GatewayConfig['cors'] {
  if (value === undefined) return { allowedOrigins: [] };
  const list = isPlainObject(value) ? value.allowedOrigins : undefined;
  if (!isPlainObject(value) || Object.keys(value).some((k) => k !== 'allowedOrigins') || !Array.isArray(list)) {
    problems.push(`cors must be an object { allowedOrigins: ["https://app.example", ...] }${from}`);
    return { allowedOrigins: [] };
  }
  const allowedOrigins: string[] = [];
  for (const o of list) {
    let ok = false;
    try {
      const u = typeof o === 'string' ? new URL(o) : undefined;
      ok = u !== undefined && (u.protocol === 'https:' || u.protocol === 'http:') && u.origin === o;
    } catch {
      ok = false;
    }
    if (ok) allowedOrigins.push(o as string);
    else problems.push(`cors.allowedOrigins: ${JSON.stringify(o)} is not an origin such as "https://app.example" (scheme, host and port only; "*" is not allowed)${from}`);
  }
  return { allowedOrigins };
}

/** Loads the config file with the environment on top; without a file, the environment alone (paths relative to the working directory). */
export async function loadGatewayConfig(file: string | undefined, env: Record<string, string | undefined> = process.env): Promise<GatewayConfig> {
  if (file === undefined) return parseGatewayConfig({}, process.cwd(), env);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new TkmsError('bad_request', `cannot read gateway config file ${file}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new TkmsError('bad_request', `gateway config file ${file} is not valid JSON (${e instanceof Error ? e.message : 'parse error'})`);
  }
  return parseGatewayConfig(json, dirname(resolve(file)), env);
}
