import { spawn } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { IbpClient } from '../../framework/index.js';
import { startLoopbackDepots, type LoopbackDepots } from '../../framework/dataset/index.js';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitDead(pid: number): Promise<boolean> {
  for (let i = 0; i < 200 && alive(pid); i++) await sleep(25);
  return !alive(pid);
}

describe('startLoopbackDepots', () => {
  let loop: LoopbackDepots | undefined;
  const client = new IbpClient({ timeoutMs: 2_000 });
  afterEach(async () => {
    await loop?.stop();
    loop = undefined;
  });

  it('starts depots on 127.0.0.1 with distinct free ports that answer, and stop() ends them', async () => {
    loop = await startLoopbackDepots(3);
    expect(loop.depots).toHaveLength(3);
    expect(new Set(loop.depots.map((d) => d.port)).size).toBe(3);
    for (const d of loop.depots) {
      expect(d.host).toBe('127.0.0.1');
      const caps = await client.allocate(d, { size: 16, durationSec: 60 });
      await client.store(caps.write, Buffer.from('0123456789abcdef'));
      expect((await client.load(caps.read, 0, 16)).toString()).toBe('0123456789abcdef');
    }
    const pids = [0, 1, 2].map((i) => loop!.pid(i));
    await loop.stop();
    for (const p of pids) expect(await waitDead(p)).toBe(true);
  });

  it('kills, pauses, resumes and restarts one depot on the same port; disk data survives a restart', async () => {
    loop = await startLoopbackDepots(2, { resource: 'disk' });
    const d0 = loop.depots[0]!;
    const caps = await client.allocate(d0, { size: 4, durationSec: 600 });
    await client.store(caps.write, Buffer.from('keep'));
    loop.pause(0);
    await expect(new IbpClient({ timeoutMs: 300 }).load(caps.read, 0, 4)).rejects.toThrow();
    loop.resume(0);
    expect((await client.load(caps.read, 0, 4)).toString()).toBe('keep');
    const old = loop.pid(0);
    await loop.kill(0);
    expect(alive(old)).toBe(false);
    await expect(new IbpClient({ timeoutMs: 500 }).load(caps.read, 0, 4)).rejects.toThrow();
    const again = await loop.restart(0);
    expect(again).toEqual(d0);
    expect(loop.pid(0)).not.toBe(old);
    expect((await client.load(caps.read, 0, 4)).toString()).toBe('keep');
    // the other depot was untouched
    await client.allocate(loop.depots[1]!, { size: 1, durationSec: 60 });
  });

  // Runs the built dist/ (npm test builds first), like the other tests that spawn processes.
  it('leaves no depot behind when its parent process is SIGKILLed', async () => {
    const script = `
      const { startLoopbackDepots } = await import(${JSON.stringify(new URL('../../dist/framework/dataset/index.js', import.meta.url).href)});
      const loop = await startLoopbackDepots(2);
      process.stdout.write(JSON.stringify([loop.pid(0), loop.pid(1)]) + '\\n');
      setInterval(() => {}, 1000);`;
    const parent = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    parent.stdout.on('data', (d: Buffer) => (out += d.toString()));
    parent.stderr.on('data', (d: Buffer) => (err += d.toString()));
    for (let i = 0; i < 600 && !out.includes('\n') && parent.exitCode === null; i++) await sleep(25);
    expect(out, err).toMatch(/^\[\d+,\d+\]\n$/);
    const pids = JSON.parse(out) as number[];
    expect(pids.every(alive)).toBe(true);
    parent.kill('SIGKILL');
    for (const p of pids) expect(await waitDead(p)).toBe(true);
  });
});
