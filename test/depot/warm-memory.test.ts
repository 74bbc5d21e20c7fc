import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { defaultResource } from '../../depot/options.js';
import { MemoryResource } from '../../depot/resources/resource.js';
import { SEGMENT_BYTES, segmentPool } from '../../depot/resources/memory-data.js';
import { loadNativeKernels } from '../../depot/nfu/native-loader.js';
import { HEAP_TOP_PAD_BYTES, HEAP_TRIM_BYTES, keepHeapWarm } from '../../depot/server/heap-tuning.js';

const MiB = 1024 * 1024;

/** Gives `n` segments to the pool, as deleted allocations do (shared memory never touched: cheap). */
function giveSegments(n: number): void {
  for (let i = 0; i < n; i++) segmentPool.give(Buffer.from(new SharedArrayBuffer(SEGMENT_BYTES)));
}

describe('warm segments up to the memory resources’ capacity', () => {
  beforeEach(() => segmentPool.clear());
  afterEach(() => segmentPool.clear());

  it('keeps 256 MiB of idle segments with no memory resource, and the capacity of those served', () => {
    expect(segmentPool.maxIdleBytes).toBe(256 * MiB);
    giveSegments(160); // 320 MiB
    expect(segmentPool.idleBytes).toBe(256 * MiB);
    segmentPool.clear();
    const unreserve = segmentPool.reserve(400 * MiB);
    try {
      expect(segmentPool.maxIdleBytes).toBe(400 * MiB);
      giveSegments(250); // 500 MiB offered
      expect(segmentPool.idleBytes).toBe(400 * MiB);
    } finally {
      unreserve();
    }
    // The resource is gone: what it kept past the default goes back.
    expect(segmentPool.maxIdleBytes).toBe(256 * MiB);
    expect(segmentPool.idleBytes).toBe(256 * MiB);
    unreserve(); // a second call changes nothing
    expect(segmentPool.maxIdleBytes).toBe(256 * MiB);
  });

  it('a memory resource reserves its capacity until it closes', () => {
    const options = { ...defaultResource(), capacityBytes: 1024 * MiB };
    const a = new MemoryResource(options);
    const b = new MemoryResource({ ...options, rid: '2' });
    expect(segmentPool.maxIdleBytes).toBe(2048 * MiB);
    a.close();
    expect(segmentPool.maxIdleBytes).toBe(1024 * MiB);
    b.close();
    expect(segmentPool.maxIdleBytes).toBe(256 * MiB);
  });
});

describe('the depot keeps its C heap warm', () => {
  const { native } = loadNativeKernels();
  const addon = native as unknown as { keepHeap?: (trim: number, pad: number) => boolean } | undefined;

  it.runIf(addon !== undefined && process.platform === 'linux')('through the native addon', () => {
    expect(typeof addon!.keepHeap).toBe('function');
    expect(addon!.keepHeap!(HEAP_TRIM_BYTES, HEAP_TOP_PAD_BYTES)).toBe(true);
    expect(() => addon!.keepHeap!(-1, 0)).toThrow(RangeError);
    expect(() => addon!.keepHeap!(2 ** 40, 0)).toThrow(RangeError);
    expect(keepHeapWarm()).toEqual({ heapKept: true });
  });

  it.runIf(addon === undefined)('says why not without the native addon', () => {
    const got = keepHeapWarm();
    expect(got.heapKept).toBe(false);
    expect(got.heapWhy).toMatch(/native addon/);
  });

  const built = new URL('../../dist/depot/server/heap-tuning.js', import.meta.url);
  it.runIf(existsSync(built))('falls back to the default heap with the addon turned off (ANVIL_NATIVE=0)', () => {
    const script = `import(${JSON.stringify(built.href)}).then((m) => process.stdout.write(JSON.stringify(m.keepHeapWarm())))`;
    const r = spawnSync(process.execPath, ['-e', script], {
      env: { ...process.env, ANVIL_NATIVE: '0' },
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ heapKept: false, heapWhy: 'native addon: disabled by ANVIL_NATIVE=0' });
  });
});
