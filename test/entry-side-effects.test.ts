import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '..');
const ENTRIES = ['ibp', 'nfu-kernels', 'framework', 'depot'] as const;

/**
 * In a fresh process: what importing the built public entries changes. Nothing should: no handle
 * (timer, socket, worker, file request) left active, no file descriptor or native library opened, no
 * process listener or global added.
 */
const PROBE = `
  import { readdirSync, readFileSync } from 'node:fs';
  const snapshot = () => ({
    resources: process.getActiveResourcesInfo(),
    fds: readdirSync('/proc/self/fd').length,
    natives: readFileSync('/proc/self/maps', 'utf8').split('\\n').filter((l) => l.endsWith('.node')).map((l) => l.split(/\\s+/).pop()),
    listeners: ['exit', 'beforeExit', 'SIGINT', 'SIGTERM', 'SIGHUP', 'uncaughtException', 'unhandledRejection', 'warning', 'message']
      .map((e) => e + ':' + process.listenerCount(e)),
    globals: Object.getOwnPropertyNames(globalThis).sort(),
  });
  // The process's own stdio streams are created lazily, by whoever first touches them (pino and
  // piscina do at import): create them first so they do not count.
  void process.stdout; void process.stderr;
  const before = snapshot();
  for (const url of JSON.parse(process.argv[1])) await import(url);
  await new Promise((r) => setImmediate(r));
  const after = snapshot();
  const added = (a, b) => { const left = [...b]; return a.filter((x) => { const i = left.indexOf(x); if (i < 0) return true; left.splice(i, 1); return false; }); };
  process.stdout.write(JSON.stringify({
    resources: added(after.resources, before.resources),
    fds: after.fds - before.fds,
    natives: added(after.natives, before.natives),
    listeners: added(after.listeners, before.listeners),
    globals: added(after.globals, before.globals),
  }));`;

describe('importing a public entry installs nothing, opens nothing, starts nothing', () => {
  it.each<string>([...ENTRIES, ENTRIES.join(' + ')])('%s', (which) => {
    const names = which.split(' + ');
    const urls = names.map((e) => pathToFileURL(join(root, 'dist', e, 'index.js')).href);
    for (const e of names) expect(existsSync(join(root, 'dist', e, 'index.js')), `build first: dist/${e}`).toBe(true);
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', PROBE, JSON.stringify(urls)], {
      cwd: root,
      encoding: 'utf8',
      timeout: 30_000,
    });
    const added = JSON.parse(out) as Record<string, unknown>;
    expect(added['resources'], 'handles left active (timers, sockets, workers)').toEqual([]);
    expect(added['fds'], 'file descriptors opened').toBe(0);
    expect(added['natives'], 'native libraries loaded (kernels installed)').toEqual([]);
    expect(added['listeners'], 'process listeners added').toEqual([]);
    expect(added['globals'], 'globals added').toEqual([]);
  });
});
