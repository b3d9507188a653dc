import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { TAG_LENGTH, TkmsError } from '../core/index.ts';
import { MAX_CIPHERTEXT_BYTES } from './store.ts';
import { parseHostPort, type HostPort } from '../net/http-address.ts';

/** Gateway configuration: a JSON file (paths relative to it), overridden by environment variables. */
export interface GatewayConfig {
  listen: HostPort;
  storeDir: string;
  committeeFile: string;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** How long one node may take to answer a partial request before it counts as failed. */
  partialTimeoutMs: number;
  /** After this long without t answers, the gateway also asks the next node (hedging). */
  hedgeDelayMs: number;
  rateLimit: { perMinute: number; burst: number };
  maxPlaintextBytes: number;
  clockSkewSeconds: number;
}

const FIELDS = ['listen', 'storeDir', 'committeeFile', 'logLevel', 'partialTimeoutMs', 'hedgeDelayMs', 'rateLimit', 'maxPlaintextBytes', 'clockSkewSeconds'];
const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

export const GATEWAY_ENV_OVERRIDES = {
  TKMS_GATEWAY_LISTEN: 'listen',
  TKMS_GATEWAY_STORE_DIR: 'storeDir',
  TKMS_COMMITTEE_FILE: 'committeeFile',
  TKMS_LOG_LEVEL: 'logLevel',
} as const;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function parseGatewayConfig(value: unknown, baseDir: string, env: Record<string, string | undefined> = {}): GatewayConfig {
  if (!isPlainObject(value)) throw new TkmsError('bad_request', 'gateway config: must be a JSON object');
  const raw: Record<string, unknown> = { ...value };
  const problems: string[] = [];
  for (const key of Object.keys(raw)) if (!FIELDS.includes(key)) problems.push(`unknown field "${key}"`);
  for (const [name, field] of Object.entries(GATEWAY_ENV_OVERRIDES)) {
    const v = env[name];
    if (v !== undefined && v !== '') raw[field] = v;
  }
  const listen = parseHostPort(raw.listen);
  if (listen === undefined) problems.push('listen must be "host:port", e.g. "127.0.0.1:8080"');
  const path = (field: string): string | undefined => {
    const v = raw[field];
    if (typeof v !== 'string' || v.length === 0 || v.length > 4096 || v.includes('\0')) {
      problems.push(`${field} is required (a path, relative to the config file)`);
      return undefined;
    }
    return isAbsolute(v) ? v : resolve(baseDir, v);
  };
  const storeDir = path('storeDir');
  const committeeFile = path('committeeFile');
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
  // The store keeps ciphertexts up to MAX_CIPHERTEXT_BYTES; the tag takes 16 of them.
  const maxPlaintextLimit = MAX_CIPHERTEXT_BYTES - TAG_LENGTH;
  const maxPlaintextBytes = int('maxPlaintextBytes', maxPlaintextLimit, 1, maxPlaintextLimit);
  const clockSkewSeconds = int('clockSkewSeconds', 30, 0, 600);
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
  let logLevel: GatewayConfig['logLevel'] = 'info';
  if (raw.logLevel !== undefined) {
    if (typeof raw.logLevel !== 'string' || !(LOG_LEVELS as readonly string[]).includes(raw.logLevel)) problems.push(`logLevel must be one of ${LOG_LEVELS.join(', ')}`);
    else logLevel = raw.logLevel as GatewayConfig['logLevel'];
  }
  if (problems.length > 0) throw new TkmsError('bad_request', `invalid gateway config:\n  - ${problems.join('\n  - ')}`, { problems });
  return { listen: listen!, storeDir: storeDir!, committeeFile: committeeFile!, logLevel, partialTimeoutMs, hedgeDelayMs, rateLimit, maxPlaintextBytes, clockSkewSeconds };
}

export async function loadGatewayConfig(file: string, env: Record<string, string | undefined> = process.env): Promise<GatewayConfig> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new TkmsError('bad_request', `cannot read gateway config file ${file}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new TkmsError('bad_request', `gateway config file ${file} is not valid JSON`);
  }
  return parseGatewayConfig(json, dirname(resolve(file)), env);
}
