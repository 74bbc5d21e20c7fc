/**
 * Reused shared-memory buffers for NFU inputs and outputs. A fresh large buffer costs a page fault
 * per 4 KiB on first touch (≈ 35 ms for 12.8 MB on the VMs we measured, more than the op itself), so
 * the executor hands kernels buffers whose pages were touched by an earlier op. Buffers come in
 * power-of-two size classes; at most `maxIdleBytes` wait idle, the rest are left to the GC.
 */
export class SharedBufferPool {
  private readonly idle = new Map<number, SharedArrayBuffer[]>();
  private idleBytes = 0;

  constructor(private readonly maxIdleBytes: number) {}

  /** The size class holding `bytes`: a power of two, at least 64 KiB. */
  static sizeClass(bytes: number): number {
    return bytes <= 65536 ? 65536 : 2 ** Math.ceil(Math.log2(bytes));
  }

  /** A view of exactly `bytes` at the start of a pooled buffer; its contents are not cleared. */
  take(bytes: number): Uint8Array {
    const cls = SharedBufferPool.sizeClass(bytes);
    const list = this.idle.get(cls);
    const reused = list?.pop();
    if (reused !== undefined) {
      this.idleBytes -= cls;
      return new Uint8Array(reused, 0, bytes);
    }
    return new Uint8Array(new SharedArrayBuffer(cls), 0, bytes);
  }

  /** Gives back the buffer under a view from {@link take}; nothing may use it afterwards. */
  give(view: Uint8Array): void {
    const sab = view.buffer;
    if (!(sab instanceof SharedArrayBuffer) || sab.byteLength !== SharedBufferPool.sizeClass(sab.byteLength)) return;
    if (this.idleBytes + sab.byteLength > this.maxIdleBytes) return;
    const list = this.idle.get(sab.byteLength) ?? [];
    if (list.includes(sab)) return; // given twice: keep one entry
    list.push(sab);
    this.idle.set(sab.byteLength, list);
    this.idleBytes += sab.byteLength;
  }

  /** Bytes held idle. */
  get idleSize(): number {
    return this.idleBytes;
  }
}
