import { assertKeyId, decodeHex, equalBytes, isTkmsError, TkmsError } from '../core/index.ts';
import { groupOf } from '../core/group.ts';
import { parseDkgPublicResult, verifyDkgPublicResult, type DkgPublicResult } from '../core/dkg/index.ts';
import type { GatewayHttp } from './gateway-http.ts';
import { followKey, pinnedMembership, type KeyEpochs } from './epochs.ts';
import { followHandovers, MAX_HANDOVER_CHAIN, verifyArrival, type KeyEpochData } from '../core/ceremony/handover.ts';
import { MAX_EPOCH, type CommitteeMembership } from '../core/committee.ts';
import type { TkmsClientOptions, VerifiedKey } from './client-types.ts';

/** Pages of GET /v1/committee one getKey reads at most (16 certificates a page: MAX_HANDOVER_CHAIN in all). */
const MAX_COMMITTEE_PAGES = 64;

/**
 * A client's verified keys (TkmsClient.getKey): each key's DKG result checked against the pinned
 * committee (or, unpinned, the gateway's word), and followed through the handover certificates the
 * gateway passes on; kept until forgotten (a decrypt that sees a later epoch loads it again).
 */
export class VerifiedKeys {
  private readonly keys = new Map<string, VerifiedKey>();

  constructor(
    private readonly http: GatewayHttp,
    private readonly opts: Pick<TkmsClientOptions, 'trustedMemberKeys' | 'trustedThreshold' | 'committeeId' | 'trustedEpoch'>,
  ) {}

  /** See TkmsClient.getKey. */
  async get(keyId: string): Promise<VerifiedKey> {
    assertKeyId(keyId);
    const cached = this.keys.get(keyId);
    if (cached !== undefined) return cached;
    const key = await this.loadKey(keyId);
    this.keys.set(keyId, key);
    return key;
  }

  /** Drops the cached key: the next get loads and verifies it again. */
  forget(keyId: string): void {
    this.keys.delete(keyId);
  }

  private get trustedEpoch(): number {
    return this.opts.trustedEpoch ?? 0;
  }

  /**
   * The handover certificates the gateway passes on, from the one arriving at the pinned epoch (a key
   * made earlier is taken from it) to the epoch served, a page at a time (at most
   * MAX_COMMITTEE_PAGES pages, MAX_HANDOVER_CHAIN certificates); none from a gateway that predates
   * epochs. A gateway that predates pages answers every certificate at once, without `next`.
   */
  private async handovers(): Promise<unknown[]> {
    const out: unknown[] = [];
    let since = Math.max(0, this.trustedEpoch - 1);
    try {
      for (let page = 0; page < MAX_COMMITTEE_PAGES; page++) {
        const { json } = await this.http.request<Record<string, unknown>>('GET', `/v1/committee?since=${since}`);
        if (!Array.isArray(json.handovers)) throw new TkmsError('bad_request', 'gateway committee answer has no handovers');
        if (out.length + json.handovers.length > MAX_HANDOVER_CHAIN) throw new TkmsError('bad_request', `gateway passed on more than ${MAX_HANDOVER_CHAIN} handover certificates`);
        out.push(...json.handovers);
        const next = json.next;
        if (next === undefined || next === null) return out;
        // Each page must move on, or a gateway could keep the client asking.
        if (typeof next !== 'number' || !Number.isSafeInteger(next) || next <= since || next > MAX_EPOCH) throw new TkmsError('bad_request', 'gateway committee answer has an invalid next page');
        since = next;
      }
    } catch (e) {
      if (isTkmsError(e, 'not_found')) return [];
      throw e;
    }
    throw new TkmsError('bad_request', `gateway committee answer needs more than ${MAX_COMMITTEE_PAGES} pages`);
  }

  private async loadKey(keyId: string): Promise<VerifiedKey> {
    const [{ json }, certificates] = await Promise.all([this.http.request<Record<string, unknown>>('GET', `/v1/keys/${encodeURIComponent(keyId)}`), this.handovers()]);
    const result = parseDkgPublicResult({
      keyId: json.keyId,
      committeeId: json.committeeId,
      ...(json.resultEpoch === undefined ? {} : { epoch: json.resultEpoch }),
      ...(json.curve === undefined ? {} : { curve: json.curve }),
      sessionId: json.sessionId,
      t: json.t,
      n: json.n,
      groupPublicKey: json.publicKey,
      verificationShares: json.verificationShares,
      qualified: json.qualified,
      transcriptHash: json.transcriptHash,
      signatures: json.signatures,
    });
    if (result.keyId !== keyId) throw new TkmsError('bad_request', `gateway answered with key ${result.keyId} for ${keyId}`);
    if (this.opts.committeeId !== undefined && result.committeeId !== this.opts.committeeId) {
      throw new TkmsError('bad_proof', `key ${keyId} is of committee ${result.committeeId}, not of the pinned committee ${this.opts.committeeId}`);
    }
    const made = result.epoch ?? 0;
    const pinned = this.opts.trustedMemberKeys !== undefined && this.opts.trustedThreshold !== undefined && this.opts.committeeId !== undefined;
    if (pinned && made < this.trustedEpoch) return this.keyMadeBeforePin(result, certificates);
    let start: CommitteeMembership;
    try {
      start = pinned ? this.pinnedCommitteeAt(made, certificates) : this.gatewayCommittee(json, result);
    } catch (e) {
      throw new TkmsError('bad_proof', `key ${keyId}: ${isTkmsError(e) ? e.message : 'invalid'}`);
    }
    let verified: DkgPublicResult;
    try {
      // Unpinned parts come from the result itself: checked for consistency, trusted for nothing (pinned stays false).
      verified = verifyDkgPublicResult(result, { committeeId: start.committeeId, t: start.t, memberKeys: new Map(start.members.map((m) => [m.id, m.publicKey])) });
    } catch (e) {
      throw new TkmsError('bad_proof', `key ${keyId}: its DKG result does not verify: ${isTkmsError(e) ? e.message : 'invalid'}`);
    }
    const madeData: KeyEpochData = {
      keyId,
      epoch: made,
      t: result.t,
      groupPublicKey: decodePointBytes(result, result.groupPublicKey, 'public key'),
      verificationShares: new Map(Object.entries(result.verificationShares).map(([id, y]) => [Number(id), decodePointBytes(result, y, `Y_${id}`)])),
      ...(result.curve === undefined ? {} : { curve: result.curve }),
    };
    let epochs: KeyEpochs;
    try {
      epochs = followKey(start, madeData, certificates);
    } catch (e) {
      throw new TkmsError('bad_proof', `key ${keyId}: the committee's handover certificates do not verify: ${isTkmsError(e) ? e.message : 'invalid'}`);
    }
    return this.verifiedKey(verified, epochs, pinned);
  }

  /**
   * A key made before the pinned epoch: its DKG result was signed by a committee this client does not
   * know, so the key comes from the certificate that arrived at the pinned committee (signed by a vote
   * quorum of it, verifyArrival), which must name the result's group key; later epochs as usual.
   * The result's own signatures are not checked (`result` is the gateway's copy).
   */
  private keyMadeBeforePin(result: DkgPublicResult, certificates: readonly unknown[]): VerifiedKey {
    const pin = pinnedMembership(this.opts.trustedMemberKeys!, this.opts.trustedThreshold!, this.opts.committeeId!, this.trustedEpoch);
    const groupKey = decodePointBytes(result, result.groupPublicKey, 'public key');
    let arrived: KeyEpochData | undefined;
    let firstError: unknown;
    for (const cert of certificates) {
      if ((cert as { fromEpoch?: unknown } | null)?.fromEpoch !== pin.epoch - 1) continue;
      try {
        arrived = verifyArrival(cert, pin).find((k) => k.keyId === result.keyId);
        if (arrived !== undefined) break;
      } catch (e) {
        firstError ??= e;
      }
    }
    if (arrived === undefined || !equalBytes(arrived.groupPublicKey, groupKey)) {
      const why = arrived !== undefined ? 'names another group key' : isTkmsError(firstError) ? firstError.message : 'is missing';
      throw new TkmsError('bad_proof', `key ${result.keyId} was made at epoch ${result.epoch ?? 0}, before the pinned epoch ${pin.epoch}; the certificate arriving at the pinned committee ${why}`);
    }
    let epochs: KeyEpochs;
    try {
      epochs = followKey(pin, arrived, certificates);
    } catch (e) {
      throw new TkmsError('bad_proof', `key ${result.keyId}: the committee's handover certificates do not verify: ${isTkmsError(e) ? e.message : 'invalid'}`);
    }
    return this.verifiedKey(result, epochs, true);
  }

  private verifiedKey(result: DkgPublicResult, epochs: KeyEpochs, pinned: boolean): VerifiedKey {
    const keyId = result.keyId;
    const current = epochs.byEpoch.get(epochs.epoch)!;
    return {
      keyId,
      group: groupOf(result.curve),
      publicKey: groupOf(result.curve).decodePoint(result.groupPublicKey, 'public key'),
      publicKeyHex: result.groupPublicKey,
      t: current.t,
      n: current.verificationShares.size,
      committeeId: result.committeeId,
      verificationShares: current.verificationShares,
      epoch: epochs.epoch,
      epochs: epochs.byEpoch,
      result,
      pinned,
    };
  }

  /** The committee a key made at `epoch` must be signed by, reached from the pinned committee through verified certificates. */
  private pinnedCommitteeAt(epoch: number, certificates: readonly unknown[]): CommitteeMembership {
    const pin = pinnedMembership(this.opts.trustedMemberKeys!, this.opts.trustedThreshold!, this.opts.committeeId!, this.trustedEpoch);
    if (epoch < pin.epoch) throw new TkmsError('bad_proof', `the key was made at epoch ${epoch}, before the pinned committee's epoch ${pin.epoch}: pin the committee file of epoch ${epoch} or earlier`);
    if (epoch === pin.epoch) return pin;
    const followed = followHandovers(pin, certificates);
    const step = followed.chain.find((c) => c.to.epoch === epoch);
    if (step === undefined) throw new TkmsError('stale_epoch', `the key was made at epoch ${epoch}, which no verified handover certificate reaches from the pinned epoch ${pin.epoch}`);
    return step.to;
  }

  /** Unpinned: the members the gateway names for the key's result (today's behaviour), at the result's epoch. */
  private gatewayCommittee(json: Record<string, unknown>, result: DkgPublicResult): CommitteeMembership {
    const members: { id: number; publicKey: Uint8Array }[] = [];
    if (this.opts.trustedMemberKeys !== undefined) {
      for (const [id, hex] of Object.entries(this.opts.trustedMemberKeys)) members.push({ id: Number(id), publicKey: decodeHex(hex, { name: `member ${id} key`, length: 32 }) });
    } else if (Array.isArray(json.members)) {
      for (const m of json.members as { id?: unknown; publicKey?: unknown }[]) {
        if (typeof m?.id === 'number') members.push({ id: m.id, publicKey: decodeHex(m.publicKey, { name: `member ${m.id} key`, length: 32 }) });
      }
    }
    members.sort((a, b) => a.id - b.id);
    return { committeeId: this.opts.committeeId ?? result.committeeId, epoch: result.epoch ?? 0, t: this.opts.trustedThreshold ?? result.t, members };
  }
}

/** A point of the result's group (its curve), checked, as bytes. */
function decodePointBytes(result: DkgPublicResult, hex: string, name: string): Uint8Array {
  const group = groupOf(result.curve);
  return group.encodePoint(group.decodePoint(hex, name));
}
