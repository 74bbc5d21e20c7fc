import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli as run } from '../helpers/run-cli.js';
import { tempDir } from '../helpers/temp-dir.js';

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
