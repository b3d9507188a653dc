import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encodeHex } from '../../core/bytes.ts';
import { isTkmsError, type ErrorCode } from '../../core/errors.ts';
import { toChecksumAddress } from '../../core/identifiers.ts';
import { DecryptApprovalMessage, decryptApprovalsField, MAX_DECRYPT_APPROVALS } from '../../core/keys/decrypt-approval.ts';
import {
  encodeKeyPolicy,
  evaluateKeyPolicy,
  KEY_OPERATIONS,
  keyPolicyText,
  MAX_ALLOWED_REQUESTERS,
  MAX_APPROVERS,
  MAX_DAILY_LIMIT,
  MAX_POLICY_GRANT_LIFETIME_SECONDS,
  MAX_TIME_WINDOWS,
  MINUTES_PER_DAY,
  parseKeyPolicy,
  parseKeyPolicyText,
  WEEKDAYS,
  type KeyPolicy,
  type KeyPolicyRequest,
} from '../../core/keys/policy.ts';
import { MAX_TIMESTAMP, messageCodec } from '../../core/schema.ts';
import { schnorr } from '@noble/curves/secp256k1.js';
import { p2tr, p2wpkh } from '@scure/btc-signer/payment.js';
import { BITCOIN_NETWORKS, NETWORK_PARAMS } from '../../core/signing/bitcoin-address.ts';

const RUNS = 300;

/** A throw must be a TkmsError with a 4xx code; returns whether it threw. */
function refusedTyped(fn: () => unknown, label: string): boolean {
  try {
    fn();
    return false;
  } catch (e) {
    assert.ok(isTkmsError(e), `${label}: expected a TkmsError, got ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`);
    assert.ok(e.httpStatus >= 400 && e.httpStatus < 500, `${label}: ${e.code} ${e.message}`);
    return true;
  }
}

const outcome = (fn: () => void): string => {
  try {
    fn();
    return 'ok';
  } catch (e) {
    assert.ok(isTkmsError(e), String(e));
    return `${e.code}: ${e.message}`;
  }
};

// A small pool of accounts, so generated requests hit the generated allow-lists and approver lists.
const POOL = Array.from({ length: 6 }, (_, i) => new Uint8Array(20).fill(0x11 * (i + 1)));
const addressBytes = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...POOL) }, { weight: 1, arbitrary: fc.uint8Array({ minLength: 20, maxLength: 20 }) });
/** One address in any of the spellings the format takes: lower, upper or EIP-55 mixed case. */
const spelled = (bytes: Uint8Array) =>
  fc.constantFrom(encodeHex(bytes), `0x${encodeHex(bytes).slice(2).toUpperCase()}`, toChecksumAddress(bytes));
const addressList = (max: number) =>
  fc.uniqueArray(addressBytes, { minLength: 1, maxLength: max, selector: encodeHex }).chain((list) => fc.tuple(...list.map(spelled)));

const windowArb = fc
  .record({
    days: fc.uniqueArray(fc.constantFrom(...WEEKDAYS), { minLength: 1, maxLength: 7 }),
    start: fc.integer({ min: 0, max: MINUTES_PER_DAY - 1 }),
    length: fc.integer({ min: 1, max: MINUTES_PER_DAY }),
  })
  .map(({ days, start, length }) => ({ days, startMinute: start, endMinute: Math.min(MINUTES_PER_DAY, start + length) }));
const dayMask = (days: readonly string[]) => days.reduce((m, d) => m | (1 << WEEKDAYS.indexOf(d as never)), 0);

/** Signing rules in canonical form: lower-case prefixes, addresses of the network as its codec spells them. */
const SIGNING_KEYS = Array.from({ length: 8 }, (_, i) => schnorr.getPublicKey(new Uint8Array(32).fill(i + 1)));
const signArb = fc.record(
  {
    raw: fc.boolean(),
    prefixes: fc.uniqueArray(fc.uint8Array({ minLength: 1, maxLength: 64 }).map(encodeHex), { minLength: 1, maxLength: 16 }),
    psbt: fc.constantFrom(...BITCOIN_NETWORKS).chain((network) =>
      fc.record(
        {
          network: fc.constant(network),
          allowedAddresses: fc.uniqueArray(
            fc.tuple(fc.nat(SIGNING_KEYS.length - 1), fc.boolean()).map(([i, tr]) =>
              tr ? p2tr(SIGNING_KEYS[i]!, undefined, NETWORK_PARAMS[network]).address! : p2wpkh(Uint8Array.of(2, ...SIGNING_KEYS[i]!), NETWORK_PARAMS[network]).address!,
            ),
            { minLength: 1, maxLength: 6 },
          ),
          dailyValueCapSats: fc.bigInt({ min: 0n, max: 2_100_000_000_000_000n }).map(String),
        },
        { noNullPrototype: true },
      ),
    ),
  },
  { requiredKeys: [], noNullPrototype: true },
).filter((sign) => Object.keys(sign).length > 0);
const SIGN_FIELDS = ['raw', 'prefixes', 'psbt', 'psbt.network', 'psbt.allowedAddresses', 'psbt.dailyValueCapSats'] as const;

/** A valid policy as JSON, every rule present or not. */
const policyJsonArb: fc.Arbitrary<Record<string, unknown>> = fc.record(
  {
    operations: fc.uniqueArray(fc.constantFrom(...KEY_OPERATIONS), { minLength: 1, maxLength: KEY_OPERATIONS.length }),
    grantSources: fc.constantFrom('signed', 'chain', 'either'),
    maxGrantLifetimeSeconds: fc.oneof(fc.integer({ min: 1, max: 200_000 }), fc.constantFrom(1, MAX_POLICY_GRANT_LIFETIME_SECONDS)),
    allowedRequesters: addressList(MAX_ALLOWED_REQUESTERS),
    timeWindows: fc.uniqueArray(windowArb, { minLength: 1, maxLength: MAX_TIME_WINDOWS, selector: (w) => `${dayMask(w.days)}:${w.startMinute}:${w.endMinute}` }),
    dailyLimitPerRequester: fc.oneof(fc.integer({ min: 1, max: 20 }), fc.constant(MAX_DAILY_LIMIT)),
    sensitive: addressList(MAX_APPROVERS).chain((approvers) => fc.record({ approvers: fc.constant(approvers), required: fc.integer({ min: 1, max: approvers.length }) }, { noNullPrototype: true })),
    sign: signArb,
  },
  { requiredKeys: [], noNullPrototype: true },
) as fc.Arbitrary<Record<string, unknown>>;

const requestArb: fc.Arbitrary<KeyPolicyRequest> = fc.record(
  {
    keyId: fc.constantFrom('payroll', 'vault', 'k.1'),
    operation: fc.constantFrom(...KEY_OPERATIONS),
    requester: addressBytes,
    grantSource: fc.constantFrom('owner', 'signed', 'chain'),
    grantLifetimeSeconds: fc.option(fc.integer({ min: 0, max: 300_000 }), { nil: undefined }),
    nowSeconds: fc.oneof(fc.integer({ min: 0, max: MAX_TIMESTAMP }), fc.integer({ min: 1767571200, max: 1767571200 + 14 * 86_400 })),
    usedToday: fc.integer({ min: 0, max: 25 }),
    approvers: fc.uniqueArray(addressBytes.map(encodeHex), { maxLength: 8 }).map((list) => new Set(list)),
  },
  { requiredKeys: ['keyId', 'operation', 'requester', 'grantSource', 'nowSeconds', 'usedToday'], noNullPrototype: true },
) as fc.Arbitrary<KeyPolicyRequest>;

/** The rules in the order evaluateKeyPolicy documents, each as the policy field that states it. */
const RULE_ORDER = ['operations', 'allowedRequesters', 'timeWindows', 'grantSources', 'maxGrantLifetimeSeconds', 'sensitive', 'dailyLimitPerRequester'] as const;

describe('property: key policy parsing (core/keys/policy.ts)', () => {
  it('arbitrary JSON is a policy or a bad_request, never another exception', () => {
    fc.assert(
      fc.property(fc.oneof(fc.jsonValue(), fc.dictionary(fc.constantFrom(...RULE_ORDER, 'other'), fc.jsonValue({ maxDepth: 3 }))), (json) => {
        refusedTyped(() => parseKeyPolicy(json), JSON.stringify(json)?.slice(0, 200) ?? String(json));
      }),
      { numRuns: RUNS },
    );
  });

  it('any text is a policy or a TkmsError', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 300 }), fc.jsonValue().map((v) => JSON.stringify(v) ?? '')), (text) => {
        refusedTyped(() => parseKeyPolicyText(text), text.slice(0, 200));
      }),
      { numRuns: RUNS },
    );
  });

  it('a valid policy with one field replaced by arbitrary JSON is a policy or a bad_request', () => {
    fc.assert(
      fc.property(policyJsonArb, fc.constantFrom(...RULE_ORDER), fc.jsonValue({ maxDepth: 3 }), (json, field, value) => {
        refusedTyped(() => parseKeyPolicy({ ...json, [field]: value }), `${field} = ${JSON.stringify(value)}`);
      }),
      { numRuns: RUNS },
    );
  });

  it('valid signing rules with one field replaced by arbitrary JSON are a policy or a bad_request', () => {
    fc.assert(
      fc.property(signArb, fc.constantFrom(...SIGN_FIELDS), fc.oneof(fc.jsonValue({ maxDepth: 2 }), fc.string({ maxLength: 80 })), (sign, field, value) => {
        const json = JSON.parse(JSON.stringify(sign)) as Record<string, Record<string, unknown>>;
        const [head, tail] = field.split('.') as [string, string | undefined];
        if (tail === undefined) json[head] = value as never;
        else if (json[head] !== undefined) json[head]![tail] = value;
        refusedTyped(() => parseKeyPolicy({ sign: json }), `sign.${field} = ${JSON.stringify(value)}`);
      }),
      { numRuns: RUNS },
    );
  });

  it('every valid policy parses; encode ∘ parse is the identity on what parse returns, and through text too', () => {
    fc.assert(
      fc.property(policyJsonArb, (json) => {
        const policy = parseKeyPolicy(json);
        const encoded = encodeKeyPolicy(policy);
        assert.deepEqual(encoded, policy);
        assert.deepEqual(parseKeyPolicy(encoded), policy);
        assert.deepEqual(parseKeyPolicyText(keyPolicyText(policy)), policy);
        // The only change parsing makes is the case of addresses.
        const lower = (list: unknown) => (list as string[]).map((a) => a.toLowerCase());
        const sensitive = json.sensitive as { approvers: string[]; required: number } | undefined;
        const lowered = {
          ...json,
          ...(json.allowedRequesters === undefined ? {} : { allowedRequesters: lower(json.allowedRequesters) }),
          ...(sensitive === undefined ? {} : { sensitive: { ...sensitive, approvers: lower(sensitive.approvers) } }),
        };
        assert.equal(keyPolicyText(policy), JSON.stringify(encodeKeyPolicy(lowered as KeyPolicy)));
      }),
      { numRuns: RUNS },
    );
  });
});

describe('property: key policy evaluation', () => {
  it('is deterministic: the same policy and request give the same answer, also from a policy re-parsed from its text', () => {
    fc.assert(
      fc.property(policyJsonArb, requestArb, (json, request) => {
        const policy = parseKeyPolicy(json);
        const first = outcome(() => evaluateKeyPolicy(policy, request));
        assert.equal(outcome(() => evaluateKeyPolicy(policy, request)), first);
        assert.equal(outcome(() => evaluateKeyPolicy(parseKeyPolicyText(keyPolicyText(policy)), { ...request, requester: request.requester.slice() })), first);
      }),
      { numRuns: RUNS },
    );
  });

  it('a policy allows a request exactly when each of its rules alone does, and refuses with the first rule (in order) that refuses alone', () => {
    fc.assert(
      fc.property(policyJsonArb, requestArb, (json, request) => {
        const policy = parseKeyPolicy(json);
        const alone = RULE_ORDER.filter((rule) => policy[rule] !== undefined).map((rule) => outcome(() => evaluateKeyPolicy({ [rule]: policy[rule] } as KeyPolicy, request)));
        const firstRefusal = alone.find((o) => o !== 'ok') ?? 'ok';
        assert.equal(outcome(() => evaluateKeyPolicy(policy, request)), firstRefusal);
      }),
      { numRuns: 1000 },
    );
  });

  it('each rule alone refuses only with its own code', () => {
    const codeOf: Record<(typeof RULE_ORDER)[number], ErrorCode> = {
      operations: 'policy_operation_denied',
      allowedRequesters: 'policy_requester_denied',
      timeWindows: 'policy_outside_window',
      grantSources: 'policy_grant_source_denied',
      maxGrantLifetimeSeconds: 'policy_grant_too_long',
      sensitive: 'policy_approvals_missing',
      dailyLimitPerRequester: 'policy_daily_limit',
    };
    fc.assert(
      fc.property(policyJsonArb, requestArb, (json, request) => {
        const policy = parseKeyPolicy(json);
        for (const rule of RULE_ORDER) {
          if (policy[rule] === undefined) continue;
          const o = outcome(() => evaluateKeyPolicy({ [rule]: policy[rule] } as KeyPolicy, request));
          assert.ok(o === 'ok' || o.startsWith(`${codeOf[rule]}: key ${request.keyId}: policy `), `${rule}: ${o}`);
        }
      }),
      { numRuns: RUNS },
    );
  });
});

describe('property: DecryptApproval decoder (core/keys/decrypt-approval.ts)', () => {
  const bytes = (n: number) => fc.uint8Array({ minLength: n, maxLength: n });
  const approvalArb = fc.record(
    {
      keyId: fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,63}$/).filter((s) => !s.includes('..')),
      handle: bytes(32),
      requester: bytes(20),
      approver: bytes(20),
      notBefore: fc.integer({ min: 0, max: MAX_TIMESTAMP }),
      notAfter: fc.integer({ min: 0, max: MAX_TIMESTAMP }),
      signature: bytes(65),
    },
    { noNullPrototype: true },
  );
  const FIELDS = ['keyId', 'handle', 'requester', 'approver', 'notBefore', 'notAfter', 'signature'];

  it('arbitrary JSON decodes or is refused with a 4xx TkmsError', () => {
    fc.assert(
      fc.property(fc.oneof(fc.jsonValue(), fc.dictionary(fc.constantFrom(...FIELDS), fc.jsonValue({ maxDepth: 2 }))), (json) => {
        refusedTyped(() => DecryptApprovalMessage.decode(json), JSON.stringify(json)?.slice(0, 200) ?? '');
      }),
      { numRuns: RUNS },
    );
  });

  it('valid approvals round-trip through their wire form', () => {
    fc.assert(
      fc.property(approvalArb, (approval) => {
        const wire = DecryptApprovalMessage.encode(approval);
        assert.deepEqual(DecryptApprovalMessage.decode(JSON.parse(JSON.stringify(wire))), approval);
      }),
      { numRuns: RUNS },
    );
  });

  it('a missing field, an extra field, or a field of another type is refused', () => {
    fc.assert(
      // Whole numbers are valid times (notBefore = 0 is one): only fractions are another type here.
      fc.property(approvalArb, fc.constantFrom(...FIELDS), fc.oneof(fc.constant(null), fc.boolean(), fc.double().filter((d) => !Number.isInteger(d)), fc.string({ maxLength: 10 }), fc.constant({})), (approval, field, junk) => {
        const wire = DecryptApprovalMessage.encode(approval) as Record<string, unknown>;
        const { [field]: _dropped, ...missing } = wire;
        assert.ok(refusedTyped(() => DecryptApprovalMessage.decode(missing), `without ${field}`));
        assert.ok(refusedTyped(() => DecryptApprovalMessage.decode({ ...wire, extra: junk }), 'with an extra field'));
        // A string can be a valid key id: replace the key id with something that cannot.
        const bad = field === 'keyId' && typeof junk === 'string' ? `${junk}..` : junk;
        assert.ok(refusedTyped(() => DecryptApprovalMessage.decode({ ...wire, [field]: bad }), `${field} = ${JSON.stringify(bad)}`));
      }),
      { numRuns: RUNS },
    );
  });

  it(`a list of approvals holds at most ${MAX_DECRYPT_APPROVALS}`, () => {
    const Carrier = messageCodec('carrier', { approvals: decryptApprovalsField }, { description: 'test' });
    fc.assert(
      fc.property(fc.array(approvalArb, { minLength: 0, maxLength: MAX_DECRYPT_APPROVALS + 3 }), (approvals) => {
        const wire = { approvals: approvals.map((a) => DecryptApprovalMessage.encode(a)) };
        if (approvals.length <= MAX_DECRYPT_APPROVALS) assert.deepEqual(Carrier.decode(wire).approvals, approvals);
        else assert.ok(refusedTyped(() => Carrier.decode(wire), `${approvals.length} approvals`));
      }),
      { numRuns: 100 },
    );
  });
});
