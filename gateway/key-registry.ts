import { join } from 'node:path';
import { isTkmsError, TkmsError } from '../core/index.ts';
import type { AppliedChange } from '../core/keys/key-apply.ts';
import { KeyBook, type KeyBookOptions } from '../core/keys/key-book.ts';
import { keyChangeSigner, MAX_SUBMIT_SKEW_SECONDS, type KeyChange } from '../core/keys/key-change.ts';
import { KEY_CHANGE_PAGE_SIZE } from '../core/keys/key-wire.ts';
import { MAX_CHANGES_PER_KEY } from '../config/key-registry.ts';
import { KeyChangeLog } from '../storage/key-change-log.ts';
import type { Logger } from '../runtime/logger.ts';
import type { KeyChangeAck, NodeFailure, NodePool } from './node-pool.ts';

/**
 * The gateway's copy of the managed keys: its own KeyBook and durable change log, fed by the changes
 * it sends to the committee and by what the members hold (catch-up). The gateway is not trusted for
 * any key's state: every node applies every change itself. The copy lets the gateway refuse a change
 * no node would take before sending it, answer descriptions and listings, and refuse to encrypt to a
 * key that is not Enabled.
 */
export const KEY_CHANGE_LOG_FILE = 'key-changes.log';

/** What the registry needs of the node pool. */
export type KeyChangeMembers = Pick<NodePool, 'committee' | 'broadcastKeyChange' | 'keyChangePage'>;

/** Sync pages read from one member in one round: a round costs at most this many pages of checks per member. */
const MAX_SYNC_PAGES_PER_ROUND = 400;
/** One key's history is at most MAX_CHANGES_PER_KEY changes: this many pages reach its end. */
const MAX_HISTORY_PAGES = Math.ceil(MAX_CHANGES_PER_KEY / KEY_CHANGE_PAGE_SIZE);
/** Codes that say a member could not be reached or did not answer, not that it refused. */
const TRANSPORT_CODES = new Set(['unavailable', 'timeout', 'internal']);

export interface KeyChangeOutcome {
  /** The key after the change: the gateway's copy, or the key the change makes when no member applied it. */
  applied: AppliedChange | undefined;
  acked: KeyChangeAck[];
  failures: NodeFailure[];
  /** The gateway held the change before this submission (a re-sent change). */
  knownHere: boolean;
}

export interface GatewayKeyRegistryOptions {
  /** The gateway's store directory: the change log is key-changes.log in it. */
  storeDir: string;
  book: KeyBookOptions;
  members: KeyChangeMembers;
  log: Logger;
  /** How long one member may take to answer one frame. */
  timeoutMs: number;
  /** Unix milliseconds. */
  now?: () => number;
}

export class GatewayKeyRegistry {
  /** Where each member's sync pages continue, by member id and peer id (a member id may name another peer at a later epoch). */
  private readonly cursors = new Map<string, number>();
  private catchingUp: Promise<void> | undefined;

  private constructor(
    private readonly changes: KeyChangeLog,
    private readonly opts: GatewayKeyRegistryOptions,
  ) {}

  static async open(opts: GatewayKeyRegistryOptions): Promise<GatewayKeyRegistry> {
    const path = join(opts.storeDir, KEY_CHANGE_LOG_FILE);
    const { registry, tornBytes } = await KeyChangeLog.open(path, new KeyBook(opts.book));
    if (tornBytes > 0) opts.log.warn({ tornBytes }, 'key change log had an incomplete last line (a crash mid-write); it was cut off');
    return new GatewayKeyRegistry(registry, opts);
  }

  get book(): KeyBook {
    return this.changes.book;
  }

  /**
   * Sends a change to every member, after the gateway's own book took it as the next change of its
   * key (a refusal is thrown and nothing is sent). A change the gateway already holds is sent again:
   * members that lack it apply it, the others answer that they know it. The gateway takes the change
   * into its own log only once a member applied it, so it never holds a change no member has.
   * `beforeSend` is called with the verified signer before anything is sent (the rate limit).
   */
  async submit(change: KeyChange, beforeSend: (signer: string) => void = () => undefined): Promise<KeyChangeOutcome> {
    const knownHere = this.book.isApplied(change);
    // A re-sent change is the held one only with its admin's signature: nobody else makes the gateway send it.
    if (!knownHere) this.requireFresh(change);
    const applied = knownHere ? undefined : await this.checkHere(change);
    beforeSend(applied?.signer ?? keyChangeSigner(change, this.opts.book.deployment));
    const { acked, failures } = await this.opts.members.broadcastKeyChange(change, this.opts.timeoutMs);
    if (acked.length === 0) {
      const refusal = sameRefusal(failures);
      if (refusal !== undefined) throw refusal;
      return { applied, acked, failures, knownHere };
    }
    let taken = applied;
    if (!knownHere) {
      try {
        taken = (await this.changes.submit(change)).applied ?? applied;
      } catch (e) {
        // Another change to the key was taken here meanwhile; the members decided, and catch-up follows them.
        this.opts.log.warn({ keyId: change.keyId, sequence: change.sequence, err: errorText(e) }, 'a key change the members applied was refused here');
      }
    }
    return { applied: taken, acked, failures, knownHere };
  }

  /** Reads what the members hold that the gateway lacks; one round at a time. */
  catchUp(): Promise<void> {
    this.catchingUp ??= this.syncRound().finally(() => {
      this.catchingUp = undefined;
    });
    return this.catchingUp;
  }

  async close(): Promise<void> {
    await this.catchingUp?.catch(() => undefined);
    await this.changes.close();
  }

  /** Members refuse a new change signed more than MAX_SUBMIT_SKEW_SECONDS from their clocks: refused here before it is sent. */
  private requireFresh(change: KeyChange): void {
    const now = Math.floor((this.opts.now?.() ?? Date.now()) / 1000);
    if (Math.abs(change.issuedAt - now) > MAX_SUBMIT_SKEW_SECONDS) {
      throw new TkmsError('expired', `key change ${change.sequence} of key ${change.keyId} was issued at ${change.issuedAt}, more than ${MAX_SUBMIT_SKEW_SECONDS} s from the gateway's clock (${now}); sign it again`);
    }
  }

  /** The book's check; when the gateway is behind on the key, its history from the members first, then the check again. */
  private async checkHere(change: KeyChange): Promise<AppliedChange> {
    // Cheap refusals before any member is asked for a key's history: an anonymous caller's change
    // costs one signature check at most, never n history reads.
    keyChangeSigner(change, this.opts.book.deployment);
    this.book.requireAliasesFree(change);
    this.book.requireNotDestroyedAt(change, Math.floor((this.opts.now?.() ?? Date.now()) / 1000) - (this.opts.book.allowShortDeletionWindow ? 0 : MAX_SUBMIT_SKEW_SECONDS));
    try {
      return this.book.check(change);
    } catch (e) {
      if (!isTkmsError(e, 'key_change_out_of_order')) throw e;
    }
    await this.catchUpKey(change.keyId);
    return this.book.check(change);
  }

  private async catchUpKey(keyId: string): Promise<void> {
    for (const m of this.opts.members.committee.members) {
      try {
        for (let page = 0; page < MAX_HISTORY_PAGES; page++) {
          const after = this.book.get(keyId)?.sequence ?? 0;
          const { changes, next } = await this.opts.members.keyChangePage(m.id, { type: 'history', keyId, after }, this.opts.timeoutMs);
          if (changes.length === 0 || !(await this.take(changes, m.id))) break;
          if (next === null) break;
        }
      } catch (e) {
        this.opts.log.debug({ member: m.id, keyId, err: errorText(e) }, 'key history request failed');
      }
    }
  }

  private async syncRound(): Promise<void> {
    for (const m of this.opts.members.committee.members) {
      const cursorKey = `${m.id}/${m.peerId}`;
      try {
        for (let page = 0; page < MAX_SYNC_PAGES_PER_ROUND; page++) {
          const after = this.cursors.get(cursorKey) ?? 0;
          const { changes, next } = await this.opts.members.keyChangePage(m.id, { type: 'sync', after }, this.opts.timeoutMs);
          const clean = await this.take(changes, m.id);
          // A member's page must move on, or it could keep the gateway reading.
          const reached = next ?? after + changes.length;
          if (reached > after) this.cursors.set(cursorKey, reached);
          // A page with refusals ends the member's round: a member sending changes that do not apply costs one page of checks a round.
          if (next === null || next <= after || !clean) break;
        }
      } catch (e) {
        this.opts.log.debug({ member: m.id, err: errorText(e) }, 'key change sync request failed');
      }
    }
  }

  /** Takes a member's changes in order; false when one was refused (logged). */
  private async take(changes: readonly KeyChange[], memberId: number): Promise<boolean> {
    let clean = true;
    for (const change of changes) {
      try {
        await this.changes.submit(change);
      } catch (e) {
        // Another change at a sequence taken already: refused before any signature check, and the members' to settle.
        if (isTkmsError(e, 'key_change_replayed')) continue;
        clean = false;
        this.opts.log.warn({ member: memberId, keyId: change.keyId, sequence: change.sequence, err: errorText(e) }, 'a key change a member holds does not apply here');
      }
    }
    return clean;
  }
}

/** The one refusal every member answered, when none could apply the change and all said the same. */
function sameRefusal(failures: readonly NodeFailure[]): TkmsError | undefined {
  const first = failures[0];
  if (first === undefined || TRANSPORT_CODES.has(first.code)) return undefined;
  if (!failures.every((f) => f.code === first.code)) return undefined;
  return new TkmsError(first.code, `every member refused the key change: ${first.message}`, { failures: failures.map((f) => ({ nodeId: f.nodeId, code: f.code, message: f.message })) });
}

function errorText(e: unknown): string {
  return isTkmsError(e) ? `${e.code}: ${e.message}` : e instanceof Error ? e.message : String(e);
}
