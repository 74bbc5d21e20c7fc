import { join } from 'node:path';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { WarmPool } from '../../depot/resources/disk/warm-pool.js';
import { tempDir } from '../helpers/temp-dir.js';

const MiB = 1024 * 1024;

describe('closing a warm pool while it warms', () => {
  it('logs no failure: stopping the warming thread on close is not a warming failure', async () => {
    const d = tempDir();
    const warnings: string[] = [];
    const log = pino(
      { level: 'warn' },
      {
        write: (line: string) => {
          warnings.push(line);
        },
      },
    );
    const pool = await WarmPool.open(d.path, 256 * MiB, log);
    try {
      expect(await pool.take(join(d.path, 'x'), 200 * MiB)).toBe(false);
      // Wait (bounded) until the warming thread is at work.
      for (let i = 0; i < 200 && (pool as unknown as { pending?: unknown }).pending === undefined; i++) {
        await new Promise((r) => setTimeout(r, 5));
      }
      expect((pool as unknown as { pending?: unknown }).pending).toBeDefined();
      await pool.close();
      await new Promise((r) => setTimeout(r, 50));
      expect(warnings).toEqual([]);
    } finally {
      await pool.close();
      d.cleanup();
    }
  });
});
