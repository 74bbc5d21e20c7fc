import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'vitest';
import { startDepot } from '../helpers/depot-fixture.js';
import { tempDir } from '../helpers/temp-dir.js';

/** Starts a process that leaves a child unreaped (a zombie) for a few seconds; resolves to the zombie's pid. */
async function zombie(): Promise<{ pid: number; stop: () => void }> {
  const sh = spawn('sh', ['-c', 'true & echo $!; exec sleep 5'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const pid = await new Promise<number>((resolve, reject) => {
    sh.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    sh.once('error', reject);
  });
  // Bounded wait until the child has exited (state Z).
  for (let i = 0; i < 100; i++) {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  return { pid, stop: () => sh.kill('SIGKILL') };
}

describe('a disk resource whose lock names a process killed but not yet reaped', () => {
  it.runIf(process.platform === 'linux')('is taken over: a zombie holds nothing', async () => {
    const d = tempDir();
    const z = await zombie();
    try {
      mkdirSync(join(d.path, 'data'), { recursive: true });
      writeFileSync(join(d.path, 'lock'), `${z.pid}\n`);
      const t = await startDepot({ resource: [{ rid: '1', path: d.path }] });
      await t.close();
    } finally {
      z.stop();
      d.cleanup();
    }
  });
});
