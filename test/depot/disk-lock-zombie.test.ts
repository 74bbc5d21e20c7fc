import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startDepot } from '../helpers/depot-fixture.js';
import { tempDir } from '../helpers/temp-dir.js';

/**
 * Starts a process that leaves a child unreaped (a zombie) for a few seconds; resolves to the zombie's pid.
 * The parent is python3 because it installs no SIGCHLD handler and never waits: a shell reaps its background
 * jobs asynchronously, so with `sh` the child was sometimes gone before the test looked at it.
 */
async function zombie(): Promise<{ pid: number; stop: () => void }> {
  const code = 'import os,sys,time\npid=os.fork()\nif pid==0:\n  os._exit(0)\nprint(pid,flush=True)\ntime.sleep(5)\n';
  const parent = spawn('python3', ['-c', code], { stdio: ['ignore', 'pipe', 'ignore'] });
  const pid = await new Promise<number>((resolve, reject) => {
    parent.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    parent.once('error', reject);
  });
  // Bounded wait until the child has exited (state Z); its parent never reaps it, so the entry stays.
  let state = '';
  for (let i = 0; i < 200 && state !== 'Z'; i++) {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state !== 'Z') await new Promise((r) => setTimeout(r, 10));
  }
  expect(state).toBe('Z');
  return { pid, stop: () => parent.kill('SIGKILL') };
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
