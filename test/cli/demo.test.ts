import { spawn, execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const BIN = fileURLToPath(new URL('../../bin/anvil.js', import.meta.url));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Every descendant of `pid` (ps --ppid, recursively). */
function descendants(pid: number): number[] {
  let out = '';
  try {
    out = execFileSync('ps', ['-o', 'pid=', '--ppid', String(pid)], { encoding: 'utf8' });
  } catch {
    return [];
  }
  const kids = out
    .split('\n')
    .map((l) => Number(l.trim()))
    .filter((n) => n > 0);
  return kids.flatMap((k) => [k, ...descendants(k)]);
}

describe('anvil demo', () => {
  it('serves the dashboard with live estimates from its depots, and Ctrl-C stops everything (no orphan process)', async () => {
    const child = spawn(process.execPath, [BIN, 'demo', '--port', '0', '--depots', '3', '--rate', '300', '--no-chaos'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    try {
      const deadline = Date.now() + 30_000;
      let url: string | undefined;
      while (url === undefined && Date.now() < deadline) {
        url = /dashboard: (http:\/\/\S+)/.exec(out)?.[1];
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(url, `demo did not start: ${out}${err}`).toBeDefined();
      expect((await fetch(url!)).status).toBe(200);
      // Wait for estimates computed where the data sits to reach the live server.
      let estimates = 0;
      let depots = 0;
      while (estimates < 2 && Date.now() < deadline + 30_000) {
        const snap = (await (await fetch(`${url}api/snapshot`)).json()) as { messages: Array<{ type: string }> };
        estimates = snap.messages.filter((m) => m.type === 'estimate').length;
        depots = snap.messages.filter((m) => m.type === 'depot-health').length;
        await new Promise((r) => setTimeout(r, 250));
      }
      expect(estimates).toBeGreaterThanOrEqual(2);
      expect(depots).toBe(3);
      const tree = descendants(child.pid!);
      expect(tree.length).toBeGreaterThanOrEqual(3); // the depots
      child.kill('SIGINT');
      const { code } = await exited;
      expect(code).toBe(0);
      expect(out).toContain('demo stopped');
      await new Promise((r) => setTimeout(r, 200));
      expect(tree.filter(alive)).toEqual([]);
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
    }
  }, 90_000);
});
