import {
  decodeAclReply,
  decodeAclRequest,
  encodeAclReply,
  encodeAclRequest,
  isTkmsError,
  REVOCATION_PAGE_SIZE,
  TkmsError,
  type RevocationEnvelope,
} from '../core/index.ts';
import type { Logger } from '../runtime/logger.ts';
import type { NodeMetrics } from './metrics.ts';
import { errorText } from '../core/errors.ts';
import type { RevocationStore } from './revocations.ts';

/**
 * /tkms/acl/1: revocations reach every member. A node that stores a new revocation
 * passes it on to every other member (flooding gossip: acknowledged, so the gateway can
 * count how many nodes hold it), and a member that was away pulls what it missed from
 * each peer when it reconnects: what that peer still holds individually. A revocation a
 * full store folded into a watermark is not synced (watermarks are unsigned and keyed per
 * node), so a member that missed it cannot pull it from that peer; it is safe once n − t + 1
 * nodes acknowledged it, and the owner re-sends until then (docs/operators.md "Revocations").
 */
export interface AclPeerTransport {
  members(): number[];
  send(memberId: number, frame: Uint8Array, timeoutMs: number): Promise<Uint8Array>;
}

/**
 * How many members of the committee leaving a joining member must sync its revocations from: t
 * (so one honest member's set is in the union) for the first attempts, then every one it reaches
 * (at least one): a joiner that reaches nobody never serves.
 */
export function joinSyncNeed(fromT: number, sources: number, attempt: number): number {
  return Math.max(1, attempt <= STRICT_JOIN_SYNC_ATTEMPTS ? Math.min(fromT, sources) : 1);
}
const STRICT_JOIN_SYNC_ATTEMPTS = 6;

const FORWARD_TIMEOUT_MS = 3_000;
const MAX_SYNC_PAGES = 2_000;
/**
 * Waits before trying a failed sync-on-connect again (a peer still starting, a moment of load):
 * revocations this node missed while it was down must not wait for the next reconnection.
 */
const SYNC_RETRY_DELAYS_MS = [1_000, 2_000, 4_000, 8_000, 16_000, 32_000];

export class AclService {
  /** The latest sync-on-connect loop started for each member. */
  private readonly syncTurns = new Map<number, number>();
  /** Pending waits before a retry, with what ends each early. */
  private readonly retries = new Map<NodeJS.Timeout, () => void>();
  private stopped = false;

  constructor(
    private readonly store: RevocationStore,
    private readonly transport: AclPeerTransport,
    private readonly log: Logger,
    private readonly metrics: NodeMetrics,
    private readonly syncRetryDelaysMs: readonly number[] = SYNC_RETRY_DELAYS_MS,
  ) {}

  /**
   * syncFrom when a member connects, tried again after each failure (waits growing to half a
   * minute) for as long as the member stays connected. Resolves when it synced or gave up.
   */
  async syncOnConnect(member: number, connected: () => boolean): Promise<void> {
    // One loop per member: a reconnection starts afresh, and the loop it replaces stops.
    const turn = (this.syncTurns.get(member) ?? 0) + 1;
    this.syncTurns.set(member, turn);
    const current = () => !this.stopped && this.syncTurns.get(member) === turn && connected();
    for (let attempt = 0; current(); attempt++) {
      try {
        await this.syncFrom(member);
        return;
      } catch (e) {
        const delay = this.syncRetryDelaysMs[attempt];
        if (!current()) return;
        if (delay === undefined) {
          this.log.warn({ member, attempts: attempt + 1, err: errorText(e) }, 'revocation sync from member failed; next try at its next connection');
          return;
        }
        this.log.debug({ member, attempt: attempt + 1, err: errorText(e) }, 'revocation sync failed; trying again');
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            this.retries.delete(timer);
            resolve();
          }, delay);
          timer.unref();
          this.retries.set(timer, resolve);
        });
      }
    }
  }

  /** Drops pending sync retries (the node is stopping). */
  stop(): void {
    this.stopped = true;
    for (const [timer, endWait] of this.retries) {
      clearTimeout(timer);
      endWait();
    }
    this.retries.clear();
  }

  async answer(fromMember: number | undefined, bytes: Uint8Array): Promise<Uint8Array> {
    try {
      const request = decodeAclRequest(bytes);
      if (request.type === 'sync') {
        const page = this.store.page(request.offset, REVOCATION_PAGE_SIZE);
        return encodeAclReply({ ok: true, type: 'page', ...page });
      }
      const stored = await this.accept(request.item, fromMember);
      return encodeAclReply({ ok: true, type: 'stored', stored });
    } catch (e) {
      const err = isTkmsError(e) ? e : new TkmsError('internal', 'internal error');
      this.metrics.aclMessages.inc({ outcome: err.code });
      return encodeAclReply({ ok: false, code: err.code, message: err.message });
    }
  }

  /** Verifies, stores (durably) and, when new, forwards to every other member. */
  async accept(item: RevocationEnvelope, fromMember: number | undefined): Promise<boolean> {
    const stored = await this.store.add(item);
    this.metrics.aclMessages.inc({ outcome: stored ? 'stored' : 'known' });
    if (stored) {
      this.log.info({ handle: `0x${Buffer.from(item.revocation.handle).toString('hex')}`, revokedAt: item.revocation.revokedAt, from: fromMember ?? 'client' }, 'revocation stored');
      this.forward(item, fromMember);
    }
    return stored;
  }

  private forward(item: RevocationEnvelope, fromMember: number | undefined): void {
    const frame = encodeAclRequest({ type: 'revoke', item });
    for (const member of this.transport.members()) {
      if (member === fromMember) continue;
      this.transport.send(member, frame, FORWARD_TIMEOUT_MS).catch((e: unknown) => {
        // The member pulls it on reconnect (syncFrom), from peers that still hold it individually;
        // if all of them have folded it by then, only the owner's re-send brings it there.
        // The gateway counts acknowledgements, so a revocation short of n − t + 1 shows as 202.
        this.log.debug({ member, err: errorText(e) }, 'revocation forward failed');
      });
    }
  }

  /** Pulls every revocation a member holds and keeps the new ones (run on each connect). */
  syncFrom(member: number): Promise<number> {
    return this.syncWith(member, (frame) => this.transport.send(member, frame, FORWARD_TIMEOUT_MS));
  }

  /**
   * Pulls every revocation each source holds (a joining member, from the committee it joins or
   * leaves, before it serves): the union of what they hold, each checked like any revocation.
   * Resolves once at least `need` sources answered every page; else throws `unavailable`, naming
   * how many did. A source that withholds cannot hide a revocation another one holds.
   */
  async syncUnion(sources: readonly { member: number | string; send: (frame: Uint8Array, timeoutMs: number) => Promise<Uint8Array> }[], need: number): Promise<{ synced: number; added: number }> {
    const outcomes = await Promise.allSettled(sources.map((s) => this.syncWith(s.member, (frame) => s.send(frame, FORWARD_TIMEOUT_MS))));
    const synced = outcomes.filter((o) => o.status === 'fulfilled').length;
    const added = outcomes.reduce((sum, o) => sum + (o.status === 'fulfilled' ? o.value : 0), 0);
    if (synced < need) {
      const failed = outcomes.flatMap((o, i) => (o.status === 'rejected' ? [`${sources[i]!.member}: ${errorText(o.reason)}`] : []));
      throw new TkmsError('unavailable', `revocations synced from ${synced} of ${sources.length} members, need ${need} (${failed.slice(0, 4).join('; ')})`);
    }
    return { synced, added };
  }

  private async syncWith(member: number | string, send: (frame: Uint8Array) => Promise<Uint8Array>): Promise<number> {
    let offset: number | null = 0;
    let added = 0;
    for (let pages = 0; offset !== null && pages < MAX_SYNC_PAGES; pages++) {
      const reply = decodeAclReply(await send(encodeAclRequest({ type: 'sync', offset })));
      if (!reply.ok) throw new TkmsError(reply.code, `member ${member} refused sync: ${reply.message}`);
      if (reply.type !== 'page') throw new TkmsError('bad_request', `member ${member} answered sync with ${reply.type}`);
      // Together, so a page costs one group commit rather than an fsync per revocation.
      const outcomes = await Promise.allSettled(reply.items.map((item) => this.store.add(item)));
      const refused = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected');
      added += outcomes.filter((o) => o.status === 'fulfilled' && o.value).length;
      // One line per page: a page can hold hundreds of refusals (a full store, an owner's quota).
      if (refused.length > 0) this.log.warn({ member, refused: refused.length, err: errorText(refused[0]!.reason) }, 'member sent revocations this node refused during sync');
      if (reply.next !== null && reply.next <= offset) break;
      offset = reply.next;
    }
    if (added > 0) this.log.info({ member, added }, 'revocations pulled from member');
    return added;
  }
}
