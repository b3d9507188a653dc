import { Compile } from 'typebox/schema';
import { Array as ArrayType, Boolean as BooleanType, Enum, Integer, Object as ObjectType, Optional, String as StringType, type Static } from 'typebox/type';
import { encodeHex, utf8ToBytes } from '../bytes.ts';
import { GRANT_SOURCES, type GrantSource } from '../authz.ts';
import { isTkmsError, TkmsError } from '../errors.ts';
import { decodeAddress } from '../identifiers.ts';
import { BITCOIN_NETWORKS, decodeBitcoinAddress, MAX_ADDRESS_LENGTH, MIN_ADDRESS_LENGTH } from '../signing/bitcoin-address.ts';

/**
 * A key's purpose-bound policy (the QKMS "warm key"): which uses of a key its share may serve.
 * Every node evaluates it, from the same signed policy and the same request, before its share
 * touches anything; so a gateway cannot route around it, and a request the policy refuses gets
 * fewer than t partials. Every rule is optional; an absent rule restricts nothing.
 *
 * The schema below is the one declaration of the format: parseKeyPolicy checks with it, the
 * gateway's OpenAPI document shows it, and docs/key-policy.md explains it.
 */

/** Uses of a key's share a policy can allow. */
export const KEY_OPERATIONS = ['decrypt', 'sign'] as const;
export type KeyOperation = (typeof KEY_OPERATIONS)[number];

/** Indexed as Date#getUTCDay: 0 is Sunday. */
export const WEEKDAYS = ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] as const;
export type Weekday = (typeof WEEKDAYS)[number];

export const MAX_ALLOWED_REQUESTERS = 100;
export const MAX_TIME_WINDOWS = 16;
export const MAX_APPROVERS = 10;
export const MINUTES_PER_DAY = 1440;
/** Ten years: a longer bound is no bound, since the deployment's own grant limit is far shorter. */
export const MAX_POLICY_GRANT_LIFETIME_SECONDS = 3650 * 86_400;
export const MAX_DAILY_LIMIT = 1_000_000_000;
export const MAX_SIGN_PREFIXES = 16;
export const MAX_SIGN_PREFIX_BYTES = 64;
export const MAX_ALLOWED_ADDRESSES = 100;
/** Every bitcoin there will ever be, in satoshis (21 million × 10⁸): a higher cap is no cap. */
export const MAX_VALUE_CAP_SATS = 2_100_000_000_000_000n;
/**
 * The bound on a policy's JSON text (parseKeyPolicyText). The largest policy the schema admits
 * (about 15.5 KiB, most of it the signing rules' 100 addresses and 16 prefixes) is well under half
 * of it (test/unit/key-policy.test.ts), so only padding or junk ever reaches it.
 */
export const MAX_KEY_POLICY_BYTES = 64 * 1024;

const ADDRESS_PATTERN = '^0x[0-9a-fA-F]{40}$';
const PREFIX_PATTERN = `^0x(?:[0-9a-fA-F]{2}){1,${MAX_SIGN_PREFIX_BYTES}}$`;
/** Up to 16 digits, no leading zero: MAX_VALUE_CAP_SATS has 16, and parseKeyPolicy checks the value. */
const SATS_PATTERN = '^(?:0|[1-9][0-9]{0,15})$';
/** Bech32 and base58 use letters and digits only; the network's codec decides the rest (parseKeyPolicy). */
const BITCOIN_ADDRESS_PATTERN = `^[a-zA-Z0-9]{${MIN_ADDRESS_LENGTH},${MAX_ADDRESS_LENGTH}}$`;
const address = (description: string, example: string) => StringType({ pattern: ADDRESS_PATTERN, description, examples: [example] });

const EXAMPLE_REQUESTER = '0x70997970c51812dc3a010c7d01b50e0d17dc79c8';
const EXAMPLE_APPROVERS = ['0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266', '0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc', '0x90f79bf6eb2c4f870365e785982e1f101e93b906'];
const BUSINESS_HOURS = { days: ['mon', 'tue', 'wed', 'thu', 'fri'], startMinute: 480, endMinute: 1080 };

export const TimeWindowSchema = ObjectType(
  {
    days: ArrayType(Enum([...WEEKDAYS]), {
      minItems: 1,
      maxItems: 7,
      uniqueItems: true,
      description: 'UTC days of the week the window is open on: "sun", "mon", "tue", "wed", "thu", "fri", "sat".',
      examples: [BUSINESS_HOURS.days],
    }),
    startMinute: Integer({ minimum: 0, maximum: MINUTES_PER_DAY - 1, description: 'First minute of the UTC day the window is open (0 = 00:00, 480 = 08:00).', examples: [480] }),
    endMinute: Integer({
      minimum: 1,
      maximum: MINUTES_PER_DAY,
      description: 'The window closes at the start of this minute of the UTC day (1080 = 18:00, 1440 = midnight); later than startMinute. A window across midnight is two windows.',
      examples: [1080],
    }),
  },
  { additionalProperties: false, description: 'A weekly UTC time window: open on `days`, from startMinute (inclusive) to endMinute (exclusive).', examples: [BUSINESS_HOURS] },
);

export const SensitiveSchema = ObjectType(
  {
    approvers: ArrayType(address('An admin whose co-signature counts.', EXAMPLE_APPROVERS[0]!), {
      minItems: 1,
      maxItems: MAX_APPROVERS,
      uniqueItems: true,
      description: `The accounts whose co-signatures (DecryptApproval, EIP-712) count, 1 to ${MAX_APPROVERS}, each once.`,
      examples: [EXAMPLE_APPROVERS],
    }),
    required: Integer({ minimum: 1, maximum: MAX_APPROVERS, description: 'How many distinct approvers must co-sign each request (m of the approvers); at most their number.', examples: [2] }),
  },
  {
    additionalProperties: false,
    description: 'The key is sensitive: each request must carry valid co-signatures of `required` distinct approvers other than the requester.',
    examples: [{ approvers: EXAMPLE_APPROVERS, required: 2 }],
  },
);

/** P2TR addresses on testnet (x-only keys of the secrets 0x0101…01 and 0x0202…02). */
const EXAMPLE_HOT_WALLETS = ['tb1p33wm0auhr9kkahzd6l0kqj85af4cswn276hsxg6zpz85xe2r0y8snwrkwy', 'tb1p5e6v9v2j5wp3y6c79gaqdqltq7jdv45fswnnm7exmmp2020mqepsvssqqw'];
const WARM_KEY_PSBT = { network: 'testnet', allowedAddresses: EXAMPLE_HOT_WALLETS, dailyValueCapSats: '50000000' };
const EXAMPLE_PREFIX = '0x746b6d732f6174746573746174696f6e2f'; // "tkms/attestation/"

export const PsbtRulesSchema = ObjectType(
  {
    network: Enum([...BITCOIN_NETWORKS], {
      description: 'The Bitcoin network the transactions are for: "bitcoin" (mainnet), "testnet" or "regtest". The addresses must be of this network.',
      examples: ['testnet'],
    }),
    allowedAddresses: ArrayType(
      StringType({ pattern: BITCOIN_ADDRESS_PATTERN, description: 'An address of the network (P2TR, P2WPKH, P2WSH, P2PKH, P2SH) that outputs may pay.', examples: [EXAMPLE_HOT_WALLETS[0]] }),
      {
        minItems: 1,
        maxItems: MAX_ALLOWED_ADDRESSES,
        uniqueItems: true,
        description: `The only addresses a transaction's outputs may pay, 1 to ${MAX_ALLOWED_ADDRESSES}, each once; an output back to the key's own Taproot address (change) is always allowed.`,
        examples: [EXAMPLE_HOT_WALLETS],
      },
    ),
    dailyValueCapSats: StringType({
      pattern: SATS_PATTERN,
      description:
        'The most each member lets the key send per UTC day, in satoshis, as a decimal integer string (at most 2100000000000000): the sum over the transactions it signed today of their outputs that do not pay the key\'s own address, plus their fees. Each member counts what it signed and keeps the count across restarts; with signers spread over n members, a gateway that spreads transactions over different signers can make the committee sign up to n/t times the cap a day (docs/signing.md).',
      examples: ['50000000'],
    }),
  },
  {
    additionalProperties: false,
    description: 'The key signs Bitcoin transactions (PSBT v0, Taproot key path) whose every output pays an allowed address or the key itself, within a daily value cap.',
    examples: [WARM_KEY_PSBT],
  },
);

export const SignRulesSchema = ObjectType(
  {
    raw: Optional(
      BooleanType({
        description: 'true: any bytes may be signed (for a Taproot key that includes a transaction\'s sighash, so `psbt` then restricts nothing). Absent or false: only what `prefixes` and `psbt` allow.',
        examples: [false],
      }),
    ),
    prefixes: Optional(
      ArrayType(StringType({ pattern: PREFIX_PATTERN, description: `A domain prefix, 0x and 1 to ${MAX_SIGN_PREFIX_BYTES} bytes of hex.`, examples: [EXAMPLE_PREFIX] }), {
        minItems: 1,
        maxItems: MAX_SIGN_PREFIXES,
        uniqueItems: true,
        description: `A raw message must start with one of these prefixes, 1 to ${MAX_SIGN_PREFIXES}, each once (in any letter case).`,
        examples: [[EXAMPLE_PREFIX]],
      }),
    ),
    psbt: Optional(PsbtRulesSchema),
  },
  {
    additionalProperties: false,
    minProperties: 1,
    description:
      'What a signing key may sign, default-deny: a raw message only if `raw` is true or it starts with one of `prefixes`; a Bitcoin transaction only under `psbt`. Absent: the key signs nothing.',
    examples: [{ prefixes: [EXAMPLE_PREFIX], psbt: WARM_KEY_PSBT }],
  },
);

const PAYROLL_EXAMPLE = {
  operations: ['decrypt'],
  allowedRequesters: [EXAMPLE_REQUESTER],
  timeWindows: [BUSINESS_HOURS],
  dailyLimitPerRequester: 500,
};

export const KeyPolicySchema = ObjectType(
  {
    operations: Optional(
      ArrayType(Enum([...KEY_OPERATIONS]), {
        minItems: 1,
        maxItems: KEY_OPERATIONS.length,
        uniqueItems: true,
        description: 'The uses of the key its shares serve. Absent: every use the key\'s spec allows.',
        examples: [['decrypt']],
      }),
    ),
    grantSources: Optional(
      Enum([...GRANT_SOURCES], {
        description:
          'Which grants count when the requester is not the handle\'s owner: "signed" (owner-signed grants), "chain" (the TkmsAcl contract) or "either". A handle\'s owner needs no grant and always passes this rule. Absent: whatever the deployment\'s acl.mode takes.',
        examples: ['chain'],
      }),
    ),
    maxGrantLifetimeSeconds: Optional(
      Integer({
        minimum: 1,
        maximum: MAX_POLICY_GRANT_LIFETIME_SECONDS,
        description: 'The longest grant this key honours, in seconds: notAfter − issuedAt of a signed grant, the time left (notAfter − now) of an on-chain grant, whose issue time the contract does not keep. Absent: the deployment\'s limit.',
        examples: [86_400],
      }),
    ),
    allowedRequesters: Optional(
      ArrayType(address('An account allowed to use the key.', EXAMPLE_REQUESTER), {
        minItems: 1,
        maxItems: MAX_ALLOWED_REQUESTERS,
        uniqueItems: true,
        description: `The only accounts that may use the key, owners of handles included, 1 to ${MAX_ALLOWED_REQUESTERS}, each once. Absent: anyone the grants allow.`,
        examples: [[EXAMPLE_REQUESTER]],
      }),
    ),
    timeWindows: Optional(
      ArrayType(TimeWindowSchema, {
        minItems: 1,
        maxItems: MAX_TIME_WINDOWS,
        uniqueItems: true,
        description: `The key may be used only inside one of these weekly UTC windows, 1 to ${MAX_TIME_WINDOWS}. Absent: at any time.`,
        examples: [[BUSINESS_HOURS]],
      }),
    ),
    dailyLimitPerRequester: Optional(
      Integer({
        minimum: 1,
        maximum: MAX_DAILY_LIMIT,
        description: 'How many requests each requester may make of each node per UTC day (counted by every node on its own, reset at 00:00 UTC). Absent: no limit.',
        examples: [500],
      }),
    ),
    sensitive: Optional(SensitiveSchema),
    sign: Optional(SignRulesSchema),
  },
  {
    additionalProperties: false,
    description:
      'A key\'s purpose-bound policy, evaluated by every node before its share is used. Every field is optional; an absent field restricts nothing ({} restricts nothing), except `sign`: a signing key signs only what `sign` allows.',
    examples: [PAYROLL_EXAMPLE],
  },
);

export type KeyPolicy = Static<typeof KeyPolicySchema>;
export type TimeWindow = Static<typeof TimeWindowSchema>;
export type SensitivePolicy = Static<typeof SensitiveSchema>;
export type SignRules = Static<typeof SignRulesSchema>;
export type PsbtRules = Static<typeof PsbtRulesSchema>;

/** No restrictions: what a key has until its admins put a policy. */
export const DEFAULT_KEY_POLICY: KeyPolicy = Object.freeze({});

// ---------------------------------------------------------------------------------------
// Parsing.

const validator = Compile(KeyPolicySchema);

/**
 * A key policy from its JSON value: the schema decides, then what no JSON Schema can state
 * (EIP-55 checksums, duplicates in any letter case, windows that open before they close, m ≤ the
 * number of approvers, Bitcoin addresses valid for the named network, a value cap of at most
 * every bitcoin). Addresses and prefixes come back lower-case (bech32 addresses in lower case,
 * base58 ones as written), fields in the schema's order, frozen.
 */
export function parseKeyPolicy(json: unknown): KeyPolicy {
  if (!validator.Check(json)) throw refusal(json);
  const p = json as KeyPolicy;
  const out: KeyPolicy = {};
  if (p.operations !== undefined) out.operations = [...p.operations];
  if (p.grantSources !== undefined) out.grantSources = p.grantSources;
  if (p.maxGrantLifetimeSeconds !== undefined) out.maxGrantLifetimeSeconds = p.maxGrantLifetimeSeconds;
  if (p.allowedRequesters !== undefined) out.allowedRequesters = addressList(p.allowedRequesters, 'allowedRequesters');
  if (p.timeWindows !== undefined) out.timeWindows = timeWindows(p.timeWindows);
  if (p.dailyLimitPerRequester !== undefined) out.dailyLimitPerRequester = p.dailyLimitPerRequester;
  if (p.sensitive !== undefined) {
    const approvers = addressList(p.sensitive.approvers, 'sensitive.approvers');
    if (p.sensitive.required > approvers.length) {
      throw new TkmsError('bad_request', `key policy: sensitive.required (${p.sensitive.required}) must be at most the number of sensitive.approvers (${approvers.length})`);
    }
    out.sensitive = { approvers, required: p.sensitive.required };
  }
  if (p.sign !== undefined) out.sign = signRules(p.sign);
  return deepFreeze(out);
}

/** parseKeyPolicy of a JSON text of at most MAX_KEY_POLICY_BYTES bytes (UTF-8). */
export function parseKeyPolicyText(text: string): KeyPolicy {
  if (typeof text !== 'string') throw new TkmsError('bad_request', 'key policy must be JSON text');
  // Measured before parsing: the bound is what keeps a huge text from being parsed at all.
  if (text.length > MAX_KEY_POLICY_BYTES || utf8ToBytes(text).length > MAX_KEY_POLICY_BYTES) {
    throw new TkmsError('payload_too_large', `key policy is larger than ${MAX_KEY_POLICY_BYTES} bytes`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new TkmsError('bad_request', 'key policy is not valid JSON');
  }
  return parseKeyPolicy(json);
}

/** The policy's canonical JSON value: fields in the schema's order, absent rules left out; parseKeyPolicy returns it unchanged. */
export function encodeKeyPolicy(policy: KeyPolicy): KeyPolicy {
  const out: KeyPolicy = {};
  if (policy.operations !== undefined) out.operations = [...policy.operations];
  if (policy.grantSources !== undefined) out.grantSources = policy.grantSources;
  if (policy.maxGrantLifetimeSeconds !== undefined) out.maxGrantLifetimeSeconds = policy.maxGrantLifetimeSeconds;
  if (policy.allowedRequesters !== undefined) out.allowedRequesters = policy.allowedRequesters.map((a) => a.toLowerCase());
  if (policy.timeWindows !== undefined) out.timeWindows = policy.timeWindows.map((w) => ({ days: [...w.days], startMinute: w.startMinute, endMinute: w.endMinute }));
  if (policy.dailyLimitPerRequester !== undefined) out.dailyLimitPerRequester = policy.dailyLimitPerRequester;
  if (policy.sensitive !== undefined) out.sensitive = { approvers: policy.sensitive.approvers.map((a) => a.toLowerCase()), required: policy.sensitive.required };
  if (policy.sign !== undefined) out.sign = encodeSignRules(policy.sign);
  return out;
}

function encodeSignRules(sign: SignRules): SignRules {
  const out: SignRules = {};
  if (sign.raw !== undefined) out.raw = sign.raw;
  if (sign.prefixes !== undefined) out.prefixes = sign.prefixes.map((x) => x.toLowerCase());
  if (sign.psbt !== undefined) out.psbt = { network: sign.psbt.network, allowedAddresses: [...sign.psbt.allowedAddresses], dailyValueCapSats: sign.psbt.dailyValueCapSats };
  return out;
}

/** The canonical JSON text of a policy (what an admin signs and a node stores). */
export function keyPolicyText(policy: KeyPolicy): string {
  return JSON.stringify(encodeKeyPolicy(policy));
}

function addressList(list: readonly string[], name: string): string[] {
  const seen = new Set<string>();
  return list.map((value, i) => {
    const lower = encodeHex(decodeAddressAsPolicy(value, `${name}[${i}]`));
    if (seen.has(lower)) throw new TkmsError('bad_request', `key policy: ${name}[${i}] (${lower}) is listed twice`);
    seen.add(lower);
    return lower;
  });
}

function signRules(sign: SignRules): SignRules {
  const out = encodeSignRules(sign);
  if (out.prefixes !== undefined) {
    const seen = new Set<string>();
    for (const [i, prefix] of out.prefixes.entries()) {
      if (seen.has(prefix)) throw new TkmsError('bad_request', `key policy: sign.prefixes[${i}] (${prefix}) is listed twice`);
      seen.add(prefix);
    }
  }
  if (out.psbt !== undefined) {
    const { network } = out.psbt;
    const seen = new Set<string>();
    out.psbt.allowedAddresses = out.psbt.allowedAddresses.map((value, i) => {
      let address: string;
      try {
        ({ address } = decodeBitcoinAddress(value, network));
      } catch (e) {
        if (!isTkmsError(e)) throw e;
        throw new TkmsError('bad_request', `key policy: sign.psbt.allowedAddresses[${i}]: ${e.message}`);
      }
      // The canonical spelling names one output script: two spellings of one address are one address.
      if (seen.has(address)) throw new TkmsError('bad_request', `key policy: sign.psbt.allowedAddresses[${i}] (${address}) is listed twice`);
      seen.add(address);
      return address;
    });
    if (BigInt(out.psbt.dailyValueCapSats) > MAX_VALUE_CAP_SATS) {
      throw new TkmsError('bad_request', `key policy: sign.psbt.dailyValueCapSats must be at most ${MAX_VALUE_CAP_SATS} (21 million bitcoin in satoshis)`);
    }
  }
  return out;
}

function decodeAddressAsPolicy(value: string, name: string): Uint8Array {
  try {
    return decodeAddress(value, name);
  } catch (e) {
    // One code for every policy refusal: the message names the field and what is wrong with it.
    throw new TkmsError('bad_request', `key policy: ${e instanceof Error ? e.message : `${name} is not an address`}`);
  }
}

function timeWindows(windows: readonly TimeWindow[]): TimeWindow[] {
  const seen = new Set<string>();
  return windows.map((w, i) => {
    if (w.startMinute >= w.endMinute) {
      throw new TkmsError(
        'bad_request',
        `key policy: timeWindows[${i}] closes (endMinute ${w.endMinute}) before it opens (startMinute ${w.startMinute}); a window across midnight is two windows`,
      );
    }
    const same = `${dayMask(w.days)}:${w.startMinute}:${w.endMinute}`;
    if (seen.has(same)) throw new TkmsError('bad_request', `key policy: timeWindows[${i}] repeats an earlier window`);
    seen.add(same);
    return { days: [...w.days], startMinute: w.startMinute, endMinute: w.endMinute };
  });
}

function dayMask(days: readonly Weekday[]): number {
  let mask = 0;
  for (const d of days) mask |= 1 << WEEKDAYS.indexOf(d);
  return mask;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

interface SchemaError {
  keyword: string;
  schemaPath: string;
  instancePath: string;
  params: Record<string, unknown>;
  message: string;
}

/** The first thing the validator refused, as a message that names the field (e.g. timeWindows[0].days[2]). */
function refusal(json: unknown): TkmsError {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) return new TkmsError('bad_request', 'key policy must be a JSON object');
  const errors = validator.Errors(json)[1] as SchemaError[];
  // An unexpected field shows up twice (its `false` schema, then additionalProperties): name it once.
  const e = errors.find((x) => x.keyword === 'additionalProperties') ?? errors[0];
  if (e === undefined) return new TkmsError('bad_request', 'key policy is not valid');
  const at = fieldPath(e.instancePath);
  switch (e.keyword) {
    case 'additionalProperties': {
      const extra = (e.params.additionalProperties as string[] | undefined)?.[0] ?? '?';
      return new TkmsError('bad_request', `key policy${at === '' ? '' : `: ${at}`} has an unexpected field "${extra}"`);
    }
    case 'required':
      return new TkmsError('bad_request', `key policy: ${at} is missing the field "${(e.params.requiredProperties as string[] | undefined)?.[0] ?? '?'}"`);
    case 'pattern':
      return new TkmsError('bad_request', `key policy: ${at} ${PATTERN_REFUSALS[e.params.pattern as string] ?? 'is not valid'}`);
    case 'minProperties':
      return new TkmsError('bad_request', `key policy: ${at} must set at least one rule (leave it out to sign nothing)`);
    case 'minItems':
      return new TkmsError('bad_request', `key policy: ${at} must list at least ${String(e.params.limit)} item${e.params.limit === 1 ? '' : 's'} (leave the field out to restrict nothing)`);
    case 'maxItems':
      return new TkmsError('bad_request', `key policy: ${at} may list at most ${String(e.params.limit)} item${e.params.limit === 1 ? '' : 's'}`);
    case 'uniqueItems':
      return new TkmsError('bad_request', `key policy: ${at} lists an item twice`);
    case 'enum':
      return new TkmsError('bad_request', `key policy: ${at} must be one of ${((e.params.allowedValues as unknown[] | undefined) ?? []).map((v) => JSON.stringify(v)).join(', ')}`);
    default:
      return new TkmsError('bad_request', `key policy: ${at === '' ? 'the policy' : at} ${e.message}`);
  }
}

const PATTERN_REFUSALS: Record<string, string> = {
  [ADDRESS_PATTERN]: 'must be an Ethereum address, 0x followed by 40 hex digits',
  [PREFIX_PATTERN]: `must be 0x followed by 1 to ${MAX_SIGN_PREFIX_BYTES} bytes of hex`,
  [SATS_PATTERN]: `must be a decimal integer string of satoshis without leading zeros (at most ${MAX_VALUE_CAP_SATS})`,
  [BITCOIN_ADDRESS_PATTERN]: `must be a Bitcoin address, ${MIN_ADDRESS_LENGTH} to ${MAX_ADDRESS_LENGTH} letters and digits`,
};

function fieldPath(pointer: string): string {
  let out = '';
  for (const part of pointer.split('/').slice(1)) {
    const name = part.replace(/~1/g, '/').replace(/~0/g, '~');
    out += /^\d+$/.test(name) ? `[${name}]` : out === '' ? name : `.${name}`;
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Evaluation.

/** How the request is authorized: the requester owns the handle, or holds a grant from one of these sources. */
export type RequestGrantSource = 'owner' | Exclude<GrantSource, 'either'>;

export interface KeyPolicyRequest {
  keyId: string;
  operation: KeyOperation;
  /** The requester's 20-byte address (its signature already verified). */
  requester: Uint8Array;
  grantSource: RequestGrantSource;
  /** The grant's lifetime in seconds (see maxGrantLifetimeSeconds); unknown counts as too long when the policy bounds it. */
  grantLifetimeSeconds?: number;
  nowSeconds: number;
  /** Requests of this requester to this key this node already counted today (node/key-usage.ts). */
  usedToday: number;
  /**
   * Lower-case 0x addresses whose co-signatures verified (decrypt-approval.ts verifiedApprovers); absent: none.
   * A function is called only when the approvals rule is reached, so a request the cheaper rules
   * refuse costs no signature recovery.
   */
  approvers?: ReadonlySet<string> | (() => ReadonlySet<string>);
}

const SECONDS_PER_DAY = 86_400;
/** 1970-01-01 was a Thursday. */
const EPOCH_WEEKDAY = 4;
const NONE: ReadonlySet<string> = new Set();

/**
 * Throws the policy_* refusal of the first rule the request breaks, or returns. Pure and
 * deterministic: the same policy and request give the same answer on every node. Rules run in
 * this order (docs/key-policy.md): operations, allowedRequesters, timeWindows, grantSources,
 * maxGrantLifetimeSeconds, sensitive, dailyLimitPerRequester: facts of the request first, then
 * of its grant, then the co-signatures (the only rule that may need signature recoveries), and
 * the daily count last, so the caller charges exactly the requests this lets through.
 */
export function evaluateKeyPolicy(policy: KeyPolicy, request: KeyPolicyRequest): void {
  const { keyId } = request;
  if (policy.operations !== undefined && !policy.operations.includes(request.operation)) {
    throw new TkmsError('policy_operation_denied', `key ${keyId}: policy allows only ${policy.operations.join(', ')}, not ${request.operation}`);
  }
  const requester = policy.allowedRequesters !== undefined || policy.sensitive !== undefined ? encodeHex(request.requester) : '';
  if (policy.allowedRequesters !== undefined && !policy.allowedRequesters.includes(requester)) {
    const n = policy.allowedRequesters.length;
    throw new TkmsError('policy_requester_denied', `key ${keyId}: policy allows only its ${n} listed requester${n === 1 ? '' : 's'}; ${requester} is not one of them`);
  }
  if (policy.timeWindows !== undefined) checkTimeWindows(keyId, policy.timeWindows, request.nowSeconds);
  if (request.grantSource !== 'owner') {
    if (policy.grantSources !== undefined && policy.grantSources !== 'either' && policy.grantSources !== request.grantSource) {
      throw new TkmsError(
        'policy_grant_source_denied',
        `key ${keyId}: policy counts only ${SOURCE_NAMES[policy.grantSources]} grants; this request relies on ${ARTICLE_SOURCE_NAMES[request.grantSource]} grant`,
      );
    }
    const max = policy.maxGrantLifetimeSeconds;
    if (max !== undefined) {
      const lifetime = request.grantLifetimeSeconds;
      if (lifetime === undefined) {
        throw new TkmsError('policy_grant_too_long', `key ${keyId}: policy accepts grants valid for at most ${max} s; this grant's lifetime is not known`);
      }
      if (lifetime > max) throw new TkmsError('policy_grant_too_long', `key ${keyId}: policy accepts grants valid for at most ${max} s; this one is valid for ${lifetime} s`);
    }
  }
  if (policy.sensitive !== undefined) checkApprovals(keyId, policy.sensitive, requester, request.approvers);
  const limit = policy.dailyLimitPerRequester;
  if (limit !== undefined && request.usedToday >= limit) {
    throw new TkmsError(
      'policy_daily_limit',
      `key ${keyId}: policy allows ${limit} request${limit === 1 ? '' : 's'} per requester per UTC day and this requester has made ${request.usedToday} at this node today; the count resets at 00:00 UTC`,
    );
  }
}

const SOURCE_NAMES = { signed: 'owner-signed', chain: 'on-chain' } as const;
const ARTICLE_SOURCE_NAMES = { signed: 'an owner-signed', chain: 'an on-chain' } as const;

function checkTimeWindows(keyId: string, windows: readonly TimeWindow[], nowSeconds: number): void {
  const day = Math.floor(nowSeconds / SECONDS_PER_DAY);
  const weekday = WEEKDAYS[(((day + EPOCH_WEEKDAY) % 7) + 7) % 7]!;
  const minute = Math.floor((nowSeconds - day * SECONDS_PER_DAY) / 60);
  for (const w of windows) if (minute >= w.startMinute && minute < w.endMinute && w.days.includes(weekday)) return;
  throw new TkmsError(
    'policy_outside_window',
    `key ${keyId}: policy allows requests only ${windows.map(describeWindow).join('; ')} UTC (now ${titleCase(weekday)} ${clock(minute)} UTC)`,
  );
}

function checkApprovals(keyId: string, sensitive: SensitivePolicy, requester: string, approvers: KeyPolicyRequest['approvers']): void {
  const verified = typeof approvers === 'function' ? approvers() : (approvers ?? NONE);
  let count = 0;
  // The requester's own approval never counts: m co-signers means m people besides the one asking.
  for (const a of sensitive.approvers) if (a !== requester && verified.has(a)) count++;
  if (count >= sensitive.required) return;
  throw new TkmsError(
    'policy_approvals_missing',
    `key ${keyId}: policy requires co-signatures of ${sensitive.required} of its ${sensitive.approvers.length} approvers (${sensitive.approvers.join(', ')}) other than the requester; this request carries ${count} valid`,
  );
}

/** "Mon–Fri 08:00–18:00", "Sat, Sun 10:00–14:00". */
export function describeWindow(w: TimeWindow): string {
  // Monday first, as people read a week.
  const order = [1, 2, 3, 4, 5, 6, 0];
  const on = order.filter((i) => w.days.includes(WEEKDAYS[i]!));
  const runs: number[][] = [];
  for (const i of on) {
    const last = runs[runs.length - 1];
    if (last !== undefined && order.indexOf(last[last.length - 1]!) + 1 === order.indexOf(i)) last.push(i);
    else runs.push([i]);
  }
  const days = runs
    .map((run) => {
      const names = run.map((i) => titleCase(WEEKDAYS[i]!));
      return names.length >= 3 ? `${names[0]}–${names[names.length - 1]}` : names.join(', ');
    })
    .join(', ');
  return `${days} ${clock(w.startMinute)}–${clock(w.endMinute)}`;
}

const titleCase = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);
const clock = (minute: number): string => `${String(Math.floor(minute / 60)).padStart(2, '0')}:${String(minute % 60).padStart(2, '0')}`;

/** The key book's policy parser (core/keys/key-apply.ts KeyApplyContext.parsePolicy): the parsed, frozen policy, as a key holds it. */
export function parseStoredKeyPolicy(policy: Record<string, unknown>): Record<string, unknown> {
  return parseKeyPolicy(policy) as unknown as Record<string, unknown>;
}
