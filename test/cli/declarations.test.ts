import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/temp-dir.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../..', import.meta.url));

// The published declarations (dist/**/*.d.ts, built with stripInternal) must type-check in a consumer that
// checks libraries (skipLibCheck false): a public declaration must not use a type that stripInternal removed.
describe('published .d.ts files', () => {
  const tmp = tempDir('anvil-consumer-');
  afterAll(() => tmp.cleanup());

  it('type-check in a strict consumer with skipLibCheck false, importing every entry point', async () => {
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
      name: string;
      exports: Record<string, unknown>;
    };
    const entries = Object.keys(pkg.exports).filter((k) => k !== './package.json');
    expect(entries.length).toBeGreaterThan(0);
    const dir = tmp.path;
    mkdirSync(join(dir, 'node_modules'));
    symlinkSync(root, join(dir, 'node_modules', pkg.name), 'dir');
    writeFileSync(
      join(dir, 'index.ts'),
      entries.map((e, i) => `import * as m${i} from '${pkg.name}/${e.slice(2)}';\nexport { m${i} };\n`).join(''),
    );
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          skipLibCheck: false,
          noEmit: true,
          types: ['node'],
          typeRoots: [join(root, 'node_modules', '@types')],
        },
        files: ['index.ts'],
      }),
    );
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    const out = await run(process.execPath, [tsc, '-p', join(dir, 'tsconfig.json')], { timeout: 120_000 }).then(
      () => '',
      (e: { stdout?: string }) => e.stdout ?? String(e),
    );
    expect(out).toBe('');
  }, 150_000);
});

/** The fenced blocks of the README's "As a dependency" section, in order. */
function dependencySection(): { lang: string; body: string }[] {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## As a dependency'), readme.indexOf('## Development'));
  return [...section.matchAll(/```(\w+)\n([\s\S]*?)```/g)].map((m) => ({ lang: m[1]!, body: m[2]! }));
}

// The README shows how a TypeScript project uses the package on Node 20: its tsconfig and app.mts must
// compile against the published declarations and the result must run.
describe("the README's consumer example", () => {
  const tmp = tempDir('anvil-consumer-mts-');
  afterAll(() => tmp.cleanup());

  it('names every entry point, and its tsconfig + app.mts compile with tsc and run on node', async () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## As a dependency'), readme.indexOf('## Development'));
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { exports: Record<string, unknown> };
    for (const e of Object.keys(pkg.exports).filter((k) => k !== './package.json'))
      expect(section).toContain(`\`anvil/${e.slice(2)}\``);
    const blocks = dependencySection();
    const tsconfig = blocks.find((b) => b.lang === 'json');
    const app = blocks.find((b) => b.lang === 'ts' && b.body.startsWith('// app.mts\n'));
    const command = blocks.find((b) => b.lang === 'sh' && b.body.includes('node build/app.mjs'));
    expect(tsconfig).toBeDefined();
    expect(app).toBeDefined();
    expect(command?.body.trim()).toBe('npx tsc -p . && node build/app.mjs');
    const dir = tmp.path;
    mkdirSync(join(dir, 'node_modules'));
    symlinkSync(root, join(dir, 'node_modules', 'anvil'), 'dir');
    // `npm install -D @types/node` in a real project.
    symlinkSync(join(root, 'node_modules', '@types'), join(dir, 'node_modules', '@types'), 'dir');
    writeFileSync(join(dir, 'tsconfig.json'), tsconfig!.body);
    writeFileSync(join(dir, 'app.mts'), app!.body);
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    const compiled = await run(process.execPath, [tsc, '-p', '.'], { cwd: dir, timeout: 120_000 }).then(
      () => '',
      (e: { stdout?: string }) => e.stdout ?? String(e),
    );
    expect(compiled).toBe('');
    const ran = await run(process.execPath, [join(dir, 'build', 'app.mjs')], { cwd: dir, timeout: 60_000 });
    expect(ran.stdout).toContain("host: '127.0.0.1', port: 6714");
    expect(ran.stdout).toContain('function');
  }, 150_000);
});
