import { sha256 } from '@noble/hashes/sha2.js';
import type { Logger } from 'pino';
import type { CommitteeMembership } from '../core/committee.ts';
import { encodeHex, utf8ToBytes } from '../core/index.ts';
import { parseDkgPublicResult, verifyDkgPublicResult, type DkgPublicResult } from '../core/dkg/index.ts';
import type { NodeEpochStore } from './epoch-types.ts';
import { canonicalJson } from './keystore-format.ts';

/**
 * A member that joined by a reshare never saw the DKG of the keys it now serves, so it asks the other
 * members of the committee it serves, and those of the committee the last certificate left (when all
 * of them were replaced, only those held the keys), for each key's origin (their keys replies) and stores it
 * (NodeEpochStore.saveOrigin), which it then publishes after any restart like every member.
 *
 * What is taken: a result for a key moved here whose group key is the certified one (the store checks
 * that), and either its signatures verify against the committee of its epoch when this node knows that
 * committee (it stored it on the chain), or t (of the served committee) of those members answered the same
 * result. A verifier pinned earlier checks the signatures in any case.
 *
 * Bounds: at most ASK_AT_ONCE keys replies held at a time (each bounded by the keys protocol's frame;
 * asked together so members that are down cost one timeout per batch, not one each), and only results
 * naming a missing key id are parsed.
 */

const ASK_AT_ONCE = 8;

export interface OriginSourceOptions {
  store: Pick<NodeEpochStore, 'served' | 'committeeAt' | 'missingOrigins' | 'saveOrigin'>;
  selfPeerId: string;
  /** The peer id of a raw Ed25519 member key: the committee left is stored by keys only (CommitteeMembership). */
  peerIdOf: (publicKey: Uint8Array) => string;
  /** The `keys` of a member's keys reply (any epoch), or undefined when it did not answer. */
  askKeys: (peerId: string) => Promise<readonly unknown[] | undefined>;
  /** Called for each origin stored, so it is published at once. */
  onStored: (result: DkgPublicResult) => void;
  log: Logger;
}

function expectedAt(c: CommitteeMembership): { committeeId: string; t: number; memberKeys: Map<number, Uint8Array> } {
  return { committeeId: c.committeeId, t: c.t, memberKeys: new Map(c.members.map((m) => [m.id, m.publicKey])) };
}

/** Fingerprint of a result without its signatures (members may hold different valid signature sets). */
function unsignedDigest(result: DkgPublicResult): string {
  const { signatures: _signatures, ...unsigned } = result;
  return encodeHex(sha256(utf8ToBytes(canonicalJson(unsigned as unknown as Record<string, unknown>))));
}

/** One pass over the other members; returns the key ids still missing. */
export async function fetchOrigins(o: OriginSourceOptions): Promise<string[]> {
  const missing = new Set(o.store.missingOrigins());
  if (missing.size === 0) return [];
  const { committee } = o.store.served();
  const left = o.store.committeeAt(committee.epoch - 1);
  const servedPeers = new Set(committee.members.map((m) => m.peerId));
  const votes = new Map<string, Map<string, { result: DkgPublicResult; members: Set<string> }>>();
  const others = [...new Set([...committee.members.map((m) => m.peerId), ...(left?.members ?? []).map((m) => o.peerIdOf(m.publicKey))])].filter((p) => p !== o.selfPeerId);
  for (let i = 0; i < others.length && missing.size > 0; i += ASK_AT_ONCE) {
    const batch = others.slice(i, i + ASK_AT_ONCE);
    const replies = await Promise.all(batch.map((peer) => o.askKeys(peer).catch(() => undefined)));
    for (const [j, keys] of replies.entries()) await take(batch[j]!, keys);
  }
  return [...missing].sort();

  async function take(member: string, keys: readonly unknown[] | undefined): Promise<void> {
    for (const raw of keys ?? []) {
      const keyId = (raw as { keyId?: unknown } | null)?.keyId;
      if (typeof keyId !== 'string' || !missing.has(keyId)) continue;
      let result: DkgPublicResult;
      try {
        result = parseDkgPublicResult(raw);
        const made = o.store.committeeAt(result.epoch ?? 0);
        if (made !== undefined) {
          result = verifyDkgPublicResult(result, expectedAt(made));
        } else {
          const byDigest = votes.get(keyId) ?? new Map<string, { result: DkgPublicResult; members: Set<string> }>();
          votes.set(keyId, byDigest);
          const digest = unsignedDigest(result);
          const entry = byDigest.get(digest) ?? { result, members: new Set<string>() };
          byDigest.set(digest, entry);
          // Only members of the committee served count: fewer than t of them lie, so t matching
          // answers hold an honest one. Members that left (asked for when every member was replaced)
          // may be the very ones a reshare removed; they can only hand over results that verify.
          if (servedPeers.has(member)) entry.members.add(member);
          if (entry.members.size < committee.t) continue;
        }
        if (await o.store.saveOrigin(result as unknown as Record<string, unknown>)) {
          missing.delete(keyId);
          votes.delete(keyId);
          o.onStored(result);
          o.log.info({ keyId, from: member, epoch: result.epoch ?? 0 }, 'stored the DKG result a reshare moved here (its origin)');
        }
      } catch (e) {
        o.log.warn({ keyId, member, err: e instanceof Error ? e.message : 'invalid' }, 'a member answered a DKG result that is not the origin of a key moved here; ignored');
      }
    }
  }
}

const FIRST_RETRY_MS = 1_000;
const MAX_RETRY_MS = 30_000;

/** Runs fetchOrigins until nothing is missing, again after each commit (kick), backing off while members do not answer. */
export class OriginFetcher {
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #delay = FIRST_RETRY_MS;
  #stopped = false;

  constructor(private readonly o: OriginSourceOptions) {}

  /** Starts (or restarts after a commit) the fetching. */
  kick(): void {
    if (this.#stopped) return;
    this.#delay = FIRST_RETRY_MS;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    void this.#run();
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
  }

  #run(): Promise<void> {
    this.#running ??= (async () => {
      let left: string[] = [];
      try {
        left = await fetchOrigins(this.o);
      } catch (e) {
        this.o.log.warn({ err: e instanceof Error ? e.message : 'failed' }, 'could not fetch the origins of moved keys');
        left = ['?'];
      } finally {
        this.#running = undefined;
      }
      if (left.length === 0 || this.#stopped) return;
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        void this.#run();
      }, this.#delay);
      this.#timer.unref();
      this.#delay = Math.min(MAX_RETRY_MS, this.#delay * 2);
    })();
    return this.#running;
  }
}
