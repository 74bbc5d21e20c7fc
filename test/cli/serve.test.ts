import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { tempDir } from '../helpers/temp-dir.js';

const BIN = fileURLToPath(new URL('../../bin/anvil.js', import.meta.url));

function run(args: string[]) {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, exited, out: () => out, err: () => err };
}

describe('anvil serve', () => {
  it('serves the dashboard and the stream, and stops on SIGINT', async () => {
    const p = run(['serve', '--port', '0']);
    try {
      const deadline = Date.now() + 20_000;
      let url: string | undefined;
      while (url === undefined && Date.now() < deadline) {
        url = /dashboard: (http:\/\/\S+)/.exec(p.out())?.[1];
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(url, p.err()).toBeDefined();
      expect((await fetch(url!)).status).toBe(200);
      const ws = new WebSocket(`${url!.replace('http', 'ws')}live`);
      const hello = await new Promise<{ type: string; v: number }>((resolve, reject) => {
        ws.once('message', (d) => resolve(JSON.parse(d.toString()) as { type: string; v: number }));
        ws.once('error', reject);
      });
      expect(hello).toMatchObject({ v: 1, type: 'hello' });
      ws.close();
      p.child.kill('SIGINT');
      expect(await p.exited).toBe(0);
      expect(p.out()).toContain('stopped');
    } finally {
      if (p.child.exitCode === null) p.child.kill('SIGKILL');
    }
  }, 30_000);

  it('refuses a bad job file before starting anything', async () => {
    const dir = tempDir('anvil-serve-');
    try {
      const file = join(dir.path, 'job.json');
      writeFileSync(file, JSON.stringify({ dataset: { cols: 2, blocks: [] }, job: { kind: 'nonsense' } }));
      const p = run(['serve', '--port', '0', '--job', file]);
      expect(await p.exited).toBe(2);
      expect(p.err()).toMatch(/COORD_E_INVALID_ARGUMENT/);
      expect(p.out()).not.toContain('dashboard:');
    } finally {
      dir.cleanup();
    }
  }, 30_000);
});
