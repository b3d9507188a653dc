import { sha256 } from '@noble/hashes/sha2.js';
import { encodeHex, equalBytes, lengthPrefixed, utf8ToBytes } from '../bytes.ts';
import { committeeDigest, type CommitteeMembership } from '../committee.ts';
import { confirmMessage, dkgResultDigest, type UnsignedDkgResult } from '../dkg/context.ts';
import { SESSION_ID_LENGTH } from '../dkg/result.ts';
import { TkmsError } from '../errors.ts';
import { assertKeyId, keyIdBytes } from '../identifiers.ts';
import { assertThreshold } from '../shamir.ts';
import { chooseAllDealers } from './agreement.ts';
import { combineDkgCommitments, sumSubShares, unsignedDkgResult } from './dkg-combine.ts';
import { dkgKeyDealingIsValid } from './dealing.ts';
import { maxAttempts } from './deadlines.ts';
import { deriveScalarIn, u16Bytes } from './derive.ts';
import { groupOf } from '../group.ts';
import type { DkgCeremonyApi, DkgCeremonyFaults, DkgCeremonyOutcome, DkgCeremonyParams } from './dkg-types.ts';
import { CeremonyEngine } from './engine.ts';
import { voteQuorum } from './handover.ts';
import type { CeremonyKind } from './kind.ts';
import type { CeremonyIdentity, CeremonyTiming } from './types.ts';

const DKG_CEREMONY_DOMAIN = utf8ToBytes('tkms/ceremony/v1/dkg');
/** A DKG of a key outside secp256k1 binds its curve: another domain, so no secp256k1 DKG's id is one of these. */
const DKG_CURVE_CEREMONY_DOMAIN = utf8ToBytes('tkms/ceremony/v1/dkg-curve');
const SEED_LENGTH = 32;

function u32(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value);
  return out;
}

/**
 * The DKG's ceremony id: what its messages are signed over and its scalars derived from, in place of
 * a reshare's proposal id. It binds the key id, the session id, the committee (by digest: id, epoch,
 * t, members and their keys) and the epoch, so nothing of one DKG (or of a reshare: another domain)
 * is valid in another.
 */
export function dkgCeremonyId(keyId: string, committee: CommitteeMembership, sessionId: Uint8Array, curve?: 'ed25519'): Uint8Array {
  if (curve !== undefined) return sha256(lengthPrefixed(DKG_CURVE_CEREMONY_DOMAIN, utf8ToBytes(curve), keyIdBytes(keyId), committeeDigest(committee), u32(committee.epoch), sessionId));
  return sha256(lengthPrefixed(DKG_CEREMONY_DOMAIN, keyIdBytes(keyId), committeeDigest(committee), u32(committee.epoch), sessionId));
}

/**
 * The DKG kind (README "DKG"): every member deals a fresh secret a_0 (derived from its seed and the
 * ceremony id, so a restart deals the same) with a proof of knowledge of it, the proposer picks every
 * eligible dealer, the outcome is summed, and a vote signs confirmMessage(dkgResultDigest(result)),
 * so the certificate is a DkgPublicResult every existing verifier accepts.
 */
export function dkgKind(params: DkgCeremonyParams, identity: CeremonyIdentity): CeremonyKind<UnsignedDkgResult, DkgCeremonyOutcome> {
  const { committee, keyId, sessionId, seed, curve } = params;
  assertKeyId(keyId);
  if (curve !== undefined && curve !== 'ed25519') throw new TkmsError('bad_request', 'DKG ceremony: curve must be "ed25519" or absent (secp256k1)');
  const group = groupOf(curve);
  if (!(sessionId instanceof Uint8Array) || sessionId.length !== SESSION_ID_LENGTH) throw new TkmsError('bad_request', `DKG ceremony: session id must be ${SESSION_ID_LENGTH} bytes`);
  if (!(seed instanceof Uint8Array) || seed.length !== SEED_LENGTH) throw new TkmsError('bad_request', `DKG ceremony: seed must be ${SEED_LENGTH} bytes`);
  const n = committee.members.length;
  assertThreshold(committee.t, n);
  const ceremonyId = dkgCeremonyId(keyId, committee, sessionId, curve);
  const memberKeys = new Map(committee.members.map((m) => [m.id, m.publicKey]));
  const memberIds = committee.members.map((m) => m.id);
  const myId = committee.members.find((m) => equalBytes(m.publicKey, identity.publicKey))?.id;
  const quorum = voteQuorum(n, committee.t);
  return {
    family: 'dkg',
    ceremonyId,
    seed,
    dealers: committee.members,
    receivers: committee.members,
    keyIds: [keyId],
    shape: { family: 'dkg', n, t: committee.t, nTo: n, tTo: committee.t, keys: 1, maxAttempts: maxAttempts(n), ...(curve === undefined ? {} : { keyGroups: [curve] }) },
    // Every voter is in "both" committees (it deals and receives): both counts are the one quorum.
    quorum: { arriving: quorum, leaving: quorum },
    constantTerms: myId === undefined ? undefined : [deriveScalarIn(group, seed, ceremonyId, 'dkg-constant-term', keyIdBytes(keyId), u16Bytes(myId))],
    proveConstantTerms: true,
    keyDealingIsValid: (dealer, _k, d) => dkgKeyDealingIsValid(ceremonyId, keyId, dealer, d, group),
    invalidDealingReason: 'dealing fails the public checks (no proof of knowledge of its constant term, or a bad sealing key)',
    chooseDealers: (standings) => chooseAllDealers(standings, committee.t),
    combine: (dealers, dealings, transcriptHash) => {
      const material = combineDkgCommitments(dealings.map((d) => d.keys[0]!), memberIds, group);
      if (material === undefined) return undefined;
      const unsigned = unsignedDkgResult({ keyId, committee, sessionId, qualified: dealers, material, transcriptHash, ...(curve === undefined ? {} : { curve }) });
      return { unsigned, digest: dkgResultDigest(unsigned, memberKeys) };
    },
    voteMessage: confirmMessage,
    combineShares: (_dealers, subShares) => sumSubShares(subShares, group),
    outcome: (unsigned, votes, shares) => {
      const signatures = Object.fromEntries(votes.map((v) => [v.toId, v] as const).sort((a, b) => a[0] - b[0]).map(([id, v]) => [String(id), encodeHex(v.signature)]));
      const result = { ...unsigned, signatures };
      return shares === undefined ? { result } : { result, share: shares[0]! };
    },
    // One committee: a member is named by its id whether it failed as a dealer or as a voter.
    label: (_role, id) => String(id),
  };
}

/** One member's view of one DKG (README "DKG"): the ceremony engine with the DKG kind. */
export class DkgCeremony extends CeremonyEngine<UnsignedDkgResult, DkgCeremonyOutcome> implements DkgCeremonyApi {
  constructor(params: DkgCeremonyParams, identity: CeremonyIdentity, options: { timing: CeremonyTiming; faults?: DkgCeremonyFaults }) {
    super(dkgKind(params, identity), identity, { timing: options.timing, faults: options.faults ?? {}, ...(params.priorVote === undefined ? {} : { priorVote: params.priorVote }) });
  }
}
