import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { dirname, isAbsolute, resolve } from 'node:path';
import { multiaddr } from '@multiformats/multiaddr';
import { peerIdFromString } from '@libp2p/peer-id';
import { assertParticipantId, TkmsError } from '../core/index.ts';
import type { DkgFaults } from '../core/dkg/index.ts';
import { PARTIAL_FAULTS, type PartialFault } from './partial-faults.ts';
import { DEFAULT_REVOCATION_LIMITS } from './revocations.ts';

import { parseHostPort, type HostPort } from '../net/http-address.ts';
import { envBool, envInt, envList, envString } from '../net/env-config.ts';
import { MAX_GRANT_LIFETIME_ENV, MAX_GRANT_LIFETIME_FIELD, readMaxGrantLifetime } from '../net/grant-lifetime.ts';
import { DEFAULT_REPLAY_IDS_PER_REQUESTER, MAX_REPLAY_IDS_PER_REQUESTER } from './replay-cache.ts';
import { readOwnerLimits } from '../net/owner-limits.ts';

export interface NodeConfig {
  /** Directory of the config file; relative paths are resolved against it. */
  baseDir: string;
  listen: string[];
  http: HostPort;
  admin: HostPort;
  identityFile: string;
  keystoreDir: string;
  /** Revocations and spent request ids (default: "state" next to keystoreDir). */
  stateDir: string;
  committeeFile: string;
  keystorePasswordFile: string | undefined;
  /** Per-phase DKG deadline. */
  dkgPhaseTimeoutMs: number;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** Tolerated difference between the requester's clock and ours, for signed windows. */
  clockSkewSeconds: number;
  /** Partial requests per requester account: sustained rate and burst. */
  partialRateLimit: { perMinute: number; burst: number };
  /** Longest a grant may be valid; revocations are kept this long (plus skew) after revokedAt. */
  maxGrantLifetimeSeconds: number;
  /** Live revocations one owner may have this node hold, and all owners together. */
  revocations: { perOwner: number; max: number };
  /** Spent request ids one requester may have live in the replay cache at once. */
  replayIdsPerRequester: number;
  /** libp2p peer ids of the gateway(s): besides members, the only peers that may push revocations. */
  gatewayPeerIds: string[];
  /**
   * IP addresses the gateway(s) connect from: on libp2p's allow list, so no handshakes pending from
   * outsiders can keep them out (without it, an attacker with enough addresses can).
   */
  gatewayAddresses: string[];
  /** Misbehaviour for tests; only accepted with TKMS_ENABLE_TEST_FAULTS=1. */
  testFaults: DkgFaults | undefined;
  partialFault: PartialFault | undefined;
}

const KNOWN_FIELDS = [
  'listen',
  'http',
  'admin',
  'adminAllowRemote',
  'identityFile',
  'keystoreDir',
  'stateDir',
  'clockSkewSeconds',
  'partialRateLimit',
  MAX_GRANT_LIFETIME_FIELD,
  'revocations',
  'replayIdsPerRequester',
  'gatewayPeerIds',
  'gatewayAddresses',
  'committeeFile',
  'keystorePasswordFile',
  'dkg',
  'logLevel',
  'testFaults',
] as const;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Environment variables that override config fields (the operator's last word). */
export const ENV_OVERRIDES = {
  TKMS_LISTEN: 'listen',
  TKMS_HTTP_LISTEN: 'http',
  TKMS_ADMIN_LISTEN: 'admin',
  TKMS_IDENTITY_FILE: 'identityFile',
  TKMS_KEYSTORE_DIR: 'keystoreDir',
  TKMS_STATE_DIR: 'stateDir',
  TKMS_COMMITTEE_FILE: 'committeeFile',
  TKMS_KEYSTORE_PASSWORD_FILE: 'keystorePasswordFile',
  TKMS_LOG_LEVEL: 'logLevel',
} as const;

/** At most this many gateway peer ids (a gateway per region, a few spares while one is replaced). */
const MAX_GATEWAY_PEER_IDS = 16;

/** Typed overrides (integers and booleans), checked before the file's values are. */
export const ENV_TYPED_OVERRIDES = {
  TKMS_DKG_PHASE_TIMEOUT_MS: 'dkg.phaseTimeoutMs',
  TKMS_CLOCK_SKEW_SECONDS: 'clockSkewSeconds',
  TKMS_PARTIAL_RATE_PER_MINUTE: 'partialRateLimit.perMinute',
  TKMS_PARTIAL_RATE_BURST: 'partialRateLimit.burst',
  TKMS_ADMIN_ALLOW_REMOTE: 'adminAllowRemote',
  TKMS_REPLAY_IDS_PER_REQUESTER: 'replayIdsPerRequester',
  TKMS_GATEWAY_PEER_IDS: 'gatewayPeerIds',
} as const;

/** Every environment variable the node reads (for --help and the typo check). */
export const NODE_ENV_VARS: readonly string[] = [
  'TKMS_CONFIG',
  ...Object.keys(ENV_OVERRIDES),
  ...Object.keys(ENV_TYPED_OVERRIDES),
  MAX_GRANT_LIFETIME_ENV,
  'TKMS_KEYSTORE_PASSWORD',
  'TKMS_ENABLE_TEST_FAULTS',
];

const LOOPBACK_HOSTS = new Set(['127.0.0.1', '::1', 'localhost']);

export function isLoopbackHost(host: string): boolean {
  return LOOPBACK_HOSTS.has(host) || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host);
}


function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseIdList(value: unknown): number[] | undefined {
  if (!Array.isArray(value) || value.length > 256) return undefined;
  for (const id of value) {
    try {
      assertParticipantId(id);
    } catch {
      return undefined;
    }
  }
  return value as number[];
}

function parseFaults(value: unknown, problems: string[]): { dkg: DkgFaults; partial: PartialFault | undefined } | undefined {
  if (!isPlainObject(value)) {
    problems.push('testFaults must be an object');
    return undefined;
  }
  const faults: DkgFaults = {};
  let partial: PartialFault | undefined;
  for (const [key, v] of Object.entries(value)) {
    if (key === 'partial') {
      if (!(PARTIAL_FAULTS as readonly unknown[]).includes(v)) problems.push(`testFaults.partial must be one of ${PARTIAL_FAULTS.join(', ')}`);
      else partial = v as PartialFault;
    } else if (key === 'silent') {
      if (typeof v !== 'boolean') problems.push('testFaults.silent must be true or false');
      else faults.silent = v;
    } else if (key === 'badShareTo' || key === 'equivocateRound1' || key === 'falseComplaintAgainst' || key === 'badJustificationTo' || key === 'falseEvidenceAgainst') {
      const ids = parseIdList(v);
      if (ids === undefined) problems.push(`testFaults.${key} must be an array of member ids`);
      else faults[key] = ids;
    } else {
      problems.push(`testFaults has an unknown field "${key}"`);
    }
  }
  return { dkg: faults, partial };
}

export interface ParseConfigOptions {
  /** Directory that relative paths are resolved against (the config file's). */
  baseDir: string;
  env?: Record<string, string | undefined>;
}

/**
 * Validates a parsed config object. Every mistake gets its own line, so an operator
 * fixes a file in one pass; all of them together are thrown as one bad_request.
 */
export function parseConfig(value: unknown, opts: ParseConfigOptions): NodeConfig {
  const env = opts.env ?? {};
  const problems: string[] = [];
  if (!isPlainObject(value)) throw new TkmsError('bad_request', 'config: must be a JSON object');
  const raw: Record<string, unknown> = { ...value };
  for (const key of Object.keys(raw)) {
    if (!(KNOWN_FIELDS as readonly string[]).includes(key)) problems.push(`unknown field "${key}"`);
  }
  // Which fields the environment set, so a mistake names the variable rather than the file.
  const fromEnv = new Map<string, string>();
  const origin = (field: string): string => {
    const name = fromEnv.get(field);
    return name === undefined ? '' : ` (set by environment variable ${name})`;
  };
  const problem = (field: string, message: string): void => {
    problems.push(`${message}${origin(field)}`);
  };
  for (const [name, field] of Object.entries(ENV_OVERRIDES)) {
    const v = envString(env, name);
    if (v === undefined) continue;
    fromEnv.set(field, name);
    // TKMS_LISTEN may list several multiaddrs, separated by commas.
    raw[field] = field === 'listen' ? v.split(',').map((s) => s.trim()) : v;
  }
  const envNumber = (name: keyof typeof ENV_TYPED_OVERRIDES, min: number, max: number, unit: string): number | undefined => {
    const r = envInt(env, name, min, max, unit);
    if (r.problem !== undefined) problems.push(r.problem);
    if (r.value !== undefined) fromEnv.set(ENV_TYPED_OVERRIDES[name], name);
    return r.value;
  };
  const envTimeout = envNumber('TKMS_DKG_PHASE_TIMEOUT_MS', 100, 600_000, 'milliseconds');
  if (envTimeout !== undefined) raw.dkg = { ...(isPlainObject(raw.dkg) ? raw.dkg : {}), phaseTimeoutMs: envTimeout };
  const envSkew = envNumber('TKMS_CLOCK_SKEW_SECONDS', 0, 600, 'seconds');
  if (envSkew !== undefined) raw.clockSkewSeconds = envSkew;
  const envPerMinute = envNumber('TKMS_PARTIAL_RATE_PER_MINUTE', 1, 10_000_000, 'requests');
  const envBurst = envNumber('TKMS_PARTIAL_RATE_BURST', 1, 10_000_000, 'requests');
  // A malformed file value stays as it is, so its own mistake is still reported.
  if ((envPerMinute !== undefined || envBurst !== undefined) && (raw.partialRateLimit === undefined || isPlainObject(raw.partialRateLimit))) {
    const base = isPlainObject(raw.partialRateLimit) ? raw.partialRateLimit : { perMinute: 12_000, burst: 1_000 };
    raw.partialRateLimit = { ...base, ...(envPerMinute !== undefined ? { perMinute: envPerMinute } : {}), ...(envBurst !== undefined ? { burst: envBurst } : {}) };
  }
  const envReplayIds = envNumber('TKMS_REPLAY_IDS_PER_REQUESTER', 1, MAX_REPLAY_IDS_PER_REQUESTER, 'ids');
  if (envReplayIds !== undefined) raw.replayIdsPerRequester = envReplayIds;
  const envGateways = envList(env, 'TKMS_GATEWAY_PEER_IDS', MAX_GATEWAY_PEER_IDS);
  if (envGateways.problem !== undefined) problems.push(envGateways.problem);
  if (envGateways.value !== undefined) {
    raw.gatewayPeerIds = envGateways.value;
    fromEnv.set('gatewayPeerIds', 'TKMS_GATEWAY_PEER_IDS');
  }
  const envRemote = envBool(env, 'TKMS_ADMIN_ALLOW_REMOTE');
  if (envRemote.problem !== undefined) problems.push(envRemote.problem);
  if (envRemote.value !== undefined) {
    raw.adminAllowRemote = envRemote.value;
    fromEnv.set('adminAllowRemote', 'TKMS_ADMIN_ALLOW_REMOTE');
  }
  const envNameOf = (field: string): string | undefined => Object.entries(ENV_OVERRIDES).find(([, f]) => f === field)?.[0];

  const path = (field: string, required: boolean): string | undefined => {
    const v = raw[field];
    if (v === undefined) {
      if (required) problems.push(`${field} is required (a path, relative to the config file; or set ${envNameOf(field)})`);
      return undefined;
    }
    if (typeof v !== 'string' || v.length === 0 || v.length > 4096 || v.includes('\0')) {
      problem(field, `${field} must be a non-empty path string`);
      return undefined;
    }
    return isAbsolute(v) ? v : resolve(opts.baseDir, v);
  };

  const listenRaw = typeof raw.listen === 'string' ? [raw.listen] : raw.listen;
  const listen: string[] = [];
  if (!Array.isArray(listenRaw) || listenRaw.length === 0 || listenRaw.length > 8) {
    problem('listen', 'listen must be a multiaddr string (e.g. "/ip4/0.0.0.0/tcp/9000") or an array of 1..8 of them; or set TKMS_LISTEN (comma-separated)');
  } else {
    listenRaw.forEach((m, i) => {
      try {
        if (typeof m !== 'string') throw new Error('not a string');
        listen.push(multiaddr(m).toString());
      } catch {
        problem('listen', `listen[${i}] is not a valid multiaddr (e.g. "/ip4/0.0.0.0/tcp/9000")`);
      }
    });
  }

  const http = parseHostPort(raw.http);
  if (http === undefined) problem('http', 'http must be "host:port" (health and metrics listener), e.g. "127.0.0.1:9100"; or set TKMS_HTTP_LISTEN');
  const admin = parseHostPort(raw.admin);
  if (admin === undefined) problem('admin', 'admin must be "host:port" (admin listener), e.g. "127.0.0.1:9200"; or set TKMS_ADMIN_LISTEN');
  if (raw.adminAllowRemote !== undefined && typeof raw.adminAllowRemote !== 'boolean') {
    problems.push('adminAllowRemote must be true or false');
  }
  if (admin !== undefined && raw.adminAllowRemote !== true && !isLoopbackHost(admin.host)) {
    problem('admin', 'admin must listen on a loopback address (set "adminAllowRemote": true or TKMS_ADMIN_ALLOW_REMOTE=true to override)');
  }
  if (http !== undefined && admin !== undefined && http.port === admin.port && http.port !== 0 && http.host === admin.host) {
    problems.push('http and admin must listen on different ports');
  }

  const identityFile = path('identityFile', true);
  const keystoreDir = path('keystoreDir', true);
  const stateDir = path('stateDir', false) ?? (keystoreDir === undefined ? undefined : resolve(keystoreDir, '..', 'state'));
  let partialRateLimit = { perMinute: 12_000, burst: 1_000 };
  if (raw.partialRateLimit !== undefined) {
    const v = raw.partialRateLimit;
    const ok = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 1 && x <= 10_000_000;
    if (!isPlainObject(v) || Object.keys(v).some((k) => k !== 'perMinute' && k !== 'burst') || !ok(v.perMinute) || !ok(v.burst)) {
      problems.push('partialRateLimit must be { "perMinute": 1..10000000, "burst": 1..10000000 }');
    } else partialRateLimit = { perMinute: v.perMinute, burst: v.burst };
  }
  let replayIdsPerRequester = DEFAULT_REPLAY_IDS_PER_REQUESTER;
  if (raw.replayIdsPerRequester !== undefined) {
    const v = raw.replayIdsPerRequester;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > MAX_REPLAY_IDS_PER_REQUESTER) {
      problem('replayIdsPerRequester', `replayIdsPerRequester must be an integer in 1..${MAX_REPLAY_IDS_PER_REQUESTER}`);
    } else replayIdsPerRequester = v;
  }
  const gatewayPeerIds: string[] = [];
  if (raw.gatewayPeerIds !== undefined) {
    const v = raw.gatewayPeerIds;
    if (!Array.isArray(v) || v.length > MAX_GATEWAY_PEER_IDS) {
      problem('gatewayPeerIds', `gatewayPeerIds must be an array of at most ${MAX_GATEWAY_PEER_IDS} libp2p peer ids (the gateways' "tkms gateway init" prints its own)`);
    } else {
      v.forEach((id, i) => {
        try {
          if (typeof id !== 'string' || id.length > 128) throw new Error('not a peer id');
          gatewayPeerIds.push(peerIdFromString(id).toString());
        } catch {
          problem('gatewayPeerIds', `gatewayPeerIds[${i}] is not a libp2p peer id`);
        }
      });
    }
  }
  const gatewayAddresses: string[] = [];
  if (raw.gatewayAddresses !== undefined) {
    const v = raw.gatewayAddresses;
    if (!Array.isArray(v) || v.length > MAX_GATEWAY_PEER_IDS || !v.every((a) => typeof a === 'string' && isIP(a) !== 0)) {
      problem('gatewayAddresses', `gatewayAddresses must be an array of at most ${MAX_GATEWAY_PEER_IDS} IP addresses (no ports, no names)`);
    } else gatewayAddresses.push(...(v as string[]));
  }
  let clockSkewSeconds = 30;
  if (raw.clockSkewSeconds !== undefined) {
    const v = raw.clockSkewSeconds;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 600) problems.push('clockSkewSeconds must be an integer number of seconds in 0..600');
    else clockSkewSeconds = v;
  }
  const maxGrantLifetimeSeconds = readMaxGrantLifetime(raw, env, problems);
  const revocations: NodeConfig['revocations'] = readOwnerLimits(raw, 'revocations', DEFAULT_REVOCATION_LIMITS, problems);
  const committeeFile = path('committeeFile', true);
  const keystorePasswordFile = path('keystorePasswordFile', false);

  let dkgPhaseTimeoutMs = 8000;
  if (raw.dkg !== undefined) {
    if (!isPlainObject(raw.dkg)) problems.push('dkg must be an object');
    else {
      for (const key of Object.keys(raw.dkg)) if (key !== 'phaseTimeoutMs') problems.push(`dkg has an unknown field "${key}"`);
      const t = raw.dkg.phaseTimeoutMs;
      if (t !== undefined) {
        if (typeof t !== 'number' || !Number.isInteger(t) || t < 100 || t > 600_000) {
          problems.push('dkg.phaseTimeoutMs must be an integer number of milliseconds in 100..600000');
        } else dkgPhaseTimeoutMs = t;
      }
    }
  }

  let logLevel: NodeConfig['logLevel'] = 'info';
  if (raw.logLevel !== undefined) {
    if (typeof raw.logLevel !== 'string' || !(LOG_LEVELS as readonly string[]).includes(raw.logLevel)) {
      problem('logLevel', `logLevel must be one of ${LOG_LEVELS.join(', ')}`);
    } else logLevel = raw.logLevel as NodeConfig['logLevel'];
  }

  let testFaults: DkgFaults | undefined;
  let partialFault: PartialFault | undefined;
  if (raw.testFaults !== undefined) {
    if (env.TKMS_ENABLE_TEST_FAULTS !== '1') {
      problems.push('testFaults is only allowed when the environment sets TKMS_ENABLE_TEST_FAULTS=1 (never in production)');
    } else {
      const parsed = parseFaults(raw.testFaults, problems);
      testFaults = parsed?.dkg;
      partialFault = parsed?.partial;
    }
  }

  if (problems.length > 0) {
    throw new TkmsError('bad_request', `invalid config:\n  - ${problems.join('\n  - ')}`, { problems });
  }
  return {
    baseDir: opts.baseDir,
    listen,
    http: http!,
    admin: admin!,
    identityFile: identityFile!,
    keystoreDir: keystoreDir!,
    stateDir: stateDir!,
    committeeFile: committeeFile!,
    keystorePasswordFile,
    dkgPhaseTimeoutMs,
    logLevel,
    clockSkewSeconds,
    partialRateLimit,
    maxGrantLifetimeSeconds,
    revocations,
    replayIdsPerRequester,
    gatewayPeerIds,
    gatewayAddresses,
    testFaults,
    partialFault,
  };
}

/**
 * Loads the config file (relative paths resolve against its directory) with the environment's
 * overrides on top. Without a file (`undefined`), the environment alone configures the node and
 * relative paths resolve against the working directory — handy in containers.
 */
export async function loadConfig(file: string | undefined, env: Record<string, string | undefined> = process.env): Promise<NodeConfig> {
  if (file === undefined) return parseConfig({}, { baseDir: process.cwd(), env });
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new TkmsError('bad_request', `cannot read config file ${file}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    // JSON.parse names the position of the mistake; it never quotes more than a character.
    throw new TkmsError('bad_request', `config file ${file} is not valid JSON (${e instanceof Error ? e.message : 'parse error'})`);
  }
  return parseConfig(json, { baseDir: dirname(resolve(file)), env });
}

/**
 * The keystore password: env TKMS_KEYSTORE_PASSWORD wins, else the configured file
 * (one trailing newline stripped). Never logged.
 */
export async function resolveKeystorePassword(config: NodeConfig, env: Record<string, string | undefined> = process.env): Promise<string> {
  const fromEnv = env.TKMS_KEYSTORE_PASSWORD;
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  if (config.keystorePasswordFile === undefined) {
    throw new TkmsError('keystore_locked', 'no keystore password: set TKMS_KEYSTORE_PASSWORD or keystorePasswordFile in the config');
  }
  let text: string;
  try {
    text = await readFile(config.keystorePasswordFile, 'utf8');
  } catch (e) {
    throw new TkmsError('keystore_locked', `cannot read keystore password file ${config.keystorePasswordFile}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  const password = text.replace(/\r?\n$/, '');
  if (password.length === 0) throw new TkmsError('keystore_locked', `keystore password file ${config.keystorePasswordFile} is empty`);
  return password;
}
