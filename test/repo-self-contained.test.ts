import { execFileSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '..');
const SELF = 'test/repo-self-contained.test.ts';

/**
 * Pointers to documents that live outside the repository: a `shared/` folder beside it and the
 * design notes kept there (by file name or by "NAME §n" section references). What a user or a
 * contributor needs belongs in docs/.
 */
const OUTSIDE = [
  /\.\.\/shared\//,
  /(^|[^\w/.-])shared\/[A-Z][\w-]*(\.md)?/,
  /\b(DESIGN|IBP-PROTOCOL|NUMERICS|ESTIMATION|STYLE)\.md\b/,
  /\b(DESIGN|IBP-PROTOCOL|NUMERICS|ESTIMATION|STYLE) §/,
];

/** Tracked files and new files not ignored: everything that would land. */
function repoFiles(): string[] {
  const out = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard', '-z'], {
    cwd: root,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  return out.split('\0').filter((f) => f !== '' && f !== SELF);
}

function offendingLines(text: string): string[] {
  return text
    .split('\n')
    .map((line, i) => [line, i + 1] as const)
    .filter(([line]) => OUTSIDE.some((re) => re.test(line)))
    .map(([line, n]) => `${n}: ${line.trim().slice(0, 120)}`);
}

describe('the repository is self-contained', () => {
  it('the patterns catch the pointers they are meant to', () => {
    for (const line of [
      // Built from parts, so this file holds no such pointer itself.
      `Design: \`../${'shared'}/DESIGN.md\`.`,
      ` * Token layouts follow ${'shared'}/IBP-PROTOCOL.md §1.4`,
      'the bound of ESTIMATION §3',
      'see NUMERICS.md',
    ]) {
      expect(offendingLines(line), line).toHaveLength(1);
    }
    for (const line of ['docs/protocol.md §2', 'a shared/exclusive lock', 'node_modules/shared/index.js', 'SharedArrayBuffer']) {
      expect(offendingLines(line), line).toEqual([]);
    }
  });

  it('no file refers to documents outside the repository', () => {
    const files = repoFiles();
    expect(files.length).toBeGreaterThan(50);
    const found: string[] = [];
    for (const file of files) {
      const path = join(root, file);
      let size: number;
      try {
        size = statSync(path).size;
      } catch {
        continue; // deleted in the working tree
      }
      if (size > 4 * 1024 * 1024) continue;
      const bytes = readFileSync(path);
      if (bytes.includes(0)) continue; // binary
      for (const hit of offendingLines(bytes.toString('utf8'))) found.push(`${file}:${hit}`);
    }
    expect(found).toEqual([]);
  });
});
