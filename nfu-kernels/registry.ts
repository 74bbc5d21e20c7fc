import { KernelError, KernelErrorCode } from './errors.js';
import type { KernelConfig } from './kernel.js';

/** A built-in op: a kernel of this package. */
export interface BuiltinOp {
  readonly kind: 'builtin';
  readonly opcode: number;
  readonly name: string;
  readonly kernel: KernelConfig;
}

/** An op uploaded at run time as a WebAssembly module (the depot's admin upload, ABI 1). */
export interface UploadedOp {
  readonly kind: 'uploaded';
  readonly opcode: number;
  readonly name: string;
  /** Identifies this upload (a module compiled once per worker under this key). */
  readonly key: string;
  readonly bytes: Uint8Array;
}

/** Any op a registry serves: look it up by opcode, then switch on `kind`. */
export type RegisteredOp = BuiltinOp | UploadedOp;

/** Ops by opcode and by name, built-in and uploaded alike; registering either twice throws. */
export class KernelRegistry {
  private readonly byOpcode = new Map<number, RegisteredOp>();
  private readonly byName = new Map<string, RegisteredOp>();

  /** Registers a built-in kernel. */
  register(k: KernelConfig): void {
    this.add({ kind: 'builtin', opcode: k.opcode, name: k.name, kernel: k });
  }

  /** Registers an uploaded op. */
  registerUploaded(op: Omit<UploadedOp, 'kind'>): UploadedOp {
    const entry: UploadedOp = { kind: 'uploaded', ...op };
    this.add(entry);
    return entry;
  }

  private add(op: RegisteredOp): void {
    if (!Number.isInteger(op.opcode) || op.opcode < 1 || op.opcode > 2 ** 31 - 1) {
      throw new KernelError(
        KernelErrorCode.BAD_PARAMETERS,
        `kernel ${op.name}: opcode must be a positive integer (got ${op.opcode})`,
      );
    }
    const clash = this.byOpcode.get(op.opcode) ?? this.byName.get(op.name);
    if (clash !== undefined) {
      throw new KernelError(
        KernelErrorCode.DUPLICATE,
        `kernel ${op.name} (opcode ${op.opcode}) clashes with ${clash.name} (opcode ${clash.opcode})`,
      );
    }
    this.byOpcode.set(op.opcode, op);
    this.byName.set(op.name, op);
  }

  /** The op with this opcode, built-in or uploaded. */
  op(opcode: number): RegisteredOp | undefined {
    return this.byOpcode.get(opcode);
  }

  /** The built-in kernel with this opcode; NFU_ERR_UNIMPLEMENTED otherwise. */
  byOpcodeOrThrow(opcode: number): KernelConfig {
    const k = this.byOpcode.get(opcode);
    if (k?.kind !== 'builtin') throw new KernelError(KernelErrorCode.UNIMPLEMENTED, `no kernel with opcode ${opcode}`);
    return k.kernel;
  }

  /** The built-in kernel with this name; NFU_ERR_UNIMPLEMENTED otherwise. */
  byNameOrThrow(name: string): KernelConfig {
    const k = this.byName.get(name);
    if (k?.kind !== 'builtin') throw new KernelError(KernelErrorCode.UNIMPLEMENTED, `no kernel named ${JSON.stringify(name)}`);
    return k.kernel;
  }

  /** The built-in kernel with this opcode, or undefined. */
  get(opcode: number): KernelConfig | undefined {
    const k = this.byOpcode.get(opcode);
    return k?.kind === 'builtin' ? k.kernel : undefined;
  }

  /** The built-in kernels, by opcode. */
  list(): KernelConfig[] {
    return this.ops()
      .filter((o): o is BuiltinOp => o.kind === 'builtin')
      .map((o) => o.kernel);
  }

  /** Every op, by opcode. */
  ops(): RegisteredOp[] {
    return [...this.byOpcode.values()].sort((a, b) => a.opcode - b.opcode);
  }
}
