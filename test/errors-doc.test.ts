import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { DepotErrorCode } from '../depot/index.js';
import { ClientErrorCode, DatasetErrorCode, FrameworkErrorCode, LiveErrorCode } from '../framework/index.js';
import { CoordinatorErrorCode } from '../framework/estimation/index.js';
import { IbpProtocolErrorCode } from '../ibp/index.js';
import { KernelErrorCode } from '../nfu-kernels/index.js';

const doc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8');
const documented = new Set([...doc.matchAll(/^\| `([A-Z_*]+)` \|/gm)].map((m) => m[1]!));

describe('docs/errors.md', () => {
  const codes = [
    ...Object.values(DatasetErrorCode),
    ...Object.values(DepotErrorCode),
    ...Object.values(IbpProtocolErrorCode),
    ...Object.values(KernelErrorCode),
    ...Object.values(ClientErrorCode),
    ...Object.values(FrameworkErrorCode),
    ...Object.values(LiveErrorCode),
    ...Object.values(CoordinatorErrorCode),
  ];
  it.each(codes)('documents %s', (code) => {
    expect(documented.has(code)).toBe(true);
  });
  it('documents no code that does not exist', () => {
    expect([...documented].filter((c) => !codes.includes(c as never))).toEqual([]);
  });
});
