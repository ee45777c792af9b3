/**
 * Remembers when each partition next needs a look (a backoff, hold or lease ending) and runs
 * one timer for the earliest of them. A partition keeps only its earliest wake-up.
 */
export class WakeSchedule {
  private readonly due = new Map<string, number>();
  private heap: Array<{ at: number; key: string }> = [];
  private timer: NodeJS.Timeout | undefined;
  private timerAt = Number.POSITIVE_INFINITY;

  private readonly onDue: (key: string) => void;

  constructor(onDue: (key: string) => void) {
    this.onDue = onDue;
  }

  at(key: string, when: number): void {
    const current = this.due.get(key);
    if (current !== undefined && current <= when) return;
    this.due.set(key, when);
    this.push({ at: when, key });
    this.arm();
  }

  clear(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    this.heap = [];
    this.due.clear();
  }

  private arm(): void {
    const top = this.heap[0];
    if (!top || top.at >= this.timerAt) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = top.at;
    this.timer = setTimeout(() => this.fire(), Math.max(0, top.at - Date.now()));
    this.timer.unref();
  }

  private fire(): void {
    this.timer = undefined;
    this.timerAt = Number.POSITIVE_INFINITY;
    const now = Date.now();
    while (this.heap.length > 0 && this.heap[0]!.at <= now) {
      const { at, key } = this.pop()!;
      if (this.due.get(key) !== at) continue; // superseded by an earlier wake-up
      this.due.delete(key);
      this.onDue(key);
    }
    this.arm();
  }

  private push(item: { at: number; key: string }): void {
    const h = this.heap;
    h.push(item);
    let i = h.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (h[parent]!.at <= h[i]!.at) break;
      [h[parent], h[i]] = [h[i]!, h[parent]!];
      i = parent;
    }
  }

  private pop(): { at: number; key: string } | undefined {
    const h = this.heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && h[l]!.at < h[m]!.at) m = l;
        if (r < h.length && h[r]!.at < h[m]!.at) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i]!, h[m]!];
        i = m;
      }
    }
    return top;
  }
}
