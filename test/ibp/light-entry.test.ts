import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');

/**
 * Runs `node` on a fresh process that imports `entry` with a resolve hook recording every module
 * resolved (and reads the CommonJS cache afterwards): the complete list of what importing it loads.
 */
function modulesLoadedBy(entry: string): string[] {
  const hook = `
    let port;
    export function initialize(data) {
      port = data.port;
      port.on('message', () => port.postMessage({ done: true }));
    }
    export async function resolve(specifier, context, next) {
      const result = await next(specifier, context);
      port.postMessage({ url: result.url });
      return result;
    }`;
  const script = `
    import { register, createRequire } from 'node:module';
    import { MessageChannel } from 'node:worker_threads';
    const { port1, port2 } = new MessageChannel();
    const seen = [];
    const flushed = new Promise((done) =>
      port1.on('message', (m) => (m.done ? done() : seen.push(m.url))),
    );
    register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hook)}), {
      data: { port: port2 },
      transferList: [port2],
    });
    await import(${JSON.stringify(pathToFileURL(entry).href)});
    port1.postMessage('flush');
    await flushed;
    port1.close();
    const cjs = Object.keys(createRequire(import.meta.url).cache).map((f) => 'file://' + f);
    process.stdout.write(JSON.stringify([...new Set([...seen, ...cjs])]));`;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], {
    cwd: root,
    encoding: 'utf8',
    timeout: 30_000,
  });
  return JSON.parse(out) as string[];
}

/** What a light client or a browser bundle must never pull in through the wire layer. */
const SERVER_ONLY = /\/node_modules\/(better-sqlite3|piscina|pino|prom-client)\//;
/** Node built-ins the wire layer may use: sockets for the client, stream types for the reader. */
const ALLOWED_BUILTINS = new Set(['node:net', 'node:stream', 'node:buffer', 'node:events']);

describe('the ibp entry is light', () => {
  const entry = join(root, 'dist/ibp/index.js');

  it('importing dist/ibp/index.js in a fresh process loads no server package, no depot module, no file or worker API', () => {
    expect(existsSync(entry), 'build first: npx tsc -p tsconfig.build.json').toBe(true);
    const loaded = modulesLoadedBy(entry);
    expect(loaded.some((u) => u.endsWith('/dist/ibp/index.js'))).toBe(true);
    expect(loaded.filter((u) => SERVER_ONLY.test(u))).toEqual([]);
    expect(loaded.filter((u) => u.includes('/node_modules/'))).toEqual([]);
    const ours = loaded.filter((u) => u.startsWith(pathToFileURL(join(root, 'dist')).href));
    const outside = ours.filter((u) => !/\/dist\/(ibp|nfu-kernels)\//.test(u));
    expect(outside).toEqual([]);
    const builtins = loaded.filter((u) => u.startsWith('node:') || !u.includes(':'));
    expect(builtins.filter((b) => !ALLOWED_BUILTINS.has(b.startsWith('node:') ? b : `node:${b}`))).toEqual([]);
  });

  it('the same probe sees the server packages behind the depot entry (so it can fail)', () => {
    const loaded = modulesLoadedBy(join(root, 'dist/depot/index.js'));
    const found = new Set(loaded.map((u) => SERVER_ONLY.exec(u)?.[1]).filter((p) => p !== undefined));
    expect([...found].sort()).toEqual(expect.arrayContaining(['better-sqlite3', 'pino']));
  });

  it('no source file under ibp/ imports a package, a Node built-in outside the allowed few, or another layer', () => {
    const files: string[] = [];
    const walk = (dir: string): void => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (p.endsWith('.ts')) files.push(p);
      }
    };
    walk(join(root, 'ibp'));
    expect(files.length).toBeGreaterThan(5);
    const offending: string[] = [];
    for (const file of files) {
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/(?:\bfrom\s*|\bimport\s*\(?\s*|\brequire\s*\(\s*)['"]([^'"]+)['"]/g)) {
        const spec = m[1]!;
        const where = `${relative(root, file)}: ${spec}`;
        if (spec.startsWith('.')) {
          const target = relative(root, resolve(file, '..', spec));
          if (!target.startsWith('ibp/') && target !== 'nfu-kernels/index.js') offending.push(where);
        } else if (!ALLOWED_BUILTINS.has(spec)) {
          offending.push(where);
        }
      }
    }
    expect(offending).toEqual([]);
  });
});
