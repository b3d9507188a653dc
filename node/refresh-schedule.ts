import type { Logger } from 'pino';
import type { Committee } from '../core/committee.ts';
import { errorText } from '../core/errors.ts';

/**
 * The committee's refresh policy (committee file `refreshIntervalSeconds`): once the epoch served
 * is older than the interval, the member with the lowest id among those online proposes a
 * refresh (POST /admin/refresh does the same by hand); the others take it as any refresh frame
 * (node/reshare-approvals.ts checkPeerRefresh, rate-limited). A member that is wrong about who is
 * online at worst proposes a second, identical refresh: the proposal is the same bytes, one ceremony.
 */

/** Whether the epoch committed at `lastCommitMs` is due for a refresh. */
export function refreshDue(committee: Committee, lastCommitMs: number, nowMs: number): boolean {
  const interval = committee.refreshIntervalSeconds;
  return interval !== undefined && nowMs - lastCommitMs >= interval * 1000;
}

/** The lowest id among this member and the members it is connected to proposes. */
export function leadsRefresh(selfId: number, connected: readonly number[]): boolean {
  return connected.every((id) => id > selfId);
}

export interface RefreshScheduleOptions {
  served: () => Committee;
  /** This node's id in the served committee (undefined once it left it). */
  selfId: () => number | undefined;
  connected: () => number[];
  lastCommitAt: () => number;
  busy: () => boolean;
  /** Has keys to refresh (a committee holding none has nothing to move). */
  holdsKeys: () => boolean;
  startRefresh: () => Promise<unknown>;
  log: Logger;
  now?: () => number;
}

export class RefreshSchedule {
  private timer: NodeJS.Timeout | undefined;
  private readonly now: () => number;

  constructor(private readonly o: RefreshScheduleOptions) {
    this.now = o.now ?? Date.now;
  }

  start(): void {
    const interval = this.o.served().refreshIntervalSeconds;
    if (interval === undefined) return;
    // A tenth of the interval, at most a minute: a due refresh starts soon after it is due.
    this.timer = setInterval(() => void this.check(), Math.min(60_000, (interval * 1000) / 10));
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One look at the schedule: starts a refresh when due and this node leads. */
  async check(): Promise<boolean> {
    const self = this.o.selfId();
    if (self === undefined || this.o.busy() || !this.o.holdsKeys()) return false;
    if (!refreshDue(this.o.served(), this.o.lastCommitAt(), this.now()) || !leadsRefresh(self, this.o.connected())) return false;
    try {
      await this.o.startRefresh();
      this.o.log.info({ epoch: this.o.served().epoch }, 'scheduled refresh started');
      return true;
    } catch (e) {
      this.o.log.warn({ err: errorText(e) }, 'scheduled refresh could not start');
      return false;
    }
  }
}
