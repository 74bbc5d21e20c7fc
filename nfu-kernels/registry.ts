import { KernelError, KernelErrorCode } from './errors.js';
import type { KernelConfig } from './kernel.js';

/** Kernels by opcode and by name; registering either twice throws. */
export class KernelRegistry {
  private readonly byOpcode = new Map<number, KernelConfig>();
  private readonly byName = new Map<string, KernelConfig>();

  register(k: KernelConfig): void {
    if (!Number.isInteger(k.opcode) || k.opcode < 1 || k.opcode > 2 ** 31 - 1) {
      throw new KernelError(
        KernelErrorCode.BAD_PARAMETERS,
        `kernel ${k.name}: opcode must be a positive integer (got ${k.opcode})`,
      );
    }
    const clash = this.byOpcode.get(k.opcode) ?? this.byName.get(k.name);
    if (clash !== undefined) {
      throw new KernelError(
        KernelErrorCode.DUPLICATE,
        `kernel ${k.name} (opcode ${k.opcode}) clashes with ${clash.name} (opcode ${clash.opcode})`,
      );
    }
    this.byOpcode.set(k.opcode, k);
    this.byName.set(k.name, k);
  }

  byOpcodeOrThrow(opcode: number): KernelConfig {
    const k = this.byOpcode.get(opcode);
    if (k === undefined) throw new KernelError(KernelErrorCode.UNIMPLEMENTED, `no kernel with opcode ${opcode}`);
    return k;
  }

  byNameOrThrow(name: string): KernelConfig {
    const k = this.byName.get(name);
    if (k === undefined) throw new KernelError(KernelErrorCode.UNIMPLEMENTED, `no kernel named ${JSON.stringify(name)}`);
    return k;
  }

  get(opcode: number): KernelConfig | undefined {
    return this.byOpcode.get(opcode);
  }

  list(): KernelConfig[] {
    return [...this.byOpcode.values()].sort((a, b) => a.opcode - b.opcode);
  }
}
