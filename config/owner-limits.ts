import { Type } from 'typebox';
import { field, FieldProblem } from './config-schema.ts';

/**
 * Bounds on what one account can make a process hold (node revocations, the gateway's grants and
 * revocations): `perOwner` live entries per owner, `max` in all. The config shape
 * `{ "perOwner": n, "max": m }` is declared here for every such field.
 */
export interface OwnerLimits {
  perOwner: number;
  max: number;
}

const LIMIT_MAX = 10_000_000;

/** A `{ "perOwner": n, "max": m }` config field over `defaults`, perOwner at most max; `what` names the entries. */
export const ownerLimitsField = (defaults: OwnerLimits, what: string) =>
  Type.Decode(
    field.group(
      {
        perOwner: field.integer(1, LIMIT_MAX, defaults.perOwner, { description: `${what} for one owner` }),
        max: field.integer(1, LIMIT_MAX, defaults.max, { description: `${what} in all` }),
      },
      { description: `${what}, per owner and in all`, reportWhole: true },
    ),
    (limits): OwnerLimits => {
      if (limits.perOwner > limits.max) throw new FieldProblem('{path}.perOwner must not exceed {path}.max');
      return limits;
    },
  );

/**
 * Live keys per owner, and owners by how many they hold, so "who holds the most" is one lookup.
 * Callers count writes in flight too, so concurrent adds cannot overshoot a limit.
 */
export class OwnerCounts {
  readonly keys = new Map<string, Set<string>>();
  private readonly byCount = new Map<number, Set<string>>();
  private maxCount = 0;
  total = 0;

  count(owner: string): number {
    return this.keys.get(owner)?.size ?? 0;
  }

  /** An owner holding the most live entries, and how many. */
  largest(): { owner: string; count: number } | undefined {
    const owners = this.byCount.get(this.maxCount);
    const owner = owners?.values().next().value;
    return owner === undefined ? undefined : { owner, count: this.maxCount };
  }

  add(owner: string, key: string): void {
    let set = this.keys.get(owner);
    if (set === undefined) this.keys.set(owner, (set = new Set()));
    if (set.has(key)) return;
    this.move(owner, set.size, set.size + 1);
    set.add(key);
    this.total++;
  }

  remove(owner: string, key: string): void {
    const set = this.keys.get(owner);
    if (set === undefined || !set.delete(key)) return;
    this.move(owner, set.size + 1, set.size);
    if (set.size === 0) this.keys.delete(owner);
    this.total--;
  }

  private move(owner: string, from: number, to: number): void {
    if (from > 0) {
      const bucket = this.byCount.get(from)!;
      bucket.delete(owner);
      if (bucket.size === 0) this.byCount.delete(from);
    }
    if (to > 0) {
      let bucket = this.byCount.get(to);
      if (bucket === undefined) this.byCount.set(to, (bucket = new Set()));
      bucket.add(owner);
    }
    // Counts move by one, so the largest moves by at most one.
    if (to > this.maxCount) this.maxCount = to;
    else if (from === this.maxCount && !this.byCount.has(from)) this.maxCount = to;
  }
}
