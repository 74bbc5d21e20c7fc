import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WASM_BACKEND, builtins, parseAttrs, encodeAttrs } from '../../nfu-kernels/index.js';
import { kernelBackendFor } from '../../depot/index.js';
import { runKernel, type KernelCall } from '../../framework/index.js';
import { startDepot, type TestDepot } from '../helpers/depot-fixture.js';
import { tempDir } from '../helpers/temp-dir.js';
import { kernelCases } from './nfu-kernel-suite.js';

const registry = builtins();
/** The in-process result, on the native kernels when they are loaded, or on WebAssembly. */
const local = (c: ReturnType<typeof kernelCases>[number], native = true) =>
  Buffer.from(
    registry.byNameOrThrow(c.kernel).run(c.attrs === undefined ? undefined : parseAttrs(encodeAttrs(c.attrs)), c.inputs, {
      backend: native ? kernelBackendFor(true).backend : WASM_BACKEND,
    }),
  );
/** A case's call, its attributes as the catalogue types them for its op. */
const callOf = (c: ReturnType<typeof kernelCases>[number], rest: Omit<KernelCall, 'attrs'>) =>
  ({ ...(c.attrs ? { attrs: c.attrs } : {}), ...rest }) as KernelCall;

const backends = [
  { name: 'memory depot, worker pool', input: { nfu: { workers: 2 } } },
  { name: 'memory depot, inline', input: { nfu: { workers: 0 } } },
  { name: 'disk depot, worker pool', input: { nfu: { workers: 1 } }, disk: true },
  { name: 'memory depot, WebAssembly kernels (nfu.native = false)', input: { nfu: { workers: 2, native: false } }, wasm: true },
  { name: 'memory depot, inline, WebAssembly kernels', input: { nfu: { workers: 0, native: false } }, wasm: true },
];

describe.each(backends)('NFU compliance: $name gives the in-process results byte for byte', (backend) => {
  let t: TestDepot;
  const dir = tempDir('anvil-nfu-');
  beforeAll(async () => {
    t = await startDepot({
      ...backend.input,
      resource: [
        backend.disk === true ? { rid: '1', path: dir.path, capacityBytes: '64MiB' } : { rid: '1', capacityBytes: '64MiB' },
      ],
    });
  });
  afterAll(async () => {
    await t.close();
    dir.cleanup();
  });

  it.each(kernelCases().map((c) => [c.name, c] as const))('%s: value out and into an allocation', async (_n, c) => {
    const want = local(c, backend.wasm !== true);
    const inputs = [];
    for (const bytes of c.inputs) {
      const caps = await t.client.allocate(t, { size: bytes.length, durationSec: 600 });
      await t.client.store(caps.write, bytes);
      inputs.push(caps.read);
    }
    const back = await runKernel(t.client, t, c.kernel, callOf(c, { inputs, output: { returnBytes: want.length } }));
    expect(Buffer.from(back!).equals(want)).toBe(true);
    // into an allocation, at an offset
    const out = await t.client.allocate(t, { size: want.length + 100, durationSec: 600 });
    expect(
      await runKernel(t.client, t, c.kernel, callOf(c, { inputs, output: { cap: out.write, offset: 100 } })),
    ).toBeUndefined();
    expect((await t.client.load(out.read, 100, want.length)).equals(want)).toBe(true);
    expect((await t.client.load(out.read, 0, 100)).every((x) => x === 0)).toBe(true);
  });

  it('a row block split over two depot calls sums to the whole sketch (additive sketches)', async () => {
    const c = kernelCases().find((k) => k.kernel === 'gaussian-sketch-left' && k.attrs?.dtype === 'float64')!;
    const a = c.attrs!;
    const bytes = c.inputs[0]!;
    const caps = await t.client.allocate(t, { size: bytes.length, durationSec: 600 });
    await t.client.store(caps.write, bytes);
    const split = 100 * a.cols * 8;
    const f64 = (bytes: Uint8Array) => new Float64Array(new Uint8Array(bytes).buffer); // a copy of its own
    const part = async (offset: number, length: number, rows: number, rowOffset: number) =>
      f64(
        (await runKernel(t.client, t, 'gaussian-sketch-left', {
          attrs: { ...a, k: a.k!, rows, rowOffset },
          inputs: [{ cap: caps.read, offset, length }],
          output: { returnBytes: 6 * a.cols * 8 },
        }))!,
      );
    const top = await part(0, split, 100, a.rowOffset!);
    const bottom = await part(split, bytes.length - split, a.rows - 100, a.rowOffset! + 100);
    const whole = f64(local(c));
    for (let i = 0; i < whole.length; i++) expect(top[i]! + bottom[i]!).toBeCloseTo(whole[i]!, 10);
  });
});
