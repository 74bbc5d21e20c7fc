// The slice of the WebAssembly JS API the kernels use (the ES lib this project targets has no DOM).
declare namespace WebAssembly {
  class Module {
    constructor(bytes: Uint8Array);
    static imports(m: Module): Array<{ module: string; name: string; kind: string }>;
    static exports(m: Module): Array<{ name: string; kind: string }>;
  }
  class Instance {
    constructor(module: Module, imports: Record<string, unknown>);
    readonly exports: Record<string, unknown>;
  }
  class Memory {
    constructor(descriptor: { initial: number; maximum?: number });
    readonly buffer: ArrayBuffer;
    grow(pages: number): number;
  }
}
