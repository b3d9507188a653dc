import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex, concatBytes, TkmsError, utf8ToBytes } from '../core/index.ts';
import type { KeyChange } from '../core/keys/key-change.ts';
import type { KeyBook } from '../core/keys/key-book.ts';
import { keyStateAt, keyVersionsAt, materialKeyId, parseMaterialKeyId, versionStateAt, type ManagedKey } from '../core/keys/key-model.ts';
import type { Logger } from '../runtime/logger.ts';
import { errorText } from '../core/errors.ts';

/**
 * The DKGs that managed keys call for. A create or rotate of a DKG key is a signed admin change; once
 * a member applied it, the committee runs the DKG of the new version's material key id
 * (`<keyId>` or `<keyId>.v<n>`) without anyone else asking. One member proposes: the members are
 * ranked by SHA-256(material id ‖ member id), the first proposes after BASE_DELAY_MS (time for the
 * change to reach the others) and each next one RANK_DELAY_MS later, only if no DKG of that id has
 * reached it by then; a member that is down is skipped by the next in rank.
 *
 * The other way round, `admit` is the DKG runner's gate: a DKG of a material id that names a managed
 * key runs only for a version the admins made, of a DKG key, not destroyed. A member cannot make the
 * committee generate material the admins did not ask for.
 */
export interface KeyMaterialOptions {
  book: Pick<KeyBook, 'get' | 'all'>;
  selfId(): number | undefined;
  /** Ids of every member of the committee served, this node's included. */
  members(): number[];
  /** Whether this node holds, runs or ran a DKG of the id. */
  hasMaterial(materialId: string): boolean;
  propose(materialId: string): void;
  log: Logger;
  nowSeconds?: () => number;
  baseDelayMs?: number;
  rankDelayMs?: number;
}

const BASE_DELAY_MS = 1_000;
const RANK_DELAY_MS = 4_000;
/** How often due automatic rotations are looked for. */
const ROTATION_CHECK_MS = 30_000;
/** A member whose clock is behind the proposer's still admits a version that comes due this soon. */
const ROTATION_CLOCK_SLACK_SECONDS = 60;

export class KeyMaterialScheduler {
  private readonly timers = new Map<string, NodeJS.Timeout>();
  /** Material ids this node could not propose (a DKG of the id failed here and its vote is kept): not tried again until restart. */
  private readonly stuck = new Set<string>();
  private ticker: NodeJS.Timeout | undefined;
  private readonly now: () => number;

  constructor(private readonly o: KeyMaterialOptions) {
    this.now = o.nowSeconds ?? (() => Math.floor(Date.now() / 1000));
  }

  /** After a change was applied here: a create or rotate of a DKG key calls for its new version's DKG. */
  onApplied(key: ManagedKey, change: KeyChange): void {
    if (key.origin.type !== 'dkg' || (change.action !== 'create' && change.action !== 'rotate')) return;
    const newest = key.versions[key.versions.length - 1]!;
    this.schedule(materialKeyId(key.keyId, newest.version));
  }

  /**
   * At start, and every ROTATION_CHECK_MS: every live version of a DKG key whose material is missing
   * (a crash, a member down, or an automatic rotation that came due), each scheduled once.
   */
  start(): void {
    this.resume();
    this.ticker = setInterval(() => this.resume(), ROTATION_CHECK_MS);
    this.ticker.unref();
  }

  /** Every live version of a DKG key whose material is missing, scheduled (see start). */
  resume(): void {
    const now = this.now();
    for (const key of this.o.book.all()) {
      if (key.origin.type !== 'dkg' || keyStateAt(key, now) === 'Destroyed') continue;
      for (const v of keyVersionsAt(key, now)) {
        const id = materialKeyId(key.keyId, v.version);
        if (versionStateAt(v, now) !== 'Destroyed' && !this.o.hasMaterial(id)) this.schedule(id);
      }
    }
  }

  /** Throws unless a DKG of `materialId` may run here (see the class comment). Ids no managed key names pass. */
  admit(materialId: string): void {
    const { keyId, version } = parseMaterialKeyId(materialId);
    const key = this.o.book.get(keyId);
    if (key === undefined) return;
    if (key.origin.type !== 'dkg') throw new TkmsError('key_usage_mismatch', `key ${key.keyId} is derived from ${key.origin.root}: it has no DKG of its own`);
    this.requireLiveVersion(key, version, materialId);
  }

  /**
   * The group of a material id's shares in this node's view: ed25519 for a managed key of spec
   * ECC_NIST_EDWARDS25519, else undefined (secp256k1: every other managed key and every key an
   * operator made outside the key book).
   */
  curveOf(materialId: string): 'ed25519' | undefined {
    let keyId: string;
    try {
      keyId = parseMaterialKeyId(materialId).keyId;
    } catch {
      return undefined;
    }
    return this.o.book.get(keyId)?.spec === 'ECC_NIST_EDWARDS25519' ? 'ed25519' : undefined;
  }

  private requireLiveVersion(key: ManagedKey, version: number, materialId: string): void {
    const now = this.now();
    if (keyStateAt(key, now) === 'Destroyed') throw new TkmsError('key_destroyed', `key ${key.keyId} was destroyed: no DKG of ${materialId} runs`);
    const v = keyVersionsAt(key, now + ROTATION_CLOCK_SLACK_SECONDS).find((x) => x.version === version);
    if (v === undefined) throw new TkmsError('unavailable', `key ${key.keyId} has no version ${version} here yet: a DKG of ${materialId} waits for the admins' rotate change to reach this node`);
    if (versionStateAt(v, now) === 'Destroyed') throw new TkmsError('key_destroyed', `version ${version} of key ${key.keyId} was destroyed: no DKG of ${materialId} runs`);
  }

  stop(): void {
    if (this.ticker !== undefined) clearInterval(this.ticker);
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }

  private schedule(materialId: string): void {
    const self = this.o.selfId();
    if (self === undefined || this.timers.has(materialId) || this.stuck.has(materialId) || this.o.hasMaterial(materialId)) return;
    const rank = proposerRank(materialId, this.o.members(), self);
    const delay = (this.o.baseDelayMs ?? BASE_DELAY_MS) + rank * (this.o.rankDelayMs ?? RANK_DELAY_MS);
    const timer = setTimeout(() => {
      this.timers.delete(materialId);
      if (this.o.hasMaterial(materialId)) return;
      try {
        this.o.propose(materialId);
        this.o.log.info({ materialId, rank }, 'proposed the DKG a managed key calls for');
      } catch (e) {
        // A DKG of this id failed here before and its vote is never withdrawn: the version cannot be
        // made under this id. Its admins rotate again (version 2 and later) or create a new key.
        this.stuck.add(materialId);
        this.o.log.warn({ materialId, rank, err: errorText(e) }, 'could not propose the DKG a managed key calls for; the version stays without material (rotate again, or for version 1 create the key anew)');
      }
    }, delay);
    timer.unref();
    this.timers.set(materialId, timer);
  }
}

/** This member's place (0 = first) in the order the members propose the DKG of `materialId`. */
export function proposerRank(materialId: string, members: readonly number[], self: number): number {
  const score = (id: number) => bytesToHex(sha256(concatBytes(utf8ToBytes(materialId), Uint8Array.of(id >>> 24, (id >>> 16) & 255, (id >>> 8) & 255, id & 255))));
  const order = [...members].sort((a, b) => (score(a) < score(b) ? -1 : 1));
  const rank = order.indexOf(self);
  return rank < 0 ? order.length : rank;
}

/** Whether the DKG runner holds, runs or ran a DKG of `keyId` (its status is known). */
export function runnerKnows(runner: { status(keyId: string): unknown }, keyId: string): boolean {
  try {
    runner.status(keyId);
    return true;
  } catch {
    return false;
  }
}
