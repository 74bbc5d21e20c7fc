/**
 * Min-heap of (deadline, id) pairs: one coarse sweep serves every lease instead of a timer
 * each. Entries are never removed early; a popped entry whose lease was extended or deleted
 * is simply ignored by the caller (lazy deletion).
 */
export class ExpiryHeap {
  private readonly at: number[] = [];
  private readonly ids: number[] = [];

  get size(): number {
    return this.at.length;
  }

  push(deadlineMs: number, id: number): void {
    this.at.push(deadlineMs);
    this.ids.push(id);
    let i = this.at.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (this.at[parent]! <= this.at[i]!) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  /** Removes and returns every `[deadline, id]` entry due at or before `nowMs`. */
  popDue(nowMs: number): Array<[number, number]> {
    const due: Array<[number, number]> = [];
    while (this.at.length > 0 && this.at[0]! <= nowMs) {
      due.push([this.at[0]!, this.ids[0]!]);
      this.popRoot();
    }
    return due;
  }

  private popRoot(): void {
    const last = this.at.length - 1;
    this.swap(0, last);
    this.at.pop();
    this.ids.pop();
    let i = 0;
    const n = this.at.length;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < n && this.at[l]! < this.at[m]!) m = l;
      if (r < n && this.at[r]! < this.at[m]!) m = r;
      if (m === i) return;
      this.swap(i, m);
      i = m;
    }
  }

  private swap(a: number, b: number): void {
    const t = this.at[a]!;
    this.at[a] = this.at[b]!;
    this.at[b] = t;
    const u = this.ids[a]!;
    this.ids[a] = this.ids[b]!;
    this.ids[b] = u;
  }
}
