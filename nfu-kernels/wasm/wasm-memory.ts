const PAGE = 65536;
const modules = new Map<string, WebAssembly.Module>();

function decode(b64: string): Uint8Array {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/**
 * An instance of one of the kernels' WASM modules (compiled once per thread) with its own linear
 * memory used as a workspace, and typed views that follow the memory when it grows.
 */
export class WasmWorkspace {
  readonly exports: Record<string, unknown>;
  private readonly memory: WebAssembly.Memory;
  f64: Float64Array;
  f32: Float32Array;
  i32: Int32Array;

  constructor(base64: string) {
    let mod = modules.get(base64);
    if (mod === undefined) {
      mod = new WebAssembly.Module(decode(base64));
      modules.set(base64, mod);
    }
    this.exports = new WebAssembly.Instance(mod, {}).exports;
    this.memory = this.exports['memory'] as WebAssembly.Memory;
    this.f64 = new Float64Array(this.memory.buffer);
    this.f32 = new Float32Array(this.memory.buffer);
    this.i32 = new Int32Array(this.memory.buffer);
  }

  /** Makes room for `bytes` bytes; the views are renewed after growth. */
  reserveBytes(bytes: number): void {
    if (bytes > this.memory.buffer.byteLength) {
      this.memory.grow(Math.ceil((bytes - this.memory.buffer.byteLength) / PAGE));
      this.f64 = new Float64Array(this.memory.buffer);
      this.f32 = new Float32Array(this.memory.buffer);
      this.i32 = new Int32Array(this.memory.buffer);
    }
  }
}
