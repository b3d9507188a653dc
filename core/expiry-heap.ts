/**
 * Min-heap of expiry times, so a store drops what has expired soonest-first without scanning
 * (node revocations, the gateway's grants and revocations). Entries superseded since they were
 * pushed stay until popped; callers skip them then, and rebuild the heap (`reset`) when they
 * compact, so stale entries never outnumber the records on disk.
 */
export class ExpiryHeap<T extends { at: number }> {
  private items: T[] = [];

  get size(): number {
    return this.items.length;
  }

  peek(): T | undefined {
    return this.items[0];
  }

  push(e: T): void {
    const a = this.items;
    a.push(e);
    let i = a.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (a[parent]!.at <= a[i]!.at) break;
      [a[parent], a[i]] = [a[i]!, a[parent]!];
      i = parent;
    }
  }

  pop(): T | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last !== undefined) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && a[l]!.at < a[m]!.at) m = l;
        if (r < a.length && a[r]!.at < a[m]!.at) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i]!, a[m]!];
        i = m;
      }
    }
    return top;
  }

  reset(entries: Iterable<T>): void {
    this.items = [];
    for (const e of entries) this.push(e);
  }
}
