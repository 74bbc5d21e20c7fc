import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/temp-dir.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../..', import.meta.url));

// The README's pipeline example, in a project that depends on anvil the way the README says (a linked
// clone: only `anvil` in its node_modules, none of anvil's own dependencies), compiled with the README's
// tsconfig and run.
describe("the README's pipeline example", () => {
  const tmp = tempDir('anvil-consumer-pipeline-');
  afterAll(() => tmp.cleanup());

  it('compiles and runs with anvil as the only dependency', async () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8');
    const section = readme.slice(readme.indexOf('## A pipeline in TypeScript'), readme.indexOf('## Folders'));
    const pipeline = /```ts\n([\s\S]*?)```/.exec(section)?.[1];
    const deps = readme.slice(readme.indexOf('## As a dependency'), readme.indexOf('## Development'));
    const tsconfig = /```json\n([\s\S]*?)```/.exec(deps)?.[1];
    expect(pipeline).toBeDefined();
    expect(tsconfig).toBeDefined();
    const dir = tmp.path;
    mkdirSync(join(dir, 'node_modules'));
    symlinkSync(root, join(dir, 'node_modules', 'anvil'), 'dir');
    // `npm install -D @types/node` in a real project.
    symlinkSync(join(root, 'node_modules', '@types'), join(dir, 'node_modules', '@types'), 'dir');
    writeFileSync(join(dir, 'tsconfig.json'), tsconfig!);
    writeFileSync(join(dir, 'app.mts'), pipeline!);
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    const compiled = await run(process.execPath, [tsc, '-p', '.'], { cwd: dir, timeout: 120_000 }).then(
      () => '',
      (e: { stdout?: string }) => e.stdout ?? String(e),
    );
    expect(compiled).toBe('');
    const ran = await run(process.execPath, [join(dir, 'build', 'app.mjs')], { cwd: dir, timeout: 90_000 });
    expect(ran.stdout).toMatch(/\(spectral\) with probability ≥ /);
  }, 200_000);
});
