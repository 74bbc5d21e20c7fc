import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { main } from '../../cli/main.js';
import { tempDir } from '../helpers/temp-dir.js';

/** `anvil ARGS` in this process, stdout and stderr captured. */
async function run(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const o = vi.spyOn(process.stdout, 'write').mockImplementation((c: string | Uint8Array) => ((out += c.toString()), true));
  const e = vi.spyOn(process.stderr, 'write').mockImplementation((c: string | Uint8Array) => ((err += c.toString()), true));
  try {
    const code = await main(['node', 'anvil', ...args]);
    return { code, out, err };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

describe('anvil reliability --file', () => {
  it('a named file that does not exist is an error (exit 2), not an empty history', async () => {
    const dir = tempDir('anvil-cli-reliability-');
    try {
      const missing = join(dir.path, 'nonexist.json');
      for (const extra of [[], ['--json']]) {
        const r = await run('reliability', '--file', missing, ...extra);
        expect(r.code).toBe(2);
        expect(r.out).toBe('');
        expect(r.err).toBe(
          `anvil: FW_ERR_INVALID_ARGUMENT: --file ${missing}: no such file (leave out --file for the default history, ` +
            'which starts empty)\n',
        );
      }
    } finally {
      dir.cleanup();
    }
  });
});
