import { decodeHex, isTkmsError, TkmsError } from '../core/index.ts';
import { MAX_SUBMIT_SKEW_SECONDS, type KeyChange } from '../core/keys/key-change.ts';
import { keyVersionsAt, parseMaterialKeyId, type ManagedKey } from '../core/keys/key-model.ts';
import type { DestructionReceipt } from '../core/keys/destruction-receipt.ts';
import { decodeKeyChangeReply, decodeKeyChangeRequest, encodeKeyChangeReply, encodeKeyChangeRequest, KEY_CHANGE_PAGE_BYTES, KEY_CHANGE_PAGE_SIZE, type KeyChangeReply } from '../core/keys/key-wire.ts';
import type { KeyChangeLog } from '../storage/key-change-log.ts';
import type { Logger } from '../runtime/logger.ts';
import { errorText } from '../core/errors.ts';
import type { NodeMetrics } from './metrics.ts';

/**
 * /tkms/key-changes/1 on a node: admin-signed key changes, applied in each key's order, made durable
 * before they are acknowledged, and passed on to every other member (flooding, as revocations:
 * node/acl.ts). A member that is behind on a key (a change arrives whose predecessors it lacks)
 * pulls that key's history from whoever sent it, or from every member, and applies it in order; a
 * member that was away pulls everything it lacks from each member when it starts and then every
 * SYNC_INTERVAL_MS from one member in turn.
 *
 * Nothing a peer or the gateway says is believed: every change is signed by the key's admin and
 * checked (core/keys/key-apply.ts). A change straight from the gateway must also be fresh (its
 * issuedAt within MAX_SUBMIT_SKEW_SECONDS of this node's clock), which bounds how far an admin can
 * backdate the start of a deletion window; changes relayed by members are not (a member that was
 * down for a day still catches up).
 */
export interface KeyChangeTransport {
  members(): number[];
  send(memberId: number, frame: Uint8Array, timeoutMs: number): Promise<Uint8Array>;
}

const FORWARD_TIMEOUT_MS = 3_000;
const SYNC_INTERVAL_MS = 30_000;
const MAX_SYNC_PAGES = 1_000;
const MAX_HISTORY_PAGES = 64;

export interface KeyChangeServiceOptions {
  registry: KeyChangeLog;
  transport: KeyChangeTransport;
  log: Logger;
  metrics: NodeMetrics;
  /** Called after each change is taken (new, not known): what DKG material or erasure it calls for. */
  onApplied?: (key: ManagedKey, change: KeyChange) => void;
  /** How long after a deletion date a change to the key is still taken (a cancel signed before it on its way): node/key-deletion.ts's grace. */
  destroyedGraceSeconds: number;
  /** The destruction receipts this node signed for a key (node/key-deletion.ts). */
  receiptsOf?: (keyId: string) => DestructionReceipt[];
  now?: () => number;
}

export class KeyChangeService {
  private readonly registry: KeyChangeLog;
  private readonly transport: KeyChangeTransport;
  private readonly log: Logger;
  private readonly metrics: NodeMetrics;
  private readonly now: () => number;
  /** Per member: how many of its changes this node has walked (its sync cursor). */
  private readonly cursors = new Map<number, number>();
  private timer: NodeJS.Timeout | undefined;
  private turn = 0;
  /** Members a pull before a DKG is in flight from (pullBeforeDkg). */
  private readonly pullingFrom = new Set<number>();

  constructor(private readonly options: KeyChangeServiceOptions) {
    this.registry = options.registry;
    this.transport = options.transport;
    this.log = options.log;
    this.metrics = options.metrics;
    this.now = options.now ?? Date.now;
  }

  /** One frame on /tkms/key-changes/1; `fromMember` undefined = the gateway (or a client). */
  async answer(fromMember: number | undefined, bytes: Uint8Array): Promise<Uint8Array> {
    let reply: KeyChangeReply;
    try {
      const request = decodeKeyChangeRequest(bytes);
      const book = this.registry.book;
      if (request.type === 'sync') {
        reply = { ok: true, type: 'page', ...boundedPage(book.page(request.after, KEY_CHANGE_PAGE_SIZE), request.after) };
      } else if (request.type === 'receipts') {
        reply = { ok: true, type: 'receipts', receipts: this.options.receiptsOf?.(request.keyId) ?? [] };
      } else if (request.type === 'history') {
        const changes = book.history(request.keyId, request.after, KEY_CHANGE_PAGE_SIZE);
        const page = boundedPage({ changes, next: null }, request.after);
        const key = book.get(request.keyId);
        const end = request.after + page.changes.length;
        reply = { ok: true, type: 'page', changes: page.changes, next: key !== undefined && end < key.sequence ? end : null };
      } else {
        if (fromMember === undefined) this.requireFresh(request.change);
        const { known } = await this.accept(request.change, fromMember);
        const key = book.get(request.change.keyId)!;
        reply = { ok: true, type: 'applied', keyId: key.keyId, sequence: key.sequence, head: hexBytes(key.head), known };
      }
    } catch (e) {
      const err = isTkmsError(e) ? e : new TkmsError('internal', 'internal error');
      if (!isTkmsError(e)) this.log.error({ err: errorText(e) }, 'key change request failed unexpectedly');
      this.metrics.keyChanges.inc({ outcome: err.code });
      reply = { ok: false, code: err.code, message: err.message };
    }
    return encodeKeyChangeReply(reply);
  }

  /**
   * Applies a change, pulling the key's missing history first when it is ahead of this node; a new
   * change is passed on to every other member. Throws the change's refusal.
   */
  async accept(change: KeyChange, fromMember: number | undefined): Promise<{ known: boolean }> {
    let outcome: { known: boolean };
    try {
      outcome = await this.take(change);
    } catch (e) {
      if (!isTkmsError(e, 'key_change_out_of_order')) throw e;
      await this.pullHistory(change.keyId, fromMember);
      outcome = await this.take(change);
    }
    this.metrics.keyChanges.inc({ outcome: outcome.known ? 'known' : 'applied' });
    if (!outcome.known) this.forward(change, fromMember);
    return outcome;
  }

  private async take(change: KeyChange): Promise<{ known: boolean }> {
    this.registry.book.requireNotDestroyedAt(change, Math.floor(this.now() / 1000) - this.options.destroyedGraceSeconds);
    const { known, applied } = await this.registry.submit(change);
    if (applied !== undefined) {
      this.log.info({ keyId: change.keyId, sequence: change.sequence, action: change.action, admin: applied.signer }, 'key change applied');
      this.options.onApplied?.(applied.key, change);
    }
    return { known };
  }

  private requireFresh(change: KeyChange): void {
    const now = Math.floor(this.now() / 1000);
    if (Math.abs(change.issuedAt - now) > MAX_SUBMIT_SKEW_SECONDS) {
      throw new TkmsError('expired', `key change ${change.sequence} of key ${change.keyId} was issued at ${change.issuedAt}, more than ${MAX_SUBMIT_SKEW_SECONDS} s from this node's clock (${now}); sign it again`);
    }
  }

  private forward(change: KeyChange, fromMember: number | undefined): void {
    const frame = encodeKeyChangeRequest({ type: 'change', change });
    for (const member of this.transport.members()) {
      if (member === fromMember) continue;
      this.transport.send(member, frame, FORWARD_TIMEOUT_MS).catch((e: unknown) => {
        // The member pulls it when it next syncs, or when the key's next change reaches it.
        this.log.debug({ member, keyId: change.keyId, err: errorText(e) }, 'key change forward failed');
      });
    }
  }

  /**
   * Before this node joins a member's DKG of a key id no managed key names here: the member may
   * have applied a create (or rotate) this node has not received yet. Its signed changes of that key
   * are pulled from the proposer alone (one round trip) and applied, so the DKG is admitted as the
   * managed key's, never as an unmanaged key whose material would later block the create.
   */
  async pullBeforeDkg(materialId: string, proposer: number): Promise<void> {
    const { keyId, version } = parseMaterialKeyId(materialId);
    const key = this.registry.book.get(keyId);
    if (key !== undefined && keyVersionsAt(key, Math.floor(this.now() / 1000)).length >= version) return;
    // One page, one pull per proposer at a time: a member's proposals cannot hold this node's
    // frame slots for long (a create and a rotate fit a page; more is a normal sync's job).
    if (this.pullingFrom.has(proposer)) return;
    this.pullingFrom.add(proposer);
    try {
      await this.pullFrom(keyId, proposer, 1);
    } catch (e) {
      // An unmanaged key's DKG (an operator's) has no history to pull; the DKG gate decides as before.
      this.log.debug({ member: proposer, keyId, err: errorText(e) }, 'pulling a key\'s history before its DKG failed');
    } finally {
      this.pullingFrom.delete(proposer);
    }
  }

  /** The key's changes this node lacks, from `first` (the sender) and then every other member, applied in order. */
  private async pullHistory(keyId: string, first: number | undefined): Promise<void> {
    const members = this.transport.members();
    const order = first === undefined ? members : [first, ...members.filter((m) => m !== first)];
    for (const member of order) {
      try {
        await this.pullFrom(keyId, member);
        return;
      } catch (e) {
        this.log.debug({ member, keyId, err: errorText(e) }, 'pulling a key\'s history from a member failed');
      }
    }
  }

  /** The key's changes `member` holds after this node's sequence, page by page, applied in order. */
  private async pullFrom(keyId: string, member: number, maxPages = MAX_HISTORY_PAGES): Promise<void> {
    for (let pages = 0; pages < maxPages; pages++) {
      const after = this.registry.book.get(keyId)?.sequence ?? 0;
      const reply = decodeKeyChangeReply(await this.transport.send(member, encodeKeyChangeRequest({ type: 'history', keyId, after }), FORWARD_TIMEOUT_MS));
      if (!reply.ok) throw new TkmsError(reply.code, reply.message);
      if (reply.type !== 'page') throw new TkmsError('bad_request', `member ${member} answered a history request with ${reply.type}`);
      for (const change of reply.changes) await this.take(change);
      if (reply.next === null || reply.changes.length === 0) return;
    }
  }

  /** Every change `member` holds that this node lacks, from where the last sync with it stopped. */
  async syncFrom(member: number): Promise<number> {
    let after = this.cursors.get(member) ?? 0;
    let added = 0;
    for (let pages = 0; pages < MAX_SYNC_PAGES; pages++) {
      const reply = decodeKeyChangeReply(await this.transport.send(member, encodeKeyChangeRequest({ type: 'sync', after }), FORWARD_TIMEOUT_MS));
      if (!reply.ok) throw new TkmsError(reply.code, `member ${member} refused sync: ${reply.message}`);
      if (reply.type !== 'page') throw new TkmsError('bad_request', `member ${member} answered sync with ${reply.type}`);
      for (const change of reply.changes) {
        try {
          if ((await this.take(change)).known === false) added++;
        } catch (e) {
          // Replays of what this node holds are expected (its order differs from the member's); the
          // rest are the member's problem to explain, and must not stop the pages after it.
          if (!isTkmsError(e, 'key_change_replayed')) this.log.warn({ member, keyId: change.keyId, sequence: change.sequence, err: errorText(e) }, 'member sent a key change this node refused during sync');
        }
      }
      after += reply.changes.length;
      if (reply.next === null || reply.next <= after - reply.changes.length) break;
      after = reply.next;
    }
    this.cursors.set(member, after);
    if (added > 0) this.log.info({ member, added }, 'key changes pulled from member');
    return added;
  }

  /** Syncs from every member now, then from one member in turn every SYNC_INTERVAL_MS. */
  start(): void {
    for (const m of this.transport.members()) this.syncFrom(m).catch((e: unknown) => this.log.debug({ member: m, err: errorText(e) }, 'key change sync failed'));
    this.timer = setInterval(() => {
      const members = this.transport.members();
      if (members.length === 0) return;
      const m = members[this.turn++ % members.length]!;
      this.syncFrom(m).catch((e: unknown) => this.log.debug({ member: m, err: errorText(e) }, 'key change sync failed'));
    }, SYNC_INTERVAL_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
  }
}

/** A page cut to KEY_CHANGE_PAGE_BYTES of bodies, so it fits a frame whatever the bodies. */
function boundedPage(page: { changes: KeyChange[]; next: number | null }, after: number): { changes: KeyChange[]; next: number | null } {
  let bytes = 0;
  for (let i = 0; i < page.changes.length; i++) {
    bytes += page.changes[i]!.body.length * 3 + 512;
    if (bytes > KEY_CHANGE_PAGE_BYTES && i > 0) return { changes: page.changes.slice(0, i), next: after + i };
  }
  return page;
}

function hexBytes(hex: string): Uint8Array {
  return decodeHex(hex, { name: 'head', length: 32 });
}

