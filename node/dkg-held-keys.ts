import type { Logger } from 'pino';
import { decodeHex, encodeHex, TkmsError } from '../core/index.ts';
import { confirmMessage, dkgPublicResultDigest, verifyDkgPublicResult, verifyMemberSignature, type DkgPublicResult, type ExpectedCommittee } from '../core/dkg/index.ts';
import type { CeremonyIdentity } from '../core/ceremony/types.ts';
import { expectedCommittee, type Committee } from '../core/committee.ts';
import { errorText } from '../core/errors.ts';
import { encodeDkgFrame, type DkgResultFrame } from './dkg-wire.ts';
import { decodeCeremonyReply } from './reshare-wire.ts';
import type { DkgStateFiles } from './dkg-state.ts';
import type { DkgWithdrawals } from './dkg-withdrawals.ts';
import type { DkgTransport } from './dkg-runner.ts';
import type { Keystore } from './keystore.ts';
import type { NodeMetrics } from './metrics.ts';

/** Stored results without v2 signatures are re-announced this often until t members re-signed them. */
const UPGRADE_EXCHANGE_INTERVAL_MS = 10_000;

export interface HeldDkgKeysOptions {
  keystore: Keystore;
  /** Results held without a share. */
  state: DkgStateFiles;
  /** Keys withdrawn before the certificate made splits impossible (read only): still not served. */
  withdrawals: DkgWithdrawals;
  identity: CeremonyIdentity;
  transport: DkgTransport;
  log: Logger;
  metrics: NodeMetrics;
  /** The committee served now and this node's id in it (undefined: not a member); a reshare changes both. */
  served(): { committee: Committee; selfId: number | undefined };
  /** The committee of an earlier epoch (from the handover chain): a held result is checked against the committee of its epoch. */
  committeeAt?: (epoch: number) => ExpectedCommittee | undefined;
  deliveryTimeoutMs: number;
}

/** The DkgPublicResult as the plain JSON object the keystore stores. */
export function publicResultToJson(r: DkgPublicResult): Record<string, unknown> {
  return JSON.parse(JSON.stringify(r)) as Record<string, unknown>;
}

/**
 * The DKG results this node holds (loaded at start, added on completion), with or without a share,
 * and their exchange with the other members over /tkms/dkg/2: signatures over the same result are
 * merged, another result for a held key id is refused (dkg_conflict), and results stored before
 * they were signed whole (70e9873) are re-signed by t members before they are published again.
 */
export class HeldDkgKeys {
  /** Public results of keys held, with or without a share. */
  private readonly held = new Map<string, DkgPublicResult>();
  /** Held keys this node has no share of. */
  private readonly publicOnly = new Set<string>();
  /** Keys stored before results were signed whole (70e9873): member id → v2 signature over this node's stored result. */
  private readonly upgrading = new Map<string, Map<number, string>>();
  private readonly persisting = new Set<string>();
  private upgradeTimer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(private readonly o: HeldDkgKeysOptions) {}

  has(keyId: string): boolean {
    return this.held.has(keyId);
  }

  get(keyId: string): DkgPublicResult | undefined {
    return this.held.get(keyId);
  }

  stop(): void {
    this.stopped = true;
    if (this.upgradeTimer !== undefined) clearInterval(this.upgradeTimer);
  }

  /** The committee a result must verify against: the one of the epoch it carries. */
  private expectedFor(result: DkgPublicResult): ExpectedCommittee {
    const committee = this.o.served().committee;
    const epoch = result.epoch ?? 0;
    if (epoch === committee.epoch) return expectedCommittee(committee);
    return this.o.committeeAt?.(epoch) ?? expectedCommittee(committee);
  }

  /** Registers a key already on disk, so a second DKG for it is refused; `share` false: a result held without a share. */
  addHeldKey(result: DkgPublicResult, share = true): void {
    this.held.set(result.keyId, result);
    if (share) this.publicOnly.delete(result.keyId);
    else this.publicOnly.add(result.keyId);
    this.o.metrics.keysHeld.set(this.held.size);
  }

  /** Loads the results this node holds no share of (DkgStateFiles), checked against their epoch's committee. */
  loadPublicOnlyResults(): void {
    for (const stored of this.o.state.publicOnlyResults()) {
      try {
        this.addHeldKey(verifyDkgPublicResult(stored, this.expectedFor(stored)), false);
      } catch (e) {
        this.o.log.error({ keyId: stored.keyId, err: errorText(e) }, 'a stored DKG result held without a share does not verify; not loaded');
      }
    }
  }

  /** Whether a held key was withdrawn before this version (a split proven by the DKG that had no certificate): its share is not served. */
  isWithdrawn(keyId: string): boolean {
    return this.o.withdrawals.get(keyId) !== undefined;
  }

  /** Whether this node holds a share of a held key (false: public result only, no partials served). */
  holdsShare(keyId: string): boolean {
    return this.held.has(keyId) && !this.publicOnly.has(keyId);
  }

  /**
   * Registers a key stored with pre-v2 signatures (the caller checked they confirm it under the
   * old rule). This node signs the digest of its own stored result; the result is published
   * again once t members' signatures over that same digest arrived (exchangeResults).
   */
  addLegacyKey(result: DkgPublicResult): void {
    this.addHeldKey(result);
    const selfId = this.o.served().selfId;
    if (selfId === undefined) return;
    const own = encodeHex(this.o.identity.sign(this.resultMessage(result)));
    this.upgrading.set(result.keyId, new Map([[selfId, own]]));
    this.o.log.warn({ keyId: result.keyId }, 'stored DKG result has pre-v2 signatures; re-signing it with the other members');
    if (this.upgradeTimer === undefined) {
      this.upgradeTimer = setInterval(() => {
        if (this.upgrading.size === 0) return;
        const { committee, selfId: self } = this.o.served();
        for (const m of committee.members) if (m.id !== self) this.exchangeResults(m.id, true);
      }, UPGRADE_EXCHANGE_INTERVAL_MS);
      this.upgradeTimer.unref();
    }
  }

  /** Every held key, including ones still being re-signed, withdrawn or held without a share (the admin view). */
  heldKeys(): DkgPublicResult[] {
    return [...this.held.values()].sort((a, b) => (a.keyId < b.keyId ? -1 : 1));
  }

  /** What /tkms/keys/1 answers: held keys with valid v2 signatures that were not withdrawn. */
  publishedKeys(): DkgPublicResult[] {
    return this.heldKeys().filter((r) => !this.upgrading.has(r.keyId) && !this.isWithdrawn(r.keyId));
  }

  /**
   * Sends every held key's result with the signatures this node knows to one member (on connect,
   * and periodically while a result is being re-signed): members merge signatures over the same result.
   */
  exchangeResults(memberId: number, onlyUpgrading = false): void {
    if (this.stopped) return;
    for (const keyId of this.held.keys()) {
      if (this.isWithdrawn(keyId) || (onlyUpgrading && !this.upgrading.has(keyId))) continue;
      void this.sendResult(memberId, keyId);
    }
  }

  private async sendResult(memberId: number, keyId: string): Promise<void> {
    const result = this.resultToAnnounce(keyId);
    if (result === undefined) return;
    try {
      const reply = decodeCeremonyReply(
        await this.o.transport.send(memberId, encodeDkgFrame({ type: 'result', keyId, sessionId: decodeHex(result.sessionId), result }), this.o.deliveryTimeoutMs),
      );
      if (!reply.ok) this.o.log.warn({ keyId, member: memberId, code: reply.code, reason: reply.message }, 'member disputes a held DKG result');
    } catch (e) {
      this.o.log.debug({ keyId, member: memberId, err: errorText(e) }, 'could not send a held DKG result');
    }
  }

  /** The held result as announced: while re-signing, with the v2 signatures gathered so far. */
  private resultToAnnounce(keyId: string): DkgPublicResult | undefined {
    const held = this.held.get(keyId);
    if (held === undefined) return undefined;
    const upgrading = this.upgrading.get(keyId);
    return upgrading === undefined ? held : { ...held, signatures: Object.fromEntries(upgrading) };
  }

  private resultMessage(result: DkgPublicResult): Uint8Array {
    return confirmMessage(dkgPublicResultDigest(result, this.expectedFor(result).memberKeys));
  }

  private digestHex(result: DkgPublicResult): string {
    return encodeHex(dkgPublicResultDigest(result, this.expectedFor(result).memberKeys));
  }

  /**
   * A member's held result. The same result (equal digest): merge signatures. Anything else for a
   * held key is refused (dkg_conflict) and changes nothing here: a certified result is unique per
   * key id (every member votes in one session per key id), so a different one is not certified.
   */
  onResultFrame(from: number, frame: DkgResultFrame): void {
    const sid = encodeHex(frame.sessionId);
    const held = this.held.get(frame.keyId);
    if (held === undefined) return;
    if (held.sessionId === sid && this.digestHex(frame.result) === this.digestHex(held)) {
      this.mergeSignatures(from, held, frame.result);
      return;
    }
    this.o.metrics.dkgConflicts.inc({ kind: held.sessionId === sid ? 'same_session' : 'other_session' });
    this.o.log.warn({ keyId: frame.keyId, from, sessionId: sid, held: held.sessionId }, 'a member announced another DKG result for a held key id; refused, the held key is kept');
    throw new TkmsError('dkg_conflict', `this node holds another result for key ${frame.keyId} (session ${held.sessionId})`);
  }

  private mergeSignatures(from: number, held: DkgPublicResult, incoming: DkgPublicResult): void {
    const keyId = held.keyId;
    const message = this.resultMessage(held);
    const upgrading = this.upgrading.get(keyId);
    const known = upgrading ?? new Map(Object.entries(held.signatures).map(([id, sig]) => [Number(id), sig] as const));
    let added = false;
    for (const [key, sig] of Object.entries(incoming.signatures)) {
      const id = Number(key);
      const publicKey = this.expectedFor(held).memberKeys.get(id);
      if (known.has(id) || publicKey === undefined || !verifyMemberSignature(publicKey, message, decodeHex(sig))) continue;
      known.set(id, sig);
      added = true;
    }
    if (added && upgrading === undefined) this.held.set(keyId, { ...held, signatures: Object.fromEntries(known) });
    if (upgrading !== undefined && known.size >= held.t) void this.persistUpgrade(keyId);
    // The sender lacks signatures we have: send ours back (sets only grow, so this ends).
    if ([...known.keys()].some((id) => !(String(id) in incoming.signatures))) void this.sendResult(from, keyId);
  }

  /** t members signed this node's stored legacy result: store it with those signatures, atomically. */
  private async persistUpgrade(keyId: string): Promise<void> {
    const held = this.held.get(keyId);
    const signatures = this.upgrading.get(keyId);
    if (held === undefined || signatures === undefined || this.persisting.has(keyId)) return;
    this.persisting.add(keyId);
    try {
      const upgraded = verifyDkgPublicResult({ ...held, signatures: Object.fromEntries(signatures) }, this.expectedFor(held));
      await this.o.keystore.replacePublicResult(keyId, publicResultToJson(upgraded));
      this.held.set(keyId, upgraded);
      this.upgrading.delete(keyId);
      this.o.log.info({ keyId, signers: Object.keys(upgraded.signatures).map(Number) }, 'stored DKG result re-signed by t members; published again');
    } catch (e) {
      this.o.log.error({ keyId, err: errorText(e) }, 'could not store the re-signed DKG result; will retry');
    } finally {
      this.persisting.delete(keyId);
    }
  }
}
