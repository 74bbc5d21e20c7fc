import { describe, expect, it } from 'vitest';
import { NfuExecutor, MIN_SPLIT_ROWS } from '../../depot/index.js';
import { builtinRegistry, encodeAttrs, normals, parseAttrs } from '../../nfu-kernels/index.js';

describe('NFU executor: a large op split by rows over the workers', () => {
  it.each(['gaussian-sketch-right', 'gaussian-sketch-left', 'sparse-sign-sketch', 'count-sketch', 'gram', 'atb'])(
    '%s agrees with the one-piece run',
    async (name) => {
      const registry = builtinRegistry();
      const kernel = registry.byNameOrThrow(name);
      const rows = MIN_SPLIT_ROWS + 1001;
      const cols = 6;
      const k = 5;
      const A = new Float64Array(rows * cols);
      normals(1, 9, 0, 0, A);
      const B = new Float64Array(rows * k);
      normals(2, 9, 0, 0, B);
      const attrs = parseAttrs(encodeAttrs({ rows, cols, k, seed: 3, rowOffset: 17 }));
      const shared = (x: Float64Array) => {
        const v = new Uint8Array(new SharedArrayBuffer(x.byteLength));
        v.set(new Uint8Array(x.buffer));
        return v;
      };
      const inputs = name === 'atb' ? [shared(A), shared(B)] : [shared(A)];
      const one = new Float64Array(kernel.run(attrs, inputs).slice().buffer);
      const ex = new NfuExecutor({ workers: 2, maxQueue: 8, timeoutMs: 60_000, memoryMb: 512 }, 2);
      try {
        const split = new Float64Array(
          (await ex.run({ opcode: kernel.opcode, attrs: encodeAttrs(attrs), inputs }, kernel, attrs)).slice().buffer,
        );
        expect(split.length).toBe(one.length);
        for (let i = 0; i < one.length; i++) expect(Math.abs(split[i]! - one[i]!)).toBeLessThan(1e-9 * (1 + Math.abs(one[i]!)));
      } finally {
        await ex.close();
      }
    },
  );
});
