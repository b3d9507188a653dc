import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encodeHex, isTkmsError, randomScalar } from '../../core/index.ts';
import { KEY_ID_PATTERN } from '../../core/identifiers.ts';
import { committeeToJson } from '../../core/committee.ts';
import { MAX_HANDOVER_KEYS, parseHandoverCertificate, type HandoverCertificate } from '../../core/ceremony/handover.ts';
import { parseReshareProposal, reshareProposalToJson } from '../../core/ceremony/proposal.ts';
import { keyAt, makeCommittee, makeMembers, signCertificate } from '../unit/handover-fixtures.ts';

type Json = Record<string, unknown>;

const keyId = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,20}$/).filter((k) => new RegExp(KEY_ID_PATTERN).test(k));

/** Throws exactly a TkmsError('bad_request'): never another code, never another exception. */
function refusedAsBadRequest(f: () => unknown): void {
  try {
    f();
  } catch (e) {
    assert.ok(isTkmsError(e), `not a TkmsError: ${String(e)}`);
    assert.equal(e.code, 'bad_request', e.message);
    return;
  }
  assert.fail('accepted');
}

const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;

/** The object at `path` inside `root` (created by clone, so safe to edit). */
function at(root: Json, path: readonly (string | number)[]): Json {
  return path.reduce<Json>((o, k) => o[k as string] as Json, root);
}

const ID = 'handover-prop';
const members = makeMembers([1, 2, 3, 4]);
const from = makeCommittee(ID, 0, 2, members.slice(0, 3));
const to = makeCommittee(ID, 1, 3, members);
const keys = ['a', 'b', 'c'].map((keyId) => keyAt(keyId, randomScalar(), to));
const certificate: HandoverCertificate = signCertificate({ from, to, keys, fromSigners: members.slice(0, 3), toSigners: members });

/** Where a certificate has fields, and what each must be. */
const objects: { path: (string | number)[]; fields: string[] }[] = [
  { path: [], fields: ['v', 'committeeId', 'fromEpoch', 'fromDigest', 'to', 'keys', 'transcriptHash', 'signatures'] },
  { path: ['keys', 0], fields: ['keyId', 'groupPublicKey', 'verificationShares'] },
  { path: ['keys', 2], fields: ['keyId', 'groupPublicKey', 'verificationShares'] },
  { path: ['signatures'], fields: ['from', 'to'] },
  { path: ['to'], fields: ['committeeId', 't', 'members'] },
];

/** Leaves that hold hex, with their byte length. */
const hexLeaves: { path: (string | number)[]; bytes: number }[] = [
  { path: ['fromDigest'], bytes: 32 },
  { path: ['transcriptHash'], bytes: 32 },
  { path: ['keys', 1, 'groupPublicKey'], bytes: 33 },
  { path: ['keys', 0, 'verificationShares', '2'], bytes: 33 },
  { path: ['signatures', 'from', '1'], bytes: 64 },
  { path: ['signatures', 'to', '4'], bytes: 64 },
];

const notHex = (bytes: number) =>
  fc.oneof(
    fc.string({ maxLength: 200 }).filter((s) => !new RegExp(`^0[xX][0-9a-fA-F]{${bytes * 2}}$`).test(s)),
    fc.uint8Array({ minLength: 0, maxLength: bytes + 2 }).filter((b) => b.length !== bytes).map(encodeHex),
    fc.uint8Array({ minLength: bytes, maxLength: bytes }).map((b) => encodeHex(b).slice(2)),
    fc.uint8Array({ minLength: bytes, maxLength: bytes }).map((b) => `${encodeHex(b).slice(0, -1)}g`),
  );

/** Values of a JSON type other than `original`'s. */
const otherType = (original: unknown) =>
  fc
    .oneof(fc.constant(null), fc.boolean(), fc.integer(), fc.double(), fc.string({ maxLength: 20 }), fc.array(fc.integer(), { maxLength: 3 }), fc.dictionary(fc.string({ maxLength: 5 }), fc.integer(), { maxKeys: 3 }))
    .filter((v) => kind(v) !== kind(original));

function kind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

describe('property: parseHandoverCertificate', () => {
  it('round-trips a valid certificate through JSON, unchanged', () => {
    fc.assert(
      fc.property(fc.boolean(), (upper) => {
        const json = clone(certificate) as unknown as Json;
        // Hex in capitals is the same certificate: the parse gives the canonical form.
        if (upper) json.transcriptHash = `0x${(json.transcriptHash as string).slice(2).toUpperCase()}`;
        assert.deepEqual(parseHandoverCertificate(json), certificate);
      }),
      { numRuns: 4 },
    );
  });

  it('round-trips generated certificates (any key ids, any signature bytes)', () => {
    const keyIds = fc.uniqueArray(keyId, { minLength: 1, maxLength: 4 }).map((ids) => ids.sort());
    const sigs = fc.dictionary(fc.integer({ min: 1, max: 65_535 }).map(String), fc.uint8Array({ minLength: 64, maxLength: 64 }).map(encodeHex), { maxKeys: 6 });
    fc.assert(
      fc.property(keyIds, sigs, sigs, fc.integer({ min: 0, max: 0xffff_fffe }), (ids, fromSigs, toSigs, fromEpoch) => {
        const cert = { ...clone(certificate), fromEpoch, keys: ids.map((keyId, i) => ({ ...clone(certificate.keys[i % 3]!), keyId })), signatures: { from: fromSigs, to: toSigs } };
        assert.deepEqual(parseHandoverCertificate(clone(cert)), clone(cert));
      }),
      { numRuns: 100 },
    );
  });

  it('a field removed or an unknown field added anywhere: bad_request', () => {
    const arb = fc.constantFrom(...objects).chain((o) => fc.tuple(fc.constant(o), fc.oneof(fc.constantFrom(...o.fields).map((f) => ({ remove: f })), fc.string({ minLength: 1, maxLength: 12 }).filter((f) => !o.fields.includes(f) && f !== '__proto__' && !(o.path[0] === 'to' && ['epoch', 'refreshIntervalSeconds'].includes(f))).map((f) => ({ add: f })))));
    fc.assert(
      fc.property(arb, ([o, change]) => {
        const json = clone(certificate) as unknown as Json;
        const target = at(json, o.path);
        if ('remove' in change) delete target[change.remove];
        else target[change.add] = 1;
        refusedAsBadRequest(() => parseHandoverCertificate(json));
      }),
      { numRuns: 200 },
    );
  });

  it('a field of the wrong type anywhere: bad_request', () => {
    const arb = fc.constantFrom(...objects).chain((o) => fc.constantFrom(...o.fields).chain((f) => fc.tuple(fc.constant(o.path), fc.constant(f), otherType((at(clone(certificate) as unknown as Json, o.path) as Json)[f]))));
    fc.assert(
      fc.property(arb, ([path, field, value]) => {
        const json = clone(certificate) as unknown as Json;
        at(json, path)[field] = value;
        refusedAsBadRequest(() => parseHandoverCertificate(json));
      }),
      { numRuns: 300 },
    );
  });

  it('bad hex in any hex field: bad_request', () => {
    const arb = fc.constantFrom(...hexLeaves).chain((leaf) => fc.tuple(fc.constant(leaf.path), notHex(leaf.bytes)));
    fc.assert(
      fc.property(arb, ([path, value]) => {
        const json = clone(certificate) as unknown as Json;
        at(json, path.slice(0, -1))[path[path.length - 1] as string] = value;
        refusedAsBadRequest(() => parseHandoverCertificate(json));
      }),
      { numRuns: 300 },
    );
  });

  it('member ids that are not 1..65535 in decimal, unsorted or repeated key ids, a point off the curve: bad_request', () => {
    const badIds = fc.oneof(fc.constantFrom('0', '01', '65536', '-1', '1.0', ' 1', 'a', ''), fc.integer({ min: 65_536, max: 1e9 }).map(String));
    fc.assert(
      fc.property(badIds, fc.constantFrom<(string | number)[]>(['signatures', 'from'], ['signatures', 'to'], ['keys', 0, 'verificationShares']), (id, path) => {
        const json = clone(certificate) as unknown as Json;
        at(json, path)[id] = at(json, path)['1'] ?? encodeHex(new Uint8Array(64));
        refusedAsBadRequest(() => parseHandoverCertificate(json));
      }),
      { numRuns: 100 },
    );
    const json = clone(certificate) as unknown as Json;
    (json.keys as Json[]).reverse();
    refusedAsBadRequest(() => parseHandoverCertificate(json));
    const twice = clone(certificate) as unknown as Json;
    (twice.keys as Json[])[1] = (twice.keys as Json[])[0]!;
    refusedAsBadRequest(() => parseHandoverCertificate(twice));
    const offCurve = clone(certificate) as unknown as Json;
    ((offCurve.keys as Json[])[0]!).groupPublicKey = `0x02${'ff'.repeat(32)}`;
    refusedAsBadRequest(() => parseHandoverCertificate(offCurve));
  });

  it('oversize arrays and maps: more than MAX_HANDOVER_KEYS keys, 256 signatures or 256 shares; and no keys at all', () => {
    const many = clone(certificate) as unknown as Json;
    many.keys = Array.from({ length: MAX_HANDOVER_KEYS + 1 }, (_, i) => ({ ...clone(certificate.keys[0]!), keyId: `k${String(i).padStart(4, '0')}` }));
    refusedAsBadRequest(() => parseHandoverCertificate(many));
    const none = clone(certificate) as unknown as Json;
    none.keys = [];
    refusedAsBadRequest(() => parseHandoverCertificate(none));
    const sig = certificate.signatures.from['1']!;
    const sigs = clone(certificate) as unknown as Json;
    (sigs.signatures as Json).to = Object.fromEntries(Array.from({ length: 257 }, (_, i) => [String(i + 1), sig]));
    refusedAsBadRequest(() => parseHandoverCertificate(sigs));
    const shares = clone(certificate) as unknown as Json;
    const y = certificate.keys[0]!.verificationShares['1']!;
    ((shares.keys as Json[])[0]!).verificationShares = Object.fromEntries(Array.from({ length: 257 }, (_, i) => [String(i + 1), y]));
    refusedAsBadRequest(() => parseHandoverCertificate(shares));
  });

  it('anything at all: a certificate or bad_request, never another exception', () => {
    fc.assert(
      fc.property(fc.anything({ maxDepth: 3 }), (value) => {
        try {
          parseHandoverCertificate(value);
        } catch (e) {
          assert.ok(isTkmsError(e, 'bad_request'), String(e));
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('property: parseReshareProposal', () => {
  const proposal = { v: 1, from: committeeToJson(from), to: committeeToJson(to), keyIds: ['a', 'b', 'c'] };
  const fields = ['v', 'from', 'to', 'keyIds'];

  it('round-trips valid proposals', () => {
    const keyIds = fc.uniqueArray(keyId, { minLength: 1, maxLength: 8 }).map((ids) => ids.sort());
    fc.assert(
      fc.property(keyIds, (ids) => {
        const json = { ...clone(proposal), keyIds: ids };
        assert.deepEqual(reshareProposalToJson(parseReshareProposal(clone(json))), json);
      }),
      { numRuns: 100 },
    );
  });

  it('a field removed, added, or of the wrong type; bad key ids; oversize key lists: bad_request', () => {
    const change = fc.oneof(
      fc.constantFrom(...fields).map((f) => (j: Json) => void delete j[f]),
      fc.string({ minLength: 1, maxLength: 10 }).filter((f) => !fields.includes(f) && f !== '__proto__').map((f) => (j: Json) => void (j[f] = 1)),
      fc.constantFrom(...fields).chain((f) => otherType((proposal as Json)[f]).map((v) => (j: Json) => void (j[f] = v))),
      fc.constantFrom('A', '', ' a', 'a'.repeat(65), 7, null).map((k) => (j: Json) => void (j.keyIds = ['a', k])),
      fc.constant((j: Json) => void (j.keyIds = ['b', 'a'])),
      fc.constant((j: Json) => void (j.keyIds = ['a', 'a'])),
      fc.constant((j: Json) => void (j.keyIds = Array.from({ length: MAX_HANDOVER_KEYS + 1 }, (_, i) => `k${String(i).padStart(4, '0')}`))),
      fc.constant((j: Json) => void ((j.to as Json).epoch = 2)),
      fc.constant((j: Json) => void ((j.to as Json).committeeId = 'other')),
      fc.constant((j: Json) => void ((j.from as Json).t = 0)),
    );
    fc.assert(
      fc.property(change, (edit) => {
        const json = clone(proposal) as Json;
        edit(json);
        refusedAsBadRequest(() => parseReshareProposal(json));
      }),
      { numRuns: 300 },
    );
  });

  it('anything at all: a proposal or bad_request, never another exception', () => {
    fc.assert(
      fc.property(fc.anything({ maxDepth: 3 }), (value) => {
        try {
          parseReshareProposal(value);
        } catch (e) {
          assert.ok(isTkmsError(e, 'bad_request'), String(e));
        }
      }),
      { numRuns: 300 },
    );
  });
});
