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
