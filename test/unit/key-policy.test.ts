import assert from 'node:assert/strict';
import { expectSyncRefusal } from '../support/refusal.ts';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Compile } from 'typebox/schema';
import { decodeHex, encodeHex } from '../../core/bytes.ts';
import { encodeType } from '../../core/eip712.ts';
import { ERROR_CODES, type ErrorCode } from '../../core/errors.ts';
import { MESSAGE_EXAMPLES } from '../../core/messages.ts';
import { schnorr } from '@noble/curves/secp256k1.js';
import { p2tr } from '@scure/btc-signer/payment.js';
import { KEY_LIMITS } from '../../core/keys/key-model.ts';
import { NETWORK_PARAMS } from '../../core/signing/bitcoin-address.ts';
import {
  DECRYPT_APPROVAL_EXAMPLE,
  DecryptApprovalMessage,
  MAX_DECRYPT_APPROVALS,
  signDecryptApproval,
  verifiedApprovers,
  type ApprovalContext,
  type DecryptApproval,
  type UnsignedDecryptApproval,
} from '../../core/keys/decrypt-approval.ts';
import {
  DEFAULT_KEY_POLICY,
  describeWindow,
  encodeKeyPolicy,
  evaluateKeyPolicy,
  KeyPolicySchema,
  keyPolicyText,
  MAX_ALLOWED_ADDRESSES,
  MAX_ALLOWED_REQUESTERS,
  MAX_APPROVERS,
  MAX_KEY_POLICY_BYTES,
  MAX_SIGN_PREFIX_BYTES,
  MAX_SIGN_PREFIXES,
  MAX_TIME_WINDOWS,
  parseKeyPolicy,
  parseKeyPolicyText,
  WEEKDAYS,
  type KeyPolicyRequest,
} from '../../core/keys/policy.ts';

/** Hardhat accounts #0-#3 (public test keys). */
const ACCOUNTS = [
  { address: '0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266', key: '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80' },
  { address: '0x70997970c51812dc3a010c7d01b50e0d17dc79c8', key: '0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d' },
  { address: '0x3c44cdddb6a900fa2b585dd299e03d12fa4293bc', key: '0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a' },
  { address: '0x90f79bf6eb2c4f870365e785982e1f101e93b906', key: '0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6' },
].map((a) => ({ ...a, bytes: decodeHex(a.address), secret: decodeHex(a.key) }));
const [ADMIN_A, REQUESTER, ADMIN_B, ADMIN_C] = ACCOUNTS as [(typeof ACCOUNTS)[0], (typeof ACCOUNTS)[0], (typeof ACCOUNTS)[0], (typeof ACCOUNTS)[0]];
const STRANGER = decodeHex('0x' + '11'.repeat(20));
/** P2TR addresses of one x-only key (secret 0x0101…01) on testnet and mainnet, and a P2WPKH address on testnet. */
const TB_1 = 'tb1p33wm0auhr9kkahzd6l0kqj85af4cswn276hsxg6zpz85xe2r0y8snwrkwy';
const BC_1 = 'bc1p33wm0auhr9kkahzd6l0kqj85af4cswn276hsxg6zpz85xe2r0y8syx4e5t';
const DEVNET = { committeeId: 'devnet' };

/** 2026-01-05 00:00:00 UTC, a Monday. */
const MONDAY = 1767571200;
const at = (day: number, hh: number, mm: number, ss = 0): number => MONDAY + day * 86_400 + hh * 3600 + mm * 60 + ss;

const refusedWith = expectSyncRefusal;

const request = (over: Partial<KeyPolicyRequest> = {}): KeyPolicyRequest => ({
  keyId: 'payroll',
  operation: 'decrypt',
  requester: REQUESTER.bytes,
  grantSource: 'owner',
  nowSeconds: at(0, 10, 0),
  usedToday: 0,
  ...over,
});

describe('key policy: format (core/keys/policy.ts)', () => {
  it('the empty policy restricts nothing, and is the default', () => {
    assert.deepEqual(parseKeyPolicy({}), {});
    assert.deepEqual(DEFAULT_KEY_POLICY, {});
    evaluateKeyPolicy(DEFAULT_KEY_POLICY, request({ grantSource: 'chain', grantLifetimeSeconds: 10 ** 9, nowSeconds: at(5, 3, 0), usedToday: 10 ** 9 }));
  });

  it('parses a full policy: addresses lower-case, fields in schema order, frozen, and encode returns it unchanged', () => {
    const json = {
      sensitive: { approvers: [ADMIN_A.address.toUpperCase().replace('0X', '0x'), ADMIN_B.address], required: 2 },
      dailyLimitPerRequester: 5,
      timeWindows: [{ days: ['fri', 'mon'], startMinute: 0, endMinute: 1440 }],
      allowedRequesters: ['0x70997970C51812dc3A010C7d01b50e0d17dc79C8'],
      maxGrantLifetimeSeconds: 3600,
      grantSources: 'chain',
      operations: ['decrypt'],
    };
    const policy = parseKeyPolicy(json);
    assert.deepEqual(Object.keys(policy), ['operations', 'grantSources', 'maxGrantLifetimeSeconds', 'allowedRequesters', 'timeWindows', 'dailyLimitPerRequester', 'sensitive']);
    assert.deepEqual(policy.allowedRequesters, [REQUESTER.address]);
    assert.deepEqual(policy.sensitive!.approvers, [ADMIN_A.address, ADMIN_B.address]);
    assert.ok(Object.isFrozen(policy) && Object.isFrozen(policy.sensitive) && Object.isFrozen(policy.timeWindows![0]!.days));
    assert.deepEqual(encodeKeyPolicy(policy), policy);
    assert.deepEqual(parseKeyPolicyText(keyPolicyText(policy)), policy);
    assert.equal(keyPolicyText(policy), JSON.stringify(policy));
  });

  const refusals: [string, unknown, RegExp][] = [
    ['not an object', [], /must be a JSON object/],
    ['null', null, /must be a JSON object/],
    ['an unknown field', { operation: ['decrypt'] }, /unexpected field "operation"/],
    ['an unknown operation', { operations: ['encrypt'] }, /operations\[0\] must be one of "decrypt", "sign"/],
    ['an empty operations list', { operations: [] }, /operations must list at least 1 item/],
    ['a repeated operation', { operations: ['decrypt', 'decrypt'] }, /operations (may list at most|lists an item twice)/],
    ['an unknown grant source', { grantSources: 'onchain' }, /grantSources must be one of "signed", "chain", "either"/],
    ['a zero grant lifetime', { maxGrantLifetimeSeconds: 0 }, /maxGrantLifetimeSeconds/],
    ['a fractional daily limit', { dailyLimitPerRequester: 1.5 }, /dailyLimitPerRequester/],
    ['a zero daily limit', { dailyLimitPerRequester: 0 }, /dailyLimitPerRequester/],
    ['a short address', { allowedRequesters: ['0x1234'] }, /allowedRequesters\[0\] must be an Ethereum address/],
    ['a bad checksum', { allowedRequesters: ['0x70997970C51812dc3A010C7d01b50e0d17dc79c8'] }, /allowedRequesters\[0\] has an invalid EIP-55 checksum/],
    ['a requester listed twice in two cases', { allowedRequesters: [REQUESTER.address, REQUESTER.address.toUpperCase().replace('0X', '0x')] }, /allowedRequesters\[1\] .* is listed twice/],
    ['too many requesters', { allowedRequesters: Array.from({ length: MAX_ALLOWED_REQUESTERS + 1 }, (_, i) => encodeHex(new Uint8Array(20).fill(i))) }, /allowedRequesters may list at most 100/],
    ['an unknown day', { timeWindows: [{ days: ['mon', 'funday'], startMinute: 0, endMinute: 60 }] }, /timeWindows\[0\]\.days\[1\] must be one of/],
    ['a window that closes before it opens', { timeWindows: [{ days: ['mon'], startMinute: 600, endMinute: 600 }] }, /timeWindows\[0\] closes .* before it opens/],
    ['a window past midnight', { timeWindows: [{ days: ['mon'], startMinute: 0, endMinute: 1441 }] }, /timeWindows\[0\]\.endMinute/],
    ['a window missing its end', { timeWindows: [{ days: ['mon'], startMinute: 0 }] }, /timeWindows\[0\] is missing the field "endMinute"/],
    ['the same window twice, days in another order', { timeWindows: [{ days: ['mon', 'tue'], startMinute: 1, endMinute: 2 }, { days: ['tue', 'mon'], startMinute: 1, endMinute: 2 }] }, /timeWindows\[1\] repeats an earlier window/],
    ['too many windows', { timeWindows: Array.from({ length: MAX_TIME_WINDOWS + 1 }, (_, i) => ({ days: ['mon'], startMinute: i, endMinute: i + 1 })) }, /timeWindows may list at most 16/],
    ['more approvals required than approvers', { sensitive: { approvers: [ADMIN_A.address, ADMIN_B.address], required: 3 } }, /sensitive\.required \(3\) must be at most the number of sensitive\.approvers \(2\)/],
    ['an approver listed twice', { sensitive: { approvers: [ADMIN_A.address, ADMIN_A.address], required: 1 } }, /sensitive\.approvers lists an item twice/],
    ['too many approvers', { sensitive: { approvers: Array.from({ length: MAX_APPROVERS + 1 }, (_, i) => encodeHex(new Uint8Array(20).fill(i))), required: 1 } }, /sensitive\.approvers may list at most 10/],
    ['sensitive without required', { sensitive: { approvers: [ADMIN_A.address] } }, /sensitive is missing the field "required"/],
    ['an empty sign section', { sign: {} }, /sign must set at least one rule \(leave it out to sign nothing\)/],
    ['an unknown signing rule', { sign: { raw: true, all: true } }, /sign has an unexpected field "all"/],
    ['raw that is not a boolean', { sign: { raw: 'yes' } }, /sign\.raw/],
    ['a prefix without 0x', { sign: { prefixes: ['abcd'] } }, /sign\.prefixes\[0\] must be 0x followed by 1 to 64 bytes of hex/],
    ['an odd-length prefix', { sign: { prefixes: ['0xabc'] } }, /sign\.prefixes\[0\] must be 0x followed by/],
    ['an empty prefix', { sign: { prefixes: ['0x'] } }, /sign\.prefixes\[0\] must be 0x followed by/],
    ['a prefix of 65 bytes', { sign: { prefixes: [`0x${'ab'.repeat(65)}`] } }, /sign\.prefixes\[0\] must be 0x followed by 1 to 64 bytes/],
    ['a prefix listed twice in two cases', { sign: { prefixes: ['0xabcd', '0xABCD'] } }, /sign\.prefixes\[1\] \(0xabcd\) is listed twice/],
    ['too many prefixes', { sign: { prefixes: Array.from({ length: 17 }, (_, i) => encodeHex(new Uint8Array([i]))) } }, /sign\.prefixes may list at most 16/],
    ['an unknown network', { sign: { psbt: { network: 'signet', allowedAddresses: [TB_1], dailyValueCapSats: '1' } } }, /sign\.psbt\.network must be one of "bitcoin", "testnet", "regtest"/],
    ['a mainnet address on testnet', { sign: { psbt: { network: 'testnet', allowedAddresses: [TB_1, BC_1], dailyValueCapSats: '1' } } }, /sign\.psbt\.allowedAddresses\[1\]: "bc1p.*" is not a testnet address/],
    ['a testnet address on regtest', { sign: { psbt: { network: 'regtest', allowedAddresses: [TB_1], dailyValueCapSats: '1' } } }, /allowedAddresses\[0\]: "tb1p.*" is not a regtest address/],
    ['an address with a bad checksum', { sign: { psbt: { network: 'testnet', allowedAddresses: [`${TB_1.slice(0, -1)}q`], dailyValueCapSats: '1' } } }, /allowedAddresses\[0\]: .* is not a testnet address/],
    ['an address with a character no address has', { sign: { psbt: { network: 'testnet', allowedAddresses: [`${TB_1.slice(0, -1)}_`], dailyValueCapSats: '1' } } }, /allowedAddresses\[0\] must be a Bitcoin address/],
    ['an address listed twice in two cases', { sign: { psbt: { network: 'testnet', allowedAddresses: [TB_1, TB_1.toUpperCase()], dailyValueCapSats: '1' } } }, /allowedAddresses\[1\] \(tb1p.*\) is listed twice/],
    ['too many addresses', { sign: { psbt: { network: 'testnet', allowedAddresses: Array.from({ length: 101 }, (_, i) => `tb1${i}`.padEnd(20, 'q')), dailyValueCapSats: '1' } } }, /allowedAddresses may list at most 100/],
    ['no addresses', { sign: { psbt: { network: 'testnet', allowedAddresses: [], dailyValueCapSats: '1' } } }, /allowedAddresses must list at least 1 item/],
    ['a cap as a number', { sign: { psbt: { network: 'testnet', allowedAddresses: [TB_1], dailyValueCapSats: 1000 } } }, /dailyValueCapSats/],
    ['a cap with a leading zero', { sign: { psbt: { network: 'testnet', allowedAddresses: [TB_1], dailyValueCapSats: '01000' } } }, /dailyValueCapSats must be a decimal integer string of satoshis without leading zeros/],
    ['a negative cap', { sign: { psbt: { network: 'testnet', allowedAddresses: [TB_1], dailyValueCapSats: '-1' } } }, /dailyValueCapSats must be a decimal integer/],
    ['a cap above every bitcoin', { sign: { psbt: { network: 'testnet', allowedAddresses: [TB_1], dailyValueCapSats: '2100000000000001' } } }, /dailyValueCapSats must be at most 2100000000000000/],
    ['a cap of 17 digits', { sign: { psbt: { network: 'testnet', allowedAddresses: [TB_1], dailyValueCapSats: '10000000000000000' } } }, /dailyValueCapSats must be a decimal integer/],
    ['psbt rules without a cap', { sign: { psbt: { network: 'testnet', allowedAddresses: [TB_1] } } }, /sign\.psbt is missing the field "dailyValueCapSats"/],
  ];
  for (const [what, json, message] of refusals) {
    it(`refuses ${what}, naming the field`, () => void refusedWith(() => parseKeyPolicy(json), 'bad_request', message));
  }

  it('parses signing rules: prefixes and bech32 addresses in lower case, base58 addresses as written, fields in schema order', () => {
    const p2pkh = 'mipcBbFg9gMiCh81Kj8tqqdgoZub1ZJRfn';
    const policy = parseKeyPolicy({
      sign: { psbt: { dailyValueCapSats: '0', allowedAddresses: [TB_1.toUpperCase(), p2pkh], network: 'testnet' }, prefixes: ['0xABcd', '0x00'], raw: false },
      operations: ['sign'],
    });
    assert.deepEqual(Object.keys(policy), ['operations', 'sign']);
    assert.deepEqual(Object.keys(policy.sign!), ['raw', 'prefixes', 'psbt']);
    assert.deepEqual(Object.keys(policy.sign!.psbt!), ['network', 'allowedAddresses', 'dailyValueCapSats']);
    assert.deepEqual(policy.sign, { raw: false, prefixes: ['0xabcd', '0x00'], psbt: { network: 'testnet', allowedAddresses: [TB_1, p2pkh], dailyValueCapSats: '0' } });
    assert.ok(Object.isFrozen(policy.sign!.psbt!.allowedAddresses));
    assert.deepEqual(parseKeyPolicyText(keyPolicyText(policy)), policy);
    assert.deepEqual(parseKeyPolicy({ sign: { psbt: { network: 'bitcoin', allowedAddresses: [BC_1], dailyValueCapSats: '2100000000000000' } } }).sign!.psbt!.dailyValueCapSats, '2100000000000000');
  });

  it('bounds the JSON text, and the largest policy the schema admits is well inside the bound', () => {
    // The longest address the signing rules take: a P2WSH or P2TR address on regtest (bcrt1…, 64 characters).
    const regtestAddress = (i: number) => p2tr(schnorr.getPublicKey(new Uint8Array(32).fill(i + 1)), undefined, NETWORK_PARAMS.regtest).address!;
    const largest = parseKeyPolicy({
      operations: ['decrypt', 'sign'],
      grantSources: 'either',
      maxGrantLifetimeSeconds: 315_360_000,
      allowedRequesters: Array.from({ length: MAX_ALLOWED_REQUESTERS }, (_, i) => encodeHex(new Uint8Array(20).fill(i))),
      timeWindows: Array.from({ length: MAX_TIME_WINDOWS }, (_, i) => ({ days: [...WEEKDAYS], startMinute: 1000 + i, endMinute: 1440 })),
      dailyLimitPerRequester: 1_000_000_000,
      sensitive: { approvers: Array.from({ length: MAX_APPROVERS }, (_, i) => encodeHex(new Uint8Array(20).fill(200 + i))), required: MAX_APPROVERS },
      sign: {
        raw: false,
        prefixes: Array.from({ length: MAX_SIGN_PREFIXES }, (_, i) => encodeHex(new Uint8Array(MAX_SIGN_PREFIX_BYTES).fill(i))),
        psbt: { network: 'regtest', allowedAddresses: Array.from({ length: MAX_ALLOWED_ADDRESSES }, (_, i) => regtestAddress(i)), dailyValueCapSats: '2100000000000000' },
      },
    });
    assert.equal(largest.sign!.psbt!.allowedAddresses[0]!.length, 64);
    const text = keyPolicyText(largest);
    assert.ok(text.length < MAX_KEY_POLICY_BYTES / 2, `largest policy is ${text.length} bytes`);
    // A policy travels in a key change's body ({"policy": …}): the largest fits in half of one.
    assert.ok(text.length < KEY_LIMITS.changeBodyBytes / 2, `largest policy is ${text.length} bytes`);
    assert.deepEqual(parseKeyPolicyText(text), largest);
    // Padding a valid policy past the bound is refused before it is parsed.
    refusedWith(() => parseKeyPolicyText(`${' '.repeat(MAX_KEY_POLICY_BYTES - 1)}{}`), 'payload_too_large', /larger than 65536 bytes/);
    assert.deepEqual(parseKeyPolicyText(`${' '.repeat(MAX_KEY_POLICY_BYTES - 2)}{}`), {});
    // Counted in UTF-8 bytes: 21846 three-byte characters are 65538 bytes in 21846 UTF-16 units.
    refusedWith(() => parseKeyPolicyText(`{"x":"${'€'.repeat(21846)}"}`), 'payload_too_large');
    refusedWith(() => parseKeyPolicyText('{"operations":'), 'bad_request', /not valid JSON/);
  });

  it('the schema carries a description and an example on every field, and its examples are valid policies', () => {
    const schema = KeyPolicySchema as unknown as { description: string; examples: unknown[]; properties: Record<string, { description?: string; examples?: unknown[] }> };
    assert.ok(schema.description.length > 0);
    for (const example of schema.examples) assert.deepEqual(parseKeyPolicy(example), example);
    for (const [name, field] of Object.entries(schema.properties)) {
      assert.ok((field.description ?? '').length > 0, `${name} has no description`);
      assert.equal(field.examples?.length, 1, `${name} has no example`);
      assert.ok(Compile(KeyPolicySchema).Check({ [name]: field.examples![0] }), `${name}: its example is not valid`);
    }
  });

  it('describes windows as people read them', () => {
    assert.equal(describeWindow({ days: ['fri', 'thu', 'wed', 'tue', 'mon'], startMinute: 480, endMinute: 1080 }), 'Mon–Fri 08:00–18:00');
    assert.equal(describeWindow({ days: ['sun', 'sat'], startMinute: 0, endMinute: 1440 }), 'Sat, Sun 00:00–24:00');
    assert.equal(describeWindow({ days: ['mon', 'wed', 'thu', 'fri', 'sun'], startMinute: 65, endMinute: 70 }), 'Mon, Wed–Fri, Sun 01:05–01:10');
  });
});

describe('key policy: evaluation, one rule at a time', () => {
  const payroll = parseKeyPolicy({ allowedRequesters: [REQUESTER.address], timeWindows: [{ days: ['mon', 'tue', 'wed', 'thu', 'fri'], startMinute: 480, endMinute: 1080 }] });

  it('operations: allows a listed operation, refuses another', () => {
    const policy = parseKeyPolicy({ operations: ['decrypt'] });
    evaluateKeyPolicy(policy, request());
    refusedWith(() => evaluateKeyPolicy(policy, request({ operation: 'sign' as never })), 'policy_operation_denied', /^key payroll: policy allows only decrypt, not sign$/);
  });

  it('allowedRequesters: allows a listed requester (owner or grantee), refuses anyone else', () => {
    evaluateKeyPolicy(payroll, request());
    evaluateKeyPolicy(payroll, request({ grantSource: 'signed', grantLifetimeSeconds: 60 }));
    refusedWith(() => evaluateKeyPolicy(payroll, request({ requester: STRANGER })), 'policy_requester_denied', /^key payroll: policy allows only its 1 listed requester; 0x1111111111111111111111111111111111111111 is not one of them$/);
    refusedWith(() => evaluateKeyPolicy(payroll, request({ requester: ADMIN_A.bytes, grantSource: 'signed', grantLifetimeSeconds: 60 })), 'policy_requester_denied');
  });

  it('timeWindows: open from the first second of startMinute to the last second before endMinute, on the listed days only', () => {
    evaluateKeyPolicy(payroll, request({ nowSeconds: at(0, 8, 0, 0) }));
    evaluateKeyPolicy(payroll, request({ nowSeconds: at(4, 17, 59, 59) }));
    const message = refusedWith(() => evaluateKeyPolicy(payroll, request({ nowSeconds: at(0, 7, 59, 59) })), 'policy_outside_window');
    assert.equal(message, 'key payroll: policy allows requests only Mon–Fri 08:00–18:00 UTC (now Mon 07:59 UTC)');
    refusedWith(() => evaluateKeyPolicy(payroll, request({ nowSeconds: at(4, 18, 0, 0) })), 'policy_outside_window', /now Fri 18:00 UTC/);
    refusedWith(() => evaluateKeyPolicy(payroll, request({ nowSeconds: at(5, 12, 0) })), 'policy_outside_window', /now Sat 12:00 UTC/);
    refusedWith(() => evaluateKeyPolicy(payroll, request({ nowSeconds: at(6, 12, 0) })), 'policy_outside_window', /now Sun 12:00 UTC/);
  });

  it('timeWindows: any one window is enough; a window across midnight is two windows', () => {
    const night = parseKeyPolicy({
      timeWindows: [
        { days: ['sat'], startMinute: 1320, endMinute: 1440 },
        { days: ['sun'], startMinute: 0, endMinute: 120 },
      ],
    });
    evaluateKeyPolicy(night, request({ nowSeconds: at(5, 22, 0) }));
    evaluateKeyPolicy(night, request({ nowSeconds: at(5, 23, 59, 59) }));
    evaluateKeyPolicy(night, request({ nowSeconds: at(6, 0, 0, 0) }));
    evaluateKeyPolicy(night, request({ nowSeconds: at(6, 1, 59, 59) }));
    refusedWith(() => evaluateKeyPolicy(night, request({ nowSeconds: at(6, 2, 0) })), 'policy_outside_window', /only Sat 22:00–24:00; Sun 00:00–02:00 UTC/);
    refusedWith(() => evaluateKeyPolicy(night, request({ nowSeconds: at(5, 21, 59, 59) })), 'policy_outside_window');
  });

  it('timeWindows: weekdays are right across years (1970-01-01 was a Thursday)', () => {
    const thursdays = parseKeyPolicy({ timeWindows: [{ days: ['thu'], startMinute: 0, endMinute: 1440 }] });
    for (const t of [0, 86_399, Date.UTC(2000, 1, 24) / 1000, Date.UTC(2099, 11, 31, 12) / 1000]) {
      assert.equal(new Date(t * 1000).getUTCDay(), 4);
      evaluateKeyPolicy(thursdays, request({ nowSeconds: t }));
      refusedWith(() => evaluateKeyPolicy(thursdays, request({ nowSeconds: t + 86_400 })), 'policy_outside_window', /now Fri/);
    }
  });

  it('grantSources: counts only the sources it names; the owner needs no grant and always passes', () => {
    const chainOnly = parseKeyPolicy({ grantSources: 'chain' });
    const signedOnly = parseKeyPolicy({ grantSources: 'signed' });
    const either = parseKeyPolicy({ grantSources: 'either' });
    evaluateKeyPolicy(chainOnly, request({ grantSource: 'chain', grantLifetimeSeconds: 1 }));
    evaluateKeyPolicy(chainOnly, request({ grantSource: 'owner' }));
    refusedWith(
      () => evaluateKeyPolicy(chainOnly, request({ grantSource: 'signed', grantLifetimeSeconds: 1 })),
      'policy_grant_source_denied',
      /^key payroll: policy counts only on-chain grants; this request relies on an owner-signed grant$/,
    );
    evaluateKeyPolicy(signedOnly, request({ grantSource: 'signed', grantLifetimeSeconds: 1 }));
    refusedWith(() => evaluateKeyPolicy(signedOnly, request({ grantSource: 'chain', grantLifetimeSeconds: 1 })), 'policy_grant_source_denied', /only owner-signed grants; .* an on-chain grant/);
    evaluateKeyPolicy(either, request({ grantSource: 'signed' }));
    evaluateKeyPolicy(either, request({ grantSource: 'chain' }));
  });

  it('maxGrantLifetimeSeconds: a grant of exactly the limit passes, one second more does not, an unknown lifetime does not; owners are not bound', () => {
    const warm = parseKeyPolicy({ grantSources: 'chain', maxGrantLifetimeSeconds: 86_400 });
    evaluateKeyPolicy(warm, request({ grantSource: 'chain', grantLifetimeSeconds: 86_400 }));
    refusedWith(
      () => evaluateKeyPolicy(warm, request({ grantSource: 'chain', grantLifetimeSeconds: 86_401 })),
      'policy_grant_too_long',
      /^key payroll: policy accepts grants valid for at most 86400 s; this one is valid for 86401 s$/,
    );
    refusedWith(() => evaluateKeyPolicy(warm, request({ grantSource: 'chain' })), 'policy_grant_too_long', /lifetime is not known/);
    evaluateKeyPolicy(warm, request({ grantSource: 'owner' }));
  });

  it('dailyLimitPerRequester: the limit-th request passes, the next is refused', () => {
    const limited = parseKeyPolicy({ dailyLimitPerRequester: 3 });
    evaluateKeyPolicy(limited, request({ usedToday: 2 }));
    refusedWith(
      () => evaluateKeyPolicy(limited, request({ usedToday: 3 })),
      'policy_daily_limit',
      /^key payroll: policy allows 3 requests per requester per UTC day and this requester has made 3 at this node today; the count resets at 00:00 UTC$/,
    );
  });

  describe('sensitive: m of the approvers must co-sign', () => {
    const vault = parseKeyPolicy({ sensitive: { approvers: [ADMIN_A.address, ADMIN_B.address, ADMIN_C.address], required: 2 } });
    const vaultRequest = (approvers: string[]) => request({ keyId: 'vault', approvers: new Set(approvers) });

    it('m approvals pass, m − 1 are refused, approvals of others do not count', () => {
      evaluateKeyPolicy(vault, vaultRequest([ADMIN_A.address, ADMIN_C.address]));
      const message = refusedWith(() => evaluateKeyPolicy(vault, vaultRequest([ADMIN_B.address])), 'policy_approvals_missing');
      assert.equal(message, `key vault: policy requires co-signatures of 2 of its 3 approvers (${ADMIN_A.address}, ${ADMIN_B.address}, ${ADMIN_C.address}) other than the requester; this request carries 1 valid`);
      refusedWith(() => evaluateKeyPolicy(vault, vaultRequest([ADMIN_B.address, encodeHex(STRANGER)])), 'policy_approvals_missing', /carries 1 valid/);
      refusedWith(() => evaluateKeyPolicy(vault, request({ keyId: 'vault' })), 'policy_approvals_missing', /carries 0 valid/);
    });

    it("the requester's own approval does not count", () => {
      const asAdmin = (approvers: string[]) => request({ keyId: 'vault', requester: ADMIN_A.bytes, approvers: new Set(approvers) });
      refusedWith(() => evaluateKeyPolicy(vault, asAdmin([ADMIN_A.address, ADMIN_B.address])), 'policy_approvals_missing', /carries 1 valid/);
      evaluateKeyPolicy(vault, asAdmin([ADMIN_B.address, ADMIN_C.address]));
    });

    it('the approvers are asked for only once the cheaper rules passed', () => {
      const policy = parseKeyPolicy({ allowedRequesters: [REQUESTER.address], sensitive: { approvers: [ADMIN_A.address], required: 1 } });
      let asked = 0;
      const approvers = () => (asked++, new Set([ADMIN_A.address]));
      refusedWith(() => evaluateKeyPolicy(policy, request({ requester: STRANGER, approvers })), 'policy_requester_denied');
      assert.equal(asked, 0);
      evaluateKeyPolicy(policy, request({ approvers }));
      assert.equal(asked, 1);
    });
  });

  it('rules run in the documented order: each refusal is the first rule broken', () => {
    const all = parseKeyPolicy({
      operations: ['decrypt'],
      grantSources: 'chain',
      maxGrantLifetimeSeconds: 60,
      allowedRequesters: [REQUESTER.address],
      timeWindows: [{ days: ['mon'], startMinute: 480, endMinute: 1080 }],
      dailyLimitPerRequester: 1,
      sensitive: { approvers: [ADMIN_A.address], required: 1 },
    });
    // Everything wrong; fix one rule at a time, in order, and the refusal moves to the next.
    const steps: [Partial<KeyPolicyRequest>, ErrorCode][] = [
      [{}, 'policy_operation_denied'],
      [{ operation: 'decrypt' }, 'policy_requester_denied'],
      [{ requester: REQUESTER.bytes }, 'policy_outside_window'],
      [{ nowSeconds: at(0, 9, 0) }, 'policy_grant_source_denied'],
      [{ grantSource: 'chain' }, 'policy_grant_too_long'],
      [{ grantLifetimeSeconds: 60 }, 'policy_approvals_missing'],
      [{ approvers: new Set([ADMIN_A.address]) }, 'policy_daily_limit'],
    ];
    let req: KeyPolicyRequest = { keyId: 'k', operation: 'sign' as never, requester: STRANGER, grantSource: 'signed', grantLifetimeSeconds: 61, nowSeconds: at(1, 9, 0), usedToday: 1 };
    for (const [fix, code] of steps) {
      req = { ...req, ...fix };
      refusedWith(() => evaluateKeyPolicy(all, req), code);
    }
    evaluateKeyPolicy(all, { ...req, usedToday: 0 });
  });

  it('costs well under 0.05 ms per call for a typical policy (printed, not asserted)', () => {
    const typical = parseKeyPolicy({
      operations: ['decrypt'],
      grantSources: 'either',
      maxGrantLifetimeSeconds: 86_400,
      allowedRequesters: Array.from({ length: 99 }, (_, i) => encodeHex(new Uint8Array(20).fill(i + 1))).concat([REQUESTER.address]),
      timeWindows: [
        { days: ['mon', 'tue', 'wed', 'thu', 'fri'], startMinute: 480, endMinute: 720 },
        { days: ['mon', 'tue', 'wed', 'thu', 'fri'], startMinute: 780, endMinute: 1080 },
      ],
      dailyLimitPerRequester: 1000,
      sensitive: { approvers: [ADMIN_A.address, ADMIN_B.address, ADMIN_C.address], required: 2 },
    });
    const req = request({ grantSource: 'signed', grantLifetimeSeconds: 3600, nowSeconds: at(2, 15, 0), usedToday: 10, approvers: new Set([ADMIN_A.address, ADMIN_C.address]) });
    const runs = 100_000;
    for (let i = 0; i < 10_000; i++) evaluateKeyPolicy(typical, req);
    const start = process.hrtime.bigint();
    for (let i = 0; i < runs; i++) evaluateKeyPolicy(typical, req);
    const perCall = Number(process.hrtime.bigint() - start) / runs / 1e6;
    console.log(`      evaluateKeyPolicy, every rule set, 100-entry allow-list (last entry matches): ${(perCall * 1000).toFixed(2)} µs per call`);
  });
});

describe('key policy: decrypt approvals (core/keys/decrypt-approval.ts)', () => {
  const handle = decodeHex(MESSAGE_EXAMPLES.grant.handle);
  const NOW = 1767225700;
  const context = { keyId: 'demo', handle, requester: REQUESTER.bytes, nowSeconds: NOW };
  const allowed = [ADMIN_A.address, ADMIN_B.address, ADMIN_C.address];
  const unsigned = (approver: (typeof ACCOUNTS)[0], over: Partial<UnsignedDecryptApproval> = {}): UnsignedDecryptApproval => ({
    keyId: 'demo',
    handle,
    requester: REQUESTER.bytes,
    approver: approver.bytes,
    notBefore: NOW - 60,
    notAfter: NOW + 540,
    ...over,
  });
  const approve = (approver: (typeof ACCOUNTS)[0], over: Partial<UnsignedDecryptApproval> = {}, signer = approver): DecryptApproval =>
    signDecryptApproval(signer.secret, unsigned(approver, over), DEVNET);
  const verified = (approvals: DecryptApproval[], ctx: ApprovalContext = context) => [...verifiedApprovers(approvals, ctx, DEVNET, allowed)].sort();

  it('the declared example verifies, and the EIP-712 struct is what wallets sign', () => {
    const example = DecryptApprovalMessage.decode(DECRYPT_APPROVAL_EXAMPLE);
    assert.deepEqual(DecryptApprovalMessage.encode(example), DECRYPT_APPROVAL_EXAMPLE);
    assert.deepEqual(verifiedApprovers([example], { keyId: 'demo', handle: example.handle, requester: example.requester, nowSeconds: example.notBefore }, DEVNET, [ADMIN_B.address]), new Set([ADMIN_B.address]));
    assert.equal(encodeType(DecryptApprovalMessage.struct), 'DecryptApproval(string keyId,bytes32 handle,address requester,address approver,uint64 notBefore,uint64 notAfter)');
  });

  it('counts each allowed approver with a valid approval once', () => {
    assert.deepEqual(verified([approve(ADMIN_A), approve(ADMIN_C)]), [ADMIN_A.address, ADMIN_C.address].sort());
    assert.deepEqual(verified([approve(ADMIN_A), approve(ADMIN_A, { notAfter: NOW + 100 }), approve(ADMIN_A)]), [ADMIN_A.address]);
  });

  it('ignores, without throwing, approvals of non-approvers, of the requester, for another key, handle or requester, and forged ones', () => {
    const other = decodeHex('0x' + 'ab'.repeat(32));
    const approvals = [
      signDecryptApproval(REQUESTER.secret, unsigned(REQUESTER), DEVNET),
      approve(ADMIN_A, { keyId: 'other' }),
      approve(ADMIN_A, { handle: other }),
      approve(ADMIN_A, { requester: STRANGER }),
      // Names ADMIN_B, signed by ADMIN_C.
      approve(ADMIN_B, {}, ADMIN_C),
      // Signed for another deployment.
      signDecryptApproval(ADMIN_B.secret, unsigned(ADMIN_B), { committeeId: 'elsewhere' }),
      { ...approve(ADMIN_C), signature: new Uint8Array(65) },
    ];
    assert.deepEqual(verified(approvals), []);
    assert.deepEqual(verifiedApprovers([approve(REQUESTER)], context, DEVNET, [...allowed, REQUESTER.address]), new Set());
    // A bad copy does not shadow a good one of the same approver.
    assert.deepEqual(verified([approve(ADMIN_B, {}, ADMIN_C), approve(ADMIN_B)]), [ADMIN_B.address]);
  });

  it('refuses expired, not yet valid and overlong approvals (clock skew allowed)', () => {
    const window = { notBefore: NOW - 600, notAfter: NOW - 31 };
    assert.deepEqual(verified([approve(ADMIN_A, window)]), []);
    assert.deepEqual(verified([approve(ADMIN_A, { ...window, notAfter: NOW - 30 })]), [ADMIN_A.address]);
    assert.deepEqual(verified([approve(ADMIN_A, { notBefore: NOW + 31, notAfter: NOW + 300 })]), []);
    assert.deepEqual(verified([approve(ADMIN_A, { notBefore: NOW + 30, notAfter: NOW + 300 })]), [ADMIN_A.address]);
    assert.deepEqual(verified([approve(ADMIN_A, { notBefore: NOW - 10, notAfter: NOW - 10 + 3601 })]), []);
    assert.deepEqual(verified([approve(ADMIN_A, { notBefore: NOW - 10, notAfter: NOW - 10 + 3600 })]), [ADMIN_A.address]);
    assert.deepEqual(verified([approve(ADMIN_A, window)], { ...context, clockSkewSeconds: 31 }), [ADMIN_A.address]);
  });

  it(`looks at no more than ${MAX_DECRYPT_APPROVALS} approvals`, () => {
    const many = Array.from({ length: MAX_DECRYPT_APPROVALS }, () => approve(ADMIN_A));
    assert.deepEqual(verified(many), [ADMIN_A.address]);
    refusedWith(() => verified([...many, approve(ADMIN_B)]), 'bad_request', /at most 10 decrypt approvals, this one carries 11/);
  });

  it('with the policy: 2 of 3 co-signed passes, 1 plus a duplicate and a stranger does not', () => {
    const vault = parseKeyPolicy({ sensitive: { approvers: allowed, required: 2 } });
    const evaluate = (approvals: DecryptApproval[]) =>
      evaluateKeyPolicy(vault, { keyId: 'demo', operation: 'decrypt', requester: REQUESTER.bytes, grantSource: 'owner', nowSeconds: NOW, usedToday: 0, approvers: () => verifiedApprovers(approvals, context, DEVNET, vault.sensitive!.approvers) });
    evaluate([approve(ADMIN_B), approve(ADMIN_C)]);
    refusedWith(() => evaluate([approve(ADMIN_B), approve(ADMIN_B), signDecryptApproval(ADMIN_A.secret, unsigned(ADMIN_C), DEVNET)]), 'policy_approvals_missing', /carries 1 valid/);
  });
});

describe('key policy: docs/key-policy.md', () => {
  const doc = readFileSync(fileURLToPath(new URL('../../docs/key-policy.md', import.meta.url)), 'utf8');
  const blocks = (info: string) => [...doc.matchAll(new RegExp(`^\`\`\`${info}\n([\\s\\S]*?)^\`\`\`$`, 'gm'))].map((m) => JSON.parse(m[1]!) as unknown);

  it('every policy example is a valid policy, in canonical form', () => {
    const policies = blocks('json policy');
    assert.ok(policies.length >= 5, `${policies.length} examples`);
    for (const json of policies) assert.deepEqual(encodeKeyPolicy(parseKeyPolicy(json)), json);
  });

  it('the approval example is the declared example (which verifies: see above)', () => {
    const [approval] = blocks('json approval');
    assert.deepEqual(approval, DECRYPT_APPROVAL_EXAMPLE);
  });

  it('the refusal table lists every policy code with its HTTP status', () => {
    const codes = Object.keys(ERROR_CODES).filter((c) => c.startsWith('policy_')) as ErrorCode[];
    assert.equal(codes.length, 12);
    for (const code of codes) assert.match(doc, new RegExp(`\\| \`${code}\` \\| ${ERROR_CODES[code]} \\|`), code);
  });
});
