import { Type, type StaticDecode } from 'typebox';
import { MAX_PLAINTEXT_BYTES, TkmsError } from '../core/index.ts';
import { envFields, field, FieldProblem, logLevelField, parseDeclaredConfig, readConfigFile, type FieldNotes } from '../config/config-schema.ts';
import { configFieldsHelp } from '../config/field-docs.ts';
import { clockSkewField } from '../config/clock-skew.ts';
import { maxGrantLifetimeField } from '../config/grant-lifetime.ts';
import { aclConfigProblems } from '../config/chain-acl-checks.ts';
import { gatewayAclField } from '../config/chain-acl.ts';
import { DEFAULT_HTTP_LIMITS, type HttpLimits } from '../net/http-limits.ts';
import { ownerLimitsField } from '../config/owner-limits.ts';
import { keyRegistryField } from '../config/key-registry.ts';
import { DEFAULT_GATEWAY_STORE_LIMITS, type HandleLimits } from './store.ts';

const MiB = 1024 * 1024;

const httpLimit = (key: keyof HttpLimits, min: number, max: number, unit: string, env: string, description: string, details?: string) =>
  field.integer(min, max, DEFAULT_HTTP_LIMITS[key], { description, env: `TKMS_GATEWAY_${env}`, unit, ...(details === undefined ? {} : { details }) });
const handleLimit = (key: keyof HandleLimits, min: number, env: string, description: string, notes: Partial<FieldNotes> = {}) =>
  field.integer(min, 2 ** 50, DEFAULT_GATEWAY_STORE_LIMITS.handles[key], { description, env: `TKMS_GATEWAY_${env}`, unit: 'bytes', ...notes });

/** An origin a browser sends: scheme, host and optional port; no path, query or fragment. */
function decodeOrigin(origin: string, i: number): string {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    throw new FieldProblem(`{path}[${i}] is not an origin like "https://app.example"`);
  }
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || url.origin !== origin) {
    throw new FieldProblem(`{path}[${i}] must be an origin like "https://app.example" (scheme, host, optional port; no path or trailing slash)`);
  }
  return origin;
}

/** The gateway's config file, field by field: the parser, `--help` and docs/operators.md read this. */
export const GATEWAY_CONFIG_SCHEMA = Type.Object({
  listen: field.hostPort({ description: 'host:port of the HTTP API, e.g. "0.0.0.0:8080"', env: 'TKMS_GATEWAY_LISTEN', mustBe: '"host:port", e.g. "127.0.0.1:8080"' }),
  basePath: Type.String({
    maxLength: 256,
    // With or without the trailing slash ("/tkms" and "/tkms/" are one mount); no "." or ".." segments.
    pattern: '^/$|^(/(?!\\.\\.?(/|$))[A-Za-z0-9._~-]+)+/?$',
    default: '/',
    description: 'the path the API is served under, for a gateway behind a proxy at e.g. https://app.example/tkms/',
    env: 'TKMS_GATEWAY_BASE_PATH',
    mustBe: 'a path that starts with "/", e.g. "/tkms" or "/tkms/" (letters, digits, ".", "_", "~", "-" between slashes; no "." or ".." segment)',
  }),
  cors: field.group(
    {
      allowedOrigins: Type.Decode(
        Type.Array(Type.String({ maxLength: 2048 }), {
          maxItems: 64,
          default: [],
          description: 'origins of web pages allowed to call the API from a browser (CORS), e.g. "https://app.example"',
          env: 'TKMS_GATEWAY_CORS_ORIGINS',
          mustBe: 'an array of at most 64 origins like "https://app.example"',
        }),
        (origins) => {
          const lines: string[] = [];
          for (const [i, origin] of origins.entries()) {
            try {
              decodeOrigin(origin, i);
            } catch (e) {
              lines.push(...(e as FieldProblem).lines);
            }
          }
          if (lines.length > 0) throw new FieldProblem(...lines);
          return origins;
        },
      ),
    },
    { description: 'cross-origin requests from web pages' },
  ),
  storeDir: field.path({ description: 'directory of the embedded store: handles, ciphertexts, grants, revocations, and the change log of managed keys (key-changes.log) (created 0700)', env: 'TKMS_GATEWAY_STORE_DIR' }),
  committeeFile: field.path({ description: 'the committee file (the same as the nodes\')', env: 'TKMS_COMMITTEE_FILE' }),
  identityFile: Type.Optional(
    field.path({
      description: 'the gateway\'s persistent libp2p identity (created 0600 by "tkms gateway init", or at first start); without it, a new one each run, whose revocations nodes refuse',
      details: 'Nodes accept revocations only from members and the peer ids in their gatewayPeerIds',
      env: 'TKMS_GATEWAY_IDENTITY_FILE',
    }),
  ),
  logLevel: logLevelField('TKMS_LOG_LEVEL'),
  partialTimeoutMs: field.integer(100, 60_000, 3_000, { description: 'how long one node may take to answer a partial request before it counts as failed', env: 'TKMS_GATEWAY_PARTIAL_TIMEOUT_MS', unit: 'milliseconds' }),
  hedgeDelayMs: field.integer(0, 60_000, 300, { description: 'upper bound of the adaptive hedge delay: after this long without t answers, the gateway also asks the next node', env: 'TKMS_GATEWAY_HEDGE_DELAY_MS', unit: 'milliseconds' }),
  partialFramesInFlight: field.integer(1, 64, 1, {
    description: 'batch frames of partial requests in flight to one node (raise it for distant nodes)',
    details: 'Requests beyond them wait and leave together in the next frame. 1 suits nodes close by; raise it for nodes many milliseconds away',
    env: 'TKMS_GATEWAY_PARTIAL_FRAMES_IN_FLIGHT',
    unit: 'frames',
  }),
  rateLimit: field.group(
    {
      perMinute: field.integer(1, 10_000_000, 600, { description: 'requests per account per minute, sustained (ten times this per client address)', env: 'TKMS_GATEWAY_RATE_PER_MINUTE', unit: 'requests' }),
      burst: field.integer(1, 10_000_000, 100, { description: 'requests per account in a burst (ten times this per client address)', env: 'TKMS_GATEWAY_RATE_BURST', unit: 'requests' }),
    },
    { description: 'requests per account' },
  ),
  maxPlaintextBytes: field.integer(1, MAX_PLAINTEXT_BYTES, MAX_PLAINTEXT_BYTES, { description: 'largest plaintext accepted (default and maximum: 1 MiB minus the 16-byte tag)', env: 'TKMS_GATEWAY_MAX_PLAINTEXT_BYTES', unit: 'bytes' }),
  clockSkewSeconds: clockSkewField('TKMS_GATEWAY_CLOCK_SKEW_SECONDS'),
  maxGrantLifetimeSeconds: maxGrantLifetimeField(),
  acl: gatewayAclField(),
  httpLimits: field.group(
    {
      maxConnections: httpLimit('maxConnections', 1, 1_000_000, 'connections', 'MAX_CONNECTIONS', 'open connections; past it a new connection gets 503 unavailable and is closed'),
      maxConnectionsPerIp: httpLimit('maxConnectionsPerIp', 1, 1_000_000, 'connections', 'MAX_CONNECTIONS_PER_IP', 'open connections from one address; past it a new one gets 429 rate_limited'),
      maxBodyBytesInFlight: httpLimit('maxBodyBytesInFlight', 1, 2 ** 40, 'bytes', 'MAX_BODY_BYTES_IN_FLIGHT', 'request body bytes held (64 MiB); a request whose declared body does not fit gets 503 unavailable, its body unread'),
      maxBodyBytesInFlightPerIp: httpLimit('maxBodyBytesInFlightPerIp', 1, 2 ** 40, 'bytes', 'MAX_BODY_BYTES_IN_FLIGHT_PER_IP', 'the same for one address (8 MiB; never less than one largest body), 429 rate_limited'),
      headersTimeoutMs: httpLimit('headersTimeoutMs', 100, 600_000, 'milliseconds', 'HEADERS_TIMEOUT_MS', 'the request line and headers (and, with TLS, the handshake) must arrive within this; then the connection is closed'),
      bodyIdleTimeoutMs: httpLimit('bodyIdleTimeoutMs', 100, 600_000, 'milliseconds', 'BODY_IDLE_TIMEOUT_MS', 'a body that stops arriving for this long is cut off (connection closed)'),
      bodyTimeoutMs: httpLimit('bodyTimeoutMs', 100, 3_600_000, 'milliseconds', 'BODY_TIMEOUT_MS', 'a body must arrive whole within this long'),
      maxResponseBytesInFlight: httpLimit(
        'maxResponseBytesInFlight', 1, 2 ** 40, 'bytes', 'MAX_RESPONSE_BYTES_IN_FLIGHT',
        'bytes of large answers being built or not yet read by their clients (64 MiB); a request whose answer does not fit gets 503 unavailable',
        'Large answers: a handle with its ciphertext, a delegation, a handle\'s grant listing (charged 400 bytes a grant plus 64 KiB); refused before the ciphertext is read or the listing built',
      ),
      maxResponseBytesInFlightPerIp: httpLimit(
        'maxResponseBytesInFlightPerIp', 1, 2 ** 40, 'bytes', 'MAX_RESPONSE_BYTES_IN_FLIGHT_PER_IP',
        'the same for one address, 429 rate_limited (8 MiB; never less than one largest answer, ~1.46 MB)',
        'Keep it at least 400 × grants.perOwner + 64 KiB, or the grants of a handle with that many cannot be listed',
      ),
      responseTimeoutMs: httpLimit('responseTimeoutMs', 100, 3_600_000, 'milliseconds', 'RESPONSE_TIMEOUT_MS', 'an answer not flushed to its client within this long (a client that does not read) closes the connection'),
      maxPipelinedRequests: httpLimit('maxPipelinedRequests', 0, 1_000, 'requests', 'MAX_PIPELINED_REQUESTS', 'requests a client may pipeline on one connection behind the one being answered; one more closes the connection'),
    },
    { description: 'what clients can make the HTTP listener hold' },
  ),
  tlsCertFile: Type.Optional(field.path({ description: 'PEM certificate chain for HTTPS; give tlsKeyFile too (neither: plain HTTP, for loopback or behind a TLS proxy)', env: 'TKMS_GATEWAY_TLS_CERT_FILE' })),
  tlsKeyFile: Type.Optional(field.path({ description: 'PEM private key for HTTPS, with tlsCertFile', env: 'TKMS_GATEWAY_TLS_KEY_FILE' })),
  grants: ownerLimitsField(DEFAULT_GATEWAY_STORE_LIMITS.grants, 'live grants the store keeps'),
  revocations: ownerLimitsField(DEFAULT_GATEWAY_STORE_LIMITS.revocations, 'live revocations the store keeps'),
  handles: field.group(
    {
      perOwner: field.integer(1, 1_000_000_000, DEFAULT_GATEWAY_STORE_LIMITS.handles.perOwner, { description: 'handles one owner may store; the next gets 429 rate_limited ("handles_per_owner")', env: 'TKMS_GATEWAY_HANDLES_PER_OWNER', unit: 'handles' }),
      perOwnerBytes: handleLimit('perOwnerBytes', 1, 'HANDLE_BYTES_PER_OWNER', 'bytes of handles one owner may store (1 GiB); past it 429 rate_limited ("handle_bytes_per_owner")'),
      maxBytes: handleLimit('maxBytes', 1, 'HANDLE_BYTES_MAX', 'bytes of handles in all (32 GiB); past it every new handle gets 503 unavailable ("store_full")'),
      minFreeDiskBytes: handleLimit('minFreeDiskBytes', 0, 'MIN_FREE_DISK_BYTES', 'free space kept on the store\'s file system (1 GiB; 0 turns the check off); below it new handles get 503 unavailable ("disk_reserve")'),
    },
    { description: 'new handles per owner and in all, and the free disk kept for grants and revocations' },
  ),
  keys: keyRegistryField(),
  storeWriteQueueBytes: field.integer(4 * MiB, 2 ** 40, DEFAULT_GATEWAY_STORE_LIMITS.writeQueueBytes, {
    description: 'bytes of records waiting for the store\'s writer (64 MiB); a handle past it gets 503 unavailable ("store_queue_full")',
    env: 'TKMS_GATEWAY_STORE_WRITE_QUEUE_BYTES',
    unit: 'bytes',
  }),
});

type GatewayConfigFields = StaticDecode<typeof GATEWAY_CONFIG_SCHEMA>;

/** Gateway configuration: the declared fields, with the TLS files as one optional pair. */
export type GatewayConfig = Omit<GatewayConfigFields, 'tlsCertFile' | 'tlsKeyFile'> & {
  /** Serve HTTPS with this PEM certificate chain and key; absent: plain HTTP. */
  tls?: { certFile: string; keyFile: string };
};

/** Every variable that overrides a field, with the field's dotted path. */
export const GATEWAY_ENV_OVERRIDES: Readonly<Record<string, string>> = Object.fromEntries(envFields(GATEWAY_CONFIG_SCHEMA).map((f) => [f.env, f.path]));

/** Every environment variable the gateway reads (for --help and the typo check). */
export const GATEWAY_ENV_VARS: readonly string[] = ['TKMS_GATEWAY_CONFIG', ...Object.keys(GATEWAY_ENV_OVERRIDES)];

/** The config fields for `tkms gateway start --help`. */
export const GATEWAY_CONFIG_FIELDS_HELP = `Config (JSON; paths relative to the config file; each variable overrides its field):
${configFieldsHelp(GATEWAY_CONFIG_SCHEMA)}`;

export function parseGatewayConfig(value: unknown, baseDir: string, env: Record<string, string | undefined> = {}): GatewayConfig {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new TkmsError('bad_request', 'gateway config: must be a JSON object');
  const { value: c, problems } = parseDeclaredConfig(GATEWAY_CONFIG_SCHEMA, { ...value }, baseDir, env);
  const { tlsCertFile, tlsKeyFile, ...fields } = c;
  if ((tlsCertFile === undefined) !== (tlsKeyFile === undefined)) problems.push('tlsCertFile and tlsKeyFile go together: give both for HTTPS, or neither for plain HTTP');
  problems.push(...aclConfigProblems(c.acl));
  if (problems.length > 0) throw new TkmsError('bad_request', `invalid gateway config:\n  - ${problems.join('\n  - ')}`, { problems });
  return tlsCertFile !== undefined && tlsKeyFile !== undefined ? { ...fields, tls: { certFile: tlsCertFile, keyFile: tlsKeyFile } } : fields;
}

/** Loads the config file with the environment on top; without a file, the environment alone (paths relative to the working directory). */
export async function loadGatewayConfig(file: string | undefined, env: Record<string, string | undefined> = process.env): Promise<GatewayConfig> {
  if (file === undefined) return parseGatewayConfig({}, process.cwd(), env);
  const { json, baseDir } = await readConfigFile(file, 'gateway config');
  return parseGatewayConfig(json, baseDir, env);
}
