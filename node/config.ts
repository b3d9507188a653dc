import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { multiaddr } from '@multiformats/multiaddr';
import { peerIdFromString } from '@libp2p/peer-id';
import { Type, type StaticDecode } from 'typebox';
import { assertParticipantId, TkmsError } from '../core/index.ts';
import type { CeremonyFaults } from '../core/ceremony/types.ts';
import type { DkgCeremonyFaults } from '../core/ceremony/dkg-types.ts';
import { envFields, field, FieldProblem, logLevelField, parseDeclaredConfig, readConfigFile } from '../config/config-schema.ts';
import { configFieldsHelp } from '../config/field-docs.ts';
import { clockSkewField } from '../config/clock-skew.ts';
import { maxGrantLifetimeField } from '../config/grant-lifetime.ts';
import { nodeAclField } from '../config/chain-acl.ts';
import { aclConfigProblems } from '../config/chain-acl-checks.ts';
import { isLoopbackHost } from '../net/http-address.ts';
import { ownerLimitsField } from '../config/owner-limits.ts';
import { keyRegistryField } from '../config/key-registry.ts';
import { PARTIAL_FAULTS, SIGN_FAULTS, type PartialFault, type SignFault } from './partial-faults.ts';
import { DEFAULT_REPLAY_IDS_PER_REQUESTER, MAX_REPLAY_IDS_PER_REQUESTER } from './spent-request-ids.ts';
import { DEFAULT_REVOCATION_LIMITS } from './revocations.ts';

/** At most this many gateways (one per region, a few spares while one is replaced). */
const MAX_GATEWAYS = 16;

function decodeMultiaddrs(value: string | string[]): string[] {
  const lines: string[] = [];
  const out = (typeof value === 'string' ? [value] : value).flatMap((m, i) => {
    try {
      return [multiaddr(m).toString()];
    } catch {
      lines.push(`{path}[${i}] is not a valid multiaddr (e.g. "/ip4/0.0.0.0/tcp/9000")`);
      return [];
    }
  });
  if (lines.length > 0) throw new FieldProblem(...lines);
  return out;
}

function decodePeerIds(ids: string[]): string[] {
  const lines: string[] = [];
  const out = ids.flatMap((id, i) => {
    try {
      return [peerIdFromString(id).toString()];
    } catch {
      lines.push(`{path}[${i}] is not a libp2p peer id`);
      return [];
    }
  });
  if (lines.length > 0) throw new FieldProblem(...lines);
  return out;
}

function isMemberId(id: unknown): boolean {
  try {
    assertParticipantId(id);
    return true;
  } catch {
    return false;
  }
}

/** Fault fields of an engine: lists of member ids and flags. */
interface FaultFields {
  lists: readonly string[];
  flags: readonly string[];
}

const CEREMONY_FAULT_FIELDS: FaultFields = { lists: ['badSubShareTo'], flags: ['equivocateDealing', 'wrongConstantTerm', 'equivocateProposal', 'silent'] };
/** The DKG engine's (DkgCeremonyFaults), at the top of `testFaults`. */
const DKG_FAULT_FIELDS: FaultFields = { lists: ['badSubShareTo', 'falseComplaintAgainst'], flags: ['equivocateDealing', 'equivocateProposal', 'badProofOfKnowledge', 'silent'] };

/** One engine's faults, field by field; `path` names the object in problems ("{path}" or "{path}.ceremony"). */
function decodeFaultFields(entries: [string, unknown][], fields: FaultFields, path: string, lines: string[]): Record<string, number[] | boolean> {
  const out: Record<string, number[] | boolean> = {};
  for (const [key, v] of entries) {
    if (fields.lists.includes(key)) {
      if (Array.isArray(v) && v.length <= 256 && v.every(isMemberId)) out[key] = v as number[];
      else lines.push(`${path}.${key} must be an array of member ids`);
    } else if (fields.flags.includes(key)) {
      if (typeof v === 'boolean') out[key] = v;
      else lines.push(`${path}.${key} must be true or false`);
    } else lines.push(`${path} has an unknown field "${key}"`);
  }
  return out;
}

function decodeFaults(value: Record<string, unknown>): { dkg: DkgCeremonyFaults; partial: PartialFault | undefined; sign: SignFault | undefined; ceremony: CeremonyFaults | undefined; holdVoteWhileExists: string | undefined } {
  const lines: string[] = [];
  let partial: PartialFault | undefined;
  let sign: SignFault | undefined;
  let ceremony: CeremonyFaults | undefined;
  let holdVoteWhileExists: string | undefined;
  const dkgEntries: [string, unknown][] = [];
  for (const [key, v] of Object.entries(value)) {
    if (key === 'holdVoteWhileExists') {
      if (typeof v === 'string' && v.length > 0 && v.length <= 1024) holdVoteWhileExists = v;
      else lines.push('{path}.holdVoteWhileExists must be a file path');
    } else if (key === 'ceremony') {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) lines.push('{path}.ceremony must be an object');
      else ceremony = decodeFaultFields(Object.entries(v), CEREMONY_FAULT_FIELDS, '{path}.ceremony', lines) as CeremonyFaults;
    } else if (key === 'partial') {
      if ((PARTIAL_FAULTS as readonly unknown[]).includes(v)) partial = v as PartialFault;
      else lines.push(`{path}.partial must be one of ${PARTIAL_FAULTS.join(', ')}`);
    } else if (key === 'sign') {
      if ((SIGN_FAULTS as readonly unknown[]).includes(v)) sign = v as SignFault;
      else lines.push(`{path}.sign must be one of ${SIGN_FAULTS.join(', ')}`);
    } else dkgEntries.push([key, v]);
  }
  const dkg = decodeFaultFields(dkgEntries, DKG_FAULT_FIELDS, '{path}', lines) as DkgCeremonyFaults;
  if (lines.length > 0) throw new FieldProblem(...lines);
  return { dkg, partial, sign, ceremony, holdVoteWhileExists };
}

/** The node's config file, field by field: the parser, `--help` and docs/operators.md read this. */
export const NODE_CONFIG_SCHEMA = Type.Object({
  listen: Type.Decode(
    Type.Union([Type.String({ maxLength: 1024 }), Type.Array(Type.String({ maxLength: 1024 }), { minItems: 1, maxItems: 8 })], {
      description: 'libp2p multiaddr(s) to listen on, for the other members and the gateway',
      env: 'TKMS_LISTEN',
      mustBe: 'a multiaddr string (e.g. "/ip4/0.0.0.0/tcp/9000") or an array of 1..8 of them',
    }),
    decodeMultiaddrs,
  ),
  http: field.hostPort({ description: 'host:port of GET /health and GET /metrics', env: 'TKMS_HTTP_LISTEN', mustBe: '"host:port" (health and metrics listener), e.g. "127.0.0.1:9100"' }),
  admin: field.hostPort({ description: 'host:port of the admin API; loopback only unless adminAllowRemote', env: 'TKMS_ADMIN_LISTEN', mustBe: '"host:port" (admin listener), e.g. "127.0.0.1:9200"' }),
  adminAllowRemote: field.boolean(false, { description: 'true to allow a non-loopback admin address (protect it yourself)', env: 'TKMS_ADMIN_ALLOW_REMOTE' }),
  identityFile: field.path({ description: 'the node\'s private identity (written by "tkms node init")', env: 'TKMS_IDENTITY_FILE' }),
  keystoreDir: field.path({ description: 'the encrypted keystore directory', env: 'TKMS_KEYSTORE_DIR' }),
  stateDir: Type.Optional(field.path({ description: 'revocations, spent request ids and DKG state (vote locks)', env: 'TKMS_STATE_DIR', defaultText: '"state" next to keystoreDir' })),
  committeeFile: field.path({ description: 'the committee file: { committeeId, t, members: [{ id, peerId, multiaddrs }] }', env: 'TKMS_COMMITTEE_FILE' }),
  keystorePasswordFile: Type.Optional(
    field.path({ description: 'file holding the keystore password; TKMS_KEYSTORE_PASSWORD (the password itself) wins over it', env: 'TKMS_KEYSTORE_PASSWORD_FILE' }),
  ),
  dkg: field.group(
    { phaseTimeoutMs: field.integer(100, 600_000, 8_000, { description: 'per-phase DKG deadline', env: 'TKMS_DKG_PHASE_TIMEOUT_MS', unit: 'milliseconds' }) },
    { description: 'distributed key generation' },
  ),
  reshare: field.group(
    {
      phaseTimeoutMs: field.integer(100, 600_000, 5_000, {
        description: 'per-phase deadline of reshare and refresh ceremonies (hello, dealing, proposal, echo, vote); every member of a ceremony should use the same',
        env: 'TKMS_RESHARE_PHASE_TIMEOUT_MS',
        unit: 'milliseconds',
      }),
      approvalWindowSeconds: field.integer(1, 604_800, 600, {
        description:
          'how long members that approved a committee change wait for every arriving member to approve it (say hello) before the dealers deal without the late ones; an arriving member that approves later gets no share',
        env: 'TKMS_RESHARE_APPROVAL_WINDOW_SECONDS',
        unit: 'seconds',
      }),
      minRefreshSpacingSeconds: field.integer(0, 86_400, 60, {
        description: 'fewest seconds between two refreshes this node takes part in when a member (not its operator) starts them; stops one member from refreshing in a loop',
        env: 'TKMS_RESHARE_MIN_REFRESH_SPACING_SECONDS',
        unit: 'seconds',
      }),
    },
    { description: 'committee changes: resharing and refresh' },
  ),
  clockSkewSeconds: clockSkewField('TKMS_CLOCK_SKEW_SECONDS'),
  partialRateLimit: field.group(
    {
      perMinute: field.integer(1, 10_000_000, 12_000, { description: 'partial requests per requester account per minute, sustained', env: 'TKMS_PARTIAL_RATE_PER_MINUTE', unit: 'requests' }),
      burst: field.integer(1, 10_000_000, 1_000, { description: 'partial requests per requester account in a burst', env: 'TKMS_PARTIAL_RATE_BURST', unit: 'requests' }),
    },
    { description: 'partial requests per requester account', reportWhole: true },
  ),
  maxGrantLifetimeSeconds: maxGrantLifetimeField(),
  acl: nodeAclField(),
  revocations: ownerLimitsField(DEFAULT_REVOCATION_LIMITS, 'live revocations this node holds'),
  keys: keyRegistryField(),
  replayIdsPerRequester: field.integer(1, MAX_REPLAY_IDS_PER_REQUESTER, DEFAULT_REPLAY_IDS_PER_REQUESTER, {
    description: 'spent request ids one account may have live at once; past it that account gets rate_limited, others are served',
    details:
      'The cache holds at most 1,000,000 and never evicts a live id; once it is half full an account is refused (rate_limited) at its share of the room left (free ids / accounts holding ids), so ten accounts at their quota fill about three quarters and an account below its share is served',
    env: 'TKMS_REPLAY_IDS_PER_REQUESTER',
    unit: 'ids',
  }),
  gatewayPeerIds: Type.Decode(
    Type.Array(Type.String({ maxLength: 128 }), {
      maxItems: MAX_GATEWAYS,
      default: [],
      description: 'the gateway(s)\' libp2p peer ids ("tkms gateway init" prints its own): besides members, the only peers that may push revocations',
      env: 'TKMS_GATEWAY_PEER_IDS',
      mustBe: `an array of at most ${MAX_GATEWAYS} libp2p peer ids (the gateways' "tkms gateway init" prints its own)`,
    }),
    decodePeerIds,
  ),
  gatewayAddresses: Type.Decode(
    Type.Array(Type.String({ maxLength: 64 }), {
      maxItems: MAX_GATEWAYS,
      default: [],
      description: 'IP addresses (no ports) the gateway(s) connect to nodes from, allow-listed like members\' addresses',
      details: 'so handshakes left pending by outsiders cannot keep a gateway out (see "libp2p limits")',
      mustBe: `an array of at most ${MAX_GATEWAYS} IP addresses (no ports, no names)`,
    }),
    (addresses) => {
      if (!addresses.every((a) => isIP(a) !== 0)) throw new FieldProblem();
      return addresses;
    },
  ),
  logLevel: logLevelField('TKMS_LOG_LEVEL'),
  testFaults: Type.Optional(
    Type.Decode(Type.Record(Type.String(), Type.Unknown(), { description: 'misbehaviour on purpose, for tests; refused unless the environment sets TKMS_ENABLE_TEST_FAULTS=1', mustBe: 'an object' }), decodeFaults),
  ),
});

type NodeConfigFields = StaticDecode<typeof NODE_CONFIG_SCHEMA>;

export type NodeConfig = Omit<NodeConfigFields, 'dkg' | 'reshare' | 'testFaults' | 'stateDir'> & {
  /** Directory of the config file; relative paths are resolved against it. */
  baseDir: string;
  stateDir: string;
  dkgPhaseTimeoutMs: number;
  resharePhaseTimeoutMs: number;
  minRefreshSpacingSeconds: number;
  reshareApprovalWindowSeconds: number;
  testFaults: DkgCeremonyFaults | undefined;
  partialFault: PartialFault | undefined;
  signFault: SignFault | undefined;
  ceremonyFaults: CeremonyFaults | undefined;
  /** testFaults.holdVoteWhileExists, resolved: reshare votes are written only once this file is gone (node/vote-hold.ts). */
  voteHoldFile: string | undefined;
};

/** Every variable that overrides a field, with the field's dotted path. */
export const ENV_OVERRIDES: Readonly<Record<string, string>> = Object.fromEntries(envFields(NODE_CONFIG_SCHEMA).map((f) => [f.env, f.path]));

/** Every environment variable the node reads (for --help and the typo check). */
export const NODE_ENV_VARS: readonly string[] = ['TKMS_CONFIG', ...Object.keys(ENV_OVERRIDES), 'TKMS_KEYSTORE_PASSWORD', 'TKMS_ENABLE_TEST_FAULTS'];

/** The config fields for `tkms node start --help`. */
export const NODE_CONFIG_FIELDS_HELP = `Config (JSON; paths relative to the config file; each variable overrides its field):
${configFieldsHelp(NODE_CONFIG_SCHEMA)}  TKMS_KEYSTORE_PASSWORD           (the keystore password itself; wins over keystorePasswordFile)
`;

export interface ParseConfigOptions {
  /** Directory that relative paths are resolved against (the config file's). */
  baseDir: string;
  env?: Record<string, string | undefined>;
}

/**
 * Validates a parsed config object. Every mistake gets its own line, so an operator
 * fixes a file in one pass; all of them together are thrown as one bad_request.
 */
export function parseConfig(value: unknown, { baseDir, env = {} }: ParseConfigOptions): NodeConfig {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new TkmsError('bad_request', 'config: must be a JSON object');
  const file: Record<string, unknown> = { ...value };
  const gated: string[] = [];
  if (file.testFaults !== undefined && env.TKMS_ENABLE_TEST_FAULTS !== '1') {
    gated.push('testFaults is only allowed when the environment sets TKMS_ENABLE_TEST_FAULTS=1 (never in production)');
    delete file.testFaults;
  }
  const { value: c, problems, origin } = parseDeclaredConfig(NODE_CONFIG_SCHEMA, file, baseDir, env);
  problems.push(...gated);
  if (c.admin !== undefined && !c.adminAllowRemote && !isLoopbackHost(c.admin.host)) {
    problems.push(`admin must listen on a loopback address (set "adminAllowRemote": true or TKMS_ADMIN_ALLOW_REMOTE=true to override)${origin('admin')}`);
  }
  if (c.http !== undefined && c.admin !== undefined && c.http.port === c.admin.port && c.http.port !== 0 && c.http.host === c.admin.host) {
    problems.push('http and admin must listen on different ports');
  }
  problems.push(...aclConfigProblems(c.acl));
  if (problems.length > 0) throw new TkmsError('bad_request', `invalid config:\n  - ${problems.join('\n  - ')}`, { problems });
  const { dkg, reshare, testFaults, stateDir, ...fields } = c;
  return {
    ...fields,
    baseDir,
    stateDir: stateDir ?? resolve(c.keystoreDir, '..', 'state'),
    dkgPhaseTimeoutMs: dkg.phaseTimeoutMs,
    resharePhaseTimeoutMs: reshare.phaseTimeoutMs,
    minRefreshSpacingSeconds: reshare.minRefreshSpacingSeconds,
    reshareApprovalWindowSeconds: reshare.approvalWindowSeconds,
    testFaults: testFaults?.dkg,
    partialFault: testFaults?.partial,
    signFault: testFaults?.sign,
    ceremonyFaults: testFaults?.ceremony,
    voteHoldFile: testFaults?.holdVoteWhileExists === undefined ? undefined : resolve(baseDir, testFaults.holdVoteWhileExists),
  };
}

/**
 * Loads the config file (relative paths resolve against its directory) with the environment's
 * overrides on top. Without a file (`undefined`), the environment alone configures the node and
 * relative paths resolve against the working directory — handy in containers.
 */
export async function loadConfig(file: string | undefined, env: Record<string, string | undefined> = process.env): Promise<NodeConfig> {
  if (file === undefined) return parseConfig({}, { baseDir: process.cwd(), env });
  const { json, baseDir } = await readConfigFile(file, 'config');
  return parseConfig(json, { baseDir, env });
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
