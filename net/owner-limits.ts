/**
 * Bounds on what one account can make a process hold (node revocations, the gateway's grants and
 * revocations): `perOwner` live entries per owner, `max` in all. The config shape
 * `{ "perOwner": n, "max": m }` is read here for every such field.
 */
export interface OwnerLimits {
  perOwner: number;
  max: number;
}

const LIMIT_MAX = 10_000_000;

/** `raw[field]` as OwnerLimits over `defaults`; mistakes go to `problems`. */
export function readOwnerLimits(raw: Record<string, unknown>, field: string, defaults: OwnerLimits, problems: string[]): OwnerLimits {
  const limits = { perOwner: defaults.perOwner, max: defaults.max };
  const v = raw[field];
  if (v === undefined) return limits;
  const ok = (x: unknown): x is number => typeof x === 'number' && Number.isInteger(x) && x >= 1 && x <= LIMIT_MAX;
  const obj = typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  if (obj === undefined || Object.keys(obj).some((k) => k !== 'perOwner' && k !== 'max') || (obj.perOwner !== undefined && !ok(obj.perOwner)) || (obj.max !== undefined && !ok(obj.max))) {
    problems.push(`${field} must be { "perOwner": 1..${LIMIT_MAX}, "max": 1..${LIMIT_MAX} }`);
    return limits;
  }
  if (obj.perOwner !== undefined) limits.perOwner = obj.perOwner as number;
  if (obj.max !== undefined) limits.max = obj.max as number;
  if (limits.perOwner > limits.max) problems.push(`${field}.perOwner must not exceed ${field}.max`);
  return limits;
}

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
