import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/temp-dir.js';

const root = resolve(import.meta.dirname, '..', '..');

/** The files `npm pack` would put in the tarball (no scripts run; dist/ is built by `pretest`). */
function packedFiles(): string[] {
  const out = execFileSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  return (JSON.parse(out) as Array<{ files: Array<{ path: string }> }>)[0]!.files.map((f) => f.path);
}

describe('Anvil as a dependency: the packed tarball', () => {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
    exports: Record<string, string | { types: string; default: string }>;
    bin: Record<string, string>;
  };

  it('ships every export target, the bin and the compiled code, and no sources or tests', () => {
    const files = new Set(packedFiles());
    const targets = Object.values(pkg.exports).flatMap((t) => (typeof t === 'string' ? [t] : [t.types, t.default]));
    for (const t of [...targets, ...Object.values(pkg.bin)]) expect(files, t).toContain(t.replace(/^\.\//, ''));
    expect([...files].filter((f) => f.startsWith('test/') || (f.endsWith('.ts') && !f.endsWith('.d.ts')))).toEqual([]);
  });

  it('installed from those files alone, anvil/ibp, anvil/framework and the anvil bin work from another project', () => {
    const dir = tempDir('anvil-consumer-');
    try {
      const installed = join(dir.path, 'node_modules', 'anvil');
      for (const f of packedFiles()) {
        mkdirSync(dirname(join(installed, f)), { recursive: true });
        cpSync(join(root, f), join(installed, f));
      }
      // The dependencies an install would fetch: this checkout's (no network in tests).
      symlinkSync(join(root, 'node_modules'), join(installed, 'node_modules'), 'dir');
      writeFileSync(join(dir.path, 'package.json'), JSON.stringify({ name: 'consumer', type: 'module', private: true }));
      writeFileSync(
        join(dir.path, 'use.mjs'),
        [
          "import { IbpClient, parseCapability } from 'anvil/ibp';",
          "import { parseExnode, runKernel } from 'anvil/framework';",
          "import { CATALOGUE } from 'anvil/nfu-kernels';",
          "import { parseDepotOptions } from 'anvil/depot';",
          'console.log([typeof IbpClient, typeof parseCapability, typeof parseExnode, typeof runKernel, typeof CATALOGUE.gram, parseDepotOptions().port].join(" "));',
        ].join('\n'),
      );
      const out = execFileSync(process.execPath, ['use.mjs'], { cwd: dir.path, encoding: 'utf8' });
      expect(out).toBe('function function function function object 6714\n');
      const bin = execFileSync(process.execPath, [join(installed, 'bin', 'anvil.js'), '--version'], { encoding: 'utf8' });
      expect(bin).toBe('0.1.0\n');
    } finally {
      dir.cleanup();
    }
  });
});
