import { encodeHex, equalBytes } from '../bytes.ts';
import { groupOf } from '../group.ts';
import { TkmsError } from '../errors.ts';
import { chooseDealers, quorumSizes } from './agreement.ts';
import { combineSubShares, combineVerificationShares, unsignedHandover } from './combine.ts';
import { keyDealingIsValid } from './dealing.ts';
import { maxAttempts } from './deadlines.ts';
import { CeremonyEngine } from './engine.ts';
import { handoverDigest, handoverVoteMessage, type HandoverCertificate, type UnsignedHandover } from './handover.ts';
import type { CeremonyKind } from './kind.ts';
import type { CeremonyFaults, CeremonyIdentity, CeremonyTiming, ReshareCeremonyApi, ReshareOutcome, ReshareParams } from './types.ts';

/**
 * The reshare/refresh kind (README "Construction"): leaving members deal their old shares (A_0 must
 * be their published Y_j), the proposer picks exactly t dealers, the outcome is Lagrange-combined
 * and keeps the group key, and a vote signs the handover digest.
 */
export function reshareKind(params: ReshareParams, identity: CeremonyIdentity, faults: CeremonyFaults): CeremonyKind<UnsignedHandover, ReshareOutcome> {
  const { from, to } = params.proposal;
  if (params.keys.length !== params.proposal.keyIds.length || params.keys.some((k, i) => k.keyId !== params.proposal.keyIds[i])) {
    throw new TkmsError('bad_request', 'ceremony: keys must be aligned with the proposal key ids');
  }
  const fromId = from.members.find((m) => equalBytes(m.publicKey, identity.publicKey))?.id;
  if (fromId !== undefined && params.oldShares !== undefined && params.keys.some((k) => params.oldShares!.get(k.keyId) === undefined)) {
    throw new TkmsError('bad_request', 'ceremony: a dealer needs its share of every key moved');
  }
  const toIds = to.members.map((m) => m.id).sort((a, b) => a - b);
  const dealing = fromId !== undefined && params.oldShares !== undefined;
  // Each key is moved in its own group (its DKG result's curve); the sealing around it is secp256k1 for all.
  const groups = params.keys.map((k) => groupOf(k.curve));
  return {
    family: 'reshare',
    ceremonyId: params.proposalId,
    seed: params.seed,
    dealers: from.members,
    receivers: to.members,
    keyIds: params.proposal.keyIds,
    shape: { n: from.members.length, t: from.t, nTo: to.members.length, tTo: to.t, keys: params.keys.length, maxAttempts: maxAttempts(to.members.length), ...(groups.some((g) => g.name !== 'secp256k1') ? { keyGroups: params.keys.map((k) => k.curve) } : {}) },
    quorum: quorumSizes(to.members.length, to.t, from.members.length, from.t),
    constantTerms: dealing ? params.keys.map((k) => (faults.wrongConstantTerm === true ? groupOf(k.curve).mod(params.oldShares!.get(k.keyId)! + 1n) : params.oldShares!.get(k.keyId)!)) : undefined,
    proveConstantTerms: false,
    keyDealingIsValid: (dealer, k, d) => keyDealingIsValid(params.proposalId, params.keys[k]!.keyId, dealer, d, params.keys[k]!.verificationShares.get(dealer)),
    invalidDealingReason: 'dealing fails the public checks (constant term is not its verification share, or a bad sealing key)',
    chooseDealers: (standings) => chooseDealers(standings, from.t),
    combine: (dealers, dealings, transcriptHash) => {
      const newShares = [];
      for (let k = 0; k < params.keys.length; k++) {
        const shares = combineVerificationShares(dealers, dealings.map((d) => d.keys[k]!), params.keys[k]!.groupPublicKey, toIds, groups[k]);
        if (shares === undefined) return undefined;
        newShares.push(shares);
      }
      const unsigned = unsignedHandover(params.proposal, params.keys, newShares, transcriptHash);
      return { unsigned, digest: handoverDigest(unsigned, from, to) };
    },
    voteMessage: handoverVoteMessage,
    combineShares: (dealers, subShares, keyIndex) => combineSubShares(dealers, subShares, groups[keyIndex]),
    outcome: (unsigned, votes, shares) => {
      const signatures = { from: {} as Record<string, string>, to: {} as Record<string, string> };
      for (const r of votes) {
        if (r.fromId !== 0) signatures.from[String(r.fromId)] = encodeHex(r.signature);
        if (r.toId !== 0) signatures.to[String(r.toId)] = encodeHex(r.signature);
      }
      const certificate: HandoverCertificate = { ...unsigned, signatures };
      return shares === undefined ? { certificate } : { certificate, newShares: new Map(params.keys.map((k, i) => [k.keyId, shares[i]!])) };
    },
    label: (role, id) => `${role}:${id}`,
  };
}

/**
 * One member's view of one reshare or refresh ceremony (README): the ceremony engine with the
 * reshare kind.
 */
export class ReshareCeremony extends CeremonyEngine<UnsignedHandover, ReshareOutcome> implements ReshareCeremonyApi {
  constructor(params: ReshareParams, identity: CeremonyIdentity, options: { timing: CeremonyTiming; faults?: CeremonyFaults }) {
    const faults = options.faults ?? {};
    super(reshareKind(params, identity, faults), identity, { timing: options.timing, faults, ...(params.priorVote === undefined ? {} : { priorVote: params.priorVote }) });
  }
}
